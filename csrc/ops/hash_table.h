// Host side of the integer-key hash table ops: validation and backend dispatch (CPU / CUDA).
#pragma once

#include <ATen/ATen.h>

namespace memory_ext {

struct HashBackend {
  const char* name;
  // ids [N]: lookup_or_insert over keys [N] (slots, meta updated in place)
  void (*lookup_or_insert)(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys,
                           at::Tensor& ids);
  void (*find)(const at::Tensor& slots, const at::Tensor& keys, at::Tensor& ids,
               at::Tensor& counts);
  void (*erase)(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys, at::Tensor& erased);
  // inserts rows (key, id, count) [M, 3] of distinct keys into an empty table
  void (*rebuild)(at::Tensor& slots, const at::Tensor& entries);
};

at::Tensor hash_lookup_or_insert_impl(const HashBackend& be, at::Tensor& slots, at::Tensor& meta,
                                      const at::Tensor& keys);
std::tuple<at::Tensor, at::Tensor> hash_find_impl(const HashBackend& be, const at::Tensor& slots,
                                                  const at::Tensor& keys);
at::Tensor hash_erase_impl(const HashBackend& be, at::Tensor& slots, at::Tensor& meta,
                           const at::Tensor& keys);
void hash_rebuild_impl(const HashBackend& be, at::Tensor& slots, const at::Tensor& entries);

}  // namespace memory_ext

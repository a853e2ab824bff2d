// Host side of the integer-key hash table ops: validation and backend dispatch (CPU / CUDA).
// No autograd (integer tensors).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "backend.h"
#include "memory_ext/hash_table_core.h"

namespace memory_ext {

// The kernels are dtype-free (the table is int64): one entry each.
struct HashTableBackend : Backend {
  // ids [n] of keys [n], missing keys inserted (slots, meta updated in place)
  void (*lookup_or_insert)(const HashTableParams&, void* stream);
  // ids [n] (-1: missing) and use counts [n] of keys [n]
  void (*find)(const HashTableParams&, void* stream);
  // erased [n]: keys [n] tombstoned (slots, meta updated in place)
  void (*erase)(const HashTableParams&, void* stream);
  // inserts the rows (key, id, count) [n, 3] of distinct keys into an empty table
  void (*rebuild)(const HashTableParams&, void* stream);
};

at::Tensor hash_lookup_or_insert_impl(const HashTableBackend& be, at::Tensor& slots,
                                      at::Tensor& meta, const at::Tensor& keys);
std::tuple<at::Tensor, at::Tensor> hash_find_impl(const HashTableBackend& be,
                                                  const at::Tensor& slots, const at::Tensor& keys);
at::Tensor hash_erase_impl(const HashTableBackend& be, at::Tensor& slots, at::Tensor& meta,
                           const at::Tensor& keys);
void hash_rebuild_impl(const HashTableBackend& be, at::Tensor& slots, const at::Tensor& entries);

// The registration of the ops for one dispatch key (see backend.h for Be).
template <typename Be>
struct HashTableOps {
  static at::Tensor lookup_or_insert(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys) {
    [[maybe_unused]] auto device_guard = Be::guard(slots);
    return hash_lookup_or_insert_impl(Be::get(), slots, meta, keys);
  }
  static std::tuple<at::Tensor, at::Tensor> find(const at::Tensor& slots, const at::Tensor& keys) {
    [[maybe_unused]] auto device_guard = Be::guard(slots);
    return hash_find_impl(Be::get(), slots, keys);
  }
  static at::Tensor erase(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys) {
    [[maybe_unused]] auto device_guard = Be::guard(slots);
    return hash_erase_impl(Be::get(), slots, meta, keys);
  }
  static void rebuild(at::Tensor& slots, const at::Tensor& entries) {
    [[maybe_unused]] auto device_guard = Be::guard(slots);
    hash_rebuild_impl(Be::get(), slots, entries);
  }
  static void register_all(torch::Library& m) {
    m.impl("hash_lookup_or_insert_", TORCH_FN(lookup_or_insert));
    m.impl("hash_find", TORCH_FN(find));
    m.impl("hash_erase_", TORCH_FN(erase));
    m.impl("_hash_rebuild_", TORCH_FN(rebuild));
  }
};

}  // namespace memory_ext

// CUDA registration of the elastic-vocabulary ops: hash table and gather_rows (built only when
// torch has CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../ops/gather_rows.h"
#include "../ops/hash_table.h"
#include "vocab_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

void* stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, "memory_ext CUDA kernel ", what, " failed: ", err);
}

void lookup_or_insert(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys, at::Tensor& ids) {
  check(hash_lookup_or_insert(slots.data_ptr<int64_t>(), slots.size(0), meta.data_ptr<int64_t>(),
                              keys.data_ptr<int64_t>(), keys.size(0), ids.data_ptr<int64_t>(),
                              stream()),
        "hash_lookup_or_insert");
}

void find(const at::Tensor& slots, const at::Tensor& keys, at::Tensor& ids, at::Tensor& counts) {
  check(hash_find(slots.data_ptr<int64_t>(), slots.size(0), keys.data_ptr<int64_t>(),
                  keys.size(0), ids.data_ptr<int64_t>(), counts.data_ptr<int64_t>(), stream()),
        "hash_find");
}

void erase(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys, at::Tensor& erased) {
  check(hash_erase(slots.data_ptr<int64_t>(), slots.size(0), meta.data_ptr<int64_t>(),
                   keys.data_ptr<int64_t>(), keys.size(0), erased.data_ptr<bool>(), stream()),
        "hash_erase");
}

void rebuild(at::Tensor& slots, const at::Tensor& entries) {
  check(hash_rebuild(slots.data_ptr<int64_t>(), slots.size(0), entries.data_ptr<int64_t>(),
                     entries.size(0), stream()),
        "hash_rebuild");
}

const HashBackend& backend() {
  static const HashBackend be{"CUDA", &lookup_or_insert, &find, &erase, &rebuild};
  return be;
}

void gather_kernel(const GatherRowsParams& p) { check(gather_rows(p, stream()), "gather_rows"); }

at::Tensor lookup_or_insert_cuda(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys) {
  c10::cuda::CUDAGuard g(slots.device());
  return hash_lookup_or_insert_impl(backend(), slots, meta, keys);
}
std::tuple<at::Tensor, at::Tensor> find_cuda(const at::Tensor& slots, const at::Tensor& keys) {
  c10::cuda::CUDAGuard g(slots.device());
  return hash_find_impl(backend(), slots, keys);
}
at::Tensor erase_cuda(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys) {
  c10::cuda::CUDAGuard g(slots.device());
  return hash_erase_impl(backend(), slots, meta, keys);
}
void rebuild_cuda(at::Tensor& slots, const at::Tensor& entries) {
  c10::cuda::CUDAGuard g(slots.device());
  hash_rebuild_impl(backend(), slots, entries);
}
std::vector<at::Tensor> gather_rows_cuda(at::TensorList tensors, const at::Tensor& index,
                                         int64_t out_rows) {
  c10::cuda::CUDAGuard g(index.device());
  return gather_rows_impl(&gather_kernel, tensors, index, out_rows);
}

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CUDA, m) {
  m.impl("hash_lookup_or_insert_", TORCH_FN(memory_ext::cuda::lookup_or_insert_cuda));
  m.impl("hash_find", TORCH_FN(memory_ext::cuda::find_cuda));
  m.impl("hash_erase_", TORCH_FN(memory_ext::cuda::erase_cuda));
  m.impl("_hash_rebuild_", TORCH_FN(memory_ext::cuda::rebuild_cuda));
  m.impl("gather_rows", TORCH_FN(memory_ext::cuda::gather_rows_cuda));
}

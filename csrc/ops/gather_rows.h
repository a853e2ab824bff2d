// Host side of gather_rows (one permutation applied to many row-aligned tensors at once):
// validation and backend dispatch (CPU / CUDA). No autograd (ElasticVocab.compact gathers the
// parameters' data and the optimizer state).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <vector>

#include "backend.h"
#include "memory_ext/gather_rows_core.h"

namespace memory_ext {

// The kernel moves bytes (any dtype): one entry.
struct GatherRowsBackend : Backend {
  void (*gather)(const GatherRowsParams&, void* stream);
};

// tensors: each [R, ...] (any dtypes, same R, same device as index); index int64 [n] in [0, R);
// returns for each tensor a new [out_rows, ...] tensor: rows index[r] first, then zeros.
std::vector<at::Tensor> gather_rows_impl(const GatherRowsBackend& be, at::TensorList tensors,
                                         const at::Tensor& index, int64_t out_rows);

// The registration of the op for one dispatch key (see backend.h for Be).
template <typename Be>
struct GatherRowsOps {
  static std::vector<at::Tensor> gather(at::TensorList tensors, const at::Tensor& index,
                                        int64_t out_rows) {
    [[maybe_unused]] auto device_guard = Be::guard(index);
    return gather_rows_impl(Be::get(), tensors, index, out_rows);
  }
  static void register_all(torch::Library& m) { m.impl("gather_rows", TORCH_FN(gather)); }
};

}  // namespace memory_ext

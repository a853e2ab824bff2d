// Host side of gather_rows (one permutation applied to many row-aligned tensors at once).
#pragma once

#include <ATen/ATen.h>

#include <vector>

#include "memory_ext/gather_rows_core.h"

namespace memory_ext {

using GatherRowsKernel = void (*)(const GatherRowsParams&);

// tensors: each [R, ...] (any dtypes, same R, same device as index); index int64 [n] in [0, R);
// returns for each tensor a new [out_rows, ...] tensor: rows index[r] first, then zeros.
std::vector<at::Tensor> gather_rows_impl(GatherRowsKernel kernel, at::TensorList tensors,
                                         const at::Tensor& index, int64_t out_rows);

}  // namespace memory_ext

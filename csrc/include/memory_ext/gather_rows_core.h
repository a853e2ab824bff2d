// Torch-free description of one fused row gather: for every tensor t (as bytes per row),
// dst_t[r] = src_t[index[r]] for r < n_index, and zero bytes for n_index <= r < out_rows.
#pragma once

#include <cstdint>

namespace memory_ext {

constexpr int kMaxGatherTensors = 16;

struct GatherRowsParams {
  int n_tensors = 0;
  int64_t n_index = 0;   // rows gathered
  int64_t out_rows = 0;  // rows of every output (>= n_index)
  const int64_t* index = nullptr;  // [n_index], each in [0, source rows)
  const unsigned char* src[kMaxGatherTensors] = {};
  unsigned char* dst[kMaxGatherTensors] = {};
  int64_t row_bytes[kMaxGatherTensors] = {};
};

}  // namespace memory_ext

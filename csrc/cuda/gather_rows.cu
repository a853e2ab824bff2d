// CUDA kernel of gather_rows: one launch for every tensor (blockIdx.y), blocks striding over
// output rows; rows whose size and address allow it move as 16-byte vectors. Torch-free.
#include <cuda_runtime.h>

#include "launch.cuh"
#include "gather_rows_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

constexpr int kGatherThreads = 128;

__global__ void gather_rows_kernel(GatherRowsParams p) {
  const int t = blockIdx.y;
  const int64_t rb = p.row_bytes[t];
  if (rb == 0) return;  // nothing to move for this tensor, however many rows
  const bool vec = rb % 16 == 0 && reinterpret_cast<uintptr_t>(p.src[t]) % 16 == 0 &&
                   reinterpret_cast<uintptr_t>(p.dst[t]) % 16 == 0;
  for (int64_t r = blockIdx.x; r < p.out_rows; r += gridDim.x) {
    unsigned char* d = p.dst[t] + r * rb;
    const unsigned char* s = r < p.n_index ? p.src[t] + p.index[r] * rb : nullptr;
    if (vec) {
      const int64_t n = rb / 16;
      for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        reinterpret_cast<int4*>(d)[i] =
            s != nullptr ? reinterpret_cast<const int4*>(s)[i] : make_int4(0, 0, 0, 0);
      }
    } else {
      for (int64_t i = threadIdx.x; i < rb; i += blockDim.x) d[i] = s != nullptr ? s[i] : 0;
    }
  }
}

}  // namespace

const char* gather_rows(const GatherRowsParams& p, void* stream) {
  if (p.out_rows == 0 || p.n_tensors == 0) return nullptr;
  const int64_t want = p.out_rows < 65535 ? p.out_rows : 65535;
  dim3 grid(static_cast<unsigned>(want), static_cast<unsigned>(p.n_tensors));
  return error_string(launch_kernel(gather_rows_kernel, grid, dim3(kGatherThreads), 0,
                                    static_cast<cudaStream_t>(stream), p));
}

}  // namespace cuda
}  // namespace memory_ext

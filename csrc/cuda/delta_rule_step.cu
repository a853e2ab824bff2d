// CUDA kernel of delta_rule_step_: one block per (batch, head), one thread per state column
// (coalesced rows), the state read and written once; no allocation, no host sync, so it can be
// captured in a CUDA graph. Torch-free.
#include <cuda_runtime.h>

#include "delta_rule_step_launch.h"
#include "launch.cuh"

namespace memory_ext {
namespace cuda {
namespace {

__global__ void delta_rule_step_kernel(DeltaRuleStepParams<float, float> p) {
  const int bh = blockIdx.x;
  for (int j = threadIdx.x; j < p.V; j += blockDim.x) delta_rule_step_column(p, bh, j);
}

}  // namespace

const char* delta_rule_step(const DeltaRuleStepParams<float, float>& p, void* stream) {
  const int n = p.B * p.H;
  if (n == 0) return nullptr;
  const int threads = p.V >= 128 ? 128 : ((p.V + 31) / 32) * 32;
  return error_string(launch_kernel(delta_rule_step_kernel, dim3(n), dim3(threads), 0,
                                    static_cast<cudaStream_t>(stream), p));
}

}  // namespace cuda
}  // namespace memory_ext

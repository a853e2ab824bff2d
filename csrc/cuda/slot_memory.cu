// CUDA kernels of the slot memory reads: one thread per batch element runs the per-element
// algorithm of slot_memory_core.h (correctness first: a row's work is N d per hop, small for
// bAbI-sized memories). Torch-free; float32 only.
#include <cuda_runtime.h>

#include "launch.cuh"
#include "memory_ext/slot_memory_core.h"
#include "slot_memory_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

constexpr int kSlotThreads = 128;

__global__ void read_fwd_kernel(SlotReadParams<float> p) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < p.B) slot_read_forward_elem(p, b);
}

__global__ void read_bwd_kernel(SlotReadParams<float> p) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < p.B) slot_read_backward_elem(p, b);
}

__global__ void hard_fwd_kernel(SlotHardParams<float> p) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < p.B) slot_hard_forward_elem(p, b, p.workspace + static_cast<long>(b) * p.d);
}

__global__ void hard_bwd_kernel(SlotHardParams<float> p) {
  const int b = blockIdx.x * blockDim.x + threadIdx.x;
  if (b < p.B) slot_hard_backward_elem(p, b);
}

template <typename Kernel, typename P>
const char* launch_per_elem(Kernel kernel, const P& p, void* s) {
  if (p.B == 0) return nullptr;
  const int grid = (p.B + kSlotThreads - 1) / kSlotThreads;
  return error_string(launch_kernel(kernel, dim3(grid), dim3(kSlotThreads), 0,
                                    static_cast<cudaStream_t>(s), p));
}

}  // namespace

const char* slot_read_fwd(const SlotReadParams<float>& p, void* s) {
  return launch_per_elem(read_fwd_kernel, p, s);
}
const char* slot_read_bwd(const SlotReadParams<float>& p, void* s) {
  return launch_per_elem(read_bwd_kernel, p, s);
}
const char* slot_hard_fwd(const SlotHardParams<float>& p, void* s) {
  return launch_per_elem(hard_fwd_kernel, p, s);
}
const char* slot_hard_bwd(const SlotHardParams<float>& p, void* s) {
  return launch_per_elem(hard_bwd_kernel, p, s);
}

}  // namespace cuda
}  // namespace memory_ext

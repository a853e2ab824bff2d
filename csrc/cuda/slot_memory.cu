// CUDA kernels of the slot memory reads: one thread per batch element runs the per-element
// algorithm of slot_core.h (correctness first: a row's work is N d per hop, small for bAbI-sized
// memories). Torch-free; float32 only.
#include <cuda_runtime.h>

#include "memory_ext/slot_core.h"
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

const char* status() {
  const cudaError_t e = cudaGetLastError();
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

int grid(int B) { return (B + kSlotThreads - 1) / kSlotThreads; }

}  // namespace

const char* slot_read_fwd(const SlotReadParams<float>& p, void* s) {
  read_fwd_kernel<<<grid(p.B), kSlotThreads, 0, static_cast<cudaStream_t>(s)>>>(p);
  return status();
}
const char* slot_read_bwd(const SlotReadParams<float>& p, void* s) {
  read_bwd_kernel<<<grid(p.B), kSlotThreads, 0, static_cast<cudaStream_t>(s)>>>(p);
  return status();
}
const char* slot_hard_fwd(const SlotHardParams<float>& p, void* s) {
  hard_fwd_kernel<<<grid(p.B), kSlotThreads, 0, static_cast<cudaStream_t>(s)>>>(p);
  return status();
}
const char* slot_hard_bwd(const SlotHardParams<float>& p, void* s) {
  hard_bwd_kernel<<<grid(p.B), kSlotThreads, 0, static_cast<cudaStream_t>(s)>>>(p);
  return status();
}

}  // namespace cuda
}  // namespace memory_ext

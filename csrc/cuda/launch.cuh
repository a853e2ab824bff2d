// The two places where CUDA C++ syntax that a host compiler cannot read meets the kernels: the
// launch (`kernel<<<grid, block, smem, stream>>>(args)`) and the block's dynamic shared memory
// (`extern __shared__`). Every .cu file goes through these helpers, so that the CUDA execution
// model emulator (tests/cuda_emulation, built with MEMORY_EXT_CUDA_EMULATION) runs the very
// launch functions and kernels of these files on the CPU; nvcc sees plain CUDA. Torch-free.
#pragma once

#include <cstddef>
#include <utility>

#include <cuda_runtime.h>

namespace memory_ext {
namespace cuda {

#if defined(MEMORY_EXT_CUDA_EMULATION)
using ::cuda_emu::dynamic_smem;
#else
// The block's dynamic shared memory (the size given at launch), 16-byte aligned.
__device__ __forceinline__ unsigned char* dynamic_smem() {
  extern __shared__ __align__(16) unsigned char smem_raw[];
  return smem_raw;
}
#endif

// Launches kernel(args...) on `grid` x `block` threads with `smem` bytes of dynamic shared
// memory on `stream`; returns cudaGetLastError() (a bad configuration is reported here).
template <typename... Params, typename... Args>
inline cudaError_t launch_kernel(void (*kernel)(Params...), dim3 grid, dim3 block,
                                 std::size_t smem, cudaStream_t stream, Args&&... args) {
#if defined(MEMORY_EXT_CUDA_EMULATION)
  ::cuda_emu::launch(kernel, grid, block, smem, stream, std::forward<Args>(args)...);
#else
  kernel<<<grid, block, smem, stream>>>(std::forward<Args>(args)...);
#endif
  return cudaGetLastError();
}

// The last launch's error as the string the *_launch.h entry points return (nullptr: none).
inline const char* error_string(cudaError_t e) {
  return e == cudaSuccess ? nullptr : cudaGetErrorString(e);
}

}  // namespace cuda
}  // namespace memory_ext

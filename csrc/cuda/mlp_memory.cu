// CUDA kernels of the MLP memory ops: one thread block per batch element runs the shared
// algorithm of mlp_memory_core.h. The block's working set (the weights, activations, and in
// the backward the weight gradient) lives in shared memory whenever it fits the device's
// opt-in limit (widths <= 64 at L <= 3 always do: ~60 KB), so the weights stay on chip for the
// whole step and across all T steps of a scan; larger memories run the same code on a global
// memory workspace (correct, slower). Torch-free, so it compiles without ATen headers.
#include <cuda_runtime.h>

#include "cuda_exec.cuh"
#include "launch.cuh"
#include "memory_ext/mlp_memory_core.h"
#include "mlp_memory_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

constexpr int kRed = kThreads / 32;  // reduction scratch (elements)

template <typename T>
__device__ T* block_scratch(bool on_chip, T* global_base, std::size_t stride) {
  T* smem = reinterpret_cast<T*>(dynamic_smem()) + kRed;
  return on_chip ? smem : global_base + std::size_t(blockIdx.x) * stride;
}

template <typename T>
__device__ CudaExec<T> block_exec() {
  return CudaExec<T>{reinterpret_cast<T*>(dynamic_smem())};
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    mlp_scan_fwd_kernel(MlpScanFwdParams<T> p, std::size_t stride, bool on_chip) {
  CudaExec<T> ex = block_exec<T>();
  T* ws = block_scratch<T>(on_chip, p.workspace, stride);
  mlp_scan_forward_elem(ex, p, blockIdx.x, ws);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    mlp_scan_bwd_kernel(MlpScanBwdParams<T> p, std::size_t stride, std::size_t hot, bool on_chip) {
  CudaExec<T> ex = block_exec<T>();
  T* base = p.workspace + std::size_t(blockIdx.x) * stride;
  T* hot_ws = block_scratch<T>(on_chip, p.workspace, stride);
  mlp_scan_backward_elem(ex, p, blockIdx.x, hot_ws, base + hot);
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    mlp_read_fwd_kernel(MlpReadParams<T> p, std::size_t stride, bool on_chip) {
  CudaExec<T> ex = block_exec<T>();
  mlp_read_forward_elem(ex, p, blockIdx.x, block_scratch<T>(on_chip, p.workspace, stride));
}

template <typename T>
__global__ void __launch_bounds__(kThreads)
    mlp_read_bwd_kernel(MlpReadParams<T> p, std::size_t stride, bool on_chip) {
  CudaExec<T> ex = block_exec<T>();
  mlp_read_backward_elem(ex, p, blockIdx.x, block_scratch<T>(on_chip, p.workspace, stride));
}

// Largest dynamic shared memory a block may opt into on the current device.
std::size_t smem_limit() {
  int dev = 0, bytes = 0;
  if (cudaGetDevice(&dev) != cudaSuccess) return 48 * 1024;
  if (cudaDeviceGetAttribute(&bytes, cudaDevAttrMaxSharedMemoryPerBlockOptin, dev) != cudaSuccess)
    return 48 * 1024;
  return static_cast<std::size_t>(bytes);
}

// Launch `kernel` with `on_chip_elems` elements of shared memory when they fit, else with
// the reduction scratch only. Returns nullptr or the CUDA error string.
template <typename Kernel, typename... Args>
const char* launch(Kernel kernel, int blocks, std::size_t on_chip_elems, void* stream,
                   Args... args_without_flag) {
  const std::size_t want = (kRed + on_chip_elems) * sizeof(float);
  const bool on_chip = want <= smem_limit();
  const std::size_t bytes = on_chip ? want : kRed * sizeof(float);
  if (bytes > 48 * 1024) {
    cudaError_t e = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(bytes));
    if (e != cudaSuccess) return cudaGetErrorString(e);
  }
  return error_string(launch_kernel(kernel, dim3(blocks), dim3(kThreads), bytes,
                                    static_cast<cudaStream_t>(stream), args_without_flag...,
                                    on_chip));
}

}  // namespace

const char* mlp_scan_fwd(const MlpScanFwdParams<float>& p, void* stream) {
  if (p.s.B == 0) return nullptr;
  const std::size_t ws = mlp_fwd_workspace(p.s);
  return launch(mlp_scan_fwd_kernel<float>, p.s.B, ws, stream, p, ws);
}

const char* mlp_scan_bwd(const MlpScanBwdParams<float>& p, void* stream) {
  if (p.s.B == 0) return nullptr;
  const std::size_t hot = MlpBwdScratch<float>::carve_hot(p.s, nullptr, nullptr);
  const std::size_t ws = mlp_bwd_workspace(p.s, p.ckpt_every);
  return launch(mlp_scan_bwd_kernel<float>, p.s.B, hot, stream, p, ws, hot);
}

const char* mlp_read_fwd(const MlpReadParams<float>& p, void* stream) {
  if (p.s.B == 0) return nullptr;
  const std::size_t ws = mlp_read_workspace(p.s);
  return launch(mlp_read_fwd_kernel<float>, p.s.B, ws, stream, p, ws);
}

const char* mlp_read_bwd(const MlpReadParams<float>& p, void* stream) {
  if (p.s.B == 0) return nullptr;
  const std::size_t ws = mlp_read_workspace(p.s);
  return launch(mlp_read_bwd_kernel<float>, p.s.B, ws, stream, p, ws);
}

}  // namespace cuda
}  // namespace memory_ext

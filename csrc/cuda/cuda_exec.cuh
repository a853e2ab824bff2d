// Thread-block execution policy for mlp_memory_core.h: one block per batch element, loops
// spread over the block's threads, __syncthreads() between phases. Torch-free.
#pragma once

#include <cuda_runtime.h>

namespace memory_ext {
namespace cuda {

constexpr int kThreads = 256;  // a multiple of 32 (sum() reduces per warp)

template <typename S>
struct CudaExec {
  S* red;  // shared scratch of kThreads / 32 elements for sum()

  __device__ __forceinline__ void sync() const { __syncthreads(); }
  __device__ __forceinline__ bool leader() const { return threadIdx.x == 0; }

  template <typename F>
  __device__ __forceinline__ void for_n(int n, F f) const {
    for (int i = threadIdx.x; i < n; i += blockDim.x) f(i);
  }

  template <typename T>
  __device__ __forceinline__ void copy(int n, const T* src, T* dst) const {
    for (int i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
  }

  template <typename T, typename F>
  __device__ T sum(int n, F f) const {
    T s = T(0);
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += f(i);
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffffu, s, o);
    __syncthreads();  // the previous sum() is done reading red
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = static_cast<S>(s);
    __syncthreads();
    T t = T(0);
    const int warps = blockDim.x >> 5;
    for (int w = 0; w < warps; ++w) t += static_cast<T>(red[w]);
    return t;
  }

  // C[m,n] = epi(m, n, a * sum_k A[m,k] B[n,k] + b C[m,n]). Each thread starts its k loop at a
  // different offset so the rows of B (stride K in shared memory) hit different banks.
  template <typename T, typename Epi>
  __device__ void gemm_nt(int M, int N, int K, const T* A, const T* B, T* C, T a, T b,
                          Epi epi) const {
    for (int idx = threadIdx.x; idx < M * N; idx += blockDim.x) {
      const int m = idx / N, n = idx - (idx / N) * N;
      const T* am = A + m * K;
      const T* bn = B + n * K;
      T s = T(0);
      int k = n % (K > 0 ? K : 1);
      for (int j = 0; j < K; ++j) {
        s += am[k] * bn[k];
        k = (k + 1 == K) ? 0 : k + 1;
      }
      const T v = a * s + (b != T(0) ? b * C[idx] : T(0));
      C[idx] = epi(m, n, v);
    }
  }

  // C[m,n] = a * sum_k A[k,m] B[k,n] + b Cin[m,n]  (Cin may be C)
  template <typename T>
  __device__ void gemm_tn_from(int M, int N, int K, const T* A, const T* B, const T* Cin, T* C,
                               T a, T b) const {
    for (int idx = threadIdx.x; idx < M * N; idx += blockDim.x) {
      const int m = idx / N, n = idx - (idx / N) * N;
      T s = T(0);
      for (int k = 0; k < K; ++k) s += A[k * M + m] * B[k * N + n];
      C[idx] = a * s + (b != T(0) ? b * Cin[idx] : T(0));
    }
  }

  // C[m,n] = a * sum_k A[k,m] B[k,n] + b C[m,n]
  template <typename T>
  __device__ void gemm_tn(int M, int N, int K, const T* A, const T* B, T* C, T a, T b) const {
    gemm_tn_from(M, N, K, A, B, C, C, a, b);
  }

  // C[m,n] = epi(m, n, a * sum_k A[m,k] B[k,n] + b C[m,n])
  template <typename T, typename Epi>
  __device__ void gemm_nn(int M, int N, int K, const T* A, const T* B, T* C, T a, T b,
                          Epi epi) const {
    for (int idx = threadIdx.x; idx < M * N; idx += blockDim.x) {
      const int m = idx / N, n = idx - (idx / N) * N;
      const T* am = A + m * K;
      T s = T(0);
      for (int k = 0; k < K; ++k) s += am[k] * B[k * N + n];
      const T v = a * s + (b != T(0) ? b * C[idx] : T(0));
      C[idx] = epi(m, n, v);
    }
  }
};

}  // namespace cuda
}  // namespace memory_ext

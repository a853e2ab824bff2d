// Single-thread execution policy for mlp_memory_core.h on the CPU. Inner loops run over
// contiguous memory and are marked `omp simd` (compiled with -fopenmp-simd), so they vectorise
// at whatever ISA the translation unit is built for (see CMakeLists.txt: default and AVX2+FMA).
#pragma once

namespace memory_ext {
namespace cpu {

struct CpuExec {
  void sync() const {}
  bool leader() const { return true; }

  template <typename F>
  void for_n(int n, F f) const {
#pragma omp simd
    for (int i = 0; i < n; ++i) f(i);
  }

  template <typename T, typename F>
  T sum(int n, F f) const {
    T s = T(0);
#pragma omp simd reduction(+ : s)
    for (int i = 0; i < n; ++i) s += f(i);
    return s;
  }

  // C[m,n] = epi(m, n, a * sum_k A[m,k] B[n,k] + b C[m,n]); four rows of B at a time.
  template <typename T, typename Epi>
  void gemm_nt(int M, int N, int K, const T* A, const T* B, T* C, T a, T b, Epi epi) const {
    for (int m = 0; m < M; ++m) {
      const T* am = A + static_cast<long>(m) * K;
      T* cm = C + static_cast<long>(m) * N;
      int n = 0;
      for (; n + 4 <= N; n += 4) {
        const T* b0 = B + static_cast<long>(n) * K;
        const T* b1 = b0 + K;
        const T* b2 = b1 + K;
        const T* b3 = b2 + K;
        T s0 = 0, s1 = 0, s2 = 0, s3 = 0;
#pragma omp simd reduction(+ : s0, s1, s2, s3)
        for (int k = 0; k < K; ++k) {
          const T x = am[k];
          s0 += x * b0[k];
          s1 += x * b1[k];
          s2 += x * b2[k];
          s3 += x * b3[k];
        }
        const T s[4] = {s0, s1, s2, s3};
        for (int j = 0; j < 4; ++j) {
          const T v = a * s[j] + (b != T(0) ? b * cm[n + j] : T(0));
          cm[n + j] = epi(m, n + j, v);
        }
      }
      for (; n < N; ++n) {
        const T* bn = B + static_cast<long>(n) * K;
        T s0 = 0;
#pragma omp simd reduction(+ : s0)
        for (int k = 0; k < K; ++k) s0 += am[k] * bn[k];
        const T v = a * s0 + (b != T(0) ? b * cm[n] : T(0));
        cm[n] = epi(m, n, v);
      }
    }
  }

  // C[m,n] = a * sum_k A[k,m] B[k,n] + b C[m,n]
  template <typename T>
  void gemm_tn(int M, int N, int K, const T* A, const T* B, T* C, T a, T b) const {
    for (int m = 0; m < M; ++m) {
      T* cm = C + static_cast<long>(m) * N;
      scale_row(cm, N, b);
      for (int k = 0; k < K; ++k) {
        const T x = a * A[static_cast<long>(k) * M + m];
        const T* bk = B + static_cast<long>(k) * N;
#pragma omp simd
        for (int n = 0; n < N; ++n) cm[n] += x * bk[n];
      }
    }
  }

  // C[m,n] = epi(m, n, a * sum_k A[m,k] B[k,n] + b C[m,n])
  template <typename T, typename Epi>
  void gemm_nn(int M, int N, int K, const T* A, const T* B, T* C, T a, T b, Epi epi) const {
    for (int m = 0; m < M; ++m) {
      T* cm = C + static_cast<long>(m) * N;
      const T* am = A + static_cast<long>(m) * K;
      scale_row(cm, N, b);
      for (int k = 0; k < K; ++k) {
        const T x = a * am[k];
        const T* bk = B + static_cast<long>(k) * N;
#pragma omp simd
        for (int n = 0; n < N; ++n) cm[n] += x * bk[n];
      }
#pragma omp simd
      for (int n = 0; n < N; ++n) cm[n] = epi(m, n, cm[n]);
    }
  }

 private:
  template <typename T>
  static void scale_row(T* c, int n, T b) {
    if (b == T(0)) {
#pragma omp simd
      for (int i = 0; i < n; ++i) c[i] = T(0);
    } else if (b != T(1)) {
#pragma omp simd
      for (int i = 0; i < n; ++i) c[i] *= b;
    }
  }
};

}  // namespace cpu
}  // namespace memory_ext

// Torch-free shared definitions: host/device macros, activation math, enums.
// Included by the CPU kernels (g++) and by the CUDA kernels (nvcc) alike.
#pragma once

#include <cmath>

#if defined(__CUDACC__)
#define ME_DEVICE __device__
#define ME_HD __host__ __device__
#define ME_INLINE __forceinline__
#else
#define ME_DEVICE
#define ME_HD
#define ME_INLINE inline
#endif

namespace memory_ext {

constexpr int kMaxLayers = 4;

// Layer loops whose pointer tables the device must index with constants are written
//   ME_UNROLL for (int l = 0; l < ME_LAYER_END(s.L); ++l) { if (l >= s.L) break; ... }
// With nvcc the bound is the constant kMaxLayers and the loop is unrolled fully, so the tables
// can live in registers instead of a per-thread stack frame (local memory); used where that
// costs few registers (the read kernels). The CPU compilers get the plain loop to s.L (the
// guard folds away), which keeps their code as it was. The CUDA emulator (tests/cuda_emulation)
// compiles the nvcc form, in every file of its binary alike.
#if defined(__CUDACC__) || defined(MEMORY_EXT_CUDA_EMULATION)
#define ME_UNROLL _Pragma("unroll")
#define ME_LAYER_END(n) kMaxLayers
#else
#define ME_UNROLL
#define ME_LAYER_END(n) (n)
#endif

enum class Activation : int { Tanh = 0, Sigmoid = 1, Relu = 2, Identity = 3 };
enum class WriteRule : int { Local = 0, Grad = 1 };

// The identity epilogue of an Exec policy's gemms: element form (CUDA) and row form (CPU).
struct NoEpilogue {
  template <typename T>
  ME_HD ME_INLINE T operator()(int, int, T v) const { return v; }
#if !defined(__CUDACC__)
  template <typename T>
  void row(int, T*, int) const {}
#endif
};

#if !defined(__CUDA_ARCH__)
// expm1 for the CPU kernels in plain arithmetic (no libm call), so loops over it vectorise:
// y = k ln2 + r, |r| <= ln2 / 2, expm1(y) = 2^k (expm1(r) + 1) - 1 with a Taylor polynomial
// for expm1(r) (degree 13 in double, 8 in float: below 1 ulp of the polynomial's range).
// Valid for y in [-709, 80] (double) / [-88, 40] (float), 2^k flushing to 0 at the low end:
// callers clamp. Returns 2^k and
// expm1(r) so that expm1(y) = 2^k expm1(r) + (2^k - 1) and exp(y) = 2^k expm1(r) + 2^k (the
// latter stays accurate where exp(y) is tiny and expm1(y) has rounded to -1).
template <typename T>
struct ExpParts {
  T two_k;
  T em1_r;
};

template <typename T>
inline ExpParts<T> host_exp_parts(T y) {
  constexpr bool dbl = sizeof(T) == 8;
  const T inv_ln2 = T(1.4426950408889634);
  const T ln2_hi = dbl ? T(6.93147180369123816490e-01) : T(0.693145751953125);
  const T ln2_lo = dbl ? T(1.90821492927058770002e-10) : T(1.428606765330187045e-06);
  const T magic = dbl ? T(6755399441055744.0) : T(12582912.0);  // 1.5 * 2^52 (double), 1.5 * 2^23 (float)
  const T t = y * inv_ln2 + magic;  // k = round(y / ln2) sits in the low mantissa bits of t
  const T kf = t - magic;
  const T r = (y - kf * ln2_hi) - kf * ln2_lo;
  // Horner from the highest term: double starts at 1/13!, float at 1/8!; the tail is shared.
  T p = T(1.0 / 40320.0);  // 1/8!
  if (dbl) {
    p = T(1.0 / 6227020800.0);
    p = p * r + T(1.0 / 479001600.0);
    p = p * r + T(1.0 / 39916800.0);
    p = p * r + T(1.0 / 3628800.0);
    p = p * r + T(1.0 / 362880.0);
    p = p * r + T(1.0 / 40320.0);
  }
  p = p * r + T(1.0 / 5040.0);
  p = p * r + T(1.0 / 720.0);
  p = p * r + T(1.0 / 120.0);
  p = p * r + T(1.0 / 24.0);
  p = p * r + T(1.0 / 6.0);
  p = p * r + T(0.5);
  const T em1_r = r + r * r * p;  // expm1(r)
  // 2^k from the bits of t (integer adds and shifts only, so it vectorises)
  T two_k;
  if constexpr (sizeof(T) == 8) {
    long long bits;
    __builtin_memcpy(&bits, &t, 8);
    bits = (bits - 0x4338000000000000LL + 1023) << 52;
    __builtin_memcpy(&two_k, &bits, 8);
  } else {
    int bits;
    __builtin_memcpy(&bits, &t, 4);
    bits = (bits - 0x4B400000 + 127) << 23;
    __builtin_memcpy(&two_k, &bits, 4);
  }
  return {two_k, em1_r};
}

template <typename T>
inline T host_expm1(T y) {
  const ExpParts<T> e = host_exp_parts(y);
  return e.two_k * e.em1_r + (e.two_k - T(1));
}

template <typename T>
inline T host_exp(T y) {
  const ExpParts<T> e = host_exp_parts(y);
  return e.two_k * e.em1_r + e.two_k;
}
#endif

template <typename T>
ME_HD ME_INLINE T me_tanh(T x) {
#if defined(__CUDA_ARCH__)
  return tanh(x);
#else
  // tanh(x) = expm1(2x) / (expm1(2x) + 2); |tanh| rounds to 1 beyond the clamp.
  // The selects keep x when the comparison is false, so a NaN passes through (tanh(NaN) = NaN).
  const T lim = sizeof(T) == 8 ? T(20) : T(10);
  T c = x > lim ? lim : x;  // two plain selects (a nested one would become branches)
  c = c < -lim ? -lim : c;
  const T e = host_expm1(T(2) * c);
  return e / (e + T(2));
#endif
}

template <typename T>
ME_HD ME_INLINE T me_sigmoid(T x) {
#if defined(__CUDA_ARCH__)
  return T(1) / (T(1) + exp(-x));
#else
  // With e = exp(-|x|) <= 1: sigmoid(x) = 1 / (1 + e) for x >= 0, e / (1 + e) for x < 0.
  // |x| is clamped where exp(-|x|) is below the smallest normal number (there 2^k is 0).
  const T lim = sizeof(T) == 8 ? T(709) : T(88);
  T a = x < T(0) ? x : -x;  // -|x| (NaN stays NaN)
  a = a < -lim ? -lim : a;  // keeps a NaN: sigmoid(NaN) = NaN
  const T e = host_exp(a);
  const T num = x < T(0) ? e : T(1);
  return num / (T(1) + e);
#endif
}

// Compile-time-activation forms, for loops that must vectorise (CPU kernels).
template <Activation A, typename T>
ME_HD ME_INLINE T act_forward_t(T x) {
  if constexpr (A == Activation::Tanh) return me_tanh(x);
  else if constexpr (A == Activation::Sigmoid) return me_sigmoid(x);
  else if constexpr (A == Activation::Relu) return x < T(0) ? T(0) : x;  // relu(NaN) = NaN
  else return x;
}
template <Activation A, typename T>
ME_HD ME_INLINE T act_grad_t(T y) {
  if constexpr (A == Activation::Tanh) return T(1) - y * y;
  else if constexpr (A == Activation::Sigmoid) return y * (T(1) - y);
  else if constexpr (A == Activation::Relu) return y <= T(0) ? T(0) : T(1);  // NaN: passes, as torch's
  else return T(1);
}

// act(x) for the hidden layers (spec 1.1).
template <typename T>
ME_HD ME_INLINE T act_forward(Activation a, T x) {
  switch (a) {
    case Activation::Tanh: return me_tanh(x);
    case Activation::Sigmoid: return me_sigmoid(x);
    case Activation::Relu: return x < T(0) ? T(0) : x;
    default: return x;
  }
}

// act'(p) written in terms of the output y = act(p).
template <typename T>
ME_HD ME_INLINE T act_grad(Activation a, T y) {
  switch (a) {
    case Activation::Tanh: return T(1) - y * y;
    case Activation::Sigmoid: return y * (T(1) - y);
    case Activation::Relu: return y <= T(0) ? T(0) : T(1);
    default: return T(1);
  }
}

// act''(p) written in terms of the output y = act(p) (spec 1.3).
template <typename T>
ME_HD ME_INLINE T act_grad2(Activation a, T y) {
  switch (a) {
    case Activation::Tanh: return T(-2) * y * (T(1) - y * y);
    case Activation::Sigmoid: return y * (T(1) - y) * (T(1) - T(2) * y);
    default: return T(0);
  }
}

}  // namespace memory_ext

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

enum class Activation : int { Tanh = 0, Sigmoid = 1, Relu = 2, Identity = 3 };
enum class WriteRule : int { Local = 0, Grad = 1 };

template <typename T>
ME_HD ME_INLINE T me_tanh(T x) {
#if defined(__CUDA_ARCH__)
  return tanh(x);
#else
  return std::tanh(x);
#endif
}

template <typename T>
ME_HD ME_INLINE T me_exp(T x) {
#if defined(__CUDA_ARCH__)
  return exp(x);
#else
  return std::exp(x);
#endif
}

// act(x) for the hidden layers (spec 1.1).
template <typename T>
ME_HD ME_INLINE T act_forward(Activation a, T x) {
  switch (a) {
    case Activation::Tanh: return me_tanh(x);
    case Activation::Sigmoid: return T(1) / (T(1) + me_exp(-x));
    case Activation::Relu: return x > T(0) ? x : T(0);
    default: return x;
  }
}

// act'(p) written in terms of the output y = act(p).
template <typename T>
ME_HD ME_INLINE T act_grad(Activation a, T y) {
  switch (a) {
    case Activation::Tanh: return T(1) - y * y;
    case Activation::Sigmoid: return y * (T(1) - y);
    case Activation::Relu: return y > T(0) ? T(1) : T(0);
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

// What every CUDA backend (csrc/cuda/<family>_cuda.cpp) shares: the leading fields of its backend
// struct, its registration type (see csrc/ops/backend.h), and the launch-error check. Host code
// against the CUDA torch headers; built only when torch has CUDA.
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>

#include "../ops/backend.h"

namespace memory_ext {
namespace cuda {

inline void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

// name, supports_f64, current_stream of every CUDA backend struct (the kernels are float32 only)
inline constexpr Backend kCuda{"CUDA", false, &current_stream};

// Be of <Family>Ops<Be>: the backend struct `be`, run with the guarded tensor's device current.
template <const auto& be>
struct OnCuda {
  static constexpr const auto& get() { return be; }
  static c10::cuda::OptionalCUDAGuard guard(const at::Tensor& t) {
    return c10::cuda::OptionalCUDAGuard(t.device());
  }
};

// A launch function's result (*_launch.h: nullptr or the CUDA error string) as a TORCH_CHECK.
inline void check_launch(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, "memory_ext CUDA kernel ", what, " failed: ", err);
}

// The f64 entry of a CUDA backend struct's PerDtype pairs (the checks refuse float64 before it
// is reached).
template <typename P>
void no_f64(const P&, void*) {
  TORCH_CHECK(false, "memory_ext: float64 is not supported on CUDA, use float32");
}

}  // namespace cuda
}  // namespace memory_ext

// The one registration every CUDA backend file ends with, outside any namespace: the family's
// <Family>Ops template over this file's backend struct kBackend (memory_ext::cuda, anonymous).
#define MEMORY_EXT_REGISTER_CUDA_BACKEND(Ops)                                         \
  TORCH_LIBRARY_IMPL(memory_ext, CUDA, m) {                                          \
    memory_ext::Ops<memory_ext::cuda::OnCuda<memory_ext::cuda::kBackend>>::register_all(m); \
  }

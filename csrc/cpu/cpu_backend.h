// What every CPU backend (csrc/cpu/<family>.cpp) shares: the leading fields of its backend struct
// and its registration type (see csrc/ops/backend.h).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "../ops/backend.h"

namespace memory_ext {
namespace cpu {

inline void* no_stream() { return nullptr; }

// name, supports_f64, current_stream of every CPU backend struct
inline constexpr Backend kCpu{"CPU", true, &no_stream};

// Be of <Family>Ops<Be>: the backend struct `be`, no device guard.
template <const auto& be>
struct OnCpu {
  static constexpr const auto& get() { return be; }
  static int guard(const at::Tensor&) { return 0; }
};

}  // namespace cpu
}  // namespace memory_ext

// The one registration every CPU backend file ends with, outside any namespace: the family's
// <Family>Ops template over this file's backend struct kBackend (memory_ext::cpu, anonymous).
#define MEMORY_EXT_REGISTER_CPU_BACKEND(Ops)                                         \
  TORCH_LIBRARY_IMPL(memory_ext, CPU, m) {                                          \
    memory_ext::Ops<memory_ext::cpu::OnCpu<memory_ext::cpu::kBackend>>::register_all(m); \
  }

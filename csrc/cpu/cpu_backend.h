// What every CPU backend (csrc/cpu/<family>.cpp) shares: the leading fields of its backend struct
// and its registration type (see csrc/ops/backend.h).
#pragma once

#include <ATen/ATen.h>

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

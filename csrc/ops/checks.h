// Argument checks shared by the host wrappers of the ops.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>
#include <limits>

namespace memory_ext {

// TORCH_CHECK that t has exactly the sizes `want`, naming the argument and its labels, e.g.
// "k must be [B, H, K] = [2, 4, 8], got [2, 4, 7]".
inline void check_shape(const at::Tensor& t, const char* name, const char* labels,
                        std::initializer_list<int64_t> want) {
  bool ok = t.dim() == static_cast<int64_t>(want.size());
  size_t i = 0;
  for (int64_t w : want) ok = ok && t.size(i++) == w;
  TORCH_CHECK(ok, name, " must be ", labels, " = ", at::IntArrayRef(want), ", got ", t.sizes());
}

// TORCH_CHECK that a size the kernels hold in an `int` fits one, before it is narrowed, e.g.
// "write_keys: T = 2147483648 is too large (the kernels use 32-bit ints, at most 2147483647)".
inline void check_fits_int(int64_t v, const char* name, const char* what) {
  TORCH_CHECK(v <= std::numeric_limits<int>::max(), name, ": ", what, " = ", v,
              " is too large (the kernels use 32-bit ints, at most ",
              std::numeric_limits<int>::max(), ")");
}

}  // namespace memory_ext

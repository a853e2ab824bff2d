// Argument checks shared by the host wrappers of the ops.
#pragma once

#include <ATen/ATen.h>

#include <initializer_list>

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

}  // namespace memory_ext

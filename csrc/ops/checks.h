// Argument checks shared by the host glue of every op family (csrc/ops/<family>.cpp): shapes,
// dtypes, devices, strides and int sizes, each error naming the argument, what it must be and
// what it is. Messages are formatted only when a check fails.
#pragma once

#include <ATen/ATen.h>

#include <cstdint>
#include <limits>
#include <optional>
#include <ostream>
#include <sstream>
#include <string>
#include <type_traits>

#include "backend.h"

namespace memory_ext {

// One dimension of an expected shape: its label and size; kAny: any size (printed as the label).
constexpr int64_t kAny = std::numeric_limits<int64_t>::min();
struct Dim {
  const char* label;  // static strings: nothing is built unless a check fails
  int64_t size;
};

// An argument's name, "weights" or "weights[1]", formatted only when an error is raised.
struct Name {
  const char* base;
  int64_t index = -1;
  Name(const char* b) : base(b) {}  // NOLINT(google-explicit-constructor)
  Name(const char* b, int64_t i) : base(b), index(i) {}
};
inline std::ostream& operator<<(std::ostream& os, const Name& n) {
  os << n.base;
  if (n.index >= 0) os << "[" << n.index << "]";
  return os;
}

// "int64", "float32", ... (the names the Python API uses); others as torch prints them.
inline const char* dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kLong: return "int64";
    case at::kFloat: return "float32";
    case at::kDouble: return "float64";
    case at::kBool: return "bool";
    default: return c10::toString(t);
  }
}

inline bool has_shape(const at::Tensor& t, c10::ArrayRef<Dim> dims) {
  if (t.dim() != static_cast<int64_t>(dims.size())) return false;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i].size != kAny && t.size(i) != dims[i].size) return false;
  }
  return true;
}

// "[B, H, n_0] = [4, 2, 64]", "[B, N, d] = [3, N, 4]", or "[B, H, K]" where the sizes add nothing
inline std::string shape_str(c10::ArrayRef<Dim> dims) {
  std::ostringstream labels, sizes;
  for (size_t i = 0; i < dims.size(); ++i) {
    labels << (i ? ", " : "[") << dims[i].label;
    sizes << (i ? ", " : "[");
    if (dims[i].size == kAny) sizes << dims[i].label; else sizes << dims[i].size;
  }
  labels << (dims.empty() ? "[]" : "]");
  sizes << (dims.empty() ? "[]" : "]");
  return labels.str() == sizes.str() ? labels.str() : labels.str() + " = " + sizes.str();
}

// TORCH_CHECK that t has the shape `dims` (and the dtype, when given), e.g.
// "k must be [B, H, K] = [2, 4, 8], got [2, 4, 7]", "q must be [B, H, K], got [2, 4]",
// "count must be int64 [B] = [3], got Long [2]".
inline void check_shape(const at::Tensor& t, const Name& name, c10::ArrayRef<Dim> dims,
                        std::optional<at::ScalarType> dtype = std::nullopt) {
  const bool ok = has_shape(t, dims) && (!dtype || t.scalar_type() == *dtype);
  if (ok) return;
  if (dtype) {
    TORCH_CHECK(false, name, " must be ", dtype_name(*dtype), " ", shape_str(dims), ", got ",
                t.scalar_type(), " ", t.sizes());
  }
  TORCH_CHECK(false, name, " must be ", shape_str(dims), ", got ", t.sizes());
}

// "C must have M's shape [3, 5, 4], got [3, 5, 3]"
inline void check_shape_like(const at::Tensor& t, const Name& name, const at::Tensor& ref,
                             const char* ref_name) {
  TORCH_CHECK(t.sizes() == ref.sizes(), name, " must have ", ref_name, "'s shape ", ref.sizes(),
              ", got ", t.sizes());
}

// "beta must have dtype Float like q, got Double"
inline void check_dtype_like(const at::Tensor& t, const Name& name, const at::Tensor& ref,
                             const char* ref_name) {
  TORCH_CHECK(t.scalar_type() == ref.scalar_type(), name, " must have dtype ", ref.scalar_type(),
              " like ", ref_name, ", got ", t.scalar_type());
}

// "keys must be on cuda:0 like slots, got cpu"
inline void check_device_like(const at::Tensor& t, const Name& name, const at::Tensor& ref,
                              const char* ref_name) {
  TORCH_CHECK(t.device() == ref.device(), name, " must be on ", ref.device(), " like ", ref_name,
              ", got ", t.device());
}

// Both: t has ref's dtype and is on ref's device.
inline void check_like(const at::Tensor& t, const Name& name, const at::Tensor& ref,
                       const char* ref_name) {
  check_dtype_like(t, name, ref, ref_name);
  check_device_like(t, name, ref, ref_name);
}

// A floating dtype the backend has kernels for: "q must be float32 or float64, got Half",
// "q: float64 is not supported on CUDA, use float32".
inline void check_float(const Backend& be, const at::Tensor& t, const Name& name) {
  const auto dt = t.scalar_type();
  TORCH_CHECK(dt == at::kFloat || dt == at::kDouble, name, " must be float32 or float64, got ",
              dt);
  TORCH_CHECK(dt == at::kFloat || be.supports_f64, name, ": float64 is not supported on ",
              be.name, ", use float32");
}

// "state must be contiguous (it is updated in place), got strides [...]"
inline void check_contiguous(const at::Tensor& t, const Name& name, const char* why) {
  TORCH_CHECK(t.is_contiguous(), name, " must be contiguous (", why, "), got strides ",
              t.strides());
}

// TORCH_CHECK that a size the kernels hold in an `int` fits one, before it is narrowed, e.g.
// "write_keys: T = 2147483648 is too large (the kernels use 32-bit ints, at most 2147483647)".
inline void check_fits_int(int64_t v, const Name& name, const char* what) {
  TORCH_CHECK(v <= std::numeric_limits<int>::max(), name, ": ", what, " = ", v,
              " is too large (the kernels use 32-bit ints, at most ",
              std::numeric_limits<int>::max(), ")");
}

// The delta rule's q [A, C, K], k like q, v [A, C, V], beta [A, C], with the caller's labels for
// A and C ("B", "H" for one decoding step; "BH", "T" for the chunk form). Returns {A, C, K, V}.
struct QkvSizes {
  int64_t a, c, K, V;
};
inline QkvSizes check_qkv_beta(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
                               const at::Tensor& beta, const char* a, const char* c) {
  check_shape(q, "q", {{a, kAny}, {c, kAny}, {"K", kAny}});
  check_shape(v, "v", {{a, kAny}, {c, kAny}, {"V", kAny}});
  const QkvSizes s{q.size(0), q.size(1), q.size(2), v.size(2)};
  check_shape(k, "k", {{a, s.a}, {c, s.c}, {"K", s.K}});
  check_shape(v, "v", {{a, s.a}, {c, s.c}, {"V", s.V}});
  check_shape(beta, "beta", {{a, s.a}, {c, s.c}});
  return s;
}

// Points kernel params at tensors' data: set_data(p.q, qc, p.out, out, ...) sets each field to its
// tensor's data_ptr, of the field's element type (data_ptr checks the dtype), or to nullptr where
// the tensor is undefined (an absent optional).
template <typename T, typename... More>
void set_data(T*& field, const at::Tensor& t, More&&... more) {
  field = t.defined() ? t.data_ptr<std::remove_const_t<T>>() : nullptr;
  if constexpr (sizeof...(more) > 0) set_data(more...);
}

}  // namespace memory_ext

// Host side of the slot memory ops (spec section 3): checks, allocation, backend dispatch.
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "memory_ext/slot_core.h"

namespace memory_ext {

struct SlotBackend {
  const char* name;
  bool supports_f64;
  void (*read_fwd_f32)(const SlotReadParams<float>&);
  void (*read_fwd_f64)(const SlotReadParams<double>&);
  void (*read_bwd_f32)(const SlotReadParams<float>&);
  void (*read_bwd_f64)(const SlotReadParams<double>&);
  void (*hard_fwd_f32)(const SlotHardParams<float>&);
  void (*hard_fwd_f64)(const SlotHardParams<double>&);
  void (*hard_bwd_f32)(const SlotHardParams<float>&);
  void (*hard_bwd_f64)(const SlotHardParams<double>&);
};

// -> (u [B, d], attention [B, K, N], saved u^{k-1} [B, K, d])
std::tuple<at::Tensor, at::Tensor, at::Tensor> slot_read_impl(
    const SlotBackend& be, const at::Tensor& query, const at::Tensor& M, const at::Tensor& C,
    const at::Tensor& count, int64_t hops, const c10::optional<at::Tensor>& R);
// -> (dq, dM, dC, dR ([d, d], or [0] without R))
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> slot_read_bwd_impl(
    const SlotBackend& be, const at::Tensor& grad_u, const c10::optional<at::Tensor>& grad_attn,
    const at::Tensor& M, const at::Tensor& C, const at::Tensor& count,
    const c10::optional<at::Tensor>& R, const at::Tensor& saved_u, const at::Tensor& attn);
// -> (indices [B, K] int64, scores [B, K, N])
std::tuple<at::Tensor, at::Tensor> slot_read_hard_impl(const SlotBackend& be,
                                                       const at::Tensor& query,
                                                       const at::Tensor& M, const at::Tensor& Q,
                                                       const at::Tensor& count, int64_t hops);
// -> (dq, dM, dQ)
std::tuple<at::Tensor, at::Tensor, at::Tensor> slot_read_hard_bwd_impl(
    const SlotBackend& be, const at::Tensor& grad_scores, const at::Tensor& query,
    const at::Tensor& M, const at::Tensor& Q, const at::Tensor& count, const at::Tensor& indices);

}  // namespace memory_ext

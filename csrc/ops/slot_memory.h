// Host side of the slot memory ops (spec section 3): checks, allocation, backend dispatch.
// slot_write_ is one ATen implementation for every device (slot_memory.cpp). Autograd of
// slot_read and slot_read_hard: Python (torch.library.register_autograd).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "backend.h"
#include "memory_ext/slot_memory_core.h"

namespace memory_ext {

struct SlotMemoryBackend : Backend {
  PerDtype<SlotReadParams, void*> read_fwd, read_bwd;
  PerDtype<SlotHardParams, void*> hard_fwd, hard_bwd;
};

// -> (u [B, d], attention [B, K, N], saved u^{k-1} [B, K, d])
std::tuple<at::Tensor, at::Tensor, at::Tensor> slot_read_impl(
    const SlotMemoryBackend& be, const at::Tensor& query, const at::Tensor& M, const at::Tensor& C,
    const at::Tensor& count, int64_t hops, const c10::optional<at::Tensor>& R);
// -> (dq, dM, dC, dR ([d, d], or [0] without R))
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> slot_read_bwd_impl(
    const SlotMemoryBackend& be, const at::Tensor& grad_u,
    const c10::optional<at::Tensor>& grad_attn, const at::Tensor& M, const at::Tensor& C,
    const at::Tensor& count, const c10::optional<at::Tensor>& R, const at::Tensor& saved_u,
    const at::Tensor& attn);
// -> (indices [B, K] int64, scores [B, K, N])
std::tuple<at::Tensor, at::Tensor> slot_read_hard_impl(const SlotMemoryBackend& be,
                                                       const at::Tensor& query,
                                                       const at::Tensor& M, const at::Tensor& Q,
                                                       const at::Tensor& count, int64_t hops);
// -> (dq, dM, dQ)
std::tuple<at::Tensor, at::Tensor, at::Tensor> slot_read_hard_bwd_impl(
    const SlotMemoryBackend& be, const at::Tensor& grad_scores, const at::Tensor& query,
    const at::Tensor& M, const at::Tensor& Q, const at::Tensor& count, const at::Tensor& indices);

// The registration of the reads for one dispatch key (see backend.h for Be).
template <typename Be>
struct SlotMemoryOps {
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> read(
      const at::Tensor& q, const at::Tensor& M, const at::Tensor& C, const at::Tensor& n,
      int64_t hops, const c10::optional<at::Tensor>& R) {
    [[maybe_unused]] auto device_guard = Be::guard(q);
    return slot_read_impl(Be::get(), q, M, C, n, hops, R);
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> read_bwd(
      const at::Tensor& gu, const c10::optional<at::Tensor>& ga, const at::Tensor& M,
      const at::Tensor& C, const at::Tensor& n, const c10::optional<at::Tensor>& R,
      const at::Tensor& su, const at::Tensor& a) {
    [[maybe_unused]] auto device_guard = Be::guard(gu);
    return slot_read_bwd_impl(Be::get(), gu, ga, M, C, n, R, su, a);
  }
  static std::tuple<at::Tensor, at::Tensor> hard(const at::Tensor& q, const at::Tensor& M,
                                                 const at::Tensor& Q, const at::Tensor& n,
                                                 int64_t hops) {
    [[maybe_unused]] auto device_guard = Be::guard(q);
    return slot_read_hard_impl(Be::get(), q, M, Q, n, hops);
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> hard_bwd(
      const at::Tensor& gs, const at::Tensor& q, const at::Tensor& M, const at::Tensor& Q,
      const at::Tensor& n, const at::Tensor& i) {
    [[maybe_unused]] auto device_guard = Be::guard(q);
    return slot_read_hard_bwd_impl(Be::get(), gs, q, M, Q, n, i);
  }
  static void register_all(torch::Library& m) {
    m.impl("slot_read", TORCH_FN(read));
    m.impl("_slot_read_bwd", TORCH_FN(read_bwd));
    m.impl("slot_read_hard", TORCH_FN(hard));
    m.impl("_slot_read_hard_bwd", TORCH_FN(hard_bwd));
  }
};

}  // namespace memory_ext

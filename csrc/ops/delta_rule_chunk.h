// Host side of the chunkwise delta rule ops (delta_rule_chunk, _delta_rule_chunk_bwd):
// validation, output allocation and backend dispatch (CPU; CUDA has no chunk kernel yet).
// Autograd: Python (torch.library.register_autograd of memory_ext::delta_rule_chunk).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <tuple>

#include "backend.h"
#include "memory_ext/delta_rule_chunk_core.h"

namespace memory_ext {

struct DeltaRuleChunkBackend : Backend {
  PerDtype<DeltaRuleChunkParams, void*> fwd, bwd;
};

// q, k [BH, T, K]; v [BH, T, V]; beta [BH, T]; initial_state [BH, K, V] or undefined.
// Returns (o [BH, T, V], final state [BH, K, V], chunk-start states [BH, n, K, V] or [0]).
std::tuple<at::Tensor, at::Tensor, at::Tensor> delta_rule_chunk_impl(
    const DeltaRuleChunkBackend& be, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& beta, const c10::optional<at::Tensor>& initial_state, double scale,
    int64_t chunk_size, bool save_states);

// Returns (dq, dk, dv, dbeta, d initial_state).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> delta_rule_chunk_bwd_impl(
    const DeltaRuleChunkBackend& be, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& beta, const at::Tensor& states, const at::Tensor& grad_o,
    const c10::optional<at::Tensor>& grad_final, double scale, int64_t chunk_size);

// The registration of the ops for one dispatch key (see backend.h for Be).
template <typename Be>
struct DeltaRuleChunkOps {
  static std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd(
      const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& b,
      const c10::optional<at::Tensor>& s0, double scale, int64_t chunk, bool save) {
    [[maybe_unused]] auto device_guard = Be::guard(q);
    return delta_rule_chunk_impl(Be::get(), q, k, v, b, s0, scale, chunk, save);
  }
  static std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> bwd(
      const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& b,
      const at::Tensor& states, const at::Tensor& go, const c10::optional<at::Tensor>& gS,
      double scale, int64_t chunk) {
    [[maybe_unused]] auto device_guard = Be::guard(q);
    return delta_rule_chunk_bwd_impl(Be::get(), q, k, v, b, states, go, gS, scale, chunk);
  }
  static void register_all(torch::Library& m) {
    m.impl("delta_rule_chunk", TORCH_FN(fwd));
    m.impl("_delta_rule_chunk_bwd", TORCH_FN(bwd));
  }
};

}  // namespace memory_ext

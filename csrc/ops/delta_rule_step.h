// Host side of delta_rule_step_: validation and backend dispatch (CPU / CUDA). No autograd: a
// decoding op, state and out written in place (memory_ext.delta_rule trains).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include "backend.h"
#include "memory_ext/delta_rule_step_core.h"

namespace memory_ext {

// The kernels' params: inputs and state of one dtype.
template <typename T>
using DeltaRuleStepKernelParams = DeltaRuleStepParams<T, T>;

struct DeltaRuleStepBackend : Backend {
  PerDtype<DeltaRuleStepKernelParams, void*> step;
};

// state [B, H, K, V] and out [B, H, V] are written in place.
void delta_rule_step_impl(const DeltaRuleStepBackend& be, at::Tensor& state, const at::Tensor& q,
                          const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                          double scale, at::Tensor& out);

// The registration of the op for one dispatch key (see backend.h for Be).
template <typename Be>
struct DeltaRuleStepOps {
  static void step(at::Tensor& state, const at::Tensor& q, const at::Tensor& k,
                   const at::Tensor& v, const at::Tensor& beta, double scale, at::Tensor& out) {
    [[maybe_unused]] auto device_guard = Be::guard(q);
    delta_rule_step_impl(Be::get(), state, q, k, v, beta, scale, out);
  }
  static void register_all(torch::Library& m) { m.impl("delta_rule_step_", TORCH_FN(step)); }
};

}  // namespace memory_ext

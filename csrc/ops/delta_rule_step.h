// Host side of delta_rule_step_: validation and backend dispatch (CPU / CUDA).
#pragma once

#include <ATen/ATen.h>

#include "memory_ext/delta_rule_step_core.h"

namespace memory_ext {

struct DeltaStepBackend {
  const char* name;
  bool supports_f64;
  void (*f32)(const DeltaStepParams<float, float>&, void* stream);
  void (*f64)(const DeltaStepParams<double, double>&, void* stream);
  void* (*current_stream)();
};

// state [B, H, K, V] and out [B, H, V] are written in place.
void delta_rule_step_impl(const DeltaStepBackend& be, at::Tensor& state, const at::Tensor& q,
                          const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                          double scale, at::Tensor& out);

}  // namespace memory_ext

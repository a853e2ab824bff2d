// Host side of the chunkwise delta rule ops (delta_rule_chunk, _delta_rule_chunk_bwd):
// validation, output allocation and backend dispatch (CPU; CUDA has no chunk kernel yet).
#pragma once

#include <ATen/ATen.h>

#include <tuple>

#include "memory_ext/delta_chunk_core.h"

namespace memory_ext {

struct DeltaChunkBackend {
  const char* name;
  bool supports_f64;
  void (*fwd_f32)(const DeltaChunkParams<float>&, void* stream);
  void (*fwd_f64)(const DeltaChunkParams<double>&, void* stream);
  void (*bwd_f32)(const DeltaChunkParams<float>&, void* stream);
  void (*bwd_f64)(const DeltaChunkParams<double>&, void* stream);
  void* (*current_stream)();
};

// q, k [BH, T, K]; v [BH, T, V]; beta [BH, T]; initial_state [BH, K, V] or undefined.
// Returns (o [BH, T, V], final state [BH, K, V], chunk-start states [BH, n, K, V] or [0]).
std::tuple<at::Tensor, at::Tensor, at::Tensor> delta_rule_chunk_impl(
    const DeltaChunkBackend& be, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& beta, const c10::optional<at::Tensor>& initial_state, double scale,
    int64_t chunk_size, bool save_states);

// Returns (dq, dk, dv, dbeta, d initial_state).
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> delta_rule_chunk_bwd_impl(
    const DeltaChunkBackend& be, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& beta, const at::Tensor& states, const at::Tensor& grad_o,
    const c10::optional<at::Tensor>& grad_final, double scale, int64_t chunk_size);

}  // namespace memory_ext

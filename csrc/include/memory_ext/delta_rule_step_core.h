// Torch-free single-token delta rule (spec 2) for one (batch, head) pair, state in place:
//   u = v - S^T k;  S += beta k u^T;  o = S^T (scale q)
// Every column j of S [K, V] is independent given k and q, so `E` spreads columns over threads
// (no barrier needed inside). T is the input type, S is always float (spec: state in fp32) or
// double for double inputs.
#pragma once

#include "memory_ext/common.h"

namespace memory_ext {

template <typename T, typename S>
struct DeltaRuleStepParams {
  int B = 0, H = 0, K = 0, V = 0;
  S scale = S(1);
  const T* q = nullptr;     // [B, H, K]
  const T* k = nullptr;     // [B, H, K]
  const T* v = nullptr;     // [B, H, V]
  const T* beta = nullptr;  // [B, H]
  S* state = nullptr;       // [B, H, K, V], updated in place
  T* out = nullptr;         // [B, H, V]
};

// Column j of the state of pair bh = b * H + h.
template <typename T, typename S>
ME_HD ME_INLINE void delta_rule_step_column(const DeltaRuleStepParams<T, S>& p, int bh, int j) {
  const T* q = p.q + static_cast<long>(bh) * p.K;
  const T* k = p.k + static_cast<long>(bh) * p.K;
  S* st = p.state + static_cast<long>(bh) * p.K * p.V;
  S kS = S(0);
  for (int i = 0; i < p.K; ++i) kS += static_cast<S>(k[i]) * st[static_cast<long>(i) * p.V + j];
  const S u = static_cast<S>(p.v[static_cast<long>(bh) * p.V + j]) - kS;
  const S bu = static_cast<S>(p.beta[bh]) * u;
  S o = S(0);
  for (int i = 0; i < p.K; ++i) {
    S& s = st[static_cast<long>(i) * p.V + j];
    s += static_cast<S>(k[i]) * bu;
    o += static_cast<S>(q[i]) * s;
  }
  p.out[static_cast<long>(bh) * p.V + j] = static_cast<T>(p.scale * o);
}

}  // namespace memory_ext

// CPU kernel of delta_rule_step_: parallel over (batch, head); row-wise (vectorised over V)
// passes over the state: kS = k^T S, then S += beta k (v - kS)^T and o = S^T q in one pass.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <vector>

#include "../ops/delta_rule_step.h"
#include "cpu_backend.h"

namespace memory_ext {
namespace cpu {
namespace {

template <typename T>
void step_rows(const DeltaRuleStepParams<T, T>& p, int bh, T* buf /* [2 V] */) {
  const int K = p.K, V = p.V;
  const T* q = p.q + static_cast<long>(bh) * K;
  const T* k = p.k + static_cast<long>(bh) * K;
  const T* v = p.v + static_cast<long>(bh) * V;
  T* st = p.state + static_cast<long>(bh) * K * V;
  T* bu = buf;
  T* o = buf + V;
#pragma omp simd
  for (int j = 0; j < V; ++j) bu[j] = T(0);
  for (int i = 0; i < K; ++i) {
    const T ki = k[i];
    const T* row = st + static_cast<long>(i) * V;
#pragma omp simd
    for (int j = 0; j < V; ++j) bu[j] += ki * row[j];
  }
  const T b = p.beta[bh];
#pragma omp simd
  for (int j = 0; j < V; ++j) {
    bu[j] = b * (v[j] - bu[j]);
    o[j] = T(0);
  }
  for (int i = 0; i < K; ++i) {
    const T ki = k[i], qi = q[i];
    T* row = st + static_cast<long>(i) * V;
#pragma omp simd
    for (int j = 0; j < V; ++j) {
      row[j] += ki * bu[j];
      o[j] += qi * row[j];
    }
  }
  T* out = p.out + static_cast<long>(bh) * V;
#pragma omp simd
  for (int j = 0; j < V; ++j) out[j] = p.scale * o[j];
}

template <typename T>
void run(const DeltaRuleStepParams<T, T>& p, void*) {
  const int64_t n = static_cast<int64_t>(p.B) * p.H;
  // a state pair is K * V values: spread pairs over the threads unless the whole state is small
  const int64_t per_pair = static_cast<int64_t>(p.K) * p.V;
  const int64_t grain = n * per_pair < (1 << 15) ? n : 1;
  at::parallel_for(0, n, grain, [&](int64_t b0, int64_t b1) {
    std::vector<T> buf(2 * static_cast<size_t>(p.V));
    for (int64_t bh = b0; bh < b1; ++bh) step_rows(p, static_cast<int>(bh), buf.data());
  });
}

constexpr DeltaRuleStepBackend kBackend{kCpu, {&run<float>, &run<double>}};

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(DeltaRuleStepOps)

// CPU backend of the chunkwise delta rule: parallel over heads (at::parallel_for), each thread
// running the ISA-specific kernels of delta_rule_chunk_kernels.cpp. Registers the CPU impls.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../ops/delta_rule_chunk.h"
#include "cpu_backend.h"
#include "cpu_isa.h"
#include "delta_rule_chunk_kernels.h"

namespace memory_ext {
namespace cpu {

const DeltaRuleChunkCpuKernels& delta_rule_chunk_kernels() {
#if defined(MEMORY_EXT_HAVE_AVX2)
  if (use_avx2_kernels()) return delta_rule_chunk_kernels_avx2();
#endif
  return delta_rule_chunk_kernels_base();
}

namespace {

template <typename T, typename Fn>
void over_heads(const DeltaRuleChunkParams<T>& p, Fn fn) {
  if (p.BH <= 1) {
    fn(p, 0, p.BH);
    return;
  }
  at::parallel_for(0, p.BH, 1, [&](int64_t h0, int64_t h1) {
    fn(p, static_cast<int>(h0), static_cast<int>(h1));
  });
}

constexpr DeltaRuleChunkBackend kBackend{
    kCpu,
    [](const DeltaRuleChunkParams<float>& p, void*) { over_heads(p, delta_rule_chunk_kernels().fwd_f32); },
    [](const DeltaRuleChunkParams<double>& p, void*) { over_heads(p, delta_rule_chunk_kernels().fwd_f64); },
    [](const DeltaRuleChunkParams<float>& p, void*) { over_heads(p, delta_rule_chunk_kernels().bwd_f32); },
    [](const DeltaRuleChunkParams<double>& p, void*) { over_heads(p, delta_rule_chunk_kernels().bwd_f64); }};

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(DeltaRuleChunkOps)

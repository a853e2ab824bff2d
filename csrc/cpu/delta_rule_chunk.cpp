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
namespace {

// The backend entry of the kernel pair `kernel` (a DeltaRuleChunkCpuKernels member): the best
// table's kernel for p's dtype, parallel over the heads.
template <auto kernel, typename T>
void over_heads(const DeltaRuleChunkParams<T>& p, void*) {
  const auto& fn = best_kernels<DeltaRuleChunkCpuKernels>().*kernel;
  if (p.BH <= 1) {
    fn(p, 0, p.BH);
    return;
  }
  at::parallel_for(0, p.BH, 1, [&](int64_t h0, int64_t h1) {
    fn(p, static_cast<int>(h0), static_cast<int>(h1));
  });
}

using K = DeltaRuleChunkCpuKernels;
constexpr DeltaRuleChunkBackend kBackend{kCpu,
                                         {&over_heads<&K::fwd>, &over_heads<&K::fwd>},
                                         {&over_heads<&K::bwd>, &over_heads<&K::bwd>}};

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(DeltaRuleChunkOps)

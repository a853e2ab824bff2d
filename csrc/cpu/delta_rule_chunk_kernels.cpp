// CPU kernels of the chunkwise delta rule: the shared per-head algorithm (delta_rule_chunk_core.h)
// run by CpuExec. Built twice, see CMakeLists.txt.
#include "delta_rule_chunk_kernels.h"

#include "cpu_exec.h"

#include "cpu_isa.h"

namespace memory_ext {
namespace cpu {
namespace {

template <typename T>
void fwd(const DeltaRuleChunkParams<T>& p, int h0, int h1) {
  CpuExec ex;
  const std::size_t ws = delta_rule_chunk_workspace(p.C, p.K, p.V, false);
  for (int h = h0; h < h1; ++h) delta_rule_chunk_forward_head(ex, p, h, p.workspace + h * ws);
}

template <typename T>
void bwd(const DeltaRuleChunkParams<T>& p, int h0, int h1) {
  CpuExec ex;
  const std::size_t ws = delta_rule_chunk_workspace(p.C, p.K, p.V, true);
  for (int h = h0; h < h1; ++h) delta_rule_chunk_backward_head(ex, p, h, p.workspace + h * ws);
}

constexpr DeltaRuleChunkCpuKernels kTable{{&fwd<float>, &fwd<double>}, {&bwd<float>, &bwd<double>}};

}  // namespace

// DeltaRuleChunkCpuKernels::base() or ::avx2(): the variant this compilation of the file is
const DeltaRuleChunkCpuKernels& DeltaRuleChunkCpuKernels::MEMORY_EXT_CPU_CAP() { return kTable; }

}  // namespace cpu
}  // namespace memory_ext

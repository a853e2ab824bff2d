// Torch-free CPU kernels of the chunkwise delta rule, compiled once per ISA level
// (delta_rule_chunk_kernels.cpp, like mlp_memory_kernels.cpp) and picked at run time.
#pragma once

#include "memory_ext/delta_rule_chunk_core.h"

namespace memory_ext {
namespace cpu {

// Each function handles heads [h0, h1) with one per-head workspace slot each.
struct DeltaRuleChunkCpuKernels {
  void (*fwd_f32)(const DeltaRuleChunkParams<float>&, int h0, int h1);
  void (*fwd_f64)(const DeltaRuleChunkParams<double>&, int h0, int h1);
  void (*bwd_f32)(const DeltaRuleChunkParams<float>&, int h0, int h1);
  void (*bwd_f64)(const DeltaRuleChunkParams<double>&, int h0, int h1);
};

const DeltaRuleChunkCpuKernels& delta_rule_chunk_kernels_base();
const DeltaRuleChunkCpuKernels& delta_rule_chunk_kernels_avx2();
// The best table this CPU supports (cpu_isa.h).
const DeltaRuleChunkCpuKernels& delta_rule_chunk_kernels();

}  // namespace cpu
}  // namespace memory_ext

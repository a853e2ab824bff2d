// Torch-free CPU kernels of the chunkwise delta rule, compiled once per ISA level
// (delta_rule_chunk_kernels.cpp, like mlp_memory_kernels.cpp) and picked at run time.
#pragma once

#include "../ops/backend.h"
#include "cpu_isa.h"
#include "memory_ext/delta_rule_chunk_core.h"

namespace memory_ext {
namespace cpu {

// Each function handles heads [h0, h1) with one per-head workspace slot each.
struct DeltaRuleChunkCpuKernels {
  PerDtype<DeltaRuleChunkParams, int, int> fwd, bwd;

  // The table of each ISA variant; best_kernels<DeltaRuleChunkCpuKernels>() picks one (cpu_isa.h).
  static const DeltaRuleChunkCpuKernels& base();
  static const DeltaRuleChunkCpuKernels& avx2();
};

}  // namespace cpu
}  // namespace memory_ext

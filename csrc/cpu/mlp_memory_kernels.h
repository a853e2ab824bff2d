// Torch-free CPU kernels of the MLP memory ops, compiled once per ISA level
// (mlp_memory_kernels.cpp with MEMORY_EXT_CPU_CAP = base | avx2) and picked at run time.
#pragma once

#include "../ops/backend.h"
#include "cpu_isa.h"
#include "memory_ext/mlp_memory_params.h"

namespace memory_ext {
namespace cpu {

// Each function handles batch elements [b0, b1); the caller parallelises over ranges.
struct MlpCpuKernels {
  const char* isa;
  PerDtype<MlpScanFwdParams, int, int> scan_fwd;
  PerDtype<MlpScanBwdParams, int, int> scan_bwd;
  PerDtype<MlpReadParams, int, int> read_fwd, read_bwd;

  // The table of each ISA variant; best_kernels<MlpCpuKernels>() picks one (cpu_isa.h).
  static const MlpCpuKernels& base();
  static const MlpCpuKernels& avx2();
};

}  // namespace cpu
}  // namespace memory_ext

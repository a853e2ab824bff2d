// Torch-free CPU kernels of the MLP memory ops, compiled once per ISA level
// (mlp_memory_kernels.cpp with MEMORY_EXT_CPU_CAP = base | avx2) and picked at run time.
#pragma once

#include "memory_ext/mlp_memory_params.h"

namespace memory_ext {
namespace cpu {

// Each function handles batch elements [b0, b1); the caller parallelises over ranges.
struct MlpCpuKernels {
  const char* isa;
  void (*scan_fwd_f32)(const MlpScanFwdParams<float>&, int b0, int b1);
  void (*scan_fwd_f64)(const MlpScanFwdParams<double>&, int b0, int b1);
  void (*scan_bwd_f32)(const MlpScanBwdParams<float>&, int b0, int b1);
  void (*scan_bwd_f64)(const MlpScanBwdParams<double>&, int b0, int b1);
  void (*read_fwd_f32)(const MlpReadParams<float>&, int b0, int b1);
  void (*read_fwd_f64)(const MlpReadParams<double>&, int b0, int b1);
  void (*read_bwd_f32)(const MlpReadParams<float>&, int b0, int b1);
  void (*read_bwd_f64)(const MlpReadParams<double>&, int b0, int b1);
};

const MlpCpuKernels& mlp_kernels_base();
const MlpCpuKernels& mlp_kernels_avx2();
// The best table this CPU supports.
const MlpCpuKernels& mlp_kernels();

}  // namespace cpu
}  // namespace memory_ext

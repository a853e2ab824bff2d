// CPU backend of the MLP memory ops: parallel over the batch (at::parallel_for), each thread
// running the ISA-specific kernels of mlp_memory_kernels.cpp. Registers the CPU impls.
#include <ATen/Parallel.h>

#include <torch/library.h>

#include "../ops/mlp_memory.h"
#include "cpu_backend.h"
#include "cpu_isa.h"
#include "mlp_memory_kernels.h"

namespace memory_ext {
namespace cpu {
namespace {

template <typename P, typename Fn>
void over_batch(const P& p, Fn fn) {
  if (p.s.B <= 1) {  // no parallel region for a single memory
    fn(p, 0, p.s.B);
    return;
  }
  at::parallel_for(0, p.s.B, 1, [&](int64_t b0, int64_t b1) {
    fn(p, static_cast<int>(b0), static_cast<int>(b1));
  });
}

constexpr MlpMemoryBackend kBackend = [] {
  MlpMemoryBackend b{kCpu};
  b.host_workspace = false;  // per-thread scratch, see ThreadScratch (thread_scratch.h)
  b.scan_fwd_f32 = [](const MlpScanFwdParams<float>& p, void*) { over_batch(p, mlp_kernels().scan_fwd_f32); };
  b.scan_fwd_f64 = [](const MlpScanFwdParams<double>& p, void*) { over_batch(p, mlp_kernels().scan_fwd_f64); };
  b.scan_bwd_f32 = [](const MlpScanBwdParams<float>& p, void*) { over_batch(p, mlp_kernels().scan_bwd_f32); };
  b.scan_bwd_f64 = [](const MlpScanBwdParams<double>& p, void*) { over_batch(p, mlp_kernels().scan_bwd_f64); };
  b.read_fwd_f32 = [](const MlpReadParams<float>& p, void*) { over_batch(p, mlp_kernels().read_fwd_f32); };
  b.read_fwd_f64 = [](const MlpReadParams<double>& p, void*) { over_batch(p, mlp_kernels().read_fwd_f64); };
  b.read_bwd_f32 = [](const MlpReadParams<float>& p, void*) { over_batch(p, mlp_kernels().read_bwd_f32); };
  b.read_bwd_f64 = [](const MlpReadParams<double>& p, void*) { over_batch(p, mlp_kernels().read_bwd_f64); };
  return b;
}();

}  // namespace

const MlpCpuKernels& mlp_kernels() {
#if defined(MEMORY_EXT_HAVE_AVX2)
  if (use_avx2_kernels()) return mlp_kernels_avx2();
#endif
  return mlp_kernels_base();
}

}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(MlpMemoryOps)

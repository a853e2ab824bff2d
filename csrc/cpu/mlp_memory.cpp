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

// The backend entry of the kernel pair `kernel` (an MlpCpuKernels member): the best table's
// kernel for p's dtype, parallel over the batch.
template <auto kernel, typename P>
void over_batch(const P& p, void*) {
  const auto& fn = best_kernels<MlpCpuKernels>().*kernel;
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
  using K = MlpCpuKernels;
  b.scan_fwd = {&over_batch<&K::scan_fwd>, &over_batch<&K::scan_fwd>};
  b.scan_bwd = {&over_batch<&K::scan_bwd>, &over_batch<&K::scan_bwd>};
  b.read_fwd = {&over_batch<&K::read_fwd>, &over_batch<&K::read_fwd>};
  b.read_bwd = {&over_batch<&K::read_bwd>, &over_batch<&K::read_bwd>};
  return b;
}();

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(MlpMemoryOps)

// CPU kernels of the MLP memory ops: the shared per-batch-element algorithm
// (mlp_memory_core.h) run by CpuExec. Built twice, see CMakeLists.txt.
#include "cpu_exec.h"
#include "thread_scratch.h"
#include "memory_ext/mlp_memory_core.h"
#include "mlp_memory_kernels.h"

#include "cpu_isa.h"

namespace memory_ext {
namespace cpu {
namespace {

// Every batch element of a thread reuses one scratch (ThreadScratch): it stays in cache from
// one element to the next and from call to call, and no fresh pages are touched per call.

template <typename T>
void scan_fwd(const MlpScanFwdParams<T>& params, int b0, int b1) {
  CpuExec ex;
  MlpScanFwdParams<T> p = params;
  p.update_in_output = true;  // in cache either way on the CPU: skip the copy in and out
  ThreadScratch<T> ws(mlp_fwd_workspace(p.s));
  for (int b = b0; b < b1; ++b) mlp_scan_forward_elem(ex, p, b, ws.get());
}

template <typename T>
void scan_bwd(const MlpScanBwdParams<T>& params, int b0, int b1) {
  CpuExec ex;
  MlpScanBwdParams<T> p = params;
  p.in_place = true;  // g_w0 and the checkpoints are in this process's memory: no copies
  const std::size_t hot = MlpBwdScratch<T>::carve_hot(p.s, nullptr, nullptr);
  ThreadScratch<T> ws(mlp_bwd_workspace(p.s, p.ckpt_every));
  for (int b = b0; b < b1; ++b) mlp_scan_backward_elem(ex, p, b, ws.get(), ws.get() + hot);
}

template <typename T>
void read_fwd(const MlpReadParams<T>& p, int b0, int b1) {
  CpuExec ex;
  ThreadScratch<T> ws(mlp_read_workspace(p.s));
  for (int b = b0; b < b1; ++b) mlp_read_forward_elem(ex, p, b, ws.get());
}

template <typename T>
void read_bwd(const MlpReadParams<T>& p, int b0, int b1) {
  CpuExec ex;
  ThreadScratch<T> ws(mlp_read_workspace(p.s));
  for (int b = b0; b < b1; ++b) mlp_read_backward_elem(ex, p, b, ws.get());
}

constexpr MlpCpuKernels kTable{ME_STR(MEMORY_EXT_CPU_CAP),
                               {&scan_fwd<float>, &scan_fwd<double>},
                               {&scan_bwd<float>, &scan_bwd<double>},
                               {&read_fwd<float>, &read_fwd<double>},
                               {&read_bwd<float>, &read_bwd<double>}};

}  // namespace

// MlpCpuKernels::base() or ::avx2(): the variant this compilation of the file is
const MlpCpuKernels& MlpCpuKernels::MEMORY_EXT_CPU_CAP() { return kTable; }

}  // namespace cpu
}  // namespace memory_ext

// CUDA backend of the MLP memory ops: calls the torch-free kernels of mlp_memory.cu on the
// current stream under a device guard, checks every launch, registers the CUDA impls.
// Built only when torch has CUDA (MEMORY_EXT_WITH_CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../ops/register_impls.h"
#include "mlp_memory_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, "memory_ext CUDA kernel ", what, " failed: ", err);
}

template <typename P>
void no_f64(const P&, void*) {
  TORCH_CHECK(false, "memory_ext: float64 is not supported on CUDA, use float32");
}

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

struct CudaBackend {
  static c10::cuda::OptionalCUDAGuard guard(const Tensor& t) {
    return c10::cuda::OptionalCUDAGuard(t.device());
  }
  static const MlpBackend& get() {
    static const MlpBackend be = [] {
      MlpBackend b{};
      b.name = "CUDA";
      b.supports_f64 = false;
      b.host_workspace = true;
      b.scan_fwd_f32 = [](const MlpScanFwdParams<float>& p, void* s) { check(mlp_scan_fwd(p, s), "mlp_scan_fwd"); };
      b.scan_bwd_f32 = [](const MlpScanBwdParams<float>& p, void* s) { check(mlp_scan_bwd(p, s), "mlp_scan_bwd"); };
      b.read_fwd_f32 = [](const MlpReadParams<float>& p, void* s) { check(mlp_read_fwd(p, s), "mlp_read_fwd"); };
      b.read_bwd_f32 = [](const MlpReadParams<float>& p, void* s) { check(mlp_read_bwd(p, s), "mlp_read_bwd"); };
      b.scan_fwd_f64 = &no_f64<MlpScanFwdParams<double>>;
      b.scan_bwd_f64 = &no_f64<MlpScanBwdParams<double>>;
      b.read_fwd_f64 = &no_f64<MlpReadParams<double>>;
      b.read_bwd_f64 = &no_f64<MlpReadParams<double>>;
      b.current_stream = &current_stream;
      return b;
    }();
    return be;
  }
};

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CUDA, m) {
  memory_ext::MlpOpsFor<memory_ext::cuda::CudaBackend>::register_all(m);
}

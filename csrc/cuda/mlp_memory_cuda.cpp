// CUDA backend of the MLP memory ops: calls the torch-free kernels of mlp_memory.cu on the
// current stream under a device guard, checks every launch, registers the CUDA impls.
// Built only when torch has CUDA (MEMORY_EXT_WITH_CUDA).
#include <torch/library.h>

#include "../ops/mlp_memory.h"
#include "cuda_backend.h"
#include "mlp_memory_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

constexpr MlpMemoryBackend kBackend = [] {
  MlpMemoryBackend b{kCuda};
  b.host_workspace = true;
  b.scan_fwd_f32 = [](const MlpScanFwdParams<float>& p, void* s) { check_launch(mlp_scan_fwd(p, s), "mlp_scan_fwd"); };
  b.scan_fwd_f64 = &no_f64<MlpScanFwdParams<double>>;
  b.scan_bwd_f32 = [](const MlpScanBwdParams<float>& p, void* s) { check_launch(mlp_scan_bwd(p, s), "mlp_scan_bwd"); };
  b.scan_bwd_f64 = &no_f64<MlpScanBwdParams<double>>;
  b.read_fwd_f32 = [](const MlpReadParams<float>& p, void* s) { check_launch(mlp_read_fwd(p, s), "mlp_read_fwd"); };
  b.read_fwd_f64 = &no_f64<MlpReadParams<double>>;
  b.read_bwd_f32 = [](const MlpReadParams<float>& p, void* s) { check_launch(mlp_read_bwd(p, s), "mlp_read_bwd"); };
  b.read_bwd_f64 = &no_f64<MlpReadParams<double>>;
  return b;
}();

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CUDA_BACKEND(MlpMemoryOps)

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
  b.scan_fwd = {[](const MlpScanFwdParams<float>& p, void* s) { check_launch(mlp_scan_fwd(p, s), "mlp_scan_fwd"); }, &no_f64};
  b.scan_bwd = {[](const MlpScanBwdParams<float>& p, void* s) { check_launch(mlp_scan_bwd(p, s), "mlp_scan_bwd"); }, &no_f64};
  b.read_fwd = {[](const MlpReadParams<float>& p, void* s) { check_launch(mlp_read_fwd(p, s), "mlp_read_fwd"); }, &no_f64};
  b.read_bwd = {[](const MlpReadParams<float>& p, void* s) { check_launch(mlp_read_bwd(p, s), "mlp_read_bwd"); }, &no_f64};
  return b;
}();

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CUDA_BACKEND(MlpMemoryOps)

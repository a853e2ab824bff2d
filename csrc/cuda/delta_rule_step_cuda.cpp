// CUDA registration of delta_rule_step_ (built only when torch has CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../ops/delta_rule_step.h"
#include "delta_rule_step_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

void run_f32(const DeltaStepParams<float, float>& p, void* s) {
  const char* err = delta_rule_step(p, s);
  TORCH_CHECK(err == nullptr, "memory_ext CUDA kernel delta_rule_step failed: ", err);
}

void run_f64(const DeltaStepParams<double, double>&, void*) {
  TORCH_CHECK(false, "memory_ext: float64 is not supported on CUDA, use float32");
}

void* current_stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void delta_rule_step_cuda(at::Tensor& state, const at::Tensor& q, const at::Tensor& k,
                          const at::Tensor& v, const at::Tensor& beta, double scale,
                          at::Tensor& out) {
  static const DeltaStepBackend be{"CUDA", false, &run_f32, &run_f64, &current_stream};
  c10::cuda::OptionalCUDAGuard guard(q.device());
  delta_rule_step_impl(be, state, q, k, v, beta, scale, out);
}

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CUDA, m) {
  m.impl("delta_rule_step_", TORCH_FN(memory_ext::cuda::delta_rule_step_cuda));
}

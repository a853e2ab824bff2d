// CUDA backend of delta_rule_step_: calls the torch-free kernel of delta_rule_step.cu, registers
// the CUDA impl (built only when torch has CUDA).
#include <torch/library.h>

#include "../ops/delta_rule_step.h"
#include "cuda_backend.h"
#include "delta_rule_step_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

constexpr DeltaRuleStepBackend kBackend{
    kCuda,
    {[](const DeltaRuleStepParams<float, float>& p, void* s) {
       check_launch(delta_rule_step(p, s), "delta_rule_step");
     },
     &no_f64}};

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CUDA_BACKEND(DeltaRuleStepOps)

// Torch-free entry point of the delta_rule_step_ CUDA kernel (float32). Returns nullptr on
// success, else the CUDA error string.
#pragma once

#include "memory_ext/delta_rule_step_core.h"

namespace memory_ext {
namespace cuda {

const char* delta_rule_step(const DeltaRuleStepParams<float, float>& p, void* stream);

}  // namespace cuda
}  // namespace memory_ext

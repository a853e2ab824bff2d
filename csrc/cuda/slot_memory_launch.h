// Torch-free entry points of the slot memory CUDA kernels (float32). nullptr on success, else
// the CUDA error string.
#pragma once

#include "memory_ext/slot_memory_core.h"

namespace memory_ext {
namespace cuda {

const char* slot_read_fwd(const SlotReadParams<float>& p, void* stream);
const char* slot_read_bwd(const SlotReadParams<float>& p, void* stream);
const char* slot_hard_fwd(const SlotHardParams<float>& p, void* stream);
const char* slot_hard_bwd(const SlotHardParams<float>& p, void* stream);

}  // namespace cuda
}  // namespace memory_ext

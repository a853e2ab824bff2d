// CUDA backend of the slot memory reads: calls the torch-free kernels of slot_memory.cu,
// registers the CUDA impls (built only when torch has CUDA).
#include <torch/library.h>

#include "../ops/slot_memory.h"
#include "cuda_backend.h"
#include "slot_memory_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

constexpr SlotMemoryBackend kBackend{
    kCuda,
    {[](const SlotReadParams<float>& p, void* s) { check_launch(slot_read_fwd(p, s), "slot_read"); }, &no_f64},
    {[](const SlotReadParams<float>& p, void* s) { check_launch(slot_read_bwd(p, s), "_slot_read_bwd"); }, &no_f64},
    {[](const SlotHardParams<float>& p, void* s) { check_launch(slot_hard_fwd(p, s), "slot_read_hard"); }, &no_f64},
    {[](const SlotHardParams<float>& p, void* s) { check_launch(slot_hard_bwd(p, s), "_slot_read_hard_bwd"); }, &no_f64}};

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CUDA_BACKEND(SlotMemoryOps)

// CPU kernels of the slot memory reads: the per-element algorithm of slot_memory_core.h,
// parallel over the batch. Registers the CPU impls.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../ops/slot_memory.h"
#include "cpu_backend.h"

namespace memory_ext {
namespace cpu {
namespace {

template <typename P, typename F>
void over_batch(const P& p, F f) {
  at::parallel_for(0, p.B, 8, [&](int64_t b0, int64_t b1) {
    for (int64_t b = b0; b < b1; ++b) f(p, static_cast<int>(b));
  });
}

template <typename T>
void read_fwd(const SlotReadParams<T>& p, void*) { over_batch(p, slot_read_forward_elem<T>); }
template <typename T>
void read_bwd(const SlotReadParams<T>& p, void*) { over_batch(p, slot_read_backward_elem<T>); }
template <typename T>
void hard_fwd(const SlotHardParams<T>& p, void*) {
  over_batch(p, [](const SlotHardParams<T>& q, int b) {
    slot_hard_forward_elem(q, b, q.workspace + static_cast<long>(b) * q.d);
  });
}
template <typename T>
void hard_bwd(const SlotHardParams<T>& p, void*) { over_batch(p, slot_hard_backward_elem<T>); }

constexpr SlotMemoryBackend kBackend{kCpu,
                                     {&read_fwd<float>, &read_fwd<double>},
                                     {&read_bwd<float>, &read_bwd<double>},
                                     {&hard_fwd<float>, &hard_fwd<double>},
                                     {&hard_bwd<float>, &hard_bwd<double>}};

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(SlotMemoryOps)

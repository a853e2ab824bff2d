// CPU kernels of the slot memory reads: the per-element algorithm of slot_core.h, parallel over
// the batch.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../ops/slot_memory.h"

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
void read_fwd(const SlotReadParams<T>& p) { over_batch(p, slot_read_forward_elem<T>); }
template <typename T>
void read_bwd(const SlotReadParams<T>& p) { over_batch(p, slot_read_backward_elem<T>); }
template <typename T>
void hard_fwd(const SlotHardParams<T>& p) {
  over_batch(p, [](const SlotHardParams<T>& q, int b) {
    slot_hard_forward_elem(q, b, q.workspace + static_cast<long>(b) * q.d);
  });
}
template <typename T>
void hard_bwd(const SlotHardParams<T>& p) { over_batch(p, slot_hard_backward_elem<T>); }

const SlotBackend& backend() {
  static const SlotBackend be{"CPU",           true,           &read_fwd<float>, &read_fwd<double>,
                              &read_bwd<float>, &read_bwd<double>, &hard_fwd<float>, &hard_fwd<double>,
                              &hard_bwd<float>, &hard_bwd<double>};
  return be;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> read_cpu(const at::Tensor& q, const at::Tensor& M,
                                                        const at::Tensor& C, const at::Tensor& n,
                                                        int64_t hops,
                                                        const c10::optional<at::Tensor>& R) {
  return slot_read_impl(backend(), q, M, C, n, hops, R);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> read_bwd_cpu(
    const at::Tensor& gu, const c10::optional<at::Tensor>& ga, const at::Tensor& M,
    const at::Tensor& C, const at::Tensor& n, const c10::optional<at::Tensor>& R,
    const at::Tensor& su, const at::Tensor& a) {
  return slot_read_bwd_impl(backend(), gu, ga, M, C, n, R, su, a);
}
std::tuple<at::Tensor, at::Tensor> hard_cpu(const at::Tensor& q, const at::Tensor& M,
                                            const at::Tensor& Q, const at::Tensor& n, int64_t hops) {
  return slot_read_hard_impl(backend(), q, M, Q, n, hops);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> hard_bwd_cpu(const at::Tensor& g, const at::Tensor& q,
                                                            const at::Tensor& M, const at::Tensor& Q,
                                                            const at::Tensor& n, const at::Tensor& i) {
  return slot_read_hard_bwd_impl(backend(), g, q, M, Q, n, i);
}

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CPU, m) {
  m.impl("slot_read", TORCH_FN(memory_ext::cpu::read_cpu));
  m.impl("_slot_read_bwd", TORCH_FN(memory_ext::cpu::read_bwd_cpu));
  m.impl("slot_read_hard", TORCH_FN(memory_ext::cpu::hard_cpu));
  m.impl("_slot_read_hard_bwd", TORCH_FN(memory_ext::cpu::hard_bwd_cpu));
}

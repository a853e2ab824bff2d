// CUDA registration of the slot memory reads (built only when torch has CUDA).
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../ops/slot_memory.h"
#include "slot_memory_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

void* stream() { return c10::cuda::getCurrentCUDAStream().stream(); }

void check(const char* err, const char* what) {
  TORCH_CHECK(err == nullptr, "memory_ext CUDA kernel ", what, " failed: ", err);
}

template <typename P>
void no_f64(const P&) {
  TORCH_CHECK(false, "memory_ext: float64 is not supported on CUDA, use float32");
}

const SlotBackend& backend() {
  static const SlotBackend be{
      "CUDA", false,
      [](const SlotReadParams<float>& p) { check(slot_read_fwd(p, stream()), "slot_read"); },
      &no_f64<SlotReadParams<double>>,
      [](const SlotReadParams<float>& p) { check(slot_read_bwd(p, stream()), "_slot_read_bwd"); },
      &no_f64<SlotReadParams<double>>,
      [](const SlotHardParams<float>& p) { check(slot_hard_fwd(p, stream()), "slot_read_hard"); },
      &no_f64<SlotHardParams<double>>,
      [](const SlotHardParams<float>& p) { check(slot_hard_bwd(p, stream()), "_slot_read_hard_bwd"); },
      &no_f64<SlotHardParams<double>>};
  return be;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> read_cuda(const at::Tensor& q, const at::Tensor& M,
                                                         const at::Tensor& C, const at::Tensor& n,
                                                         int64_t hops,
                                                         const c10::optional<at::Tensor>& R) {
  c10::cuda::CUDAGuard g(q.device());
  return slot_read_impl(backend(), q, M, C, n, hops, R);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> read_bwd_cuda(
    const at::Tensor& gu, const c10::optional<at::Tensor>& ga, const at::Tensor& M,
    const at::Tensor& C, const at::Tensor& n, const c10::optional<at::Tensor>& R,
    const at::Tensor& su, const at::Tensor& a) {
  c10::cuda::CUDAGuard g(gu.device());
  return slot_read_bwd_impl(backend(), gu, ga, M, C, n, R, su, a);
}
std::tuple<at::Tensor, at::Tensor> hard_cuda(const at::Tensor& q, const at::Tensor& M,
                                             const at::Tensor& Q, const at::Tensor& n, int64_t hops) {
  c10::cuda::CUDAGuard g(q.device());
  return slot_read_hard_impl(backend(), q, M, Q, n, hops);
}
std::tuple<at::Tensor, at::Tensor, at::Tensor> hard_bwd_cuda(const at::Tensor& gs, const at::Tensor& q,
                                                             const at::Tensor& M, const at::Tensor& Q,
                                                             const at::Tensor& n, const at::Tensor& i) {
  c10::cuda::CUDAGuard g(q.device());
  return slot_read_hard_bwd_impl(backend(), gs, q, M, Q, n, i);
}

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CUDA, m) {
  m.impl("slot_read", TORCH_FN(memory_ext::cuda::read_cuda));
  m.impl("_slot_read_bwd", TORCH_FN(memory_ext::cuda::read_bwd_cuda));
  m.impl("slot_read_hard", TORCH_FN(memory_ext::cuda::hard_cuda));
  m.impl("_slot_read_hard_bwd", TORCH_FN(memory_ext::cuda::hard_bwd_cuda));
}

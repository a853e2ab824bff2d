// delta_rule_step_: one decoding step of the delta rule, state updated in place (spec 2).
#include "delta_rule_step.h"

#include <torch/library.h>

#include "checks.h"

namespace memory_ext {

void delta_rule_step_impl(const DeltaStepBackend& be, at::Tensor& state, const at::Tensor& q,
                          const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                          double scale, at::Tensor& out) {
  TORCH_CHECK(q.dim() == 3, "q must be [B, H, K], got ", q.sizes());
  TORCH_CHECK(v.dim() == 3, "v must be [B, H, V], got ", v.sizes());
  const int64_t B = q.size(0), H = q.size(1), K = q.size(2), V = v.size(2);
  check_shape(k, "k", "[B, H, K]", {B, H, K});
  check_shape(v, "v", "[B, H, V]", {B, H, V});
  check_shape(beta, "beta", "[B, H]", {B, H});
  check_shape(state, "state", "[B, H, K, V]", {B, H, K, V});
  check_shape(out, "out", "[B, H, V]", {B, H, V});
  const auto dt = q.scalar_type();
  TORCH_CHECK(dt == at::kFloat || (dt == at::kDouble && be.supports_f64),
              "q must be float32", be.supports_f64 ? " or float64" : "", " on ", be.name,
              ", got ", dt);
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&k, &v, &beta, &out}) {
    TORCH_CHECK(t->scalar_type() == dt, "k, v, beta and out must have q's dtype ", dt,
                ", got ", t->scalar_type());
  }
  TORCH_CHECK(state.scalar_type() == dt, "state must be ", dt,
              " (the state is float32 for float32 inputs), got ", state.scalar_type());
  for (const at::Tensor* t : std::initializer_list<const at::Tensor*>{&k, &v, &beta, &state, &out}) {
    TORCH_CHECK(t->device() == q.device(), "all tensors must be on ", q.device(), ", got ",
                t->device());
  }
  TORCH_CHECK(state.is_contiguous(), "state must be contiguous (it is updated in place)");
  TORCH_CHECK(out.is_contiguous(), "out must be contiguous (it is written in place)");
  TORCH_CHECK(K >= 1 && V >= 1, "K and V must be >= 1, got K = ", K, ", V = ", V);
  check_fits_int(B, "q", "B");
  check_fits_int(H, "q", "H");
  check_fits_int(K, "q", "K");
  check_fits_int(V, "v", "V");
  if (B * H == 0) return;
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous(),
                   bc = beta.contiguous();
  if (dt == at::kFloat) {
    DeltaStepParams<float, float> p{static_cast<int>(B), static_cast<int>(H), static_cast<int>(K),
                                    static_cast<int>(V), static_cast<float>(scale),
                                    qc.data_ptr<float>(), kc.data_ptr<float>(),
                                    vc.data_ptr<float>(), bc.data_ptr<float>(),
                                    state.data_ptr<float>(), out.data_ptr<float>()};
    be.f32(p, be.current_stream());
  } else {
    DeltaStepParams<double, double> p{static_cast<int>(B), static_cast<int>(H),
                                      static_cast<int>(K), static_cast<int>(V), scale,
                                      qc.data_ptr<double>(), kc.data_ptr<double>(),
                                      vc.data_ptr<double>(), bc.data_ptr<double>(),
                                      state.data_ptr<double>(), out.data_ptr<double>()};
    be.f64(p, be.current_stream());
  }
}

}  // namespace memory_ext

// delta_rule_step_: one decoding step of the delta rule, state updated in place (spec 2).
#include "delta_rule_step.h"

#include "checks.h"

namespace memory_ext {

void delta_rule_step_impl(const DeltaRuleStepBackend& be, at::Tensor& state, const at::Tensor& q,
                          const at::Tensor& k, const at::Tensor& v, const at::Tensor& beta,
                          double scale, at::Tensor& out) {
  const QkvSizes qs = check_qkv_beta(q, k, v, beta, "B", "H");
  const int64_t B = qs.a, H = qs.c, K = qs.K, V = qs.V;
  check_shape(state, "state", {{"B", B}, {"H", H}, {"K", K}, {"V", V}});
  check_shape(out, "out", {{"B", B}, {"H", H}, {"V", V}});
  check_float(be, q, "q");
  const auto dt = q.scalar_type();
  check_dtype_like(k, "k", q, "q");
  check_dtype_like(v, "v", q, "q");
  check_dtype_like(beta, "beta", q, "q");
  check_dtype_like(out, "out", q, "q");
  TORCH_CHECK(state.scalar_type() == dt, "state must be ", dt,
              " (the state is float32 for float32 inputs), got ", state.scalar_type());
  check_device_like(k, "k", q, "q");
  check_device_like(v, "v", q, "q");
  check_device_like(beta, "beta", q, "q");
  check_device_like(state, "state", q, "q");
  check_device_like(out, "out", q, "q");
  check_contiguous(state, "state", "it is updated in place");
  check_contiguous(out, "out", "it is written in place");
  TORCH_CHECK(K >= 1 && V >= 1, "K and V must be >= 1, got K = ", K, ", V = ", V);
  check_fits_int(B, "q", "B");
  check_fits_int(H, "q", "H");
  check_fits_int(K, "q", "K");
  check_fits_int(V, "v", "V");
  if (B * H == 0) return;
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous(),
                   bc = beta.contiguous();
  AT_DISPATCH_FLOATING_TYPES(dt, "delta_rule_step_", [&] {
    const DeltaRuleStepParams<scalar_t, scalar_t> p{
        static_cast<int>(B), static_cast<int>(H), static_cast<int>(K), static_cast<int>(V),
        static_cast<scalar_t>(scale), qc.data_ptr<scalar_t>(), kc.data_ptr<scalar_t>(),
        vc.data_ptr<scalar_t>(), bc.data_ptr<scalar_t>(), state.data_ptr<scalar_t>(),
        out.data_ptr<scalar_t>()};
    run_kernel(be, be.step, p);
  });
}

}  // namespace memory_ext

// delta_rule_chunk / _delta_rule_chunk_bwd: validation with named-argument errors, output
// allocation, and the call into a backend's kernels (see delta_rule_chunk_core.h for the math).
#include "delta_rule_chunk.h"

#include "checks.h"

namespace memory_ext {
namespace {

struct Dims {
  int64_t BH, T, K, V, C, n;
};

// Checks q, k, v, beta (shapes, one dtype, one device) and chunk_size; returns the dims.
Dims check_inputs(const DeltaRuleChunkBackend& be, const at::Tensor& q, const at::Tensor& k,
                  const at::Tensor& v, const at::Tensor& beta, int64_t chunk_size) {
  const QkvSizes qs = check_qkv_beta(q, k, v, beta, "BH", "T");
  const int64_t BH = qs.a, T = qs.c, K = qs.K, V = qs.V;
  TORCH_CHECK(K >= 1 && V >= 1, "K and V must be >= 1, got K = ", K, ", V = ", V);
  TORCH_CHECK(chunk_size >= 1, "chunk_size must be >= 1, got ", chunk_size);
  check_fits_int(BH, "q", "BH");
  check_fits_int(T, "q", "T");
  check_fits_int(K, "q", "K");
  check_fits_int(V, "v", "V");
  check_float(be, q, "q");
  check_like(k, "k", q, "q");
  check_like(v, "v", q, "q");
  check_like(beta, "beta", q, "q");
  const int64_t C = std::min<int64_t>(chunk_size, std::max<int64_t>(T, 1));
  return {BH, T, K, V, C, (T + C - 1) / C};
}

void check_state(const at::Tensor& s, const at::Tensor& q, const char* name, const Dims& d) {
  check_shape(s, name, {{"BH", d.BH}, {"K", d.K}, {"V", d.V}});
  check_like(s, name, q, "q");
}

template <typename T>
DeltaRuleChunkParams<T> base_params(const Dims& d, double scale, const at::Tensor& q,
                                    const at::Tensor& k, const at::Tensor& v,
                                    const at::Tensor& b) {
  DeltaRuleChunkParams<T> p;
  p.BH = static_cast<int>(d.BH);
  p.steps = static_cast<int>(d.T);
  p.K = static_cast<int>(d.K);
  p.V = static_cast<int>(d.V);
  p.C = static_cast<int>(d.C);
  p.scale = static_cast<T>(scale);
  set_data(p.q, q, p.k, k, p.v, v, p.beta, b);
  return p;
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> delta_rule_chunk_impl(
    const DeltaRuleChunkBackend& be, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& beta, const c10::optional<at::Tensor>& initial_state, double scale,
    int64_t chunk_size, bool save_states) {
  const Dims d = check_inputs(be, q, k, v, beta, chunk_size);
  at::Tensor S0;
  if (initial_state.has_value() && initial_state->defined()) {
    check_state(*initial_state, q, "initial_state", d);
    S0 = initial_state->contiguous();
  }
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous(),
                   bc = beta.contiguous();
  at::Tensor o = at::empty({d.BH, d.T, d.V}, q.options());
  at::Tensor S = at::empty({d.BH, d.K, d.V}, q.options());
  at::Tensor states = save_states ? at::empty({d.BH, d.n, d.K, d.V}, q.options())
                                  : at::empty({0}, q.options());
  if (d.BH == 0) return {o, S, states};
  at::Tensor ws = at::empty(
      {d.BH, static_cast<int64_t>(delta_rule_chunk_workspace(d.C, d.K, d.V, false))}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "delta_rule_chunk", [&] {
    auto p = base_params<scalar_t>(d, scale, qc, kc, vc, bc);
    set_data(p.S0, S0, p.o, o, p.S, S, p.workspace, ws);
    p.states = save_states ? states.data_ptr<scalar_t>() : nullptr;
    run_kernel(be, be.fwd, p);
  });
  return {o, S, states};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> delta_rule_chunk_bwd_impl(
    const DeltaRuleChunkBackend& be, const at::Tensor& q, const at::Tensor& k, const at::Tensor& v,
    const at::Tensor& beta, const at::Tensor& states, const at::Tensor& grad_o,
    const c10::optional<at::Tensor>& grad_final, double scale, int64_t chunk_size) {
  const Dims d = check_inputs(be, q, k, v, beta, chunk_size);
  check_shape(states, "states", {{"BH", d.BH}, {"n_chunks", d.n}, {"K", d.K}, {"V", d.V}});
  check_shape(grad_o, "grad_o", {{"BH", d.BH}, {"T", d.T}, {"V", d.V}});
  check_like(states, "states", q, "q");
  check_like(grad_o, "grad_o", q, "q");
  at::Tensor gS;
  if (grad_final.has_value() && grad_final->defined()) {
    check_state(*grad_final, q, "grad_final", d);
    gS = grad_final->contiguous();
  }
  const at::Tensor qc = q.contiguous(), kc = k.contiguous(), vc = v.contiguous(),
                   bc = beta.contiguous(), sc = states.contiguous(), go = grad_o.contiguous();
  at::Tensor dq = at::empty_like(qc), dk = at::empty_like(kc), dv = at::empty_like(vc),
             db = at::empty_like(bc), dS0 = at::empty({d.BH, d.K, d.V}, q.options());
  if (d.BH == 0) return {dq, dk, dv, db, dS0};
  at::Tensor ws = at::empty(
      {d.BH, static_cast<int64_t>(delta_rule_chunk_workspace(d.C, d.K, d.V, true))}, q.options());
  AT_DISPATCH_FLOATING_TYPES(q.scalar_type(), "_delta_rule_chunk_bwd", [&] {
    auto p = base_params<scalar_t>(d, scale, qc, kc, vc, bc);
    set_data(p.states, sc, p.grad_o, go, p.grad_S, gS);
    set_data(p.dq, dq, p.dk, dk, p.dv, dv, p.dbeta, db, p.dS0, dS0, p.workspace, ws);
    run_kernel(be, be.bwd, p);
  });
  return {dq, dk, dv, db, dS0};
}

}  // namespace memory_ext

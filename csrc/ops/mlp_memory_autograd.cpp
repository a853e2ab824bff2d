// Autograd of the MLP memory ops in C++ (the Autograd dispatch key): a custom
// torch::autograd::Function per op whose backward calls our backward ops through the
// dispatcher (so torch.compile traces them). In C++ rather than torch.library.register_autograd
// because the Python wrapper costs tens of microseconds per call, as much as a whole step.
// step and write are scans of one step: their backward is the scan backward with the input
// weights as the only checkpoint.
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "mlp_memory.h"

namespace memory_ext {
namespace {

using torch::autograd::AutogradContext;
using torch::autograd::variable_list;
using TensorVec = std::vector<Tensor>;
using sv = c10::string_view;

// --- typed handles of the ops ------------------------------------------------------------------
#define ME_OP(var, name, sig)                                                              \
  static auto var = c10::Dispatcher::singleton().findSchemaOrThrow(name, "").typed<sig>()

using ReadSig = Tensor(TensorList, const Tensor&, sv);
using ReadBwdSig = std::tuple<TensorVec, Tensor>(TensorList, const Tensor&, const Tensor&, sv);
using WriteSig = TensorVec(TensorList, const Tensor&, TensorList, const Tensor&, const OptTensor&,
                           sv, sv);
using StepSig = std::tuple<TensorVec, Tensor, Tensor>(TensorList, const Tensor&, TensorList,
                                                      const Tensor&, const Tensor&,
                                                      const OptTensor&, const OptTensor&, sv, sv);
using ScanSig = std::tuple<Tensor, TensorVec, Tensor, TensorVec>(
    TensorList, const Tensor&, TensorList, const Tensor&, const Tensor&, const OptTensor&,
    const OptTensor&, sv, sv, int64_t);
using ScanBwdSig = std::tuple<TensorVec, Tensor, TensorVec, Tensor, Tensor, Tensor, Tensor>(
    TensorList, const Tensor&, TensorList, const Tensor&, const Tensor&, const OptTensor&,
    const OptTensor&, const OptTensor&, TensorList, const OptTensor&, sv, sv, int64_t);

OptTensor opt(const Tensor& t) { return t.defined() ? OptTensor(t) : std::nullopt; }

// True when no graph is needed: grad mode off, or no float input requires grad. The Autograd
// kernels then call the op directly (skipping the autograd.Function machinery, a few us).
bool needs_graph(std::initializer_list<TensorList> lists, std::initializer_list<const Tensor*> ts,
                 std::initializer_list<const OptTensor*> opts) {
  if (!at::GradMode::is_enabled()) return false;
  for (const auto& l : lists)
    for (const auto& t : l)
      if (t.requires_grad()) return true;
  for (const auto* t : ts)
    if (t->requires_grad()) return true;
  for (const auto* o : opts)
    if (o->has_value() && (*o)->requires_grad()) return true;
  return false;
}
Tensor undef() { return Tensor(); }

// --- what a write (scan, step, write) saves, and its backward ------------------------------------
struct WriteSaved {
  static void save(AutogradContext* ctx, TensorVec ckpt, const Tensor& kw, TensorList z,
                   const Tensor& beta, const Tensor& kr, const OptTensor& alpha,
                   const OptTensor& rv, sv rule, sv act, int64_t C, bool recon_out) {
    const int64_t L = static_cast<int64_t>(ckpt.size());
    TensorVec s = std::move(ckpt);
    s.push_back(kw);
    for (const auto& t : z) s.push_back(t);
    s.push_back(beta);
    s.push_back(kr);
    s.push_back(alpha ? *alpha : undef());
    s.push_back(rv ? *rv : undef());
    ctx->save_for_backward(s);
    ctx->saved_data["L"] = L;
    ctx->saved_data["nz"] = static_cast<int64_t>(z.size());
    ctx->saved_data["rule"] = std::string(rule);
    ctx->saved_data["act"] = std::string(act);
    ctx->saved_data["C"] = C;
    ctx->saved_data["recon_out"] = recon_out;
    ctx->set_materialize_grads(false);
  }

  // Runs the scan backward. `time` false: the saved tensors are step-shaped (T = 1 implied) and
  // the grads come back step-shaped. Returns grads in the flattened order of the forward's
  // arguments: weights (L), kw, targets (nz), beta, [kr], alpha, [rv].
  static variable_list backward(AutogradContext* ctx, const Tensor& g_reads,
                                const TensorVec& g_final, const Tensor& g_recon, bool time,
                                bool with_read) {
    ME_OP(bwd, "memory_ext::_mlp_memory_scan_bwd", ScanBwdSig);
    const auto s = ctx->get_saved_variables();
    const int64_t L = ctx->saved_data["L"].toInt(), nz = ctx->saved_data["nz"].toInt();
    auto t1 = [&](const Tensor& t) { return (time || !t.defined()) ? t : t.unsqueeze(1); };
    auto back = [&](const Tensor& t) { return (time || !t.defined() || t.dim() == 0) ? t : t.squeeze(1); };
    size_t i = 0;
    TensorVec ck, z;
    for (int64_t l = 0; l < L; ++l) ck.push_back(time ? s[i++] : s[i++].unsqueeze(1));
    const Tensor kw = t1(s[i++]);
    for (int64_t l = 0; l < nz; ++l) z.push_back(t1(s[i++]));
    const Tensor beta = t1(s[i++]);
    const Tensor kr = t1(s[i++]);
    const Tensor alpha = s[i++];
    const Tensor rv = t1(s[i++]);
    TensorVec gw_final;  // empty when no gradient reached the final weights
    bool any = false;
    for (const auto& g : g_final) any = any || g.defined();
    for (int64_t l = 0; any && l < L; ++l) {
      gw_final.push_back(g_final[l].defined()
                             ? g_final[l]
                             : at::zeros({ck[l].size(0), ck[l].size(2), ck[l].size(3)},
                                         ck[l].options()));
    }
    const bool recon_out = ctx->saved_data["recon_out"].toBool();
    const Tensor g_rec = (recon_out && g_recon.defined()) ? t1(g_recon) : Tensor();
    auto [gw, gkw, gz, gbeta, gkr, galpha, grv] =
        bwd.call(ck, kw, z, beta, kr, opt(alpha), opt(rv), opt(t1(g_reads)), gw_final, opt(g_rec),
                 ctx->saved_data["rule"].toStringRef(), ctx->saved_data["act"].toStringRef(),
                 ctx->saved_data["C"].toInt());
    variable_list out;
    for (auto& g : gw) out.push_back(g);
    out.push_back(back(gkw));
    for (auto& g : gz) out.push_back(back(g));
    out.push_back(back(gbeta));
    if (with_read) out.push_back(back(gkr));
    out.push_back(alpha.defined() ? galpha : undef());
    if (with_read) out.push_back(rv.defined() ? back(grv) : undef());
    return out;
  }
};

// --- scan --------------------------------------------------------------------------------------
struct ScanFn : public torch::autograd::Function<ScanFn> {
  static variable_list forward(AutogradContext* ctx, TensorList w, const Tensor& kw, TensorList z,
                               const Tensor& beta, const Tensor& kr, const OptTensor& alpha,
                               const OptTensor& rv, sv rule, sv act, int64_t C) {
    ME_OP(op, "memory_ext::mlp_memory_scan", ScanSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [reads, w_out, recon, ckpt] = op.call(w, kw, z, beta, kr, alpha, rv, rule, act, C);
    ctx->mark_non_differentiable(ckpt);
    WriteSaved::save(ctx, ckpt, kw, z, beta, kr, alpha, rv, rule, act, C,
                     rv.has_value() || rule == "grad");
    variable_list out{reads};
    for (auto& t : w_out) out.push_back(t);
    out.push_back(recon);
    for (auto& t : ckpt) out.push_back(t);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const int64_t L = ctx->saved_data["L"].toInt();
    TensorVec g_final(g.begin() + 1, g.begin() + 1 + L);
    variable_list out = WriteSaved::backward(ctx, g[0], g_final, g[1 + L], true, true);
    out.resize(out.size() + 3);  // rule, activation, checkpoint_every
    return out;
  }
};

std::tuple<Tensor, TensorVec, Tensor, TensorVec> scan_autograd(
    TensorList w, const Tensor& kw, TensorList z, const Tensor& beta, const Tensor& kr,
    const OptTensor& alpha, const OptTensor& rv, sv rule, sv act, int64_t C) {
  if (!needs_graph({w, z}, {&kw, &beta, &kr}, {&alpha, &rv})) {
    ME_OP(op, "memory_ext::mlp_memory_scan", ScanSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(w, kw, z, beta, kr, alpha, rv, rule, act, C);
  }
  auto o = ScanFn::apply(w, kw, z, beta, kr, alpha, rv, rule, act, C);
  const size_t L = w.size();
  return {o[0], TensorVec(o.begin() + 1, o.begin() + 1 + L), o[1 + L],
          TensorVec(o.begin() + 2 + L, o.end())};
}

// --- step --------------------------------------------------------------------------------------
struct StepFn : public torch::autograd::Function<StepFn> {
  static variable_list forward(AutogradContext* ctx, TensorList w, const Tensor& kw, TensorList z,
                               const Tensor& beta, const Tensor& kr, const OptTensor& alpha,
                               const OptTensor& rv, sv rule, sv act) {
    ME_OP(op, "memory_ext::mlp_memory_step", StepSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    auto [w_out, reads, recon] = op.call(w, kw, z, beta, kr, alpha, rv, rule, act);
    WriteSaved::save(ctx, w.vec(), kw, z, beta, kr, alpha, rv, rule, act, 1,
                     rv.has_value() || rule == "grad");
    variable_list out(w_out.begin(), w_out.end());
    out.push_back(reads);
    out.push_back(recon);
    return out;
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    const int64_t L = ctx->saved_data["L"].toInt();
    TensorVec g_final(g.begin(), g.begin() + L);
    variable_list out = WriteSaved::backward(ctx, g[L], g_final, g[L + 1], false, true);
    out.resize(out.size() + 2);  // rule, activation
    return out;
  }
};

std::tuple<TensorVec, Tensor, Tensor> step_autograd(TensorList w, const Tensor& kw, TensorList z,
                                                    const Tensor& beta, const Tensor& kr,
                                                    const OptTensor& alpha, const OptTensor& rv,
                                                    sv rule, sv act) {
  if (!needs_graph({w, z}, {&kw, &beta, &kr}, {&alpha, &rv})) {
    ME_OP(op, "memory_ext::mlp_memory_step", StepSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(w, kw, z, beta, kr, alpha, rv, rule, act);
  }
  auto o = StepFn::apply(w, kw, z, beta, kr, alpha, rv, rule, act);
  const size_t L = w.size();
  return {TensorVec(o.begin(), o.begin() + L), o[L], o[L + 1]};
}

// --- write -------------------------------------------------------------------------------------
struct WriteFn : public torch::autograd::Function<WriteFn> {
  static variable_list forward(AutogradContext* ctx, TensorList w, const Tensor& kw, TensorList z,
                               const Tensor& beta, const OptTensor& alpha, sv rule, sv act) {
    ME_OP(op, "memory_ext::mlp_memory_write", WriteSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    TensorVec w_out = op.call(w, kw, z, beta, alpha, rule, act);
    const Tensor no_read = at::empty({kw.size(0), 0, kw.size(2)}, kw.options());
    WriteSaved::save(ctx, w.vec(), kw, z, beta, no_read, alpha, std::nullopt, rule, act, 1, false);
    return variable_list(w_out.begin(), w_out.end());
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    variable_list out = WriteSaved::backward(ctx, Tensor(), TensorVec(g.begin(), g.end()),
                                             Tensor(), false, false);
    out.resize(out.size() + 2);  // rule, activation
    return out;
  }
};

TensorVec write_autograd(TensorList w, const Tensor& kw, TensorList z, const Tensor& beta,
                         const OptTensor& alpha, sv rule, sv act) {
  if (!needs_graph({w, z}, {&kw, &beta}, {&alpha})) {
    ME_OP(op, "memory_ext::mlp_memory_write", WriteSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(w, kw, z, beta, alpha, rule, act);
  }
  return WriteFn::apply(w, kw, z, beta, alpha, rule, act);
}

// --- read --------------------------------------------------------------------------------------
struct ReadFn : public torch::autograd::Function<ReadFn> {
  static variable_list forward(AutogradContext* ctx, TensorList w, const Tensor& keys, sv act) {
    ME_OP(op, "memory_ext::mlp_memory_read", ReadSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    Tensor out = op.call(w, keys, act);
    TensorVec s = w.vec();
    s.push_back(keys);
    ctx->save_for_backward(s);
    ctx->saved_data["act"] = std::string(act);
    return {out};
  }
  static variable_list backward(AutogradContext* ctx, variable_list g) {
    ME_OP(bwd, "memory_ext::_mlp_memory_read_bwd", ReadBwdSig);
    auto s = ctx->get_saved_variables();
    const Tensor keys = s.back();
    s.pop_back();
    auto [gw, gk] = bwd.call(s, keys, g[0], ctx->saved_data["act"].toStringRef());
    variable_list out(gw.begin(), gw.end());
    out.push_back(gk);
    out.push_back(Tensor());  // activation
    return out;
  }
};

Tensor read_autograd(TensorList w, const Tensor& keys, sv act) {
  if (!needs_graph({w}, {&keys}, {})) {
    ME_OP(op, "memory_ext::mlp_memory_read", ReadSig);
    at::AutoDispatchBelowADInplaceOrView guard;
    return op.call(w, keys, act);
  }
  return ReadFn::apply(w, keys, act)[0];
}

}  // namespace
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, Autograd, m) {
  m.impl("mlp_memory_read", TORCH_FN(memory_ext::read_autograd));
  m.impl("mlp_memory_write", TORCH_FN(memory_ext::write_autograd));
  m.impl("mlp_memory_step", TORCH_FN(memory_ext::step_autograd));
  m.impl("mlp_memory_scan", TORCH_FN(memory_ext::scan_autograd));
}

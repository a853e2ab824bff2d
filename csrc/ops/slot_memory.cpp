// The slot memory ops: slot_write_ (ATen, any device), slot_read / _slot_read_bwd and
// slot_read_hard / _slot_read_hard_bwd (checks here, kernels per backend: csrc/cpu, csrc/cuda).
#include <ATen/MemoryOverlap.h>

#include "slot_memory.h"

#include <torch/library.h>

#include <sstream>

#include "checks.h"

namespace memory_ext {
namespace {

struct Dims {
  int64_t B, N, d, K;
  bool per_hop;
};

Dims check_read(const SlotMemoryBackend& be, const at::Tensor& q, const at::Tensor& M,
                const at::Tensor& V, const char* vname, const at::Tensor& count, int64_t hops,
                bool allow_per_hop) {
  check_shape(q, "query", {{"B", kAny}, {"d", kAny}});
  const int64_t B = q.size(0), d = q.size(1);
  TORCH_CHECK(hops >= 1, "hops must be >= 1, got ", hops);
  const bool per_hop = allow_per_hop && M.dim() == 4;
  const Dim flat[] = {{"B", B}, {"N", kAny}, {"d", d}};
  const Dim hop[] = {{"K", hops}, {"B", B}, {"N", kAny}, {"d", d}};
  const c10::ArrayRef<Dim> want = per_hop ? c10::ArrayRef<Dim>(hop) : c10::ArrayRef<Dim>(flat);
  TORCH_CHECK(has_shape(M, want), "M must be ", shape_str(want),
              !allow_per_hop ? "" : (per_hop ? " or [B, N, d]" : " or [K, B, N, d]"), ", got ",
              M.sizes());
  check_shape_like(V, vname, M, "M");
  check_shape(count, "count", {{"B", B}}, at::kLong);
  check_float(be, q, "query");
  check_dtype_like(M, "M", q, "query");
  check_dtype_like(V, vname, q, "query");
  check_device_like(M, "M", q, "query");
  check_device_like(V, vname, q, "query");
  check_device_like(count, "count", q, "query");
  if (count.is_cpu() && count.numel() > 0) {
    TORCH_CHECK(count.min().item<int64_t>() >= 0, "count must be >= 0");
  }
  const int64_t N = per_hop ? M.size(2) : M.size(1);
  check_fits_int(B, "query", "B");
  check_fits_int(d, "query", "d");
  check_fits_int(N, "M", "N");
  check_fits_int(hops, "hops", "K");
  return {B, N, d, hops, per_hop};
}

template <typename T>
SlotReadParams<T> read_params(const Dims& s) {
  SlotReadParams<T> p;
  p.B = static_cast<int>(s.B);
  p.N = static_cast<int>(s.N);
  p.d = static_cast<int>(s.d);
  p.K = static_cast<int>(s.K);
  p.per_hop = s.per_hop;
  return p;
}

template <typename T>
SlotHardParams<T> hard_params(const Dims& s, const at::Tensor& q, const at::Tensor& M,
                              const at::Tensor& Q, const at::Tensor& count) {
  SlotHardParams<T> p;
  p.B = static_cast<int>(s.B);
  p.N = static_cast<int>(s.N);
  p.d = static_cast<int>(s.d);
  p.K = static_cast<int>(s.K);
  set_data(p.q, q, p.M, M, p.Q, Q, p.count, count);
  return p;
}

at::Tensor opt_contig(const c10::optional<at::Tensor>& t) {
  return t.has_value() && t->defined() ? t->contiguous() : at::Tensor();
}

}  // namespace

std::tuple<at::Tensor, at::Tensor, at::Tensor> slot_read_impl(
    const SlotMemoryBackend& be, const at::Tensor& query, const at::Tensor& M, const at::Tensor& C,
    const at::Tensor& count, int64_t hops, const c10::optional<at::Tensor>& R) {
  const Dims s = check_read(be, query, M, C, "C", count, hops, true);
  const at::Tensor r = opt_contig(R);
  if (r.defined()) {
    check_shape(r, "R", {{"d", s.d}, {"d", s.d}});
    check_like(r, "R", query, "query");
  }
  const at::Tensor qc = query.contiguous(), Mc = M.contiguous(), Cc = C.contiguous(),
                   cc = count.contiguous();
  at::Tensor u = at::empty({s.B, s.d}, query.options());
  at::Tensor attn = at::empty({s.B, s.K, s.N}, query.options());
  at::Tensor saved = at::empty({s.B, s.K, s.d}, query.options());
  if (s.B == 0) return {u, attn, saved};
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "slot_read", [&] {
    auto p = read_params<scalar_t>(s);
    set_data(p.q, qc, p.M, Mc, p.C, Cc, p.count, cc, p.R, r);
    set_data(p.u, u, p.attn, attn, p.saved_u, saved);
    run_kernel(be, be.read_fwd, p);
  });
  return {u, attn, saved};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> slot_read_bwd_impl(
    const SlotMemoryBackend& be, const at::Tensor& grad_u,
    const c10::optional<at::Tensor>& grad_attn, const at::Tensor& M, const at::Tensor& C,
    const at::Tensor& count, const c10::optional<at::Tensor>& R, const at::Tensor& saved_u,
    const at::Tensor& attn) {
  const int64_t hops = saved_u.dim() == 3 ? saved_u.size(1) : 0;
  const Dims s = check_read(be, grad_u, M, C, "C", count, hops, true);
  const Dim bkn[] = {{"B", s.B}, {"K", s.K}, {"N", s.N}};
  check_shape(saved_u, "saved_u", {{"B", s.B}, {"K", s.K}, {"d", s.d}});
  check_shape(attn, "attention", bkn);
  const at::Tensor ga = opt_contig(grad_attn), r = opt_contig(R);
  if (ga.defined()) check_shape(ga, "grad_attention", bkn);
  if (r.defined()) check_shape(r, "R", {{"d", s.d}, {"d", s.d}});
  check_like(saved_u, "saved_u", grad_u, "grad_u");
  check_like(attn, "attention", grad_u, "grad_u");
  if (ga.defined()) check_like(ga, "grad_attention", grad_u, "grad_u");
  if (r.defined()) check_like(r, "R", grad_u, "grad_u");
  const at::Tensor gu = grad_u.contiguous(), Mc = M.contiguous(), Cc = C.contiguous(),
                   cc = count.contiguous(), sc = saved_u.contiguous(), ac = attn.contiguous();
  at::Tensor dq = at::empty({s.B, s.d}, gu.options());
  at::Tensor dM = at::zeros(M.sizes(), gu.options()), dC = at::zeros(C.sizes(), gu.options());
  at::Tensor dRp = r.defined() ? at::zeros({s.B, s.d, s.d}, gu.options()) : at::Tensor();
  at::Tensor ws = at::empty({s.B, s.N + s.d}, gu.options());
  if (s.B > 0) {
    AT_DISPATCH_FLOATING_TYPES(gu.scalar_type(), "_slot_read_bwd", [&] {
      auto p = read_params<scalar_t>(s);
      set_data(p.M, Mc, p.C, Cc, p.count, cc, p.R, r, p.saved_u, sc, p.attn, ac);
      set_data(p.gu, gu, p.gattn, ga);
      set_data(p.dq, dq, p.dM, dM, p.dC, dC, p.dR, dRp, p.workspace, ws);
      run_kernel(be, be.read_bwd, p);
    });
  }
  at::Tensor dR = r.defined() ? dRp.sum(0) : at::empty({0}, gu.options());
  return {dq, dM, dC, dR};
}

std::tuple<at::Tensor, at::Tensor> slot_read_hard_impl(const SlotMemoryBackend& be,
                                                       const at::Tensor& query,
                                                       const at::Tensor& M, const at::Tensor& Q,
                                                       const at::Tensor& count, int64_t hops) {
  const Dims s = check_read(be, query, M, Q, "Q", count, hops, false);
  const at::Tensor qc = query.contiguous(), Mc = M.contiguous(), Qc = Q.contiguous(),
                   cc = count.contiguous();
  at::Tensor idx = at::empty({s.B, s.K}, count.options());
  at::Tensor scores = at::empty({s.B, s.K, s.N}, query.options());
  at::Tensor ws = at::empty({s.B, s.d}, query.options());
  if (s.B == 0) return {idx, scores};
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "slot_read_hard", [&] {
    auto p = hard_params<scalar_t>(s, qc, Mc, Qc, cc);
    set_data(p.index, idx, p.scores, scores, p.workspace, ws);
    run_kernel(be, be.hard_fwd, p);
  });
  return {idx, scores};
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> slot_read_hard_bwd_impl(
    const SlotMemoryBackend& be, const at::Tensor& grad_scores, const at::Tensor& query,
    const at::Tensor& M, const at::Tensor& Q, const at::Tensor& count, const at::Tensor& indices) {
  // indices: slot_read_hard's index
  check_shape(indices, "indices", {{"B", kAny}, {"K", kAny}}, at::kLong);
  const int64_t hops = indices.size(1);
  const Dims s = check_read(be, query, M, Q, "Q", count, hops, false);
  check_shape(indices, "indices", {{"B", s.B}, {"K", s.K}}, at::kLong);
  check_device_like(indices, "indices", query, "query");
  TORCH_CHECK(grad_scores.dim() != 3 || grad_scores.size(1) == hops,
              "indices [B, K] and grad_scores [B, K, N] disagree on the hop count K: indices has K = ",
              hops, ", grad_scores has K = ", grad_scores.size(1));
  check_shape(grad_scores, "grad_scores", {{"B", s.B}, {"K", s.K}, {"N", s.N}});
  check_like(grad_scores, "grad_scores", query, "query");
  if (indices.is_cpu() && indices.numel() > 0) {  // on CUDA the kernel skips out-of-range ones
    const auto mm = at::aminmax(indices);
    const int64_t lo = std::get<0>(mm).item<int64_t>(), hi = std::get<1>(mm).item<int64_t>();
    TORCH_CHECK(lo >= -1 && hi < s.N, "indices must be in [-1, ", s.N, ") (-1: empty memory), got [",
                lo, ", ", hi, "]");
  }
  const at::Tensor gs = grad_scores.contiguous(), qc = query.contiguous(), Mc = M.contiguous(),
                   Qc = Q.contiguous(), cc = count.contiguous(), ic = indices.contiguous();
  at::Tensor dq = at::empty({s.B, s.d}, query.options());
  at::Tensor dM = at::zeros(M.sizes(), query.options()), dQ = at::zeros(Q.sizes(), query.options());
  at::Tensor ws = at::empty({s.B, (s.K + 1) * s.d}, query.options());
  if (s.B == 0) return {dq, dM, dQ};
  AT_DISPATCH_FLOATING_TYPES(query.scalar_type(), "_slot_read_hard_bwd", [&] {
    auto p = hard_params<scalar_t>(s, qc, Mc, Qc, cc);
    set_data(p.index, ic, p.gscores, gs);
    set_data(p.dq, dq, p.dM, dM, p.dQ, dQ, p.workspace, ws);
    run_kernel(be, be.hard_bwd, p);
  });
  return {dq, dM, dQ};
}

namespace {

// slot_write_: ATen ops, so one implementation serves every device.
void slot_write_(at::Tensor& M, at::Tensor& C, at::Tensor& count, const at::Tensor& m,
                 const at::Tensor& c, c10::string_view policy) {
  TORCH_CHECK(policy == "append" || policy == "ring", "policy must be 'append' or 'ring', got '",
              std::string(policy), "'");
  check_shape(M, "M", {{"B", kAny}, {"N", kAny}, {"d", kAny}});
  const int64_t B = M.size(0), N = M.size(1), d = M.size(2);
  check_shape_like(C, "C", M, "M");
  check_shape(count, "count", {{"B", B}}, at::kLong);
  check_shape(m, "m", {{"B", B}, {"d", d}});
  check_shape(c, "c", {{"B", B}, {"d", d}});
  check_dtype_like(C, "C", M, "M");
  check_dtype_like(m, "m", M, "M");
  check_dtype_like(c, "c", M, "M");
  check_device_like(C, "C", M, "M");
  check_device_like(count, "count", M, "M");
  check_device_like(m, "m", M, "M");
  check_device_like(c, "c", M, "M");
  TORCH_CHECK(N >= 1, "M must have at least one slot");
  // Written in place: an expanded (stride-0) or self-overlapping M, C or count would have rows
  // overwrite each other, and M, C and count must not share memory.
  const std::pair<const at::Tensor*, const char*> out[] = {{&M, "M"}, {&C, "C"}, {&count, "count"}};
  for (const auto& [t, name] : out) {
    TORCH_CHECK(at::has_internal_overlap(*t) != at::MemOverlap::Yes, "slot_write_: ", name,
                " is written in place and must not be an expanded or self-overlapping view "
                "(strides ", t->strides(), "); pass a contiguous tensor");
  }
  TORCH_CHECK(at::get_overlap_status(M, C) == at::MemOverlapStatus::No,
              "slot_write_: M and C must be different memories (they overlap)");
  if (B == 0) return;
  // one host read: a negative count, or (append) a full row, is an error naming the rows
  const at::Tensor negative = count.lt(0);
  const at::Tensor bad = policy == "append" ? negative.logical_or(count.ge(N)) : negative;
  if (bad.any().item<bool>()) {
    const bool neg = negative.any().item<bool>();  // error path only: a second read is fine
    const at::Tensor which = (neg ? negative : bad).nonzero().flatten().cpu();
    std::ostringstream rows;
    for (int64_t i = 0; i < std::min<int64_t>(which.numel(), 8); ++i)
      rows << (i ? ", " : "") << which[i].item<int64_t>();
    if (which.numel() > 8) rows << ", ...";
    TORCH_CHECK(!neg, "slot_write_: count must be >= 0, got ",
                count[which[0].item<int64_t>()].item<int64_t>(), " in batch rows [", rows.str(), "]");
    TORCH_CHECK(false, "slot_write_: memory full (", N, " slots) in batch rows [", rows.str(),
                "]; use policy='ring' to overwrite the oldest slot");
  }
  const at::Tensor slot = policy == "ring" ? count.remainder(N) : count;
  const at::Tensor rows = at::arange(B, count.options());
  // M is written first: if writing C fails (e.g. C is a leaf that requires grad), M's rows
  // are put back, so an error leaves M, C and count as they were
  const at::Tensor old_m = M.index({rows, slot});
  M.index_put_({rows, slot}, m);
  try {
    C.index_put_({rows, slot}, c);
  } catch (...) {
    M.index_put_({rows, slot}, old_m);
    throw;
  }
  count.add_(1);
}

}  // namespace
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CompositeExplicitAutograd, m) {
  m.impl("slot_write_", TORCH_FN(memory_ext::slot_write_));
}

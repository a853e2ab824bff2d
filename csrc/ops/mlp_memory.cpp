// Host wrappers of the MLP memory ops: validate -> fill params -> call the backend.
#include "mlp_memory.h"

#include "checks.h"

#include <cstdlib>
#include <limits>
#include <string>

namespace memory_ext {
namespace {

std::vector<Dim> with_time(std::vector<Dim> dims, bool has_time, int64_t T) {
  if (has_time) dims.insert(dims.begin() + 1, Dim{"T", T});
  return dims;
}

const char* width(int l) {
  static const char* names[] = {"n_0", "n_1", "n_2", "n_3", "n_4"};
  return names[l];
}

// "write_keys must have dtype Float like weights[0], got Long" (and the device likewise)
void check_like_weights(const Tensor& t, const Name& name, const Tensor& w0) {
  check_like(t, name, w0, "weights[0]");
}

Activation parse_activation(c10::string_view a) {
  if (a == "tanh") return Activation::Tanh;
  if (a == "sigmoid") return Activation::Sigmoid;
  if (a == "relu") return Activation::Relu;
  if (a == "identity") return Activation::Identity;
  TORCH_CHECK(false, "activation must be one of 'tanh', 'sigmoid', 'relu', 'identity', got '",
              std::string(a), "'");
}

WriteRule parse_rule(c10::string_view r) {
  if (r == "local") return WriteRule::Local;
  if (r == "grad") return WriteRule::Grad;
  TORCH_CHECK(false, "rule must be 'local' or 'grad', got '", std::string(r), "'");
}

bool nan_fill_outputs() {
  static const bool on = std::getenv("MEMORY_EXT_DEBUG_NAN_FILL") != nullptr;
  return on;
}

Tensor new_output(const Tensor& like, at::IntArrayRef sizes) {
  Tensor t = at::empty(sizes, like.options());
  if (nan_fill_outputs()) t.fill_(std::numeric_limits<double>::quiet_NaN());
  return t;
}

// The kernels' scratch: [B, per_element] when the backend wants it from the host, else none.
Tensor kernel_workspace(const MlpMemoryBackend& be, int64_t B, std::size_t per_element,
                        const Tensor& like) {
  return at::empty({be.host_workspace ? B : 0, static_cast<int64_t>(per_element)}, like.options());
}

template <typename T>
T* workspace_ptr(const Tensor& ws) {
  return ws.numel() > 0 ? ws.data_ptr<T>() : nullptr;
}

// Weights define B, L, n_0..n_L, dtype and device.
MlpShape check_weights(const MlpMemoryBackend& be, TensorList weights, const char* name) {
  MlpShape s;
  const int64_t L = static_cast<int64_t>(weights.size());
  TORCH_CHECK(L >= 1 && L <= kMaxLayers, name, " must be a list of 1 to ", kMaxLayers,
              " tensors (one per layer), got ", L);
  const Tensor& w0 = weights[0];
  check_shape(w0, Name(name, 0), {{"B", kAny}, {"n_1", kAny}, {"n_0", kAny}});
  check_float(be, w0, Name(name, 0));
  check_fits_int(w0.size(0), name, "B");
  check_fits_int(w0.size(2), name, "n_0");
  s.L = static_cast<int>(L);
  s.B = static_cast<int>(w0.size(0));
  s.n[0] = static_cast<int>(w0.size(2));
  int64_t total = 0;  // MlpShape::weights_numel(), an int
  for (int l = 0; l < s.L; ++l) {
    const Name nm(name, l);
    const Tensor& w = weights[l];
    const int64_t out = w.dim() == 3 ? w.size(1) : -1;
    check_shape(w, nm, {{"B", s.B}, {width(l + 1), out}, {width(l), s.n[l]}});
    if (l) check_like_weights(w, nm, w0);
    TORCH_CHECK(out >= 1, nm, " must have a width n_", l + 1, " >= 1, got ", w.sizes());
    TORCH_CHECK(out * s.n[l] <= std::numeric_limits<int>::max(), nm,
                " is too large: the kernels index one layer's weights with 32-bit ints, got ",
                w.sizes());
    total += out * s.n[l];
    TORCH_CHECK(total <= std::numeric_limits<int>::max(), name,
                " is too large: the kernels index all layers' weights with 32-bit ints, got ",
                total, " elements per batch element");
    s.n[l + 1] = static_cast<int>(out);
  }
  TORCH_CHECK(s.n[0] >= 1, name, "[0] must have a key width n_0 >= 1, got ", w0.sizes());
  return s;
}

// C >= T stores the one checkpoint W_0, as C = T does: C is clamped to max(T, 1), so that it fits
// the kernels' int and the backward's scratch (C + 1 weight snapshots) is sized by min(C, T).
int64_t clamp_checkpoint_every(int64_t C, int64_t T) {
  TORCH_CHECK(C >= 1, "checkpoint_every must be >= 1, got ", C);
  return std::min<int64_t>(C, std::max<int64_t>(T, 1));
}

struct ScanInputs {
  MlpShape s;
  Activation act;
  WriteRule rule;
  bool beta_per_layer = false;
  std::vector<Tensor> w;  // [B, n_{l+1}, n_l]
  Tensor kw;              // [B, T, H, n_0]
  std::vector<Tensor> z;  // [B, T, H, n_l] or values [B, T, H, n_L]
  Tensor beta;            // [B, T, L] or [B, T] (or the step forms [B, L] / [B])
  Tensor kr;              // [B, T, Hr, n_0]
  OptTensor alpha;        // [B]
  OptTensor rv;           // [B, T, H, n_L]
  bool recon = false;     // compute recon (given values, or rule grad's own values)
};

// Validates step-shaped (has_time false) or scan-shaped inputs and returns scan-shaped,
// contiguous tensors.
ScanInputs parse_scan(const MlpMemoryBackend& be, TensorList weights, const Tensor& kw,
                      TensorList targets, const Tensor& beta, const OptTensor& kr,
                      const OptTensor& alpha, const OptTensor& rv, c10::string_view rule,
                      c10::string_view activation, bool has_time, const char* weights_name) {
  ScanInputs in;
  in.act = parse_activation(activation);
  in.rule = parse_rule(rule);
  MlpShape& s = in.s;
  s = check_weights(be, weights, weights_name);
  const Tensor& ref = weights[0];
  const int L = s.L;
  const int64_t B = s.B, n0 = s.n[0], nL = s.n[L];
  check_shape(kw, "write_keys",
              with_time({{"B", kAny}, {"H", kAny}, {width(0), kAny}}, has_time, kAny));
  check_like_weights(kw, "write_keys", ref);
  const int64_t T = has_time ? kw.size(1) : 1;
  const int64_t H = kw.size(-2);
  check_shape(kw, "write_keys", with_time({{"B", B}, {"H", H}, {width(0), n0}}, has_time, T));
  TORCH_CHECK(H >= 1, "write_keys must have at least one head (H >= 1), got ", kw.sizes());
  check_fits_int(T, "write_keys", "T");
  check_fits_int(H, "write_keys", "H");
  s.T = static_cast<int>(T);
  s.H = static_cast<int>(H);

  const size_t want = in.rule == WriteRule::Local ? static_cast<size_t>(L) : 1;
  TORCH_CHECK(targets.size() == want, "targets must be a list of ", want,
              in.rule == WriteRule::Local ? " tensors (one per layer, [B, H, n_l] for l = 1..L) "
                                            "for rule 'local'"
                                          : " tensor (the values [B, H, n_L]) for rule 'grad'",
              ", got ", targets.size());
  for (size_t l = 0; l < want; ++l) {
    // rule grad's one tensor is called "targets" (the values), rule local's "targets[l]"
    const Name nm = in.rule == WriteRule::Local ? Name("targets", static_cast<int>(l)) : Name("targets");
    const int wl = in.rule == WriteRule::Local ? static_cast<int>(l) + 1 : L;
    check_shape(targets[l], nm, with_time({{"B", B}, {"H", H}, {width(wl), s.n[wl]}}, has_time, T));
    check_like_weights(targets[l], nm, ref);
    Tensor z = targets[l].contiguous();
    in.z.push_back(z);  // step-shaped [B, H, n] has the memory layout of [B, 1, H, n]
  }

  check_like_weights(beta, "beta", ref);
  const int64_t bdim = has_time ? 2 : 1;
  const bool per_layer = beta.dim() == bdim + 1;
  const std::vector<Dim> beta_shared = with_time({{"B", B}}, has_time, T),
                         beta_per_layer = with_time({{"B", B}, {"L", L}}, has_time, T);
  if (per_layer) {
    check_shape(beta, "beta", beta_per_layer);
  } else {
    TORCH_CHECK(has_shape(beta, beta_shared), "beta must be ", shape_str(beta_shared), " or ",
                shape_str(beta_per_layer), ", got ", beta.sizes());
  }
  in.beta_per_layer = per_layer;
  in.beta = beta.contiguous();

  if (kr.has_value()) {
    const Tensor& r = *kr;
    check_shape(r, "read_keys",
                with_time({{"B", kAny}, {"Hr", kAny}, {width(0), kAny}}, has_time, kAny));
    check_like_weights(r, "read_keys", ref);
    const int64_t Hr = r.size(-2);
    check_shape(r, "read_keys", with_time({{"B", B}, {"Hr", Hr}, {width(0), n0}}, has_time, T));
    check_fits_int(H + Hr, "read_keys", "H + Hr");
    s.Hr = static_cast<int>(Hr);
    Tensor rc = r.contiguous();
    in.kr = rc;
  } else {
    s.Hr = 0;
    in.kr = at::empty({B, T, 0, n0}, ref.options());
  }

  if (alpha.has_value()) {
    check_shape(*alpha, "alpha", {{"B", B}});
    check_like_weights(*alpha, "alpha", ref);
    in.alpha = alpha->contiguous();
  }
  if (rv.has_value()) {
    check_shape(*rv, "recon_values", with_time({{"B", B}, {"H", H}, {width(L), nL}}, has_time, T));
    check_like_weights(*rv, "recon_values", ref);
    Tensor v = rv->contiguous();
    in.rv = v;
  }
  in.recon = in.rv.has_value() || in.rule == WriteRule::Grad;
  for (int l = 0; l < L; ++l) in.w.push_back(weights[l].contiguous());
  in.kw = kw.contiguous();
  return in;
}

template <typename T>
void fill_fwd_inputs(const ScanInputs& in, MlpScanFwdParams<T>& p) {
  p.s = in.s;
  p.act = in.act;
  p.rule = in.rule;
  for (int l = 0; l < in.s.L; ++l) p.w0[l] = in.w[l].data_ptr<T>();
  p.kw = in.kw.data_ptr<T>();
  for (size_t l = 0; l < in.z.size(); ++l) p.z[l] = in.z[l].data_ptr<T>();
  p.beta = in.beta.data_ptr<T>();
  p.beta_per_layer = in.beta_per_layer;
  p.alpha = in.alpha ? in.alpha->data_ptr<T>() : nullptr;
  p.kr = in.kr.data_ptr<T>();
  // rule grad always reconstructs its own values unless other values are given
  p.rv = !in.recon ? nullptr : (in.rv ? in.rv->data_ptr<T>() : p.z[0]);
}

struct FwdOut {
  Tensor reads;
  std::vector<Tensor> w_out;
  Tensor recon;
  std::vector<Tensor> ckpt;
  Tensor saved;  // [B, T, mlp_step_saved] when asked for
};

template <typename T>
void run_scan_fwd(const MlpMemoryBackend& be, const ScanInputs& in, FwdOut& o, int C) {
  MlpScanFwdParams<T> p;
  fill_fwd_inputs(in, p);
  p.ckpt_every = C;
  p.reads = o.reads.data_ptr<T>();
  for (int l = 0; l < in.s.L; ++l) {
    p.w_out[l] = o.w_out[l].data_ptr<T>();
    p.ckpt[l] = o.ckpt.empty() ? nullptr : o.ckpt[l].data_ptr<T>();
  }
  p.recon = in.recon ? o.recon.data_ptr<T>() : nullptr;
  set_data(p.saved, o.saved);
  Tensor ws = kernel_workspace(be, in.s.B, mlp_fwd_workspace(in.s), in.w[0]);
  p.workspace = workspace_ptr<T>(ws);
  run_kernel(be, be.scan_fwd, p);
}

// has_time false: step-shaped outputs, reads [B, Hr, n_L] and recon [B]. inplace: the weights
// are updated where they are (in.w, contiguous) and each step's saved block is returned.
FwdOut scan_forward(const MlpMemoryBackend& be, const ScanInputs& in, int64_t C, bool store_ckpt,
                    bool has_time, bool inplace = false) {
  const MlpShape& s = in.s;
  const Tensor& ref = in.w[0];
  FwdOut o;
  o.reads = has_time ? new_output(ref, {s.B, s.T, s.Hr, s.n[s.L]})
                     : new_output(ref, {s.B, s.Hr, s.n[s.L]});
  o.recon = !in.recon ? at::empty({0}, ref.options())
                      : (has_time ? new_output(ref, {s.B, s.T}) : new_output(ref, {s.B}));
  const int64_t NC = (s.T + C - 1) / C;
  for (int l = 0; l < s.L; ++l) {
    o.w_out.push_back(inplace ? in.w[l] : new_output(ref, {s.B, s.n[l + 1], s.n[l]}));
    if (store_ckpt) o.ckpt.push_back(new_output(ref, {s.B, NC, s.n[l + 1], s.n[l]}));
  }
  // zeroed: the alignment padding and (rule local) the g rows are never written
  if (inplace) o.saved = at::zeros({s.B, static_cast<int64_t>(mlp_step_saved(s))}, ref.options());
  if (s.B == 0) return o;
  if (ref.scalar_type() == at::kFloat) {
    run_scan_fwd<float>(be, in, o, static_cast<int>(C));
  } else {
    run_scan_fwd<double>(be, in, o, static_cast<int>(C));
  }
  return o;
}


// Zero-initialised gradients of a scan's inputs (scan-shaped, like ScanInputs).
struct InputGrads {
  Tensor kw, beta, kr, alpha, rv;
  std::vector<Tensor> z;
  explicit InputGrads(const ScanInputs& in) {
    const Tensor& ref = in.w[0];
    for (const auto& t : in.z) z.push_back(at::zeros_like(t));
    kw = at::zeros_like(in.kw);
    beta = at::zeros_like(in.beta);
    kr = at::zeros_like(in.kr);
    alpha = in.alpha ? at::zeros_like(*in.alpha) : at::empty({0}, ref.options());
    rv = in.rv ? at::zeros_like(*in.rv) : at::empty({0}, ref.options());
  }
};

// The backward parameters every backward shares: inputs, upstream grads, input grads.
template <typename T>
void fill_bwd_params(const ScanInputs& in, const InputGrads& g, const OptTensor& grad_reads,
                     const OptTensor& grad_recon, MlpScanBwdParams<T>& p) {
  MlpScanFwdParams<T> f;
  fill_fwd_inputs(in, f);
  p.s = in.s;
  p.act = in.act;
  p.rule = in.rule;
  p.kw = f.kw;
  for (int l = 0; l < kMaxLayers; ++l) p.z[l] = f.z[l];
  p.beta = f.beta;
  p.beta_per_layer = f.beta_per_layer;
  p.alpha = f.alpha;
  p.kr = f.kr;
  p.rv = f.rv;
  // grad_reads / grad_recon must be contiguous (see contiguous_opt)
  p.g_reads = grad_reads ? grad_reads->data_ptr<T>() : nullptr;
  p.g_recon = grad_recon ? grad_recon->data_ptr<T>() : nullptr;
  p.g_kw = g.kw.data_ptr<T>();
  for (size_t l = 0; l < g.z.size(); ++l) p.g_z[l] = g.z[l].data_ptr<T>();
  p.g_beta = g.beta.data_ptr<T>();
  p.g_alpha = in.alpha ? g.alpha.data_ptr<T>() : nullptr;
  p.g_kr = g.kr.data_ptr<T>();
  p.g_rv = in.rv ? g.rv.data_ptr<T>() : p.g_z[0];
}

OptTensor contiguous_opt(const OptTensor& t) {
  return t ? OptTensor(t->contiguous()) : std::nullopt;
}

void check_inplace_weights(TensorList weights, const char* name) {
  for (size_t l = 0; l < weights.size(); ++l) {
    check_contiguous(weights[l], Name(name, static_cast<int64_t>(l)),
                     "the in-place ops update it where it is");
  }
}

}  // namespace

// ---------------------------------------------------------------------------------------------
Tensor mlp_memory_read_impl(const MlpMemoryBackend& be, TensorList weights,
                            const Tensor& keys, c10::string_view activation) {
  const Activation act = parse_activation(activation);
  MlpShape s = check_weights(be, weights, "weights");
  check_shape(keys, "keys", {{"B", kAny}, {"H", kAny}, {width(0), kAny}});
  check_shape(keys, "keys", {{"B", s.B}, {"H", keys.size(1)}, {width(0), s.n[0]}});
  check_like_weights(keys, "keys", weights[0]);
  check_fits_int(keys.size(1), "keys", "H");
  s.Hr = static_cast<int>(keys.size(1));
  s.H = s.Hr;
  Tensor out = new_output(weights[0], {s.B, s.Hr, s.n[s.L]});
  if (s.B == 0 || s.Hr == 0) return out;
  std::vector<Tensor> w;
  for (const auto& t : weights) w.push_back(t.contiguous());
  Tensor k = keys.contiguous();
  Tensor ws = kernel_workspace(be, s.B, mlp_read_workspace(s), w[0]);
  AT_DISPATCH_FLOATING_TYPES(w[0].scalar_type(), "mlp_memory_read", [&] {
    MlpReadParams<scalar_t> p;
    p.s = s;
    p.act = act;
    for (int l = 0; l < s.L; ++l) p.w[l] = w[l].data_ptr<scalar_t>();
    p.keys = k.data_ptr<scalar_t>();
    p.out = out.data_ptr<scalar_t>();
    p.workspace = workspace_ptr<scalar_t>(ws);
    run_kernel(be, be.read_fwd, p);
  });
  return out;
}

std::tuple<std::vector<Tensor>, Tensor> mlp_memory_read_bwd_impl(const MlpMemoryBackend& be,
                                                                 TensorList weights,
                                                                 const Tensor& keys,
                                                                 const Tensor& grad_reads,
                                                                 c10::string_view activation) {
  const Activation act = parse_activation(activation);
  MlpShape s = check_weights(be, weights, "weights");
  check_shape(keys, "keys", {{"B", s.B}, {"H", keys.size(1)}, {width(0), s.n[0]}});
  check_like_weights(keys, "keys", weights[0]);
  check_fits_int(keys.size(1), "keys", "H");
  s.Hr = static_cast<int>(keys.size(1));
  s.H = s.Hr;
  check_shape(grad_reads, "grad_reads", {{"B", s.B}, {"H", s.Hr}, {width(s.L), s.n[s.L]}});
  check_like_weights(grad_reads, "grad_reads", weights[0]);
  std::vector<Tensor> gw, w;
  for (const auto& t : weights) {
    gw.push_back(at::zeros_like(t, at::MemoryFormat::Contiguous));
    w.push_back(t.contiguous());
  }
  Tensor gk = at::zeros_like(keys, at::MemoryFormat::Contiguous);
  if (s.B == 0 || s.Hr == 0) return {gw, gk};
  Tensor k = keys.contiguous(), go = grad_reads.contiguous();
  Tensor ws = kernel_workspace(be, s.B, mlp_read_workspace(s), w[0]);
  AT_DISPATCH_FLOATING_TYPES(w[0].scalar_type(), "mlp_memory_read_bwd", [&] {
    MlpReadParams<scalar_t> p;
    p.s = s;
    p.act = act;
    for (int l = 0; l < s.L; ++l) {
      p.w[l] = w[l].data_ptr<scalar_t>();
      p.g_w[l] = gw[l].data_ptr<scalar_t>();
    }
    p.keys = k.data_ptr<scalar_t>();
    p.g_out = go.data_ptr<scalar_t>();
    p.g_keys = gk.data_ptr<scalar_t>();
    p.workspace = workspace_ptr<scalar_t>(ws);
    run_kernel(be, be.read_bwd, p);
  });
  return {gw, gk};
}

std::vector<Tensor> mlp_memory_write_impl(const MlpMemoryBackend& be, TensorList weights,
                                          const Tensor& write_keys, TensorList targets,
                                          const Tensor& beta, const OptTensor& alpha,
                                          c10::string_view rule, c10::string_view activation) {
  ScanInputs in = parse_scan(be, weights, write_keys, targets, beta, std::nullopt, alpha,
                             std::nullopt, rule, activation, false, "weights");
  in.recon = false;  // a pure write reads nothing back
  return scan_forward(be, in, 1, false, false).w_out;
}

std::tuple<std::vector<Tensor>, Tensor, Tensor> mlp_memory_step_impl(
    const MlpMemoryBackend& be, TensorList weights, const Tensor& write_keys, TensorList targets,
    const Tensor& beta, const Tensor& read_keys, const OptTensor& alpha,
    const OptTensor& recon_values, c10::string_view rule, c10::string_view activation) {
  ScanInputs in = parse_scan(be, weights, write_keys, targets, beta, read_keys, alpha,
                             recon_values, rule, activation, false, "weights");
  FwdOut o = scan_forward(be, in, 1, false, false);
  return {o.w_out, o.reads, o.recon};
}

std::tuple<Tensor, std::vector<Tensor>, Tensor, std::vector<Tensor>> mlp_memory_scan_impl(
    const MlpMemoryBackend& be, TensorList weights, const Tensor& write_keys, TensorList targets,
    const Tensor& beta, const Tensor& read_keys, const OptTensor& alpha,
    const OptTensor& recon_values, c10::string_view rule, c10::string_view activation,
    int64_t checkpoint_every) {
  TORCH_CHECK(checkpoint_every >= 1, "checkpoint_every must be >= 1, got ", checkpoint_every);
  ScanInputs in = parse_scan(be, weights, write_keys, targets, beta, read_keys, alpha,
                             recon_values, rule, activation, true, "weights");
  FwdOut o = scan_forward(be, in, clamp_checkpoint_every(checkpoint_every, in.s.T), true, true);
  return {o.reads, o.w_out, o.recon, o.ckpt};
}

std::tuple<std::vector<Tensor>, Tensor, std::vector<Tensor>, Tensor, Tensor, Tensor, Tensor>
mlp_memory_scan_bwd_impl(const MlpMemoryBackend& be, TensorList checkpoints,
                         const Tensor& write_keys, TensorList targets, const Tensor& beta,
                         const Tensor& read_keys,
                         const OptTensor& alpha, const OptTensor& recon_values,
                         const OptTensor& grad_reads, TensorList grad_final_weights,
                         const OptTensor& grad_recon, c10::string_view rule,
                         c10::string_view activation, int64_t checkpoint_every) {
  TORCH_CHECK(checkpoint_every >= 1, "checkpoint_every must be >= 1, got ", checkpoint_every);
  // weights-shaped views of the checkpoints for validation
  std::vector<Tensor> w_like;
  for (size_t l = 0; l < checkpoints.size(); ++l) {
    const Tensor& c = checkpoints[l];
    check_shape(c, Name("checkpoints", static_cast<int64_t>(l)),
                {{"B", kAny}, {"NC", kAny}, {"n_{l+1}", kAny}, {"n_l", kAny}});
    w_like.push_back(c.size(1) > 0 ? c.select(1, 0)
                                   : at::empty({c.size(0), c.size(2), c.size(3)}, c.options()));
  }
  ScanInputs in = parse_scan(be, w_like, write_keys, targets, beta, read_keys, alpha,
                             recon_values, rule, activation, true, "checkpoints");
  const MlpShape& s = in.s;
  checkpoint_every = clamp_checkpoint_every(checkpoint_every, s.T);  // fits an int now
  const int64_t NC = (s.T + checkpoint_every - 1) / checkpoint_every;
  for (const auto& c : checkpoints) {
    TORCH_CHECK(c.size(1) == NC, "checkpoints must hold NC = ceil(T / checkpoint_every) = ", NC,
                " snapshots, got ", c.sizes());
  }
  const Tensor& ref = in.w[0];
  if (grad_reads) {
    check_shape(*grad_reads, "grad_reads",
                {{"B", s.B}, {"T", s.T}, {"Hr", s.Hr}, {width(s.L), s.n[s.L]}});
    check_like(*grad_reads, "grad_reads", ref, "checkpoints[0]");
  }
  TORCH_CHECK(grad_final_weights.empty() ||
                  static_cast<int>(grad_final_weights.size()) == s.L,
              "grad_final_weights must be empty or hold L = ", s.L, " tensors");
  for (size_t l = 0; l < grad_final_weights.size(); ++l) {
    check_shape(grad_final_weights[l], Name("grad_final_weights", static_cast<int>(l)),
                {{"B", s.B}, {width(l + 1), s.n[l + 1]}, {width(l), s.n[l]}});
    check_like(grad_final_weights[l], Name("grad_final_weights", static_cast<int>(l)), ref,
               "checkpoints[0]");
  }
  if (grad_recon) {
    check_shape(*grad_recon, "grad_recon", {{"B", s.B}, {"T", s.T}});
    check_like(*grad_recon, "grad_recon", ref, "checkpoints[0]");
  }

  std::vector<Tensor> g_w0, gwT, ck;
  const bool kernel_writes_g_w0 = s.B > 0 && s.T > 0;  // every element's g_w0, in full
  for (int l = 0; l < s.L; ++l) {
    g_w0.push_back(kernel_writes_g_w0 ? at::empty({s.B, s.n[l + 1], s.n[l]}, ref.options())
                                      : at::zeros({s.B, s.n[l + 1], s.n[l]}, ref.options()));
    ck.push_back(checkpoints[l].contiguous());
    if (!grad_final_weights.empty()) gwT.push_back(grad_final_weights[l].contiguous());
  }
  InputGrads g(in);
  const OptTensor go = contiguous_opt(grad_reads), gr = contiguous_opt(grad_recon);
  if (kernel_writes_g_w0) {
    Tensor ws = kernel_workspace(be, s.B, mlp_bwd_workspace(s, static_cast<int>(checkpoint_every)), ref);
    AT_DISPATCH_FLOATING_TYPES(ref.scalar_type(), "mlp_memory_scan_bwd", [&] {
      MlpScanBwdParams<scalar_t> p;
      fill_bwd_params(in, g, go, gr, p);
      p.ckpt_every = static_cast<int>(checkpoint_every);
      for (int l = 0; l < s.L; ++l) {
        p.ckpt[l] = ck[l].data_ptr<scalar_t>();
        p.g_wT[l] = gwT.empty() ? nullptr : gwT[l].data_ptr<scalar_t>();
        p.g_w0[l] = g_w0[l].data_ptr<scalar_t>();
      }
      p.workspace = workspace_ptr<scalar_t>(ws);
      run_kernel(be, be.scan_bwd, p);
    });
  } else {
    for (int l = 0; l < s.L && !gwT.empty(); ++l) g_w0[l].copy_(gwT[l]);
  }
  return {g_w0, g.kw, g.z, g.beta, g.kr, g.alpha, g.rv};
}

std::tuple<Tensor, Tensor, Tensor> mlp_memory_step_inplace_impl(
    const MlpMemoryBackend& be, TensorList weights, const Tensor& write_keys, TensorList targets,
    const Tensor& beta, const Tensor& read_keys, const OptTensor& alpha,
    const OptTensor& recon_values, c10::string_view rule, c10::string_view activation) {
  check_inplace_weights(weights, "weights");
  ScanInputs in = parse_scan(be, weights, write_keys, targets, beta, read_keys, alpha,
                             recon_values, rule, activation, false, "weights");
  FwdOut o = scan_forward(be, in, 1, false, false, /*inplace=*/true);
  return {o.reads, o.recon, o.saved};
}

std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
mlp_memory_step_bwd_inplace_impl(const MlpMemoryBackend& be, TensorList weights,
                                 TensorList grad_weights, const Tensor& saved,
                                 const Tensor& write_keys, TensorList targets, const Tensor& beta,
                                 const Tensor& read_keys, const OptTensor& alpha,
                                 const OptTensor& recon_values, const OptTensor& grad_reads,
                                 const OptTensor& grad_recon, c10::string_view rule,
                                 c10::string_view activation) {
  check_inplace_weights(weights, "weights");
  check_inplace_weights(grad_weights, "grad_weights");
  ScanInputs in = parse_scan(be, weights, write_keys, targets, beta, read_keys, alpha,
                             recon_values, rule, activation, false, "weights");
  const MlpShape& s = in.s;
  const Tensor& ref = in.w[0];
  TORCH_CHECK(grad_weights.size() == weights.size(), "grad_weights must hold L = ", s.L,
              " tensors like weights, got ", grad_weights.size());
  for (int l = 0; l < s.L; ++l) {
    check_shape(grad_weights[l], Name("grad_weights", l),
                {{"B", s.B}, {width(l + 1), s.n[l + 1]}, {width(l), s.n[l]}});
    check_like_weights(grad_weights[l], Name("grad_weights", l), ref);
  }
  check_shape(saved, "saved", {{"B", s.B}, {"S", static_cast<int64_t>(mlp_step_saved(s))}});
  check_like_weights(saved, "saved", ref);
  check_contiguous(saved, "saved", "the in-place backward reads it where it is");
  if (grad_reads) {
    check_shape(*grad_reads, "grad_reads", {{"B", s.B}, {"Hr", s.Hr}, {width(s.L), s.n[s.L]}});
  }
  if (grad_recon) check_shape(*grad_recon, "grad_recon", {{"B", s.B}});
  InputGrads g(in);
  const OptTensor go = contiguous_opt(grad_reads), gr = contiguous_opt(grad_recon);
  if (s.B > 0) {
    Tensor ws = kernel_workspace(be, s.B, mlp_bwd_workspace(s, 1), ref);
    AT_DISPATCH_FLOATING_TYPES(ref.scalar_type(), "mlp_memory_step_bwd_", [&] {
      MlpScanBwdParams<scalar_t> p;
      fill_bwd_params(in, g, go, gr, p);
      for (int l = 0; l < s.L; ++l) {
        p.w_inout[l] = weights[l].data_ptr<scalar_t>();
        p.g_w0[l] = grad_weights[l].data_ptr<scalar_t>();
      }
      p.saved = saved.data_ptr<scalar_t>();
      p.workspace = workspace_ptr<scalar_t>(ws);
      run_kernel(be, be.scan_bwd, p);
    });
  }
  // step-shaped like the inputs; the targets' gradients as one tensor [B, H, sum of widths]
  return {g.kw, at::cat(g.z, -1), g.beta, g.kr, g.alpha, g.rv};
}

}  // namespace memory_ext

// The MLP fast-weight memory algorithm for ONE batch element, written once for every backend.
//
// `E` is an execution policy (CpuExec in csrc/cpu, CudaExec in csrc/cuda) providing:
//   sync()                         barrier between phases (no-op on CPU)
//   leader()                       true on exactly one thread
//   for_n(n, f)                    f(i) for i in [0, n), spread over threads
//   sum<T>(n, f)                   sum of f(i) over [0, n), result on every thread
//   copy(n, src, dst)              dst[i] = src[i] for i in [0, n) (no overlap)
//   gemm_nt(M,N,K,A,B,C,a,b,epi)   C[m,n] = epi(m, n, a * sum_k A[m,k] B[n,k] + b C[m,n])
//   gemm_tn(M,N,K,A,B,C,a,b)       C[m,n] = a * sum_k A[k,m] B[k,n] + b C[m,n]
//   gemm_nn(M,N,K,A,B,C,a,b,epi)   C[m,n] = epi(m, n, a * sum_k A[m,k] B[k,n] + b C[m,n])
// All matrices are dense row-major; b == 0 means C is not read. Every phase that reads what
// another thread wrote is preceded by sync(). Control flow is uniform across threads.
#pragma once

#include <type_traits>

#include "memory_ext/mlp_memory_params.h"

namespace memory_ext {

// Epilogues of the gemms (NoEpilogue is in common.h). On the CPU, row(m, c, n) applies one to a
// whole output row with the activation switch hoisted out of the (vectorised) loop.

#if !defined(__CUDACC__)
// Calls f(std::integral_constant<Activation, A>) for the runtime activation `act`, so the
// loop inside f is compiled once per activation (no switch inside a vectorised loop).
template <typename F>
inline void with_act(Activation act, F f) {
  switch (act) {
    case Activation::Tanh: f(std::integral_constant<Activation, Activation::Tanh>{}); break;
    case Activation::Sigmoid: f(std::integral_constant<Activation, Activation::Sigmoid>{}); break;
    case Activation::Relu: f(std::integral_constant<Activation, Activation::Relu>{}); break;
    default: f(std::integral_constant<Activation, Activation::Identity>{});
  }
}
#endif

template <typename T>
struct ActEpilogue {  // hidden-layer activation after a forward gemm
  Activation act;
  ME_HD ME_INLINE T operator()(int, int, T v) const { return act_forward(act, v); }
#if !defined(__CUDACC__)
  void row(int, T* c, int n) const {
    with_act(act, [&](auto a) {
#pragma omp simd
      for (int j = 0; j < n; ++j) c[j] = act_forward_t<decltype(a)::value>(c[j]);
    });
  }
#endif
};

template <typename T>
struct ActGradEpilogue {  // v * act'(y[m, n]) for a backward gemm
  Activation act;
  const T* y;
  int ld;
  ME_HD ME_INLINE T operator()(int m, int n, T v) const { return v * act_grad(act, y[m * ld + n]); }
#if !defined(__CUDACC__)
  void row(int m, T* c, int n) const {
    const T* ym = y + m * ld;
    with_act(act, [&](auto a) {
#pragma omp simd
      for (int j = 0; j < n; ++j) c[j] *= act_grad_t<decltype(a)::value>(ym[j]);
    });
  }
#endif
};

template <typename T, typename E>
ME_DEVICE void copy_n(E& ex, int n, const T* src, T* dst) {
  ex.copy(n, src, dst);
}

// Forward pass of `rows` keys through W (spec 1.1). acts[0] = keys, acts[1..L-1] hidden
// buffers [rows, n[l]], acts[L] the output [rows, n_L]. Ends synced.
template <typename T, typename E>
ME_DEVICE void mlp_forward(E& ex, const MlpShape& s, Activation act, T* const* W, T* const* acts,
                           int rows) {
  ME_UNROLL for (int l = 0; l < ME_LAYER_END(s.L); ++l) {
    if (l >= s.L) break;
    if (l < s.L - 1) {
      ex.gemm_nt(rows, s.n[l + 1], s.n[l], acts[l], W[l], acts[l + 1], T(1), T(0),
                 ActEpilogue<T>{act});
    } else {
      ex.gemm_nt(rows, s.n[l + 1], s.n[l], acts[l], W[l], acts[l + 1], T(1), T(0), NoEpilogue{});
    }
    ex.sync();
  }
}

// Backward of mlp_forward. delta: [rows, n_L] upstream gradient (overwritten), tmp same size.
// G[l] += delta_l^T acts[l];  g_keys (+)= dJ/dkeys. Ends synced.
template <typename T, typename E>
ME_DEVICE void mlp_backward(E& ex, const MlpShape& s, Activation act, T* const* W, T* const* acts,
                            int rows, T* delta, T* tmp, T* const* G, T* g_keys) {
  ME_UNROLL for (int l = ME_LAYER_END(s.L) - 1; l >= 0; --l) {
    if (l >= s.L) continue;
    ex.gemm_tn(s.n[l + 1], s.n[l], rows, delta, acts[l], G[l], T(1), T(1));
    if (l > 0) {
      ex.gemm_nn(rows, s.n[l], s.n[l + 1], delta, W[l], tmp, T(1), T(0),
                 ActGradEpilogue<T>{act, acts[l], s.n[l]});
    } else {
      ex.gemm_nn(rows, s.n[0], s.n[1], delta, W[0], g_keys, T(1), T(1), NoEpilogue{});
    }
    ex.sync();
    T* t = delta;
    delta = tmp;
    tmp = t;
  }
}

// Errors of the write (spec 1.2 / 1.3) from the write activations A[0..L] at the current W.
// local: D[l] = c_l (A[l] - z[l-1]);  grad: D[L] = c_L (A[L] - v), D[l] = g[l] * act'(A[l]) with
// g[l] = D[l+1] W[l] (g may be nullptr when not needed). Ends synced.
template <typename T, typename E>
ME_DEVICE void write_errors(E& ex, const MlpShape& s, Activation act, WriteRule rule,
                            T* const* W, T* const* A, const T* const* z, T* const* D,
                            T* const* g) {
  if (rule == WriteRule::Local) {
    for (int l = 1; l <= s.L; ++l) {
      const T c = T(2) / (T(s.H) * T(s.n[l]));
      const T* a = A[l];
      const T* zl = z[l - 1];
      T* d = D[l];
      ex.for_n(s.H * s.n[l], [&](int i) { d[i] = c * (a[i] - zl[i]); });
    }
    ex.sync();
    return;
  }
  const int L = s.L;
  const T c = T(2) / (T(s.H) * T(s.n[L]));
  {
    const T* a = A[L];
    const T* v = z[0];
    T* d = D[L];
    ex.for_n(s.H * s.n[L], [&](int i) { d[i] = c * (a[i] - v[i]); });
  }
  ex.sync();
  for (int l = L - 1; l >= 1; --l) {
    if (g != nullptr) {
      ex.gemm_nn(s.H, s.n[l], s.n[l + 1], D[l + 1], W[l], g[l], T(1), T(0), NoEpilogue{});
      ex.sync();
      const T* gl = g[l];
      const T* a = A[l];
      T* d = D[l];
      ex.for_n(s.H * s.n[l], [&](int i) { d[i] = gl[i] * act_grad(act, a[i]); });
    } else {
      ex.gemm_nn(s.H, s.n[l], s.n[l + 1], D[l + 1], W[l], D[l], T(1), T(0),
                 ActGradEpilogue<T>{act, A[l], s.n[l]});
    }
    ex.sync();
  }
}

// W_out[l] = (1 - alpha) W_in[l] - beta[l] D[l+1]^T A[l], one pass over the weights. W_out
// may equal W_in. Ends synced.
template <typename T, typename E>
ME_DEVICE void write_apply(E& ex, const MlpShape& s, T* const* W_in, T* const* W_out,
                           T* const* A, T* const* D, const T* beta, T keep) {
  for (int l = 0; l < s.L; ++l) {
    ex.gemm_tn_from(s.n[l + 1], s.n[l], s.H, D[l + 1], A[l], W_in[l], W_out[l], -beta[l], keep);
  }
  ex.sync();
}

// recon = (1/(H n_L)) sum_h ||out_h - v_h||^2
template <typename T, typename E>
ME_DEVICE T recon_loss(E& ex, const MlpShape& s, const T* out, const T* v) {
  const int n = s.H * s.n[s.L];
  T tot = ex.template sum<T>(n, [&](int i) {
    const T d = out[i] - v[i];
    return d * d;
  });
  return tot / T(n);
}

// ---------------------------------------------------------------------------------------------
// Scan forward for batch element b.
template <typename T, typename E>
ME_DEVICE void mlp_scan_forward_elem(E& ex, const MlpScanFwdParams<T>& p, int b, T* ws) {
  const MlpShape& s = p.s;
  MlpFwdScratch<T> sc;
  MlpFwdScratch<T>::carve(s, ws, &sc);
  const int n0 = s.n[0], nL = s.n[s.L];
  // cur: the weights before the step. update_in_output: the first step reads w0 where it is
  // and its write lands in w_out (no copy); otherwise w0 is copied into the scratch first.
  T* cur[kMaxLayers];
  for (int l = 0; l < s.L; ++l) {
    const T* w0 = p.w0[l] + std::size_t(b) * s.weight_numel(l);
    if (p.update_in_output) {
      sc.W[l] = p.w_out[l] + std::size_t(b) * s.weight_numel(l);
      cur[l] = const_cast<T*>(w0);
      if (s.T == 0) copy_n(ex, s.weight_numel(l), w0, sc.W[l]);
    } else {
      copy_n(ex, s.weight_numel(l), w0, sc.W[l]);
      cur[l] = sc.W[l];
    }
  }
  ex.sync();
  const T keep = p.alpha ? T(1) - p.alpha[b] : T(1);
  const int NC = s.T / p.ckpt_every + (s.T % p.ckpt_every != 0);  // (no int overflow)
  for (int t = 0; t < s.T; ++t) {
    const std::size_t bt = std::size_t(b) * s.T + t;
    if (p.ckpt[0] != nullptr && t % p.ckpt_every == 0) {
      const int k = t / p.ckpt_every;
      for (int l = 0; l < s.L; ++l) {
        copy_n(ex, s.weight_numel(l), cur[l],
               p.ckpt[l] + (std::size_t(b) * NC + k) * s.weight_numel(l));
      }
    }
    // The step's write activations A (A[0]: the keys) and errors D: in the scratch, or where
    // the in-place backward needs them (saved). sc.A / sc.D are re-pointed, not copied into
    // tables of their own (on a GPU thread every such table is a copy on its stack).
    T* g[kMaxLayers + 1];
    if (p.saved != nullptr) saved_step_views(s, p.saved + bt * mlp_step_saved(s), sc.A, sc.D, g);
    sc.A[0] = const_cast<T*>(p.kw) + bt * s.H * n0;
    T* const* A = sc.A;
    T* const* D = sc.D;
    const T* z[kMaxLayers];
    const int nz = p.rule == WriteRule::Local ? s.L : 1;
    for (int l = 0; l < nz; ++l) {
      const int w = p.rule == WriteRule::Local ? s.n[l + 1] : nL;
      z[l] = p.z[l] + bt * s.H * w;
    }
    mlp_forward(ex, s, p.act, cur, A, s.H);
    write_errors<T>(ex, s, p.act, p.rule, cur, A, z, D, p.saved != nullptr ? g : nullptr);
    T beta[kMaxLayers];
    for (int l = 0; l < s.L; ++l) beta[l] = p.beta[beta_index<T>(s, p.beta_per_layer, bt, l)];
    write_apply(ex, s, cur, sc.W, A, D, beta, keep);
    for (int l = 0; l < s.L; ++l) cur[l] = sc.W[l];
    // the read and the recon at the new weights: one forward over the stacked rows (read
    // keys [0, hr), write keys [hr, hr + hw)), one pass over W for both
    const int hr = s.Hr, hw = p.rv != nullptr ? s.H : 0;
    if (hr + hw > 0) {
      const T* kr = p.kr + bt * s.Hr * n0;
      const T* kw = A[0];
      T* keys = sc.RA[0];
      ex.for_n(hr * n0, [&](int i) { keys[i] = kr[i]; });
      ex.for_n(hw * n0, [&](int i) { keys[hr * n0 + i] = kw[i]; });
      ex.sync();
      mlp_forward(ex, s, p.act, sc.W, sc.RA, hr + hw);
      const T* out = sc.RA[s.L];
      T* reads = p.reads + bt * s.Hr * nL;
      ex.for_n(hr * nL, [&](int i) { reads[i] = out[i]; });
      if (hw > 0) {
        const T r = recon_loss(ex, s, out + hr * nL, p.rv + bt * s.H * nL);
        if (ex.leader()) p.recon[bt] = r;
      }
      ex.sync();
    }
  }
  for (int l = 0; l < s.L && !p.update_in_output; ++l) {
    copy_n(ex, s.weight_numel(l), sc.W[l], p.w_out[l] + std::size_t(b) * s.weight_numel(l));
  }
  ex.sync();
}

// ---------------------------------------------------------------------------------------------
// Backward through one step t whose pre-update weights are Wp and post-update weights Wt.
// On entry sc.G holds dJ/dW_t without this step's read/recon terms; on exit dJ/dW_{t-1}.
// revert: Wp and Wt are one buffer holding W_t; after the read/recon terms it is turned back
// into W_{t-1} = (W_t + beta D^T A) / keep in place (the in-place backward).
template <typename T, typename E>
ME_DEVICE void mlp_step_backward_elem(E& ex, const MlpScanBwdParams<T>& p, int b, int t,
                                      MlpBwdScratch<T>& sc, T* const* Wp, T* const* Wt,
                                      T* const* A, T* const* D, T* const* g,
                                      bool revert = false) {
  const MlpShape& s = p.s;
  const int L = s.L, n0 = s.n[0], nL = s.n[L];
  const std::size_t bt = std::size_t(b) * s.T + t;
  const T keep = p.alpha ? T(1) - p.alpha[b] : T(1);
  T beta[kMaxLayers];
  for (int l = 0; l < L; ++l) beta[l] = p.beta[beta_index<T>(s, p.beta_per_layer, bt, l)];

  // 1. read and recon at W_t: one forward and one backward over the stacked rows (read keys
  //    [0, hr), then write keys [hr, hr + hw)), so W_t and G are walked once for both.
  const int hr = (s.Hr > 0 && p.g_reads != nullptr) ? s.Hr : 0;
  const int hw = (p.rv != nullptr && p.g_recon != nullptr) ? s.H : 0;
  if (hr + hw > 0) {
    const T* kr = p.kr + bt * s.Hr * n0;
    const T* kw = p.kw + bt * s.H * n0;
    T* keys = sc.RA[0];
    T* gk = sc.g_keys;
    ex.for_n(hr * n0, [&](int i) { keys[i] = kr[i]; });
    ex.for_n(hw * n0, [&](int i) { keys[hr * n0 + i] = kw[i]; });
    ex.for_n((hr + hw) * n0, [&](int i) { gk[i] = T(0); });
    ex.sync();
    mlp_forward(ex, s, p.act, Wt, sc.RA, hr + hw);
    T* d = sc.buf0;
    if (hr > 0) {
      const T* gr = p.g_reads + bt * s.Hr * nL;
      ex.for_n(hr * nL, [&](int i) { d[i] = gr[i]; });
    }
    if (hw > 0) {
      const T c = p.g_recon[bt] * T(2) / T(s.H * nL);
      const T* v = p.rv + bt * s.H * nL;
      T* gv = p.g_rv + bt * s.H * nL;
      const T* out = sc.RA[L] + hr * nL;
      T* dw = d + hr * nL;
      ex.for_n(hw * nL, [&](int i) {
        const T di = c * (out[i] - v[i]);
        dw[i] = di;
        gv[i] -= di;
      });
    }
    ex.sync();
    mlp_backward(ex, s, p.act, Wt, sc.RA, hr + hw, sc.buf0, sc.buf1, sc.G, gk);
    T* gkr = p.g_kr + bt * s.Hr * n0;
    T* gkw = p.g_kw + bt * s.H * n0;
    ex.for_n(hr * n0, [&](int i) { gkr[i] += gk[i]; });
    ex.for_n(hw * n0, [&](int i) { gkw[i] += gk[hr * n0 + i]; });
    ex.sync();
  }
  if (revert) {
    for (int l = 0; l < L; ++l) {
      ex.gemm_tn(s.n[l + 1], s.n[l], s.H, D[l + 1], A[l], Wt[l], beta[l] / keep, T(1) / keep);
    }
    ex.sync();
  }

  // 2. through the update W_t = keep * W_{t-1} - beta U, U^l = D^T A.
  // dA[0]: dJ/dkeys of the write, accumulated in g_kw (sc.dA re-pointed, not copied: see the
  // forward's A)
  T* const* dA = sc.dA;
  sc.dA[0] = p.g_kw + bt * s.H * n0;
  for (int l = 1; l <= L; ++l) {
    T* dal = dA[l];
    ex.for_n(s.H * s.n[l], [&](int i) { dal[i] = T(0); });
  }
  ex.sync();
  for (int l = 0; l < L; ++l) {
    // Q = A[l] G[l]^T  [H, n[l+1]] into dD[l+1]
    ex.gemm_nt(s.H, s.n[l + 1], s.n[l], A[l], sc.G[l], sc.dD[l + 1], T(1), T(0), NoEpilogue{});
  }
  ex.sync();
  T dalpha = T(0);
  for (int l = 0; l < L; ++l) {
    const T* Q = sc.dD[l + 1];
    const T* Dl = D[l + 1];
    const T gb = -ex.template sum<T>(s.H * s.n[l + 1], [&](int i) { return Dl[i] * Q[i]; });
    if (ex.leader()) p.g_beta[beta_index<T>(s, p.beta_per_layer, bt, l)] += gb;
    // dA[l] += -beta D G
    ex.gemm_nn(s.H, s.n[l], s.n[l + 1], D[l + 1], sc.G[l], dA[l], -beta[l], T(1), NoEpilogue{});
    if (p.alpha != nullptr && p.g_alpha != nullptr) {
      const T* Gl = sc.G[l];
      const T* Wl = Wp[l];
      dalpha -= ex.template sum<T>(s.weight_numel(l), [&](int i) { return Gl[i] * Wl[i]; });
    }
  }
  if (p.alpha != nullptr && p.g_alpha != nullptr && ex.leader()) p.g_alpha[b] += dalpha;
  ex.sync();
  for (int l = 0; l < L; ++l) {
    T* dD = sc.dD[l + 1];
    const T mb = -beta[l];
    ex.for_n(s.H * s.n[l + 1], [&](int i) { dD[i] *= mb; });
    if (keep != T(1)) {
      T* Gl = sc.G[l];
      ex.for_n(s.weight_numel(l), [&](int i) { Gl[i] *= keep; });
    }
  }
  ex.sync();
  // dD -> dA, dz (local) or through the inner backward (grad).
  if (p.rule == WriteRule::Local) {
    for (int l = 1; l <= L; ++l) {
      const T c = T(2) / (T(s.H) * T(s.n[l]));
      const T* dD = sc.dD[l];
      T* dal = dA[l];
      T* gz = p.g_z[l - 1] + bt * s.H * s.n[l];
      ex.for_n(s.H * s.n[l], [&](int i) {
        dal[i] += c * dD[i];
        gz[i] -= c * dD[i];
      });
    }
    ex.sync();
  } else {
    for (int l = 1; l < L; ++l) {
      // D[l] = g[l] * act'(A[l]), g[l] = D[l+1] W[l]
      const T* dD = sc.dD[l];
      const T* gl = g[l];
      const T* al = A[l];
      T* dg = sc.buf0;
      T* dpx = sc.dPx[l];
      ex.for_n(s.H * s.n[l], [&](int i) {
        dg[i] = dD[i] * act_grad(p.act, al[i]);
        dpx[i] = dD[i] * gl[i] * act_grad2(p.act, al[i]);
      });
      ex.sync();
      ex.gemm_nt(s.H, s.n[l + 1], s.n[l], dg, Wp[l], sc.dD[l + 1], T(1), T(1), NoEpilogue{});
      ex.gemm_tn(s.n[l + 1], s.n[l], s.H, D[l + 1], dg, sc.G[l], T(1), T(1));
      ex.sync();
    }
    const T c = T(2) / (T(s.H) * T(nL));
    const T* dD = sc.dD[L];
    T* dal = dA[L];
    T* gv = p.g_z[0] + bt * s.H * nL;
    ex.for_n(s.H * nL, [&](int i) {
      dal[i] += c * dD[i];
      gv[i] -= c * dD[i];
    });
    ex.sync();
  }

  // 3. through the pre-update forward at W_{t-1}.
  for (int l = L; l >= 1; --l) {
    T* dal = dA[l];
    if (l < L) {
      const T* al = A[l];
      const T* dpx = sc.dPx[l];
      const bool second = p.rule == WriteRule::Grad;
      ex.for_n(s.H * s.n[l], [&](int i) {
        dal[i] = dal[i] * act_grad(p.act, al[i]) + (second ? dpx[i] : T(0));
      });
      ex.sync();
    }
    ex.gemm_tn(s.n[l], s.n[l - 1], s.H, dal, A[l - 1], sc.G[l - 1], T(1), T(1));
    ex.gemm_nn(s.H, s.n[l - 1], s.n[l], dal, Wp[l - 1], dA[l - 1], T(1), T(1), NoEpilogue{});
    ex.sync();
  }
}

// The in-place step backward (T = 1): see MlpScanBwdParams::w_inout. Needs only the hot scratch
// (sc, carved by the caller).
template <typename T, typename E>
ME_DEVICE void mlp_step_inplace_backward_elem(E& ex, const MlpScanBwdParams<T>& p, int b,
                                              MlpBwdScratch<T>& sc) {
  const MlpShape& s = p.s;
  T* W[kMaxLayers];
  for (int l = 0; l < s.L; ++l) {
    W[l] = p.w_inout[l] + std::size_t(b) * s.weight_numel(l);
    sc.G[l] = p.g_w0[l] + std::size_t(b) * s.weight_numel(l);
  }
  T *A[kMaxLayers + 1], *D[kMaxLayers + 1], *g[kMaxLayers + 1];
  saved_step_views(s, const_cast<T*>(p.saved) + std::size_t(b) * mlp_step_saved(s), A, D, g);
  A[0] = const_cast<T*>(p.kw) + std::size_t(b) * s.H * s.n[0];
  mlp_step_backward_elem(ex, p, b, 0, sc, W, W, A, D, g, /*revert=*/true);
}

// Scan backward for batch element b: segment by segment, replay W from the checkpoint, then
// walk the segment in reverse (or, with w_inout set, the in-place step backward above).
template <typename T, typename E>
ME_DEVICE void mlp_scan_backward_elem(E& ex, const MlpScanBwdParams<T>& p, int b, T* hot,
                                      T* cold) {
  const MlpShape& s = p.s;
  MlpBwdScratch<T> sc;  // here, for both paths: one copy of its tables on a GPU thread's stack
  MlpBwdScratch<T>::carve_hot(s, hot, &sc);
  if (p.w_inout[0] != nullptr) {
    mlp_step_inplace_backward_elem(ex, p, b, sc);
    return;
  }
  const int L = s.L, C = p.ckpt_every, n0 = s.n[0], nL = s.n[L];
  const int NC = s.T / C + (s.T % C != 0);  // (no int overflow)
  const int wn = s.weights_numel();
  MlpBwdScratch<T>::carve_cold(s, C, cold, &sc);
  if (p.in_place) {
    for (int l = 0; l < L; ++l) sc.G[l] = p.g_w0[l] + std::size_t(b) * s.weight_numel(l);
  }
  const T keep = p.alpha ? T(1) - p.alpha[b] : T(1);

  for (int l = 0; l < L; ++l) {
    T* Gl = sc.G[l];
    const T* src = p.g_wT[l] ? p.g_wT[l] + std::size_t(b) * s.weight_numel(l) : nullptr;
    ex.for_n(s.weight_numel(l), [&](int i) { Gl[i] = src ? src[i] : T(0); });
  }
  ex.sync();

  // the step tables, shared by the replay and the reverse walk (one copy on a GPU thread's stack)
  T *Wp[kMaxLayers], *Wn[kMaxLayers], *A[kMaxLayers + 1], *D[kMaxLayers + 1], *g[kMaxLayers + 1];
  for (int seg = NC - 1; seg >= 0; --seg) {
    const int t0 = seg * C;
    const int t1 = t0 + C < s.T ? t0 + C : s.T;
    // snapshot pointers: snap i holds W_{t0 + i} (snap 0 is read only: in place, the checkpoint)
    auto snap_ptrs = [&](int i, T** W) {
      T* base = sc.snap + std::size_t(i) * wn;
      for (int l = 0; l < L; ++l) {
        W[l] = (i == 0 && p.in_place)
                   ? const_cast<T*>(p.ckpt[l]) + (std::size_t(b) * NC + seg) * s.weight_numel(l)
                   : base;
        base += s.weight_numel(l);
      }
    };
    if (!p.in_place) {
      snap_ptrs(0, Wp);
      for (int l = 0; l < L; ++l) {
        copy_n(ex, s.weight_numel(l),
               p.ckpt[l] + (std::size_t(b) * NC + seg) * s.weight_numel(l), Wp[l]);
      }
      ex.sync();
    }
    // replay
    for (int t = t0; t < t1; ++t) {
      const int i = t - t0;
      const std::size_t bt = std::size_t(b) * s.T + t;
      snap_ptrs(i, Wp);
      snap_ptrs(i + 1, Wn);
      sc.step_views(s, i, A, D, g);
      A[0] = const_cast<T*>(p.kw) + bt * s.H * n0;
      const T* z[kMaxLayers];
      const int nz = p.rule == WriteRule::Local ? L : 1;
      for (int l = 0; l < nz; ++l) {
        const int w = p.rule == WriteRule::Local ? s.n[l + 1] : nL;
        z[l] = p.z[l] + bt * s.H * w;
      }
      mlp_forward(ex, s, p.act, Wp, A, s.H);
      write_errors<T>(ex, s, p.act, p.rule, Wp, A, z, D, g);
      T beta[kMaxLayers];
      for (int l = 0; l < L; ++l) beta[l] = p.beta[beta_index<T>(s, p.beta_per_layer, bt, l)];
      write_apply(ex, s, Wp, Wn, A, D, beta, keep);
    }
    // reverse
    for (int t = t1 - 1; t >= t0; --t) {
      const int i = t - t0;
      const std::size_t bt = std::size_t(b) * s.T + t;
      snap_ptrs(i, Wp);
      snap_ptrs(i + 1, Wn);
      sc.step_views(s, i, A, D, g);
      A[0] = const_cast<T*>(p.kw) + bt * s.H * n0;
      mlp_step_backward_elem(ex, p, b, t, sc, Wp, Wn, A, D, g);
    }
  }
  for (int l = 0; l < L && !p.in_place; ++l) {
    copy_n(ex, s.weight_numel(l), sc.G[l], p.g_w0[l] + std::size_t(b) * s.weight_numel(l));
  }
  ex.sync();
}

// ---------------------------------------------------------------------------------------------
template <typename T, typename E>
ME_DEVICE void mlp_read_forward_elem(E& ex, const MlpReadParams<T>& p, int b, T* ws) {
  const MlpShape& s = p.s;
  MlpReadScratch<T> sc;
  MlpReadScratch<T>::carve(s, ws, &sc);
  ME_UNROLL for (int l = 0; l < ME_LAYER_END(s.L); ++l) {
    if (l >= s.L) break;
    copy_n(ex, s.weight_numel(l), p.w[l] + std::size_t(b) * s.weight_numel(l), sc.W[l]);
  }
  ex.sync();
  T* R[kMaxLayers + 1];
  R[0] = const_cast<T*>(p.keys) + std::size_t(b) * s.Hr * s.n[0];
  T* out = p.out + std::size_t(b) * s.Hr * s.n[s.L];
  ME_UNROLL for (int l = 1; l <= ME_LAYER_END(s.L); ++l) {  // not R[s.L] = out: see ME_UNROLL
    if (l <= s.L) R[l] = l < s.L ? sc.RA[l] : out;
  }
  mlp_forward(ex, s, p.act, sc.W, R, s.Hr);
}

template <typename T, typename E>
ME_DEVICE void mlp_read_backward_elem(E& ex, const MlpReadParams<T>& p, int b, T* ws) {
  const MlpShape& s = p.s;
  MlpReadScratch<T> sc;
  MlpReadScratch<T>::carve(s, ws, &sc);
  T* G[kMaxLayers];
  ME_UNROLL for (int l = 0; l < ME_LAYER_END(s.L); ++l) {
    if (l >= s.L) break;
    copy_n(ex, s.weight_numel(l), p.w[l] + std::size_t(b) * s.weight_numel(l), sc.W[l]);
    G[l] = p.g_w[l] + std::size_t(b) * s.weight_numel(l);  // zero-initialised by the host
  }
  ex.sync();
  T* R[kMaxLayers + 1];
  R[0] = const_cast<T*>(p.keys) + std::size_t(b) * s.Hr * s.n[0];
  ME_UNROLL for (int l = 1; l <= ME_LAYER_END(s.L); ++l) {
    if (l <= s.L) R[l] = sc.RA[l];
  }
  mlp_forward(ex, s, p.act, sc.W, R, s.Hr);
  copy_n(ex, s.Hr * s.n[s.L], p.g_out + std::size_t(b) * s.Hr * s.n[s.L], sc.buf0);
  ex.sync();
  mlp_backward(ex, s, p.act, sc.W, R, s.Hr, sc.buf0, sc.buf1, G,
               p.g_keys + std::size_t(b) * s.Hr * s.n[0]);
}

}  // namespace memory_ext

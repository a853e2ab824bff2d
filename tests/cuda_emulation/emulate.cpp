// Runs the project's CUDA launch functions (csrc/cuda/*_launch.h, compiled from the .cu files as
// C++ under the emulator of cuda_runtime.h beside this file) and the CPU kernels on the same
// inputs, and compares every output. Driven by tests/test_cuda_emulation.py.
//
//   emulate DEVICE mlp RULE ACT B T H Hr C BETA_PER_LAYER ALPHA RECON n_0 .. n_L
//   emulate DEVICE delta B H K V
//   emulate DEVICE slot B N d K PER_HOP WITH_R count_0 .. count_{B-1}
//   emulate DEVICE gather OUT_ROWS SRC_ROWS n_index row_bytes_0 .. (one per tensor)
//   emulate DEVICE hash CAPACITY N_KEYS N_DISTINCT
//
// DEVICE: h100 | small (see cuda_runtime.h). Prints one line per comparison ("ok ..." or
// "MISMATCH ..."), "path ..." lines saying whether the MLP kernels ran on chip, and "OK" last;
// exits 1 on a mismatch, 2 on bad arguments. The CPU side: the ISA-generic CPU kernels of the
// MLP ops (csrc/cpu/mlp_memory_kernels.cpp), the per-element cores the CPU slot kernels loop
// over (slot_memory_core.h), and plain references for the delta step, the row gather and the table.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cuda_exec.cuh"
#include "cuda_runtime.h"
#include "delta_rule_step_launch.h"
#include "gather_rows_launch.h"
#include "hash_table_launch.h"
#include "memory_ext/hash_table_core.h"
#include "mlp_memory_kernels.h"
#include "mlp_memory_launch.h"
#include "slot_memory_launch.h"

using namespace memory_ext;
using Vec = std::vector<float>;

namespace {

int g_fail = 0;
std::mt19937_64 g_rng(1234);

Vec randn(std::size_t n, float scale = 1.f) {
  std::normal_distribution<float> d(0.f, scale);
  Vec v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
Vec uniform(std::size_t n, float lo, float hi) {
  std::uniform_real_distribution<float> d(lo, hi);
  Vec v(n);
  for (auto& x : v) x = d(g_rng);
  return v;
}
Vec nans(std::size_t n) { return Vec(n, NAN); }

// got == want within tol * (1 + max |want|); NaN anywhere (an element never written) fails.
void compare(const std::string& name, const float* got, const float* want, std::size_t n,
             float tol = 2e-4f) {
  float scale = 0.f;
  for (std::size_t i = 0; i < n; ++i) scale = std::max(scale, std::fabs(want[i]));
  const float lim = tol * (1.f + scale);
  for (std::size_t i = 0; i < n; ++i) {
    if (!(std::fabs(got[i] - want[i]) <= lim)) {
      std::printf("MISMATCH %s at %zu of %zu: emulated CUDA %.8g, CPU %.8g (limit %.3g)\n",
                  name.c_str(), i, n, got[i], want[i], lim);
      ++g_fail;
      return;
    }
  }
  std::printf("ok %s (%zu values)\n", name.c_str(), n);
}
void compare(const std::string& name, const Vec& got, const Vec& want, float tol = 2e-4f) {
  if (got.size() != want.size()) {
    std::printf("MISMATCH %s: sizes %zu and %zu\n", name.c_str(), got.size(), want.size());
    ++g_fail;
    return;
  }
  compare(name, got.data(), want.data(), got.size(), tol);
}
template <typename I>
void compare_exact(const std::string& name, const std::vector<I>& got, const std::vector<I>& want) {
  for (std::size_t i = 0; i < want.size(); ++i) {
    if (got[i] != want[i]) {
      std::printf("MISMATCH %s at %zu: emulated CUDA %lld, CPU %lld\n", name.c_str(), i,
                  static_cast<long long>(got[i]), static_cast<long long>(want[i]));
      ++g_fail;
      return;
    }
  }
  std::printf("ok %s (%zu values)\n", name.c_str(), want.size());
}
void expect(bool ok, const std::string& what) {
  std::printf("%s %s\n", ok ? "ok" : "MISMATCH", what.c_str());
  if (!ok) ++g_fail;
}

void check_launch(const char* err, const char* what) {
  if (err != nullptr) {
    std::printf("MISMATCH %s: the launch failed: %s\n", what, err);
    ++g_fail;
  }
}

// Dynamic shared memory of the last launch: more than the reduction scratch means on chip.
const char* path_of_last_launch() {
  return cuda_emu::rt().last_smem > std::size_t(cuda::kThreads / 32) * sizeof(float) ? "on_chip" : "global";
}

[[noreturn]] void usage(const char* why) {
  std::fprintf(stderr, "emulate: %s (see the top of tests/cuda_emulation/emulate.cpp)\n", why);
  std::exit(2);
}

// --- MLP memory --------------------------------------------------------------------------------
struct MlpCase {
  MlpShape s;
  Activation act;
  WriteRule rule;
  int C;
  bool per_layer, with_alpha, with_recon;
  std::vector<Vec> w0, z;
  Vec kw, beta, alpha, kr, rv;
};

std::size_t wnum(const MlpShape& s, int l) { return std::size_t(s.B) * s.n[l + 1] * s.n[l]; }

MlpCase make_mlp(int argc, char** argv) {
  if (argc < 12) usage("mlp needs RULE ACT B T H Hr C BETA_PER_LAYER ALPHA RECON n_0 .. n_L");
  MlpCase c;
  c.rule = std::string(argv[0]) == "grad" ? WriteRule::Grad : WriteRule::Local;
  c.act = static_cast<Activation>(std::atoi(argv[1]));
  MlpShape& s = c.s;
  s.B = std::atoi(argv[2]);
  s.T = std::atoi(argv[3]);
  s.H = std::atoi(argv[4]);
  s.Hr = std::atoi(argv[5]);
  c.C = std::atoi(argv[6]);
  c.per_layer = std::atoi(argv[7]) != 0;
  c.with_alpha = std::atoi(argv[8]) != 0;
  c.with_recon = std::atoi(argv[9]) != 0;
  s.L = argc - 11;
  if (s.L < 1 || s.L > kMaxLayers) usage("mlp: 1 to 4 layers");
  for (int l = 0; l <= s.L; ++l) s.n[l] = std::atoi(argv[10 + l]);
  const std::size_t BT = std::size_t(s.B) * s.T;
  for (int l = 0; l < s.L; ++l) c.w0.push_back(randn(wnum(s, l), 1.f / std::sqrt(float(s.n[l]))));
  c.kw = randn(BT * s.H * s.n[0]);
  if (c.rule == WriteRule::Local) {
    for (int l = 0; l < s.L; ++l) c.z.push_back(randn(BT * s.H * s.n[l + 1]));
  } else {
    c.z.push_back(randn(BT * s.H * s.n[s.L]));
  }
  c.beta = uniform(BT * (c.per_layer ? s.L : 1), 0.05f, 0.3f);
  c.alpha = uniform(s.B, 0.f, 0.3f);
  c.kr = randn(BT * s.Hr * s.n[0]);
  c.rv = randn(BT * s.H * s.n[s.L]);
  return c;
}

struct FwdBuffers {
  Vec reads, recon;
  std::vector<Vec> w_out, ckpt;
};

void fill_fwd(MlpCase& c, MlpScanFwdParams<float>& p, FwdBuffers& o) {
  const MlpShape& s = c.s;
  const int NC = (s.T + c.C - 1) / c.C;
  p.s = s;
  p.act = c.act;
  p.rule = c.rule;
  p.ckpt_every = c.C;
  p.kw = c.kw.data();
  for (std::size_t l = 0; l < c.z.size(); ++l) p.z[l] = c.z[l].data();
  p.beta = c.beta.data();
  p.beta_per_layer = c.per_layer;
  p.alpha = c.with_alpha ? c.alpha.data() : nullptr;
  p.kr = c.kr.data();
  p.rv = c.with_recon ? c.rv.data() : nullptr;
  o.reads = nans(std::size_t(s.B) * s.T * s.Hr * s.n[s.L]);
  o.recon = nans(std::size_t(s.B) * s.T);
  p.reads = o.reads.data();
  p.recon = c.with_recon ? o.recon.data() : nullptr;
  o.w_out.clear();
  o.ckpt.clear();
  for (int l = 0; l < s.L; ++l) {
    p.w0[l] = c.w0[l].data();
    o.w_out.push_back(nans(wnum(s, l)));
    o.ckpt.push_back(nans(wnum(s, l) * NC));
  }
  for (int l = 0; l < s.L; ++l) {
    p.w_out[l] = o.w_out[l].data();
    p.ckpt[l] = o.ckpt[l].data();
  }
}

struct BwdBuffers {
  std::vector<Vec> g_w0, g_z;
  Vec g_kw, g_beta, g_alpha, g_kr, g_rv;
};

void fill_bwd(MlpCase& c, MlpScanBwdParams<float>& p, BwdBuffers& o, const Vec& g_reads,
              const std::vector<Vec>& g_wT, const Vec& g_recon, const std::vector<Vec>& ckpt) {
  const MlpShape& s = c.s;
  const std::size_t BT = std::size_t(s.B) * s.T;
  p.s = s;
  p.act = c.act;
  p.rule = c.rule;
  p.ckpt_every = c.C;
  p.kw = c.kw.data();
  for (std::size_t l = 0; l < c.z.size(); ++l) p.z[l] = c.z[l].data();
  p.beta = c.beta.data();
  p.beta_per_layer = c.per_layer;
  p.alpha = c.with_alpha ? c.alpha.data() : nullptr;
  p.kr = c.kr.data();
  p.rv = c.with_recon ? c.rv.data() : nullptr;
  p.g_reads = s.Hr > 0 ? g_reads.data() : nullptr;
  p.g_recon = c.with_recon ? g_recon.data() : nullptr;
  o.g_w0.clear();
  o.g_z.clear();
  for (int l = 0; l < s.L; ++l) {
    p.ckpt[l] = ckpt.empty() ? nullptr : ckpt[l].data();
    p.g_wT[l] = g_wT.empty() ? nullptr : g_wT[l].data();
    o.g_w0.push_back(Vec(wnum(s, l), 0.f));
  }
  for (std::size_t l = 0; l < c.z.size(); ++l) o.g_z.push_back(Vec(c.z[l].size(), 0.f));
  for (int l = 0; l < s.L; ++l) p.g_w0[l] = o.g_w0[l].data();
  for (std::size_t l = 0; l < c.z.size(); ++l) p.g_z[l] = o.g_z[l].data();
  o.g_kw = Vec(c.kw.size(), 0.f);
  o.g_beta = Vec(c.beta.size(), 0.f);
  o.g_alpha = Vec(s.B, 0.f);
  o.g_kr = Vec(c.kr.size(), 0.f);
  o.g_rv = Vec(BT * s.H * s.n[s.L], 0.f);
  p.g_kw = o.g_kw.data();
  p.g_beta = o.g_beta.data();
  p.g_alpha = c.with_alpha ? o.g_alpha.data() : nullptr;
  p.g_kr = o.g_kr.data();
  p.g_rv = o.g_rv.data();
}

void compare_bwd(const std::string& tag, const MlpCase& c, const BwdBuffers& got,
                 const BwdBuffers& want) {
  for (int l = 0; l < c.s.L; ++l) compare(tag + " g_w0[" + std::to_string(l) + "]", got.g_w0[l], want.g_w0[l]);
  for (std::size_t l = 0; l < c.z.size(); ++l) compare(tag + " g_z[" + std::to_string(l) + "]", got.g_z[l], want.g_z[l]);
  compare(tag + " g_kw", got.g_kw, want.g_kw);
  compare(tag + " g_beta", got.g_beta, want.g_beta);
  compare(tag + " g_alpha", got.g_alpha, want.g_alpha);
  compare(tag + " g_kr", got.g_kr, want.g_kr);
  compare(tag + " g_rv", got.g_rv, want.g_rv);
}

void run_mlp(int argc, char** argv) {
  MlpCase c = make_mlp(argc, argv);
  const MlpShape& s = c.s;
  const auto& cpu = cpu::MlpCpuKernels::base();

  // scan forward
  MlpScanFwdParams<float> pc, pg;
  FwdBuffers oc, og;
  fill_fwd(c, pc, oc);
  fill_fwd(c, pg, og);
  Vec ws_f(std::size_t(s.B) * mlp_fwd_workspace(s));
  pg.workspace = ws_f.data();
  cpu.scan_fwd(pc, 0, s.B);
  check_launch(cuda::mlp_scan_fwd(pg, nullptr), "mlp_scan_fwd");
  if (s.B > 0) std::printf("path mlp_scan_fwd %s\n", path_of_last_launch());
  compare("fwd reads", og.reads, oc.reads);
  if (c.with_recon && s.T > 0) compare("fwd recon", og.recon, oc.recon);
  for (int l = 0; l < s.L; ++l) {
    compare("fwd w_out[" + std::to_string(l) + "]", og.w_out[l], oc.w_out[l]);
    if (s.T > 0) compare("fwd ckpt[" + std::to_string(l) + "]", og.ckpt[l], oc.ckpt[l]);
  }

  // scan backward (the host launches it only when B > 0 and T > 0)
  if (s.B > 0 && s.T > 0) {
    const Vec g_reads = randn(oc.reads.size()), g_recon = randn(oc.recon.size());
    std::vector<Vec> g_wT;
    for (int l = 0; l < s.L; ++l) g_wT.push_back(randn(wnum(s, l), 0.5f));
    MlpScanBwdParams<float> bc, bg;
    BwdBuffers gc, gg;
    fill_bwd(c, bc, gc, g_reads, g_wT, g_recon, oc.ckpt);
    fill_bwd(c, bg, gg, g_reads, g_wT, g_recon, oc.ckpt);
    Vec ws_b(std::size_t(s.B) * mlp_bwd_workspace(s, c.C));
    bg.workspace = ws_b.data();
    cpu.scan_bwd(bc, 0, s.B);
    check_launch(cuda::mlp_scan_bwd(bg, nullptr), "mlp_scan_bwd");
    std::printf("path mlp_scan_bwd %s\n", path_of_last_launch());
    compare_bwd("bwd", c, gg, gc);
  }

  // the in-place step and its backward (T = 1): weights updated where they are, saved blocks
  if (s.T == 1 && s.B > 0) {
    const std::size_t S = mlp_step_saved(s);
    MlpScanFwdParams<float> ic, ig;
    FwdBuffers fc, fg;
    fill_fwd(c, ic, fc);
    fill_fwd(c, ig, fg);
    std::vector<Vec> wc = c.w0, wg = c.w0;
    Vec sc(std::size_t(s.B) * S, 0.f), sg(std::size_t(s.B) * S, 0.f);
    for (int l = 0; l < s.L; ++l) {
      ic.w0[l] = wc[l].data();
      ic.w_out[l] = wc[l].data();
      ig.w0[l] = wg[l].data();
      ig.w_out[l] = wg[l].data();
      ic.ckpt[l] = ig.ckpt[l] = nullptr;
    }
    ic.saved = sc.data();
    ig.saved = sg.data();
    Vec ws(std::size_t(s.B) * mlp_fwd_workspace(s));
    ig.workspace = ws.data();
    cpu.scan_fwd(ic, 0, s.B);
    check_launch(cuda::mlp_scan_fwd(ig, nullptr), "mlp_scan_fwd in place");
    compare("step_ reads", fg.reads, fc.reads);
    if (c.with_recon) compare("step_ recon", fg.recon, fc.recon);
    for (int l = 0; l < s.L; ++l) compare("step_ weights[" + std::to_string(l) + "]", wg[l], wc[l]);
    compare("step_ saved", sg, sc);

    const Vec g_reads = randn(fc.reads.size()), g_recon = randn(fc.recon.size());
    MlpScanBwdParams<float> bc, bg;
    BwdBuffers gc, gg;
    fill_bwd(c, bc, gc, g_reads, {}, g_recon, {});
    fill_bwd(c, bg, gg, g_reads, {}, g_recon, {});
    for (int l = 0; l < s.L; ++l) {  // dJ/dW_t in, dJ/dW_{t-1} out
      gc.g_w0[l] = gg.g_w0[l] = randn(wnum(s, l), 0.5f);
      bc.g_w0[l] = gc.g_w0[l].data();
      bg.g_w0[l] = gg.g_w0[l].data();
      bc.w_inout[l] = wc[l].data();
      bg.w_inout[l] = wg[l].data();
    }
    bc.saved = sc.data();
    bg.saved = sg.data();
    Vec wsb(std::size_t(s.B) * mlp_bwd_workspace(s, 1));
    bg.workspace = wsb.data();
    cpu.scan_bwd(bc, 0, s.B);
    check_launch(cuda::mlp_scan_bwd(bg, nullptr), "mlp_scan_bwd in place");
    compare_bwd("step_bwd_", c, gg, gc);
    for (int l = 0; l < s.L; ++l) {
      compare("step_bwd_ weights undone[" + std::to_string(l) + "]", wg[l], wc[l]);
    }
  }

  // read forward and backward at w0
  if (s.Hr > 0) {
    MlpShape rs = s;
    rs.T = 1;
    const std::size_t nout = std::size_t(s.B) * s.Hr * s.n[s.L];
    const Vec keys = randn(std::size_t(s.B) * s.Hr * s.n[0]), g_out = randn(nout);
    Vec outc = nans(nout), outg = nans(nout);
    std::vector<Vec> gwc, gwg;
    Vec gkc(keys.size(), 0.f), gkg(keys.size(), 0.f);
    MlpReadParams<float> rc, rg;
    for (MlpReadParams<float>* p : {&rc, &rg}) {
      p->s = rs;
      p->act = c.act;
      for (int l = 0; l < s.L; ++l) p->w[l] = c.w0[l].data();
      p->keys = keys.data();
      p->g_out = g_out.data();
    }
    for (int l = 0; l < s.L; ++l) {
      gwc.push_back(Vec(wnum(s, l), 0.f));
      gwg.push_back(Vec(wnum(s, l), 0.f));
    }
    for (int l = 0; l < s.L; ++l) {
      rc.g_w[l] = gwc[l].data();
      rg.g_w[l] = gwg[l].data();
    }
    rc.out = outc.data();
    rg.out = outg.data();
    rc.g_keys = gkc.data();
    rg.g_keys = gkg.data();
    Vec ws(std::size_t(s.B) * mlp_read_workspace(rs));
    rg.workspace = ws.data();
    cpu.read_fwd(rc, 0, s.B);
    check_launch(cuda::mlp_read_fwd(rg, nullptr), "mlp_read_fwd");
    if (s.B > 0) std::printf("path mlp_read_fwd %s\n", path_of_last_launch());
    compare("read out", outg, outc);
    cpu.read_bwd(rc, 0, s.B);
    check_launch(cuda::mlp_read_bwd(rg, nullptr), "mlp_read_bwd");
    for (int l = 0; l < s.L; ++l) compare("read g_w[" + std::to_string(l) + "]", gwg[l], gwc[l]);
    compare("read g_keys", gkg, gkc);
  }
}

// --- delta rule step ------------------------------------------------------------------------
void run_delta(int argc, char** argv) {
  if (argc != 4) usage("delta needs B H K V");
  DeltaRuleStepParams<float, float> p;
  p.B = std::atoi(argv[0]);
  p.H = std::atoi(argv[1]);
  p.K = std::atoi(argv[2]);
  p.V = std::atoi(argv[3]);
  p.scale = 1.f / std::sqrt(float(std::max(p.K, 1)));
  const std::size_t BH = std::size_t(p.B) * p.H;
  const Vec q = randn(BH * p.K), k = randn(BH * p.K, 0.3f), v = randn(BH * p.V),
            beta = uniform(BH, 0.f, 1.f);
  const Vec S0 = randn(BH * p.K * p.V, 0.3f);
  Vec S = S0, out = nans(BH * p.V);
  p.q = q.data();
  p.k = k.data();
  p.v = v.data();
  p.beta = beta.data();
  p.state = S.data();
  p.out = out.data();
  check_launch(cuda::delta_rule_step(p, nullptr), "delta_rule_step");
  // plain reference in double: u = v - S^T k; S += beta k u^T; o = scale S^T q
  std::vector<double> Sr(S0.begin(), S0.end());
  Vec Sw(Sr.size()), ow(out.size());
  for (std::size_t bh = 0; bh < BH; ++bh) {
    double* st = Sr.data() + bh * p.K * p.V;
    for (int j = 0; j < p.V; ++j) {
      double ks = 0;
      for (int i = 0; i < p.K; ++i) ks += double(k[bh * p.K + i]) * st[std::size_t(i) * p.V + j];
      const double u = v[bh * p.V + j] - ks;
      double o = 0;
      for (int i = 0; i < p.K; ++i) {
        st[std::size_t(i) * p.V + j] += double(beta[bh]) * k[bh * p.K + i] * u;
        o += double(q[bh * p.K + i]) * st[std::size_t(i) * p.V + j];
      }
      ow[bh * p.V + j] = static_cast<float>(p.scale * o);
    }
  }
  for (std::size_t i = 0; i < Sr.size(); ++i) Sw[i] = static_cast<float>(Sr[i]);
  compare("delta state", S, Sw);
  compare("delta out", out, ow);
}

// --- slot memory ------------------------------------------------------------------------------
void run_slot(int argc, char** argv) {
  if (argc < 6) usage("slot needs B N d K PER_HOP WITH_R count_0 ..");
  const int B = std::atoi(argv[0]), N = std::atoi(argv[1]), d = std::atoi(argv[2]),
            K = std::atoi(argv[3]);
  const bool per_hop = std::atoi(argv[4]) != 0, with_r = std::atoi(argv[5]) != 0;
  if (argc != 6 + B) usage("slot: one count per batch row");
  std::vector<int64_t> count(B);
  for (int b = 0; b < B; ++b) count[b] = std::atoll(argv[6 + b]);
  const std::size_t mem = std::size_t(per_hop ? K : 1) * B * N * d;
  const Vec q = randn(std::size_t(B) * d), M = randn(mem, 0.5f), C = randn(mem),
            R = randn(std::size_t(d) * d, 0.3f), gu = randn(std::size_t(B) * d),
            gattn = randn(std::size_t(B) * K * N);

  // soft read: forward, then backward from the forward's attention and saved u
  struct Soft {
    Vec u, attn, saved, dq, dM, dC, dR, ws;
  } sc, sg;
  SlotReadParams<float> pc, pg;
  for (auto [p, o] : {std::pair{&pc, &sc}, std::pair{&pg, &sg}}) {
    p->B = B, p->N = N, p->d = d, p->K = K, p->per_hop = per_hop;
    p->q = q.data(), p->M = M.data(), p->C = C.data(), p->count = count.data();
    p->R = with_r ? R.data() : nullptr;
    o->u = nans(std::size_t(B) * d), o->attn = nans(std::size_t(B) * K * N);
    o->saved = nans(std::size_t(B) * K * d);
    o->dq = nans(std::size_t(B) * d), o->dM = Vec(mem, 0.f), o->dC = Vec(mem, 0.f);
    o->dR = Vec(std::size_t(B) * d * d, 0.f), o->ws = Vec(std::size_t(B) * (N + d));
    p->u = o->u.data(), p->attn = o->attn.data(), p->saved_u = o->saved.data();
    p->gu = gu.data(), p->gattn = gattn.data();
    p->dq = o->dq.data(), p->dM = o->dM.data(), p->dC = o->dC.data();
    p->dR = with_r ? o->dR.data() : nullptr, p->workspace = o->ws.data();
  }
  for (int b = 0; b < B; ++b) slot_read_forward_elem(pc, b);
  check_launch(cuda::slot_read_fwd(pg, nullptr), "slot_read_fwd");
  compare("soft u", sg.u, sc.u);
  compare("soft attention", sg.attn, sc.attn);
  compare("soft saved u", sg.saved, sc.saved);
  for (int b = 0; b < B; ++b) slot_read_backward_elem(pc, b);
  check_launch(cuda::slot_read_bwd(pg, nullptr), "slot_read_bwd");
  compare("soft dq", sg.dq, sc.dq);
  compare("soft dM", sg.dM, sc.dM);
  compare("soft dC", sg.dC, sc.dC);
  if (with_r) compare("soft dR", sg.dR, sc.dR);

  // hard read on the first hop's memories, Q = C
  struct Hard {
    std::vector<int64_t> idx;
    Vec scores, dq, dM, dQ, ws;
  } hc, hg;
  const Vec gscores = randn(std::size_t(B) * K * N);
  SlotHardParams<float> qc, qg;
  for (auto [p, o] : {std::pair{&qc, &hc}, std::pair{&qg, &hg}}) {
    p->B = B, p->N = N, p->d = d, p->K = K;
    p->q = q.data(), p->M = M.data(), p->Q = C.data(), p->count = count.data();
    o->idx.assign(std::size_t(B) * K, -7), o->scores = nans(std::size_t(B) * K * N);
    o->dq = nans(std::size_t(B) * d), o->dM = Vec(std::size_t(B) * N * d, 0.f);
    o->dQ = Vec(std::size_t(B) * N * d, 0.f), o->ws = Vec(std::size_t(B) * (K + 1) * d);
    p->index = o->idx.data(), p->scores = o->scores.data(), p->gscores = gscores.data();
    p->dq = o->dq.data(), p->dM = o->dM.data(), p->dQ = o->dQ.data();
    p->workspace = o->ws.data();
  }
  for (int b = 0; b < B; ++b) slot_hard_forward_elem(qc, b, qc.workspace + std::size_t(b) * d);
  check_launch(cuda::slot_hard_fwd(qg, nullptr), "slot_hard_fwd");
  compare_exact("hard indices", hg.idx, hc.idx);
  for (std::size_t i = 0; i < hc.scores.size(); ++i) {  // -inf at dead slots on both sides
    if (std::isinf(hc.scores[i]) && hg.scores[i] == hc.scores[i]) hc.scores[i] = hg.scores[i] = 0;
  }
  compare("hard scores", hg.scores, hc.scores);
  for (int b = 0; b < B; ++b) slot_hard_backward_elem(qc, b);
  check_launch(cuda::slot_hard_bwd(qg, nullptr), "slot_hard_bwd");
  compare("hard dq", hg.dq, hc.dq);
  compare("hard dM", hg.dM, hc.dM);
  compare("hard dQ", hg.dQ, hc.dQ);
}

// --- gather_rows --------------------------------------------------------------------------------
void run_gather(int argc, char** argv) {
  if (argc < 4) usage("gather needs OUT_ROWS SRC_ROWS n_index row_bytes ..");
  GatherRowsParams p;
  p.out_rows = std::atoll(argv[0]);
  const int64_t src_rows = std::atoll(argv[1]);
  p.n_index = std::atoll(argv[2]);
  p.n_tensors = argc - 3;
  if (p.n_tensors > kMaxGatherTensors || p.n_index > p.out_rows) usage("gather: bad sizes");
  std::vector<int64_t> index(p.n_index);
  std::uniform_int_distribution<int64_t> pick(0, std::max<int64_t>(src_rows - 1, 0));
  for (auto& i : index) i = pick(g_rng);
  p.index = index.data();
  std::vector<std::vector<unsigned char>> src, dst;
  for (int t = 0; t < p.n_tensors; ++t) {
    p.row_bytes[t] = std::atoll(argv[3 + t]);
    std::vector<unsigned char> s(std::size_t(src_rows * p.row_bytes[t]));
    for (auto& x : s) x = static_cast<unsigned char>(g_rng());
    src.push_back(std::move(s));
    dst.emplace_back(std::size_t(p.out_rows * p.row_bytes[t]), 0xee);
  }
  for (int t = 0; t < p.n_tensors; ++t) {
    p.src[t] = src[t].data();
    p.dst[t] = dst[t].data();
  }
  check_launch(cuda::gather_rows(p, nullptr), "gather_rows");
  for (int t = 0; t < p.n_tensors; ++t) {
    std::vector<unsigned char> want(dst[t].size(), 0);
    for (int64_t r = 0; r < p.n_index; ++r) {
      std::copy_n(src[t].begin() + index[r] * p.row_bytes[t], p.row_bytes[t],
                  want.begin() + r * p.row_bytes[t]);
    }
    compare_exact("gather tensor " + std::to_string(t), dst[t], want);
  }
}

// --- hash table ----------------------------------------------------------------------------------
struct Table {
  std::vector<int64_t> slots, meta;
  explicit Table(int64_t cap) : slots(std::size_t(cap) * hash::kSlotWidth, hash::kEmpty), meta(3, 0) {}
  int64_t cap() const { return static_cast<int64_t>(slots.size() / hash::kSlotWidth); }
};

void run_hash(int argc, char** argv) {
  using namespace memory_ext::hash;
  if (argc != 3) usage("hash needs CAPACITY N_KEYS N_DISTINCT");
  const int64_t cap = std::atoll(argv[0]), n = std::atoll(argv[1]), distinct = std::atoll(argv[2]);
  // keys drawn from `distinct` values (many duplicates in one batch), reserved values mixed in
  std::vector<int64_t> pool(distinct);
  for (auto& k : pool) k = static_cast<int64_t>(g_rng() >> 1) - (int64_t(1) << 61);
  std::uniform_int_distribution<int64_t> pick(0, distinct - 1);
  auto batch = [&](int64_t m) {
    std::vector<int64_t> keys(m);
    for (auto& k : keys) k = pool[pick(g_rng)];
    if (m > 2) keys[m / 2] = kEmpty, keys[m / 3] = kTombstone;
    return keys;
  };
  // the CPU table's semantics: first occurrence in order gets the next id; every use counts
  std::map<int64_t, std::pair<int64_t, int64_t>> cpu;  // key -> (id, count)
  auto cpu_insert = [&](const std::vector<int64_t>& keys) {
    std::vector<int64_t> ids;
    for (int64_t k : keys) {
      if (reserved(k)) {
        ids.push_back(-1);
        continue;
      }
      auto it = cpu.find(k);
      if (it == cpu.end()) it = cpu.emplace(k, std::make_pair(int64_t(cpu.size()), 0)).first;
      ++it->second.second;
      ids.push_back(it->second.first);
    }
    return ids;
  };
  Table t(cap);
  std::map<int64_t, int64_t> gpu_to_cpu;  // new ids come in another order on the GPU
  bool one_to_one = true;
  for (int round = 0; round < 2; ++round) {
    const std::vector<int64_t> keys = batch(n);
    std::vector<int64_t> ids(n, -9);
    check_launch(cuda::hash_lookup_or_insert(t.slots.data(), cap, t.meta.data(), keys.data(), n,
                                             ids.data(), nullptr),
                 "hash_lookup_or_insert");
    const std::vector<int64_t> want = cpu_insert(keys);
    for (int64_t j = 0; j < n; ++j) {
      if ((ids[j] < 0) != (want[j] < 0)) one_to_one = false;
      if (want[j] < 0) continue;
      auto [it, fresh] = gpu_to_cpu.emplace(ids[j], want[j]);
      if (!fresh && it->second != want[j]) one_to_one = false;
    }
  }
  std::set<int64_t> cpu_ids;
  for (auto& [g, c] : gpu_to_cpu) cpu_ids.insert(c);
  expect(one_to_one && cpu_ids.size() == gpu_to_cpu.size() && gpu_to_cpu.size() == cpu.size(),
         "hash ids: one id per key, the same keys share one, a bijection with the CPU table's");
  const int64_t live = static_cast<int64_t>(cpu.size());
  expect(t.meta[kMetaUsed] == live && t.meta[kMetaLive] == live && t.meta[kMetaNextId] == live,
         "hash meta: used " + std::to_string(t.meta[kMetaUsed]) + ", live " +
             std::to_string(t.meta[kMetaLive]) + ", next id " + std::to_string(t.meta[kMetaNextId]) +
             " (want " + std::to_string(live) + ")");

  // find: ids and counts of every key (and a miss)
  std::vector<int64_t> probe(pool.begin(), pool.end());
  probe.push_back(42424242);
  const int64_t m = static_cast<int64_t>(probe.size());
  std::vector<int64_t> fid(m), fcount(m), want_count(m);
  check_launch(cuda::hash_find(t.slots.data(), cap, probe.data(), m, fid.data(), fcount.data(), nullptr),
               "hash_find");
  bool found_ok = true;
  for (int64_t j = 0; j < m; ++j) {
    auto it = cpu.find(probe[j]);
    want_count[j] = it == cpu.end() ? 0 : it->second.second;
    const bool miss = it == cpu.end();
    if (miss ? fid[j] != -1 : gpu_to_cpu.count(fid[j]) == 0 || gpu_to_cpu[fid[j]] != it->second.first)
      found_ok = false;
  }
  expect(found_ok, "hash find: the ids of the inserts, -1 for a missing key");
  compare_exact("hash counts", fcount, want_count);

  // erase half of the keys (each twice in one batch: one erase wins), then rebuild elsewhere
  std::vector<int64_t> gone;
  for (std::size_t i = 0; i < pool.size(); i += 2) gone.push_back(pool[i]);
  std::vector<int64_t> twice = gone;
  twice.insert(twice.end(), gone.begin(), gone.end());
  std::vector<uint8_t> erased_raw(twice.size(), 7);
  check_launch(cuda::hash_erase(t.slots.data(), cap, t.meta.data(), twice.data(),
                                static_cast<int64_t>(twice.size()),
                                reinterpret_cast<bool*>(erased_raw.data()), nullptr),
               "hash_erase");
  std::map<int64_t, int> wins;
  for (std::size_t j = 0; j < twice.size(); ++j) wins[twice[j]] += erased_raw[j] ? 1 : 0;
  bool erase_ok = true;
  for (int64_t k : gone) erase_ok &= wins[k] == (cpu.count(k) ? 1 : 0);
  for (int64_t k : gone) cpu.erase(k);
  expect(erase_ok && t.meta[kMetaLive] == static_cast<int64_t>(cpu.size()),
         "hash erase: each present key erased exactly once, live count right");

  std::vector<int64_t> entries;
  for (int64_t i = 0; i < cap; ++i) {
    const int64_t* s = t.slots.data() + i * kSlotWidth;
    if (!reserved(s[kKey])) entries.insert(entries.end(), s, s + kSlotWidth);
  }
  Table t2(cap * 2);
  const int64_t ne = static_cast<int64_t>(entries.size() / kSlotWidth);
  check_launch(cuda::hash_rebuild(t2.slots.data(), t2.cap(), entries.data(), ne, nullptr),
               "hash_rebuild");
  std::vector<int64_t> rid(m), rcount(m), oid(m), ocount(m);
  check_launch(cuda::hash_find(t2.slots.data(), t2.cap(), probe.data(), m, rid.data(), rcount.data(), nullptr),
               "hash_find after rebuild");
  check_launch(cuda::hash_find(t.slots.data(), cap, probe.data(), m, oid.data(), ocount.data(), nullptr),
               "hash_find after erase");
  compare_exact("hash rebuild ids", rid, oid);
  compare_exact("hash rebuild counts", rcount, ocount);
  // zero keys: nothing launched, no error
  check_launch(cuda::hash_lookup_or_insert(t.slots.data(), cap, t.meta.data(), probe.data(), 0,
                                           rid.data(), nullptr),
               "hash_lookup_or_insert of no keys");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) usage("expected DEVICE FAMILY ARGS..");
  if (!cuda_emu::use_device(argv[1])) usage("DEVICE must be h100 or small");
  const std::string fam = argv[2];
  if (fam == "mlp") run_mlp(argc - 3, argv + 3);
  else if (fam == "delta") run_delta(argc - 3, argv + 3);
  else if (fam == "slot") run_slot(argc - 3, argv + 3);
  else if (fam == "gather") run_gather(argc - 3, argv + 3);
  else if (fam == "hash") run_hash(argc - 3, argv + 3);
  else usage("FAMILY must be mlp, delta, slot, gather or hash");
  if (cudaGetLastError() != cudaSuccess) {
    std::printf("MISMATCH a CUDA error was left pending\n");
    ++g_fail;
  }
  std::printf("%s\n", g_fail ? "FAILED" : "OK");
  return g_fail ? 1 : 0;
}

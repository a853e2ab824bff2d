// Runs the per-batch-element algorithm of csrc/include/memory_ext/mlp_memory_core.h the way the
// CUDA kernels do (one block of threads per batch element, loops strided by thread id, a
// barrier at every sync(), a shared reduction scratch) but with std::threads on the CPU, and
// compares every output with the single-thread CPU run (CpuExec). Built with ThreadSanitizer
// by tests/test_block_emulation.py: a sync() missing from the core is a data race here, and a
// race or a wrong value fails the test. This checks the CUDA kernels' synchronisation without a
// GPU. Usage: emulate_blocks RULE(local|grad) ACT(0..3) THREADS
#include <barrier>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <thread>
#include <vector>

#include "cpu_exec.h"
#include "memory_ext/mlp_memory_core.h"

using namespace memory_ext;
using T = double;

// The CUDA execution policy (csrc/cuda/cuda_exec.cuh) with threads instead of a block.
struct ThreadExec {
  int tid, nt;
  std::barrier<>* bar;
  T* red;  // nt slots
  void sync() const { bar->arrive_and_wait(); }
  bool leader() const { return tid == 0; }
  template <typename F>
  void for_n(int n, F f) const {
    for (int i = tid; i < n; i += nt) f(i);
  }
  template <typename U>
  void copy(int n, const U* src, U* dst) const {
    for (int i = tid; i < n; i += nt) dst[i] = src[i];
  }
  template <typename U, typename F>
  U sum(int n, F f) const {
    U s = U(0);
    for (int i = tid; i < n; i += nt) s += f(i);
    sync();
    red[tid] = s;
    sync();
    U t = U(0);
    for (int w = 0; w < nt; ++w) t += red[w];
    return t;
  }
  template <typename U, typename Epi>
  void gemm_nt(int M, int N, int K, const U* A, const U* B, U* C, U a, U b, Epi epi) const {
    for (int idx = tid; idx < M * N; idx += nt) {
      const int m = idx / N, n = idx % N;
      U s = U(0);
      for (int k = 0; k < K; ++k) s += A[m * K + k] * B[n * K + k];
      C[idx] = epi(m, n, a * s + (b != U(0) ? b * C[idx] : U(0)));
    }
  }
  template <typename U>
  void gemm_tn_from(int M, int N, int K, const U* A, const U* B, const U* Cin, U* C, U a,
                    U b) const {
    for (int idx = tid; idx < M * N; idx += nt) {
      const int m = idx / N, n = idx % N;
      U s = U(0);
      for (int k = 0; k < K; ++k) s += A[k * M + m] * B[k * N + n];
      C[idx] = a * s + (b != U(0) ? b * Cin[idx] : U(0));
    }
  }
  template <typename U>
  void gemm_tn(int M, int N, int K, const U* A, const U* B, U* C, U a, U b) const {
    gemm_tn_from(M, N, K, A, B, C, C, a, b);
  }
  template <typename U, typename Epi>
  void gemm_nn(int M, int N, int K, const U* A, const U* B, U* C, U a, U b, Epi epi) const {
    for (int idx = tid; idx < M * N; idx += nt) {
      const int m = idx / N, n = idx % N;
      U s = U(0);
      for (int k = 0; k < K; ++k) s += A[m * K + k] * B[k * N + n];
      C[idx] = epi(m, n, a * s + (b != U(0) ? b * C[idx] : U(0)));
    }
  }
};

// Runs fn(exec) on `nt` threads forming one block.
template <typename Fn>
void run_block(int nt, Fn fn) {
  std::barrier<> bar(nt);
  std::vector<T> red(nt);
  std::vector<std::thread> ts;
  for (int t = 0; t < nt; ++t) ts.emplace_back([&, t] { fn(ThreadExec{t, nt, &bar, red.data()}); });
  for (auto& th : ts) th.join();
}

struct Buf {
  std::vector<T> v;
  explicit Buf(std::size_t n, T fill = T(0)) : v(n, fill) {}
  T* p() { return v.data(); }
};

double max_diff(const std::vector<T>& a, const std::vector<T>& b) {
  double m = 0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs(a[i] - b[i]);
    if (!(d <= m)) m = std::isnan(d) ? INFINITY : d;
  }
  return m;
}

int main(int argc, char** argv) {
  if (argc != 4) {
    std::fprintf(stderr, "usage: %s local|grad ACT THREADS\n", argv[0]);
    return 2;
  }
  const WriteRule rule = std::string(argv[1]) == "grad" ? WriteRule::Grad : WriteRule::Local;
  const Activation act = static_cast<Activation>(std::atoi(argv[2]));
  const int nt = std::atoi(argv[3]);
  MlpShape s;
  s.B = 3; s.T = 7; s.H = 3; s.Hr = 2; s.L = 3;
  const int widths[] = {5, 7, 4, 6};
  for (int l = 0; l <= s.L; ++l) s.n[l] = widths[l];
  const int C = 3, NC = (s.T + C - 1) / C, nL = s.n[s.L];
  std::mt19937 gen(1234);
  std::normal_distribution<T> nd(0, 1);
  auto rnd = [&](std::size_t n, T scale) { Buf b(n); for (auto& x : b.v) x = nd(gen) * scale; return b; };

  std::vector<Buf> w0, z;
  for (int l = 0; l < s.L; ++l) w0.push_back(rnd(std::size_t(s.B) * s.weight_numel(l), 0.4));
  const int nz = rule == WriteRule::Local ? s.L : 1;
  for (int l = 0; l < nz; ++l) z.push_back(rnd(std::size_t(s.B) * s.T * s.H * (rule == WriteRule::Local ? s.n[l + 1] : nL), 1.0));
  Buf kw = rnd(std::size_t(s.B) * s.T * s.H * s.n[0], 1.0), kr = rnd(std::size_t(s.B) * s.T * s.Hr * s.n[0], 1.0);
  Buf rv = rnd(std::size_t(s.B) * s.T * s.H * nL, 1.0), beta(std::size_t(s.B) * s.T * s.L), alpha(s.B);
  for (auto& x : beta.v) x = 0.05 + 0.2 * std::fabs(nd(gen)) / 3;
  for (auto& x : alpha.v) x = 0.1 * std::fabs(nd(gen)) / 3;
  Buf g_reads = rnd(std::size_t(s.B) * s.T * s.Hr * nL, 1.0), g_recon = rnd(std::size_t(s.B) * s.T, 1.0);
  std::vector<Buf> g_wT;
  for (int l = 0; l < s.L; ++l) g_wT.push_back(rnd(std::size_t(s.B) * s.weight_numel(l), 1.0));

  struct Out {
    std::vector<Buf> w_out, ckpt, g_w0, g_z;
    Buf reads, recon, g_kw, g_beta, g_alpha, g_kr, g_rv;
    Out(const MlpShape& s, int NC, int nz, const int* zw)
        : reads(std::size_t(s.B) * s.T * s.Hr * s.n[s.L], NAN), recon(std::size_t(s.B) * s.T, NAN),
          g_kw(std::size_t(s.B) * s.T * s.H * s.n[0]), g_beta(std::size_t(s.B) * s.T * s.L), g_alpha(s.B),
          g_kr(std::size_t(s.B) * s.T * s.Hr * s.n[0]), g_rv(std::size_t(s.B) * s.T * s.H * s.n[s.L]) {
      for (int l = 0; l < s.L; ++l) {
        w_out.emplace_back(std::size_t(s.B) * s.weight_numel(l), NAN);
        ckpt.emplace_back(std::size_t(s.B) * NC * s.weight_numel(l), NAN);
        g_w0.emplace_back(std::size_t(s.B) * s.weight_numel(l));
      }
      for (int l = 0; l < nz; ++l) g_z.emplace_back(std::size_t(s.B) * s.T * s.H * zw[l]);
    }
  };
  int zw[kMaxLayers];
  for (int l = 0; l < nz; ++l) zw[l] = rule == WriteRule::Local ? s.n[l + 1] : nL;
  Out ref(s, NC, nz, zw), emu(s, NC, nz, zw);

  auto fwd_params = [&](Out& o) {
    MlpScanFwdParams<T> p;
    p.s = s; p.act = act; p.rule = rule; p.ckpt_every = C;
    for (int l = 0; l < s.L; ++l) { p.w0[l] = w0[l].p(); p.w_out[l] = o.w_out[l].p(); p.ckpt[l] = o.ckpt[l].p(); }
    for (int l = 0; l < nz; ++l) p.z[l] = z[l].p();
    p.kw = kw.p(); p.kr = kr.p(); p.rv = rv.p(); p.beta = beta.p(); p.beta_per_layer = true;
    p.alpha = alpha.p(); p.reads = o.reads.p(); p.recon = o.recon.p();
    return p;
  };
  auto bwd_params = [&](Out& o) {
    MlpScanBwdParams<T> p;
    p.s = s; p.act = act; p.rule = rule; p.ckpt_every = C;
    for (int l = 0; l < s.L; ++l) { p.ckpt[l] = o.ckpt[l].p(); p.g_wT[l] = g_wT[l].p(); p.g_w0[l] = o.g_w0[l].p(); }
    for (int l = 0; l < nz; ++l) { p.z[l] = z[l].p(); p.g_z[l] = o.g_z[l].p(); }
    p.kw = kw.p(); p.kr = kr.p(); p.rv = rv.p(); p.beta = beta.p(); p.beta_per_layer = true;
    p.alpha = alpha.p(); p.g_reads = g_reads.p(); p.g_recon = g_recon.p();
    p.g_kw = o.g_kw.p(); p.g_beta = o.g_beta.p(); p.g_alpha = o.g_alpha.p(); p.g_kr = o.g_kr.p();
    p.g_rv = o.g_rv.p();
    return p;
  };
  const std::size_t fws = mlp_fwd_workspace(s), hot = MlpBwdScratch<T>::carve_hot(s, nullptr, nullptr),
                    bws = mlp_bwd_workspace(s, C);
  Buf ws_ref(std::size_t(s.B) * bws, NAN), ws_emu(std::size_t(s.B) * bws, NAN);
  {
    cpu::CpuExec ex;
    auto pf = fwd_params(ref);
    for (int b = 0; b < s.B; ++b) mlp_scan_forward_elem(ex, pf, b, ws_ref.p() + b * fws);
    auto pb = bwd_params(ref);
    for (int b = 0; b < s.B; ++b) mlp_scan_backward_elem(ex, pb, b, ws_ref.p() + b * bws, ws_ref.p() + b * bws + hot);
  }
  {
    auto pf = fwd_params(emu);
    for (int b = 0; b < s.B; ++b)
      run_block(nt, [&](ThreadExec ex) { mlp_scan_forward_elem(ex, pf, b, ws_emu.p() + b * fws); });
    auto pb = bwd_params(emu);
    for (int b = 0; b < s.B; ++b)
      run_block(nt, [&](ThreadExec ex) {
        mlp_scan_backward_elem(ex, pb, b, ws_emu.p() + b * bws, ws_emu.p() + b * bws + hot);
      });
  }
  // read forward / backward on the first step's read keys
  MlpShape sr = s;
  sr.T = 1;
  sr.H = s.Hr;
  const std::size_t rws = mlp_read_workspace(sr);
  Buf g_out = rnd(std::size_t(s.B) * s.Hr * nL, 1.0);
  struct ReadOut {
    Buf out, g_keys, ws;
    std::vector<Buf> g_w;
  };
  auto read_params = [&](ReadOut& o) {
    MlpReadParams<T> p;
    p.s = sr; p.act = act; p.keys = kr.p(); p.g_out = g_out.p(); p.out = o.out.p();
    p.g_keys = o.g_keys.p(); p.workspace = o.ws.p();
    for (int l = 0; l < s.L; ++l) { p.w[l] = w0[l].p(); p.g_w[l] = o.g_w[l].p(); }
    return p;
  };
  auto make_read_out = [&]() {
    ReadOut o{Buf(std::size_t(s.B) * s.Hr * nL, NAN), Buf(std::size_t(s.B) * s.Hr * s.n[0]),
              Buf(std::size_t(s.B) * rws, NAN), {}};
    for (int l = 0; l < s.L; ++l) o.g_w.emplace_back(std::size_t(s.B) * s.weight_numel(l));
    return o;
  };
  ReadOut rref = make_read_out(), remu = make_read_out();
  {
    cpu::CpuExec ex;
    auto p = read_params(rref);
    for (int b = 0; b < s.B; ++b) mlp_read_forward_elem(ex, p, b, p.workspace + b * rws);
    for (int b = 0; b < s.B; ++b) mlp_read_backward_elem(ex, p, b, p.workspace + b * rws);
  }
  {
    auto p = read_params(remu);
    for (int b = 0; b < s.B; ++b)
      run_block(nt, [&](ThreadExec ex) { mlp_read_forward_elem(ex, p, b, p.workspace + b * rws); });
    for (int b = 0; b < s.B; ++b)
      run_block(nt, [&](ThreadExec ex) { mlp_read_backward_elem(ex, p, b, p.workspace + b * rws); });
  }

  double worst = 0;
  auto cmp = [&](const char* name, Buf& a, Buf& b) {
    const double d = max_diff(a.v, b.v);
    std::printf("%-8s max|diff| %.3g\n", name, d);
    worst = d > worst || std::isnan(d) ? d : worst;
  };
  cmp("reads", ref.reads, emu.reads);
  cmp("recon", ref.recon, emu.recon);
  for (int l = 0; l < s.L; ++l) { cmp("w_out", ref.w_out[l], emu.w_out[l]); cmp("ckpt", ref.ckpt[l], emu.ckpt[l]); cmp("g_w0", ref.g_w0[l], emu.g_w0[l]); }
  for (int l = 0; l < nz; ++l) cmp("g_z", ref.g_z[l], emu.g_z[l]);
  cmp("g_kw", ref.g_kw, emu.g_kw);
  cmp("g_beta", ref.g_beta, emu.g_beta);
  cmp("g_alpha", ref.g_alpha, emu.g_alpha);
  cmp("g_kr", ref.g_kr, emu.g_kr);
  cmp("g_rv", ref.g_rv, emu.g_rv);
  cmp("read", rref.out, remu.out);
  cmp("rd_g_key", rref.g_keys, remu.g_keys);
  for (int l = 0; l < s.L; ++l) cmp("rd_g_w", rref.g_w[l], remu.g_w[l]);
  const bool ok = worst < 1e-9;
  std::printf("%s worst %.3g\n", ok ? "OK" : "MISMATCH", worst);
  return ok ? 0 : 1;
}

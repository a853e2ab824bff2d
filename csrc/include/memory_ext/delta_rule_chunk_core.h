// The chunkwise-parallel delta rule (WY / UT-transform form of DeltaNet, arXiv 2406.06484) for
// ONE head, forward and backward, written once for every backend (the Exec policy of
// mlp_memory_core.h: sync, for_n, copy, gemm_nt / gemm_tn / gemm_nn).
//
// Per chunk of r <= C steps with state S [K, V] at its start, G = K K^T [r, r] and
// A = I + strict_tril(diag(beta) G) (unit lower triangular):
//   W  = A^-1 diag(beta) K   [r, K]        U~ = A^-1 diag(beta) V   [r, V]
//   U  = U~ - W S            (the pseudo-values beta_t (v_t - S_{t-1}^T k_t))
//   P  = tril(Q K^T)         (diagonal included)
//   O  = scale (Q S + P U);  S <- S + K^T U
// The triangular solves are row-by-row substitutions (no explicit inverse). The backward walks
// the chunks in reverse from the saved chunk-start states, recomputing G, W, U~, U and P.
#pragma once

#include <cstddef>

#include "memory_ext/common.h"

namespace memory_ext {

template <typename T>
struct DeltaRuleChunkParams {
  int BH = 0, steps = 0, K = 0, V = 0, C = 64;  // heads (batch folded in), steps, dims, chunk
  T scale = T(1);
  const T* q = nullptr;     // [BH, T, K]
  const T* k = nullptr;     // [BH, T, K]
  const T* v = nullptr;     // [BH, T, V]
  const T* beta = nullptr;  // [BH, T]
  // forward
  const T* S0 = nullptr;  // [BH, K, V] or null (zero initial state)
  T* o = nullptr;         // [BH, T, V]
  T* S = nullptr;         // [BH, K, V] final state (the running state during the forward)
  T* states = nullptr;    // [BH, n, K, V] chunk-start states, or null (no backward follows)
  // backward (states as saved by the forward)
  const T* grad_o = nullptr;  // [BH, T, V]
  const T* grad_S = nullptr;  // [BH, K, V] upstream gradient of the final state, or null
  T* dq = nullptr;            // [BH, T, K]
  T* dk = nullptr;            // [BH, T, K]
  T* dv = nullptr;            // [BH, T, V]
  T* dbeta = nullptr;         // [BH, T]
  T* dS0 = nullptr;           // [BH, K, V]
  T* workspace = nullptr;     // BH * delta_rule_chunk_workspace(...)

  ME_HD int chunks() const { return steps / C + (steps % C != 0); }  // (no int overflow)
};

// Per-head scratch (elements): forward G, P [C, C], W [C, K], U~, U [C, V];
// backward adds dP, dA [C, C], dW, Y_W [C, K], dU, Y_U [C, V], dS [K, V].
ME_HD inline std::size_t delta_rule_chunk_workspace(int C, int K, int V, bool backward) {
  const std::size_t cc = std::size_t(C) * C, ck = std::size_t(C) * K, cv = std::size_t(C) * V;
  std::size_t n = 2 * cc + ck + 2 * cv;
  if (backward) n += 2 * cc + 2 * ck + 2 * cv + std::size_t(K) * V;
  return n;
}

namespace delta_rule_chunk_detail {

template <typename T>
struct Scaled {  // epilogue: v * s
  T s;
  ME_HD ME_INLINE T operator()(int, int, T v) const { return s * v; }
#if !defined(__CUDACC__)
  void row(int, T* c, int n) const {
#pragma omp simd
    for (int i = 0; i < n; ++i) c[i] *= s;
  }
#endif
};

// X_i = beta_i (B_i - sum_{j<i} G_ij X_j), i = 0..r-1: X = A^-1 diag(beta) B.  X, B [r, w].
// Each row is a [1, i] x [i, w] product over the rows already solved.
template <typename E, typename T>
ME_HD void solve_lower(const E& ex, int r, int w, const T* G, const T* beta, const T* B, T* X) {
  for (int i = 0; i < r; ++i) {
    T* xi = X + static_cast<long>(i) * w;
    ex.copy(w, B + static_cast<long>(i) * w, xi);
    ex.sync();
    ex.gemm_nn(1, w, i, G + static_cast<long>(i) * r, X, xi, T(-1), T(1), Scaled<T>{beta[i]});
    ex.sync();
  }
}

// Y = A^-T D: Y_i = D_i - sum_{j>i} At_ij Y_j, i = r-1..0, with At [r, r] holding
// At_ij = beta_j G_ij (= A_ji; G is symmetric).  Y, D [r, w].
template <typename E, typename T>
ME_HD void solve_upper_t(const E& ex, int r, int w, const T* At, const T* D, T* Y) {
  for (int i = r - 1; i >= 0; --i) {
    T* yi = Y + static_cast<long>(i) * w;
    ex.copy(w, D + static_cast<long>(i) * w, yi);
    ex.sync();
    ex.gemm_nn(1, w, r - 1 - i, At + static_cast<long>(i) * r + i + 1, yi + w, yi, T(-1), T(1),
               NoEpilogue{});
    ex.sync();
  }
}

// Recompute G, W, U~, U = U~ - W S and P = tril(Q K^T) of one chunk.
template <typename E, typename T>
ME_HD void chunk_prologue(const E& ex, int r, int K, int V, const T* Qc, const T* Kc,
                          const T* Vc, const T* bc, const T* S, T* G, T* P, T* W, T* Ut, T* U) {
  ex.gemm_nt(r, r, K, Kc, Kc, G, T(1), T(0), NoEpilogue{});
  ex.gemm_nt(r, r, K, Qc, Kc, P, T(1), T(0), NoEpilogue{});
  ex.sync();
  ex.for_n(r * r, [&](int idx) {
    if (idx % r > idx / r) P[idx] = T(0);
  });
  solve_lower(ex, r, K, G, bc, Kc, W);  // ends in sync()
  solve_lower(ex, r, V, G, bc, Vc, Ut);
  ex.copy(r * V, Ut, U);
  ex.sync();
  ex.gemm_nn(r, V, K, W, S, U, T(-1), T(1), NoEpilogue{});
  ex.sync();
}

}  // namespace delta_rule_chunk_detail

template <typename E, typename T>
ME_HD void delta_rule_chunk_forward_head(const E& ex, const DeltaRuleChunkParams<T>& p, int h,
                                         T* ws) {
  using namespace delta_rule_chunk_detail;
  const int K = p.K, V = p.V, C = p.C, n = p.chunks();
  T* G = ws;
  T* P = G + static_cast<long>(C) * C;
  T* W = P + static_cast<long>(C) * C;
  T* Ut = W + static_cast<long>(C) * K;
  T* U = Ut + static_cast<long>(C) * V;
  const long kv = static_cast<long>(K) * V;
  T* S = p.S + h * kv;
  if (p.S0 != nullptr) {
    ex.copy(static_cast<int>(kv), p.S0 + h * kv, S);
  } else {
    ex.for_n(static_cast<int>(kv), [&](int i) { S[i] = T(0); });
  }
  ex.sync();
  for (int c = 0; c < n; ++c) {
    const long t0 = static_cast<long>(c) * C;
    const int r = static_cast<int>(p.steps - t0 < C ? p.steps - t0 : C);
    const long row = static_cast<long>(h) * p.steps + t0;
    const T* Qc = p.q + row * K;
    const T* Kc = p.k + row * K;
    if (p.states != nullptr) ex.copy(static_cast<int>(kv), S, p.states + (static_cast<long>(h) * n + c) * kv);
    chunk_prologue(ex, r, K, V, Qc, Kc, p.v + row * V, p.beta + row, S, G, P, W, Ut, U);
    T* Oc = p.o + row * V;
    ex.gemm_nn(r, V, K, Qc, S, Oc, p.scale, T(0), NoEpilogue{});
    ex.sync();
    ex.gemm_nn(r, V, r, P, U, Oc, p.scale, T(1), NoEpilogue{});
    ex.gemm_tn(K, V, r, Kc, U, S, T(1), T(1));
    ex.sync();
  }
}

template <typename E, typename T>
ME_HD void delta_rule_chunk_backward_head(const E& ex, const DeltaRuleChunkParams<T>& p, int h,
                                          T* ws) {
  using namespace delta_rule_chunk_detail;
  const int K = p.K, V = p.V, C = p.C, n = p.chunks();
  const long cc = static_cast<long>(C) * C, ck = static_cast<long>(C) * K,
             cv = static_cast<long>(C) * V, kv = static_cast<long>(K) * V;
  T* G = ws;
  T* P = G + cc;
  T* W = P + cc;
  T* Ut = W + ck;
  T* U = Ut + cv;
  T* dP = U + cv;
  T* dA = dP + cc;
  T* dW = dA + cc;
  T* YW = dW + ck;
  T* dU = YW + ck;
  T* YU = dU + cv;
  T* dS = YU + cv;  // gradient of the state after the current chunk
  if (p.grad_S != nullptr) {
    ex.copy(static_cast<int>(kv), p.grad_S + h * kv, dS);
  } else {
    ex.for_n(static_cast<int>(kv), [&](int i) { dS[i] = T(0); });
  }
  ex.sync();
  const T s = p.scale;
  for (int c = n - 1; c >= 0; --c) {
    const long t0 = static_cast<long>(c) * C;
    const int r = static_cast<int>(p.steps - t0 < C ? p.steps - t0 : C);
    const long row = static_cast<long>(h) * p.steps + t0;
    const T *Qc = p.q + row * K, *Kc = p.k + row * K, *Vc = p.v + row * V, *bc = p.beta + row;
    const T* dO = p.grad_o + row * V;
    T *dQ = p.dq + row * K, *dK = p.dk + row * K, *dV = p.dv + row * V, *db = p.dbeta + row;
    const T* S = p.states + (static_cast<long>(h) * n + c) * kv;
    chunk_prologue(ex, r, K, V, Qc, Kc, Vc, bc, S, G, P, W, Ut, U);
    // dU = s P^T dO + K dS;  dQ = s dO S^T (+ s dP K below);  dP = tril(dO U^T)
    ex.gemm_tn(r, V, r, P, dO, dU, s, T(0));
    ex.gemm_nt(r, K, V, dO, S, dQ, s, T(0), NoEpilogue{});
    ex.gemm_nt(r, r, V, dO, U, dP, T(1), T(0), NoEpilogue{});
    ex.sync();
    ex.gemm_nn(r, V, K, Kc, dS, dU, T(1), T(1), NoEpilogue{});
    ex.for_n(r * r, [&](int idx) {
      if (idx % r > idx / r) dP[idx] = T(0);
    });
    ex.sync();
    // dQ += s dP K;  dK = s dP^T Q + U dS^T;  dW = -dU S^T
    ex.gemm_nn(r, K, r, dP, Kc, dQ, s, T(1), NoEpilogue{});
    ex.gemm_tn(r, K, r, dP, Qc, dK, s, T(0));
    ex.gemm_nt(r, K, V, dU, S, dW, T(-1), T(0), NoEpilogue{});
    ex.sync();
    ex.gemm_nt(r, K, V, U, dS, dK, T(1), T(1), NoEpilogue{});
    ex.sync();
    // the state before this chunk: dS += s Q^T dO - W^T dU
    ex.gemm_tn(K, V, r, Qc, dO, dS, s, T(1));
    ex.sync();
    ex.gemm_tn(K, V, r, W, dU, dS, T(-1), T(1));
    // through the solves: Y_W = A^-T dW, Y_U = A^-T dU (dU~ = dU); dA holds A^T meanwhile
    ex.for_n(r * r, [&](int idx) { dA[idx] = bc[idx % r] * G[idx]; });
    ex.sync();
    solve_upper_t(ex, r, K, dA, dW, YW);
    solve_upper_t(ex, r, V, dA, dU, YU);
    // dA = -(Y_W W^T + Y_U U~^T), strictly lower part
    ex.gemm_nt(r, r, K, YW, W, dA, T(-1), T(0), NoEpilogue{});
    ex.sync();
    ex.gemm_nt(r, r, V, YU, Ut, dA, T(-1), T(1), NoEpilogue{});
    ex.sync();
    // d beta_i = k_i . Y_W_i + v_i . Y_U_i + sum_{j<i} dA_ij G_ij;  dV = beta Y_U;
    // dK += beta Y_W;  then dA <- diag(beta) strict_tril(dA) = M and dK += M K + M^T K
    ex.for_n(r, [&](int i) {
      T acc = T(0);
      for (int j = 0; j < K; ++j) acc += Kc[static_cast<long>(i) * K + j] * YW[static_cast<long>(i) * K + j];
      for (int j = 0; j < V; ++j) acc += Vc[static_cast<long>(i) * V + j] * YU[static_cast<long>(i) * V + j];
      for (int j = 0; j < i; ++j) acc += dA[static_cast<long>(i) * r + j] * G[static_cast<long>(i) * r + j];
      db[i] = acc;
    });
    ex.for_n(r * V, [&](int idx) { dV[idx] = bc[idx / V] * YU[idx]; });
    ex.for_n(r * K, [&](int idx) { dK[idx] += bc[idx / K] * YW[idx]; });
    ex.sync();
    ex.for_n(r * r, [&](int idx) {
      const int i = idx / r, j = idx - i * r;
      dA[idx] = j < i ? bc[i] * dA[idx] : T(0);
    });
    ex.sync();
    ex.gemm_nn(r, K, r, dA, Kc, dK, T(1), T(1), NoEpilogue{});
    ex.sync();
    ex.gemm_tn(r, K, r, dA, Kc, dK, T(1), T(1));
    ex.sync();
  }
  ex.copy(static_cast<int>(kv), dS, p.dS0 + h * kv);
}

}  // namespace memory_ext

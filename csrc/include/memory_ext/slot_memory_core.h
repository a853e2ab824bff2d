// Slot memory (spec section 3) for ONE batch element, torch-free, shared by the CPU kernels and
// the CUDA kernels (one thread per batch element there). Slots >= min(count, N) are dead.
//   soft read (MemN2N): per hop k, s_i = u.M^k_i, p = softmax(s), o = sum_i p_i C^k_i,
//                       u <- A u + o  (A = R or I)
//   hard read (MemNN):  o_k = argmax_i u.M_i (ties: lowest index), u <- u + Q[o_k]
#pragma once

#include <cstdint>

#include "memory_ext/common.h"

namespace memory_ext {

template <typename T>
struct SlotReadParams {
  int B = 0, N = 0, d = 0, K = 1;
  bool per_hop = false;          // M, C are [K, B, N, d] (else [B, N, d], shared by all hops)
  const T* q = nullptr;          // [B, d]
  const T* M = nullptr;          // keys
  const T* C = nullptr;          // values (same shape as M)
  const int64_t* count = nullptr;  // [B]
  const T* R = nullptr;          // [d, d] or null (identity)
  T* u = nullptr;                // [B, d] output u^K
  T* attn = nullptr;             // [B, K, N] (0 at dead slots)
  T* saved_u = nullptr;          // [B, K, d]: u^{k-1} of every hop
  // backward
  const T* gu = nullptr;         // [B, d]
  const T* gattn = nullptr;      // [B, K, N] or null
  T* dq = nullptr;               // [B, d]
  T* dM = nullptr;               // like M, zero-initialised by the host
  T* dC = nullptr;               // like C, zero-initialised by the host
  T* dR = nullptr;               // [B, d, d] per-element partials, zero-initialised, or null
  T* workspace = nullptr;        // [B, N + d]

  ME_HD const T* mem(const T* base, int k, int b) const {
    return base + ((per_hop ? static_cast<long>(k) * B + b : static_cast<long>(b)) * N) * d;
  }
  ME_HD T* mem(T* base, int k, int b) const {
    return base + ((per_hop ? static_cast<long>(k) * B + b : static_cast<long>(b)) * N) * d;
  }
  ME_HD int live(int b) const {
    const int64_t c = count[b];
    return static_cast<int>(c < N ? c : N);
  }
};

template <typename T>
ME_HD T slot_dot(const T* a, const T* b, int d) {
  T s = T(0);
  for (int j = 0; j < d; ++j) s += a[j] * b[j];
  return s;
}

template <typename T>
ME_HD void slot_read_forward_elem(const SlotReadParams<T>& p, int b) {
  const int d = p.d, N = p.N, n = p.live(b);
  T* u = p.u + static_cast<long>(b) * d;
  for (int j = 0; j < d; ++j) u[j] = p.q[static_cast<long>(b) * d + j];
  for (int k = 0; k < p.K; ++k) {
    T* up = p.saved_u + (static_cast<long>(b) * p.K + k) * d;
    for (int j = 0; j < d; ++j) up[j] = u[j];
    const T* Mk = p.mem(p.M, k, b);
    const T* Ck = p.mem(p.C, k, b);
    T* a = p.attn + (static_cast<long>(b) * p.K + k) * N;
    T mx = T(0);
    for (int i = 0; i < n; ++i) {
      a[i] = slot_dot(up, Mk + static_cast<long>(i) * d, d);
      mx = (i == 0 || a[i] > mx) ? a[i] : mx;
    }
    T z = T(0);
    for (int i = 0; i < n; ++i) {
      a[i] = exp(a[i] - mx);
      z += a[i];
    }
    for (int i = 0; i < n; ++i) a[i] /= z;
    for (int i = n; i < N; ++i) a[i] = T(0);
    for (int j = 0; j < d; ++j) {  // u = A u_prev + sum_i p_i C_i
      T s = p.R != nullptr ? slot_dot(p.R + static_cast<long>(j) * d, up, d) : up[j];
      for (int i = 0; i < n; ++i) s += a[i] * Ck[static_cast<long>(i) * d + j];
      u[j] = s;
    }
  }
}

template <typename T>
ME_HD void slot_read_backward_elem(const SlotReadParams<T>& p, int b) {
  const int d = p.d, N = p.N, n = p.live(b);
  T* g = p.dq + static_cast<long>(b) * d;  // running dL/du
  T* dp = p.workspace + static_cast<long>(b) * (N + d);
  T* tmp = dp + N;
  for (int j = 0; j < d; ++j) g[j] = p.gu[static_cast<long>(b) * d + j];
  for (int k = p.K - 1; k >= 0; --k) {
    const T* up = p.saved_u + (static_cast<long>(b) * p.K + k) * d;
    const T* a = p.attn + (static_cast<long>(b) * p.K + k) * N;
    const T* Mk = p.mem(p.M, k, b);
    const T* Ck = p.mem(p.C, k, b);
    T* dMk = p.mem(p.dM, k, b);
    T* dCk = p.mem(p.dC, k, b);
    T dot = T(0);
    for (int i = 0; i < n; ++i) {
      dp[i] = slot_dot(g, Ck + static_cast<long>(i) * d, d) +
              (p.gattn != nullptr ? p.gattn[(static_cast<long>(b) * p.K + k) * N + i] : T(0));
      dot += a[i] * dp[i];
      for (int j = 0; j < d; ++j) dCk[static_cast<long>(i) * d + j] += a[i] * g[j];
    }
    for (int j = 0; j < d; ++j) {  // A^T g
      T s = T(0);
      if (p.R != nullptr) {
        for (int r = 0; r < d; ++r) s += p.R[static_cast<long>(r) * d + j] * g[r];
      } else {
        s = g[j];
      }
      tmp[j] = s;
    }
    if (p.dR != nullptr) {
      T* dR = p.dR + static_cast<long>(b) * d * d;
      for (int r = 0; r < d; ++r)
        for (int j = 0; j < d; ++j) dR[static_cast<long>(r) * d + j] += g[r] * up[j];
    }
    for (int i = 0; i < n; ++i) {
      const T ds = a[i] * (dp[i] - dot);
      for (int j = 0; j < d; ++j) {
        tmp[j] += ds * Mk[static_cast<long>(i) * d + j];
        dMk[static_cast<long>(i) * d + j] += ds * up[j];
      }
    }
    for (int j = 0; j < d; ++j) g[j] = tmp[j];
  }
}

template <typename T>
struct SlotHardParams {
  int B = 0, N = 0, d = 0, K = 1;
  const T* q = nullptr;            // [B, d]
  const T* M = nullptr;            // [B, N, d]
  const T* Q = nullptr;            // [B, N, d]
  const int64_t* count = nullptr;  // [B]
  int64_t* index = nullptr;        // [B, K] (-1 when the memory is empty)
  T* scores = nullptr;             // [B, K, N] (-inf at dead slots)
  // backward
  const T* gscores = nullptr;      // [B, K, N]
  T* dq = nullptr;                 // [B, d]
  T* dM = nullptr;                 // [B, N, d], zero-initialised
  T* dQ = nullptr;                 // [B, N, d], zero-initialised
  T* workspace = nullptr;          // [B, (K + 1) d]

  ME_HD int live(int b) const {
    const int64_t c = count[b];
    return static_cast<int>(c < N ? c : N);
  }
};

template <typename T>
ME_HD void slot_hard_forward_elem(const SlotHardParams<T>& p, int b, T* u /* [d] */) {
  const int d = p.d, N = p.N, n = p.live(b);
  const T* M = p.M + static_cast<long>(b) * N * d;
  const T* Q = p.Q + static_cast<long>(b) * N * d;
  for (int j = 0; j < d; ++j) u[j] = p.q[static_cast<long>(b) * d + j];
  for (int k = 0; k < p.K; ++k) {
    T* s = p.scores + (static_cast<long>(b) * p.K + k) * N;
    int best = -1;
    for (int i = 0; i < N; ++i) {
      if (i >= n) {
        s[i] = -INFINITY;
        continue;
      }
      s[i] = slot_dot(u, M + static_cast<long>(i) * d, d);
      // torch.argmax's order: NaN is the largest value (the first NaN wins), then ties go to
      // the lowest index (x != x: NaN, without isnan, so that it compiles for the device too)
      if (best < 0 || (s[best] == s[best] && (s[i] > s[best] || s[i] != s[i]))) best = i;
    }
    p.index[static_cast<long>(b) * p.K + k] = best;
    if (best >= 0)
      for (int j = 0; j < d; ++j) u[j] += Q[static_cast<long>(best) * d + j];
  }
}

template <typename T>
ME_HD void slot_hard_backward_elem(const SlotHardParams<T>& p, int b) {
  const int d = p.d, N = p.N, n = p.live(b), K = p.K;
  const T* M = p.M + static_cast<long>(b) * N * d;
  const T* Q = p.Q + static_cast<long>(b) * N * d;
  T* dM = p.dM + static_cast<long>(b) * N * d;
  T* dQ = p.dQ + static_cast<long>(b) * N * d;
  T* du = p.workspace + static_cast<long>(b) * (K + 1) * d;  // [K, d]: dL/du^{k-1} via scores
  T* u = du + static_cast<long>(K) * d;
  const int64_t* idx = p.index + static_cast<long>(b) * K;
  for (int j = 0; j < d; ++j) u[j] = p.q[static_cast<long>(b) * d + j];
  for (int k = 0; k < K; ++k) {
    const T* g = p.gscores + (static_cast<long>(b) * K + k) * N;
    T* duk = du + static_cast<long>(k) * d;
    for (int j = 0; j < d; ++j) duk[j] = T(0);
    for (int i = 0; i < n; ++i) {
      for (int j = 0; j < d; ++j) {
        duk[j] += g[i] * M[static_cast<long>(i) * d + j];
        dM[static_cast<long>(i) * d + j] += g[i] * u[j];
      }
    }
    if (idx[k] >= 0 && idx[k] < N)  // (the host checks the range only for CPU tensors)
      for (int j = 0; j < d; ++j) u[j] += Q[idx[k] * d + j];
  }
  // u^{k-1} = q + sum_{j<k} Q[o_j]: dq = sum_k du_k, dQ[o_j] += sum_{k>j} du_k
  T* dq = p.dq + static_cast<long>(b) * d;
  for (int j = 0; j < d; ++j) dq[j] = T(0);
  for (int k = K - 1; k >= 0; --k) {
    for (int j = 0; j < d; ++j) dq[j] += du[static_cast<long>(k) * d + j];
    if (k > 0 && idx[k - 1] >= 0 && idx[k - 1] < N)  // o_{k-1} fed every u from hop k on: dq holds that suffix sum
      for (int j = 0; j < d; ++j) dQ[idx[k - 1] * d + j] += dq[j];
  }
}

}  // namespace memory_ext

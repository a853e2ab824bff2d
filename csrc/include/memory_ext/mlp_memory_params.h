// Torch-free parameter structs and workspace layout of the MLP fast-weight memory ops.
// Layer l (0-based) maps width n[l] -> n[l+1]; W[l] is [n[l+1], n[l]] (out x in).
#pragma once

#include <cstddef>
#include <cstdint>

#include "memory_ext/common.h"

namespace memory_ext {

struct MlpShape {
  int B = 0;   // batch
  int T = 1;   // time steps (1 for step / write)
  int H = 0;   // write heads
  int Hr = 0;  // read heads (0: no read)
  int L = 0;   // layers, 1..kMaxLayers
  int n[kMaxLayers + 1] = {0, 0, 0, 0, 0};  // widths n_0 .. n_L

  ME_HD int weight_numel(int l) const { return n[l + 1] * n[l]; }
  ME_HD int weights_numel() const {
    int s = 0;
    for (int l = 0; l < L; ++l) s += weight_numel(l);
    return s;
  }
  ME_HD int max_width() const {
    int m = 0;
    for (int l = 0; l <= L; ++l) m = n[l] > m ? n[l] : m;
    return m;
  }
  ME_HD int max_heads() const { return H > Hr ? H : Hr; }
  ME_HD int stacked_heads() const { return H + Hr; }  // read and write keys as one batch of rows
};

// Forward of scan (step and write are scans with T = 1; write has Hr = 0).
// All tensors are contiguous.
template <typename T>
struct MlpScanFwdParams {
  MlpShape s;
  Activation act = Activation::Tanh;
  WriteRule rule = WriteRule::Local;
  int ckpt_every = 1;                 // C: checkpoint W_t every C steps
  const T* w0[kMaxLayers] = {};       // [B, n[l+1], n[l]] initial weights
  const T* kw = nullptr;              // [B, T, H, n_0] write keys
  const T* z[kMaxLayers] = {};        // local: z[l] [B, T, H, n[l+1]]; grad: z[0] values [B, T, H, n_L]
  const T* beta = nullptr;            // [B, T, L] (beta_per_layer) or [B, T]
  bool beta_per_layer = false;
  const T* alpha = nullptr;           // [B] or nullptr (no decay)
  const T* kr = nullptr;              // [B, T, Hr, n_0] read keys
  const T* rv = nullptr;              // [B, T, H, n_L] recon values, nullptr: no recon
  T* reads = nullptr;                 // [B, T, Hr, n_L]
  T* w_out[kMaxLayers] = {};          // [B, n[l+1], n[l]] final weights
  T* recon = nullptr;                 // [B, T] or nullptr
  T* ckpt[kMaxLayers] = {};           // [B, NC, n[l+1], n[l]] W_{k*C}, or nullptr
  T* workspace = nullptr;             // [B, mlp_fwd_workspace(s)]
  bool update_in_output = false;      // keep the running weights in w_out (CPU: saves 2 copies)
  // [B, T, mlp_step_saved(s)] or nullptr: each step's write activations and errors (A, D, g of
  // saved_step_views), what the in-place backward needs to undo and differentiate the step
  T* saved = nullptr;
};

// Backward of scan. Gradient outputs are zero-initialised by the host and accumulated into.
template <typename T>
struct MlpScanBwdParams {
  MlpShape s;
  Activation act = Activation::Tanh;
  WriteRule rule = WriteRule::Local;
  int ckpt_every = 1;
  const T* ckpt[kMaxLayers] = {};     // [B, NC, n[l+1], n[l]], ckpt 0 = initial weights
  const T* kw = nullptr;              // [B, T, H, n_0]
  const T* z[kMaxLayers] = {};        // as in the forward
  const T* beta = nullptr;            // [B, T, L] (beta_per_layer) or [B, T]
  bool beta_per_layer = false;
  const T* alpha = nullptr;           // [B] or nullptr
  const T* kr = nullptr;              // [B, T, Hr, n_0]
  const T* rv = nullptr;              // [B, T, H, n_L] or nullptr
  const T* g_reads = nullptr;         // [B, T, Hr, n_L] or nullptr (zero)
  const T* g_wT[kMaxLayers] = {};     // [B, n[l+1], n[l]] or nullptr (zero)
  const T* g_recon = nullptr;         // [B, T] or nullptr (zero)
  T* g_w0[kMaxLayers] = {};           // [B, n[l+1], n[l]]
  T* g_kw = nullptr;                  // [B, T, H, n_0]
  T* g_z[kMaxLayers] = {};            // like z
  T* g_beta = nullptr;                // like beta
  T* g_alpha = nullptr;               // [B] or nullptr
  T* g_kr = nullptr;                  // [B, T, Hr, n_0]
  T* g_rv = nullptr;                  // [B, T, H, n_L] (may alias g_z[0] for rule grad)
  T* workspace = nullptr;             // [B, mlp_bwd_workspace(s, C)]
  // CPU: accumulate dJ/dW in g_w0 itself (no copy at the end) and read each segment's first
  // weights from the checkpoint in place (no copy into the snapshots).
  bool in_place = false;
  // In-place step backward (T = 1, see mlp_step_inplace_backward_elem): w_inout holds W_t and is
  // turned back into W_{t-1}; g_w0 holds dJ/dW_t and becomes dJ/dW_{t-1}; saved is the
  // forward's [B, mlp_step_saved(s)]. ckpt and g_wT are unused.
  T* w_inout[kMaxLayers] = {};
  const T* saved = nullptr;
};

// Read forward / backward (no write).
template <typename T>
struct MlpReadParams {
  MlpShape s;  // T = 1, H unused, Hr = read heads
  Activation act = Activation::Tanh;
  const T* w[kMaxLayers] = {};        // [B, n[l+1], n[l]]
  const T* keys = nullptr;            // [B, Hr, n_0]
  const T* g_out = nullptr;           // backward: [B, Hr, n_L]
  T* out = nullptr;                   // forward: [B, Hr, n_L]
  T* g_w[kMaxLayers] = {};            // backward: [B, n[l+1], n[l]]
  T* g_keys = nullptr;                // backward: [B, Hr, n_0]
  T* workspace = nullptr;             // [B, mlp_read_workspace(s)]
};

// beta[l] of step t of batch element b: beta is [B, T, L] or [B, T] (shared by the layers).
template <typename T>
ME_HD ME_INLINE std::size_t beta_index(const MlpShape& s, bool per_layer, std::size_t bt, int l) {
  return per_layer ? bt * s.L + l : bt;
}

// One [H, n[l]] row block of a step's saved block, rounded up to 8 elements.
ME_HD ME_INLINE std::size_t saved_block(const MlpShape& s, int l) {
  return (std::size_t(s.H) * s.n[l] + 7) & ~std::size_t(7);
}

// Elements of one step's saved write activations and errors (see saved_step_views).
ME_HD ME_INLINE std::size_t mlp_step_saved(const MlpShape& s) {
  std::size_t n = 0;
  for (int l = 1; l <= s.L; ++l) n += 3 * saved_block(s, l);
  return n;
}

// The views of one step's saved block: A[1..L] write activations, D[1..L] errors, g[1..L-1]
// pre-derivative deltas (rule grad) [H, n[l]] each, 8-element aligned.
template <typename T>
ME_HD void saved_step_views(const MlpShape& s, T* base, T** A, T** D, T** g) {
  std::size_t off = 0;
  for (int l = 1; l <= s.L; ++l) {
    const std::size_t n = saved_block(s, l);
    A[l] = base + off;
    D[l] = base + off + n;
    g[l] = base + off + 2 * n;
    off += 3 * n;
  }
}

// Bump allocator: with base == nullptr it only measures.
template <typename T>
struct Carver {
  T* base;
  std::size_t used = 0;
  ME_HD explicit Carver(T* b) : base(b) {}
  ME_HD T* take(std::size_t n) {
    T* p = base ? base + used : nullptr;
    used += (n + 7) & ~std::size_t(7);  // keep 32/64-byte alignment of every buffer
    return p;
  }
};

// Per-batch-element scratch of the forward: current weights, write activations and errors,
// and read/recon activations.
template <typename T>
struct MlpFwdScratch {
  T* W[kMaxLayers];
  // A[1..L] write activations, D[1..L] errors / deltas [H, n[l]]; the forward sets A[0] to each
  // step's keys and, with MlpScanFwdParams::saved, points A and D at the step's saved block
  T* A[kMaxLayers + 1];
  T* D[kMaxLayers + 1];
  T* RA[kMaxLayers + 1];  // RA[0..L] read + recon activations [stacked_heads, n[l]]

  ME_HD static std::size_t carve(const MlpShape& s, T* base, MlpFwdScratch* out) {
    Carver<T> c(base);
    MlpFwdScratch tmp;
    MlpFwdScratch& o = out ? *out : tmp;
    for (int l = 0; l < s.L; ++l) o.W[l] = c.take(s.weight_numel(l));
    for (int l = 1; l <= s.L; ++l) {
      o.A[l] = c.take(std::size_t(s.H) * s.n[l]);
      o.D[l] = c.take(std::size_t(s.H) * s.n[l]);
    }
    for (int l = 0; l <= s.L; ++l) o.RA[l] = c.take(std::size_t(s.stacked_heads()) * s.n[l]);
    return c.used;
  }
};

// Per-batch-element scratch of the backward. "hot": what every step touches (on chip when it
// fits); "cold": the segment's weight snapshots W_{s..s+C} and its saved write activations.
template <typename T>
struct MlpBwdScratch {
  // hot
  T* G[kMaxLayers];        // dJ/dW_t [n[l+1], n[l]]
  T* dA[kMaxLayers + 1];   // dA[1..L] [H, n[l]] (dA[0]: set per step, into g_kw)
  T* dD[kMaxLayers + 1];   // dD[1..L] [H, n[l]]
  T* dPx[kMaxLayers + 1];  // dPx[1..L-1] second-order term of rule grad [H, n[l]]
  T* RA[kMaxLayers + 1];   // RA[0..L] [stacked_heads, n[l]] (RA[0]: the stacked keys)
  T* g_keys;               // [stacked_heads, n_0]
  T* buf0;                 // [stacked_heads, max_width]
  T* buf1;                 // [stacked_heads, max_width]
  // cold
  T* snap;                 // [C + 1, weights_numel]
  T* saved;                // [C, per_step_saved]

  ME_HD static std::size_t per_step_saved(const MlpShape& s) { return mlp_step_saved(s); }
  // Saved write activations of segment step i: A[1..L], D[1..L], g[1..L-1] (pre-derivative delta).
  ME_HD void step_views(const MlpShape& s, int i, T** A, T** D, T** g) const {
    saved_step_views(s, saved + std::size_t(i) * per_step_saved(s), A, D, g);
  }
  ME_HD static std::size_t carve_hot(const MlpShape& s, T* base, MlpBwdScratch* out) {
    Carver<T> c(base);
    MlpBwdScratch tmp;
    MlpBwdScratch& o = out ? *out : tmp;
    for (int l = 0; l < s.L; ++l) o.G[l] = c.take(s.weight_numel(l));
    for (int l = 1; l <= s.L; ++l) {
      o.dA[l] = c.take(std::size_t(s.H) * s.n[l]);
      o.dD[l] = c.take(std::size_t(s.H) * s.n[l]);
      o.dPx[l] = c.take(std::size_t(s.H) * s.n[l]);
    }
    for (int l = 0; l <= s.L; ++l) o.RA[l] = c.take(std::size_t(s.stacked_heads()) * s.n[l]);
    o.g_keys = c.take(std::size_t(s.stacked_heads()) * s.n[0]);
    o.buf0 = c.take(std::size_t(s.stacked_heads()) * s.max_width());
    o.buf1 = c.take(std::size_t(s.stacked_heads()) * s.max_width());
    return c.used;
  }
  ME_HD static std::size_t carve_cold(const MlpShape& s, int C, T* base, MlpBwdScratch* out) {
    Carver<T> c(base);
    MlpBwdScratch tmp;
    MlpBwdScratch& o = out ? *out : tmp;
    o.snap = c.take((std::size_t(C) + 1) * s.weights_numel());
    o.saved = c.take(std::size_t(C) * per_step_saved(s));
    return c.used;
  }
};

template <typename T>
struct MlpReadScratch {
  T* W[kMaxLayers];
  T* RA[kMaxLayers + 1];  // [Hr, n[l]]
  T* buf0;
  T* buf1;
  ME_HD static std::size_t carve(const MlpShape& s, T* base, MlpReadScratch* out) {
    Carver<T> c(base);
    MlpReadScratch tmp;
    MlpReadScratch& o = out ? *out : tmp;
    ME_UNROLL for (int l = 0; l < ME_LAYER_END(s.L); ++l) {  // constant indices: see ME_UNROLL
      if (l < s.L) o.W[l] = c.take(s.weight_numel(l));
    }
    ME_UNROLL for (int l = 1; l <= ME_LAYER_END(s.L); ++l) {
      if (l <= s.L) o.RA[l] = c.take(std::size_t(s.Hr) * s.n[l]);
    }
    o.buf0 = c.take(std::size_t(s.Hr) * s.max_width());
    o.buf1 = c.take(std::size_t(s.Hr) * s.max_width());
    return c.used;
  }
};

inline std::size_t mlp_fwd_workspace(const MlpShape& s) {
  return MlpFwdScratch<char>::carve(s, nullptr, nullptr);
}
inline std::size_t mlp_bwd_workspace(const MlpShape& s, int C) {
  return MlpBwdScratch<char>::carve_hot(s, nullptr, nullptr) +
         MlpBwdScratch<char>::carve_cold(s, C, nullptr, nullptr);
}
inline std::size_t mlp_read_workspace(const MlpShape& s) {
  return MlpReadScratch<char>::carve(s, nullptr, nullptr);
}

}  // namespace memory_ext

// Host side of the MLP memory ops: validation, parameter filling and backend dispatch.
// A backend (CPU or CUDA) is a table of kernel entry points over the whole batch. Autograd:
// C++ (mlp_memory_autograd.cpp).
#pragma once

#include <ATen/ATen.h>
#include <torch/library.h>

#include <optional>
#include <tuple>
#include <vector>

#include "backend.h"
#include "memory_ext/mlp_memory_params.h"

namespace memory_ext {

struct MlpMemoryBackend : Backend {
  // true: the host allocates the kernels' scratch, one row per batch element (CUDA: a block's
  // spill space); false: the kernels bring their own (CPU: a per-thread buffer kept warm).
  bool host_workspace;
  PerDtype<MlpScanFwdParams, void*> scan_fwd;
  PerDtype<MlpScanBwdParams, void*> scan_bwd;
  PerDtype<MlpReadParams, void*> read_fwd, read_bwd;
};

using at::Tensor;
using at::TensorList;
using OptTensor = std::optional<Tensor>;

// reads [B, Hr, n_L]
Tensor mlp_memory_read_impl(const MlpMemoryBackend& be,
                            TensorList weights,  // [B, n_{l+1}, n_l] each
                            const Tensor& keys,  // [B, Hr, n_0]
                            c10::string_view activation);

// (grad_weights, grad_keys)
std::tuple<std::vector<Tensor>, Tensor> mlp_memory_read_bwd_impl(
    const MlpMemoryBackend& be, TensorList weights, const Tensor& keys,
    const Tensor& grad_reads,  // [B, Hr, n_L]
    c10::string_view activation);

// new weights
std::vector<Tensor> mlp_memory_write_impl(const MlpMemoryBackend& be, TensorList weights,
                                          const Tensor& write_keys,  // [B, H, n_0]
                                          TensorList targets,  // local: [B, H, n_l]; grad: [B, H, n_L]
                                          const Tensor& beta,  // [B] or [B, L]
                                          const OptTensor& alpha,  // [B]
                                          c10::string_view rule, c10::string_view activation);

// (new_weights, reads [B, Hr, n_L], recon [B] or [0])
std::tuple<std::vector<Tensor>, Tensor, Tensor> mlp_memory_step_impl(
    const MlpMemoryBackend& be, TensorList weights, const Tensor& write_keys, TensorList targets,
    const Tensor& beta, const Tensor& read_keys,  // [B, Hr, n_0]
    const OptTensor& alpha, const OptTensor& recon_values,  // [B, H, n_L]
    c10::string_view rule, c10::string_view activation);

// (reads [B, T, Hr, n_L], final_weights, recon [B, T] or [0], checkpoints [B, NC, n_{l+1}, n_l])
std::tuple<Tensor, std::vector<Tensor>, Tensor, std::vector<Tensor>> mlp_memory_scan_impl(
    const MlpMemoryBackend& be, TensorList weights,
    const Tensor& write_keys,  // [B, T, H, n_0]
    TensorList targets,        // local: [B, T, H, n_l]; grad: [B, T, H, n_L]
    const Tensor& beta,        // [B, T] or [B, T, L]
    const Tensor& read_keys,   // [B, T, Hr, n_0]
    const OptTensor& alpha, const OptTensor& recon_values, c10::string_view rule,
    c10::string_view activation, int64_t checkpoint_every);

// (grad_weights, grad_write_keys, grad_targets, grad_beta, grad_read_keys, grad_alpha or [0],
//  grad_recon_values or [0]); inputs are scan-shaped.
std::tuple<std::vector<Tensor>, Tensor, std::vector<Tensor>, Tensor, Tensor, Tensor, Tensor>
mlp_memory_scan_bwd_impl(const MlpMemoryBackend& be,
                         TensorList checkpoints,  // [B, NC, n_{l+1}, n_l]
                         const Tensor& write_keys, TensorList targets, const Tensor& beta,
                         const Tensor& read_keys, const OptTensor& alpha,
                         const OptTensor& recon_values, const OptTensor& grad_reads,
                         TensorList grad_final_weights,  // empty list or one per layer
                         const OptTensor& grad_recon, c10::string_view rule,
                         c10::string_view activation, int64_t checkpoint_every);

// In-place step for callers that own the weights (a controller's time loop): the weights
// (contiguous) are updated where they are. Returns (reads [B, Hr, n_L], recon [B] or [0],
// saved [B, mlp_step_saved]: what _mlp_memory_step_bwd_ needs).
std::tuple<Tensor, Tensor, Tensor> mlp_memory_step_inplace_impl(
    const MlpMemoryBackend& be, TensorList weights, const Tensor& write_keys, TensorList targets,
    const Tensor& beta, const Tensor& read_keys, const OptTensor& alpha,
    const OptTensor& recon_values, c10::string_view rule, c10::string_view activation);

// Its backward: weights hold W_t and become W_{t-1}; grad_weights hold dJ/dW_t and become
// dJ/dW_{t-1}. Returns step-shaped (grad_write_keys, grad_targets (every target's gradient,
// concatenated: [B, H, sum of their widths]), grad_beta, grad_read_keys, grad_alpha or [0],
// grad_recon_values or [0]).
std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor>
mlp_memory_step_bwd_inplace_impl(const MlpMemoryBackend& be, TensorList weights,
                                 TensorList grad_weights, const Tensor& saved,
                                 const Tensor& write_keys, TensorList targets, const Tensor& beta,
                                 const Tensor& read_keys, const OptTensor& alpha,
                                 const OptTensor& recon_values, const OptTensor& grad_reads,
                                 const OptTensor& grad_recon, c10::string_view rule,
                                 c10::string_view activation);

// The registration of the ops for one dispatch key (see backend.h for Be).
template <typename Be>
struct MlpMemoryOps {
  static Tensor read(TensorList w, const Tensor& k, c10::string_view a) {
    [[maybe_unused]] auto device_guard = Be::guard(k);
    return mlp_memory_read_impl(Be::get(), w, k, a);
  }
  static std::tuple<std::vector<Tensor>, Tensor> read_bwd(TensorList w, const Tensor& k,
                                                          const Tensor& g, c10::string_view a) {
    [[maybe_unused]] auto device_guard = Be::guard(k);
    return mlp_memory_read_bwd_impl(Be::get(), w, k, g, a);
  }
  static std::vector<Tensor> write(TensorList w, const Tensor& kw, TensorList z,
                                   const Tensor& beta, const OptTensor& alpha,
                                   c10::string_view rule, c10::string_view a) {
    [[maybe_unused]] auto device_guard = Be::guard(kw);
    return mlp_memory_write_impl(Be::get(), w, kw, z, beta, alpha, rule, a);
  }
  static std::tuple<std::vector<Tensor>, Tensor, Tensor> step(
      TensorList w, const Tensor& kw, TensorList z, const Tensor& beta, const Tensor& kr,
      const OptTensor& alpha, const OptTensor& rv, c10::string_view rule, c10::string_view a) {
    [[maybe_unused]] auto device_guard = Be::guard(kw);
    return mlp_memory_step_impl(Be::get(), w, kw, z, beta, kr, alpha, rv, rule, a);
  }
  static std::tuple<Tensor, std::vector<Tensor>, Tensor, std::vector<Tensor>> scan(
      TensorList w, const Tensor& kw, TensorList z, const Tensor& beta, const Tensor& kr,
      const OptTensor& alpha, const OptTensor& rv, c10::string_view rule, c10::string_view a,
      int64_t C) {
    [[maybe_unused]] auto device_guard = Be::guard(kw);
    return mlp_memory_scan_impl(Be::get(), w, kw, z, beta, kr, alpha, rv, rule, a, C);
  }
  static std::tuple<std::vector<Tensor>, Tensor, std::vector<Tensor>, Tensor, Tensor, Tensor,
                    Tensor>
  scan_bwd(TensorList ck, const Tensor& kw, TensorList z, const Tensor& beta, const Tensor& kr,
           const OptTensor& alpha, const OptTensor& rv, const OptTensor& g_reads,
           TensorList g_wT, const OptTensor& g_recon, c10::string_view rule,
           c10::string_view a, int64_t C) {
    [[maybe_unused]] auto device_guard = Be::guard(kw);
    return mlp_memory_scan_bwd_impl(Be::get(), ck, kw, z, beta, kr, alpha, rv, g_reads, g_wT,
                                    g_recon, rule, a, C);
  }

  static std::tuple<Tensor, Tensor, Tensor> step_inplace(
      TensorList w, const Tensor& kw, TensorList z, const Tensor& beta, const Tensor& kr,
      const OptTensor& alpha, const OptTensor& rv, c10::string_view rule, c10::string_view a) {
    [[maybe_unused]] auto device_guard = Be::guard(kw);
    return mlp_memory_step_inplace_impl(Be::get(), w, kw, z, beta, kr, alpha, rv, rule, a);
  }
  static std::tuple<Tensor, Tensor, Tensor, Tensor, Tensor, Tensor> step_bwd_inplace(
      TensorList w, TensorList gw, const Tensor& saved, const Tensor& kw, TensorList z,
      const Tensor& beta, const Tensor& kr, const OptTensor& alpha, const OptTensor& rv,
      const OptTensor& g_reads, const OptTensor& g_recon, c10::string_view rule,
      c10::string_view a) {
    [[maybe_unused]] auto device_guard = Be::guard(kw);
    return mlp_memory_step_bwd_inplace_impl(Be::get(), w, gw, saved, kw, z, beta, kr, alpha, rv,
                                            g_reads, g_recon, rule, a);
  }

  static void register_all(torch::Library& m) {
    m.impl("_mlp_memory_step_", TORCH_FN(step_inplace));
    m.impl("_mlp_memory_step_bwd_", TORCH_FN(step_bwd_inplace));
    m.impl("mlp_memory_read", TORCH_FN(read));
    m.impl("_mlp_memory_read_bwd", TORCH_FN(read_bwd));
    m.impl("mlp_memory_write", TORCH_FN(write));
    m.impl("mlp_memory_step", TORCH_FN(step));
    m.impl("mlp_memory_scan", TORCH_FN(scan));
    m.impl("_mlp_memory_scan_bwd", TORCH_FN(scan_bwd));
  }
};

}  // namespace memory_ext

// Registers the host wrappers of every op for one dispatch key with a given backend.
// Used by csrc/cpu/mlp_memory.cpp (CPU) and csrc/cuda/mlp_memory_cuda.cpp (CUDA).
#pragma once

#include <torch/library.h>

#include "mlp_memory.h"

namespace memory_ext {

// `Be` is a type with `static const MlpBackend& get()` and `static auto guard(const Tensor&)`
// (an RAII device guard; a no-op on the CPU).
template <typename Be>
struct MlpOpsFor {
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

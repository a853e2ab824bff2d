// CPU backend of the chunkwise delta rule: parallel over heads (at::parallel_for), each thread
// running the ISA-specific kernels of delta_chunk_kernels.cpp. Registers the CPU impls.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../ops/delta_chunk.h"
#include "cpu_isa.h"
#include "delta_chunk_kernels.h"

namespace memory_ext {
namespace cpu {

const DeltaChunkCpuKernels& delta_chunk_kernels() {
#if defined(MEMORY_EXT_HAVE_AVX2)
  if (use_avx2_kernels()) return delta_chunk_kernels_avx2();
#endif
  return delta_chunk_kernels_base();
}

namespace {

template <typename T, typename Fn>
void over_heads(const DeltaChunkParams<T>& p, Fn fn) {
  if (p.BH <= 1) {
    fn(p, 0, p.BH);
    return;
  }
  at::parallel_for(0, p.BH, 1, [&](int64_t h0, int64_t h1) {
    fn(p, static_cast<int>(h0), static_cast<int>(h1));
  });
}

void* no_stream() { return nullptr; }

const DeltaChunkBackend& backend() {
  static const DeltaChunkBackend be{
      "CPU", true,
      [](const DeltaChunkParams<float>& p, void*) { over_heads(p, delta_chunk_kernels().fwd_f32); },
      [](const DeltaChunkParams<double>& p, void*) { over_heads(p, delta_chunk_kernels().fwd_f64); },
      [](const DeltaChunkParams<float>& p, void*) { over_heads(p, delta_chunk_kernels().bwd_f32); },
      [](const DeltaChunkParams<double>& p, void*) { over_heads(p, delta_chunk_kernels().bwd_f64); },
      &no_stream};
  return be;
}

std::tuple<at::Tensor, at::Tensor, at::Tensor> fwd_cpu(const at::Tensor& q, const at::Tensor& k,
                                                       const at::Tensor& v, const at::Tensor& b,
                                                       const c10::optional<at::Tensor>& s0,
                                                       double scale, int64_t chunk, bool save) {
  return delta_rule_chunk_impl(backend(), q, k, v, b, s0, scale, chunk, save);
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor, at::Tensor> bwd_cpu(
    const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& b,
    const at::Tensor& states, const at::Tensor& go, const c10::optional<at::Tensor>& gS,
    double scale, int64_t chunk) {
  return delta_rule_chunk_bwd_impl(backend(), q, k, v, b, states, go, gS, scale, chunk);
}

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CPU, m) {
  m.impl("delta_rule_chunk", TORCH_FN(memory_ext::cpu::fwd_cpu));
  m.impl("_delta_rule_chunk_bwd", TORCH_FN(memory_ext::cpu::bwd_cpu));
}

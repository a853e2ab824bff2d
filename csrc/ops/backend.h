// The one shape of every op family's backend struct (<Family>Backend in csrc/ops/<family>.h):
// what the host glue of csrc/ops needs from a device, filled in by csrc/cpu/<family>.cpp and
// csrc/cuda/<family>_cuda.cpp.
//
//   struct <Family>Backend : Backend {            // leading fields: name, supports_f64, stream
//     void (*<kernel>_f32)(const <Params><float>&, void* stream);   // per-dtype pairs, or
//     void (*<kernel>_f64)(const <Params><double>&, void* stream);
//     void (*<kernel>)(const <Params>&, void* stream);              // one entry where the
//   };                                                              // kernel is dtype-free
//
// Every entry takes torch-free parameters and the stream (the host glue passes
// be.current_stream()); the CUDA backends' *_f64 entries raise (supports_f64 is false and the
// checks refuse float64 first). Every backend file has the same end:
//
//   constexpr <Family>Backend kBackend{kCpu, ...};           // kCuda in csrc/cuda
//   MEMORY_EXT_REGISTER_CPU_BACKEND(<Family>Ops)   // after the namespaces; CUDA in csrc/cuda
//   (the macro registers <Family>Ops<OnCpu<kBackend>> under the CPU dispatch key)
//
// <Family>Ops<Be> (csrc/ops/<family>.h) registers the family's ops with Be::get() as the backend
// under Be::guard(tensor), an RAII device guard (none on the CPU): OnCpu and kCpu are in
// csrc/cpu/cpu_backend.h, OnCuda and kCuda in csrc/cuda/cuda_backend.h.
#pragma once

#include <type_traits>

namespace memory_ext {

struct Backend {
  const char* name;  // "CPU" or "CUDA", as error messages name it
  bool supports_f64;  // the *_f64 entries run (dtype-free families do not consult it)
  void* (*current_stream)();  // the stream the kernels are handed (nullptr on the CPU)
};

// Calls the float32 or the float64 entry of a kernel pair, whichever takes p, on the backend's
// current stream (for AT_DISPATCH_FLOATING_TYPES lambdas).
template <typename P32, typename P64, typename P>
void run_kernel(const Backend& be, void (*f32)(const P32&, void*), void (*f64)(const P64&, void*),
                const P& p) {
  static_assert(std::is_same_v<P, P32> || std::is_same_v<P, P64>);
  if constexpr (std::is_same_v<P, P32>) {
    f32(p, be.current_stream());
  } else {
    f64(p, be.current_stream());
  }
}

}  // namespace memory_ext

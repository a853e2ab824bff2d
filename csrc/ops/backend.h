// The one shape of every op family's backend struct (<Family>Backend in csrc/ops/<family>.h):
// what the host glue of csrc/ops needs from a device, filled in by csrc/cpu/<family>.cpp and
// csrc/cuda/<family>_cuda.cpp.
//
//   struct <Family>Backend : Backend {            // leading fields: name, supports_f64, stream
//     PerDtype<<Params>, void*> <kernel>;         // a kernel's float32/float64 pair, or
//     void (*<kernel>)(const <Params>&, void* stream);  // one entry where it is dtype-free
//   };
//
// Every entry takes torch-free parameters and the stream (the host glue passes
// be.current_stream(), see run_kernel); the CUDA backends' f64 entries raise (supports_f64 is
// false and the checks refuse float64 first). Every backend file has the same end:
//
//   constexpr <Family>Backend kBackend{kCpu, {f32, f64}, ...};   // kCuda in csrc/cuda
//   MEMORY_EXT_REGISTER_CPU_BACKEND(<Family>Ops)   // after the namespaces; CUDA in csrc/cuda
//   (the macro registers <Family>Ops<OnCpu<kBackend>> under the CPU dispatch key)
//
// <Family>Ops<Be> (csrc/ops/<family>.h) registers the family's ops with Be::get() as the backend
// under Be::guard(tensor), an RAII device guard (none on the CPU): OnCpu and kCpu are in
// csrc/cpu/cpu_backend.h, OnCuda and kCuda in csrc/cuda/cuda_backend.h.
#pragma once

namespace memory_ext {

struct Backend {
  const char* name;  // "CPU" or "CUDA", as error messages name it
  bool supports_f64;  // the f64 entries run (dtype-free families do not consult it)
  void* (*current_stream)();  // the stream the kernels are handed (nullptr on the CPU)
};

// A kernel's float32 and float64 entries, P<float> and P<double> followed by Extra (the stream
// in a backend struct; a range in the CPU kernel tables, csrc/cpu/*_kernels.h). Called like a
// function, it runs the entry that takes the params given.
template <template <typename> class P, typename... Extra>
struct PerDtype {
  void (*f32)(const P<float>&, Extra...);
  void (*f64)(const P<double>&, Extra...);

  void operator()(const P<float>& p, Extra... e) const { f32(p, e...); }
  void operator()(const P<double>& p, Extra... e) const { f64(p, e...); }
};

// Runs the entry of a kernel pair that takes p (float32 or float64) on the backend's current
// stream (for AT_DISPATCH_FLOATING_TYPES lambdas).
template <typename Pair, typename P>
void run_kernel(const Backend& be, const Pair& kernel, const P& p) {
  kernel(p, be.current_stream());
}

}  // namespace memory_ext

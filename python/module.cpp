// The pybind11 module memory_ext._C: build information. Importing it also runs the static
// TORCH_LIBRARY registrations of every op (csrc/ops, csrc/cpu, csrc/cuda).
#include <ATen/Parallel.h>
#include <pybind11/pybind11.h>

#include "../csrc/cpu/mlp_memory_kernels.h"

#ifndef MEMORY_EXT_VERSION
#define MEMORY_EXT_VERSION "0.0.0"
#endif
#ifndef MEMORY_EXT_TORCH_VERSION
#define MEMORY_EXT_TORCH_VERSION "unknown"
#endif
#ifndef MEMORY_EXT_CUDA_ARCHS
#define MEMORY_EXT_CUDA_ARCHS ""
#endif

namespace py = pybind11;

void bind_token_table(py::module& m);  // token_table_bind.cpp

PYBIND11_MODULE(_C, m) {
  m.doc() = "memory_ext compiled core (ops register with torch.ops.memory_ext)";
  m.def("build_info", []() {
    py::dict d;
    d["version"] = MEMORY_EXT_VERSION;
    d["torch_version"] = MEMORY_EXT_TORCH_VERSION;
#ifdef MEMORY_EXT_WITH_CUDA
    d["cuda"] = true;
    d["cuda_archs"] = MEMORY_EXT_CUDA_ARCHS;
#else
    d["cuda"] = false;
    d["cuda_archs"] = "";
#endif
    d["cpu_threads"] = at::get_num_threads();
    d["cpu_isa"] = memory_ext::cpu::best_kernels<memory_ext::cpu::MlpCpuKernels>().isa;
    return d;
  }, "Version, torch version built against, CUDA kernels in or not, CUDA archs, CPU threads.");
  bind_token_table(m);
}

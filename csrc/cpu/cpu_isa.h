// Which CPU kernel variant this process runs: the AVX2+FMA build when the CPU has both, else
// the baseline x86-64 build. MEMORY_EXT_CPU_ISA=base forces the baseline (tests run both).
#pragma once

#include <cstdlib>
#include <string>

// The kernel files built once per ISA variant (<family>_kernels.cpp) define their table's static
// member function of the variant's name: MEMORY_EXT_CPU_CAP is the variant (set by CMake).
#ifndef MEMORY_EXT_CPU_CAP
#define MEMORY_EXT_CPU_CAP base
#endif
#define ME_STR2(x) #x
#define ME_STR(x) ME_STR2(x)

namespace memory_ext {
namespace cpu {

inline bool use_avx2_kernels() {
  static const bool avx2 = [] {
    const char* want = std::getenv("MEMORY_EXT_CPU_ISA");
    if (want != nullptr && std::string(want) == "base") return false;
#if defined(MEMORY_EXT_HAVE_AVX2) && (defined(__x86_64__) || defined(__i386__))
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#else
    return false;
#endif
  }();
  return avx2;
}

// The variant of a family's kernel table (csrc/cpu/<family>_kernels.h: Kernels::base(), and
// Kernels::avx2() where this build has it) that this process runs.
template <typename Kernels>
const Kernels& best_kernels() {
#if defined(MEMORY_EXT_HAVE_AVX2)
  if (use_avx2_kernels()) return Kernels::avx2();
#endif
  return Kernels::base();
}

}  // namespace cpu
}  // namespace memory_ext

// CPU kernel of gather_rows: parallel over output rows, each row copied for every tensor.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <cstring>

#include "../ops/gather_rows.h"
#include "cpu_backend.h"

namespace memory_ext {
namespace cpu {
namespace {

void gather(const GatherRowsParams& p, void*) {
  at::parallel_for(0, p.out_rows, 256, [&](int64_t b, int64_t e) {
    for (int t = 0; t < p.n_tensors; ++t) {
      const int64_t rb = p.row_bytes[t];
      if (rb == 0) continue;  // (a zero-width tensor's data pointer may be null)
      for (int64_t r = b; r < e; ++r) {
        unsigned char* d = p.dst[t] + r * rb;
        if (r < p.n_index) {
          std::memcpy(d, p.src[t] + p.index[r] * rb, rb);
        } else {
          std::memset(d, 0, rb);
        }
      }
    }
  });
}

constexpr GatherRowsBackend kBackend{kCpu, &gather};

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(GatherRowsOps)

// CUDA backend of gather_rows: calls the torch-free kernel of gather_rows.cu, registers the CUDA
// impl (built only when torch has CUDA).
#include <torch/library.h>

#include "../ops/gather_rows.h"
#include "cuda_backend.h"
#include "gather_rows_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

void gather(const GatherRowsParams& p, void* s) { check_launch(gather_rows(p, s), "gather_rows"); }

constexpr GatherRowsBackend kBackend{kCuda, &gather};

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CUDA_BACKEND(GatherRowsOps)

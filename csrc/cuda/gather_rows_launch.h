// Torch-free entry point of the gather_rows CUDA kernel (gather_rows.cu). Returns nullptr on
// success, else the CUDA error string.
#pragma once

#include "memory_ext/gather_rows_core.h"

namespace memory_ext {
namespace cuda {

const char* gather_rows(const GatherRowsParams& p, void* stream);

}  // namespace cuda
}  // namespace memory_ext

// Torch-free entry points of the CUDA kernels of the MLP memory ops (float32).
// Each returns nullptr on success, else the CUDA error string.
#pragma once

#include "memory_ext/mlp_memory_params.h"

namespace memory_ext {
namespace cuda {

const char* mlp_scan_fwd(const MlpScanFwdParams<float>& p, void* stream);
const char* mlp_scan_bwd(const MlpScanBwdParams<float>& p, void* stream);
const char* mlp_read_fwd(const MlpReadParams<float>& p, void* stream);
const char* mlp_read_bwd(const MlpReadParams<float>& p, void* stream);

}  // namespace cuda
}  // namespace memory_ext

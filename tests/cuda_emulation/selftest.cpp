// Small kernels with one planted bug each, run under the CUDA emulator by
// tests/test_cuda_emulation.py to show that it reports what it is for (and "ok", the same
// kernel without a bug, runs clean). Usage: selftest CASE
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cuda_runtime.h"
#include "launch.cuh"

using memory_ext::cuda::dynamic_smem;
using memory_ext::cuda::launch_kernel;

namespace {

// Block sum of 64 values: shared memory, a barrier, then a warp shuffle reduction.
__global__ void block_sum(const float* in, float* out, int bug) {
  float* sh = reinterpret_cast<float*>(dynamic_smem());
  const int t = threadIdx.x;
  sh[t] = in[t];
  if (bug != 1) __syncthreads();  // bug 1: the barrier is missing
  float v = sh[t] + sh[(t + 32) % 64];
  if (bug == 4 && t % 32 == 31) return;  // bug 4: lane 31 never reaches the shuffle
  if (bug == 8 && t == 31) {  // bug 8: lane 31 waits at a barrier, its warp in a shuffle
    __syncthreads();
    return;
  }
  unsigned mask = 0xffffffffu;
  if (bug == 3) mask = 0xfffffffeu;                      // leaves out lane 0, which calls
  if (bug == 5 && t % 32 < 16) mask = 0x0000ffffu;       // two masks in one warp
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(mask, v, o);
  if (bug == 6 && t == 0) reinterpret_cast<unsigned char*>(sh)[64 * sizeof(float)] = 1;
  if (t % 32 == 0) out[t / 32] = v;
}

}  // namespace

int main(int argc, char** argv) {
  const char* cases[] = {"ok", "missing_barrier", "", "shfl_mask_leaves_out_caller",
                         "shfl_lane_never_arrives", "shfl_masks_differ", "smem_write_past_end",
                         "smem_too_large_without_optin", "barrier_not_reached", "empty_grid"};
  if (argc != 2) return 2;
  int bug = -1;
  for (int i = 0; i < 10; ++i) {
    if (cases[i][0] && std::strcmp(argv[1], cases[i]) == 0) bug = i;
  }
  if (bug < 0) {
    std::fprintf(stderr, "selftest: unknown case %s\n", argv[1]);
    return 2;
  }
  std::vector<float> in(64), out(2, 0.f);
  for (int i = 0; i < 64; ++i) in[i] = static_cast<float>(i);
  std::size_t smem = 64 * sizeof(float);
  if (bug == 7) smem = 50 * 1024;  // above the 48 KB default, no cudaFuncSetAttribute
  const dim3 grid(bug == 9 ? 0 : 1);
  const cudaError_t e = launch_kernel(block_sum, grid, dim3(64), smem, nullptr, in.data(),
                                      out.data(), bug == 8 ? 8 : bug);
  if (e != cudaSuccess) {
    std::printf("launch failed: %s\n", cudaGetErrorString(e));
    return 1;
  }
  // each warp's lane 0 holds the sum of its lanes' pairs: sum over t in the warp of in[t] + in[t+32]
  const float want0 = [] { float s = 0; for (int t = 0; t < 32; ++t) s += t + t + 32; return s; }();
  const float want1 = [] { float s = 0; for (int t = 32; t < 64; ++t) s += t + (t - 32); return s; }();
  if (out[0] != want0 || out[1] != want1) {
    std::printf("wrong result: %g %g, want %g %g\n", out[0], out[1], want0, want1);
    return 1;
  }
  std::printf("OK\n");
  return 0;
}

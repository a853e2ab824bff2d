// CUDA kernels of the integer-key hash table: a thread per key, slots claimed with atomicCAS.
// lookup_or_insert is two launches on one stream: (1) claim a slot and an id for every missing
// key (equal keys race for one slot: exactly one CAS wins), (2) read every key's id and count
// its use, after all ids of (1) are written. No host sync. Keys equal to the reserved values get
// id -1. Torch-free.
#include <cuda/atomic>
#include <cuda_runtime.h>

#include "launch.cuh"
#include "memory_ext/hash_table_core.h"
#include "hash_table_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

using namespace memory_ext::hash;
using ull = unsigned long long;
constexpr int kThreadsPerBlock = 256;

__device__ __forceinline__ int64_t cas(int64_t* p, int64_t expect, int64_t want) {
  return static_cast<int64_t>(atomicCAS(reinterpret_cast<ull*>(p), static_cast<ull>(expect),
                                        static_cast<ull>(want)));
}

__device__ __forceinline__ int64_t add(int64_t* p, int64_t v) {
  return static_cast<int64_t>(atomicAdd(reinterpret_cast<ull*>(p), static_cast<ull>(v)));
}

// A key slot read while other threads of the launch may claim (CAS) or erase it: an atomic
// load (a plain or volatile read racing with the CAS is a data race in the CUDA memory model).
struct KeyLoad {
  __device__ __forceinline__ int64_t operator()(const int64_t* p) const {
    return ::cuda::atomic_ref<int64_t, ::cuda::thread_scope_device>(*const_cast<int64_t*>(p))
        .load(::cuda::memory_order_relaxed);
  }
};

// Claims a slot for key (id and count written by the winner) unless one holds it already.
__global__ void insert_kernel(int64_t* slots, int64_t cap, int64_t* meta, const int64_t* keys,
                              int64_t n, bool with_id) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n) return;
  const int64_t key = keys[with_id ? j * kSlotWidth : j];
  if (reserved(key)) return;
  const uint64_t mask = static_cast<uint64_t>(cap) - 1;
  uint64_t i = mix(key) & mask;
  for (int64_t probe = 0; probe < cap; ++probe) {
    int64_t* slot = slots + i * kSlotWidth;
    const int64_t k = KeyLoad{}(slot);
    if (k == key) return;
    if (k == kEmpty) {
      const int64_t prev = cas(slot, kEmpty, key);
      if (prev == kEmpty) {
        if (with_id) {  // rebuild: (key, id, count) given
          slot[kId] = keys[j * kSlotWidth + kId];
          slot[kCount] = keys[j * kSlotWidth + kCount];
        } else {
          slot[kId] = add(meta + kMetaNextId, 1);
          slot[kCount] = 0;
          add(meta + kMetaUsed, 1);
          add(meta + kMetaLive, 1);
        }
        return;
      }
      if (prev == key) return;
    }
    i = (i + 1) & mask;
  }
}

__global__ void find_kernel(int64_t* slots, int64_t cap, const int64_t* keys, int64_t n,
                            int64_t* ids, int64_t* counts, bool count_use) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n) return;
  const int64_t key = keys[j];
  const int64_t i = reserved(key) ? -1 : find_slot(slots, cap, key, KeyLoad{});
  if (i < 0) {
    ids[j] = -1;
    if (counts != nullptr) counts[j] = 0;
    return;
  }
  ids[j] = slots[i * kSlotWidth + kId];
  if (count_use) {
    add(slots + i * kSlotWidth + kCount, 1);
  } else if (counts != nullptr) {
    counts[j] = slots[i * kSlotWidth + kCount];
  }
}

__global__ void erase_kernel(int64_t* slots, int64_t cap, int64_t* meta, const int64_t* keys,
                             int64_t n, bool* erased) {
  const int64_t j = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (j >= n) return;
  const int64_t key = keys[j];
  const int64_t i = reserved(key) ? -1 : find_slot(slots, cap, key, KeyLoad{});
  bool done = false;
  if (i >= 0) done = cas(slots + i * kSlotWidth, key, kTombstone) == key;
  if (done) add(meta + kMetaLive, -1);
  erased[j] = done;
}

// One thread per key: launches kernel(args...) over n keys (nothing for n == 0, which CUDA
// would reject as an empty grid).
template <typename Kernel, typename... Args>
cudaError_t per_key(Kernel kernel, int64_t n, void* stream, Args... args) {
  if (n == 0) return cudaSuccess;
  const auto blocks = static_cast<unsigned>((n + kThreadsPerBlock - 1) / kThreadsPerBlock);
  return launch_kernel(kernel, dim3(blocks), dim3(kThreadsPerBlock), 0,
                       static_cast<cudaStream_t>(stream), args...);
}

}  // namespace

const char* hash_lookup_or_insert(int64_t* slots, int64_t cap, int64_t* meta, const int64_t* keys,
                                  int64_t n, int64_t* ids, void* stream) {
  const cudaError_t e = per_key(insert_kernel, n, stream, slots, cap, meta, keys, n, false);
  if (e != cudaSuccess) return error_string(e);
  return error_string(per_key(find_kernel, n, stream, slots, cap, keys, n, ids,
                              static_cast<int64_t*>(nullptr), true));
}

const char* hash_find(const int64_t* slots, int64_t cap, const int64_t* keys, int64_t n,
                      int64_t* ids, int64_t* counts, void* stream) {
  return error_string(per_key(find_kernel, n, stream, const_cast<int64_t*>(slots), cap, keys, n,
                              ids, counts, false));
}

const char* hash_erase(int64_t* slots, int64_t cap, int64_t* meta, const int64_t* keys, int64_t n,
                       bool* erased, void* stream) {
  return error_string(per_key(erase_kernel, n, stream, slots, cap, meta, keys, n, erased));
}

const char* hash_rebuild(int64_t* slots, int64_t cap, const int64_t* entries, int64_t m,
                         void* stream) {
  return error_string(per_key(insert_kernel, m, stream, slots, cap, static_cast<int64_t*>(nullptr),
                              entries, m, true));
}

}  // namespace cuda
}  // namespace memory_ext

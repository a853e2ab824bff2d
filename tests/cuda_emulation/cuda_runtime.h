// The CUDA execution model on the CPU: what csrc/cuda/*.cu use of CUDA, for the host compiler.
//
// tests/test_cuda_emulation.py compiles the project's .cu files as C++ with this folder first on
// the include path (so <cuda_runtime.h> and <cuda/atomic> are these files) and with
// MEMORY_EXT_CUDA_EMULATION, __CUDACC__ and __CUDA_ARCH__ defined (the device-side code paths of
// the shared headers are the ones compiled). What it provides, with CUDA's semantics:
//   - threadIdx, blockIdx, blockDim, gridDim; a launch (cuda_emu::launch, reached through
//     csrc/cuda/launch.cuh) runs the blocks one after another and the threads of a block
//     concurrently, one std::thread each, so a missing barrier is a data race ThreadSanitizer
//     sees; the launch checks the configuration as a GPU does (empty grid, block above the
//     device's thread limit, dynamic shared memory above 48 KB without the opt-in attribute or
//     above the device's opt-in limit: the launch fails and cudaGetLastError() says why);
//   - __syncthreads() (threads that returned no longer count, as on the GPU);
//   - warp shuffles (__shfl_sync, _up, _down, _xor) and votes (__ballot_sync, __any_sync,
//     __all_sync): every lane of the mask must call the same op with the same mask; a lane that
//     calls with a mask that leaves itself out, masks that differ, a read of a lane outside the
//     mask, or a lane of the mask that never arrives is reported and the program exits 70;
//   - the block's dynamic shared memory (cuda_emu::dynamic_smem()), a fresh allocation of exactly
//     the launched size, filled with 0xff bytes (NaN as floats): under AddressSanitizer an access
//     past the launched size is a heap-buffer-overflow; without it, guard bytes behind the buffer
//     are checked after the block (a write past the end is reported);
//   - atomicCAS / atomicAdd (32 and 64 bit, float), relaxed, as std::atomic_ref, each after a
//     yield of the core (so the lost-race paths of lock-free code run);
//   - cudaGetDevice, cudaDeviceGetAttribute, cudaFuncSetAttribute, cudaGetLastError,
//     cudaPeekAtLastError, cudaGetErrorString, for an emulated device picked with
//     cuda_emu::use_device(): "h100" (1024 threads a block, 48 KB default and 227 KB opt-in
//     dynamic shared memory) or "small" (1024 threads, 48 KB default, 64 KB opt-in).
// Deadlocks (a barrier or a shuffle some threads never reach) are reported after a timeout
// (CUDA_EMU_TIMEOUT_S, default 120 s).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __grid_constant__
// static __shared__ arrays are not emulated (the kernels use dynamic shared memory only): a
// kernel that declares one fails to compile here rather than sharing nothing.
#define __shared__ static_assert(false, "static __shared__ is not emulated: use dynamic_smem()");

struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x, y, z;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) int4 {
  int x, y, z, w;
};
inline int4 make_int4(int x, int y, int z, int w) { return int4{x, y, z, w}; }

typedef struct CUstream_st* cudaStream_t;
enum cudaError_t {
  cudaSuccess = 0,
  cudaErrorInvalidValue = 1,
  cudaErrorInvalidConfiguration = 9,
  cudaErrorInvalidDevice = 101,
};
enum cudaDeviceAttr {
  cudaDevAttrMaxThreadsPerBlock = 1,
  cudaDevAttrMaxSharedMemoryPerBlock = 8,
  cudaDevAttrMaxSharedMemoryPerBlockOptin = 97,
};
enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };

inline thread_local uint3 threadIdx;
inline thread_local uint3 blockIdx;
inline thread_local dim3 blockDim;
inline thread_local dim3 gridDim;

namespace cuda_emu {

[[noreturn]] inline void fail(const std::string& what) {
  std::fprintf(stderr, "CUDA emulation error: %s\n", what.c_str());
  std::fflush(stderr);
  std::_Exit(70);
}

inline std::string hex(unsigned v) {
  char b[16];
  std::snprintf(b, sizeof b, "0x%08x", v);
  return b;
}

// --- the emulated devices -----------------------------------------------------------------
struct Device {
  const char* name;
  int max_threads;        // per block
  int smem_default;       // dynamic shared memory without the opt-in attribute
  int smem_optin;         // cudaDevAttrMaxSharedMemoryPerBlockOptin
};
inline const Device kH100{"h100", 1024, 48 * 1024, 227 * 1024};
inline const Device kSmall{"small", 1024, 48 * 1024, 64 * 1024};

struct Runtime {
  std::mutex m;
  const Device* dev = &kH100;
  cudaError_t last = cudaSuccess;
  std::map<const void*, int> smem_optin;  // per kernel: cudaFuncAttributeMaxDynamicSharedMemorySize
  // what the last launch asked for (the tests check that a path was taken)
  std::size_t last_smem = 0;
  dim3 last_grid, last_block;
  long launches = 0;
  // seconds a barrier or shuffle waits for the missing threads (CUDA_EMU_TIMEOUT_S)
  double timeout_s = std::getenv("CUDA_EMU_TIMEOUT_S") ? std::atof(std::getenv("CUDA_EMU_TIMEOUT_S")) : 120;
};
inline Runtime& rt() {
  static Runtime r;
  return r;
}

inline bool use_device(const char* name) {
  std::lock_guard<std::mutex> g(rt().m);
  if (std::strcmp(name, kH100.name) == 0) rt().dev = &kH100;
  else if (std::strcmp(name, kSmall.name) == 0) rt().dev = &kSmall;
  else return false;
  rt().smem_optin.clear();  // attributes belong to a device
  return true;
}

inline void set_error(cudaError_t e) {
  std::lock_guard<std::mutex> g(rt().m);
  if (rt().last == cudaSuccess) rt().last = e;  // sticky until read, like the runtime's
}

// --- a block: barrier, warps, shared memory -------------------------------------------------
class Barrier {  // __syncthreads: all live threads meet; a returned thread no longer counts
 public:
  explicit Barrier(int n) : expected_(n) {}
  void arrive_and_wait(const char* where) {
    std::unique_lock<std::mutex> l(m_);
    const long gen = gen_;
    if (++arrived_ == expected_) {
      release();
      return;
    }
    if (!cv_.wait_for(l, std::chrono::duration<double>(rt().timeout_s),
                      [&] { return gen_ != gen; })) {
      fail(std::string(where) + ": " + std::to_string(expected_ - arrived_) + " of " +
           std::to_string(expected_) + " threads never arrive at __syncthreads()");
    }
  }
  void drop() {
    std::lock_guard<std::mutex> l(m_);
    --expected_;
    if (arrived_ > 0 && arrived_ == expected_) release();
  }

 private:
  void release() {
    arrived_ = 0;
    ++gen_;
    cv_.notify_all();
  }
  std::mutex m_;
  std::condition_variable cv_;
  int expected_, arrived_ = 0;
  long gen_ = 0;
};

class Warp {  // one exchange at a time among the lanes of a mask
 public:
  // Every lane of `mask` contributes `v`; returns all lanes' values (valid where mask is set).
  std::array<uint64_t, 32> exchange(const char* op, unsigned mask, int lane, uint64_t v,
                                    const std::string& where) {
    if (!(mask >> lane & 1u)) {
      fail(where + ": lane " + std::to_string(lane) + " calls " + op + " with mask " + hex(mask) +
           ", which leaves out the calling lane");
    }
    std::unique_lock<std::mutex> l(m_);
    const auto limit = std::chrono::duration<double>(rt().timeout_s);
    if (!cv_.wait_for(l, limit, [&] { return !draining_; })) {
      fail(where + ": " + op + ": the previous warp operation never completed");
    }
    if (arrived_ == 0) {
      mask_ = mask;
      op_ = op;
    } else if (mask != mask_ || std::strcmp(op, op_) != 0) {
      fail(where + ": lanes of one warp call " + op_ + " with mask " + hex(mask_) + " and " +
           op + " with mask " + hex(mask) + " (lane " + std::to_string(lane) + ")");
    }
    vals_[lane] = v;
    arrived_ |= 1u << lane;
    if (arrived_ == mask_) {
      draining_ = true;
      readers_ = 0;
      cv_.notify_all();
    } else if (!cv_.wait_for(l, limit, [&] { return draining_; })) {
      fail(where + ": lanes " + hex(mask_ & ~arrived_) + " of the mask " + hex(mask_) +
           " never arrive at " + op_);
    }
    std::array<uint64_t, 32> out = vals_;
    if (++readers_ == __builtin_popcount(mask_)) {
      draining_ = false;
      arrived_ = 0;
      cv_.notify_all();
    }
    return out;
  }

 private:
  std::mutex m_;
  std::condition_variable cv_;
  std::array<uint64_t, 32> vals_{};
  unsigned mask_ = 0, arrived_ = 0;
  const char* op_ = "";
  int readers_ = 0;
  bool draining_ = false;
};

#if defined(__SANITIZE_ADDRESS__)
inline constexpr std::size_t kGuard = 0;  // ASan sees the exact size
#else
inline constexpr std::size_t kGuard = 64;  // guard bytes, checked after the block
#endif
inline constexpr unsigned char kFill = 0xff, kGuardByte = 0xa5;

struct Block {
  Block(int threads, std::size_t smem, dim3 b)
      : bar(threads), warps((threads + 31) / 32), smem_bytes(smem), idx(b) {
    smem_buf = static_cast<unsigned char*>(::operator new(smem + kGuard, std::align_val_t(16)));
    std::memset(smem_buf, kFill, smem);
    std::memset(smem_buf + smem, kGuardByte, kGuard);
  }
  ~Block() { ::operator delete(smem_buf, std::align_val_t(16)); }
  void check_guard() const {
    for (std::size_t i = 0; i < kGuard; ++i) {
      if (smem_buf[smem_bytes + i] != kGuardByte) {
        fail(where() + ": dynamic shared memory written " + std::to_string(i) +
             " bytes past its launched size of " + std::to_string(smem_bytes) + " bytes");
      }
    }
  }
  std::string where() const {
    return "block (" + std::to_string(idx.x) + "," + std::to_string(idx.y) + "," +
           std::to_string(idx.z) + ")";
  }
  Barrier bar;
  std::vector<Warp> warps;
  std::size_t smem_bytes;
  unsigned char* smem_buf;
  dim3 idx;
};

inline thread_local Block* tl_block = nullptr;

inline unsigned char* dynamic_smem() { return tl_block->smem_buf; }

inline int linear_tid() {
  return static_cast<int>(threadIdx.x + blockDim.x * (threadIdx.y + blockDim.y * threadIdx.z));
}

template <typename T>
inline uint64_t to_bits(T v) {
  static_assert(sizeof(T) <= 8 && std::is_trivially_copyable_v<T>);
  uint64_t b = 0;
  std::memcpy(&b, &v, sizeof(T));
  return b;
}
template <typename T>
inline T from_bits(uint64_t b) {
  T v;
  std::memcpy(&v, &b, sizeof(T));
  return v;
}

inline std::array<uint64_t, 32> warp_exchange(const char* op, unsigned mask, uint64_t v) {
  const int t = linear_tid();
  Block* b = tl_block;
  return b->warps[t / 32].exchange(op, mask, t % 32, v,
                                   b->where() + " thread " + std::to_string(t));
}

// A shuffle reading lane `src` (outside [0, 32) or the segment: the caller's own value).
template <typename T>
inline T shuffle(const char* op, unsigned mask, T v, int src, bool own) {
  const auto vals = warp_exchange(op, mask, to_bits(v));
  if (own) return v;
  if (!(mask >> src & 1u)) {
    fail(tl_block->where() + " thread " + std::to_string(linear_tid()) + ": " + op +
         " reads lane " + std::to_string(src) + ", outside the mask " + hex(mask));
  }
  return from_bits<T>(vals[src]);
}

// --- the launch ------------------------------------------------------------------------------
inline bool check_config(const void* kernel, dim3 grid, dim3 block, std::size_t smem) {
  std::lock_guard<std::mutex> g(rt().m);
  const Device& d = *rt().dev;
  rt().last_smem = smem;
  rt().last_grid = grid;
  rt().last_block = block;
  ++rt().launches;
  const unsigned long long threads = 1ull * block.x * block.y * block.z;
  cudaError_t e = cudaSuccess;
  if (grid.x == 0 || grid.y == 0 || grid.z == 0 || grid.x > 2147483647u || grid.y > 65535u ||
      grid.z > 65535u || threads == 0 || threads > static_cast<unsigned>(d.max_threads) ||
      block.z > 64) {
    e = cudaErrorInvalidConfiguration;
  } else {
    auto it = rt().smem_optin.find(kernel);
    const std::size_t allowed = it != rt().smem_optin.end() ? static_cast<std::size_t>(it->second)
                                                            : static_cast<std::size_t>(d.smem_default);
    if (smem > allowed) e = cudaErrorInvalidValue;
  }
  if (e != cudaSuccess && rt().last == cudaSuccess) rt().last = e;
  return e == cudaSuccess;
}

// Worker threads kept from launch to launch (creating 256 threads per block is most of the
// time under ThreadSanitizer). run(n, f) calls f(0) .. f(n - 1) on n distinct threads at once
// and returns when all have returned; the mutex hand-offs order the launch before and after.
class Pool {
 public:
  template <typename F>
  void run(int n, F& f) {
    std::unique_lock<std::mutex> l(m_);
    while (static_cast<int>(workers_.size()) < n) {
      const int id = static_cast<int>(workers_.size());
      workers_.emplace_back([this, id] { work(id); });
    }
    job_ = [&f](int t) { f(t); };
    active_ = n;
    done_ = 0;
    ++gen_;
    cv_.notify_all();
    done_cv_.wait(l, [&] { return done_ == active_; });
    job_ = nullptr;
  }
  ~Pool() {
    {
      std::lock_guard<std::mutex> l(m_);
      stop_ = true;
      cv_.notify_all();
    }
    for (auto& w : workers_) w.join();
  }

 private:
  void work(int id) {
    long seen = 0;
    std::unique_lock<std::mutex> l(m_);
    while (true) {
      cv_.wait(l, [&] { return stop_ || (gen_ != seen && id < active_); });
      if (stop_) return;
      seen = gen_;
      auto job = job_;
      l.unlock();
      job(id);
      l.lock();
      if (++done_ == active_) done_cv_.notify_one();
    }
  }
  std::mutex m_;
  std::condition_variable cv_, done_cv_;
  std::vector<std::thread> workers_;
  std::function<void(int)> job_;
  int active_ = 0, done_ = 0;
  long gen_ = 0;
  bool stop_ = false;
};

inline Pool& pool() {
  static Pool p;
  return p;
}

template <typename... P, typename... A>
void launch(void (*kernel)(P...), dim3 grid, dim3 block, std::size_t smem, cudaStream_t,
            A&&... args) {
  if (!check_config(reinterpret_cast<const void*>(kernel), grid, block, smem)) return;
  const std::tuple<std::decay_t<P>...> params(std::forward<A>(args)...);  // by value, as CUDA
  const int threads = static_cast<int>(block.x * block.y * block.z);
  for (unsigned bz = 0; bz < grid.z; ++bz) {
    for (unsigned by = 0; by < grid.y; ++by) {
      for (unsigned bx = 0; bx < grid.x; ++bx) {
        Block blk(threads, smem, dim3(bx, by, bz));
        auto thread_main = [&](int t) {
          threadIdx = uint3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
          blockIdx = uint3{bx, by, bz};
          blockDim = block;
          gridDim = grid;
          tl_block = &blk;
          std::apply(kernel, params);
          blk.bar.drop();
          tl_block = nullptr;
        };
        pool().run(threads, thread_main);
        blk.check_guard();
      }
    }
  }
}

}  // namespace cuda_emu

// --- device functions --------------------------------------------------------------------------
inline void __syncthreads() {
  cuda_emu::Block* b = cuda_emu::tl_block;
  b->bar.arrive_and_wait(b->where().c_str());
}

template <typename T>
inline T __shfl_sync(unsigned mask, T v, int src, int width = 32) {
  const int lane = cuda_emu::linear_tid() % 32, base = lane - lane % width;
  return cuda_emu::shuffle("__shfl_sync", mask, v, base + ((src % width) + width) % width, false);
}
template <typename T>
inline T __shfl_up_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = cuda_emu::linear_tid() % 32, src = lane - static_cast<int>(delta);
  return cuda_emu::shuffle("__shfl_up_sync", mask, v, src, src < lane - lane % width);
}
template <typename T>
inline T __shfl_down_sync(unsigned mask, T v, unsigned delta, int width = 32) {
  const int lane = cuda_emu::linear_tid() % 32, src = lane + static_cast<int>(delta);
  return cuda_emu::shuffle("__shfl_down_sync", mask, v, src, src >= lane - lane % width + width);
}
template <typename T>
inline T __shfl_xor_sync(unsigned mask, T v, int lane_mask, int width = 32) {
  const int lane = cuda_emu::linear_tid() % 32, src = lane ^ lane_mask;
  return cuda_emu::shuffle("__shfl_xor_sync", mask, v, src, src >= lane - lane % width + width);
}
inline unsigned __ballot_sync(unsigned mask, int pred) {
  const auto vals = cuda_emu::warp_exchange("__ballot_sync", mask, pred != 0);
  unsigned out = 0;
  for (int l = 0; l < 32; ++l) out |= (mask >> l & 1u) && vals[l] ? 1u << l : 0u;
  return out;
}
inline int __any_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) { return __ballot_sync(mask, pred) == mask; }

// Every atomic first yields the core: with a block's threads on a few cores, the window between
// a thread's read of a slot and its atomicCAS on it is then wide enough for another thread to
// win the slot in between, so the lost-race paths of a lock-free kernel actually run.
template <typename T>
inline T emu_atomic_add(T* a, T v) {
  std::this_thread::yield();
  return std::atomic_ref<T>(*a).fetch_add(v, std::memory_order_relaxed);
}
template <typename T>
inline T emu_atomic_cas(T* a, T expect, T want) {
  std::this_thread::yield();
  std::atomic_ref<T>(*a).compare_exchange_strong(expect, want, std::memory_order_relaxed);
  return expect;  // the old value, as atomicCAS returns
}
inline int atomicAdd(int* a, int v) { return emu_atomic_add(a, v); }
inline unsigned atomicAdd(unsigned* a, unsigned v) { return emu_atomic_add(a, v); }
inline unsigned long long atomicAdd(unsigned long long* a, unsigned long long v) {
  return emu_atomic_add(a, v);
}
inline float atomicAdd(float* a, float v) { return emu_atomic_add(a, v); }
inline int atomicCAS(int* a, int c, int v) { return emu_atomic_cas(a, c, v); }
inline unsigned atomicCAS(unsigned* a, unsigned c, unsigned v) { return emu_atomic_cas(a, c, v); }
inline unsigned long long atomicCAS(unsigned long long* a, unsigned long long c,
                                    unsigned long long v) {
  return emu_atomic_cas(a, c, v);
}

// --- runtime API ---------------------------------------------------------------------------
inline cudaError_t cudaGetDevice(int* dev) {
  *dev = 0;
  return cudaSuccess;
}
inline cudaError_t cudaDeviceGetAttribute(int* value, cudaDeviceAttr attr, int dev) {
  if (dev != 0) return cudaErrorInvalidDevice;
  const cuda_emu::Device& d = *cuda_emu::rt().dev;
  switch (attr) {
    case cudaDevAttrMaxThreadsPerBlock: *value = d.max_threads; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlock: *value = d.smem_default; return cudaSuccess;
    case cudaDevAttrMaxSharedMemoryPerBlockOptin: *value = d.smem_optin; return cudaSuccess;
  }
  return cudaErrorInvalidValue;
}
template <typename F>
inline cudaError_t cudaFuncSetAttribute(F* kernel, cudaFuncAttribute attr, int value) {
  std::lock_guard<std::mutex> g(cuda_emu::rt().m);
  if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 ||
      value > cuda_emu::rt().dev->smem_optin) {
    return cudaErrorInvalidValue;
  }
  cuda_emu::rt().smem_optin[reinterpret_cast<const void*>(kernel)] = value;
  return cudaSuccess;
}
inline cudaError_t cudaGetLastError() {
  std::lock_guard<std::mutex> g(cuda_emu::rt().m);
  const cudaError_t e = cuda_emu::rt().last;
  cuda_emu::rt().last = cudaSuccess;
  return e;
}
inline cudaError_t cudaPeekAtLastError() {
  std::lock_guard<std::mutex> g(cuda_emu::rt().m);
  return cuda_emu::rt().last;
}
inline const char* cudaGetErrorString(cudaError_t e) {
  switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorInvalidConfiguration: return "invalid configuration argument";
    case cudaErrorInvalidDevice: return "invalid device ordinal";
  }
  return "unknown error";
}

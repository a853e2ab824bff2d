// Scratch memory of the CPU kernels: one buffer per thread, grown on demand and kept for the
// next call, so a kernel's working set is warm in cache and touches no fresh pages. Requests
// above kKeepBytes get a buffer of their own, freed when the ThreadScratch goes.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

namespace memory_ext {
namespace cpu {

constexpr std::size_t kScratchAlign = 64;
constexpr std::size_t kKeepBytes = std::size_t(64) << 20;

inline char* align_up(char* p) {
  const auto v = reinterpret_cast<std::uintptr_t>(p);
  return p + ((kScratchAlign - v % kScratchAlign) % kScratchAlign);
}

template <typename T>
class ThreadScratch {
 public:
  explicit ThreadScratch(std::size_t count) {
    const std::size_t bytes = count * sizeof(T) + kScratchAlign;
    if (bytes > kKeepBytes) {
      own_.reset(new char[bytes]);
      ptr_ = reinterpret_cast<T*>(align_up(own_.get()));
      return;
    }
    thread_local std::unique_ptr<char[]> kept;
    thread_local std::size_t kept_bytes = 0;
    if (kept_bytes < bytes) {
      kept.reset(new char[bytes]);
      kept_bytes = bytes;
    }
    ptr_ = reinterpret_cast<T*>(align_up(kept.get()));
  }
  T* get() const { return ptr_; }

 private:
  std::unique_ptr<char[]> own_;
  T* ptr_ = nullptr;
};

}  // namespace cpu
}  // namespace memory_ext

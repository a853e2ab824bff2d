// Torch-free pieces of the integer-key hash table (spec section 4), shared by the CPU and CUDA
// kernels. The table is one int64 tensor `slots` [capacity, 3] of (key, id, count) rows, open
// addressing with linear probing, capacity a power of two; `meta` int64 [3] holds
// (used slots incl. tombstones, live keys, next id). Two key values are reserved.
#pragma once

#include <cstdint>

#include "memory_ext/common.h"

namespace memory_ext {
namespace hash {

constexpr int64_t kEmpty = INT64_MIN;          // a slot never used
constexpr int64_t kTombstone = INT64_MIN + 1;  // a slot whose key was erased
constexpr int kKey = 0, kId = 1, kCount = 2, kSlotWidth = 3;
constexpr int kMetaUsed = 0, kMetaLive = 1, kMetaNextId = 2;

ME_HD ME_INLINE uint64_t mix(int64_t key) {  // splitmix64 finaliser
  uint64_t z = static_cast<uint64_t>(key) + 0x9e3779b97f4a7c15ull;
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

ME_HD ME_INLINE bool reserved(int64_t key) { return key == kEmpty || key == kTombstone; }

// Reads a slot's key where no other thread writes it (the CPU kernels).
struct PlainLoad {
  ME_HD ME_INLINE int64_t operator()(const int64_t* p) const { return *p; }
};

// Slot index holding `key`, or -1. Probing stops at the first empty slot (the load factor is
// kept below 1, so one exists). `load` reads a key slot (the CUDA kernels pass an atomic load:
// other threads of the launch may claim or erase slots meanwhile).
template <typename Load = PlainLoad>
ME_HD ME_INLINE int64_t find_slot(const int64_t* slots, int64_t cap, int64_t key,
                                  Load load = Load{}) {
  const uint64_t mask = static_cast<uint64_t>(cap) - 1;
  uint64_t i = mix(key) & mask;
  for (int64_t n = 0; n < cap; ++n) {
    const int64_t k = load(slots + i * kSlotWidth + kKey);
    if (k == key) return static_cast<int64_t>(i);
    if (k == kEmpty) return -1;
    i = (i + 1) & mask;
  }
  return -1;
}

}  // namespace hash

// One call of a table kernel, from the host glue (csrc/ops/hash_table.cpp) to the CPU or CUDA
// kernels; the pointers an op does not use are null.
struct HashTableParams {
  int64_t* slots = nullptr;  // [capacity, kSlotWidth]
  int64_t capacity = 0;
  int64_t* meta = nullptr;           // [3] (lookup_or_insert, erase)
  const int64_t* keys = nullptr;     // [n] (lookup_or_insert, find, erase)
  const int64_t* entries = nullptr;  // [n, kSlotWidth] rows (key, id, count) (rebuild)
  int64_t n = 0;
  int64_t* ids = nullptr;     // [n] (lookup_or_insert, find)
  int64_t* counts = nullptr;  // [n] (find)
  bool* erased = nullptr;     // [n] (erase)
};

}  // namespace memory_ext

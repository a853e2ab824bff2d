// CPU kernels of the integer-key hash table: one pass over the keys in order (so new ids follow
// first occurrence: deterministic), the slot of each group of keys prefetched ahead of its probe.
// find is read-only and runs in parallel.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <unordered_set>

#include "../ops/hash_table.h"
#include "cpu_backend.h"

namespace memory_ext {
namespace cpu {
namespace {

using namespace memory_ext::hash;
constexpr int kGroup = 16;  // keys whose slots are prefetched together

// Checks, before anything is written, that every key of k[0, n) missing from the table finds an
// empty slot: the exact count of distinct missing keys against the empty slots (O(capacity),
// only when meta says the table might run out of them).
void check_room(const int64_t* s, int64_t cap, const int64_t* k, int64_t n) {
  int64_t empty = 0;
  for (int64_t i = 0; i < cap; ++i) empty += s[i * kSlotWidth + kKey] == kEmpty;
  std::unordered_set<int64_t> missing;
  for (int64_t j = 0; j < n && static_cast<int64_t>(missing.size()) <= empty; ++j) {
    if (find_slot(s, cap, k[j]) < 0) missing.insert(k[j]);
  }
  TORCH_CHECK(static_cast<int64_t>(missing.size()) <= empty, "hash_lookup_or_insert_: the table "
              "is full: ", missing.size(), missing.size() > static_cast<size_t>(empty) ? "+" : "",
              " new keys, ", empty, " empty slots of ", cap,
              " (re-hash it into a larger capacity first, as IntHashTable does)");
}

void lookup_or_insert(const HashTableParams& p, void*) {
  int64_t* s = p.slots;
  int64_t* m = p.meta;
  const int64_t* k = p.keys;
  int64_t* out = p.ids;
  const int64_t n = p.n;
  const int64_t cap = p.capacity;
  // meta's used count says whether n new keys surely fit; if not, count exactly
  if (m[kMetaUsed] < 0 || m[kMetaUsed] > cap - n) check_room(s, cap, k, n);
  const uint64_t mask = static_cast<uint64_t>(cap) - 1;
  uint64_t h[kGroup];
  for (int64_t g = 0; g < n; g += kGroup) {
    const int64_t e = std::min<int64_t>(n, g + kGroup);
    for (int64_t j = g; j < e; ++j) {
      h[j - g] = mix(k[j]) & mask;
      __builtin_prefetch(s + h[j - g] * kSlotWidth, 1);
    }
    for (int64_t j = g; j < e; ++j) {
      const int64_t key = k[j];
      uint64_t i = h[j - g];
      int64_t probe = 0;
      for (; probe < cap; ++probe) {
        int64_t* slot = s + i * kSlotWidth;
        if (slot[kKey] == key) {
          ++slot[kCount];
          out[j] = slot[kId];
          break;
        }
        if (slot[kKey] == kEmpty) {
          slot[kKey] = key;
          slot[kId] = m[kMetaNextId]++;
          slot[kCount] = 1;
          ++m[kMetaUsed];
          ++m[kMetaLive];
          out[j] = slot[kId];
          break;
        }
        i = (i + 1) & mask;
      }
      // only when meta[0] under-counts the used slots (meta not this table's)
      TORCH_CHECK(probe < cap, "hash_lookup_or_insert_: the table is full (no empty slot for key ",
                  key, "), and meta[0] = ", m[kMetaUsed], " under-counts its used slots");
    }
  }
}

void find(const HashTableParams& p, void*) {
  const int64_t* s = p.slots;
  const int64_t* k = p.keys;
  int64_t* oi = p.ids;
  int64_t* oc = p.counts;
  const int64_t cap = p.capacity;
  at::parallel_for(0, p.n, 4096, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const int64_t i = find_slot(s, cap, k[j]);
      oi[j] = i < 0 ? -1 : s[i * kSlotWidth + kId];
      oc[j] = i < 0 ? 0 : s[i * kSlotWidth + kCount];
    }
  });
}

void erase(const HashTableParams& p, void*) {
  for (int64_t j = 0; j < p.n; ++j) {
    const int64_t i = find_slot(p.slots, p.capacity, p.keys[j]);
    p.erased[j] = i >= 0;
    if (i >= 0) {
      p.slots[i * kSlotWidth + kKey] = kTombstone;
      --p.meta[kMetaLive];
    }
  }
}

// Into an empty table, of distinct keys (both checked by the host); probes bounded all the same.
void rebuild(const HashTableParams& p, void*) {
  int64_t* s = p.slots;
  const int64_t* e = p.entries;
  const int64_t cap = p.capacity;
  const uint64_t mask = static_cast<uint64_t>(cap) - 1;
  for (int64_t j = 0; j < p.n; ++j) {
    const int64_t* row = e + j * kSlotWidth;
    uint64_t i = mix(row[kKey]) & mask;
    int64_t probe = 0;
    for (; probe < cap && s[i * kSlotWidth + kKey] != kEmpty; ++probe) {
      if (s[i * kSlotWidth + kKey] == row[kKey]) break;
      i = (i + 1) & mask;
    }
    TORCH_CHECK(probe < cap && s[i * kSlotWidth + kKey] == kEmpty,
                "entries: no empty slot for row ", j, " (keys not distinct?)");
    for (int c = 0; c < kSlotWidth; ++c) s[i * kSlotWidth + c] = row[c];
  }
}

constexpr HashTableBackend kBackend{kCpu, &lookup_or_insert, &find, &erase, &rebuild};

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CPU_BACKEND(HashTableOps)

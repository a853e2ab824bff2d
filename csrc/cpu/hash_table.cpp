// CPU kernels of the integer-key hash table: one pass over the keys in order (so new ids follow
// first occurrence: deterministic), the slot of each group of keys prefetched ahead of its probe.
// find is read-only and runs in parallel.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include "../ops/hash_table.h"
#include "memory_ext/hash_table_core.h"

namespace memory_ext {
namespace cpu {
namespace {

using namespace memory_ext::hash;
constexpr int kGroup = 16;  // keys whose slots are prefetched together

void lookup_or_insert(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys, at::Tensor& ids) {
  int64_t* s = slots.data_ptr<int64_t>();
  int64_t* m = meta.data_ptr<int64_t>();
  const int64_t* k = keys.data_ptr<int64_t>();
  int64_t* out = ids.data_ptr<int64_t>();
  const int64_t n = keys.size(0);
  const uint64_t mask = static_cast<uint64_t>(slots.size(0)) - 1;
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
      while (true) {
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
    }
  }
}

void find(const at::Tensor& slots, const at::Tensor& keys, at::Tensor& ids, at::Tensor& counts) {
  const int64_t* s = slots.data_ptr<int64_t>();
  const int64_t* k = keys.data_ptr<int64_t>();
  int64_t* oi = ids.data_ptr<int64_t>();
  int64_t* oc = counts.data_ptr<int64_t>();
  const int64_t cap = slots.size(0);
  at::parallel_for(0, keys.size(0), 4096, [&](int64_t b, int64_t e) {
    for (int64_t j = b; j < e; ++j) {
      const int64_t i = find_slot(s, cap, k[j]);
      oi[j] = i < 0 ? -1 : s[i * kSlotWidth + kId];
      oc[j] = i < 0 ? 0 : s[i * kSlotWidth + kCount];
    }
  });
}

void erase(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys, at::Tensor& erased) {
  int64_t* s = slots.data_ptr<int64_t>();
  int64_t* m = meta.data_ptr<int64_t>();
  const int64_t* k = keys.data_ptr<int64_t>();
  bool* out = erased.data_ptr<bool>();
  const int64_t cap = slots.size(0);
  for (int64_t j = 0; j < keys.size(0); ++j) {
    const int64_t i = find_slot(s, cap, k[j]);
    out[j] = i >= 0;
    if (i >= 0) {
      s[i * kSlotWidth + kKey] = kTombstone;
      --m[kMetaLive];
    }
  }
}

void rebuild(at::Tensor& slots, const at::Tensor& entries) {
  int64_t* s = slots.data_ptr<int64_t>();
  const int64_t* e = entries.data_ptr<int64_t>();
  const uint64_t mask = static_cast<uint64_t>(slots.size(0)) - 1;
  for (int64_t j = 0; j < entries.size(0); ++j) {
    const int64_t* row = e + j * kSlotWidth;
    uint64_t i = mix(row[kKey]) & mask;
    while (s[i * kSlotWidth + kKey] != kEmpty) i = (i + 1) & mask;
    for (int c = 0; c < kSlotWidth; ++c) s[i * kSlotWidth + c] = row[c];
  }
}

const HashBackend& backend() {
  static const HashBackend be{"CPU", &lookup_or_insert, &find, &erase, &rebuild};
  return be;
}

at::Tensor lookup_or_insert_cpu(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys) {
  return hash_lookup_or_insert_impl(backend(), slots, meta, keys);
}
std::tuple<at::Tensor, at::Tensor> find_cpu(const at::Tensor& slots, const at::Tensor& keys) {
  return hash_find_impl(backend(), slots, keys);
}
at::Tensor erase_cpu(at::Tensor& slots, at::Tensor& meta, const at::Tensor& keys) {
  return hash_erase_impl(backend(), slots, meta, keys);
}
void rebuild_cpu(at::Tensor& slots, const at::Tensor& entries) {
  hash_rebuild_impl(backend(), slots, entries);
}

}  // namespace
}  // namespace cpu
}  // namespace memory_ext

TORCH_LIBRARY_IMPL(memory_ext, CPU, m) {
  m.impl("hash_lookup_or_insert_", TORCH_FN(memory_ext::cpu::lookup_or_insert_cpu));
  m.impl("hash_find", TORCH_FN(memory_ext::cpu::find_cpu));
  m.impl("hash_erase_", TORCH_FN(memory_ext::cpu::erase_cpu));
  m.impl("_hash_rebuild_", TORCH_FN(memory_ext::cpu::rebuild_cpu));
}

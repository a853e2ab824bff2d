// hash_lookup_or_insert_ / hash_find / hash_erase_ / _hash_rebuild_: argument checks with
// named errors, then the backend's kernel (see hash_table_core.h for the layout).
#include "hash_table.h"

#include "memory_ext/hash_table_core.h"

namespace memory_ext {
namespace {

void check_table(const at::Tensor& slots, const at::Tensor* meta) {
  TORCH_CHECK(slots.dim() == 2 && slots.size(1) == 3 && slots.scalar_type() == at::kLong,
              "slots must be an int64 tensor [capacity, 3], got ", slots.scalar_type(), " ",
              slots.sizes());
  const int64_t cap = slots.size(0);
  TORCH_CHECK(cap > 0 && (cap & (cap - 1)) == 0, "slots: capacity must be a power of two, got ",
              cap);
  TORCH_CHECK(slots.is_contiguous(), "slots must be contiguous (it is updated in place)");
  if (meta != nullptr) {
    TORCH_CHECK(meta->dim() == 1 && meta->size(0) == 3 && meta->scalar_type() == at::kLong,
                "meta must be an int64 tensor [3], got ", meta->scalar_type(), " ",
                meta->sizes());
    TORCH_CHECK(meta->device() == slots.device(), "meta must be on ", slots.device());
    TORCH_CHECK(meta->is_contiguous(), "meta must be contiguous (it is updated in place), got "
                "strides ", meta->strides());
  }
}

void check_keys(const at::Tensor& keys, const at::Tensor& slots) {
  TORCH_CHECK(keys.scalar_type() == at::kLong, "keys must be int64, got ", keys.scalar_type());
  TORCH_CHECK(keys.dim() == 1, "keys must be 1-D [N], got ", keys.sizes());
  TORCH_CHECK(keys.device() == slots.device(), "keys must be on the table's device ",
              slots.device(), ", got ", keys.device());
  if (keys.is_cpu() && keys.numel() > 0) {  // on CUDA reserved keys get id -1 (no host sync)
    const at::Tensor bad = keys.le(INT64_MIN + 1);
    TORCH_CHECK(!bad.any().item<bool>(), "keys: the values INT64_MIN and INT64_MIN + 1 are "
                "reserved (empty and erased slots), found at index ",
                bad.nonzero().flatten()[0].item<int64_t>());
  }
}

}  // namespace

at::Tensor hash_lookup_or_insert_impl(const HashBackend& be, at::Tensor& slots, at::Tensor& meta,
                                      const at::Tensor& keys) {
  check_table(slots, &meta);
  check_keys(keys, slots);
  if (meta.is_cpu()) {  // the next ids must stay in int64 (a signed overflow otherwise)
    const int64_t next = meta.data_ptr<int64_t>()[2];
    TORCH_CHECK(next >= 0 && next <= INT64_MAX - keys.size(0), "meta: the next id ", next,
                " must be in [0, 2^63 - 1 - number of keys] so that new ids fit int64");
  }
  at::Tensor ids = at::empty({keys.size(0)}, keys.options());
  if (keys.numel() > 0) be.lookup_or_insert(slots, meta, keys.contiguous(), ids);
  return ids;
}

std::tuple<at::Tensor, at::Tensor> hash_find_impl(const HashBackend& be, const at::Tensor& slots,
                                                  const at::Tensor& keys) {
  check_table(slots, nullptr);
  check_keys(keys, slots);
  at::Tensor ids = at::empty({keys.size(0)}, keys.options());
  at::Tensor counts = at::empty({keys.size(0)}, keys.options());
  if (keys.numel() > 0) be.find(slots, keys.contiguous(), ids, counts);
  return {ids, counts};
}

at::Tensor hash_erase_impl(const HashBackend& be, at::Tensor& slots, at::Tensor& meta,
                           const at::Tensor& keys) {
  check_table(slots, &meta);
  check_keys(keys, slots);
  at::Tensor erased = at::empty({keys.size(0)}, keys.options().dtype(at::kBool));
  if (keys.numel() > 0) be.erase(slots, meta, keys.contiguous(), erased);
  return erased;
}

void hash_rebuild_impl(const HashBackend& be, at::Tensor& slots, const at::Tensor& entries) {
  check_table(slots, nullptr);
  TORCH_CHECK(entries.dim() == 2 && entries.size(1) == 3 && entries.scalar_type() == at::kLong,
              "entries must be int64 [M, 3] (key, id, count), got ", entries.sizes());
  TORCH_CHECK(entries.device() == slots.device(), "entries must be on ", slots.device());
  TORCH_CHECK(entries.size(0) < slots.size(0), "entries: ", entries.size(0),
              " keys do not fit a table of capacity ", slots.size(0));
  if (entries.size(0) == 0) return;
  const at::Tensor e = entries.contiguous();
  if (slots.is_cpu()) {  // on CUDA (no host sync) such keys are skipped: bounded probes
    const at::Tensor used = slots.select(1, 0).ne(hash::kEmpty);
    TORCH_CHECK(!used.any().item<bool>(), "slots must be an empty table (every key slot ",
                hash::kEmpty, "), got a used slot at index ",
                used.nonzero().flatten()[0].item<int64_t>());
    const at::Tensor bad = e.select(1, 0).le(hash::kTombstone);
    TORCH_CHECK(!bad.any().item<bool>(), "entries: the keys INT64_MIN and INT64_MIN + 1 are "
                "reserved (empty and erased slots), found in row ",
                bad.nonzero().flatten()[0].item<int64_t>());
    const at::Tensor sorted = std::get<0>(e.select(1, 0).sort());
    const at::Tensor dup = sorted.slice(0, 1).eq(sorted.slice(0, 0, -1));
    TORCH_CHECK(!dup.any().item<bool>(), "entries: keys must be distinct, key ",
                sorted[dup.nonzero().flatten()[0].item<int64_t>()].item<int64_t>(),
                " is in more than one row");
  }
  be.rebuild(slots, e);
}

}  // namespace memory_ext

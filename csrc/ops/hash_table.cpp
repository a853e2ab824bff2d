// hash_lookup_or_insert_ / hash_find / hash_erase_ / _hash_rebuild_: argument checks with
// named errors, then the backend's kernel (see hash_table_core.h for the layout).
#include "hash_table.h"

#include "checks.h"

namespace memory_ext {
namespace {

void check_table(const at::Tensor& slots, const at::Tensor* meta) {
  check_shape(slots, "slots", {{"capacity", kAny}, {"3", 3}}, at::kLong);
  const int64_t cap = slots.size(0);
  TORCH_CHECK(cap > 0 && (cap & (cap - 1)) == 0, "slots: capacity must be a power of two, got ",
              cap);
  check_contiguous(slots, "slots", "it is updated in place");
  if (meta != nullptr) {
    check_shape(*meta, "meta", {{"3", 3}}, at::kLong);
    check_device_like(*meta, "meta", slots, "slots");
    check_contiguous(*meta, "meta", "it is updated in place");
  }
}

void check_keys(const at::Tensor& keys, const at::Tensor& slots) {
  check_shape(keys, "keys", {{"N", kAny}}, at::kLong);
  check_device_like(keys, "keys", slots, "slots");
  if (keys.is_cpu() && keys.numel() > 0) {  // on CUDA reserved keys get id -1 (no host sync)
    const at::Tensor bad = keys.le(INT64_MIN + 1);
    TORCH_CHECK(!bad.any().item<bool>(), "keys: the values INT64_MIN and INT64_MIN + 1 are "
                "reserved (empty and erased slots), found at index ",
                bad.nonzero().flatten()[0].item<int64_t>());
  }
}

// A kernel call on the table with the rows `rows` (keys [n], contiguous; entries [n, 3] for
// rebuild), meta null where the op does not change it; the outputs are the caller's to set.
HashTableParams call_params(const at::Tensor& slots, at::Tensor* meta, const at::Tensor& rows) {
  HashTableParams p;
  p.slots = slots.data_ptr<int64_t>();
  p.capacity = slots.size(0);
  p.meta = meta != nullptr ? meta->data_ptr<int64_t>() : nullptr;
  p.n = rows.size(0);
  if (rows.dim() == 1) {
    p.keys = rows.data_ptr<int64_t>();
  } else {
    p.entries = rows.data_ptr<int64_t>();
  }
  return p;
}

}  // namespace

at::Tensor hash_lookup_or_insert_impl(const HashTableBackend& be, at::Tensor& slots,
                                      at::Tensor& meta, const at::Tensor& keys) {
  check_table(slots, &meta);
  check_keys(keys, slots);
  if (meta.is_cpu()) {  // the next ids must stay in int64 (a signed overflow otherwise)
    const int64_t next = meta.data_ptr<int64_t>()[2];
    TORCH_CHECK(next >= 0 && next <= INT64_MAX - keys.size(0), "meta: the next id ", next,
                " must be in [0, 2^63 - 1 - number of keys] so that new ids fit int64");
  }
  at::Tensor ids = at::empty({keys.size(0)}, keys.options());
  if (keys.numel() == 0) return ids;
  const at::Tensor k = keys.contiguous();
  HashTableParams p = call_params(slots, &meta, k);
  p.ids = ids.data_ptr<int64_t>();
  be.lookup_or_insert(p, be.current_stream());
  return ids;
}

std::tuple<at::Tensor, at::Tensor> hash_find_impl(const HashTableBackend& be,
                                                  const at::Tensor& slots, const at::Tensor& keys) {
  check_table(slots, nullptr);
  check_keys(keys, slots);
  at::Tensor ids = at::empty({keys.size(0)}, keys.options());
  at::Tensor counts = at::empty({keys.size(0)}, keys.options());
  if (keys.numel() == 0) return {ids, counts};
  const at::Tensor k = keys.contiguous();
  HashTableParams p = call_params(slots, nullptr, k);
  p.ids = ids.data_ptr<int64_t>();
  p.counts = counts.data_ptr<int64_t>();
  be.find(p, be.current_stream());
  return {ids, counts};
}

at::Tensor hash_erase_impl(const HashTableBackend& be, at::Tensor& slots, at::Tensor& meta,
                           const at::Tensor& keys) {
  check_table(slots, &meta);
  check_keys(keys, slots);
  at::Tensor erased = at::empty({keys.size(0)}, keys.options().dtype(at::kBool));
  if (keys.numel() == 0) return erased;
  const at::Tensor k = keys.contiguous();
  HashTableParams p = call_params(slots, &meta, k);
  p.erased = erased.data_ptr<bool>();
  be.erase(p, be.current_stream());
  return erased;
}

void hash_rebuild_impl(const HashTableBackend& be, at::Tensor& slots, const at::Tensor& entries) {
  check_table(slots, nullptr);
  check_shape(entries, "entries", {{"M", kAny}, {"3", 3}}, at::kLong);  // rows (key, id, count)
  check_device_like(entries, "entries", slots, "slots");
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
  be.rebuild(call_params(slots, nullptr, e), be.current_stream());
}

}  // namespace memory_ext

// CUDA backend of the integer-key hash table ops: calls the torch-free kernels of hash_table.cu,
// registers the CUDA impls (built only when torch has CUDA).
#include <torch/library.h>

#include "../ops/hash_table.h"
#include "cuda_backend.h"
#include "hash_table_launch.h"

namespace memory_ext {
namespace cuda {
namespace {

void lookup_or_insert(const HashTableParams& p, void* s) {
  check_launch(hash_lookup_or_insert(p.slots, p.capacity, p.meta, p.keys, p.n, p.ids, s),
               "hash_lookup_or_insert");
}

void find(const HashTableParams& p, void* s) {
  check_launch(hash_find(p.slots, p.capacity, p.keys, p.n, p.ids, p.counts, s), "hash_find");
}

void erase(const HashTableParams& p, void* s) {
  check_launch(hash_erase(p.slots, p.capacity, p.meta, p.keys, p.n, p.erased, s), "hash_erase");
}

void rebuild(const HashTableParams& p, void* s) {
  check_launch(hash_rebuild(p.slots, p.capacity, p.entries, p.n, s), "hash_rebuild");
}

constexpr HashTableBackend kBackend{kCuda, &lookup_or_insert, &find, &erase, &rebuild};

}  // namespace
}  // namespace cuda
}  // namespace memory_ext

MEMORY_EXT_REGISTER_CUDA_BACKEND(HashTableOps)

// Torch-free entry points of the integer-key hash table's CUDA kernels (hash_table.cu).
// Each returns nullptr on success, else the CUDA error string.
#pragma once

#include <cstdint>

namespace memory_ext {
namespace cuda {

const char* hash_lookup_or_insert(int64_t* slots, int64_t cap, int64_t* meta, const int64_t* keys,
                                  int64_t n, int64_t* ids, void* stream);
const char* hash_find(const int64_t* slots, int64_t cap, const int64_t* keys, int64_t n,
                      int64_t* ids, int64_t* counts, void* stream);
const char* hash_erase(int64_t* slots, int64_t cap, int64_t* meta, const int64_t* keys, int64_t n,
                       bool* erased, void* stream);
const char* hash_rebuild(int64_t* slots, int64_t cap, const int64_t* entries, int64_t m,
                         void* stream);

}  // namespace cuda
}  // namespace memory_ext

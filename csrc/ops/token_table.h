// TokenTable: token string -> stable integer id with use counts (spec section 4). Torch-free,
// no op: bound to Python by python/token_table_bind.cpp (memory_ext.TokenTable).
// Inserting a new token gives it the lowest free id; prune() frees ids (rare tokens, except
// protected ones and tokens younger than a grace period); survivors keep their ids until
// compact() renumbers the live ids densely in their old order. Reads take a shared lock,
// writes an exclusive one, so concurrent readers are safe.
#pragma once

#include <cstdint>
#include <functional>
#include <queue>
#include <shared_mutex>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace memory_ext {

struct StringHash {
  using is_transparent = void;
  std::size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
};

// The whole state, as saved and loaded (ids are positions; free ids have live = 0).
struct TokenTableState {
  std::vector<std::string> tokens;  // [id_bound]; "" for free ids
  std::vector<uint8_t> live;        // [id_bound]
  std::vector<int64_t> counts;      // [id_bound]
  std::vector<int64_t> born;        // [id_bound]: the add() clock at insertion
  int64_t clock = 0;                // number of add() calls so far
};

class TokenTable {
 public:
  TokenTable() = default;

  // Ids of `tokens` (one per token, in order), inserting misses at the lowest free id; every
  // occurrence counts one use. Empty tokens are an error (nothing is inserted then).
  std::vector<int64_t> add(const std::vector<std::string_view>& tokens);
  // Ids without inserting or counting; `unk` for tokens not in the table.
  std::vector<int64_t> lookup(const std::vector<std::string_view>& tokens, int64_t unk) const;
  // Tokens of live ids; an error naming the first id that is out of range or free.
  std::vector<std::string> decode(const std::vector<int64_t>& ids) const;
  // Frees every live id whose count < min_count, except `protect`ed tokens and tokens inserted
  // fewer than `grace` add() calls ago. Returns the freed ids, ascending.
  std::vector<int64_t> prune(int64_t min_count, const std::vector<std::string_view>& protect,
                             int64_t grace);
  // Frees the ids of the given tokens (absent tokens are skipped). Returns the freed ids.
  std::vector<int64_t> remove(const std::vector<std::string_view>& tokens);
  // Sets the use counts of live ids (all checked first: live, count >= 0; nothing changes on
  // error). Used to merge counts across data-parallel ranks.
  void set_counts(const std::vector<int64_t>& ids, const std::vector<int64_t>& counts);
  // Renumbers live ids densely in their old order; returns old -> new ([id_bound], -1 = free).
  std::vector<int64_t> compact();

  int64_t size() const;      // live tokens
  int64_t id_bound() const;  // 1 + the largest id ever handed out and not compacted away
  std::vector<int64_t> counts() const;
  std::vector<uint8_t> live_mask() const;
  bool contains(std::string_view token) const;
  int64_t clock() const;
  uint64_t checksum() const;  // FNV-1a over (id, token) of live ids in id order

  TokenTableState state() const;
  // Validates `s` completely first; on error throws and changes nothing.
  void load(TokenTableState s);

 private:
  int64_t take_free_id();  // lowest free id, or a new one at the end
  void free_id(int64_t id);
  void rebuild_free_locked();

  mutable std::shared_mutex mu_;
  std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> index_;
  TokenTableState st_;
  std::priority_queue<int64_t, std::vector<int64_t>, std::greater<int64_t>> free_;
  int64_t live_ = 0;
};

}  // namespace memory_ext

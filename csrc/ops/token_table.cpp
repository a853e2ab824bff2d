// TokenTable (see token_table.h).
#include "token_table.h"

#include <mutex>
#include <stdexcept>
#include <unordered_set>

namespace memory_ext {
namespace {

void check_nonempty(const std::vector<std::string_view>& tokens, const char* what) {
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    if (tokens[i].empty()) {
      throw std::invalid_argument(std::string(what) + ": tokens[" + std::to_string(i) +
                                  "] is the empty string (tokens must be non-empty)");
    }
  }
}

}  // namespace

int64_t TokenTable::take_free_id() {
  if (!free_.empty()) {
    const int64_t id = free_.top();
    free_.pop();
    return id;
  }
  const int64_t id = static_cast<int64_t>(st_.tokens.size());
  st_.tokens.emplace_back();
  st_.live.push_back(0);
  st_.counts.push_back(0);
  st_.born.push_back(0);
  return id;
}

void TokenTable::free_id(int64_t id) {
  index_.erase(st_.tokens[id]);
  st_.tokens[id].clear();
  st_.live[id] = 0;
  st_.counts[id] = 0;
  st_.born[id] = 0;
  free_.push(id);
  --live_;
}

std::vector<int64_t> TokenTable::add(const std::vector<std::string_view>& tokens) {
  check_nonempty(tokens, "TokenTable.add");
  std::unique_lock lock(mu_);
  std::vector<int64_t> ids(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    auto it = index_.find(tokens[i]);
    int64_t id;
    if (it != index_.end()) {
      id = it->second;
    } else {
      id = take_free_id();
      st_.tokens[id] = std::string(tokens[i]);
      st_.live[id] = 1;
      st_.born[id] = st_.clock;
      index_.emplace(st_.tokens[id], id);
      ++live_;
    }
    ++st_.counts[id];
    ids[i] = id;
  }
  ++st_.clock;
  return ids;
}

std::vector<int64_t> TokenTable::lookup(const std::vector<std::string_view>& tokens,
                                        int64_t unk) const {
  std::shared_lock lock(mu_);
  std::vector<int64_t> ids(tokens.size());
  for (std::size_t i = 0; i < tokens.size(); ++i) {
    auto it = index_.find(tokens[i]);
    ids[i] = it == index_.end() ? unk : it->second;
  }
  return ids;
}

std::vector<std::string> TokenTable::decode(const std::vector<int64_t>& ids) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> out;
  out.reserve(ids.size());
  const int64_t bound = static_cast<int64_t>(st_.tokens.size());
  for (std::size_t i = 0; i < ids.size(); ++i) {
    const int64_t id = ids[i];
    if (id < 0 || id >= bound) {
      throw std::out_of_range("TokenTable.decode: ids[" + std::to_string(i) + "] = " +
                              std::to_string(id) + " is out of range [0, " +
                              std::to_string(bound) + ")");
    }
    if (!st_.live[id]) {
      throw std::out_of_range("TokenTable.decode: ids[" + std::to_string(i) + "] = " +
                              std::to_string(id) + " is a freed id (no token)");
    }
    out.push_back(st_.tokens[id]);
  }
  return out;
}

std::vector<int64_t> TokenTable::prune(int64_t min_count,
                                       const std::vector<std::string_view>& protect,
                                       int64_t grace) {
  if (grace < 0) throw std::invalid_argument("TokenTable.prune: grace must be >= 0");
  std::unique_lock lock(mu_);
  std::unordered_set<std::string_view> keep(protect.begin(), protect.end());
  std::vector<int64_t> freed;
  for (int64_t id = 0; id < static_cast<int64_t>(st_.tokens.size()); ++id) {
    if (!st_.live[id] || st_.counts[id] >= min_count) continue;
    if (st_.clock - st_.born[id] < grace) continue;
    if (keep.count(std::string_view(st_.tokens[id]))) continue;
    freed.push_back(id);
  }
  for (int64_t id : freed) free_id(id);
  return freed;
}

std::vector<int64_t> TokenTable::remove(const std::vector<std::string_view>& tokens) {
  std::unique_lock lock(mu_);
  std::vector<int64_t> freed;
  for (std::string_view t : tokens) {
    auto it = index_.find(t);
    if (it == index_.end()) continue;
    const int64_t id = it->second;
    freed.push_back(id);
    free_id(id);
  }
  return freed;
}

void TokenTable::set_counts(const std::vector<int64_t>& ids, const std::vector<int64_t>& counts) {
  if (ids.size() != counts.size()) {
    throw std::invalid_argument("TokenTable.set_counts: ids and counts must have the same length");
  }
  std::unique_lock lock(mu_);
  for (std::size_t i = 0; i < ids.size(); ++i) {
    if (ids[i] < 0 || ids[i] >= static_cast<int64_t>(st_.tokens.size()) || !st_.live[ids[i]]) {
      throw std::out_of_range("TokenTable.set_counts: ids[" + std::to_string(i) + "] = " +
                              std::to_string(ids[i]) + " is not a live id");
    }
    if (counts[i] < 0) {
      throw std::invalid_argument("TokenTable.set_counts: counts[" + std::to_string(i) +
                                  "] must be >= 0");
    }
  }
  for (std::size_t i = 0; i < ids.size(); ++i) st_.counts[ids[i]] = counts[i];
}

std::vector<int64_t> TokenTable::compact() {
  std::unique_lock lock(mu_);
  const int64_t bound = static_cast<int64_t>(st_.tokens.size());
  std::vector<int64_t> remap(bound, -1);
  TokenTableState next;
  next.clock = st_.clock;
  for (int64_t id = 0; id < bound; ++id) {
    if (!st_.live[id]) continue;
    remap[id] = static_cast<int64_t>(next.tokens.size());
    next.tokens.push_back(std::move(st_.tokens[id]));
    next.live.push_back(1);
    next.counts.push_back(st_.counts[id]);
    next.born.push_back(st_.born[id]);
  }
  st_ = std::move(next);
  index_.clear();
  for (int64_t id = 0; id < static_cast<int64_t>(st_.tokens.size()); ++id) index_.emplace(st_.tokens[id], id);
  free_ = {};
  return remap;
}

int64_t TokenTable::size() const {
  std::shared_lock lock(mu_);
  return live_;
}

int64_t TokenTable::id_bound() const {
  std::shared_lock lock(mu_);
  return static_cast<int64_t>(st_.tokens.size());
}

std::vector<int64_t> TokenTable::counts() const {
  std::shared_lock lock(mu_);
  return st_.counts;
}

std::vector<uint8_t> TokenTable::live_mask() const {
  std::shared_lock lock(mu_);
  return st_.live;
}

bool TokenTable::contains(std::string_view token) const {
  std::shared_lock lock(mu_);
  return index_.find(token) != index_.end();
}

int64_t TokenTable::clock() const {
  std::shared_lock lock(mu_);
  return st_.clock;
}

uint64_t TokenTable::checksum() const {
  std::shared_lock lock(mu_);
  uint64_t h = 1469598103934665603ull;
  auto mix = [&](const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    for (std::size_t i = 0; i < n; ++i) {
      h ^= b[i];
      h *= 1099511628211ull;
    }
  };
  for (int64_t id = 0; id < static_cast<int64_t>(st_.tokens.size()); ++id) {
    if (!st_.live[id]) continue;
    mix(&id, sizeof(id));
    const uint64_t n = st_.tokens[id].size();
    mix(&n, sizeof(n));
    mix(st_.tokens[id].data(), st_.tokens[id].size());
  }
  return h;
}

TokenTableState TokenTable::state() const {
  std::shared_lock lock(mu_);
  return st_;
}

void TokenTable::load(TokenTableState s) {
  const std::size_t n = s.tokens.size();
  if (s.live.size() != n || s.counts.size() != n || s.born.size() != n) {
    throw std::invalid_argument("TokenTable.load_state_dict: tokens, live, counts and born must "
                                "have one entry per id (" + std::to_string(n) + ")");
  }
  if (s.clock < 0) throw std::invalid_argument("TokenTable.load_state_dict: clock must be >= 0");
  std::unordered_map<std::string, int64_t, StringHash, std::equal_to<>> index;
  int64_t live = 0;
  for (std::size_t id = 0; id < n; ++id) {
    const std::string where = "TokenTable.load_state_dict: id " + std::to_string(id);
    if (s.live[id] > 1) throw std::invalid_argument(where + ": live must be 0 or 1");
    if (!s.live[id]) {
      if (!s.tokens[id].empty() || s.counts[id] != 0) {
        throw std::invalid_argument(where + " is free but has a token or a count");
      }
      continue;
    }
    if (s.tokens[id].empty()) throw std::invalid_argument(where + " is live with an empty token");
    if (s.counts[id] < 0) throw std::invalid_argument(where + " has a negative count");
    if (s.born[id] < 0 || s.born[id] > s.clock) {
      throw std::invalid_argument(where + " has born outside [0, clock]");
    }
    if (!index.emplace(s.tokens[id], static_cast<int64_t>(id)).second) {
      throw std::invalid_argument(where + ": token '" + s.tokens[id] + "' appears twice");
    }
    ++live;
  }
  std::unique_lock lock(mu_);
  st_ = std::move(s);
  index_ = std::move(index);
  live_ = live;
  rebuild_free_locked();
}

void TokenTable::rebuild_free_locked() {
  free_ = {};
  for (int64_t id = 0; id < static_cast<int64_t>(st_.tokens.size()); ++id) {
    if (!st_.live[id]) free_.push(id);
  }
}

}  // namespace memory_ext

// pybind11 bindings of memory_ext.TokenTable (csrc/ops/token_table.h): tokens in as Python
// str sequences (read as UTF-8 views, no copies; the str objects held meanwhile), ids out as int64 tensors.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>
#include <torch/python.h>

#include <cstring>
#include <memory>
#include <string_view>

#include "../csrc/ops/token_table.h"

namespace py = pybind11;
using memory_ext::TokenTable;
using memory_ext::TokenTableState;

namespace {

// The UTF-8 of every str in a sequence, as views, and the str objects they point into: a
// sequence may make a fresh str per item (a numpy string array, a computed sequence), whose
// UTF-8 buffer dies with it, so each item is held here while the views are in use.
struct StrViews {
  std::vector<py::object> keep;
  std::vector<std::string_view> views;
};

StrViews str_views(const py::handle& seq, const char* arg) {
  if (PyUnicode_Check(seq.ptr())) {
    throw py::type_error(std::string(arg) + " must be a sequence of str, got a single str");
  }
  py::sequence s = py::reinterpret_borrow<py::sequence>(seq);
  StrViews out;
  const Py_ssize_t n = static_cast<Py_ssize_t>(s.size());
  out.keep.reserve(n);
  out.views.reserve(n);
  for (Py_ssize_t i = 0; i < n; ++i) {
    py::object o = s[i];  // a new reference: alive as long as `out`
    if (!PyUnicode_Check(o.ptr())) {
      throw py::type_error(std::string(arg) + "[" + std::to_string(i) + "] must be a str, got " +
                           Py_TYPE(o.ptr())->tp_name);
    }
    Py_ssize_t len = 0;
    const char* p = PyUnicode_AsUTF8AndSize(o.ptr(), &len);
    if (p == nullptr) throw py::error_already_set();
    out.views.emplace_back(p, static_cast<std::size_t>(len));
    out.keep.push_back(std::move(o));
  }
  return out;
}

at::Tensor to_tensor(const std::vector<int64_t>& v) {
  at::Tensor t = at::empty({static_cast<int64_t>(v.size())}, at::kLong);
  if (!v.empty()) std::memcpy(t.data_ptr<int64_t>(), v.data(), v.size() * sizeof(int64_t));
  return t;
}

std::vector<int64_t> ids_from(const py::handle& ids) {
  if (THPVariable_Check(ids.ptr())) {
    at::Tensor t = THPVariable_Unpack(ids.ptr());
    if (t.scalar_type() != at::kLong || t.dim() != 1) {
      throw py::type_error("ids must be a 1-D int64 tensor, got " +
                           std::string(c10::toString(t.scalar_type())) + " of shape " +
                           c10::str(t.sizes()));
    }
    t = t.cpu().contiguous();
    return std::vector<int64_t>(t.data_ptr<int64_t>(), t.data_ptr<int64_t>() + t.numel());
  }
  return ids.cast<std::vector<int64_t>>();
}

py::dict state_dict(const TokenTable& t) {
  TokenTableState s = t.state();
  py::dict d;
  d["format"] = "memory_ext.TokenTable/1";
  d["tokens"] = py::cast(s.tokens);
  at::Tensor live = at::empty({static_cast<int64_t>(s.live.size())}, at::kBool);
  for (std::size_t i = 0; i < s.live.size(); ++i) live.data_ptr<bool>()[i] = s.live[i] != 0;
  d["live"] = live;
  d["counts"] = to_tensor(s.counts);
  d["born"] = to_tensor(s.born);
  d["clock"] = s.clock;
  return d;
}

std::vector<int64_t> int_tensor_field(const py::dict& d, const char* key) {
  py::object o = d[key];
  if (!THPVariable_Check(o.ptr())) throw py::type_error(std::string("state_dict['") + key + "'] must be a tensor");
  at::Tensor t = THPVariable_Unpack(o.ptr());
  if (t.scalar_type() != at::kLong || t.dim() != 1) {
    throw py::value_error(std::string("state_dict['") + key + "'] must be a 1-D int64 tensor");
  }
  return ids_from(o);
}

void load_state_dict(TokenTable& t, const py::dict& d) {
  for (const char* k : {"format", "tokens", "live", "counts", "born", "clock"}) {
    if (!d.contains(k)) throw py::key_error(std::string("TokenTable state_dict is missing '") + k + "'");
  }
  if (d["format"].cast<std::string>() != "memory_ext.TokenTable/1") {
    throw py::value_error("TokenTable state_dict: unknown format " + py::str(d["format"]).cast<std::string>());
  }
  TokenTableState s;
  py::object tokens = d["tokens"];
  const StrViews tv = str_views(tokens, "state_dict['tokens']");
  for (std::string_view v : tv.views) s.tokens.emplace_back(v);
  py::object live = d["live"];
  if (!THPVariable_Check(live.ptr())) throw py::type_error("state_dict['live'] must be a bool tensor");
  at::Tensor lt = THPVariable_Unpack(live.ptr());
  if (lt.scalar_type() != at::kBool || lt.dim() != 1) {
    throw py::value_error("state_dict['live'] must be a 1-D bool tensor");
  }
  // read as bytes: a bool tensor from a garbled pickle may hold bytes other than 0 / 1, which
  // are no bool values; TokenTable::load rejects them ("live must be 0 or 1")
  lt = lt.cpu().contiguous().view(at::kByte);
  const uint8_t* lb = lt.data_ptr<uint8_t>();
  s.live.assign(lb, lb + lt.numel());
  s.counts = int_tensor_field(d, "counts");
  s.born = int_tensor_field(d, "born");
  s.clock = d["clock"].cast<int64_t>();
  t.load(std::move(s));  // validates everything before changing anything
}

}  // namespace

void bind_token_table(py::module& m) {
  py::class_<TokenTable>(m, "TokenTable", R"doc(
Token string -> stable integer id, with use counts (spec section 4).

New tokens get the lowest free id; prune() frees ids, survivors keep theirs until compact()
renumbers densely (old order kept) and returns the old -> new map. Reads are thread-safe.
Ids are returned as int64 tensors [N].
)doc")
      .def(py::init<>())
      .def("add", [](TokenTable& t, const py::handle& tokens) {
             const StrViews v = str_views(tokens, "tokens");
             return to_tensor(t.add(v.views));
           },
           py::arg("tokens"), "add(tokens: list[str]) -> ids [N]: insert misses, count every use")
      .def("lookup", [](const TokenTable& t, const py::handle& tokens, int64_t unk) {
             const StrViews v = str_views(tokens, "tokens");
             return to_tensor(t.lookup(v.views, unk));
           }, py::arg("tokens"), py::arg("unk"), "lookup(tokens, unk) -> ids [N] (unk for misses; no insert, no count)")
      .def("decode", [](const TokenTable& t, const py::handle& ids) { return t.decode(ids_from(ids)); },
           py::arg("ids"), "decode(ids) -> list[str]; a freed or out-of-range id is an error")
      .def("prune", [](TokenTable& t, int64_t min_count, const py::handle& protect, int64_t grace) {
             const StrViews v = str_views(protect, "protected");
             return to_tensor(t.prune(min_count, v.views, grace));
           }, py::arg("min_count"), py::arg("protected") = py::list(), py::arg("grace") = 0,
           "prune(min_count, protected=[], grace=0) -> freed ids: count < min_count, not protected, "
           "inserted at least `grace` add() calls ago")
      .def("remove", [](TokenTable& t, const py::handle& tokens) {
             const StrViews v = str_views(tokens, "tokens");
             return to_tensor(t.remove(v.views));
           },
           py::arg("tokens"), "remove(tokens) -> freed ids (absent tokens skipped)")
      .def("set_counts", [](TokenTable& t, const py::handle& ids, const py::handle& counts) {
             t.set_counts(ids_from(ids), ids_from(counts));
           }, py::arg("ids"), py::arg("counts"), "set_counts(ids, counts): counts of live ids (checked first)")
      .def("compact", [](TokenTable& t) { return to_tensor(t.compact()); },
           "compact() -> old -> new id map [id_bound] (-1 for freed ids)")
      .def("counts", [](const TokenTable& t) { return to_tensor(t.counts()); }, "use counts [id_bound] (0 for free ids)")
      .def("live_mask", [](const TokenTable& t) {
             auto m = t.live_mask();
             at::Tensor out = at::empty({static_cast<int64_t>(m.size())}, at::kBool);
             for (std::size_t i = 0; i < m.size(); ++i) out.data_ptr<bool>()[i] = m[i] != 0;
             return out;
           }, "live ids as a bool mask [id_bound]")
      .def_property_readonly("id_bound", &TokenTable::id_bound, "1 + the largest id in use or freed")
      .def_property_readonly("clock", &TokenTable::clock, "number of add() calls so far")
      .def("checksum", &TokenTable::checksum, "FNV-1a of the live (id, token) pairs: equal maps, equal sums")
      .def("__len__", &TokenTable::size)
      .def("__contains__", [](const TokenTable& t, const std::string& s) { return t.contains(s); })
      .def("state_dict", &state_dict)
      .def("load_state_dict", &load_state_dict, py::arg("state_dict"),
           "restore from state_dict(); validated first, nothing changes on error")
      .def(py::pickle([](const TokenTable& t) { return state_dict(t); },
                      [](const py::dict& d) {
                        auto t = std::make_unique<TokenTable>();
                        load_state_dict(*t, d);
                        return t;
                      }));
}

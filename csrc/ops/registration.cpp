// The one TORCH_LIBRARY of memory_ext: every op schema. Per op family F, csrc/ops/F.cpp holds the
// checks and host glue, csrc/cpu/F.cpp and csrc/cuda/F_cuda.cpp register the CPU and CUDA
// kernels (through FOps of csrc/ops/F.h). Autograd: the MLP ops' in C++
// (csrc/ops/mlp_memory_autograd.cpp); slot_read's, slot_read_hard's and delta_rule_chunk's in
// Python (torch.library.register_autograd); the in-place, hash table and gather_rows ops have
// none. Fake kernels from Python (memory_ext/_meta.py). No argument has a default: the Python
// front (memory_ext/ops.py) passes every argument, and torch.library's Python-side tooling drops
// trailing arguments equal to their defaults from a call, which changes the argument structure
// it sees.
#include <torch/library.h>

TORCH_LIBRARY(memory_ext, m) {
  m.def("mlp_memory_read(Tensor[] weights, Tensor keys, str activation) -> Tensor");
  m.def(
      "_mlp_memory_read_bwd(Tensor[] weights, Tensor keys, Tensor grad_reads, str activation) "
      "-> (Tensor[], Tensor)");
  m.def(
      "mlp_memory_write(Tensor[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor? alpha, str rule, str activation) -> Tensor[]");
  m.def(
      "mlp_memory_step(Tensor[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor read_keys, Tensor? alpha, Tensor? recon_values, str rule, "
      "str activation) -> (Tensor[], Tensor, Tensor)");
  m.def(
      "mlp_memory_scan(Tensor[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor read_keys, Tensor? alpha, Tensor? recon_values, str rule, "
      "str activation, int checkpoint_every) -> (Tensor, Tensor[], Tensor, Tensor[])");
  m.def(
      "_mlp_memory_scan_bwd(Tensor[] checkpoints, Tensor write_keys, Tensor[] targets, "
      "Tensor beta, Tensor read_keys, Tensor? alpha, Tensor? recon_values, Tensor? grad_reads, "
      "Tensor[] grad_final_weights, Tensor? grad_recon, str rule, str activation, "
      "int checkpoint_every) -> (Tensor[], Tensor, Tensor[], Tensor, Tensor, Tensor, Tensor)");
  // in-place step and its backward for callers that own the weights (no autograd: the caller
  // differentiates, e.g. memory_ext/mnm_sequence.py)
  m.def(
      "_mlp_memory_step_(Tensor(a!)[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor read_keys, Tensor? alpha, Tensor? recon_values, str rule, str activation) "
      "-> (Tensor, Tensor, Tensor)");
  m.def(
      "_mlp_memory_step_bwd_(Tensor(a!)[] weights, Tensor(b!)[] grad_weights, Tensor saved, "
      "Tensor write_keys, Tensor[] targets, Tensor beta, Tensor read_keys, Tensor? alpha, "
      "Tensor? recon_values, Tensor? grad_reads, Tensor? grad_recon, str rule, "
      "str activation) -> (Tensor, Tensor, Tensor, Tensor, Tensor, Tensor)");
  m.def(
      "delta_rule_step_(Tensor(a!) state, Tensor q, Tensor k, Tensor v, Tensor beta, "
      "float scale, Tensor(b!) out) -> ()");
  m.def(
      "delta_rule_chunk(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor? initial_state, "
      "float scale, int chunk_size, bool save_states) -> (Tensor, Tensor, Tensor)");
  m.def(
      "_delta_rule_chunk_bwd(Tensor q, Tensor k, Tensor v, Tensor beta, Tensor states, "
      "Tensor grad_o, Tensor? grad_final, float scale, int chunk_size) "
      "-> (Tensor, Tensor, Tensor, Tensor, Tensor)");
  // integer-key hash table (slots [capacity, 3] = (key, id, count), meta [3])
  m.def("hash_lookup_or_insert_(Tensor(a!) slots, Tensor(b!) meta, Tensor keys) -> Tensor");
  m.def("hash_find(Tensor slots, Tensor keys) -> (Tensor, Tensor)");
  m.def("hash_erase_(Tensor(a!) slots, Tensor(b!) meta, Tensor keys) -> Tensor");
  m.def("_hash_rebuild_(Tensor(a!) slots, Tensor entries) -> ()");
  // one row permutation applied to many row-aligned tensors (elastic vocabulary compaction)
  m.def("gather_rows(Tensor[] tensors, Tensor index, int out_rows) -> Tensor[]");
  // slot memory (Memory Networks / MemN2N): write in place, soft and hard multi-hop reads
  m.def("slot_write_(Tensor(a!) M, Tensor(b!) C, Tensor(c!) count, Tensor m, Tensor c, str policy) -> ()");
  m.def("slot_read(Tensor query, Tensor M, Tensor C, Tensor count, int hops, Tensor? R) "
        "-> (Tensor, Tensor, Tensor)");
  m.def("_slot_read_bwd(Tensor grad_u, Tensor? grad_attention, Tensor M, Tensor C, Tensor count, "
        "Tensor? R, Tensor saved_u, Tensor attention) -> (Tensor, Tensor, Tensor, Tensor)");
  m.def("slot_read_hard(Tensor query, Tensor M, Tensor Q, Tensor count, int hops) -> (Tensor, Tensor)");
  m.def("_slot_read_hard_bwd(Tensor grad_scores, Tensor query, Tensor M, Tensor Q, Tensor count, "
        "Tensor indices) -> (Tensor, Tensor, Tensor)");
}

// The one TORCH_LIBRARY of memory_ext: every op schema. Implementations register per backend
// (csrc/cpu, csrc/cuda); fake kernels and autograd register from Python (memory_ext/_meta.py,
// memory_ext/_autograd.py).
#include <torch/library.h>

TORCH_LIBRARY(memory_ext, m) {
  m.def("mlp_memory_read(Tensor[] weights, Tensor keys, str activation=\"tanh\") -> Tensor");
  m.def(
      "_mlp_memory_read_bwd(Tensor[] weights, Tensor keys, Tensor grad_reads, str activation) "
      "-> (Tensor[], Tensor)");
  m.def(
      "mlp_memory_write(Tensor[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor? alpha=None, str rule=\"local\", str activation=\"tanh\") -> Tensor[]");
  m.def(
      "mlp_memory_step(Tensor[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor read_keys, Tensor? alpha=None, Tensor? recon_values=None, str rule=\"local\", "
      "str activation=\"tanh\") -> (Tensor[], Tensor, Tensor)");
  m.def(
      "mlp_memory_scan(Tensor[] weights, Tensor write_keys, Tensor[] targets, Tensor beta, "
      "Tensor read_keys, Tensor? alpha=None, Tensor? recon_values=None, str rule=\"local\", "
      "str activation=\"tanh\", int checkpoint_every=16) -> (Tensor, Tensor[], Tensor, Tensor[])");
  m.def(
      "_mlp_memory_scan_bwd(Tensor[] checkpoints, Tensor write_keys, Tensor[] targets, "
      "Tensor beta, Tensor read_keys, Tensor? alpha, Tensor? recon_values, Tensor? grad_reads, "
      "Tensor[] grad_final_weights, Tensor? grad_recon, str rule, str activation, "
      "int checkpoint_every) -> (Tensor[], Tensor, Tensor[], Tensor, Tensor, Tensor, Tensor)");
}

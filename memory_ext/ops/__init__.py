"""The fused-op fronts: one module per op family, each with its fake (meta) kernels and, where
autograd is registered in Python, its backward beside it (docs/layout.md has the call chain).

    mlp_memory.py     mlp_memory_read / write / step / scan (spec 1; autograd in C++:
                      csrc/ops/mlp_memory_autograd.cpp)
    delta_rule/       delta_rule (front.py: recurrent and chunk forms, varlen), the chunk form's
                      op and autograd (chunk.py), delta_rule_step (spec 2)
    slots.py          slot_write_, slot_read, slot_read_hard (spec 3; autograd in Python)
    hash_table.py     IntHashTable over the hash_* ops (spec 4)
    gather_rows.py    gather_rows (spec 4)
    reference.py      the plain-PyTorch oracle every kernel is tested against
    cuda_kernels.py   which raw ops have CUDA kernels

The public names are re-exported by ``memory_ext`` itself; importing this package registers
every fake kernel and Python autograd formula.
"""
from . import delta_rule, gather_rows, hash_table, mlp_memory, reference, slots  # noqa: F401

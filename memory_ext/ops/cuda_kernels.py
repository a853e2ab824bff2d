"""The ops that have a CUDA kernel of their own: the one list the README, the CUDA CI stage
(.ci/cuda_stage.sh) and the tests check the dispatcher against.

A CUDA build that loses a registration (a file left out of CMakeLists.txt, a renamed op) fails
``missing_cuda_kernels()`` on any machine, with or without a GPU: the dispatcher knows which
kernels are registered without running one.
"""
import torch

# torch.ops.memory_ext.<name> with a kernel for the CUDA dispatch key (csrc/cuda/*_cuda.cpp).
# Not listed: slot_write_ (CompositeExplicitAutograd: torch ops on any device) and
# delta_rule_chunk (CPU kernels; on CUDA delta_rule's chunk form runs as torch ops).
CUDA_KERNEL_OPS = (
    # MLP memory (csrc/cuda/mlp_memory.cu)
    "mlp_memory_read",
    "_mlp_memory_read_bwd",
    "mlp_memory_write",
    "mlp_memory_step",
    "mlp_memory_scan",
    "_mlp_memory_scan_bwd",
    "_mlp_memory_step_",
    "_mlp_memory_step_bwd_",
    # delta rule decoding step (csrc/cuda/delta_rule_step.cu)
    "delta_rule_step_",
    # slot memory (csrc/cuda/slot_memory.cu)
    "slot_read",
    "_slot_read_bwd",
    "slot_read_hard",
    "_slot_read_hard_bwd",
    # elastic vocabulary (csrc/cuda/hash_table.cu, gather_rows.cu)
    "hash_lookup_or_insert_",
    "hash_find",
    "hash_erase_",
    "_hash_rebuild_",
    "gather_rows",
)


def has_cuda_kernel(name: str) -> bool:
    """True when torch.ops.memory_ext.<name> has a kernel registered for the CUDA key."""
    return torch._C._dispatch_has_kernel_for_dispatch_key(f"memory_ext::{name}", "CUDA")


def missing_cuda_kernels() -> list:
    """The ops of CUDA_KERNEL_OPS that have no CUDA kernel registered (all of them in a CPU
    build, none in a complete CUDA build)."""
    return [name for name in CUDA_KERNEL_OPS if not has_cuda_kernel(name)]

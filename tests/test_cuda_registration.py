"""Every op that the README says has a CUDA kernel has one registered in a CUDA build
(memory_ext/ops/cuda_kernels.py); checked through the dispatcher, so no GPU is needed."""
import torch

import memory_ext
from memory_ext.ops.cuda_kernels import CUDA_KERNEL_OPS, has_cuda_kernel, missing_cuda_kernels


def test_every_listed_op_is_a_defined_op():
    for name in CUDA_KERNEL_OPS:
        assert torch._C._dispatch_has_kernel_for_dispatch_key(f"memory_ext::{name}", "CPU"), name


def test_cuda_kernels_registered_exactly_when_built_with_cuda():
    missing = missing_cuda_kernels()
    if memory_ext.build_info()["cuda"]:
        assert missing == []
    else:
        assert missing == list(CUDA_KERNEL_OPS)


def test_ops_without_a_cuda_kernel_are_reported():
    # slot_write_ is CompositeExplicitAutograd (no CUDA kernel of its own)
    assert not has_cuda_kernel("slot_write_")
    assert "slot_write_" not in CUDA_KERNEL_OPS


"""memory_ext: fused PyTorch ops for memories a network writes at test time.

The fast-weight MLP memory of Metalearned Neural Memory (Munkhdalai et al. 2019) as fused
CPU / CUDA ops with autograd: ``mlp_memory_read``, ``mlp_memory_write``, ``mlp_memory_step``,
``mlp_memory_scan``; the module ``MLPMemory``; the plain-PyTorch oracle ``memory_ext.reference``.
"""
import torch  # noqa: F401  (loads libtorch before the extension)

from . import _C  # noqa: F401  (registers torch.ops.memory_ext.*)
from . import _meta  # noqa: F401  (fake kernels; MLP autograd: csrc/ops/mlp_memory_autograd.cpp)
from .ops import mlp_memory_read, mlp_memory_scan, mlp_memory_step, mlp_memory_write
from .modules import MLPMemory
from .delta_rule import delta_rule, delta_rule_step
from ._C import TokenTable
from .hash_table import IntHashTable
from .elastic import ElasticEmbedding
from .vocab import ElasticVocab
from .slots import slot_read, slot_read_hard, slot_write_
from .controller import MemoryTransformerBlock, MNMController, mnm_loss

__version__ = _C.build_info()["version"]


def build_info():
    """Return how the compiled core was built.

    Returns a dict with ``version``, ``torch_version`` (the torch it was built against),
    ``cuda`` (CUDA kernels in), ``cuda_archs``, ``cpu_threads`` and ``cpu_isa`` (the CPU kernel
    variant picked for this machine).
    """
    return dict(_C.build_info())


__all__ = [
    "ElasticEmbedding",
    "ElasticVocab",
    "IntHashTable",
    "MLPMemory",
    "MNMController",
    "MemoryTransformerBlock",
    "TokenTable",
    "build_info",
    "delta_rule",
    "delta_rule_step",
    "mlp_memory_read",
    "mlp_memory_scan",
    "mlp_memory_step",
    "mlp_memory_write",
    "mnm_loss",
    "slot_read",
    "slot_read_hard",
    "slot_write_",
]

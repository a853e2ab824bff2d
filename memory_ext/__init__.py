"""memory_ext: fused PyTorch ops for memories a network writes at test time.

Layers (docs/layout.md):
    memory_ext.ops    the fused-op fronts, their fake kernels and Python autograd, and
                      ``reference`` (the plain-PyTorch oracle of docs/spec.md)
    memory_ext.nn     modules: MLPMemory, ElasticEmbedding, ElasticVocab, MNMController, ...
    memory_ext.babi   the bAbI application (data, MemN2N, MemNN, MNM, training, CLI)
    memory_ext.chat   the chatbot application (bot, dialogues, training, CLI, checkpoint)
    memory_ext.bench  ``memory-ext bench``

The names below are the public API; they stay importable from the top level.
"""
import torch  # (loads libtorch before the extension)

from ._torch_check import check_torch

check_torch(torch.__version__)  # the torch the core was built against, before loading it

from . import _C  # noqa: E402  (registers torch.ops.memory_ext.*)
from ._C import TokenTable  # noqa: E402
from .nn.controller import MemoryTransformerBlock, MNMController, mnm_loss
from .nn.elastic_embedding import ElasticEmbedding
from .nn.elastic_vocab import ElasticVocab
from .nn.mlp_memory import MLPMemory
from .ops import reference
from .ops.delta_rule import delta_rule, delta_rule_step
from .ops.gather_rows import gather_rows
from .ops.hash_table import IntHashTable
from .ops.mlp_memory import mlp_memory_read, mlp_memory_scan, mlp_memory_step, mlp_memory_write
from .ops.slots import slot_read, slot_read_hard, slot_write_

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
    "gather_rows",
    "mlp_memory_read",
    "mlp_memory_scan",
    "mlp_memory_step",
    "mlp_memory_write",
    "mnm_loss",
    "reference",
    "slot_read",
    "slot_read_hard",
    "slot_write_",
]

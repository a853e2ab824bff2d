"""Fronts with another library's call conventions over memory_ext's kernels.

    fla.py    ``chunk_delta_rule`` and ``fused_recurrent_delta_rule`` as flash-linear-attention
              (fla.ops.delta_rule) calls them: ``from memory_ext.compat.fla import
              chunk_delta_rule`` (docs/compat_fla.md)
"""
from . import fla  # noqa: F401

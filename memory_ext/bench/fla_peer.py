"""flash-linear-attention (fla), the peer the delta-rule benchmarks compare with, when installed.

On the CPU only fla's naive recurrence runs (fla.ops.delta_rule.naive; the package __init__
imports triton, which CPU machines lack, so that one file is loaded on its own: it needs torch
and einops). On CUDA: fused_recurrent_delta_rule and chunk_delta_rule (Triton; the chunk form
refuses float32, which the benchmark then reports as a row it could not run).
"""
from __future__ import annotations

import importlib.util
import os
from typing import Callable, Dict, Optional

from .. import reference as ref


def load_fla_naive() -> Optional[Callable]:
    """fla's delta_rule_recurrence (head-first [B, H, T, D]), or None if fla or einops is missing."""
    spec = importlib.util.find_spec("fla")
    if spec is None or not spec.submodule_search_locations or importlib.util.find_spec("einops") is None:
        return None
    path = os.path.join(list(spec.submodule_search_locations)[0], "ops", "delta_rule", "naive.py")
    if not os.path.exists(path):
        return None
    mod_spec = importlib.util.spec_from_file_location("fla_delta_rule_naive", path)
    mod = importlib.util.module_from_spec(mod_spec)
    mod_spec.loader.exec_module(mod)
    return getattr(mod, "delta_rule_recurrence", None)


def fla_implementations(device: str) -> Dict[str, Callable[[Dict], tuple]]:
    """Benchmark implementations {name: fn(inputs) -> (o [B, T, H, V], final state)} of fla on
    `device`, on the inputs of a DeltaCase (q, k l2-normalised first, scale K^-0.5)."""
    if device.startswith("cuda"):
        try:
            from fla.ops.delta_rule import chunk_delta_rule, fused_recurrent_delta_rule
        except ImportError:
            return {}
        kw = dict(output_final_state=True, use_qk_l2norm_in_kernel=True)
        return {
            "fla-fused-rec": lambda i: fused_recurrent_delta_rule(i["q"], i["k"], i["v"], i["beta"], **kw),
            "fla-chunk": lambda i: chunk_delta_rule(i["q"], i["k"], i["v"], i["beta"], **kw),
        }
    naive = load_fla_naive()
    if naive is None:
        return {}

    def fla_naive(i):
        hf = lambda x: x.transpose(1, 2)  # noqa: E731  [B, T, H, D] -> head-first
        q, k = ref.l2norm(i["q"]), ref.l2norm(i["k"])
        o, s = naive(hf(q), hf(k), hf(i["v"]), hf(i["beta"]), output_final_state=True)
        return o.transpose(1, 2), s

    return {"fla-naive": fla_naive}

"""Benchmark group "vocab": the elastic vocabulary against the naive ways of doing the same job.

Each measurement has its own setup (a fresh table or module per repetition, not timed), so it
runs here rather than through run_case; the implementations of a measurement are timed
interleaved all the same (round-robin repeats). Rows use the runner's row format; "items/s" is
keys or tokens per second.
"""
from __future__ import annotations

import statistics
from typing import Callable, Dict, List, Optional

import torch

from .. import ElasticEmbedding, IntHashTable, TokenTable
from .timing import time_round_robin


def _time_pair(impls: Dict[str, tuple], device: str, reps: int) -> Dict[str, List[float]]:
    """{name: (setup() -> state, run(state))} -> {name: the reps times of run}, the
    implementations interleaved round-robin (a fresh untimed setup before each call)."""
    timings = time_round_robin({n: r for n, (_, r) in impls.items()}, device, warmup=0,
                               min_time=0.0, min_reps=reps, max_reps=reps,
                               setup={n: s for n, (s, _) in impls.items()})
    return {n: t.times for n, t in timings.items()}


def _row(op: str, shape: str, impl: str, times: List[float], *, base_s: Optional[float] = None,
         items: Optional[float] = None, moved: Optional[float] = None,
         peaks: Optional[Dict] = None, scale: float = 1.0) -> Dict:
    """scale: the timed run did 1/scale of the work in the label (the time is scaled up)."""
    times = sorted(t * scale for t in times)
    med = statistics.median(times)
    q = statistics.quantiles(times, n=4) if len(times) >= 2 else [med, med, med]
    gbs = None if moved is None else moved / med / 1e9
    return {"op": op, "mode": "fwd", "shape": shape, "impl": impl, "median_ms": med * 1e3,
            "iqr_ms": (q[2] - q[0]) * 1e3, "reps": len(times),
            "speedup_vs_eager": None if base_s is None else base_s / med,
            "gflops": None, "pct_peak": None, "gbs": gbs,
            "pct_copy": None if gbs is None or not peaks else 100.0 * gbs / peaks["copy_gbs"],
            "items_per_s": None if items is None else items / med, "peak_mem_mb": None}


def grow_rows(device: str, full: bool, V: int = 50_000, D: int = 512, new: int = 10_000,
              batch: int = 64) -> List[Dict]:
    """10,000 new tokens in batches of 64 into a 50,000 x 512 table, tied output, Adam state."""
    shape = f"V={V} D={D} +{new} tokens in batches of {batch}, tied, Adam"

    def adam_module():
        emb = ElasticEmbedding(V, D, capacity=V, device=device)
        opt = torch.optim.Adam(emb.parameters(), lr=1e-3)
        emb.weight.grad = torch.zeros_like(emb.weight)
        opt.step()  # creates exp_avg / exp_avg_sq [V, D]
        emb.attach_optimizer(opt)
        return emb

    def ours(emb):
        for _ in range(new // batch):
            emb.grow(batch)
        emb.grow(new % batch)

    # the seed's way, kept correct: one concatenated copy of every row-aligned tensor per token
    def concat_setup():
        w = torch.randn(V, D, device=device)
        return {"w": w, "m": torch.zeros_like(w), "v": torch.zeros_like(w)}

    # a few tokens are timed and scaled (each one copies every tensor): all 10,000 would take
    # minutes; the full run times one batch
    timed_tokens = min(batch, new) if full else min(4, new)

    def concat(s):
        for _ in range(timed_tokens):
            row = s["w"].mean(0, keepdim=True)
            s["w"] = torch.nn.Parameter(torch.cat([s["w"], row]))
            s["m"] = torch.cat([s["m"], torch.zeros_like(row)])
            s["v"] = torch.cat([s["v"], torch.zeros_like(row)])

    times = _time_pair({"concat/token": (concat_setup, concat), "fused": (adam_module, ours)},
                       device, 5 if full else 3)
    base, mine = times["concat/token"], times["fused"]
    base_s = statistics.median(base) * new / timed_tokens
    return [_row("vocab_grow", shape, "concat/token", base, base_s=base_s, items=new,
                 scale=new / timed_tokens),
            _row("vocab_grow", shape, "fused", mine, base_s=base_s, items=new)]


def hash_rows(device: str, full: bool, n: int = 1_000_000) -> List[Dict]:
    """lookup_or_insert of 1 M keys, half of them new, into a table holding the other half."""
    g = torch.Generator().manual_seed(0)
    old = torch.randint(0, 2 ** 62, (n // 2,), generator=g)
    keys = torch.cat([old, torch.randint(0, 2 ** 62, (n // 2,), generator=g)])[
        torch.randperm(n, generator=g)]
    shape = f"{n / 1e6:g}M keys (half new) into a table of {n / 2e6:g}M"
    table = IntHashTable(capacity=4 * n, device=device)
    table.lookup_or_insert(old.to(device))
    kd = keys.to(device)

    def setup():
        t = IntHashTable(capacity=table.capacity, device=device)
        t.slots, t.meta = table.slots.clone(), table.meta.clone()
        t._used_bound = table._used_bound
        return t

    impls = {"fused": (setup, lambda t: t.lookup_or_insert(kd))}
    if not device.startswith("cuda"):
        old_list, key_list = old.tolist(), keys.tolist()

        def dict_setup():
            return {k: i for i, k in enumerate(old_list)}

        def dict_run(d):
            for k in key_list:
                if k not in d:
                    d[k] = len(d)
        impls = {"python dict": (dict_setup, dict_run), **impls}
    times = _time_pair(impls, device, 5 if full else 3)
    base_s = statistics.median(times["python dict"]) if "python dict" in times else None
    return [_row("hash_lookup_or_insert", shape, name, t, base_s=base_s, items=n)
            for name, t in times.items()]


def token_table_rows(full: bool, n: int = 1_000_000) -> List[Dict]:
    """TokenTable.add of 1 M tokens (100k distinct) against a Python dict vocabulary."""
    g = torch.Generator().manual_seed(0)
    tokens = [f"w{i}" for i in torch.randint(0, max(1, n // 10), (n,), generator=g).tolist()]
    shape = f"{n / 1e6:g}M tokens, {n / 1e7:g}M distinct"

    def dict_add(state):
        w2i, counts = state
        for t in tokens:
            i = w2i.get(t)
            if i is None:
                i = w2i[t] = len(w2i)
                counts.append(0)
            counts[i] += 1

    times = _time_pair({"python dict": (lambda: ({}, []), dict_add),
                        "fused": (TokenTable, lambda t: t.add(tokens))}, "cpu", 5 if full else 3)
    base, mine = times["python dict"], times["fused"]
    base_s = statistics.median(base)
    return [_row("token_table_add", shape, "python dict", base, base_s=base_s, items=len(tokens)),
            _row("token_table_add", shape, "fused", mine, base_s=base_s, items=len(tokens))]


def compact_rows(device: str, peaks: Dict, full: bool, V: Optional[int] = None,
                 D: int = 512) -> List[Dict]:
    """compact(): one permutation over weight + Adam exp_avg + exp_avg_sq (+ live, counts)."""
    if V is None:
        V = 256 * 1024 if (full or device.startswith("cuda")) else 64 * 1024
    keep = torch.arange(V)[torch.rand(V, generator=torch.Generator().manual_seed(0)) > 0.1]
    remap = torch.full((V,), -1, dtype=torch.int64)
    remap[keep] = torch.arange(keep.numel())
    shape = f"{V / 1024:g}k x {D} rows, Adam state, 90% kept"
    tensors = [torch.randn(V, D, device=device) for _ in range(3)]
    extra = [torch.ones(V, dtype=torch.bool, device=device), torch.zeros(V, dtype=torch.int64, device=device)]
    src = keep.to(device)
    row_bytes = 3 * D * 4 + 1 + 8
    moved = float(V * row_bytes + keep.numel() * row_bytes)  # write all rows, read the kept ones

    def ours(_):
        torch.ops.memory_ext.gather_rows(tensors + extra, src, V)

    def eager(_):  # one index_select and one padding per tensor
        for t in tensors + extra:
            out = t.new_zeros(t.shape)
            out[: src.numel()] = t.index_select(0, src)

    times = _time_pair({"eager": (lambda: None, eager), "fused": (lambda: None, ours)}, device,
                       7 if full else 3)
    base, mine = times["eager"], times["fused"]
    base_s = statistics.median(base)
    return [_row("vocab_compact", shape, "eager", base, base_s=base_s, moved=moved, peaks=peaks),
            _row("vocab_compact", shape, "fused", mine, base_s=base_s, moved=moved, peaks=peaks)]


def run_vocab_group(device: str, peaks: Dict, full: bool) -> List[Dict]:
    print("  running vocab group (grow, hash table, token table, compaction) ...", flush=True)
    rows = grow_rows(device, full) + hash_rows(device, full)
    if not device.startswith("cuda"):
        rows += token_table_rows(full)
    return rows + compact_rows(device, peaks, full)

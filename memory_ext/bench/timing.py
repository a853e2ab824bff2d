"""Timing, memory and machine-peak measurement for the benchmarks."""
from __future__ import annotations

import ctypes
import statistics
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Sequence

import torch


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


@dataclass
class Timing:
    median_s: float
    q1_s: float
    q3_s: float
    reps: int
    times: List[float] = field(default_factory=list, repr=False)  # each call's seconds

    @property
    def iqr_s(self) -> float:
        return self.q3_s - self.q1_s


def _summary(times: List[float]) -> Timing:
    if len(times) >= 4:
        q = statistics.quantiles(times, n=4)
        q1, q3 = q[0], q[2]
    else:
        q1, q3 = min(times), max(times)
    return Timing(statistics.median(times), q1, q3, len(times), list(times))


def round_robin_order(names: Sequence[str], rep: int) -> List[str]:
    """The order of repeat `rep`: names rotated by rep (a, b, c; b, c, a; c, a, b; ...), so each
    implementation runs first, in the middle and last equally often."""
    k = rep % len(names) if names else 0
    return list(names[k:]) + list(names[:k])


FLOOR_REPS = 3  # max_time never cuts the repeats below this


def time_round_robin(fns: Dict[str, Callable[..., object]], device: str, *, warmup: int = 2,
                     min_time: float = 0.4, max_reps: int = 200, min_reps: int = 5,
                     max_time: float = float("inf"),
                     setup: Optional[Dict[str, Callable[[], object]]] = None) -> Dict[str, Timing]:
    """Median and quartiles of each fn() wall time (device-synchronised), the implementations
    interleaved: every repeat runs each fn once, in an order rotated by one per repeat
    (round-robin), so that a burst of load from another process hits all of them alike and the
    ratio of their medians holds. Repeats go on until min_reps are done and min_time (all fns
    together) has passed, or max_reps are done, or max_time has passed and FLOOR_REPS are done.
    setup: {name: fn() -> state}, run untimed before each call, which is then fns[name](state)."""
    names = list(fns)

    def call(name: str) -> float:
        args = () if setup is None else (setup[name](),)
        _sync(device)
        t0 = time.perf_counter()
        fns[name](*args)
        _sync(device)
        return time.perf_counter() - t0

    for _ in range(warmup):
        for name in names:
            call(name)
    times: Dict[str, List[float]] = {name: [] for name in names}
    start = time.perf_counter()
    rep = 0
    while rep < max_reps and (rep < min_reps or time.perf_counter() - start < min_time):
        if rep >= FLOOR_REPS and time.perf_counter() - start > max_time:
            break
        for name in round_robin_order(names, rep):
            times[name].append(call(name))
        rep += 1
    return {name: _summary(t) for name, t in times.items()}


def time_fn(fn: Callable[[], object], device: str, **kw) -> Timing:
    """Median and quartiles of fn() wall time (device-synchronised) over repeated calls
    (time_round_robin of one function; same keywords)."""
    return time_round_robin({"fn": fn}, device, **kw)["fn"]


class _MallInfo2(ctypes.Structure):
    _fields_ = [(n, ctypes.c_size_t) for n in (
        "arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks", "fsmblks", "uordblks",
        "fordblks", "keepcost")]


def _heap_in_use():
    """Bytes malloc has handed out and not taken back (glibc mallinfo2), or None."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        f = libc.mallinfo2
    except (OSError, AttributeError):
        return None
    f.restype = _MallInfo2
    m = f()
    return int(m.uordblks + m.hblkhd)


def fwd_bwd_peak_bytes(forward: Callable[[], object], backward: Callable[[object], None],
                       device: str):
    """Memory of one forward + backward above what was live before it.

    CUDA: the allocator's true peak. CPU: the larger of the heap in use right after the forward
    (its outputs and everything saved for the backward) and right after the backward (the
    gradients); transient buffers freed inside a single op are not seen on the CPU.
    """
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        base = torch.cuda.memory_allocated()
        torch.cuda.reset_peak_memory_stats()
        out = forward()
        backward(out)
        torch.cuda.synchronize()
        return torch.cuda.max_memory_allocated() - base
    base = _heap_in_use()
    if base is None:
        return None
    out = forward()
    after_fwd = _heap_in_use() - base
    backward(out)
    after_bwd = _heap_in_use() - base
    del out
    return max(after_fwd, after_bwd, 0)


def machine_peaks(device: str, quick: bool = True) -> dict:
    """Measured limits of this machine in this run: fp32 matmul GFLOP/s and copy GB/s."""
    n = 2048 if device.startswith("cuda") or not quick else 1024
    if device.startswith("cuda"):
        n = 8192
    a = torch.randn(n, n, device=device)
    b = torch.randn(n, n, device=device)
    t = time_fn(lambda: torch.mm(a, b), device, min_time=0.5, max_reps=50)
    gflops = 2 * n ** 3 / t.median_s / 1e9
    numel = (256 if device.startswith("cuda") else 32) * 1024 * 1024 // 4
    src = torch.empty(numel, device=device)
    dst = torch.empty_like(src)
    tc = time_fn(lambda: dst.copy_(src), device, min_time=0.5, max_reps=50)
    gbs = 2 * numel * 4 / tc.median_s / 1e9  # read + write
    return {"matmul_fp32_gflops": gflops, "matmul_n": n, "copy_gbs": gbs,
            "copy_mb": numel * 4 / 1e6}

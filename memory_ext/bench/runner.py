"""Runs the benchmark cases and prints / saves the table."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import textwrap
import time
from typing import Dict, List, Optional

import torch

from .cases import CUDA_CASES, FULL_CASES, QUICK_CASES, forward_runner, fwd_bwd_runner
from .timing import fwd_bwd_peak_bytes, machine_peaks, time_round_robin


def _git_sha() -> str:
    """SHA of the checkout the package (or, when installed, the working directory) is in."""
    for where in (os.path.dirname(os.path.abspath(__file__)), os.getcwd()):
        try:
            sha = subprocess.run(["git", "-C", where, "rev-parse", "--short", "HEAD"], text=True,
                                 capture_output=True, timeout=5).stdout.strip()
        except (OSError, subprocess.SubprocessError):
            continue
        if sha:
            return sha
    return "unknown"


def header(device: str) -> Dict:
    from .. import build_info
    info = build_info()
    dev = torch.cuda.get_device_name() if device.startswith("cuda") else (
        platform.processor() or platform.machine())
    return {
        "device": device, "device_name": dev, "torch": torch.__version__,
        "cuda": torch.version.cuda, "cpu_threads": torch.get_num_threads(),
        "memory_ext": info["version"], "cpu_isa": info["cpu_isa"],
        "cuda_kernels": info["cuda"], "git_sha": _git_sha(),
        "time": time.strftime("%Y-%m-%d %H:%M:%S"),
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }


def _error(e: Exception) -> str:
    return f"{type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}"


def run_case(case, device: str, peaks: Dict, min_time: float, compile: bool = True,
             warmup: int = 1, min_reps: int = 5, max_time: float = float("inf")) -> List[Dict]:
    """Rows of one case: every implementation, every mode. The implementations of a mode are
    timed interleaved (time_round_robin: each repeat runs each of them once, order rotated), so
    the x-eager ratios come from medians that saw the same load. min_time is per implementation,
    max_time (seconds, all implementations) cuts min_reps down to 3 repeats;
    compile=False leaves out the torch.compile baseline. Before the timing each implementation
    runs once (torch.compile compiles there), then `warmup` untimed rounds; after it, for
    fwd+bwd, once more to measure its memory."""
    rows = []
    impls = {n: f for n, f in case.implementations(device).items() if compile or n != "compile"}
    for mode in case.modes:
        grad = mode == "fwd+bwd"
        inputs = case.make_inputs(device, requires_grad=grad)
        fwd_flops = case.forward_flops()  # None: not counted (many small ops)
        flops = None if fwd_flops is None else fwd_flops * (3 if grad else 1)
        runs, parts, errors = {}, {}, {}
        for name, fn in impls.items():
            try:
                if grad:
                    run, fwd, bwd = fwd_bwd_runner(case, fn, inputs)
                else:
                    run = forward_runner(case, fn, inputs)
                run()  # the first call (torch.compile compiles here): does it run at all?
                runs[name] = run
                parts[name] = (fwd, bwd) if grad else None
            except Exception as e:  # a baseline that cannot run this case is reported, not hidden
                if name.startswith("fused"):  # ours must run
                    raise
                errors[name] = _error(e)
        timings = time_round_robin(runs, device, warmup=warmup, min_time=min_time * len(runs),
                                   min_reps=min_reps, max_time=max_time)
        eager_t = timings["eager"].median_s
        for name in impls:
            base = {"op": case.op_name, "mode": mode, "shape": case.label(), "impl": name}
            if name in errors:
                rows.append(dict(base, median_ms=None, iqr_ms=None, reps=0, speedup_vs_eager=None,
                                 gflops=None, pct_peak=None, gbs=None, pct_copy=None,
                                 peak_mem_mb=None, error=errors[name]))
                continue
            t = timings[name]
            # memory after the timing: some ops keep workspaces that grow over the first calls
            peak = fwd_bwd_peak_bytes(*parts[name], device) if grad else None
            gflops = None if flops is None else flops / t.median_s / 1e9
            # memory-bound ops (bytes_moved defined) also get GB/s against the measured copy
            moved = getattr(case, "bytes_moved", lambda: None)() if mode == "fwd" else None
            gbs = None if moved is None else moved / t.median_s / 1e9
            rows.append(dict(
                base, median_ms=t.median_s * 1e3, iqr_ms=t.iqr_s * 1e3,
                reps=t.reps, speedup_vs_eager=eager_t / t.median_s,
                gflops=gflops,
                pct_peak=None if gflops is None else 100.0 * gflops / peaks["matmul_fp32_gflops"],
                gbs=gbs,
                pct_copy=None if gbs is None or "copy_gbs" not in peaks
                else 100.0 * gbs / peaks["copy_gbs"],
                peak_mem_mb=None if peak is None else peak / 1e6))
    return rows


WIDTH = 100  # every line of the default output fits this many columns

# (row key, heading, format); the default table shows the first group, --full all of them.
# A column no row has a value for is left out.
COLUMNS = [("median_ms", "median ms", "{:.3f}"), ("speedup_vs_eager", "x eager", "{:.1f}"),
           ("gflops", "GFLOP/s", "{:.2f}"), ("items_per_s", "items/s", "si")]
FULL_COLUMNS = [("iqr_ms", "IQR ms", "{:.3f}"), ("reps", "reps", "{}"),
                ("pct_peak", "% peak", "{:.1f}"), ("gbs", "GB/s", "{:.1f}"),
                ("pct_copy", "% copy", "{:.1f}"), ("peak_mem_mb", "fwd+bwd MB", "{:.2f}")]


def _clip(line: str, width: int = WIDTH) -> str:
    return line if len(line) <= width else line[:width - 3] + "..."


def _si(v: float) -> str:
    """3 significant digits and a k / M / G suffix: 3.33, 457, 4.57k, 15.3M."""
    for div, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= div:
            return f"{v / div:.3g}{suffix}"
    return f"{v:.3g}"


def _cell(r: Dict, key: str, fmt: str) -> str:
    v = r.get(key)
    if v is None:
        return "-"
    return _si(v) if fmt == "si" else fmt.format(v)


def format_table(rows: List[Dict], full: bool = False) -> str:
    """The rows grouped by case: a line `op  shape`, then a line per mode and implementation.
    Default: median ms, x eager (from the interleaved medians), GFLOP/s, items/s, within
    WIDTH columns; full=True adds IQR, repeats, % of peak, GB/s, % of copy and memory."""
    cols = [c for c in COLUMNS + (FULL_COLUMNS if full else [])
            if any(r.get(c[0]) is not None for r in rows)]
    head = ["mode", "impl"] + [h for _, h, _ in cols]
    body = [[r["mode"], r["impl"]]
            + ([] if r.get("error") else [_cell(r, k, f) for k, _, f in cols]) for r in rows]
    widths = [max(len(c[i]) for c in [head] + body if i < len(c)) for i in range(len(head))]

    def line(c: List[str], error: str = "") -> str:
        out = "  " + "  ".join(x.ljust(w) for x, w in zip(c[:2], widths))
        if error:  # one cell over the number columns; the whole message is in --json
            return _clip(f"{out}  could not run: {error}")
        return out + "".join("  " + x.rjust(w) for x, w in zip(c[2:], widths[2:]))

    lines = [line(head)]
    case = None
    for r, c in zip(rows, body):
        if (r["op"], r["shape"]) != case:
            case = (r["op"], r["shape"])
            lines.append(_clip(f"{r['op']}  {r['shape']}"))
        lines.append(line(c, r.get("error") or ""))
    return "\n".join(lines)


def header_lines(head: Dict) -> List[str]:
    """Two short lines: what ran where, and the machine's measured peaks (the rest: --json)."""
    p = head["machine_peak"]
    where = head["device_name"] + (f", CUDA {head['cuda']}" if head["device"].startswith("cuda")
                                   else f" {head['cpu_isa']}, {head['cpu_threads']} threads")
    lines = [_clip(f"memory-ext bench  memory_ext {head['memory_ext']} ({head['git_sha']})  "
                   f"torch {head['torch']}  {head['device']}: {where}"),
             _clip(f"machine peaks (this run): fp32 matmul {p['matmul_fp32_gflops']:.1f} GFLOP/s "
                   f"(n={p['matmul_n']}), copy {p['copy_gbs']:.1f} GB/s")]
    if not head["device"].startswith("cuda") and head["load_avg_1m"] >= (head["cpu_count"] or 1):
        lines.append(textwrap.fill(
            f"note: load average {head['load_avg_1m']:.1f} on {head['cpu_count']} cores before the "
            "run: other processes compete for the CPU. Ops of many small multi-threaded steps (the "
            "eager rows) slow down most, so the x eager ratios come out too high.", WIDTH))
    return lines


def notes(full: bool, compiled: bool) -> str:
    text = ("x eager: eager (or the named baseline's) median / this median; the implementations "
            "of a case are timed interleaved (round-robin repeats, medians per implementation). "
            "GFLOP/s: algorithmic forward FLOPs (fwd+bwd counted as 3x forward). items/s: keys "
            "or tokens per second (vocab group; concat/token: a few tokens timed, scaled to all).")
    if full:
        text += (" % peak: of the fp32 matmul above. GB/s (memory-bound ops): bytes that must "
                 "move, % copy: of the copy above. fwd+bwd MB: memory above the inputs (CPU: heap in use "
                 "after the forward and after the backward; CUDA: allocator peak).")
    else:
        text += " IQR, repeats, % of peak, GB/s, memory: --full, or every field with --json FILE."
    if not compiled:
        text += (" torch.compile baselines: --full (compiling one graph costs 10-20 s on a 2-core "
                 "CPU, and the cases have about 15).")
    return textwrap.fill(text, WIDTH)


def _progress(msg: str) -> None:
    print(_clip("  " + msg), flush=True)


def run(device: str = "cpu", full: bool = False, json_path: Optional[str] = None,
        ops: Optional[List[str]] = None, sweep: Optional[str] = None,
        out_dir: str = "bench-out") -> Dict:
    """The quick run (CPU): the QUICK cases, no torch.compile baseline, at least 5 interleaved
    repeats (3 when a case would run past its time budget). --full: the FULL cases with
    torch.compile and longer timing. CUDA: the CUDA cases, with torch.compile."""
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("memory-ext bench: --device cuda but torch sees no CUDA device")
    torch.manual_seed(0)
    head = header(device)
    peaks = machine_peaks(device, quick=not full)
    head["machine_peak"] = peaks
    for line in header_lines(head):
        print(line, flush=True)
    if sweep:
        from .sweep import run_sweep
        rows = run_sweep(sweep, device, peaks, out_dir, full=full, ops=ops)
        print(format_table(rows, full=full), flush=True)
        with open(os.path.join(out_dir, "header.json"), "w") as f:
            json.dump(head, f, indent=2)
        print(f"saved {out_dir}/sweep_{sweep}.json, {out_dir}/sweep_{sweep}_*.png", flush=True)
        return {"header": head, "rows": rows}
    cuda = device.startswith("cuda")
    cases = CUDA_CASES if cuda else (FULL_CASES if full else QUICK_CASES)
    if ops:
        cases = [c for c in cases if c.op_name in ops or getattr(c, "op", None) in ops]
    compiled = full or cuda
    # quick: the first call of each implementation is its only warm-up on the CPU (a GPU gets a
    # round more: lazy handles, autotuning); a slow case stops at 3 repeats after 2 s
    timing = dict(min_time=1.0, warmup=1) if full else dict(
        min_time=0.3, warmup=1 if cuda else 0, max_time=2.0)
    head["timing"] = dict(timing, compile=compiled, order="round-robin", min_reps=5)
    rows: List[Dict] = []
    for case in cases:
        _progress(f"running {case.op_name} {case.label()} ...")
        rows.extend(run_case(case, device, peaks, compile=compiled, **timing))
    if not ops or "vocab" in ops:
        from .vocab_bench import run_vocab_group
        rows.extend(run_vocab_group(device, peaks, full))
    print(format_table(rows, full=full), flush=True)
    print(notes(full, compiled), flush=True)
    result = {"header": head, "rows": rows}
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"saved {json_path}", flush=True)
    return result

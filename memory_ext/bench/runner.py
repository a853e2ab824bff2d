"""Runs the benchmark cases and prints / saves the table."""
from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from typing import Dict, List, Optional

import torch

from .cases import CUDA_CASES, FULL_CASES, QUICK_CASES, forward_runner, fwd_bwd_runner
from .timing import fwd_bwd_peak_bytes, machine_peaks, time_fn


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
    }


def run_case(case, device: str, peaks: Dict, min_time: float) -> List[Dict]:
    rows = []
    impls = case.implementations(device)
    for mode in case.modes:
        grad = mode == "fwd+bwd"
        inputs = case.make_inputs(device, requires_grad=grad)
        fwd_flops = case.forward_flops()  # None: not counted (many small ops)
        flops = None if fwd_flops is None else fwd_flops * (3 if grad else 1)
        results = {}
        for name, fn in impls.items():
            try:
                if grad:
                    run, fwd, bwd = fwd_bwd_runner(case, fn, inputs)
                else:
                    run = forward_runner(case, fn, inputs)
                t = time_fn(run, device, min_time=min_time)
                peak = fwd_bwd_peak_bytes(fwd, bwd, device) if grad else None
                results[name] = (t, peak)
            except Exception as e:  # a baseline that cannot run this case is reported, not hidden
                if name.startswith("fused"):  # ours must run
                    raise
                results[name] = (None, f"{type(e).__name__}: {str(e).splitlines()[0][:120]}")
        eager_t = results["eager"][0].median_s
        for name, (t, peak) in results.items():
            if t is None:
                rows.append({"op": case.op_name, "mode": mode, "shape": case.label(),
                             "impl": name, "median_ms": None, "iqr_ms": None, "reps": 0,
                             "speedup_vs_eager": None, "gflops": None, "pct_peak": None,
                             "gbs": None, "pct_copy": None, "peak_mem_mb": None, "error": peak})
                continue
            gflops = None if flops is None else flops / t.median_s / 1e9
            # memory-bound ops (bytes_moved defined) also get GB/s against the measured copy
            moved = getattr(case, "bytes_moved", lambda: None)() if mode == "fwd" else None
            gbs = None if moved is None else moved / t.median_s / 1e9
            rows.append({
                "op": case.op_name, "mode": mode, "shape": case.label(),
                "impl": name, "median_ms": t.median_s * 1e3, "iqr_ms": t.iqr_s * 1e3,
                "reps": t.reps, "speedup_vs_eager": eager_t / t.median_s,
                "gflops": gflops,
                "pct_peak": None if gflops is None else 100.0 * gflops / peaks["matmul_fp32_gflops"],
                "gbs": gbs,
                "pct_copy": None if gbs is None or "copy_gbs" not in peaks
                else 100.0 * gbs / peaks["copy_gbs"],
                "peak_mem_mb": None if peak is None else peak / 1e6,
            })
    return rows


def format_table(rows: List[Dict]) -> str:
    cols = [("op", "op", "{}"), ("mode", "mode", "{}"), ("shape", "shape", "{}"),
            ("impl", "impl", "{}"), ("median_ms", "median ms", "{:.3f}"),
            ("iqr_ms", "IQR ms", "{:.3f}"), ("speedup_vs_eager", "x eager", "{:.1f}"),
            ("gflops", "GFLOP/s", "{:.2f}"), ("pct_peak", "% peak", "{:.1f}"),
            ("gbs", "GB/s", "{:.1f}"), ("pct_copy", "% copy", "{:.1f}"),
            ("items_per_s", "M items/s", "{:.2f}"), ("peak_mem_mb", "fwd+bwd MB", "{:.2f}")]
    cells = [[h for _, h, _ in cols]]
    for r in rows:
        cells.append([("-" if r.get(k) is None else
                       f.format(r[k] / 1e6 if k == "items_per_s" else r[k])) for k, _, f in cols])
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    lines = []
    for j, row in enumerate(cells):
        lines.append("| " + " | ".join(c.ljust(w) for c, w in zip(row, widths)) + " |")
        if j == 0:
            lines.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for r in rows:
        if r.get("error"):
            lines.append(f"  {r['impl']} could not run {r['op']} {r['mode']} {r['shape']}: {r['error']}")
    return "\n".join(lines)


def run(device: str = "cpu", full: bool = False, json_path: Optional[str] = None,
        ops: Optional[List[str]] = None, sweep: Optional[str] = None,
        out_dir: str = "bench-out") -> Dict:
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit("memory-ext bench: --device cuda but torch sees no CUDA device")
    torch.manual_seed(0)
    head = header(device)
    peaks = machine_peaks(device, quick=not full)
    head["machine_peak"] = peaks
    print("memory-ext bench  " + "  ".join(f"{k}={v}" for k, v in head.items() if k != "machine_peak"),
          flush=True)
    print(f"machine peak (this run): fp32 matmul {peaks['matmul_fp32_gflops']:.1f} GFLOP/s "
          f"(n={peaks['matmul_n']}), copy {peaks['copy_gbs']:.1f} GB/s", flush=True)
    if sweep:
        from .sweep import run_sweep
        rows = run_sweep(sweep, device, peaks, out_dir, full=full, ops=ops)
        print(format_table(rows), flush=True)
        with open(os.path.join(out_dir, "header.json"), "w") as f:
            json.dump(head, f, indent=2)
        print(f"saved {out_dir}/sweep_{sweep}.json, {out_dir}/sweep_{sweep}_*.png", flush=True)
        return {"header": head, "rows": rows}
    cases = CUDA_CASES if device.startswith("cuda") else (FULL_CASES if full else QUICK_CASES)
    if ops:
        cases = [c for c in cases if c.op_name in ops or getattr(c, "op", None) in ops]
    min_time = 1.0 if full else 0.3
    rows: List[Dict] = []
    for case in cases:
        print(f"  running {case.op_name} {case.label()} ...", flush=True)
        rows.extend(run_case(case, device, peaks, min_time))
    if not ops or "vocab" in ops:
        from .vocab_bench import run_vocab_group
        rows.extend(run_vocab_group(device, peaks, full))
    print(format_table(rows), flush=True)
    print("GFLOP/s: algorithmic forward FLOPs (fwd+bwd counted as 3x forward); % peak: of the "
          "fp32 matmul above. GB/s (memory-bound ops): bytes that must move, % copy: of the copy "
          "above. M items/s: keys or tokens per second (vocab group; concat/token: one batch "
          "timed, scaled to all tokens). fwd+bwd MB: memory above the inputs (CPU: heap in use after the "
          "forward and after the backward; CUDA: allocator peak).", flush=True)
    result = {"header": head, "rows": rows}
    if json_path:
        os.makedirs(os.path.dirname(os.path.abspath(json_path)), exist_ok=True)
        with open(json_path, "w") as f:
            json.dump(result, f, indent=2)
        print(f"saved {json_path}", flush=True)
    return result

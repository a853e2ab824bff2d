"""`memory-ext bench --sweep T|d|B`: how cost grows with the work, per op and implementation,
saved as JSON and drawn as PNG plots under one output folder."""
from __future__ import annotations

import json
import os
from typing import Dict, List

from .delta_cases import DeltaCase
from .mlp_cases import MlpCase
from .runner import run_case

# dim -> op -> (swept values, case factory); quick lists (the --full lists are longer)
SWEEPS: Dict[str, Dict[str, tuple]] = {
    "T": {
        "mlp_memory_scan": ((32, 64, 128, 256), lambda t: MlpCase("scan", B=4, T=t, H=4, widths=(64,) * 4)),
        "delta_rule": ((128, 256, 512, 1024), lambda t: DeltaCase(B=2, T=t, H=4, K=64, V=64)),
    },
    "d": {
        "mlp_memory_scan": ((16, 32, 64, 128), lambda d: MlpCase("scan", B=4, T=64, H=4, widths=(d,) * 4)),
        "delta_rule": ((16, 32, 64, 128), lambda d: DeltaCase(B=2, T=256, H=4, K=d, V=d)),
    },
    "B": {
        "mlp_memory_scan": ((1, 2, 4, 8), lambda b: MlpCase("scan", B=b, T=64, H=4, widths=(64,) * 4)),
        "delta_rule": ((1, 2, 4, 8), lambda b: DeltaCase(B=b, T=256, H=4, K=64, V=64)),
    },
}
FULL_VALUES = {"T": {"mlp_memory_scan": (32, 64, 128, 256, 512, 1024),
                     "delta_rule": (128, 256, 512, 1024, 2048, 4096)},
               "d": {"mlp_memory_scan": (16, 32, 64, 128, 256), "delta_rule": (16, 32, 64, 128, 256)},
               "B": {"mlp_memory_scan": (1, 2, 4, 8, 16, 32), "delta_rule": (1, 2, 4, 8, 16)}}


def run_sweep(dim: str, device: str, peaks: Dict, out_dir: str, full: bool = False,
              ops=None, min_time: float = 0.2) -> List[Dict]:
    """Rows of every case of the sweep (each with `dim` and `value`), saved to
    out_dir/sweep_<dim>.json and drawn to out_dir/sweep_<dim>_<op>.png."""
    if dim not in SWEEPS:
        raise ValueError(f"--sweep must be one of {sorted(SWEEPS)}, got {dim!r}")
    os.makedirs(out_dir, exist_ok=True)
    rows: List[Dict] = []
    for op, (values, make) in SWEEPS[dim].items():
        if ops and op not in ops:
            continue
        if full:
            values = FULL_VALUES[dim][op]
        for value in values:
            case = make(value)
            print(f"  sweep {dim}={value}: {case.op_name} {case.label()} ...", flush=True)
            for r in run_case(case, device, peaks, min_time):
                rows.append(dict(r, dim=dim, value=value))
    with open(os.path.join(out_dir, f"sweep_{dim}.json"), "w") as f:
        json.dump(rows, f, indent=2)
    plot_sweep(rows, dim, out_dir)
    return rows


def plot_sweep(rows: List[Dict], dim: str, out_dir: str) -> List[str]:
    """One PNG per op: median time against the swept value, a line per (impl, mode)."""
    try:
        import matplotlib
    except ImportError as e:
        raise SystemExit("memory-ext bench --sweep draws its plots with matplotlib: "
                         "pip install matplotlib (or the package's [bench] extra)") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    paths = []
    for op in sorted({r["op"] for r in rows}):
        fig, ax = plt.subplots(figsize=(6, 4))
        lines = sorted({(r["impl"], r["mode"]) for r in rows if r["op"] == op})
        for impl, mode in lines:
            pts = sorted((r["value"], r["median_ms"]) for r in rows
                         if r["op"] == op and r["impl"] == impl and r["mode"] == mode
                         and r["median_ms"] is not None)
            if pts:
                ax.plot([p[0] for p in pts], [p[1] for p in pts], marker="o",
                        linestyle="-" if mode == "fwd" else "--", label=f"{impl} {mode}")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xlabel(dim)
        ax.set_ylabel("median time (ms)")
        ax.set_title(f"{op}: cost against {dim}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        path = os.path.join(out_dir, f"sweep_{dim}_{op}.png")
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths

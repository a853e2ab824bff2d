"""Writes REPORT_DIR/report.json for tools/gpu_check.sh from what its steps left there:
steps.tsv (name, rc or "skipped", seconds per line), ptxas.json, bench.json, nvidia-smi.log.

    python tools/gpu_report.py REPORT_DIR --status ok|failed|no_gpu --message TEXT [--seconds S]

report.json: {"status", "message", "seconds", "gpu", "torch", "python", "steps": [{"name",
"rc", "seconds", "log"}], "ptxas": [...] or null, "bench": {...} or null}. Prints a summary.
"""
import argparse
import json
import os
import platform
import sys

STATUSES = ("ok", "failed", "no_gpu")


def read_steps(path):
    steps = []
    if not os.path.exists(path):
        return steps
    with open(path) as f:
        for line in f:
            parts = line.rstrip("\n").split("\t")
            if len(parts) != 3:
                continue
            name, rc, secs = parts
            steps.append(dict(name=name, rc=int(rc) if rc.lstrip("-").isdigit() else rc,
                              seconds=int(secs), log=f"{name}.log"))
    return steps


def _json_or_none(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def _torch_version():
    try:
        import torch
        return f"{torch.__version__} (CUDA {torch.version.cuda})"
    except ImportError:
        return None


def build_report(out_dir, status, message, seconds=None):
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}, got {status!r}")
    smi = os.path.join(out_dir, "nvidia-smi.log")
    gpu = None
    if os.path.exists(smi):
        with open(smi, errors="replace") as f:
            gpu = f.read().strip() or None
    return dict(status=status, message=message, seconds=seconds, gpu=gpu,
                torch=_torch_version(), python=platform.python_version(),
                steps=read_steps(os.path.join(out_dir, "steps.tsv")),
                ptxas=_json_or_none(os.path.join(out_dir, "ptxas.json")),
                bench=_json_or_none(os.path.join(out_dir, "bench.json")))


def main(argv=None):
    ap = argparse.ArgumentParser(description="write report.json of tools/gpu_check.sh")
    ap.add_argument("out_dir")
    ap.add_argument("--status", required=True, choices=STATUSES)
    ap.add_argument("--message", default="")
    ap.add_argument("--seconds", type=int)
    a = ap.parse_args(argv)
    if not os.path.isdir(a.out_dir):
        print(f"gpu_report: no such folder {a.out_dir}", file=sys.stderr)
        return 2
    rep = build_report(a.out_dir, a.status, a.message, a.seconds)
    with open(os.path.join(a.out_dir, "report.json"), "w") as f:
        json.dump(rep, f, indent=1)
    print(f"gpu_check report: {a.status}: {a.message}")
    for s in rep["steps"]:
        print(f"  {s['name']:<12} rc={s['rc']!s:<8} {s['seconds']:>4} s  {s['log']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

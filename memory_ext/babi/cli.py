"""`memory-ext babi`: train one model per bAbI task, evaluate on the test files, print and save
(JSON + PNG bar chart) the per-task test error next to the paper's column."""
from __future__ import annotations

import argparse
import json
import os
from typing import Dict, List, Optional

from .. import cli_checks as check
from ..cli_checks import UserError


def parse_tasks(spec: str) -> List[int]:
    """'1-20', '1,2,3' or '1-3,7' -> sorted task ids (each in 1..20); else a UserError."""
    out = set()
    try:
        for part in spec.split(","):
            part = part.strip()
            if "-" in part:
                a, b = part.split("-", 1)
                out.update(range(int(a), int(b) + 1))
            elif part:
                out.add(int(part))
    except ValueError:
        out = set()
    bad = [t for t in out if not 1 <= t <= 20]
    if bad or not out:
        raise UserError(f"--tasks must name tasks in 1..20 (e.g. 1-20, 1,2,3), got {spec!r}")
    return sorted(out)


def check_arguments(args: argparse.Namespace) -> List[int]:
    """Every user error of `memory-ext babi` before any training (UserError naming the flag);
    every task's files are read and parsed here. Returns the task ids."""
    from .data import load_task

    for name, low in (("epochs", 1), ("restarts", 1), ("linear_start_epochs", 0), ("weight_decay", 0),
                      ("think_steps", 0), ("threads", 0)):
        check.at_least(args, name, low)
    tasks = parse_tasks(args.tasks)
    check.input_dir(args.data, "--data")
    check.output_dir(args.out, "--out")
    for t in tasks:
        try:
            train, test = load_task(args.data, t, args.split)
        except (OSError, UnicodeDecodeError, ValueError) as e:  # missing, unreadable or malformed
            raise UserError(f"--data: {e}") from None
        if not train or not test:
            raise UserError(f"--data: task {t} ({args.split}) has no {'training' if not train else 'test'} "
                            f"questions")
    return tasks


DEFAULT_EPOCHS = {"memn2n": 100, "memnn": 300, "mnm": 20}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", choices=["memn2n", "memnn", "mnm"], default="memn2n")
    p.add_argument("--tasks", default="1-20", help="e.g. 1-20, 1,2,3 (default 1-20)")
    p.add_argument("--data", required=True, help="a tasks_1-20_v1-2-style folder (holding en/, en-10k/)")
    p.add_argument("--split", choices=["en", "en-10k"], default="en")
    p.add_argument("--epochs", type=int, default=None,
                   help="default: memn2n 100, memnn 300, mnm 20")
    p.add_argument("--linear-start-epochs", type=int, default=20,
                   help="memn2n: epochs with the softmax removed before --epochs (0: off)")
    p.add_argument("--think-steps", type=int, default=2,
                   help="mnm: extra question steps before the answer (more chained reads)")
    p.add_argument("--weight-decay", type=float, default=0.0,
                   help="mnm: AdamW's decoupled weight decay (default 0: plain Adam)")
    p.add_argument("--restarts", type=int, default=1, help="models per task; the best on validation is kept")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--out", default="babi-out", help="folder for results.json and errors.png")


def _plot(rows: List[Dict], paper_name: str, path: str) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    tasks = [r["task"] for r in rows]
    x = range(len(tasks))
    fig, ax = plt.subplots(figsize=(max(6, 0.6 * len(tasks)), 3.5))
    ax.bar([i - 0.2 for i in x], [r["test_error_pct"] for r in rows], 0.4, label="memory_ext")
    if all(r.get("paper_pct") is not None for r in rows):
        ax.bar([i + 0.2 for i in x], [r["paper_pct"] for r in rows], 0.4, label=paper_name)
    ax.axhline(5.0, color="gray", lw=0.8, ls="--")
    ax.set_xticks(list(x))
    ax.set_xticklabels([str(t) for t in tasks])
    ax.set_xlabel("bAbI task")
    ax.set_ylabel("test error %")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def run(args: argparse.Namespace) -> Dict:
    import torch
    from tqdm import tqdm

    from .memn2n_train import PAPER_MEMN2N_PE_LS_RN, train_memn2n
    from .memnn import PAPER_MEMNN_STRONG, train_memnn

    if args.epochs is None:
        args.epochs = DEFAULT_EPOCHS[args.model]
    tasks = check_arguments(args)
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.model == "memn2n":
        paper, paper_name = PAPER_MEMN2N_PE_LS_RN, "MemN2N PE LS RN (paper)"
        train = lambda t, bar: train_memn2n(args.data, t, split=args.split, epochs=args.epochs,  # noqa: E731
                                            restarts=args.restarts, seed=args.seed,
                                            linear_start_epochs=args.linear_start_epochs,
                                            progress=bar.update)
    elif args.model == "mnm":
        from .mnm import train_mnm
        paper, paper_name = {}, "MNM (no paper column: one model per task here)"
        train = lambda t, bar: train_mnm(args.data, t, split=args.split, epochs=args.epochs,  # noqa: E731
                                         restarts=args.restarts, seed=args.seed,
                                         think_steps=args.think_steps,
                                         weight_decay=args.weight_decay, progress=bar.update)
    else:
        paper, paper_name = PAPER_MEMNN_STRONG, "MemNN strong supervision (paper)"
        train = lambda t, bar: train_memnn(args.data, t, split=args.split, epochs=args.epochs,  # noqa: E731
                                           restarts=args.restarts, seed=args.seed,
                                           progress=bar.update)
    lead = int(os.environ.get("RANK", "0")) == 0
    say = print if lead else (lambda *a, **k: None)
    per_restart = args.epochs + (args.linear_start_epochs if args.model == "memn2n" else 0)
    rows = []
    for t in tasks:
        with tqdm(total=per_restart * args.restarts, desc=f"task {t:2d}", leave=False,
                  disable=not lead) as bar:
            r = train(t, bar)
        p = paper.get(t) if isinstance(paper, dict) else paper[t - 1]
        rows.append({"task": t, "test_error_pct": 100 * r["test_error"],
                     "val_error_pct": 100 * r["val_error"], "paper_pct": p,
                     "seconds": r["seconds"], "restarts": r["restarts"]})
        say(f"task {t:2d}: test error {100 * r['test_error']:5.1f}%  (paper "
              f"{'-' if p is None else f'{p:.1f}%'})  {r['seconds']:.0f} s", flush=True)
    errs = [r["test_error_pct"] for r in rows]
    summary = {"model": args.model, "split": args.split, "tasks": tasks, "epochs": args.epochs,
               "restarts": args.restarts, "seed": args.seed,
               "mean_error_pct": sum(errs) / len(errs), "failed_tasks": sum(e > 5.0 for e in errs),
               "seconds": sum(r["seconds"] for r in rows)}
    known = [r["paper_pct"] for r in rows if r["paper_pct"] is not None]
    if len(known) == len(rows):
        summary["paper_mean_error_pct"] = sum(known) / len(known)
        summary["paper_failed_tasks"] = sum(e > 5.0 for e in known)
    say(f"mean test error {summary['mean_error_pct']:.1f}% over {len(rows)} tasks, "
          f"failed (> 5%): {summary['failed_tasks']}"
          + (f"; paper: {summary['paper_mean_error_pct']:.1f}%, failed {summary['paper_failed_tasks']}"
             if "paper_mean_error_pct" in summary else "")
          + f"; {summary['seconds'] / 60:.1f} min", flush=True)
    if not lead:  # under torchrun only rank 0 writes
        return {"summary": summary, "tasks": rows}
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, f"{args.model}_results.json"), "w") as f:
        json.dump({"summary": summary, "tasks": rows}, f, indent=2)
    png = _plot(rows, paper_name, os.path.join(args.out, f"{args.model}_errors.png"))
    print(f"saved {args.out}/{args.model}_results.json" + (f", {png}" if png else ""), flush=True)
    return {"summary": summary, "tasks": rows}

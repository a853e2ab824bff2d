"""The `memory-ext` command."""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional


def _bench(args: argparse.Namespace) -> int:
    from .bench.runner import run
    ops = [o.strip() for o in args.ops.split(",")] if args.ops else None
    run(device=args.device, full=args.full, json_path=args.json, ops=ops, sweep=args.sweep,
        out_dir=args.out)
    return 0


def _babi(args: argparse.Namespace) -> int:
    from .babi_cli import run
    run(args)
    return 0


def _info(args: argparse.Namespace) -> int:
    from . import build_info
    for k, v in build_info().items():
        print(f"{k}: {v}")
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="memory-ext", description="memory_ext command line")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("bench", help="time the fused ops against the eager reference and torch.compile")
    b.add_argument("--device", default="cpu", help="cpu (default) or cuda")
    b.add_argument("--full", action="store_true", help="more shapes and longer timing (default: quick, < 3 min on 2 cores)")
    b.add_argument("--json", metavar="FILE", help="also save the results as JSON")
    b.add_argument("--sweep", choices=["T", "d", "B"],
                   help="time each op over a range of T, width d or batch B; JSON + PNG plots in --out")
    b.add_argument("--out", default="bench-out", help="output folder of --sweep (default bench-out)")
    b.add_argument("--ops", help="comma list of ops to run: mlp_memory_step,mlp_memory_scan,delta_rule,delta_rule_step,slot_read,mnm_train_step,chat_train_step,vocab (default all)")
    b.set_defaults(func=_bench)
    bb = sub.add_parser("babi", help="train and test MemN2N / MemNN / MNM on the bAbI tasks, one model per task")
    from .babi_cli import add_arguments
    add_arguments(bb)
    bb.set_defaults(func=_babi)
    from .chat_cli import add_arguments as add_chat_arguments
    add_chat_arguments(sub)
    i = sub.add_parser("info", help="print how the compiled core was built")
    i.set_defaults(func=_info)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())

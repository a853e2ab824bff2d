"""The `memory-ext` command."""
from __future__ import annotations

import argparse
import os
import re
import sys
from typing import List, Optional

from . import cli_checks as check
from .cli_checks import UserError

BENCH_OPS = ("mlp_memory_step", "mlp_memory_scan", "delta_rule", "delta_rule_step", "slot_read",
             "mnm_train_step", "chat_train_step", "vocab")


class _Parser(argparse.ArgumentParser):
    """argparse's errors as one line (`memory-ext CMD: error: ...`) with status 2, no usage."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _bench_ops(spec: Optional[str]) -> Optional[List[str]]:
    """'--ops a,b' -> ['a', 'b'] (each one of BENCH_OPS); None: all."""
    if spec is None:
        return None
    ops = [o.strip() for o in spec.split(",") if o.strip()]
    bad = [o for o in ops if o not in BENCH_OPS]
    if bad or not ops:
        raise UserError(f"--ops must be a comma list of {','.join(BENCH_OPS)}, got {spec!r}")
    return ops


def _bench_device(device: str) -> None:
    """'cpu', 'cuda' or 'cuda:N' with a CUDA device torch can see."""
    import torch
    if device == "cpu":
        return
    if not re.fullmatch(r"cuda(:\d+)?", device):
        raise UserError(f"--device must be cpu, cuda or cuda:N, got {device!r}")
    if not torch.cuda.is_available():
        raise UserError(f"--device {device} but torch sees no CUDA device")
    index = int(device.partition(":")[2] or 0)
    if index >= torch.cuda.device_count():
        raise UserError(f"--device {device} but torch sees {torch.cuda.device_count()} CUDA device(s)")


def _bench(args: argparse.Namespace) -> int:
    from .bench.runner import run
    ops = _bench_ops(args.ops)
    _bench_device(args.device)
    if args.json is not None:
        check.no_nul(args.json, "--json")
        if os.path.isdir(args.json):
            raise UserError(f"--json must be a file path, got the folder {args.json}")
        check.output_dir(os.path.dirname(os.path.abspath(args.json)), "--json")
    if args.sweep:
        check.output_dir(args.out, "--out")
    run(device=args.device, full=args.full, json_path=args.json, ops=ops, sweep=args.sweep,
        out_dir=args.out)
    return 0


def _babi(args: argparse.Namespace) -> int:
    from .babi.cli import run
    run(args)
    return 0


def _info(args: argparse.Namespace) -> int:
    import torch

    from . import build_info
    for k, v in build_info().items():
        print(f"{k}: {v}")
    print(f"torch_running: {torch.__version__}")  # build_info's torch_version: the one built against
    return 0


def main(argv: Optional[List[str]] = None) -> int:
    """The `memory-ext` command. A user error (bad argument, missing or bad input file) prints one
    line `memory-ext CMD: error: ...` on stderr and returns 2; a bug keeps its traceback."""
    p = _Parser(prog="memory-ext", description="memory_ext command line")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser(
        "bench", help="time the fused ops against the eager reference (and torch.compile: --full)",
        description="Times each op's implementations interleaved (every repeat runs each once, in "
                    "rotating order; medians per implementation). The default CPU run is the quick "
                    "one (about 90 s on 2 cores): small shapes and no torch.compile baseline, whose "
                    "compiling alone costs 10-20 s a graph there; --full has it.")
    b.add_argument("--device", default="cpu",
                   help="cpu (default) or cuda (its cases, with torch.compile)")
    b.add_argument("--full", action="store_true",
                   help="all shapes, the torch.compile baselines, longer timing, and the table's "
                        "detail columns (IQR, repeats, %% of peak, GB/s, memory); many minutes")
    b.add_argument("--json", metavar="FILE",
                   help="also save the results as JSON (every field of every row)")
    b.add_argument("--sweep", choices=["T", "d", "B"],
                   help="time each op over a range of T, width d or batch B; JSON + PNG plots in --out")
    b.add_argument("--out", default="bench-out", help="output folder of --sweep (default bench-out)")
    b.add_argument("--ops", help=f"comma list of ops to run: {','.join(BENCH_OPS)} (default all)")
    b.set_defaults(func=_bench)
    bb = sub.add_parser("babi", help="train and test MemN2N / MemNN / MNM on the bAbI tasks, one model per task")
    from .babi.cli import add_arguments
    add_arguments(bb)
    bb.set_defaults(func=_babi)
    from .chat.cli import add_arguments as add_chat_arguments
    add_chat_arguments(sub)
    i = sub.add_parser("info", help="print how the compiled core was built")
    i.set_defaults(func=_info)
    args = p.parse_args(argv)
    try:
        return args.func(args)
    except UserError as e:
        msg = " ".join(str(e).split("\n"))  # one line, whatever the message holds
        print(f"memory-ext {args.cmd}: error: {msg}", file=sys.stderr, flush=True)
        return 2


if __name__ == "__main__":
    sys.exit(main())

"""`memory-ext train-chat`, `memory-ext chat` and `memory-ext eval-chat`."""
from __future__ import annotations

import argparse
import copy
import json
import os
import sys
import warnings
from typing import Dict, Iterable, List, Optional, TextIO

from .. import cli_checks as check
from ..cli_checks import UserError

HELP = "commands: /save PATH, /load PATH, /forget, /vocab, /help, /quit"
PRUNE_MIN_COUNT = 30  # as train_chat's default
MAX_LINE = 2000  # characters of a user line kept (the model keeps its last max_len tokens)


def _default_chat_dir() -> Optional[str]:
    here = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "chat"))
    return here if os.path.isdir(here) else None


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--out", default="chatbot.pt", help="checkpoint path (written every epoch)")
    p.add_argument("--conversations", type=int, default=8000, help="training conversations")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--lr", type=float, default=1e-3)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--data", default=None, help="folder of dialogue pair files (*.json lines); "
                   "default ../shared/data/chat when it exists")
    p.add_argument("--answer-weight", type=float, default=3.0,
                   help="loss weight of the replies that answer a question (the others: 1)")
    p.add_argument("--impl", choices=["fused", "reference"], default="fused")
    p.add_argument("--threads", type=int, default=0)
    p.add_argument("--eval", type=int, default=100, help="held-out conversations evaluated every epoch (0: none)")


def _pairs(data: Optional[str]):
    """The dialogue pairs of --data (default folder when None); a bad folder or file is a UserError."""
    from .dialogues import load_chat_dir
    if data is not None:
        check.input_dir(data, "--data")
    try:
        return load_chat_dir(data or _default_chat_dir())
    except (OSError, UnicodeDecodeError, ValueError) as e:  # unreadable or malformed pair file
        raise UserError(f"--data: {e}") from None


def check_train_arguments(args: argparse.Namespace) -> None:
    """Every user error of `memory-ext train-chat` before any training (UserError naming the flag)."""
    for name in ("conversations", "epochs", "batch_size"):
        check.at_least(args, name, 1)
    for name in ("threads", "eval"):
        check.at_least(args, name, 0)
    check.above(args, "lr", 0)
    check.above(args, "answer_weight", 0)
    check.output_file(args.out, "--out")


def run_train(args: argparse.Namespace) -> Dict:
    import torch
    from tqdm import tqdm

    from . import distributed
    from .bot import MemoryChatbot
    from .train import eval_recall, plot_losses, train_chat
    from .dialogues import DialogueGenerator

    check_train_arguments(args)
    pairs = _pairs(args.data)
    if args.threads:
        torch.set_num_threads(args.threads)
    ddp = distributed.ChatDDP.from_env()
    rank = 0 if ddp is None else ddp.rank
    convs = DialogueGenerator(pairs, "train", seed=args.seed).conversations(args.conversations)
    if ddp is not None:
        convs = convs[rank::ddp.world]
    held = DialogueGenerator(pairs, "heldout", seed=args.seed + 1).conversations(args.eval) if args.eval else []
    bot = MemoryChatbot(impl=args.impl, seed=args.seed)
    if ddp is not None:
        ddp.wrap(bot)
    steps = args.epochs * ((len(convs) + args.batch_size - 1) // args.batch_size)
    log: List[Dict] = []

    def on_epoch(epoch, losses):
        rec = eval_recall(bot, held) if held else None
        entry = {"epoch": epoch, "loss": sum(losses[-50:]) / len(losses[-50:]),
                 "vocab": len(bot.vocab), "recall": None if rec is None else rec["recall"],
                 "honesty": None if rec is None else rec["honesty"]}
        log.append(entry)
        if rank == 0:
            # the checkpoint keeps the words of the language, not the names of the last
            # conversations (they would compete with the names a user will say)
            shipped = copy.deepcopy(bot)
            shipped.vocab.prune(PRUNE_MIN_COUNT)
            shipped.save(args.out, with_memory=False)
            tqdm.write(json.dumps(entry))

    with tqdm(total=steps, desc="train-chat", disable=rank != 0) as bar:
        res = train_chat(bot, convs, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                         seed=args.seed, answer_weight=args.answer_weight, progress=bar.update,
                         on_epoch=on_epoch, ddp_step=ddp)
    out = {"epochs": log, "seconds": res["seconds"], "vocab": len(bot.vocab),
           "world_size": 1 if ddp is None else ddp.world}
    if rank == 0:
        png = plot_losses(res["losses"], os.path.splitext(args.out)[0] + "_loss.png")
        with open(os.path.splitext(args.out)[0] + "_train.json", "w") as f:
            json.dump({**out, "losses": res["losses"]}, f)
        print(f"saved {args.out}" + (f", {png}" if png else "") + f"; {res['seconds'] / 60:.1f} min",
              flush=True)
    if ddp is not None:
        out["param_checksum"] = ddp.checksum(bot)
        ddp.close()
    return out


def _load(path: Optional[str], **kw):
    """MemoryChatbot.load of --checkpoint (default: the shipped one); a bad file is a UserError."""
    from .bot import MemoryChatbot, UncheckedCheckpointWarning, default_checkpoint
    path = path or default_checkpoint()
    check.no_nul(path, "--checkpoint")
    if not os.path.exists(path):
        raise UserError(f"--checkpoint: no chatbot checkpoint at {path} (train one with "
                        f"`memory-ext train-chat`)")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UncheckedCheckpointWarning)
            bot = MemoryChatbot.load(path, **kw)
    except (OSError, ValueError) as e:  # load validates everything and says why
        raise UserError(f"--checkpoint: {e}") from None
    for w in caught:
        print(f"memory-ext: warning: {w.message}", file=sys.stderr, flush=True)
    return bot


def chat_session(bot, lines: Iterable[str], out: TextIO, prompt: str = "") -> object:
    """Feed user lines to the bot; slash commands act on it. Returns the (possibly reloaded)
    bot. Nothing a user types raises: a failing command prints one line `(error: ...)` and the
    chat goes on with the same bot, conversation and memory (a /load replaces the bot only
    when the file passed every check; a failed /save writes nothing)."""
    from .bot import MemoryChatbot, UncheckedCheckpointWarning
    for raw in lines:
        line = raw.rstrip("\n")[:MAX_LINE]
        if prompt:
            out.write(prompt + line + "\n")
        cmd, _, arg = line.strip().partition(" ")
        try:
            if cmd == "/quit":
                break
            if cmd == "/help":
                out.write(HELP + "\n")
            elif cmd == "/forget":
                bot.forget()
                out.write("(memory cleared)\n")
            elif cmd == "/vocab":
                out.write(f"(vocabulary: {len(bot.vocab)} words)\n")
            elif cmd == "/save":
                if not arg.strip():
                    raise ValueError("/save needs a PATH")
                bot.save(arg.strip())
                out.write(f"(saved to {arg.strip()})\n")
            elif cmd == "/load":
                if not arg.strip():
                    raise ValueError("/load needs a PATH")
                with warnings.catch_warnings(record=True) as caught:  # one line each, as (warning: ...)
                    warnings.simplefilter("always", UncheckedCheckpointWarning)
                    new = MemoryChatbot.load(arg.strip(), impl=bot.encoder.memory.impl, remember=bot.remember)
                for w in caught:
                    out.write(f"(warning: {w.message})\n")
                bot = new  # only a checkpoint that passed every check replaces the live bot
                out.write(f"(loaded {arg.strip()})\n")
            elif cmd.startswith("/"):
                out.write(f"(unknown command {cmd}; {HELP})\n")
            elif not line.strip():
                out.write("...\n")
            else:
                out.write(bot.respond(line) + "\n")
        except (OSError, ValueError) as e:
            out.write(f"(error: {e})\n")
        out.flush()
    return bot


def run_chat(args: argparse.Namespace) -> int:
    if args.script is not None:
        check.input_file(args.script, "--script")
    bot = _load(args.checkpoint, impl=args.impl, remember=not args.no_memory)
    if args.script is not None:
        with open(args.script, encoding="utf-8", errors="replace") as f:
            chat_session(bot, f.readlines(), sys.stdout, prompt="> ")
        return 0
    print(f"memory-ext chat ({HELP}); Ctrl-D to leave", flush=True)

    def typed():
        while True:
            try:
                yield input("> ")
            except (EOFError, KeyboardInterrupt):  # Ctrl-D or Ctrl-C at the prompt: leave quietly
                print(flush=True)
                return
    chat_session(bot, typed(), sys.stdout)
    return 0


def run_eval(args: argparse.Namespace) -> Dict:

    from .train import eval_recall
    from .dialogues import DialogueGenerator

    check.at_least(args, "conversations", 1)
    check.at_least(args, "prune_min_count", 0)
    if args.json is not None:
        check.output_file(args.json, "--json")
    pairs = _pairs(args.data)
    _load(args.checkpoint)  # a bad checkpoint is refused before the data is generated
    convs = DialogueGenerator(pairs, "heldout", seed=args.seed).conversations(args.conversations)
    rows = {}
    for name, kw in (("memory (fused ops)", dict(impl="fused")),
                     ("no memory (reset every turn)", dict(impl="fused", remember=False)),
                     ("memory (eager reference ops)", dict(impl="reference"))):
        bot = _load(args.checkpoint, **kw)
        r = eval_recall(bot, convs, prune_min_count=args.prune_min_count)
        rows[name] = r
        print(format_eval_row(name, r), flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(rows, f, indent=2)
    return rows


def _pct(x: Optional[float]) -> str:
    return "  n/a" if x is None else f"{100 * x:4.1f}%"


def format_eval_row(name: str, r: Dict) -> str:
    """One line of eval-chat: recall (per fact kind, multi-word values, after a correction),
    honesty on facts never told, the question counts and the time."""
    kinds = " ".join(f"{k} {_pct(v)}" for k, v in r["per_fact"].items())
    return (f"{name:29s} recall {_pct(r['recall'])} ({kinds}; multi-word {_pct(r['multi_word'])}, "
            f"corrected {_pct(r['corrected'])})  honesty {_pct(r['honesty'])}  "
            f"[{r['n_recall']} + {r['n_honesty']} questions, {r['seconds']:.1f} s]")


def add_arguments(sub) -> None:
    t = sub.add_parser("train-chat", help="train the memory chatbot on synthetic conversations")
    add_train_arguments(t)
    t.set_defaults(func=lambda a: (run_train(a), 0)[1])
    c = sub.add_parser("chat", help="talk to the memory chatbot (its memory persists across turns)")
    c.add_argument("--checkpoint", default=None, help="default: the checkpoint shipped in the package")
    c.add_argument("--script", default=None, help="a file of user lines: print the replies and exit")
    c.add_argument("--impl", choices=["fused", "reference"], default="fused")
    c.add_argument("--no-memory", action="store_true", help="reset the memory every turn (ablation)")
    c.set_defaults(func=run_chat)
    e = sub.add_parser("eval-chat", help="recall of facts told earlier in held-out conversations")
    e.add_argument("--checkpoint", default=None)
    e.add_argument("--conversations", type=int, default=500)
    e.add_argument("--seed", type=int, default=12345)
    e.add_argument("--data", default=None)
    e.add_argument("--json", default=None, help="also save the figures as JSON")
    e.add_argument("--prune-min-count", type=int, default=PRUNE_MIN_COUNT,
                   help="between batches of 50 conversations prune words used fewer times "
                        "(as in training; 0: never, earlier names pile up)")
    e.set_defaults(func=lambda a: (run_eval(a), 0)[1])

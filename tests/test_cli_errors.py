"""Every user error of every `memory-ext` subcommand is one line on stderr and a non-zero exit,
never a traceback (issue 15). Each case runs `python -m memory_ext.cli ...` in a subprocess; the
cases run two at a time once per module (each is a cold start of torch)."""
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

from memory_ext.babi.data import task_files
from memory_ext.chat.bot import CHECKPOINT_FORMAT, MemoryChatbot, checkpoint_digest

TINY = dict(d_model=16, nhead=2, memory_widths=(16, 24, 16), decoder_layers=1)

# name -> argv; "{T}" is the folder of the fixture files (see `files`)
CASES = {
    "no command": [],
    "unknown command": ["nosuch"],
    "bench --ops unknown": ["bench", "--ops", "nosuch"],
    "bench --ops empty": ["bench", "--ops", ","],
    "bench --device unknown": ["bench", "--device", "xyz"],
    "bench --json folder": ["bench", "--json", "{T}"],
    "bench --sweep --out file": ["bench", "--sweep", "T", "--out", "{T}/garbage.pt"],
    "bench --sweep unknown": ["bench", "--sweep", "X"],
    "babi --data missing arg": ["babi"],
    "babi --tasks 0": ["babi", "--data", "{T}/babi", "--tasks", "0"],
    "babi --tasks 21": ["babi", "--data", "{T}/babi", "--tasks", "21"],
    "babi --tasks abc": ["babi", "--data", "{T}/babi", "--tasks", "abc"],
    "babi --tasks 3-1": ["babi", "--data", "{T}/babi", "--tasks", "3-1"],
    "babi --epochs 0": ["babi", "--data", "{T}/babi", "--epochs", "0"],
    "babi --epochs abc": ["babi", "--data", "{T}/babi", "--epochs", "abc"],
    "babi --restarts 0": ["babi", "--data", "{T}/babi", "--restarts", "0"],
    "babi --linear-start-epochs -1": ["babi", "--data", "{T}/babi", "--linear-start-epochs", "-1"],
    "babi --weight-decay -0.1": ["babi", "--data", "{T}/babi", "--weight-decay", "-0.1"],
    "babi --weight-decay nan": ["babi", "--data", "{T}/babi", "--weight-decay", "nan"],
    "babi --think-steps -1": ["babi", "--data", "{T}/babi", "--think-steps", "-1"],
    "babi --threads -1": ["babi", "--data", "{T}/babi", "--threads", "-1"],
    "babi --data missing": ["babi", "--data", "{T}/nowhere", "--tasks", "1"],
    "babi --data without split": ["babi", "--data", "{T}", "--tasks", "1"],
    "babi --data missing task": ["babi", "--data", "{T}/babi", "--tasks", "2"],
    "babi --data malformed": ["babi", "--data", "{T}/babi", "--tasks", "1"],
    "babi --out file": ["babi", "--data", "{T}/babi", "--tasks", "1", "--out", "{T}/garbage.pt"],
    "train-chat --epochs 0": ["train-chat", "--epochs", "0"],
    "train-chat --conversations 0": ["train-chat", "--conversations", "0"],
    "train-chat --batch-size -1": ["train-chat", "--batch-size", "-1"],
    "train-chat --lr 0": ["train-chat", "--lr", "0"],
    "train-chat --lr nan": ["train-chat", "--lr", "nan"],
    "train-chat --threads -1": ["train-chat", "--threads", "-1"],
    "train-chat --eval -1": ["train-chat", "--eval", "-1"],
    "train-chat --answer-weight 0": ["train-chat", "--answer-weight", "0"],
    "train-chat --data missing": ["train-chat", "--data", "{T}/nowhere", "--out", "{T}/o.pt"],
    "train-chat --data malformed": ["train-chat", "--data", "{T}/chat", "--out", "{T}/o.pt"],
    "train-chat --out missing folder": ["train-chat", "--out", "{T}/nowhere/o.pt"],
    "train-chat --out folder": ["train-chat", "--out", "{T}"],
    "chat --checkpoint missing": ["chat", "--checkpoint", "{T}/nowhere.pt"],
    "chat --checkpoint folder": ["chat", "--checkpoint", "{T}"],
    "chat --checkpoint garbage": ["chat", "--checkpoint", "{T}/garbage.pt"],
    "chat --checkpoint empty": ["chat", "--checkpoint", "{T}/empty.pt"],
    "chat --checkpoint truncated": ["chat", "--checkpoint", "{T}/truncated.pt"],
    "chat --checkpoint flipped byte": ["chat", "--checkpoint", "{T}/flipped.pt"],
    "chat --checkpoint no model": ["chat", "--checkpoint", "{T}/nomodel.pt"],
    "chat --checkpoint other d_model": ["chat", "--checkpoint", "{T}/other_d.pt"],
    "chat --checkpoint other shapes": ["chat", "--checkpoint", "{T}/shapes.pt"],
    "chat --checkpoint dead vocab row": ["chat", "--checkpoint", "{T}/deadrow.pt"],
    "chat --checkpoint bad config": ["chat", "--checkpoint", "{T}/badconfig.pt"],
    "chat --script missing": ["chat", "--checkpoint", "{T}/ok.pt", "--script", "{T}/nowhere.txt"],
    "chat --script folder": ["chat", "--checkpoint", "{T}/ok.pt", "--script", "{T}"],
    "chat --impl unknown": ["chat", "--impl", "nosuch"],
    "eval-chat --conversations 0": ["eval-chat", "--conversations", "0"],
    "eval-chat --prune-min-count -1": ["eval-chat", "--prune-min-count", "-1"],
    "eval-chat --data missing": ["eval-chat", "--data", "{T}/nowhere"],
    "eval-chat --json missing folder": ["eval-chat", "--json", "{T}/nowhere/r.json"],
    "eval-chat --checkpoint truncated": ["eval-chat", "--checkpoint", "{T}/truncated.pt"],
}


def _stamped(payload):
    """payload with a checksum that matches it: a well-formed file whose content is wrong."""
    payload = dict(payload)
    payload["checksum"] = checkpoint_digest(payload)
    return payload


def flip_tensor_byte(path, tensor, out):
    """Copy `path` to `out` with one byte of `tensor`'s data (found in the file) flipped."""
    raw = bytearray(open(path, "rb").read())
    at = raw.find(tensor.contiguous().numpy().tobytes()[:64])
    assert at > 0
    raw[at + 5] ^= 0x10
    open(out, "wb").write(bytes(raw))


def make_files(t):
    """The fixture files of CASES in the folder t."""
    bot = MemoryChatbot(TINY)
    bot.respond("hello there")
    ok = os.path.join(t, "ok.pt")
    bot.save(ok)
    raw = open(ok, "rb").read()
    open(os.path.join(t, "truncated.pt"), "wb").write(raw[: len(raw) // 2])
    open(os.path.join(t, "garbage.pt"), "wb").write(b"not a checkpoint at all")
    open(os.path.join(t, "empty.pt"), "wb").close()
    flip_tensor_byte(ok, bot.decoder.layers[0].linear1.weight.detach(), os.path.join(t, "flipped.pt"))
    payload = torch.load(ok, weights_only=True)
    torch.save(_stamped({k: v for k, v in payload.items() if k != "model"}), os.path.join(t, "nomodel.pt"))
    torch.save(_stamped({**payload, "config": {**TINY, "d_model": 32, "memory_widths": (32, 24, 32)}}),
               os.path.join(t, "other_d.pt"))
    model = dict(payload["model"])
    model["pos.weight"] = model["pos.weight"][:, :8]
    torch.save(_stamped({**payload, "model": model}), os.path.join(t, "shapes.pt"))
    model = dict(payload["model"])
    live = model["vocab.embedding.live"].clone()
    live[5] = False
    model["vocab.embedding.live"] = live
    torch.save(_stamped({**payload, "model": model}), os.path.join(t, "deadrow.pt"))
    torch.save(_stamped({**payload, "config": {**TINY, "nhead": 3}}), os.path.join(t, "badconfig.pt"))
    os.makedirs(os.path.join(t, "chat"))
    open(os.path.join(t, "chat", "pairs.json"), "w").write('{"listen": "hi"}\n')
    os.makedirs(os.path.join(t, "babi", "en"))
    train, test = task_files(os.path.join(t, "babi"), 1)
    open(train, "w").write("1 Mary went home.\nnot numbered\n")
    open(test, "w").write("1 Mary went home.\n2 Where is Mary?\thome\t1\n")


def _run(argv):
    # the installed package, as a user runs it: not from the repository root, where
    # `python -m` would import the source folder (no compiled core in a fresh clone)
    return subprocess.run([sys.executable, "-m", "memory_ext.cli"] + argv, capture_output=True,
                          text=True, timeout=300, stdin=subprocess.DEVNULL,
                          cwd=os.path.dirname(os.path.abspath(__file__)))


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    t = str(tmp_path_factory.mktemp("cli"))
    make_files(t)
    argvs = {name: [a.replace("{T}", t) for a in argv] for name, argv in CASES.items()}
    with ThreadPoolExecutor(2) as pool:
        done = dict(zip(argvs, pool.map(_run, argvs.values())))
    return t, done


@pytest.mark.parametrize("name", list(CASES))
def test_user_error_is_one_line_and_a_nonzero_exit(results, name):
    t, done = results
    r = done[name]
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert "Traceback" not in r.stderr and "Traceback" not in r.stdout
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("memory-ext") and ": error: " in lines[0], r.stderr
    assert not os.path.exists(os.path.join(t, "o.pt"))  # nothing trained or written


def test_the_messages_name_the_cause(results):
    _, done = results
    err = {name: r.stderr for name, r in done.items()}
    assert "--tasks must name tasks in 1..20" in err["babi --tasks 0"]
    assert "--epochs must be >= 1, got 0" in err["train-chat --epochs 0"]
    assert "--ops must be a comma list of" in err["bench --ops unknown"]
    assert "checksum mismatch" in err["chat --checkpoint flipped byte"]
    assert "no such file" in err["chat --script missing"]
    assert "vocabulary" in err["chat --checkpoint dead vocab row"]
    assert "multiple of nhead" in err["chat --checkpoint bad config"]
    assert "pairs.json:1" in err["train-chat --data malformed"]
    assert ":2: a line must start with its number" in err["babi --data malformed"]


def test_a_good_command_still_runs(tmp_path):
    script = tmp_path / "talk.txt"
    script.write_text("hello\n/vocab\n")
    bot = MemoryChatbot(TINY)
    bot.save(str(tmp_path / "ok.pt"))
    r = _run(["chat", "--checkpoint", str(tmp_path / "ok.pt"), "--script", str(script)])
    assert r.returncode == 0 and r.stderr == "" and "(vocabulary:" in r.stdout

"""MemoryChatbot: a small seq2seq transformer whose encoder drives a fast-weight MLP memory that
persists across the turns of a conversation, with an elastic vocabulary (output projection tied
to the embedding), so a word first heard in this conversation can be written and said back.

Per turn: the user line's tokens go through MemoryTransformerBlock (a causal transformer layer
whose states write to and read from the memory, one mlp_memory_scan per turn, the memory kept
for the next turn); the decoder (torch.nn.TransformerDecoder) cross-attends to its outputs and
scores words against the embedding rows. Only user lines are written to memory.
"""
from __future__ import annotations

import hashlib
import math
import os
import pickle
import warnings
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from ..nn.controller import MemoryTransformerBlock
from ..nn.elastic_vocab import EOS, PAD, SOS, ElasticVocab, tokenize

CHECKPOINT_FORMAT = "memory_ext.MemoryChatbot/1"
DEFAULT_CONFIG = dict(d_model=64, nhead=4, memory_widths=(64, 128, 64), rule="local",
                      decoder_layers=2, max_len=32, max_reply=16, decoder_reads=True)
_INT_KEYS = ("d_model", "nhead", "decoder_layers", "max_len", "max_reply")


class UncheckedCheckpointWarning(UserWarning):
    """A checkpoint saved before checksums (no 'checksum' key): loaded, validated, unverified."""


def check_config(cfg: Dict) -> None:
    """ValueError naming the key unless every config value has its type and range."""
    for k in _INT_KEYS:
        v = cfg[k]
        if isinstance(v, bool) or not isinstance(v, int) or v < 1:
            raise ValueError(f"config {k} must be an int >= 1, got {v!r}")
    w = cfg["memory_widths"]
    if not isinstance(w, (list, tuple)) or not 2 <= len(w) <= 5 or any(
            isinstance(x, bool) or not isinstance(x, int) or x < 1 for x in w):
        raise ValueError(f"config memory_widths must list 2 to 5 ints >= 1, got {w!r}")
    if not isinstance(cfg["decoder_reads"], bool):
        raise ValueError(f"config decoder_reads must be a bool, got {cfg['decoder_reads']!r}")
    if cfg["rule"] not in ("local", "grad"):
        raise ValueError(f"config rule must be 'local' or 'grad', got {cfg['rule']!r}")
    if cfg["d_model"] % cfg["nhead"]:
        raise ValueError(f"config d_model = {cfg['d_model']} must be a multiple of nhead = {cfg['nhead']}")


def _digest(obj, h) -> None:
    """Feed obj to the hash h: dicts (keys sorted), lists / tuples, tensors (dtype, shape, bytes),
    str, int, float, bool, None; each tagged with its kind and length, so no two differ alike."""
    if isinstance(obj, Tensor):
        t = obj.detach().cpu().contiguous()
        h.update(f"T{t.dtype}{list(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    elif isinstance(obj, dict):
        h.update(f"D{len(obj)}".encode())
        for k in sorted(obj, key=repr):
            _digest(k, h)
            _digest(obj[k], h)
    elif isinstance(obj, (list, tuple)):
        h.update(f"L{len(obj)}".encode())
        for x in obj:
            _digest(x, h)
    elif obj is None or isinstance(obj, (bool, int, float, str)):
        r = repr(obj)
        h.update(f"S{type(obj).__name__}{len(r)}:{r}".encode())
    else:
        raise ValueError(f"a checkpoint holds tensors, dicts, lists, str and numbers, got a "
                         f"{type(obj).__name__}")


def checkpoint_digest(payload: Dict) -> str:
    """sha256 (hex) of a checkpoint's content: every entry but 'checksum' (config, weights,
    vocabulary, memory), tensors by dtype, shape and bytes; independent of the file's layout."""
    h = hashlib.sha256()
    _digest({k: v for k, v in payload.items() if k != "checksum"}, h)
    return h.hexdigest()


class MemoryChatbot(nn.Module):
    """Args (all in `config`, saved with checkpoints):
        d_model, nhead: transformer width and heads
        memory_widths: [n_0, ..., n_L] of the memory MLP (n_0 = n_L = d_model... any widths)
        rule: memory write rule, "local" or "grad"
        decoder_layers: TransformerDecoder layers
        max_len: tokens kept of a user line (longer lines keep their last max_len tokens)
        max_reply: most tokens of a generated reply
        decoder_reads: every reply position also reads the memory (a key from the decoder's
            state and the word it said last), and a user token's write sees the word before it,
            so a value of several words can be written and said back word by word from memory
            (checkpoints saved before this key have it False)
    impl: "fused" or "reference" memory ops; remember=False resets the memory before every turn
    (the ablation: what the original chatbot did).

    Shapes: turn(user [B, T] ids, mask [B, T], reply_in [B, R] ids) -> logits [B, R, V]."""

    def __init__(self, config: Optional[Dict] = None, *, impl: str = "fused", remember: bool = True,
                 seed: int = 0):
        super().__init__()
        cfg = dict(DEFAULT_CONFIG)
        unknown = set(config or {}) - set(cfg)
        if unknown:
            raise ValueError(f"unknown chatbot config keys {sorted(unknown)}")
        cfg.update(config or {})
        check_config(cfg)
        cfg["memory_widths"] = tuple(cfg["memory_widths"])
        self.config = cfg
        d = cfg["d_model"]
        with torch.random.fork_rng():  # seeded init; the caller's RNG state is left alone
            torch.manual_seed(seed)
            # rows of norm ~ sqrt(d): new words start distinct from each other (noise = init_std)
            self.vocab = ElasticVocab(d, capacity=256, init_std=1.0, noise=1.0, seed=seed)
            self.pos = nn.Embedding(cfg["max_len"] + cfg["max_reply"] + 2, d)
            self.encoder = MemoryTransformerBlock(d, d, nhead=cfg["nhead"], memory_widths=cfg["memory_widths"],
                                                  rule=cfg["rule"], impl=impl)
            layer = nn.TransformerDecoderLayer(d, cfg["nhead"], 4 * d, 0.0, batch_first=True)
            self.decoder = nn.TransformerDecoder(layer, cfg["decoder_layers"])
            if cfg["decoder_reads"]:
                widths = cfg["memory_widths"]
                self.prev_word = nn.Linear(d, d, bias=False)  # a user token sees the word before it
                self.recall_key = nn.Linear(2 * d, widths[0])  # [decoder state ; last word said]
                self.recall_out = nn.Linear(widths[-1], d)
        self.remember = remember
        self.recon: Optional[Tensor] = None  # the last turn's reconstruction loss [B, T]

    # --- memory ------------------------------------------------------------------------------
    def forget(self) -> None:
        """Start a new conversation: the memory goes back to its learned initial weights (and
        no autograd graph of the last turn is kept: the vocabulary may grow safely after it)."""
        self.encoder.reset()
        self.recon = None

    def detach_memory(self) -> None:
        self.encoder.detach()

    def memory_state(self) -> Optional[List[Tensor]]:
        st = self.encoder.state
        return None if st is None else [w.detach().clone() for w in st["W"]]

    # --- tensors -----------------------------------------------------------------------------
    def encode_lines(self, lines: Sequence[str], grow: bool = True) -> Tuple[Tensor, Tensor]:
        """User lines -> (ids [B, T] right-padded with PAD, mask [B, T]); each line keeps its last
        max_len tokens (with decoder_reads: its last max_len - 1 and an EOS, so the last word
        of a line is followed by a write too); an empty line is one PAD (mask False: it writes
        nothing)."""
        end = self.config["decoder_reads"]
        keep = self.config["max_len"] - int(end)
        seqs = [self.vocab.encode(line, grow=grow) for line in lines]
        seqs = [s[len(s) - keep:] for s in seqs]
        if end:
            seqs = [torch.cat([s, s.new_tensor([EOS])]) if len(s) else s for s in seqs]
        T = max(1, max(s.numel() for s in seqs))
        dev = self.pos.weight.device
        ids = torch.full((len(seqs), T), PAD, dtype=torch.int64, device=dev)
        for i, s in enumerate(seqs):
            ids[i, : s.numel()] = s
        return ids, ids != PAD

    def _embed(self, ids: Tensor, offset: int = 0) -> Tuple[Tensor, Tensor]:
        """ids [B, T] -> (word rows [B, T, d], word rows + positions offset.. [B, T, d])."""
        words = self.vocab.embedding(ids, check=False)
        pos = torch.arange(offset, offset + ids.shape[1], device=ids.device)
        return words, words + self.pos(pos)[None]

    def listen(self, user: Tensor, mask: Tensor) -> Tensor:
        """Write a user turn to memory and return the decoder's memory [B, T, d]."""
        if not self.remember:
            self.encoder.reset()
        words, x = self._embed(user)
        if self.config["decoder_reads"]:  # + the previous word: a write can be keyed by it
            x = x + nn.functional.pad(self.prev_word(words[:, :-1]), (0, 0, 1, 0))
        y, self.recon = self.encoder(x, mask)
        return y

    def speak(self, heard: Tensor, mask: Tensor, reply_in: Tensor,
              memory: Optional[List[Tensor]] = None) -> Tensor:
        """Logits [B, R, V] of the next words after reply_in [B, R] (teacher forcing). With
        decoder_reads, each position reads the memory: `memory` (the weights [B, ...] of the
        rows heard belongs to, see memory_rows) or, when None, all of it as the last listen()
        left it."""
        R = reply_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(R, device=reply_in.device)
        keep = mask.clone()
        keep[:, 0] = True  # a row with nothing heard still has one key to attend to
        said, x = self._embed(reply_in, self.config["max_len"])  # said: the last word, per position
        h = self.decoder(x, heard, tgt_mask=causal, tgt_is_causal=True, memory_key_padding_mask=~keep)
        if self.config["decoder_reads"]:
            W = self.encoder.state["W"] if memory is None else memory
            keys = torch.tanh(self.recall_key(torch.cat([h, said], -1)))  # [B, R, n_0]
            h = h + self.recall_out(self.encoder.memory.read(W, keys))
        return self.vocab.embedding.logits(h)

    def memory_rows(self, rows: Sequence[int]) -> List[Tensor]:
        """The memory weights of some batch rows (for speak / generate on those rows only)."""
        index = torch.as_tensor(list(rows), dtype=torch.int64, device=self.pos.weight.device)
        return [w.index_select(0, index) for w in self.encoder.state["W"]]

    def turn(self, user: Tensor, mask: Tensor, reply_in: Tensor) -> Tensor:
        return self.speak(self.listen(user, mask), mask, reply_in)

    @torch.no_grad()
    def generate(self, heard: Tensor, mask: Tensor,
                 rows: Optional[Sequence[int]] = None) -> List[List[int]]:
        """Greedy replies (ids without SOS / EOS) for every row of a heard turn (rows: the batch
        rows heard belongs to, None: all; their memory is selected once, not every word)."""
        memory = None if rows is None or not self.config["decoder_reads"] else self.memory_rows(rows)
        B = heard.shape[0]
        out = torch.full((B, 1), SOS, dtype=torch.int64, device=heard.device)
        done = torch.zeros(B, dtype=torch.bool, device=heard.device)
        for _ in range(self.config["max_reply"]):
            nxt = self.speak(heard, mask, out, memory)[:, -1].argmax(-1)
            nxt = torch.where(done, torch.full_like(nxt, PAD), nxt)
            out = torch.cat([out, nxt[:, None]], 1)
            done |= nxt == EOS
            if bool(done.all()):
                break
        return [[t for t in row[1:] if t not in (PAD, EOS)] for row in out.tolist()]

    def respond(self, line: str) -> str:
        """One conversation turn: remember the user's line, return the reply text."""
        if not isinstance(line, str):
            raise TypeError(f"line must be a str, got {type(line).__name__}")
        was = self.training
        self.eval()
        try:
            ids, mask = self.encode_lines([line])
            with torch.no_grad():
                heard = self.listen(ids, mask)
                reply = self.generate(heard, mask)[0]
        finally:
            self.train(was)
        return detokenize(self.vocab.decode(reply).split()) if reply else "..."

    # --- checkpoints -------------------------------------------------------------------------
    def save(self, path: str, with_memory: bool = True) -> None:
        """Config, weights, vocabulary, (with_memory) the conversation's memory weights and a
        sha256 checksum of all of them. Atomic: written to PATH.<pid>.tmp then renamed over
        PATH; a bad path (a folder, a missing folder, a NUL byte) is a ValueError and on any
        error nothing is written and no .tmp is left."""
        path = _save_path(path)
        payload = {"format": CHECKPOINT_FORMAT, "config": dict(self.config),
                   "model": self.state_dict(),
                   "memory": self.memory_state() if with_memory else None}
        payload["checksum"] = checkpoint_digest(payload)
        tmp = f"{path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                torch.save(payload, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)  # a crash mid-save leaves the old file whole
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    @classmethod
    def load(cls, path: str, *, impl: str = "fused", remember: bool = True) -> "MemoryChatbot":
        """A chatbot from `save`. Everything is checked before a bot is returned: the checksum,
        the format, the config, every weight's name, dtype and shape, the vocabulary (token
        table consistent with the embedding rows) and the memory's shapes; any failure is a
        ValueError (OSError: the file cannot be read) naming the file and what is wrong.
        A checkpoint without a checksum (saved before checksums) loads, validated, with an
        UncheckedCheckpointWarning."""
        payload = _read_checkpoint(path)
        config = payload.get("config")
        if not isinstance(config, dict):
            raise ValueError(f"{path}: config must be a dict, got {type(config).__name__}")
        config = {"decoder_reads": False, **config}  # saved before decoder reads existed
        try:
            bot = cls(config, impl=impl, remember=remember)
        except ValueError as e:
            raise ValueError(f"{path}: {e}") from None
        _check_model_state(bot, payload.get("model"), path)
        bot.load_state_dict(payload["model"])  # checked above: a failure here is a bug
        memory = payload.get("memory")
        if memory is not None:
            widths = bot.config["memory_widths"]
            want = [(widths[l + 1], widths[l]) for l in range(len(widths) - 1)]
            ok = isinstance(memory, list) and all(isinstance(w, Tensor) for w in memory)
            got = [tuple(w.shape[1:]) for w in memory] if ok else None
            if not ok or got != want or any(w.dim() != 3 or w.shape[0] != 1 or w.dtype != torch.float32
                                            or not bool(torch.isfinite(w).all()) for w in memory):
                raise ValueError(f"{path}: memory must be {len(want)} finite float32 tensors "
                                 f"[1, n_(l+1), n_l] = {want}, got {got}")
            bot.encoder.state = {"W": [w.clone() for w in memory]}
        return bot


def _save_path(path) -> str:
    """path as a str that save() can write: ValueError for a NUL byte, a folder, a missing folder."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or not path:
        raise ValueError(f"path must be a non-empty str, got {path!r}")
    if "\x00" in path:
        raise ValueError(f"path must not hold a NUL byte, got {path!r}")
    if os.path.isdir(path):
        raise ValueError(f"{path} is a folder; save needs a file path")
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise ValueError(f"{path}: the folder {parent} does not exist")
    return path


def _read_checkpoint(path) -> Dict:
    """The payload of a checkpoint file, its format and checksum checked (ValueError)."""
    if isinstance(path, os.PathLike):
        path = os.fspath(path)
    if not isinstance(path, str) or "\x00" in path:
        raise ValueError(f"path must be a str without NUL bytes, got {path!r}")
    if not os.path.isfile(path):
        raise ValueError(f"{path}: no such file" if not os.path.exists(path) else f"{path} is not a file")
    with open(path, "rb") as f:  # OSError: cannot be read (permissions); past here: the content
        try:
            payload = torch.load(f, map_location="cpu", weights_only=True)
        except Exception as e:  # the unpickler's and the zip reader's many ways to say "garbage"
            raise ValueError(f"{path}: not a MemoryChatbot checkpoint (torch.load: {_why(e)})") from None
    if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"{path}: not a MemoryChatbot checkpoint (format must be {CHECKPOINT_FORMAT!r})")
    checksum = payload.get("checksum")
    if checksum is None:
        warnings.warn(f"{path}: no checksum (saved before checksums); loaded unverified",
                      UncheckedCheckpointWarning, stacklevel=3)
    elif checksum != checkpoint_digest(payload):
        raise ValueError(f"{path}: checksum mismatch: the file is corrupt or was changed after saving")
    return payload


def _why(e: Exception) -> str:
    """A one-line reason of torch.load's exception e."""
    if isinstance(e, pickle.UnpicklingError):
        return "not a torch file, or it holds objects other than tensors, dicts, lists and numbers"
    why = (str(e).strip().splitlines() or [""])[0]
    why = why if len(why) <= 120 else why[:117] + "..."
    return f"{type(e).__name__}: {why}" if why else f"{type(e).__name__} (truncated?)"


def _check_model_state(bot: "MemoryChatbot", model, path: str) -> None:
    """ValueError unless `model` fits `bot` (a fresh one of the checkpoint's config): the same
    keys, each tensor's dtype and shape (the vocabulary's rows: its own size), finite floats,
    and a vocabulary whose token table matches its embedding rows."""
    if not isinstance(model, dict):
        raise ValueError(f"{path}: model must be a state dict, got {type(model).__name__}")
    ref = bot.state_dict()
    missing, unexpected = sorted(set(ref) - set(model)), sorted(set(model) - set(ref), key=repr)
    if missing or unexpected:
        raise ValueError(f"{path}: model weights do not fit the config: missing {missing[:3]}, "
                         f"unexpected {unexpected[:3]}")
    errors = bot.vocab.check_state_dict(model, "vocab.")
    if errors:
        raise ValueError(f"{path}: vocabulary: {errors[0]}")
    for k, want in ref.items():
        got = model[k]
        if not isinstance(want, Tensor):
            continue
        if not isinstance(got, Tensor):
            raise ValueError(f"{path}: model[{k!r}] must be a tensor, got {type(got).__name__}")
        rows = k.startswith("vocab.embedding.")  # checked by check_state_dict
        if got.dtype != want.dtype or (not rows and got.shape != want.shape):
            raise ValueError(f"{path}: model[{k!r}] must be {want.dtype} {list(want.shape)}, got "
                             f"{got.dtype} {list(got.shape)}")
        if got.is_floating_point() and not bool(torch.isfinite(got).all()):
            raise ValueError(f"{path}: model[{k!r}] holds NaN or inf")


def default_checkpoint() -> str:
    """The small checkpoint shipped in the package (trained by `memory-ext train-chat`)."""
    return os.path.join(os.path.dirname(__file__), "data", "chatbot.pt")


def reply_tensors(replies: Sequence[str], vocab: ElasticVocab, grow: bool = True,
                  max_reply: int = 16) -> Tuple[Tensor, Tensor]:
    """Teacher-forcing pairs (SOS + reply [B, R], reply + EOS [B, R]) padded with PAD."""
    seqs = [vocab.encode(r, grow=grow)[: max_reply - 1].tolist() for r in replies]
    R = max(len(s) for s in seqs) + 1
    inp = torch.full((len(seqs), R), PAD, dtype=torch.int64)
    tgt = torch.full((len(seqs), R), PAD, dtype=torch.int64)
    for i, s in enumerate(seqs):
        inp[i, : len(s) + 1] = torch.tensor([SOS] + s)
        tgt[i, : len(s) + 1] = torch.tensor(s + [EOS])
    dev = vocab.embedding.weight.device
    return inp.to(dev), tgt.to(dev)


def detokenize(tokens: Sequence[str]) -> str:
    """Tokens as text to show: marks attached to the word before, sentences capitalised
    (normalize(detokenize(t)) == " ".join(t)).

    >>> detokenize(["nice", "to", "meet", "you", ",", "jean-luc", "!", "bye", "."])
    'Nice to meet you, jean-luc! Bye.'
    """
    out, start = "", True
    for t in tokens:
        if t in ",.!?;:" and out:
            out += t
            start = start or t in ".!?"
            continue
        out += (" " if out else "") + (t[:1].upper() + t[1:] if start else t)
        start = False
    return out


def normalize(text: str) -> str:
    """Text as the chatbot would say it (tokenized, joined by spaces): for exact comparisons."""
    return " ".join(tokenize(text))


__all__ = ["MemoryChatbot", "default_checkpoint", "reply_tensors", "normalize", "detokenize"]

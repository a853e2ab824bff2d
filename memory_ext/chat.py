"""MemoryChatbot: a small seq2seq transformer whose encoder drives a fast-weight MLP memory that
persists across the turns of a conversation, with an elastic vocabulary (output projection tied
to the embedding), so a word first heard in this conversation can be written and said back.

Per turn: the user line's tokens go through MemoryTransformerBlock (a causal transformer layer
whose states write to and read from the memory, one mlp_memory_scan per turn, the memory kept
for the next turn); the decoder (torch.nn.TransformerDecoder) cross-attends to its outputs and
scores words against the embedding rows. Only user lines are written to memory.
"""
from __future__ import annotations

import os
from typing import Dict, List, Optional, Sequence, Tuple

import torch
from torch import Tensor, nn

from .controller import MemoryTransformerBlock
from .vocab import EOS, PAD, SOS, ElasticVocab, tokenize

CHECKPOINT_FORMAT = "memory_ext.MemoryChatbot/1"
DEFAULT_CONFIG = dict(d_model=64, nhead=4, memory_widths=(64, 128, 64), rule="local",
                      decoder_layers=2, max_len=32, max_reply=16)


class MemoryChatbot(nn.Module):
    """Args (all in `config`, saved with checkpoints):
        d_model, nhead: transformer width and heads
        memory_widths: [n_0, ..., n_L] of the memory MLP (n_0 = n_L = d_model... any widths)
        rule: memory write rule, "local" or "grad"
        decoder_layers: TransformerDecoder layers
        max_len: tokens kept of a user line (longer lines keep their last max_len tokens)
        max_reply: most tokens of a generated reply
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
        cfg["memory_widths"] = tuple(int(w) for w in cfg["memory_widths"])
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
        max_len tokens; an empty line is one PAD (mask False: it writes nothing)."""
        seqs = [self.vocab.encode(line, grow=grow)[-self.config["max_len"]:] for line in lines]
        T = max(1, max(s.numel() for s in seqs))
        dev = self.pos.weight.device
        ids = torch.full((len(seqs), T), PAD, dtype=torch.int64, device=dev)
        for i, s in enumerate(seqs):
            ids[i, : s.numel()] = s
        return ids, ids != PAD

    def _embed(self, ids: Tensor, offset: int = 0) -> Tensor:
        pos = torch.arange(offset, offset + ids.shape[1], device=ids.device)
        return self.vocab.embedding(ids, check=False) + self.pos(pos)[None]

    def listen(self, user: Tensor, mask: Tensor) -> Tensor:
        """Write a user turn to memory and return the decoder's memory [B, T, d]."""
        if not self.remember:
            self.encoder.reset()
        y, self.recon = self.encoder(self._embed(user), mask)
        return y

    def speak(self, heard: Tensor, mask: Tensor, reply_in: Tensor) -> Tensor:
        """Logits [B, R, V] of the next words after reply_in [B, R] (teacher forcing)."""
        R = reply_in.shape[1]
        causal = nn.Transformer.generate_square_subsequent_mask(R, device=reply_in.device)
        keep = mask.clone()
        keep[:, 0] = True  # a row with nothing heard still has one key to attend to
        h = self.decoder(self._embed(reply_in, self.config["max_len"]), heard, tgt_mask=causal,
                         tgt_is_causal=True, memory_key_padding_mask=~keep)
        return self.vocab.embedding.logits(h)

    def turn(self, user: Tensor, mask: Tensor, reply_in: Tensor) -> Tensor:
        return self.speak(self.listen(user, mask), mask, reply_in)

    @torch.no_grad()
    def generate(self, heard: Tensor, mask: Tensor) -> List[List[int]]:
        """Greedy replies (ids without SOS / EOS) for every row of a heard turn."""
        B = heard.shape[0]
        out = torch.full((B, 1), SOS, dtype=torch.int64, device=heard.device)
        done = torch.zeros(B, dtype=torch.bool, device=heard.device)
        for _ in range(self.config["max_reply"]):
            nxt = self.speak(heard, mask, out)[:, -1].argmax(-1)
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
        return self.vocab.decode(reply) if reply else "..."

    # --- checkpoints -------------------------------------------------------------------------
    def save(self, path: str, with_memory: bool = True) -> None:
        """Config, weights, vocabulary and (with_memory) the conversation's memory weights."""
        payload = {"format": CHECKPOINT_FORMAT, "config": dict(self.config),
                   "model": self.state_dict(),
                   "memory": self.memory_state() if with_memory else None}
        tmp = path + ".tmp"
        torch.save(payload, tmp)
        os.replace(tmp, path)  # a crash mid-save leaves the old file whole

    @classmethod
    def load(cls, path: str, *, impl: str = "fused", remember: bool = True) -> "MemoryChatbot":
        """A chatbot from `save` (validated: format, config, memory shapes; errors name them)."""
        try:
            payload = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as e:
            raise ValueError(f"{path}: not a MemoryChatbot checkpoint ({type(e).__name__}: {e})") from None
        if not isinstance(payload, dict) or payload.get("format") != CHECKPOINT_FORMAT:
            raise ValueError(f"{path}: not a MemoryChatbot checkpoint (format must be {CHECKPOINT_FORMAT!r})")
        bot = cls(payload.get("config"), impl=impl, remember=remember)
        bot.load_state_dict(payload["model"])
        memory = payload.get("memory")
        if memory is not None:
            widths = bot.config["memory_widths"]
            want = [(widths[l + 1], widths[l]) for l in range(len(widths) - 1)]
            got = [tuple(w.shape[1:]) for w in memory] if isinstance(memory, list) else None
            if got != want or any(w.shape[0] != 1 for w in memory):
                raise ValueError(f"{path}: memory must be {len(want)} tensors [1, n_(l+1), n_l] = "
                                 f"{want}, got {got}")
            bot.encoder.state = {"W": [w.float() for w in memory]}
        return bot


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


def normalize(text: str) -> str:
    """Text as the chatbot would say it (tokenized, joined by spaces): for exact comparisons."""
    return " ".join(tokenize(text))


__all__ = ["MemoryChatbot", "default_checkpoint", "reply_tensors", "normalize"]

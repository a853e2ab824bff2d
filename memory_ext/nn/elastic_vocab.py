"""ElasticVocab: a growing, pruned vocabulary = TokenTable (token -> stable id) + ElasticEmbedding
(rows, output projection, optimizer state) + the seed chatbot's tokenizer (spec section 4)."""
from __future__ import annotations

import re
from typing import List, Optional, Sequence

import torch
from torch import Tensor, nn

from .._C import TokenTable
from .elastic_embedding import ElasticEmbedding

SPECIALS = ("<PAD>", "<SOS>", "<EOS>", "<UNK>")
PAD, SOS, EOS, UNK = range(4)
_FORMAT = "memory_ext.ElasticVocab/1"
_APOSTROPHES = re.compile(r"[\u2019\u2018`]")  # typographic apostrophes -> '
_TOKENS = re.compile(r"\w+(?:['-]\w+)*|[^\w\s]")  # a word keeps its inner ' and -
_MARK = re.compile(r"[^\w\s]")


def tokenize(text: str, punctuation: bool = True) -> List[str]:
    """Lower case; a word keeps the apostrophes and hyphens inside it (so a name such as
    Jean-Luc or O'Brien is one token the model can say back); every other mark is a token of
    its own (punctuation=False drops them, as the bAbI reader does).

    >>> tokenize("Don't PANIC, Jean-Luc - it's fine!")
    ["don't", 'panic', ',', 'jean-luc', '-', "it's", 'fine', '!']
    >>> tokenize("Where is Mary?", punctuation=False)
    ['where', 'is', 'mary']
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    tokens = _TOKENS.findall(_APOSTROPHES.sub("'", text.lower()))
    return tokens if punctuation else [t for t in tokens if not _MARK.fullmatch(t)]


class ElasticVocab(nn.Module):
    """Vocabulary that grows when new words appear and is pruned of rare ones, keeping every
    id, embedding row and optimizer state consistent. Ids 0..3 are <PAD> <SOS> <EOS> <UNK>
    (protected from pruning). The embedding's output projection is tied to it by default.

    Args:
        embedding_dim: D
        capacity: initial embedding rows (grows geometrically past it)
        tied, bias, init_std, noise, seed, device: as in ElasticEmbedding (a chatbot that must
            say a new word back wants noise of the order of the rows' size: new words distinct)

    Examples:
        >>> import memory_ext
        >>> v = memory_ext.ElasticVocab(16)
        >>> ids = v.encode("Hello, world!")
        >>> ids.tolist(), v.decode(ids)
        ([4, 5, 6, 7], 'hello , world !')
    """

    def __init__(self, embedding_dim: int, *, capacity: int = 1024, tied: bool = True,
                 bias: bool = False, init_std: float = 0.02, noise: float = 1e-3, seed: int = 0,
                 device=None):
        super().__init__()
        self.table = TokenTable()
        self.table.add(list(SPECIALS))
        self.embedding = ElasticEmbedding(len(SPECIALS), embedding_dim, capacity=capacity,
                                          tied=tied, bias=bias, init_std=init_std, noise=noise,
                                          seed=seed, device=device)
        self._pending: List[str] = []  # tokens this rank inserted since the last sync()
        self._counts_at_sync = self.table.counts()  # what every rank agreed on at the last sync

    def __len__(self) -> int:
        return len(self.table)

    def encode(self, text: str, grow: bool = True) -> Tensor:
        """Ids [n] of tokenize(text). grow=True inserts new tokens (new embedding rows, and
        counts every use); grow=False maps unknown tokens to <UNK> and counts nothing."""
        tokens = tokenize(text)
        if not grow:
            return self.table.lookup(tokens, UNK).to(self.embedding.weight.device)
        dev = self.embedding.weight.device
        ids_d = self.table.add(tokens).to(dev)
        emb = self.embedding
        is_new = ids_d >= emb.size  # ids past the rows in use, or freed ids handed out again
        inside = ~is_new
        is_new[inside] = ~emb.live[ids_d[inside]]
        if bool(is_new.any()):
            self._pending.extend(dict.fromkeys(t for t, n in zip(tokens, is_new.tolist()) if n))
            emb.ensure(ids_d[is_new])
        self.embedding.counts.index_add_(0, ids_d, torch.ones_like(ids_d))
        return ids_d

    def decode(self, ids, skip_specials: bool = True) -> str:
        """Text of ids (a freed id is an error); <PAD> <SOS> <EOS> dropped by default."""
        if isinstance(ids, Tensor):
            ids = ids.detach().cpu().to(torch.int64)
        tokens = self.table.decode(ids)
        if skip_specials:
            tokens = [t for t in tokens if t not in SPECIALS[:3]]
        return " ".join(tokens)

    def prune(self, min_count: int, grace: int = 0, compact: bool = True) -> Tensor:
        """Free every token used fewer than min_count times (not the specials, not tokens added
        in the last `grace` encode calls) with its row; then, if compact, renumber densely.
        Returns the freed (old) ids."""
        freed = self.table.prune(min_count, list(SPECIALS), grace)
        if freed.numel():
            self.embedding.free(freed.to(self.embedding.weight.device))
            self._counts_at_sync[freed[freed < self._counts_at_sync.shape[0]]] = 0
        # a freed token is no insert to share at the next sync (and the list stays bounded)
        alive = (self.table.lookup(self._pending, -1) >= 0).tolist() if self._pending else []
        self._pending = list(dict.fromkeys(t for t, a in zip(self._pending, alive) if a))
        if compact:
            self.compact()
        return freed

    def compact(self) -> Tensor:
        """Renumber live ids densely (old order) in the table, the rows and the optimizer state
        at once. Returns the old -> new map (-1 for freed ids)."""
        remap = self.table.compact()
        base = self._counts_at_sync
        kept = (remap[: base.shape[0]] >= 0).nonzero().flatten()
        self._counts_at_sync = torch.zeros(int(kept.numel()), dtype=torch.int64)
        self._counts_at_sync[remap[kept]] = base[kept]
        full = torch.full((self.embedding.size,), -1, dtype=torch.int64)
        full[: remap.shape[0]] = remap
        self.embedding.compact(full)
        return remap

    def attach_optimizer(self, optimizer: torch.optim.Optimizer) -> None:
        self.embedding.attach_optimizer(optimizer)

    # --- data parallel ----------------------------------------------------------------------
    def sync(self, group=None) -> int:
        """Agree on the token -> id map and the use counts across the ranks of `group`
        (torch.distributed). The tokens each rank inserted since the last sync are gathered
        and, after each rank undoes its own inserts, inserted on every rank in one order (rank
        0's first, then rank 1's unseen ones, ...); their rows start identically everywhere.
        Use counts are summed over the ranks. Call it after encoding a batch and before the
        forward (ids encoded before it may change), and prune / compact only right after it
        (on every rank). Returns the number of tokens added."""
        import torch.distributed as dist
        world = dist.get_world_size(group)
        mine = list(self._pending)
        counts = self.table.counts()
        mine_counts = [int(counts[i]) for i in self.table.lookup(mine, -1).tolist()]
        gathered: List[Optional[tuple]] = [None] * world
        dist.all_gather_object(gathered, (mine, mine_counts), group=group)
        if mine:
            freed = self.table.remove(mine)
            self.embedding.free(freed.to(self.embedding.weight.device))
        # uses of the tokens every rank had at the last sync: sum this rank's increments
        base = self._counts_at_sync
        delta = self.table.counts()[: base.shape[0]] - base
        dist.all_reduce(delta, group=group)
        live = self.table.live_mask()[: base.shape[0]].nonzero().flatten()
        self.table.set_counts(live, (base + delta)[live])
        self.embedding.refresh_mean()  # identical on every rank: same live rows, same weights
        order, total = [], {}
        for tokens, cnts in gathered:
            for t, c in zip(tokens, cnts):
                if t not in total:
                    order.append(t)
                    total[t] = 0
                total[t] += c
        if order:
            ids = self.table.add(order)
            self.table.set_counts(ids, torch.tensor([total[t] for t in order]))
            self.embedding.ensure(ids.to(self.embedding.weight.device))
        self._pending = []
        self._counts_at_sync = self.table.counts()
        return len(order)

    # --- checkpoints ------------------------------------------------------------------------
    def get_extra_state(self):
        return {"format": _FORMAT, "table": self.table.state_dict(),
                "pending": list(self._pending), "counts_at_sync": self._counts_at_sync}

    @staticmethod
    def _table_of(state) -> TokenTable:
        """The TokenTable of an extra state (validated: ValueError naming what is wrong)."""
        if not isinstance(state, dict) or state.get("format") != _FORMAT:
            raise ValueError("not an ElasticVocab checkpoint")
        sd = state.get("table")
        if not isinstance(sd, dict) or not isinstance(sd.get("format"), str) or \
                isinstance(sd.get("clock"), bool) or not isinstance(sd.get("clock"), int):
            raise ValueError("ElasticVocab checkpoint: table must be a TokenTable state_dict")
        table = TokenTable()
        try:
            table.load_state_dict(sd)  # validated; raises before anything changes
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"ElasticVocab checkpoint: {e}") from None
        if len(table) < len(SPECIALS) or table.decode(list(range(len(SPECIALS)))) != list(SPECIALS):
            raise ValueError("ElasticVocab checkpoint: ids 0..3 must be the special tokens")
        pending, at_sync = state.get("pending", []), state.get("counts_at_sync")
        if not isinstance(pending, list) or not all(isinstance(t, str) for t in pending):
            raise ValueError("ElasticVocab checkpoint: pending must be a list of str")
        if at_sync is not None and not (isinstance(at_sync, Tensor) and at_sync.dtype == torch.int64
                                        and at_sync.dim() == 1):
            raise ValueError("ElasticVocab checkpoint: counts_at_sync must be a 1-D int64 tensor")
        return table

    def check_state_dict(self, state_dict, prefix: str = "") -> List[str]:
        """Why `state_dict` (keys under `prefix`) cannot be loaded into this vocabulary; [] if it
        can: the token table, the embedding rows, and their agreement (every live id has a live
        row and every live row a token). Nothing changes."""
        try:
            table = self._table_of(state_dict.get(prefix + "_extra_state"))
        except ValueError as e:
            return [f"{prefix}_extra_state: {e}"]
        errors = self.embedding.check_state(state_dict, prefix + "embedding.")
        if errors:
            return errors
        tokens = table.live_mask()
        rows = state_dict[prefix + "embedding.live"].cpu()
        n = max(tokens.shape[0], rows.shape[0])
        pad = lambda m: torch.cat([m, m.new_zeros(n - m.shape[0])])  # noqa: E731
        differ = (pad(tokens) != pad(rows)).nonzero().flatten()
        if differ.numel():
            i = int(differ[0])
            if i < tokens.shape[0] and bool(tokens[i]):
                return [f"{prefix}_extra_state: token {table.decode([i])[0]!r} has id {i} but "
                        f"embedding row {i} is " + ("dead" if i < rows.shape[0] else "missing")]
            return [f"{prefix}embedding.live: row {i} is live but no token has id {i}"]
        return []

    def load_state_dict(self, state_dict, strict: bool = True, assign: bool = False):
        """nn.Module.load_state_dict, validated first (check_state_dict, and with strict the
        keys): on error a RuntimeError and nothing changes, neither the table nor the rows."""
        errors = self.check_state_dict(state_dict)
        if strict:
            own = set(self.state_dict())
            missing, unexpected = sorted(own - set(state_dict)), sorted(set(state_dict) - own)
            if missing or unexpected:
                errors += [f"missing keys {missing}, unexpected keys {unexpected}"]
        if errors:
            raise RuntimeError("Error(s) in loading state_dict for ElasticVocab:\n\t" + "\n\t".join(errors))
        return super().load_state_dict(state_dict, strict, assign)

    def set_extra_state(self, state) -> None:
        table = self._table_of(state)
        self.table = table
        self._pending = list(state.get("pending", []))
        at_sync = state.get("counts_at_sync")
        self._counts_at_sync = table.counts() if at_sync is None else at_sync

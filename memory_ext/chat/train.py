"""Training and evaluation of MemoryChatbot on synthetic conversations (`memory-ext train-chat`,
`memory-ext eval-chat`). A batch is B whole conversations, run turn by turn with the memory kept
across turns; the loss is the replies' cross-entropy plus recon_weight * mean recon."""
from __future__ import annotations

import time
from typing import Dict, List, Optional, Sequence

import torch
from torch import nn

from ..nn.elastic_vocab import PAD
from .bot import MemoryChatbot, normalize, reply_tensors
from .dialogues import Conversation


def _turn_lines(batch: Sequence[Conversation], i: int):
    users = [c.turns[i][0] if i < len(c.turns) else "" for c in batch]
    replies = [c.turns[i][1] if i < len(c.turns) else "" for c in batch]
    active = torch.tensor([i < len(c.turns) for c in batch])
    return users, replies, active


def encode_batch(bot: MemoryChatbot, batch: Sequence[Conversation]) -> List[tuple]:
    """Every turn's tensors, encoded before any forward: the vocabulary (and so the embedding
    rows) grows here, never between the forward and the backward of a step."""
    turns = []
    for i in range(max(len(c.turns) for c in batch)):
        users, replies, active = _turn_lines(batch, i)
        user, mask = bot.encode_lines(users)
        inp, tgt = reply_tensors(replies, bot.vocab, max_reply=bot.config["max_reply"])
        tgt[~active.to(tgt.device)] = PAD
        turns.append((user, mask, inp, tgt))
    return turns


def conversation_loss(bot: MemoryChatbot, turns: List[tuple], recon_weight: float = 0.1):
    """(loss, reply tokens) of one batch of conversations from encode_batch."""
    bot.forget()
    ce, tokens, recon = 0.0, 0, 0.0
    for user, mask, inp, tgt in turns:
        logits = bot.turn(user, mask, inp)
        ce = ce + nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(),
                                              ignore_index=PAD, reduction="sum")
        tokens += int((tgt != PAD).sum())
        m = mask.to(bot.recon.dtype)
        recon = recon + (bot.recon * m).sum() / m.sum().clamp(min=1)
    return ce / max(tokens, 1) + recon_weight * recon / len(turns), tokens


def train_chat(bot: MemoryChatbot, conversations: Sequence[Conversation], *, epochs: int = 1,
               batch_size: int = 32, lr: float = 1e-3, recon_weight: float = 0.1, seed: int = 0,
               prune_every: int = 20, prune_min_count: int = 30, progress=None, on_epoch=None,
               ddp_step=None) -> Dict:
    """Adam over `epochs` passes of `conversations` (shuffled per epoch). Every `prune_every`
    batches the words used fewer than `prune_min_count` times are pruned (names and cities of
    past conversations), so the model keeps meeting names as fresh rows, as it will at test
    time, and the vocabulary stays small. `progress(n)` after
    every batch; `on_epoch(epoch, losses)` after every epoch; `ddp_step` (a
    memory_ext.chat.distributed.ChatDDP), when given, syncs the vocabulary before each forward, runs
    the forward under DDP and averages the embedding's gradient. Returns the loss curve."""
    opt = torch.optim.Adam(bot.parameters(), lr=lr)
    bot.vocab.attach_optimizer(opt)
    g = torch.Generator().manual_seed(seed)
    losses: List[float] = []
    t0 = time.perf_counter()
    bot.train()
    step = 0
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(conversations), generator=g).tolist()
        for s in range(0, len(order), batch_size):
            batch = [conversations[i] for i in order[s: s + batch_size]]
            step += 1
            if prune_every and step % prune_every == 0:
                if ddp_step is not None:
                    bot.vocab.sync()  # the same counts on every rank: the same words pruned
                bot.vocab.prune(prune_min_count)
            turns = encode_batch(bot, batch)
            if ddp_step is not None:
                turns = ddp_step.before_forward(bot, batch, turns)
                loss = ddp_step.loss(turns)
            else:
                loss, _ = conversation_loss(bot, turns, recon_weight)
            opt.zero_grad()
            loss.backward()
            if ddp_step is not None:
                ddp_step.after_backward(bot)
            nn.utils.clip_grad_norm_(bot.parameters(), 1.0)
            opt.step()
            losses.append(float(loss.detach()))
            del loss  # drop the step's graph before the next batch grows the vocabulary
            bot.forget()
            if progress is not None:
                progress(1)
        if on_epoch is not None:
            on_epoch(epoch, losses)
    bot.forget()
    return {"losses": losses, "seconds": time.perf_counter() - t0}


@torch.no_grad()
def eval_recall(bot: MemoryChatbot, conversations: Sequence[Conversation],
                batch_size: int = 50, prune_min_count: int = 30) -> Dict:
    """Exact-reply accuracy on the turns that ask a fact (greedy replies; the user lines are
    written to memory as they come, new words enter the vocabulary). Also per fact kind.
    Between batches the words used fewer than prune_min_count times are pruned, as in
    training (0: never), so earlier conversations' names do not pile up in the vocabulary."""
    was = bot.training
    bot.eval()
    right: Dict[str, int] = {}
    asked: Dict[str, int] = {}
    t0 = time.perf_counter()
    for s in range(0, len(conversations), batch_size):
        batch = conversations[s: s + batch_size]
        bot.forget()
        if prune_min_count:
            bot.vocab.prune(prune_min_count)
        for i in range(max(len(c.turns) for c in batch)):
            users, replies, active = _turn_lines(batch, i)
            user, mask = bot.encode_lines(users)
            heard = bot.listen(user, mask)
            rows = [b for b, c in enumerate(batch) if i in c.asks]
            if not rows:
                continue
            said = bot.generate(heard[rows], mask[rows])
            for b, ids in zip(rows, said):
                kind = batch[b].asks[i]
                ok = bot.vocab.decode(ids) == normalize(replies[b])
                asked[kind] = asked.get(kind, 0) + 1
                right[kind] = right.get(kind, 0) + int(ok)
    bot.forget()
    bot.train(was)
    n = sum(asked.values())
    return {"accuracy": sum(right.values()) / max(n, 1), "asked": n,
            "per_fact": {k: right[k] / asked[k] for k in sorted(asked)},
            "seconds": time.perf_counter() - t0}


def plot_losses(losses: Sequence[float], path: str) -> Optional[str]:
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, ax = plt.subplots(figsize=(7, 3.5))
    ax.plot(range(1, len(losses) + 1), losses, lw=0.8)
    ax.set_xlabel("step")
    ax.set_ylabel("loss")
    ax.set_yscale("log")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path

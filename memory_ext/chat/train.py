"""Training and evaluation of MemoryChatbot on synthetic conversations (`memory-ext train-chat`,
`memory-ext eval-chat`). A batch is B whole conversations, run turn by turn with the memory kept
across turns; the loss is the replies' cross-entropy plus recon_weight * mean recon."""
from __future__ import annotations

import math
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


def encode_batch(bot: MemoryChatbot, batch: Sequence[Conversation], answer_weight: float = 1.0) -> List[tuple]:
    """Every turn's tensors (user [B, T], mask [B, T], reply_in [B, R], reply_target [B, R],
    weight [B]), encoded before any forward: the vocabulary (and so the embedding rows) grows
    here, never between the forward and the backward of a step. weight is answer_weight on the
    rows whose turn asks a fact, 1 elsewhere."""
    turns = []
    for i in range(max(len(c.turns) for c in batch)):
        users, replies, active = _turn_lines(batch, i)
        user, mask = bot.encode_lines(users)
        inp, tgt = reply_tensors(replies, bot.vocab, max_reply=bot.config["max_reply"])
        tgt[~active.to(tgt.device)] = PAD
        weight = torch.tensor([answer_weight if i in c.asks else 1.0 for c in batch], device=tgt.device)
        turns.append((user, mask, inp, tgt, weight))
    return turns


def conversation_loss(bot: MemoryChatbot, turns: List[tuple], recon_weight: float = 0.1):
    """(loss, reply tokens) of one batch of conversations from encode_batch: the replies'
    cross-entropy averaged over tokens, each weighted by its row's weight, plus recon_weight
    times the mean reconstruction loss of the turns."""
    bot.forget()
    ce, total, tokens, recon = 0.0, 0.0, 0, 0.0
    for user, mask, inp, tgt, weight in turns:
        logits = bot.turn(user, mask, inp)
        per_token = nn.functional.cross_entropy(logits.flatten(0, 1), tgt.flatten(), ignore_index=PAD,
                                                reduction="none").view_as(tgt)
        w = weight[:, None] * (tgt != PAD)
        ce = ce + (per_token * w).sum()
        total = total + w.sum()
        tokens += int((tgt != PAD).sum())
        m = mask.to(bot.recon.dtype)
        recon = recon + (bot.recon * m).sum() / m.sum().clamp(min=1)
    return ce / max(float(total), 1e-9) + recon_weight * recon / len(turns), tokens


def train_chat(bot: MemoryChatbot, conversations: Sequence[Conversation], *, epochs: int = 1,
               batch_size: int = 32, lr: float = 1e-3, recon_weight: float = 0.1, seed: int = 0,
               prune_every: int = 20, prune_min_count: int = 30, answer_weight: float = 1.0,
               progress=None, on_epoch=None, ddp_step=None) -> Dict:
    """Adam over `epochs` passes of `conversations` (shuffled per epoch), the learning rate
    falling from lr to lr / 10 along a cosine. Every `prune_every`
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
    step, total = 0, epochs * ((len(conversations) + batch_size - 1) // batch_size)
    for epoch in range(1, epochs + 1):
        order = torch.randperm(len(conversations), generator=g).tolist()
        for s in range(0, len(order), batch_size):
            batch = [conversations[i] for i in order[s: s + batch_size]]
            step += 1
            if prune_every and step % prune_every == 0:
                if ddp_step is not None:
                    bot.vocab.sync()  # the same counts on every rank: the same words pruned
                bot.vocab.prune(prune_min_count)
            turns = encode_batch(bot, batch, answer_weight)
            if ddp_step is not None:
                turns = ddp_step.before_forward(bot, batch, answer_weight)
                loss = ddp_step.loss(turns)
            else:
                loss, _ = conversation_loss(bot, turns, recon_weight)
            for group in opt.param_groups:  # cosine from lr down to lr / 10 over the run
                group["lr"] = lr * (0.55 + 0.45 * math.cos(math.pi * (step - 1) / max(total - 1, 1)))
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
    written to memory as they come, new words enter the vocabulary). Returns fractions:
        recall: of questions about told facts, answered with the value that counts
        per_fact: recall per fact kind
        multi_word: recall where the value has two or more words
        corrected: recall where the fact was corrected (or told again) before the question
        honesty: of questions about facts never told, answered "you have not told me ..."
    and the counts behind each (n_*). Between batches the words used fewer than
    prune_min_count times are pruned, as in training (0: never), so earlier conversations'
    names do not pile up in the vocabulary."""
    was = bot.training
    bot.eval()
    tally: Dict[str, List[int]] = {}  # group -> [right, asked]

    def count(group: str, ok: bool) -> None:
        t = tally.setdefault(group, [0, 0])
        t[0] += int(ok)
        t[1] += 1

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
            said = bot.generate(heard[rows], mask[rows], rows)
            for b, ids in zip(rows, said):
                ask = batch[b].asks[i]
                ok = bot.vocab.decode(ids) == normalize(replies[b])
                if ask.value is None:
                    count("honesty", ok)
                    continue
                count("recall", ok)
                count("fact:" + ask.fact, ok)
                if len(ask.value.split()) >= 2:
                    count("multi_word", ok)
                if ask.corrected:
                    count("corrected", ok)
    bot.forget()
    bot.train(was)
    frac = {k: r / n for k, (r, n) in tally.items()}
    out = {k: frac.get(k) for k in ("recall", "multi_word", "corrected", "honesty")}
    out["per_fact"] = {k[5:]: v for k, v in sorted(frac.items()) if k.startswith("fact:")}
    out.update({f"n_{k}": tally.get(k, [0, 0])[1] for k in ("recall", "multi_word", "corrected", "honesty")})
    out["seconds"] = time.perf_counter() - t0
    return out


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

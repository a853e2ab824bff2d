"""Loader of the bAbI QA tasks (Weston et al. 2015, v1.2 file format, CC BY 3.0).

A task file is a list of numbered lines; numbering restarts at 1 with every story. A statement
is `ID text.`; a question is `ID text?<TAB>answer<TAB>supporting ids`. Every question is one
example: the story's statements before it (the memory), the question, the answer (one token;
lists such as `n,s` are one answer token) and the supporting statements as memory indices.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass
from typing import Dict, List, Sequence, Tuple

import torch

from ..nn.elastic_vocab import tokenize as _tokenize

TASK_NAMES = {
    1: "single-supporting-fact", 2: "two-supporting-facts", 3: "three-supporting-facts",
    4: "two-arg-relations", 5: "three-arg-relations", 6: "yes-no-questions", 7: "counting",
    8: "lists-sets", 9: "simple-negation", 10: "indefinite-knowledge",
    11: "basic-coreference", 12: "conjunction", 13: "compound-coreference", 14: "time-reasoning",
    15: "basic-deduction", 16: "basic-induction", 17: "positional-reasoning",
    18: "size-reasoning", 19: "path-finding", 20: "agents-motivations",
}


@dataclass
class Example:
    story: List[List[str]]   # statements before the question, oldest first
    question: List[str]
    answer: str
    supports: List[int]      # indices into story


def tokenize(sentence: str) -> List[str]:
    """Words of a story sentence or question, lower case, "." and "?" dropped (answers such as
    "n,s" are not tokenized: they are one label)."""
    return _tokenize(sentence, punctuation=False)


def parse(lines: Sequence[str], source: str = "<lines>") -> List[Example]:
    """Examples of one task file's lines (errors name the file and line)."""
    out: List[Example] = []
    story: List[List[str]] = []
    line_to_slot: Dict[int, int] = {}
    for n, raw in enumerate(lines, 1):
        raw = raw.rstrip("\n")
        if not raw.strip():
            continue
        head, _, rest = raw.partition(" ")
        if not head.isdigit():
            raise ValueError(f"{source}:{n}: a line must start with its number, got {raw[:40]!r}")
        lid = int(head)
        if lid == 1:
            story, line_to_slot = [], {}
        if "\t" in rest:
            parts = rest.split("\t")
            if len(parts) < 3:
                raise ValueError(f"{source}:{n}: a question needs 'text<TAB>answer<TAB>ids'")
            try:
                sup = [line_to_slot[int(x)] for x in parts[2].split()]
            except (KeyError, ValueError):
                raise ValueError(f"{source}:{n}: supporting ids {parts[2]!r} are not statements "
                                 f"of this story") from None
            out.append(Example([list(s) for s in story], tokenize(parts[0]), parts[1].strip().lower(), sup))
        else:
            line_to_slot[lid] = len(story)
            story.append(tokenize(rest))
    return out


def task_files(data_dir: str, task: int, split: str = "en") -> Tuple[str, str]:
    """(train path, test path) of a task in a tasks_1-20_v1-2-style folder."""
    if task not in TASK_NAMES:
        raise ValueError(f"task must be in 1..20, got {task}")
    folder = os.path.join(data_dir, split)
    if not os.path.isdir(folder):
        raise FileNotFoundError(f"no bAbI split folder {folder} (split must be 'en' or 'en-10k')")
    stem = os.path.join(folder, f"qa{task}_{TASK_NAMES[task]}")
    return stem + "_train.txt", stem + "_test.txt"


def load_task(data_dir: str, task: int, split: str = "en") -> Tuple[List[Example], List[Example]]:
    """(train, test) examples of one task. A missing file is a clear error."""
    out = []
    for path in task_files(data_dir, task, split):
        if not os.path.exists(path):
            raise FileNotFoundError(f"bAbI file missing: {path}")
        with open(path, encoding="utf-8") as f:
            out.append(parse(f.readlines(), path))
    return out[0], out[1]


def split_validation(train: List[Example], fraction: float = 0.1, seed: int = 0
                     ) -> Tuple[List[Example], List[Example]]:
    """A seeded random `fraction` of the training examples held out for validation."""
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(train), generator=g).tolist()
    n_val = int(round(len(train) * fraction))
    val = set(order[:n_val])
    return [e for i, e in enumerate(train) if i not in val], [train[i] for i in sorted(val)]


class Vocab:
    """Word -> id with 0 kept for padding (the null symbol)."""

    def __init__(self, examples: Sequence[Example]):
        words = set()
        for e in examples:
            for s in e.story:
                words.update(s)
            words.update(e.question)
            words.add(e.answer)
        self.words = ["<nil>"] + sorted(words)
        self.index = {w: i for i, w in enumerate(self.words)}

    def __len__(self) -> int:
        return len(self.words)

    def ids(self, tokens: Sequence[str]) -> List[int]:
        return [self.index[t] for t in tokens]


@dataclass
class Batchable:
    """Padded tensors of a list of examples (the most recent `memory_size` statements)."""
    stories: torch.Tensor    # [n, memory_size, sentence_len] int64 (0 = pad)
    counts: torch.Tensor     # [n] live statements
    queries: torch.Tensor    # [n, sentence_len]
    answers: torch.Tensor    # [n]
    supports: torch.Tensor   # [n, 3] memory indices of the supporting facts (-1 = none)


def vectorize(examples: Sequence[Example], vocab: Vocab, memory_size: int = 50,
              sentence_len: int = 0) -> Batchable:
    """sentence_len 0: the longest sentence or question in `examples`."""
    if sentence_len <= 0:
        sentence_len = max(max((len(s) for e in examples for s in e.story), default=1),
                           max(len(e.question) for e in examples))
    n = len(examples)
    stories = torch.zeros(n, memory_size, sentence_len, dtype=torch.int64)
    queries = torch.zeros(n, sentence_len, dtype=torch.int64)
    counts = torch.zeros(n, dtype=torch.int64)
    answers = torch.zeros(n, dtype=torch.int64)
    supports = torch.full((n, 3), -1, dtype=torch.int64)
    for i, e in enumerate(examples):
        first = max(0, len(e.story) - memory_size)
        for j, s in enumerate(e.story[first:]):
            ids = vocab.ids(s)[:sentence_len]
            stories[i, j, : len(ids)] = torch.tensor(ids)
        counts[i] = len(e.story) - first
        q = vocab.ids(e.question)[:sentence_len]
        queries[i, : len(q)] = torch.tensor(q)
        answers[i] = vocab.index[e.answer]
        sup = [s - first for s in e.supports if s >= first][:3]
        supports[i, : len(sup)] = torch.tensor(sup, dtype=torch.int64)
    return Batchable(stories, counts, queries, answers, supports)


def prepare_task(data_dir: str, task: int, split: str, memory_size: int, seed: int):
    """Vocabulary, sentence length J, slots N = min(memory_size, longest story) and the
    vectorised train / validation / test sets."""
    train, test = load_task(data_dir, task, split)
    train, val = split_validation(train, 0.1, seed)
    every = train + val + test
    vocab = Vocab(every)
    J = max(max((len(s) for e in every for s in e.story), default=1),
            max(len(e.question) for e in every))
    N = max(1, min(memory_size, max(len(e.story) for e in every)))
    vec = lambda ex: vectorize(ex, vocab, N, J)  # noqa: E731
    return vocab, J, N, vec(train), vec(val), vec(test)

"""Synthetic conversations that test memory across turns: facts are told (name, city, pet,
favourite food, in paraphrased templates), distractor turns follow, then the facts are asked.

Names and cities are made from syllables. The "train" pool and the "heldout" pool use disjoint
syllable sets, so a held-out name or city is never a word of any training conversation: it
enters the vocabulary at test time. Small-talk distractors come from the dialogue pairs in
../shared/data/chat (JSON lines {"listen": ..., "reply": ...}) when given, plus a few built in.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

FACTS = ("name", "city", "pet", "food")
PETS = ("dog", "cat", "parrot", "hamster", "rabbit", "turtle", "goldfish", "horse", "snake", "ferret")
FOODS = ("pizza", "pasta", "sushi", "curry", "tacos", "soup", "salad", "pancakes", "dumplings", "noodles")

TELL = {
    "name": ["my name is {}", "i am {}", "call me {}", "people call me {}", "hi , i am {}"],
    "city": ["i live in {}", "i am from {}", "my home town is {}", "i grew up in {}"],
    "pet": ["i have a {}", "my pet is a {}", "i own a {}", "at home i keep a {}"],
    "food": ["my favourite food is {}", "i love eating {}", "i really like {}", "{} is my favourite food"],
}
ACK = {
    "name": "nice to meet you , {} !",
    "city": "{} sounds like a nice place .",
    "pet": "a {} , how lovely .",
    "food": "{} is tasty .",
}
ASK = {
    "name": ["what is my name ?", "do you remember my name ?", "who am i ?", "what am i called ?"],
    "city": ["where do i live ?", "which city am i from ?", "where is my home town ?"],
    "pet": ["what pet do i have ?", "which animal do i keep ?", "what is my pet ?"],
    "food": ["what is my favourite food ?", "what do i love eating ?", "which food do i like ?"],
}
ANSWER = {
    "name": "your name is {} .",
    "city": "you live in {} .",
    "pet": "you have a {} .",
    "food": "your favourite food is {} .",
}
SMALL_TALK = [
    ("how are you ?", "i am fine , thank you ."),
    ("what a nice day", "yes , the weather is lovely ."),
    ("tell me something", "i like talking to you ."),
    ("i am bored", "shall we chat a little ?"),
    ("thanks", "you are welcome ."),
    ("ok", "ok !"),
]
_SYLLABLES = {
    "train": ("ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "pe", "ri", "go", "ba", "le"),
    "heldout": ("zu", "fey", "qua", "xo", "jin", "wex", "yul", "oth", "thi", "gru", "ska", "vor"),
}
_CITY_ENDS = {"train": ("ton", "burg", "ville", "field"), "heldout": ("port", "haven", "stad", "mouth")}


def make_name(rng: random.Random, pool: str) -> str:
    syl = _SYLLABLES[pool]
    return "".join(rng.choice(syl) for _ in range(rng.randint(2, 3)))


def make_city(rng: random.Random, pool: str) -> str:
    return make_name(rng, pool)[:5] + rng.choice(_CITY_ENDS[pool])


def load_pairs(path: str) -> List[Tuple[str, str]]:
    """(listen, reply) pairs of a JSON-lines file; a bad line is an error naming the line."""
    pairs = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
                pairs.append((str(obj["listen"]), str(obj["reply"])))
            except (ValueError, KeyError, TypeError) as e:
                raise ValueError(f"{path}:{n}: expected {{\"listen\": ..., \"reply\": ...}}: {e}") from None
    return pairs


def load_chat_dir(path: Optional[str]) -> List[Tuple[str, str]]:
    """The built-in small talk plus every *.json pair file in `path` (None: built-in only)."""
    pairs = list(SMALL_TALK)
    if path:
        if not os.path.isdir(path):
            raise FileNotFoundError(f"chat data folder {path} not found")
        for name in sorted(os.listdir(path)):
            if name.endswith(".json"):
                pairs.extend(load_pairs(os.path.join(path, name)))
    return pairs


@dataclass
class Conversation:
    turns: List[Tuple[str, str]]            # (user line, bot reply)
    facts: Dict[str, str]                   # fact -> value told in this conversation
    asks: Dict[int, str] = field(default_factory=dict)  # turn index -> the fact it asks


class DialogueGenerator:
    """Conversations of `n_facts` told facts, each followed by 0-1 small talk, then
    `distractors` (a (lo, hi) range) small-talk turns, then the facts asked in random order.

    pool "train" or "heldout" picks the name / city syllables (disjoint between the two)."""

    def __init__(self, pairs: Sequence[Tuple[str, str]] = SMALL_TALK, pool: str = "train",
                 n_facts: Tuple[int, int] = (1, 4), distractors: Tuple[int, int] = (1, 3),
                 seed: int = 0):
        if pool not in _SYLLABLES:
            raise ValueError(f"pool must be 'train' or 'heldout', got {pool!r}")
        if not pairs:
            raise ValueError("pairs must hold at least one (listen, reply) pair")
        self.pairs, self.pool, self.n_facts, self.distractors = list(pairs), pool, n_facts, distractors
        self.rng = random.Random(seed)

    def _value(self, fact: str) -> str:
        r = self.rng
        if fact == "name":
            return make_name(r, self.pool)
        if fact == "city":
            return make_city(r, self.pool)
        return r.choice(PETS if fact == "pet" else FOODS)

    def _small_talk(self) -> Tuple[str, str]:
        return self.rng.choice(self.pairs)

    def conversation(self) -> Conversation:
        r = self.rng
        facts = r.sample(FACTS, r.randint(*self.n_facts))
        values = {f: self._value(f) for f in facts}
        turns: List[Tuple[str, str]] = []
        for f in facts:
            turns.append((r.choice(TELL[f]).format(values[f]), ACK[f].format(values[f])))
            if r.random() < 0.3:
                turns.append(self._small_talk())
        for _ in range(r.randint(*self.distractors)):
            turns.append(self._small_talk())
        asks = {}
        for f in r.sample(facts, len(facts)):
            asks[len(turns)] = f
            turns.append((r.choice(ASK[f]), ANSWER[f].format(values[f])))
        return Conversation(turns, values, asks)

    def conversations(self, n: int) -> List[Conversation]:
        return [self.conversation() for _ in range(n)]

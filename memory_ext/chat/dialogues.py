"""Synthetic conversations that test memory across turns, phrased the way people type.

A conversation tells some facts (name, city, pet, favourite food), chats a little, then asks
about facts, told and untold. The user's lines vary as typed text does: greetings and filler
around a fact, capitals, punctuation or none, contractions (I'm, what's, name's), two facts in
one line, corrections ("actually, call me ...") and facts of one kind told twice (the later one
counts), up to 8 small-talk turns between telling and asking, questions in varied wording with
or without a question mark, and questions about facts never told, answered honestly ("you have
not told me your name yet.").

Names and cities are one to three words, some hyphenated (Kalo-Mira) or apostrophised
(O'Rasu), made from syllables. The "train" pool and the "heldout" pool use disjoint syllable
sets, so a held-out name or city word is never a word of any training conversation: it enters
the vocabulary at test time. Pets and foods come from small closed lists (some of two words).
Small-talk pairs: the built-in ones below plus the dialogue pairs in ../shared/data/chat
(JSON lines {"listen": ..., "reply": ...}) when given; no other dialogue data is used.
"""
from __future__ import annotations

import json
import os
import random
from dataclasses import dataclass, field
from typing import Dict, List, Optional, Sequence, Tuple

from ..nn.elastic_vocab import tokenize

FACTS = ("name", "city", "pet", "food")
PETS = ("dog", "cat", "parrot", "hamster", "rabbit", "turtle", "goldfish", "horse", "snake",
        "ferret", "guinea pig", "bearded dragon")
FOODS = ("pizza", "pasta", "sushi", "curry", "tacos", "soup", "salad", "pancakes", "dumplings",
         "noodles", "ice cream", "fried rice")

GREETINGS = ("hi", "hello", "hey", "hi there", "hello there", "good morning", "good evening",
             "hey bot", "hiya", "greetings")
TELL = {
    "name": ("my name is {}", "i am {}", "i'm {}", "call me {}", "people call me {}",
             "my name's {}", "name's {}", "you can call me {}", "this is {}", "the name is {}",
             "{} here"),
    "city": ("i live in {}", "i'm from {}", "i am from {}", "i grew up in {}",
             "my home town is {}", "i live in {} these days", "home is {}", "i'm based in {}",
             "i moved to {} last year"),
    "pet": ("i have a {}", "i've got a {}", "my pet is a {}", "i own a {}", "at home i keep a {}",
            "we have a {} at home"),
    "food": ("my favourite food is {}", "my favorite food is {}", "i love eating {}",
             "i really like {}", "{} is my favourite food", "i could eat {} every day"),
}
CORRECT = ("actually, ", "sorry, i meant ", "no wait, ", "oops, ", "correction: ", "actually ")
ACK = {
    "name": "nice to meet you , {} !",
    "city": "{} sounds like a nice place .",
    "pet": "a {} , how lovely .",
    "food": "{} is tasty .",
}
ACK_MANY = "got it , i will remember that ."
ACK_CORRECTED = "ok , {} it is ."
ASK = {
    "name": ("what is my name", "what's my name", "do you remember my name", "who am i",
             "what am i called", "do you know my name", "what did i say my name was",
             "remind me of my name", "tell me my name"),
    "city": ("where do i live", "where am i from", "which city am i from", "what is my home town",
             "where's my home town", "do you know where i live", "where did i say i live",
             "remind me where i live"),
    "pet": ("what pet do i have", "what's my pet", "which animal do i keep", "what is my pet",
            "do you remember my pet", "what kind of pet do i have"),
    "food": ("what is my favourite food", "what's my favorite food", "what do i love eating",
             "which food do i like", "do you remember my favourite food",
             "what food do i like best"),
}
ASK_LEAD = ("", "", "", "ok, ", "by the way, ", "quick question: ", "hey, ", "so ", "one more thing, ")
ANSWER = {
    "name": "your name is {} .",
    "city": "you live in {} .",
    "pet": "you have a {} .",
    "food": "your favourite food is {} .",
}
UNTOLD = {
    "name": "you have not told me your name yet .",
    "city": "you have not told me where you live yet .",
    "pet": "you have not told me about a pet yet .",
    "food": "you have not told me your favourite food yet .",
}
SMALL_TALK = [
    ("how are you ?", "i am fine , thank you ."),
    ("how's it going?", "i am fine , thank you ."),
    ("what a nice day", "yes , the weather is lovely ."),
    ("the weather is nice today!", "yes , the weather is lovely ."),
    ("tell me something", "i like talking to you ."),
    ("i am bored", "shall we chat a little ?"),
    ("I'm so bored...", "shall we chat a little ?"),
    ("thanks", "you are welcome ."),
    ("thank you!", "you are welcome ."),
    ("ok", "ok !"),
    ("cool", "ok !"),
    ("lol", "glad you are having fun ."),
    ("haha that's funny", "glad you are having fun ."),
    ("what can you do?", "i can remember what you tell me ."),
    ("i had a long day at work", "i hope you can rest now ."),
    ("it's raining again", "stay dry out there ."),
    ("do you like music?", "i like all kinds of music ."),
    ("what's up?", "not much , just chatting with you ."),
    ("good night", "sleep well !"),
]
_SYLLABLES = {
    "train": ("ka", "lo", "mi", "ra", "te", "su", "no", "vi", "da", "pe", "ri", "go", "ba", "le"),
    "heldout": ("zu", "fey", "qua", "xo", "jin", "wex", "yul", "oth", "thi", "gru", "ska", "vor"),
}
_CITY_ENDS = {"train": ("ton", "burg", "ville", "field"), "heldout": ("port", "haven", "stad", "mouth")}
_CITY_FIRST = {"train": ("new", "san", "el"), "heldout": ("lake", "fort", "mount")}
# Real names and places, for half of the held-out values (pool "heldout" only; a candidate
# with a word that training can produce, or that the small talk uses, is dropped).
REAL_NAMES = ("Penelope", "Jean-Luc", "Mary Ann", "Oliver Twist", "Amelia Earhart", "Santiago",
              "Aiko Tanaka", "Priya Sharma", "Mohammed Al-Sayed", "Siobhan O'Connor", "Zoe",
              "Bjorn", "Anne-Marie Dubois", "Kwame Mensah", "Ingrid Bergstrom", "Luis Fernando",
              "Hiroshi", "Fatima Zahra", "Wojciech", "Ngozi Okafor", "Dmitri Ivanov",
              "Eleanor Rigby", "D'Angelo", "Yusuf", "Camille", "Rosalind Franklin", "Tobias",
              "Mei Ling", "Giuseppe Verdi", "Astrid", "Joao Pedro", "Ada Lovelace", "Francesca",
              "O'Brien", "Marie-Claire", "Finn", "Kateryna", "Rafael Nadal", "Beatrix", "Oskar")
REAL_CITIES = ("Paris", "Tokyo", "Buenos Aires", "Rio de Janeiro", "Stratford-upon-Avon",
               "Kuala Lumpur", "Hong Kong", "Cape Town", "Reykjavik", "Winston-Salem",
               "Salt Lake City", "Addis Ababa", "Osaka", "Marseille", "Ho Chi Minh City",
               "Nairobi", "Montreal", "Wellington", "Lisbon", "Krakow", "Edinburgh",
               "Saint-Etienne", "Lagos", "Chicago", "Bangalore", "Quebec", "Vancouver",
               "Dublin", "Glasgow", "Santiago de Chile", "Tel Aviv", "Aix-en-Provence")


def _word(rng: random.Random, pool: str) -> str:
    syl = _SYLLABLES[pool]
    return "".join(rng.choice(syl) for _ in range(rng.randint(2, 3)))


def make_name(rng: random.Random, pool: str) -> str:
    """One to three words, Title Case; some hyphenated (Kalo-Mira) or apostrophised (O'Rasu)."""
    r = rng.random()
    if r < 0.15:
        first = f"{_word(rng, pool)}-{_word(rng, pool)}"
    elif r < 0.25:
        first = f"{rng.choice('od')}'{_word(rng, pool)}"
    else:
        first = _word(rng, pool)
    words = [first] + [_word(rng, pool) for _ in range(rng.choice((0, 0, 1, 1, 2)))]
    return " ".join(_title(w) for w in words)


def make_city(rng: random.Random, pool: str) -> str:
    """One to three words, Title Case: Kalovi, Rateburg, New Sudaton, Saint-Mira Falls-like."""
    core = _word(rng, pool)[:5] + rng.choice(_CITY_ENDS[pool])
    r = rng.random()
    if r < 0.3:
        words = [rng.choice(_CITY_FIRST[pool]), core]
    elif r < 0.45:
        words = [_word(rng, pool), core]
    elif r < 0.55:
        words = [f"{_word(rng, pool)}-{_word(rng, pool)}"]
    elif r < 0.65:
        words = [rng.choice(_CITY_FIRST[pool]), _word(rng, pool), core]
    else:
        words = [core]
    return " ".join(_title(w) for w in words)


def _pool_words(pool: str) -> set:
    """Every word make_name / make_city of a pool can produce (hyphenated and apostrophised
    values are made of these)."""
    syl = _SYLLABLES[pool]
    words = {a + b for a in syl for b in syl}
    words |= {w + c for w in words for c in syl}
    cities = {w[:5] + e for w in words for e in _CITY_ENDS[pool]}
    return words | cities | set(_CITY_FIRST[pool])


def _train_word(word: str) -> bool:
    """Whether training could hold this word or a part of it (split at ' and -)."""
    parts = [p for chunk in word.split("-") for p in chunk.split("'")]
    return any(p in _TRAIN_WORDS for p in [word] + parts)


def _known_words(pairs: Sequence[Tuple[str, str]]) -> set:
    """Every word of the small talk and of the fixed phrasings (templates, pets, foods)."""
    texts = [t for pair in pairs for t in pair] + list(PETS) + list(FOODS) + list(GREETINGS)
    for group in (TELL, ACK, ASK, ANSWER, UNTOLD):
        texts += [t for v in group.values() for t in ([v] if isinstance(v, str) else v)]
    texts += list(CORRECT) + list(ASK_LEAD) + [ACK_MANY, ACK_CORRECTED]
    return {w for t in texts for w in tokenize(t.replace("{}", " "))}


_TRAIN_WORDS = _pool_words("train")


def _title(word: str) -> str:
    """kalo-mira -> Kalo-Mira, o'rasu -> O'Rasu."""
    out, up = [], True
    for ch in word:
        out.append(ch.upper() if up else ch)
        up = ch in "-'"
    return "".join(out)


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
class Ask:
    """A question turn: the fact kind it asks, the value the answer must say (None: never told,
    the answer is the honest UNTOLD line) and whether that fact was corrected before."""
    fact: str
    value: Optional[str]
    corrected: bool = False


@dataclass
class Conversation:
    turns: List[Tuple[str, str]]            # (user line, bot reply)
    facts: Dict[str, str]                   # fact -> the value that counts (the last one told)
    asks: Dict[int, Ask] = field(default_factory=dict)  # turn index -> what it asks


class DialogueGenerator:
    """Conversations: `n_facts` (a (lo, hi) range) kinds told, each followed by 0-1 small talk,
    sometimes two in one line, sometimes corrected later; then `distractors` small-talk turns;
    then every told fact asked (in random order) and, with probability `p_untold` each, the
    untold kinds asked too.

    pool "train" or "heldout" picks the name / city syllables (disjoint between the two)."""

    def __init__(self, pairs: Sequence[Tuple[str, str]] = SMALL_TALK, pool: str = "train",
                 n_facts: Tuple[int, int] = (0, 4), distractors: Tuple[int, int] = (1, 8),
                 p_untold: float = 0.3, seed: int = 0):
        if pool not in _SYLLABLES:
            raise ValueError(f"pool must be 'train' or 'heldout', got {pool!r}")
        if not pairs:
            raise ValueError("pairs must hold at least one (listen, reply) pair")
        lo, hi = n_facts
        if not 0 <= lo <= hi <= len(FACTS):
            raise ValueError(f"n_facts must be a range within [0, {len(FACTS)}], got {n_facts}")
        if not 0 <= distractors[0] <= distractors[1]:
            raise ValueError(f"distractors must be a range (lo, hi) with 0 <= lo <= hi, got {distractors}")
        self.pairs, self.pool, self.n_facts, self.distractors = list(pairs), pool, n_facts, distractors
        self.p_untold = p_untold
        self.rng = random.Random(seed)
        self._real = {"name": (), "city": ()}
        if pool == "heldout":
            known = _known_words(self.pairs)
            self._real = {f: tuple(v for v in values if not set(tokenize(v)) & known
                                   and not any(_train_word(w) for w in tokenize(v)))
                          for f, values in (("name", REAL_NAMES), ("city", REAL_CITIES))}

    # --- surface forms -------------------------------------------------------------------------
    def _value(self, fact: str) -> str:
        r = self.rng
        if fact in ("name", "city") and self._real[fact] and r.random() < 0.5:
            return r.choice(self._real[fact])
        if fact == "name":
            return make_name(r, self.pool)
        if fact == "city":
            return make_city(r, self.pool)
        return r.choice(PETS if fact == "pet" else FOODS)

    def _typed(self, text: str, end: str = ".!") -> str:
        """text as a person might type it: maybe a capital first letter, maybe an end mark."""
        r = self.rng
        if r.random() < 0.5:
            text = text[0].upper() + text[1:]
        text = text.replace(" i ", " I ").replace(" i'", " I'") if r.random() < 0.5 else text
        if text.startswith("i ") or text.startswith("i'"):
            text = "I" + text[1:] if r.random() < 0.5 else text
        mark = r.random()
        return text + (r.choice(end) if mark < 0.6 else "" if mark < 0.9 else r.choice(end) * 3)

    def _tell(self, fact: str, value: str) -> str:
        return self.rng.choice(TELL[fact]).format(value if self.rng.random() < 0.7 else value.lower())

    def _ask_line(self, fact: str) -> str:
        r = self.rng
        return self._typed(r.choice(ASK_LEAD) + r.choice(ASK[fact]), "?")

    # --- conversations -------------------------------------------------------------------------
    def conversation(self) -> Conversation:
        r = self.rng
        facts = r.sample(FACTS, r.randint(*self.n_facts))
        values: Dict[str, str] = {}
        corrected: Dict[str, bool] = {}
        turns: List[Tuple[str, str]] = []
        queue = list(facts)
        while queue:
            fact = queue.pop(0)
            values[fact] = self._value(fact)
            line = self._tell(fact, values[fact])
            if not turns and r.random() < 0.5:  # a greeting before the first fact
                line = r.choice(GREETINGS) + r.choice((", ", "! ", ". ", " ")) + line
            if queue and r.random() < 0.3:  # two facts in one line
                other = queue.pop(0)
                values[other] = self._value(other)
                line += r.choice((" and ", ", ", ". ", " and ")) + self._tell(other, values[other])
                turns.append((self._typed(line), ACK_MANY))
            else:
                turns.append((self._typed(line), ACK[fact].format(values[fact])))
            if r.random() < 0.3:
                turns.append(self._small_talk())
        for fact in facts:  # corrections, and the same kind told again: the later value counts
            if r.random() < 0.15:
                values[fact] = self._value(fact)
                corrected[fact] = True
                lead = r.choice(CORRECT) if r.random() < 0.7 else ""
                turns.append((self._typed(lead + self._tell(fact, values[fact])),
                              ACK_CORRECTED.format(values[fact])))
        for _ in range(r.randint(*self.distractors)):
            turns.append(self._small_talk())
        asked = list(facts) + [f for f in FACTS if f not in facts and r.random() < self.p_untold]
        if not asked:
            asked = [r.choice(FACTS)]
        asks: Dict[int, Ask] = {}
        for fact in r.sample(asked, len(asked)):
            value = values.get(fact)
            asks[len(turns)] = Ask(fact, value, corrected.get(fact, False))
            reply = ANSWER[fact].format(value) if value is not None else UNTOLD[fact]
            turns.append((self._ask_line(fact), reply.lower()))
            if r.random() < 0.2:
                turns.append(self._small_talk())
        return Conversation([(u, b.lower()) for u, b in turns], values, asks)

    def _small_talk(self) -> Tuple[str, str]:
        return self.rng.choice(self.pairs)

    def conversations(self, n: int) -> List[Conversation]:
        return [self.conversation() for _ in range(n)]

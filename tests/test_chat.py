"""MemoryChatbot, the dialogue generator and the chat commands (no accuracy claims here except
the shipped checkpoint's scripted recall)."""
import io
import os

import pytest
import torch

from memory_ext.chat.bot import (MemoryChatbot, UncheckedCheckpointWarning, checkpoint_digest,
                             default_checkpoint, normalize)
from memory_ext.chat.cli import MAX_LINE, chat_session
from memory_ext.chat.train import encode_batch, conversation_loss, eval_recall
from memory_ext.cli import main
from memory_ext.chat.dialogues import (ACK_MANY, ANSWER, FACTS, REAL_CITIES, REAL_NAMES, UNTOLD,
                                      DialogueGenerator, load_chat_dir, load_pairs)
from memory_ext.nn.elastic_vocab import tokenize

CHAT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "chat")
TINY = dict(d_model=16, nhead=2, memory_widths=(16, 24, 16), decoder_layers=1)


def test_heldout_names_and_cities_never_occur_in_training():
    pairs = load_chat_dir(CHAT if os.path.isdir(CHAT) else None)
    train = DialogueGenerator(pairs, pool="train", seed=0).conversations(1500)
    held = DialogueGenerator(pairs, pool="heldout", seed=1).conversations(300)
    train_words = {w for c in train for t in c.turns for line in t for w in tokenize(line)}
    novel = {c.facts[f] for c in held for f in ("name", "city") if f in c.facts}
    novel_words = {w for v in novel for w in tokenize(v)}
    assert len(novel) > 200 and not novel_words & train_words
    assert any(v in REAL_NAMES for v in novel) and any(v in REAL_CITIES for v in novel)


def _told_turns(c):
    """Indices of the turns whose user line tells one of the conversation's final values."""
    return [i for i, (u, _) in enumerate(c.turns) if any(normalize(v) in normalize(u) for v in c.facts.values())]


def test_conversation_structure():
    for c in DialogueGenerator(seed=3).conversations(300):
        assert set(c.facts) <= set(FACTS) and c.asks
        assert {a.fact for a in c.asks.values() if a.value is not None} == set(c.facts)
        for i, ask in c.asks.items():
            assert ask.value == c.facts.get(ask.fact)
            want = UNTOLD[ask.fact] if ask.value is None else ANSWER[ask.fact].format(ask.value)
            assert normalize(c.turns[i][1]) == normalize(want)
        # at least one distractor turn between the last fact told and the first question
        if c.facts:
            assert min(c.asks) - max(_told_turns(c)) >= 2


def test_conversations_are_phrased_the_way_people_type():
    convs = DialogueGenerator(seed=4).conversations(600)
    users = [u for c in convs for u, _ in c.turns]
    values = [v for c in convs for v in c.facts.values()]
    asks = [a for c in convs for a in c.asks.values()]
    seen = {
        "capitals": any(u[:1].isupper() for u in users),
        "no end mark": any(u[-1:].isalnum() for u in users),
        "contraction": any("i'm " in u.lower() or "what's " in u.lower() for u in users),
        "greeting": any(u.lower().startswith(g) for u in users for g in ("hi", "hello", "hey")),
        "two facts in a line": any(b == ACK_MANY for c in convs for _, b in c.turns),
        "correction": any(a.corrected for a in asks),
        "untold question": any(a.value is None for a in asks),
        "three-word value": any(len(v.split()) == 3 for v in values),
        "hyphenated value": any("-" in v for v in values),
        "apostrophised value": any("'" in v for v in values),
        "8 distractors": any(min(c.asks) - max(_told_turns(c)) - 1 >= 8 for c in convs if c.facts),
    }
    assert all(seen.values()), [k for k, v in seen.items() if not v]
    # a hyphenated or apostrophised name is one token: the model can say it back whole
    assert tokenize("I'm Jean-Luc O'Brien") == ["i'm", "jean-luc", "o'brien"]


def test_pair_files_load_and_bad_lines_name_the_line(tmp_path):
    if os.path.isdir(CHAT):
        pairs = load_chat_dir(CHAT)
        assert len(pairs) > 40 and all(isinstance(a, str) and isinstance(b, str) for a, b in pairs)
    bad = tmp_path / "bad.json"
    bad.write_text('{"listen": "hi", "reply": "hello"}\n{"listen": "oops"}\n')
    with pytest.raises(ValueError, match="bad.json:2"):
        load_pairs(str(bad))
    with pytest.raises(FileNotFoundError, match="chat data folder"):
        load_chat_dir(str(tmp_path / "missing"))


def _talk(bot, lines):
    out = io.StringIO()
    chat_session(bot, lines, out)
    return out.getvalue().splitlines()


def test_save_and_load_mid_conversation_restore_the_memory_exactly(tmp_path):
    torch.manual_seed(0)
    bot = MemoryChatbot(TINY)
    _talk(bot, ["my name is qaloxi", "i live in rateville", "how are you ?"])
    path = str(tmp_path / "mid.pt")
    bot.save(path)
    back = MemoryChatbot.load(path)
    for a, b in zip(bot.memory_state(), back.memory_state()):
        assert torch.equal(a, b)
    assert back.vocab.table.checksum() == bot.vocab.table.checksum()
    assert _talk(bot, ["what is my name ?"]) == _talk(back, ["what is my name ?"])
    # the memory matters: a bot that forgot answers from other weights
    back.forget()
    assert back.memory_state() is None


def test_bad_checkpoints_are_refused_with_a_reason(tmp_path):
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="not a MemoryChatbot checkpoint"):
        MemoryChatbot.load(str(junk))
    torch.save({"format": "something else"}, tmp_path / "other.pt")
    with pytest.raises(ValueError, match="format must be"):
        MemoryChatbot.load(str(tmp_path / "other.pt"))
    bot = MemoryChatbot(TINY)
    bot.respond("hello")
    bot.save(str(tmp_path / "ok.pt"))
    payload = torch.load(tmp_path / "ok.pt", weights_only=True)
    payload["memory"] = [torch.zeros(1, 3, 3)]
    payload["checksum"] = checkpoint_digest(payload)  # a well-formed file with the wrong content
    torch.save(payload, tmp_path / "badmem.pt")
    with pytest.raises(ValueError, match="memory must be"):
        MemoryChatbot.load(str(tmp_path / "badmem.pt"))
    with pytest.raises(ValueError, match="unknown chatbot config"):
        MemoryChatbot({"layers": 3})


def test_bad_user_input_never_crashes_the_chat(tmp_path):
    bot = MemoryChatbot(TINY)
    lines = ["", "   ", "x" * 100_000, "word " * 5000, "h\u00e9llo \U0001F600 \x00\x07 \u202e ?!", "/load",
             f"/load {tmp_path / 'missing.pt'}", "/save", "/vocab", "/nonsense", "/forget", "ok"]
    out = _talk(bot, lines)
    assert len(out) == len(lines)
    assert out[0] == out[1] == "..."
    assert "error" in out[6] and "error" in out[5] and "unknown command" in out[9]
    assert out[8].startswith("(vocabulary:")
    assert not any(len(w) > MAX_LINE for w in bot.vocab.table.decode(list(range(len(bot.vocab)))))


def test_fused_and_reference_memory_give_the_same_model():
    torch.manual_seed(0)
    convs = DialogueGenerator(seed=5).conversations(6)
    bot = MemoryChatbot(TINY)
    turns = encode_batch(bot, convs)
    loss_f, _ = conversation_loss(bot, turns)
    bot.encoder.memory.impl = "reference"
    loss_r, _ = conversation_loss(bot, turns)
    torch.testing.assert_close(loss_f, loss_r, rtol=1e-5, atol=1e-5)


def test_ablation_resets_the_memory_every_turn():
    bot = MemoryChatbot(TINY, remember=False)
    bot.respond("my name is qaloxi")
    first = bot.memory_state()
    bot.respond("how are you ?")
    second = bot.memory_state()
    bot_mem = MemoryChatbot(TINY)
    bot_mem.respond("my name is qaloxi")
    bot_mem.respond("how are you ?")
    # without memory the state after a turn depends only on that turn
    fresh = MemoryChatbot(TINY)
    fresh.vocab.encode("my name is qaloxi")  # the same words, ids and rows, but not heard
    fresh.respond("how are you ?")
    assert all(torch.equal(a, b) for a, b in zip(second, fresh.memory_state()))
    assert not all(torch.equal(a, b) for a, b in zip(bot_mem.memory_state(), fresh.memory_state()))
    assert first is not None


def test_eval_recall_counts_every_question_once():
    torch.manual_seed(0)
    convs = DialogueGenerator(pool="heldout", seed=7).conversations(30)
    r = eval_recall(MemoryChatbot(TINY), convs, batch_size=8)
    asks = [a for c in convs for a in c.asks.values()]
    told = [a for a in asks if a.value is not None]
    assert r["n_recall"] == len(told) and r["n_honesty"] == len(asks) - len(told)
    assert r["n_multi_word"] == sum(len(a.value.split()) >= 2 for a in told)
    assert r["n_corrected"] == sum(a.corrected for a in told)
    assert set(r["per_fact"]) == {a.fact for a in told}
    assert all(0 <= r[k] <= 1 for k in ("recall", "honesty"))


DOCS = os.path.join(os.path.dirname(__file__), "..", "docs")
DEMO = os.path.join(DOCS, "results", "chat_demo.txt")
# what the demo's questions must get (user line -> reply, normalized)
DEMO_ANSWERS = {
    "What is my name?": "your name is penelope .",
    "Where do I live?": "you live in new york .",
    "what pet do i have": "you have a guinea pig .",
    "who am i?": "your name is jean-luc .",
    "what's my favourite food?": "you have not told me your favourite food yet .",
    "what is my name?": "you have not told me your name yet .",  # after /forget
}


def _readme_transcript() -> str:
    """The block of README.md that shows `memory-ext chat --script docs/results/chat_demo.txt`."""
    text = open(os.path.join(DOCS, "..", "README.md"), encoding="utf-8").read()
    start = text.index("$ memory-ext chat --script docs/results/chat_demo.txt\n")
    block = text[start:].split("\n", 1)[1]
    return block[: block.index("```")]


@pytest.mark.skipif(not os.path.exists(default_checkpoint()), reason="no shipped checkpoint")
def test_shipped_checkpoint_holds_a_natural_conversation(capsys):
    """The README's transcript is what the shipped checkpoint says, and it answers the demo's
    questions from memory: a real name, a two-word city, a two-word pet, a correction to a
    hyphenated name, and honestly about what it was not told (also after /forget)."""
    assert main(["chat", "--script", DEMO]) == 0
    out = capsys.readouterr().out
    assert out == _readme_transcript()
    lines = out.splitlines()
    replies = {lines[i][2:]: lines[i + 1] for i in range(0, len(lines) - 1, 2)}
    assert all(lines[i].startswith("> ") for i in range(0, len(lines), 2))
    got = {q: normalize(replies[q]) for q in DEMO_ANSWERS}
    assert got == DEMO_ANSWERS


@pytest.mark.skipif(not os.path.exists(default_checkpoint()), reason="no shipped checkpoint")
def test_shipped_checkpoint_eval_recall_small():
    bot = MemoryChatbot.load(default_checkpoint())
    held = DialogueGenerator(pool="heldout", seed=99).conversations(40)
    with_memory = eval_recall(bot, held)["recall"]
    bot.remember = False
    without = eval_recall(bot, held)["recall"]
    assert with_memory > without + 0.3


def _bad_checkpoints(tmp_path, bot):
    """Files /load must refuse: unreadable, not a checkpoint, or a well-formed one of the wrong
    content (a checksum that matches: only validation can refuse them)."""
    ok = str(tmp_path / "ok.pt")
    bot.save(ok)
    raw = open(ok, "rb").read()
    payload = torch.load(ok, weights_only=True)

    def stamped(p, name):
        p = dict(p)
        p["checksum"] = checkpoint_digest(p)
        torch.save(p, tmp_path / name)
        return str(tmp_path / name)

    (tmp_path / "truncated.pt").write_bytes(raw[: len(raw) // 3])
    (tmp_path / "text.pt").write_text("hello")
    torch.save([1, 2, 3], tmp_path / "list.pt")
    (tmp_path / "folder").mkdir()
    flipped = bytearray(raw)
    at = flipped.find(bot.pos.weight.detach().numpy().tobytes()[:64])
    flipped[at + 9] ^= 0x01
    (tmp_path / "flipped.pt").write_bytes(bytes(flipped))
    model = dict(payload["model"])
    model["decoder.layers.0.linear1.weight"] = model["decoder.layers.0.linear1.weight"][:5]
    live = model["vocab.embedding.live"].clone()
    live[6] = False
    dead = dict(payload["model"], **{"vocab.embedding.live": live})
    return [str(tmp_path / n) for n in ("missing.pt", "truncated.pt", "text.pt", "list.pt", "folder",
                                        "flipped.pt")] + [
        stamped({k: v for k, v in payload.items() if k != "model"}, "nomodel.pt"),
        stamped({**payload, "model": model}, "shapes.pt"),
        stamped({**payload, "config": {**TINY, "d_model": 24, "memory_widths": (24, 24, 24)}}, "d24.pt"),
        stamped({**payload, "model": dead}, "deadrow.pt"),
        stamped({**payload, "config": "tiny"}, "config.pt"),
    ]


def test_bad_load_keeps_the_session_conversation_and_memory(tmp_path):
    torch.manual_seed(0)
    bot = MemoryChatbot(TINY)
    _talk(bot, ["my name is qaloxi", "i live in rateville"])
    twin = MemoryChatbot.load(_saved(bot, tmp_path / "twin.pt"))
    memory, table = bot.memory_state(), bot.vocab.table.checksum()
    bad = _bad_checkpoints(tmp_path, bot)
    out = io.StringIO()
    back = chat_session(bot, [f"/load {p}" for p in bad], out)
    lines = out.getvalue().splitlines()
    assert back is bot and len(lines) == len(bad)
    for p, line in zip(bad, lines):
        assert line.startswith("(error: ") and p in line, line
    assert "checksum mismatch" in lines[5] and "vocabulary" in lines[9]
    assert all(torch.equal(a, b) for a, b in zip(bot.memory_state(), memory))
    assert bot.vocab.table.checksum() == table
    assert _talk(bot, ["what is my name ?"]) == _talk(twin, ["what is my name ?"])


def _saved(bot, path):
    bot.save(str(path))
    return str(path)


def test_bad_save_prints_one_line_and_writes_nothing(tmp_path):
    bot = MemoryChatbot(TINY)
    (tmp_path / "dir").mkdir()
    targets = [tmp_path / "missing" / "x.pt", str(tmp_path / "a") + "\x00b.pt", tmp_path / "dir"]
    out = _talk(bot, [f"/save {p}" for p in targets])
    assert len(out) == 3 and all(line.startswith("(error: ") for line in out), out
    assert sorted(os.listdir(tmp_path)) == ["dir"] and os.listdir(tmp_path / "dir") == []
    out = _talk(bot, [f"/save {tmp_path / 'ok.pt'}", f"/load {tmp_path / 'ok.pt'}"])
    assert out == [f"(saved to {tmp_path / 'ok.pt'})", f"(loaded {tmp_path / 'ok.pt'})"]
    assert sorted(os.listdir(tmp_path)) == ["dir", "ok.pt"]


def test_save_is_atomic_and_a_failed_save_leaves_the_old_file(tmp_path, monkeypatch):
    bot = MemoryChatbot(TINY)
    path = _saved(bot, tmp_path / "bot.pt")
    before = open(path, "rb").read()

    def disk_full(obj, f, *a, **k):
        f.write(b"half a checkpoint")
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(torch, "save", disk_full)
    bot.respond("hello")
    with pytest.raises(OSError, match="No space"):
        bot.save(path)
    assert open(path, "rb").read() == before and os.listdir(tmp_path) == ["bot.pt"]


def test_checkpoints_carry_a_checksum_and_old_ones_load_with_a_warning(tmp_path, recwarn):
    bot = MemoryChatbot(TINY)
    path = _saved(bot, tmp_path / "bot.pt")
    payload = torch.load(path, weights_only=True)
    assert payload["checksum"] == checkpoint_digest(payload) and len(payload["checksum"]) == 64
    MemoryChatbot.load(path)
    assert not recwarn.list
    del payload["checksum"]
    torch.save(payload, tmp_path / "old.pt")
    with pytest.warns(UncheckedCheckpointWarning, match="no checksum"):
        old = MemoryChatbot.load(str(tmp_path / "old.pt"))
    assert all(torch.equal(a, b) for a, b in zip(old.state_dict().values(), bot.state_dict().values())
               if isinstance(a, torch.Tensor))


@pytest.mark.skipif(not os.path.exists(default_checkpoint()), reason="no shipped checkpoint")
def test_shipped_checkpoint_carries_a_valid_checksum():
    payload = torch.load(default_checkpoint(), weights_only=True)
    assert payload["checksum"] == checkpoint_digest(payload)


def test_load_of_an_old_checkpoint_warns_in_one_line(tmp_path):
    bot = MemoryChatbot(TINY)
    payload = torch.load(_saved(bot, tmp_path / "new.pt"), weights_only=True)
    del payload["checksum"]
    torch.save(payload, tmp_path / "old.pt")
    out = _talk(bot, [f"/load {tmp_path / 'old.pt'}"])
    assert len(out) == 2 and out[0].startswith("(warning: ") and "no checksum" in out[0]
    assert out[1] == f"(loaded {tmp_path / 'old.pt'})"

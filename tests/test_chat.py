"""MemoryChatbot, the dialogue generator and the chat commands (no accuracy claims here except
the shipped checkpoint's scripted recall)."""
import io
import os

import pytest
import torch

from memory_ext.chat import MemoryChatbot, default_checkpoint, normalize
from memory_ext.chat_cli import MAX_LINE, chat_session
from memory_ext.chat_train import encode_batch, conversation_loss, eval_recall
from memory_ext.cli import main
from memory_ext.dialogues import FACTS, DialogueGenerator, load_chat_dir, load_pairs
from memory_ext.vocab import tokenize

CHAT = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "chat")
TINY = dict(d_model=16, nhead=2, memory_widths=(16, 24, 16), decoder_layers=1)


def test_heldout_names_and_cities_never_occur_in_training():
    train = DialogueGenerator(pool="train", seed=0).conversations(1500)
    held = DialogueGenerator(pool="heldout", seed=1).conversations(300)
    train_words = {w for c in train for t in c.turns for line in t for w in tokenize(line)}
    novel = {c.facts[f] for c in held for f in ("name", "city") if f in c.facts}
    assert len(novel) > 200 and not novel & train_words


def test_conversation_structure():
    for c in DialogueGenerator(seed=3, distractors=(1, 3)).conversations(200):
        assert set(c.facts) <= set(FACTS) and sorted(c.asks.values()) == sorted(c.facts)
        first_ask = min(c.asks)
        for i, fact in c.asks.items():
            assert normalize(c.turns[i][1]).endswith(normalize(c.facts[fact]) + " .")
        # at least one distractor turn between the last fact told and the first question
        told = [i for i, (u, _) in enumerate(c.turns) if any(normalize(v) in normalize(u).split()
                                                             for v in c.facts.values())]
        assert first_ask - max(told) >= 2


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


@pytest.mark.skipif(not os.path.exists(default_checkpoint()), reason="no shipped checkpoint")
def test_shipped_checkpoint_recalls_a_new_name_across_turns(tmp_path, capsys):
    script = tmp_path / "talk.txt"
    script.write_text("my name is zufeyqua\nhow are you ?\nthanks\nwhat is my name ?\n")
    assert main(["chat", "--script", str(script)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[-1] == "your name is zufeyqua ."


@pytest.mark.skipif(not os.path.exists(default_checkpoint()), reason="no shipped checkpoint")
def test_shipped_checkpoint_eval_recall_small():
    bot = MemoryChatbot.load(default_checkpoint())
    held = DialogueGenerator(pool="heldout", seed=99).conversations(40)
    with_memory = eval_recall(bot, held)["accuracy"]
    bot.remember = False
    without = eval_recall(bot, held)["accuracy"]
    assert with_memory > without + 0.3

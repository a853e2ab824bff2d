"""bAbI loader, the MemN2N / MemNN models and `memory-ext babi` (tiny runs: no accuracy claims)."""
import json
import os

import pytest
import torch

import memory_ext
from memory_ext import reference
from memory_ext.babi import data as babi
from memory_ext.babi.cli import parse_tasks
from memory_ext.cli import main
from memory_ext.babi.memn2n import MemN2N, position_encoding, time_indices

DATA = os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "babi")
LINES = ["1 Mary moved to the bathroom.", "2 John went to the hallway.",
         "3 Where is Mary? \tbathroom\t1", "4 Daniel went back to the hallway.",
         "5 Where is Daniel? \thallway\t4", "1 Sandra went north.", "2 Where is Sandra?\tn,s\t1"]


def test_parse_stories_questions_and_supports():
    ex = babi.parse(LINES)
    assert len(ex) == 3
    assert ex[0].story == [["mary", "moved", "to", "the", "bathroom"], ["john", "went", "to", "the", "hallway"]]
    assert ex[0].question == ["where", "is", "mary"] and ex[0].answer == "bathroom" and ex[0].supports == [0]
    assert len(ex[1].story) == 3 and ex[1].supports == [2]  # question lines are not memories
    assert ex[2].story == [["sandra", "went", "north"]] and ex[2].answer == "n,s"  # a new story


@pytest.mark.parametrize("lines, match", [
    (["x Mary moved."], "must start with its number"),
    (["1 Mary moved.", "2 Where is Mary?\tkitchen\t7"], "supporting ids '7' are not statements"),
    (["1 Where is Mary?\tkitchen"], "a question needs"),
])
def test_parse_errors_name_the_line(lines, match):
    with pytest.raises(ValueError, match=match):
        babi.parse(lines, "f.txt")


def test_vectorize_keeps_the_latest_memories_and_shifts_supports():
    ex = babi.parse(LINES)
    vocab = babi.Vocab(ex)
    b = babi.vectorize(ex, vocab, memory_size=2)
    assert b.stories.shape == (3, 2, 6) and b.counts.tolist() == [2, 2, 1]  # 6: the longest sentence
    assert b.supports[1].tolist() == [1, -1, -1]  # fact 4 is slot 1 of the 2 latest
    assert vocab.words[b.answers[2]] == "n,s" and vocab.words[0] == "<nil>"


def test_real_files_and_validation_split():
    if not os.path.isdir(DATA):
        pytest.skip("shared bAbI data not found")
    train, test = babi.load_task(DATA, 1)
    assert len(train) == 1000 and len(test) == 1000
    tr, va = babi.split_validation(train, 0.1, seed=3)
    assert len(va) == 100 and len(tr) == 900
    assert babi.split_validation(train, 0.1, seed=3)[1][0].question == va[0].question
    with pytest.raises(FileNotFoundError, match="qa3_three-supporting-facts_train.txt"):
        babi.load_task(DATA, 3, "en-10k")  # the one file missing from the shipped 10k split
    with pytest.raises(ValueError, match="task must be in 1..20"):
        babi.task_files(DATA, 21)


def test_memn2n_shapes_encodings_and_linear_start():
    pe = position_encoding(4, 6)
    # the authors' code's form: 1 + 4 (k - (d+1)/2)(j - (J+1)/2) / (d J), j word, k dim
    assert pe.shape == (4, 6) and abs(pe[0, 0].item() - (1 + 4 * (-2.5) * (-1.5) / 24)) < 1e-6
    assert abs(pe[3, 5].item() - (1 + 4 * 2.5 * 1.5 / 24)) < 1e-6
    assert torch.allclose(pe.mean(1), torch.ones(4))
    t = time_indices(torch.tensor([3, 0]), 5)
    assert t[0, :3].tolist() == [2, 1, 0]
    noisy = time_indices(torch.tensor([5]), 5, noise=0.5, generator=torch.Generator().manual_seed(0))
    assert (noisy[0, :-1] >= noisy[0, 1:]).all()  # ages stay ordered with noise
    m = MemN2N(vocab_size=12, sentence_len=4, memory_size=5, d=8, hops=3)
    st = torch.randint(0, 12, (2, 5, 4))
    q = torch.randint(1, 12, (2, 4))
    n = torch.tensor([5, 0])
    for linear in (False, True):
        out = m(st, n, q, time_indices(n, 5), linear=linear)
        assert out.shape == (2, 12) and torch.isfinite(out).all()
        out.sum().backward()
    # empty slots are zero keys and values: what is written past count changes nothing
    n = torch.tensor([3, 0])
    junk = st.clone()
    junk[0, 3:] = torch.randint(1, 12, (2, 4))
    junk[1] = torch.randint(1, 12, (5, 4))
    t = time_indices(n, 5)
    assert torch.allclose(m(st, n, q, t), m(junk, n, q, t))
    # ... but they stay in the softmax with score 0: the read is the fused op on all N slots
    M, C = m.memories(st, n, t)
    u0 = m._embed(m.E[0], q)
    ref_u, _ = reference.slot_read(u0, M, C, torch.full_like(n, 5), 3)
    assert torch.allclose(m(st, n, q, t), ref_u @ m.E[-1].T, atol=1e-5)


def test_parse_tasks():
    assert parse_tasks("1-3,7") == [1, 2, 3, 7] and parse_tasks("20") == [20]
    with pytest.raises(ValueError, match="--tasks must name tasks in 1..20"):
        parse_tasks("0-2")


@pytest.mark.parametrize("model", ["memn2n", "memnn", "mnm"])
def test_cli_babi_writes_json_and_png(model, tmp_path):
    if not os.path.isdir(DATA):
        pytest.skip("shared bAbI data not found")
    pytest.importorskip("matplotlib")
    main(["babi", "--model", model, "--tasks", "1", "--data", DATA, "--epochs", "1",
          "--out", str(tmp_path)])
    res = json.loads((tmp_path / f"{model}_results.json").read_text())
    assert res["summary"]["tasks"] == [1] and 0 <= res["tasks"][0]["test_error_pct"] <= 100
    assert res["tasks"][0]["paper_pct"] == (None if model == "mnm" else 0.0)
    assert (tmp_path / f"{model}_errors.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_babi_refuses_a_negative_weight_decay(tmp_path, capsys):
    assert main(["babi", "--model", "mnm", "--tasks", "1", "--data", DATA, "--weight-decay", "-0.1",
                 "--out", str(tmp_path)]) == 2
    assert capsys.readouterr().err == "memory-ext babi: error: --weight-decay must be >= 0, got -0.1\n"
    assert not any(tmp_path.iterdir())  # nothing written


def test_mnm_weight_decay_shrinks_the_weights():
    if not os.path.isdir(DATA):
        pytest.skip("shared bAbI data not found")
    from memory_ext.babi.mnm import train_mnm
    norms = {}
    for wd in (0.0, 50.0):  # a decay this large dominates one epoch of lr 1e-3 steps
        model = train_mnm(DATA, 1, split="en", epochs=1, weight_decay=wd, hidden=16, d=8,
                          memory_widths=(8, 8, 8))["model"]
        norms[wd] = sum(p.detach().square().sum() for p in model.parameters()).sqrt().item()
    assert norms[50.0] < 0.8 * norms[0.0]


def test_memnn_time_features_prefer_the_nearest_memory_older_than_the_chosen_one():
    from memory_ext.babi.memnn import MemNN
    m = MemNN(vocab_size=6, memory_size=5, d=4, time_scale=2.0, word_match=False)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.older_bonus.fill_(2.0)
        m.Qe[3, -2] = 1.0    # word 3 in a chosen memory: +1 more for older memories
        m.Qe[3, -1] = 0.25   # ... and -0.25 per step a memory lies behind it
        m.Ue[1, -1] = 0.5    # question word 1: recency slope 0.5
    stories = torch.tensor([[[1, 0], [2, 0], [3, 0], [2, 0], [0, 0]]])  # 4 live, ages 3 2 1 0
    u0, M, Q = m.encode(stories, torch.tensor([4]), torch.tensor([[1, 0]]))
    assert u0.shape == (1, 4 + 1 + 5) and M.shape == Q.shape == (1, 5, 10)
    age = torch.tensor([3., 2., 1., 0.])
    assert torch.allclose((u0[:, None] * M).sum(-1)[0, :4], -2 * 0.5 * age)
    # after choosing slot 2 (age 1, holding word 3), times the time scale 2: older memories
    # (slots 0, 1) gain 2 + 1 and lose 0.25 per step behind the chosen one (2 and 1 steps)
    u1 = u0 + Q[:, 2]
    s1 = (u1[:, None] * M).sum(-1)[0, :4]
    expect = 2 * (-0.5 * age + torch.tensor([3., 3., 0., 0.]) - 0.25 * torch.tensor([2., 1., 0., 0.]))
    assert torch.allclose(s1, expect)
    idx, _ = memory_ext.slot_read_hard(u0, M, Q, torch.tensor([4]), hops=2)
    assert idx[0, 0].item() == 3  # the newest memory wins on recency alone
    idx, _ = memory_ext.slot_read_hard(u1, M, Q, torch.tensor([4]), hops=1)
    assert idx.tolist() == [[1]]  # the nearest memory older than the chosen one


def test_memnn_word_match_counts_words_shared_with_the_question_and_chosen_memories():
    from memory_ext.babi.memnn import MemNN
    m = MemNN(vocab_size=6, memory_size=4, d=4, time_scale=3.0)
    with torch.no_grad():
        for p in m.parameters():
            p.zero_()
        m.match_q[2] = 1.0   # question word 2 found in a memory: +1 (times the scale 3)
        m.match_m[4] = 0.5   # word 4 shared with a chosen memory: +0.5
        m.match_m[5] = -1.0
    stories = torch.tensor([[[2, 4], [4, 5], [5, 2], [1, 1]]])  # word 1 twice counts once
    u0, M, Q = m.encode(stories, torch.tensor([4]), torch.tensor([[2, 0]]))
    assert u0.shape == M.shape[::2] and M.shape == Q.shape == (1, 4, 4 + 1 + 4 + 6)
    assert torch.equal((u0[:, None] * M).sum(-1), torch.tensor([[3., 0., 3., 0.]]))
    u1 = u0 + Q[:, 1]  # choose memory 1 (words 4, 5)
    assert torch.equal((u1[:, None] * M).sum(-1), torch.tensor([[4.5, -1.5, 0., 0.]]))
    idx, _ = memory_ext.slot_read_hard(u0, M, Q, torch.tensor([4]), hops=1)
    assert idx.item() in (0, 2)


def test_mnm_reader_right_aligns_stories_and_matches_the_reference_memory():
    from memory_ext.babi.mnm import MNMReader, length_batches
    torch.manual_seed(0)
    m = MNMReader(vocab_size=15, sentence_len=4, d=8, hidden=12, memory_widths=(8, 12, 8)).double()
    st = torch.randint(1, 15, (3, 5, 4))
    n = torch.tensor([5, 2, 0])
    q = torch.randint(1, 15, (3, 4))
    logits, recon = m(st, n, q)
    assert logits.shape == (3, 15) and recon.shape == (3, 5 + 1 + 2)
    # what lies past a row's count is not read
    junk = st.clone()
    junk[1, 2:] = torch.randint(1, 15, (3, 4))
    junk[2] = torch.randint(1, 15, (5, 4))
    torch.testing.assert_close(m(junk, n, q)[0], logits)
    # padding steps are masked: a row's answer does not depend on the batch's longest story
    alone, _ = m(st[1:2, :2], n[1:2], q[1:2])
    torch.testing.assert_close(alone, logits[1:2], rtol=1e-10, atol=1e-10)
    m.controller.memory.impl = "reference"
    torch.testing.assert_close(m(st, n, q)[0], logits, rtol=1e-10, atol=1e-10)
    g = torch.Generator().manual_seed(0)
    counts = torch.tensor([3, 1, 3, 2, 1, 2, 3])
    batches = list(length_batches(counts, 2, g))
    assert sorted(torch.cat(batches).tolist()) == list(range(7))
    assert sum(int(counts[b].max() - counts[b].min()) for b in batches) <= 2

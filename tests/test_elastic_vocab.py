"""ElasticEmbedding / ElasticVocab: ids, rows and optimizer state stay right across grow, prune,
compact and checkpoints (spec section 4)."""
import pytest
import torch

from memory_ext import ElasticEmbedding, ElasticVocab
from memory_ext.nn.elastic_vocab import tokenize

WORDS = [f"word{i}" for i in range(20)]


def _vocab_with_counts(capacity=8):
    v = ElasticVocab(6, capacity=capacity, bias=True, tied=False)
    for i, w in enumerate(WORDS):  # word i used 1 + i % 3 times
        for _ in range(1 + i % 3):
            v.encode(w)
    return v


def test_tokenizer_rules():
    assert tokenize("I'm at Joe’s CAFÉ, ok?") == ["i'm", "at", "joe's", "café", ",", "ok", "?"]
    # inner hyphens and apostrophes stay in the word; outer ones and dashes are marks
    assert tokenize("Jean-Luc -- 'O'Brien' end-") == ["jean-luc", "-", "-", "'", "o'brien", "'", "end", "-"]
    assert tokenize("Where is Mary-Ann?", punctuation=False) == ["where", "is", "mary-ann"]
    with pytest.raises(TypeError, match="text must be a str"):
        tokenize(None)


def test_seed_failure_regression_prune_nonadjacent_words_keeps_every_survivor():
    """The seed shifted ids once per removed word: survivors decoded to other words' strings
    and vectors. Here every survivor keeps its own string and its own vectors."""
    v = _vocab_with_counts()
    before = {w: (v.embedding.weight[i].clone(), v.embedding.out_weight[i].clone(),
                  v.embedding.out_bias[i].clone())
              for w, i in zip(WORDS, v.table.lookup(WORDS, -1).tolist())}
    freed = v.prune(2)  # words 0, 3, 6, ... (used once): non-adjacent
    assert len(freed) == 7
    survivors = [w for i, w in enumerate(WORDS) if i % 3 != 0]
    ids = v.table.lookup(survivors, -1)
    assert (ids >= 0).all() and ids.max() < len(v)  # compacted: dense ids
    assert v.decode(ids) == " ".join(survivors)
    for w, i in zip(survivors, ids.tolist()):
        assert all(torch.equal(a, b) for a, b in zip(
            before[w], (v.embedding.weight[i], v.embedding.out_weight[i], v.embedding.out_bias[i])))
    for w in WORDS[::3]:
        assert w not in v.table
    assert v.encode("word0", grow=False).tolist() == [3]  # <UNK>


def test_rows_and_adam_state_bit_identical_across_grow_and_compact():
    emb = ElasticEmbedding(6, 4, capacity=6, tied=False, bias=True)
    opt = torch.optim.Adam(emb.parameters(), lr=1e-2)
    emb.attach_optimizer(opt)
    for _ in range(3):
        opt.zero_grad()
        emb.logits(emb(torch.arange(6))).logsumexp(-1).sum().backward()
        opt.step()
    params = {n: p for n, p in emb.named_parameters()}

    def snapshot(rows):
        out = []
        for p in params.values():
            out.append(p.data[rows].clone())
            out += [opt.state[p][k][rows].clone() for k in ("exp_avg", "exp_avg_sq")]
        return out

    old = snapshot(torch.arange(6))
    emb.grow(10)  # past capacity: reallocated
    assert emb.capacity >= 16 and all(p is q for p, q in zip(params.values(), emb.parameters()))
    assert all(opt.state[p]["exp_avg"].shape[0] == emb.capacity for p in params.values())
    assert all(torch.equal(a, b) for a, b in zip(old, snapshot(torch.arange(6))))
    kept = torch.tensor([1, 2, 4, 5, 9])
    emb.free(torch.tensor([0, 3, 6, 7, 8] + list(range(10, 16))))
    kept_vals = snapshot(kept)
    remap = torch.full((16,), -1, dtype=torch.int64)
    remap[kept] = torch.arange(5)
    emb.compact(remap)
    assert emb.size == 5 and emb.live[:5].all() and not emb.live[5:].any()
    assert all(torch.equal(a, b) for a, b in zip(kept_vals, snapshot(torch.arange(5))))


@pytest.mark.parametrize("opt_name", ["adam", "adamw", "sgd_momentum"])
def test_training_continues_across_grow_and_compact_with_the_same_optimizer(opt_name):
    torch.manual_seed(0)
    v = ElasticVocab(16, capacity=8, seed=1)
    make = {"adam": lambda p: torch.optim.Adam(p, lr=3e-2),
            "adamw": lambda p: torch.optim.AdamW(p, lr=3e-2),
            "sgd_momentum": lambda p: torch.optim.SGD(p, lr=0.5, momentum=0.9)}[opt_name]
    opt = make(v.parameters())
    v.attach_optimizer(opt)
    text = "the cat sat on the mat and the dog sat on the log"

    def loss_of(ids):  # next-token prediction through the tied projection
        h = v.embedding(ids[:-1])
        return torch.nn.functional.cross_entropy(v.embedding.logits(h), ids[1:])

    def train(ids, steps):
        losses = []
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_of(ids)
            loss.backward()
            opt.step()
            losses.append(loss.item())
        return losses

    v.encode(text)
    ids = v.encode(text)  # every word of the text used at least twice
    first = train(ids, 30)
    v.encode("a rare zebra")  # grow past capacity mid-training
    v.prune(2)  # drops the words used once, compacts ids, rows and optimizer state
    ids = v.encode(text, grow=False)
    assert (ids != 3).all()  # every word of the text survived
    second = train(ids, 30)
    assert second[0] <= first[-1] + 1e-3  # no jump back: rows and state moved intact
    assert first[-1] < first[0] - 0.3 and second[-1] < second[0] - 1e-3  # and it keeps learning
    assert opt.param_groups[0]["params"][0] is v.embedding.weight


def test_checkpoint_round_trip_into_another_capacity_with_optimizer():
    v = _vocab_with_counts(capacity=8)
    opt = torch.optim.Adam(v.parameters(), lr=1e-2)
    v.attach_optimizer(opt)
    ids = v.encode("word1 word2 word5")
    opt.zero_grad()
    v.embedding.logits(v.embedding(ids)).logsumexp(-1).sum().backward()
    opt.step()
    sd, osd = v.state_dict(), opt.state_dict()
    for cap in (4, 200):
        w = ElasticVocab(6, capacity=cap, bias=True, tied=False)
        o = torch.optim.Adam(w.parameters(), lr=1e-2)
        w.load_state_dict(sd)
        o.load_state_dict(osd)
        w.attach_optimizer(o)
        n = v.embedding.size
        assert w.table.checksum() == v.table.checksum() and w.embedding.size == n
        assert w.table.counts().tolist() == v.table.counts().tolist()
        for (name, p), q in zip(v.named_parameters(), w.parameters()):
            assert torch.equal(p[:n], q[:n]), name
            for key in ("exp_avg", "exp_avg_sq"):
                assert torch.equal(opt.state[p][key][:n], o.state[q][key][:n])
                assert o.state[q][key].shape == q.shape
    assert w.encode("word7 brandnew").tolist() == v.encode("word7 brandnew").tolist()


def test_bad_inputs_give_clear_errors_and_change_nothing():
    with pytest.raises(ValueError, match="capacity must be an int >= max"):
        ElasticEmbedding(4, 8, capacity=-1)
    with pytest.raises(ValueError, match="num_embeddings must be an int >= 0"):
        ElasticEmbedding(-1, 8)
    v = _vocab_with_counts()
    v.prune(2, compact=False)
    sd = {k: (t.clone() if isinstance(t, torch.Tensor) else t) for k, t in v.state_dict().items()}
    with pytest.raises(IndexError, match="dead"):
        v.embedding(torch.tensor([4]))  # word0 was freed, row not compacted yet
    with pytest.raises(IndexError, match=r"must be in \[0, size"):
        v.embedding(torch.tensor([10 ** 6]))
    with pytest.raises(IndexError, match="freed id"):
        v.decode(torch.tensor([4]))
    with pytest.raises(ValueError, match="one entry per row"):
        v.embedding.compact(torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="0 .. n-1, each once"):
        v.embedding.compact(torch.zeros(v.embedding.size, dtype=torch.int64))
    bad = dict(sd)
    bad["embedding.weight"] = bad["embedding.weight"][:3]
    with pytest.raises(RuntimeError, match="expected .* rows"):
        v.load_state_dict(bad)
    after = v.state_dict()
    assert after.keys() == sd.keys()
    for k in sd:
        if isinstance(sd[k], torch.Tensor):
            assert torch.equal(after[k], sd[k]), k


def test_gather_rows_op():
    a = torch.randn(6, 3)
    b = torch.arange(6)
    c = torch.rand(6) > 0.5
    idx = torch.tensor([5, 0, 2])
    out = torch.ops.memory_ext.gather_rows([a, b, c], idx, 5)
    for t, o in zip((a, b, c), out):
        assert torch.equal(o[:3], t[idx]) and not o[3:].any() and o.dtype == t.dtype
    torch.library.opcheck(torch.ops.memory_ext.gather_rows.default, ([a, b, c], idx, 5))
    with pytest.raises(RuntimeError, match=r"index values must be in \[0, 6\)"):
        torch.ops.memory_ext.gather_rows([a], torch.tensor([6]), 2)
    with pytest.raises(RuntimeError, match=r"tensors\[1\] must have the same number of rows"):
        torch.ops.memory_ext.gather_rows([a, torch.zeros(5)], idx, 3)


def _snapshot(v):
    return v.table.checksum(), len(v), {k: t.clone() for k, t in v.state_dict().items()
                                        if isinstance(t, torch.Tensor)}


def _assert_unchanged(v, snap):
    checksum, n, tensors = snap
    assert v.table.checksum() == checksum and len(v) == n
    after = v.state_dict()
    for k, t in tensors.items():
        assert torch.equal(after[k], t), k


def test_load_state_dict_refuses_a_live_token_whose_row_is_dead_and_changes_nothing():
    src = _vocab_with_counts()
    dst = ElasticVocab(6, capacity=8, bias=True, tied=False)
    dst.encode("something else entirely")
    snap = _snapshot(dst)
    sd = dict(src.state_dict())
    live = sd["embedding.live"].clone()
    live[5] = False
    sd["embedding.live"] = live
    with pytest.raises(RuntimeError, match="'word1' has id 5 but embedding row 5 is dead"):
        dst.load_state_dict(sd)
    _assert_unchanged(dst, snap)
    sd = dict(src.state_dict())
    for k in ("embedding.weight", "embedding.out_weight", "embedding.out_bias", "embedding.live",
              "embedding.counts"):  # one row more than the table has tokens
        sd[k] = torch.cat([sd[k], sd[k][-1:]])
    sd["embedding._extra_state"] = {**sd["embedding._extra_state"], "size": src.embedding.size + 1}
    with pytest.raises(RuntimeError, match=f"row {src.embedding.size} is live but no token has id"):
        dst.load_state_dict(sd)
    _assert_unchanged(dst, snap)


def test_load_state_dict_failing_on_the_embedding_keeps_the_token_table():
    src = _vocab_with_counts()
    dst = ElasticVocab(6, capacity=8, bias=True, tied=False)
    dst.encode("other words here")
    snap = _snapshot(dst)
    sd = dict(src.state_dict())
    sd["embedding.weight"] = sd["embedding.weight"][:, :3]  # the table is fine, the rows are not
    with pytest.raises(RuntimeError, match="expected shape"):
        dst.load_state_dict(sd)
    _assert_unchanged(dst, snap)
    sd = dict(src.state_dict())
    sd["embedding.weight"] = sd["embedding.weight"].clone()
    sd["embedding.weight"][4, 0] = float("nan")
    with pytest.raises(RuntimeError, match="NaN or inf"):
        dst.load_state_dict(sd)
    sd = dict(src.state_dict())
    sd["_extra_state"] = {**sd["_extra_state"], "table": {**sd["_extra_state"]["table"], "clock": "x"}}
    with pytest.raises(RuntimeError, match="table must be a TokenTable state_dict"):
        dst.load_state_dict(sd)
    _assert_unchanged(dst, snap)
    dst.load_state_dict(src.state_dict())  # a good one still loads
    assert dst.table.checksum() == src.table.checksum()


@pytest.mark.parametrize("tied", [True, False])
def test_plain_training_loop_survives_growth_while_the_last_loss_is_referenced(tied):
    # issue 15: `loss` of the previous step is still alive when the vocabulary reallocates; the
    # next backward used to fail with "invalid gradient ... got [cap', d] but expected [cap, d]"
    emb = ElasticEmbedding(4, 8, capacity=4, tied=tied, bias=True)
    opt = torch.optim.Adam(emb.parameters(), lr=1e-2)
    emb.attach_optimizer(opt)
    loss = None
    for step in range(6):
        emb.grow(3)  # reallocates on the first calls (capacity 4 -> 9 -> 19)
        ids = torch.arange(emb.size)
        h = emb(ids)
        loss = torch.nn.functional.cross_entropy(emb.logits(h), ids)  # the old loss dies only here
        opt.zero_grad()
        loss.backward()
        opt.step()
        assert emb.weight.grad.shape == emb.weight.shape
    assert emb.capacity >= emb.size == 4 + 6 * 3


def test_pruned_tokens_leave_the_pending_inserts_so_a_long_run_stays_small():
    """Without torch.distributed nobody calls sync(): the inserts it would share must not pile
    up (the shipped chatbot checkpoint once carried 117815 of them)."""
    v = ElasticVocab(8, capacity=16)
    v.encode("keep keep keep")
    for i in range(200):
        v.encode(f"name{i} keep")
        if i % 20 == 19:
            v.prune(2)
    pending = v.get_extra_state()["pending"]
    assert set(pending) <= {"keep"} | {f"name{i}" for i in range(180, 200)}
    assert len(pending) == len(set(pending)) and "keep" in pending
    assert all(v.table.lookup([t], -1).item() >= 0 for t in pending)

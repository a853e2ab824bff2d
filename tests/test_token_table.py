"""memory_ext.TokenTable: stable ids, lowest free id reused, prune / compact, checkpoints."""
import pickle
import threading

import pytest
import torch

from memory_ext import TokenTable


def test_add_counts_and_stable_ids():
    t = TokenTable()
    assert t.add(["a", "b", "a", "c"]).tolist() == [0, 1, 0, 2]
    assert t.add(["c", "d"]).tolist() == [2, 3]
    assert t.counts().tolist() == [2, 1, 2, 1] and len(t) == 4 and t.id_bound == 4
    assert t.lookup(["d", "zz", "a"], -7).tolist() == [3, -7, 0]
    assert t.counts().tolist() == [2, 1, 2, 1]  # lookup counts nothing
    assert t.decode(torch.tensor([3, 0])) == ["d", "a"] and t.decode([1]) == ["b"]
    assert "a" in t and "zz" not in t and t.clock == 2


def test_prune_frees_and_lowest_free_id_is_reused():
    t = TokenTable()
    t.add(["keep", "x", "y", "keep", "z", "w", "w"])
    freed = t.prune(2, protected=["y"])
    assert freed.tolist() == [1, 3]  # x and z; y protected; keep and w used twice
    assert t.decode([0, 2, 4]) == ["keep", "y", "w"]
    assert t.add(["new1", "new2", "new3"]).tolist() == [1, 3, 5]
    with pytest.raises(IndexError, match=r"ids\[0\] = 7 is out of range"):
        t.decode([7])


def test_grace_protects_young_tokens():
    t = TokenTable()
    t.add(["old"])
    t.add(["young"])
    # age = add() calls since insertion: old 2, young 1; a token is kept while age < grace
    assert t.prune(5, grace=1).tolist() == [0, 1]
    t2 = TokenTable()
    t2.add(["old"])
    t2.add(["young"])
    assert t2.prune(5, grace=2).tolist() == [0]
    assert t2.decode([1]) == ["young"]


def test_compact_renumbers_densely_in_order():
    t = TokenTable()
    t.add(["a", "b", "c", "d", "e"])
    t.remove(["b", "d"])
    remap = t.compact()
    assert remap.tolist() == [0, -1, 1, -1, 2]
    assert t.decode([0, 1, 2]) == ["a", "c", "e"] and t.id_bound == 3
    assert t.add(["f"]).tolist() == [3]


def test_decode_of_freed_id_is_an_error_and_changes_nothing():
    t = TokenTable()
    t.add(["a", "b"])
    t.prune(2)
    s = t.checksum()
    with pytest.raises(IndexError, match="is a freed id"):
        t.decode([0])
    assert t.checksum() == s


def test_bad_inputs():
    t = TokenTable()
    t.add(["a"])
    before = t.state_dict()
    with pytest.raises(ValueError, match=r"tokens\[1\] is the empty string"):
        t.add(["b", ""])
    with pytest.raises(TypeError, match="sequence of str, got a single str"):
        t.add("abc")
    with pytest.raises(TypeError, match=r"tokens\[0\] must be a str, got int"):
        t.add([3])
    with pytest.raises(TypeError, match="1-D int64 tensor"):
        t.decode(torch.tensor([0.0]))
    assert t.state_dict()["tokens"] == before["tokens"] and len(t) == 1


def test_state_dict_and_pickle_round_trip():
    t = TokenTable()
    t.add(["a", "b", "c", "a"])
    t.prune(2)
    t.add(["d"])
    for u in (pickle.loads(pickle.dumps(t)), _loaded(t.state_dict())):
        assert u.checksum() == t.checksum() and len(u) == len(t)
        assert u.counts().tolist() == t.counts().tolist()
        assert u.add(["e"]).tolist() == t.add(["e"]).tolist()  # same free ids next
        t.remove(["e"])


def _loaded(state):
    u = TokenTable()
    u.load_state_dict(state)
    return u


@pytest.mark.parametrize("corrupt, match", [
    (lambda s: s.update(tokens=["a", "a"], live=torch.tensor([True, True]),
                        counts=torch.tensor([1, 1]), born=torch.tensor([0, 0])), "appears twice"),
    (lambda s: s.update(counts=s["counts"][:-1]), "one entry per id"),
    (lambda s: s["counts"].__setitem__(0, -3), "negative count"),
    (lambda s: s.update(format="other"), "unknown format"),
    (lambda s: s.pop("born"), "missing 'born'"),
])
def test_load_validates_and_changes_nothing(corrupt, match):
    t = TokenTable()
    t.add(["x", "y"])
    s = t.state_dict()
    s["tokens"] = list(s["tokens"])
    corrupt(s)
    target = TokenTable()
    target.add(["keep"])
    with pytest.raises((ValueError, KeyError), match=match):
        target.load_state_dict(s)
    assert target.decode([0]) == ["keep"] and len(target) == 1


def test_concurrent_readers_see_consistent_ids():
    t = TokenTable()
    words = [f"w{i}" for i in range(2000)]
    ids = t.add(words).tolist()
    errors = []

    def reader():
        for _ in range(20):
            if t.lookup(words, -1).tolist() != ids or t.decode(ids) != words:
                errors.append("mismatch")

    threads = [threading.Thread(target=reader) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert not errors

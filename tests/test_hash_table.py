"""memory_ext.IntHashTable and its ops against a Python dict on random streams."""
import pytest
import torch

import memory_ext
from memory_ext import IntHashTable


def _devices():
    return ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.mark.parametrize("device", _devices())
def test_random_stream_with_duplicates_and_erases_matches_a_dict(device):
    g = torch.Generator().manual_seed(0)
    table = IntHashTable(capacity=8, device=device)
    ref_ids, ref_counts, next_id, grew_seen = {}, {}, 0, False
    for step in range(60):
        keys = torch.randint(-300, 300, (int(torch.randint(1, 200, (1,), generator=g)),), generator=g)
        keys[0] = 2 ** 62 + step  # large keys too
        ids, grew = table.lookup_or_insert(keys.to(device))
        grew_seen |= grew
        ids = ids.cpu().tolist()
        for k, i in zip(keys.tolist(), ids):
            if k not in ref_ids:
                ref_ids[k] = i
                next_id += 1
            assert ref_ids[k] == i  # same key, same id, also within a batch
            ref_counts[k] = ref_counts.get(k, 0) + 1
        if step % 7 == 3:  # erase some present and some absent keys
            er = torch.cat([keys[:5], torch.tensor([10 ** 6])])
            erased = table.erase(er.to(device)).cpu().tolist()
            for k, e in zip(er.tolist(), erased):
                assert e == (k in ref_ids)
                ref_ids.pop(k, None)
                ref_counts.pop(k, None)
    assert grew_seen and table.capacity > 8
    assert len(ref_ids) == len(table) and len(set(ref_ids.values())) == len(ref_ids)
    probe = torch.tensor(sorted(ref_ids) + [10 ** 7])
    assert table.find(probe.to(device)).cpu().tolist() == [ref_ids[k] for k in sorted(ref_ids)] + [-1]
    assert table.counts(probe.to(device)).cpu().tolist() == [ref_counts[k] for k in sorted(ref_ids)] + [0]


def test_cpu_ids_follow_first_occurrence_and_erased_ids_are_not_reused():
    t = IntHashTable()
    assert t.lookup_or_insert(torch.tensor([9, 4, 9, 1]))[0].tolist() == [0, 1, 0, 2]
    t.erase(torch.tensor([4]))
    assert t.lookup_or_insert(torch.tensor([4, 5]))[0].tolist() == [3, 4]


def test_grows_only_when_the_worst_case_would_pass_max_load():
    t = IntHashTable(capacity=128)  # max_load 0.5: 64 used slots
    for keys in (torch.arange(32), torch.arange(32), torch.arange(32, 40)):
        _, grew = t.lookup_or_insert(keys)  # worst case (all new) fits, after at most one read
        assert not grew and t.capacity == 128
    _, grew = t.lookup_or_insert(torch.arange(40, 80))  # 40 used + 40 maybe new > 64
    assert grew and t.capacity >= 256
    assert t.find(torch.arange(80)).tolist() == list(range(80))


def test_state_dict_round_trip():
    t = IntHashTable()
    t.lookup_or_insert(torch.tensor([5, 6, 5, 7]))
    t.erase(torch.tensor([6]))
    u = IntHashTable(capacity=2)
    u.load_state_dict(t.state_dict())
    keys = torch.tensor([5, 6, 7])
    assert u.find(keys).tolist() == t.find(keys).tolist() == [0, -1, 2]
    assert u.counts(keys).tolist() == [2, 0, 1]
    assert u.lookup_or_insert(torch.tensor([8]))[0].tolist() == [3]


@pytest.mark.parametrize("bad, err, match", [
    (torch.tensor([1.0]), TypeError, "1-D int64 tensor"),
    (torch.tensor([[1]]), TypeError, "1-D int64 tensor"),
    (torch.tensor([1, -(2 ** 63)]), RuntimeError, "reserved .* found at index 1"),
])
def test_bad_keys_change_nothing(bad, err, match):
    t = IntHashTable()
    t.lookup_or_insert(torch.tensor([1, 2]))
    slots, meta = t.slots.clone(), t.meta.clone()
    with pytest.raises(err, match=match):
        t.lookup_or_insert(bad)
    assert torch.equal(t.slots, slots) and torch.equal(t.meta, meta)


def test_bad_construction_and_state():
    with pytest.raises(ValueError, match="capacity must be an int >= 1"):
        IntHashTable(capacity=-4)
    with pytest.raises(ValueError, match="max_load must be in"):
        IntHashTable(max_load=1.0)
    t = IntHashTable()
    s = t.state_dict()
    s["entries"] = torch.tensor([[1, 0, 1], [1, 1, 1]])
    s["next_id"] = 2
    with pytest.raises(ValueError, match="distinct"):
        t.load_state_dict(s)


def test_opcheck():
    slots = torch.full((16, 3), -(2 ** 63), dtype=torch.int64)
    meta = torch.zeros(3, dtype=torch.int64)
    keys = torch.tensor([3, 1, 3])
    torch.library.opcheck(torch.ops.memory_ext.hash_lookup_or_insert_.default,
                          (slots.clone(), meta.clone(), keys), test_utils=("test_schema", "test_faketensor"))
    torch.ops.memory_ext.hash_lookup_or_insert_(slots, meta, keys)
    torch.library.opcheck(torch.ops.memory_ext.hash_find.default, (slots, keys))
    torch.library.opcheck(torch.ops.memory_ext.hash_erase_.default, (slots.clone(), meta.clone(), keys),
                          test_utils=("test_schema", "test_faketensor"))


def test_capacity_is_a_power_of_two_in_the_op():
    with pytest.raises(RuntimeError, match="capacity must be a power of two"):
        torch.ops.memory_ext.hash_find(torch.zeros(12, 3, dtype=torch.int64), torch.tensor([1]))
    assert memory_ext.IntHashTable(capacity=100).capacity == 128


def test_lookup_or_insert_refusing_reserved_keys_leaves_a_growing_table_as_it_was():
    """Found by tests/test_properties.py: a call that had to grow the table re-hashed it before
    the C++ op refused the reserved key, so the refused call changed the table."""
    t = memory_ext.IntHashTable(2)
    t.lookup_or_insert(torch.tensor([5]))
    before = (t.slots.clone(), t.meta.clone(), t.capacity)
    keys = torch.tensor([1, 2, 3, -(2 ** 63)])
    with pytest.raises(RuntimeError, match="keys: the values INT64_MIN and INT64_MIN \\+ 1 are reserved"):
        t.lookup_or_insert(keys)
    assert t.capacity == before[2]
    assert torch.equal(t.slots, before[0]) and torch.equal(t.meta, before[1])
    ids, grew = t.lookup_or_insert(torch.tensor([1, 2, 3]))
    assert ids.tolist() == [1, 2, 3] and grew

"""Bad and extreme inputs to the raw ops (torch.ops.memory_ext.*) and the TokenTable binding
(issue 15): each gets a clear error before anything is written, or the right result; never a
crash, a hang or a heap overflow. Probes that crashed or hung before the fixes run in a
subprocess, so a crash is a test failure rather than the end of the test run."""
import os
import pickle
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

import memory_ext

ops = torch.ops.memory_ext
EMPTY = -(2 ** 63)


def run_isolated(code: str, timeout: float = 120) -> str:
    """Runs `code` (after `import torch, memory_ext`) in a fresh interpreter; fails the test on
    a crash, a hang (timeout) or an exception, returns stdout."""
    src = "import torch, memory_ext\nops = torch.ops.memory_ext\n" + textwrap.dedent(code)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    try:
        # cwd: the tests folder, so `import memory_ext` is the installed package, not the
        # repository's source folder (no compiled core in a fresh clone)
        r = subprocess.run([sys.executable, "-c", src], capture_output=True, text=True,
                           timeout=timeout, env=env, cwd=os.path.dirname(os.path.abspath(__file__)))
    except subprocess.TimeoutExpired:
        pytest.fail(f"probe hung (> {timeout} s)")
    assert r.returncode == 0, f"probe exited with {r.returncode}:\n{r.stdout}\n{r.stderr[-3000:]}"
    return r.stdout


# --------------------------------------------------------------------------------------------
# mlp_memory_scan / delta_rule: checkpoint_every beyond T (was cast to int: heap overflow,
# SIGFPE, or a backward scratch sized by C rather than min(C, T))

def _scan_inputs(T=3, B=2, H=2, d=4):
    g = torch.Generator().manual_seed(0)
    W = [(torch.randn(B, d, d, generator=g) * 0.1).requires_grad_() for _ in range(2)]
    kw = torch.randn(B, T, H, d, generator=g, requires_grad=True)
    kr = torch.randn(B, T, H, d, generator=g)
    v = torch.randn(B, T, H, d, generator=g)
    return W, kw, v, torch.full((B, T), 0.5), kr


@pytest.mark.parametrize("C", [2 ** 31 - 1, 2 ** 31, 2 ** 32, 2 ** 32 + 1, 10 ** 9, 2 ** 63 - 1])
def test_scan_checkpoint_every_beyond_T_equals_T(C):
    out = run_isolated(f"""
        import sys; sys.path.insert(0, {os.path.dirname(__file__)!r})
        from test_bad_input_raw_ops import _scan_inputs
        W, kw, v, beta, kr = _scan_inputs()
        ref = ops.mlp_memory_scan(W, kw, [v], beta, kr, None, None, "grad", "tanh", 3)
        got = ops.mlp_memory_scan(W, kw, [v], beta, kr, None, None, "grad", "tanh", {C})
        assert torch.equal(ref[0], got[0]) and torch.equal(ref[2], got[2])
        assert [c.shape for c in got[3]] == [c.shape for c in ref[3]], [c.shape for c in got[3]]
        grads = []
        for c in (3, {C}):
            reads, wT, _ = memory_ext.mlp_memory_scan(W, kw, v, beta, kr, rule="grad",
                                                      checkpoint_every=c)
            grads.append(torch.autograd.grad((reads.sum() + sum(w.sum() for w in wT)),
                                             W + [kw]))
        assert all(torch.allclose(a, b) for a, b in zip(*grads))
        # the raw backward too, with the forward's checkpoints
        gr = torch.randn_like(ref[0])
        b1 = ops._mlp_memory_scan_bwd(ref[3], kw, [v], beta, kr, None, None, gr, [], None,
                                      "grad", "tanh", 3)
        b2 = ops._mlp_memory_scan_bwd(got[3], kw, [v], beta, kr, None, None, gr, [], None,
                                      "grad", "tanh", {C})
        assert all(torch.allclose(a, b) for a, b in zip(b1[0], b2[0]))
        assert torch.allclose(b1[1], b2[1])
        # T = 0: no checkpoint at all
        W0, kw0, v0, beta0, kr0 = _scan_inputs(T=0)
        r0 = ops.mlp_memory_scan(W0, kw0, [v0], beta0, kr0, None, None, "grad", "tanh", {C})
        assert r0[3][0].shape[1] == 0
        print("OK")
    """)
    assert "OK" in out


def test_delta_rule_recurrent_checkpoint_every_huge():
    out = run_isolated("""
        g = torch.Generator().manual_seed(0)
        q, k, v = (torch.randn(1, 3, 2, 4, generator=g, requires_grad=True) for _ in range(3))
        beta = torch.rand(1, 3, 2, generator=g)
        res = []
        for c in (16, 2 ** 31 - 1, 2 ** 32):
            o, _ = memory_ext.delta_rule(q, k, v, beta, mode="recurrent", checkpoint_every=c)
            res.append((o, torch.autograd.grad(o.sum(), (q, k, v))))
        for o, gr in res[1:]:
            assert torch.allclose(o, res[0][0])
            assert all(torch.allclose(a, b) for a, b in zip(gr, res[0][1]))
        print("OK")
    """)
    assert "OK" in out


# --------------------------------------------------------------------------------------------
# TokenTable: sequences whose items are fresh str objects (numpy string arrays, computed
# sequences) were read through views into freed strings

_TOKENS_SRC = """
import numpy as np
from collections.abc import Sequence

class Fresh(Sequence):  # every item a new str object, dropped right after it is read
    def __init__(self, toks): self.toks = list(toks)
    def __len__(self): return len(self.toks)
    def __getitem__(self, i):
        if isinstance(i, slice): return Fresh(self.toks[i])
        return "".join(list(self.toks[i]))

toks = ["token-%05d-" % i + "x" * (i % 40) for i in range(300)]
"""


def test_token_table_add_lookup_fresh_str_sequences():
    out = run_isolated(_TOKENS_SRC + textwrap.dedent("""
        for make in (Fresh, lambda t: np.array(t), tuple):
            t = memory_ext.TokenTable()
            ids = t.add(make(toks)).tolist()
            assert ids == list(range(300)), ids[:10]
            assert t.decode(torch.arange(300)) == toks
            assert t.lookup(make(toks), -1).tolist() == ids
            assert t.lookup(make(["nope"] + toks[:2]), -1).tolist() == [-1, 0, 1]
            assert t.remove(make(toks[:2])).tolist() == [0, 1]
        print("OK")
    """))
    assert "OK" in out


def test_token_table_prune_protects_fresh_str_sequences():
    out = run_isolated(_TOKENS_SRC + textwrap.dedent("""
        for make in (Fresh, lambda t: np.array(t)):
            t = memory_ext.TokenTable()
            t.add(toks)
            freed = t.prune(5, make(toks[:150]), 0).tolist()
            assert freed == list(range(150, 300)), freed[:5]
            assert t.decode(torch.arange(150)) == toks[:150]
        print("OK")
    """))
    assert "OK" in out


def test_token_table_load_state_dict_fresh_str_sequences():
    out = run_isolated(_TOKENS_SRC + textwrap.dedent("""
        t = memory_ext.TokenTable()
        t.add(toks)
        for make in (Fresh, lambda t: np.array(t)):
            sd = t.state_dict()
            sd["tokens"] = make(sd["tokens"])
            u = memory_ext.TokenTable()
            u.load_state_dict(sd)
            assert u.checksum() == t.checksum()
            assert u.lookup(toks, -1).tolist() == list(range(300))
        print("OK")
    """))
    assert "OK" in out


def test_token_table_load_garbled_live_byte_is_an_error():
    t = memory_ext.TokenTable()
    t.add(["a", "b"])
    sd = t.state_dict()
    sd["live"] = torch.tensor([1, 2], dtype=torch.uint8).view(torch.bool)  # byte 2: not a bool
    u = memory_ext.TokenTable()
    with pytest.raises(ValueError, match="live must be 0 or 1"):
        u.load_state_dict(sd)
    assert len(u) == 0
    blob = pickle.dumps(t)
    assert pickle.loads(blob).checksum() == t.checksum()


# --------------------------------------------------------------------------------------------
# hash table raw ops

def _table(cap):
    return torch.full((cap, 3), EMPTY, dtype=torch.int64), torch.zeros(3, dtype=torch.int64)


@pytest.mark.parametrize("op", ["hash_lookup_or_insert_", "hash_erase_"])
@pytest.mark.parametrize("meta_kind", ["expanded", "strided"])
def test_hash_meta_must_be_contiguous(op, meta_kind):
    out = run_isolated(f"""
        slots = torch.full((1024, 3), -(2 ** 63), dtype=torch.int64)
        if {meta_kind!r} == "expanded":
            meta = torch.zeros(1, dtype=torch.int64).expand(3)
        else:
            meta = torch.zeros(6, dtype=torch.int64)[::2]
        before = slots.clone()
        try:
            getattr(ops, {op!r})(slots, meta, torch.arange(100))
        except RuntimeError as e:
            assert "meta must be contiguous" in str(e), e
            assert torch.equal(slots, before)
            print("OK")
    """)
    assert "OK" in out


def test_hash_insert_into_full_table_is_an_error():
    out = run_isolated("""
        slots = torch.full((4, 3), -(2 ** 63), dtype=torch.int64)
        meta = torch.zeros(3, dtype=torch.int64)
        assert ops.hash_lookup_or_insert_(slots, meta, torch.tensor([1, 2, 3, 4])).tolist() == [0, 1, 2, 3]
        # every key present: fine in a full table
        assert ops.hash_lookup_or_insert_(slots, meta, torch.tensor([4, 1])).tolist() == [3, 0]
        s0, m0 = slots.clone(), meta.clone()
        try:
            ops.hash_lookup_or_insert_(slots, meta, torch.tensor([1, 5]))
            raise SystemExit("no error")
        except RuntimeError as e:
            assert "full" in str(e), e
        assert torch.equal(slots, s0) and torch.equal(meta, m0)
        # a meta that under-counts the used slots: still an error, no hang
        meta.zero_()
        try:
            ops.hash_lookup_or_insert_(slots, meta, torch.tensor([9]))
            raise SystemExit("no error")
        except RuntimeError as e:
            assert "full" in str(e), e
        # half full, more keys than free slots but most of them present: fine
        slots = torch.full((4, 3), -(2 ** 63), dtype=torch.int64)
        meta = torch.zeros(3, dtype=torch.int64)
        ops.hash_lookup_or_insert_(slots, meta, torch.tensor([1, 2, 3]))
        assert ops.hash_lookup_or_insert_(slots, meta, torch.tensor([1, 2, 3, 7, 7, 1])).tolist() == [0, 1, 2, 3, 3, 0]
        print("OK")
    """, timeout=60)
    assert "OK" in out


def test_hash_rebuild_into_non_empty_table_is_an_error():
    out = run_isolated("""
        slots = torch.full((4, 3), -(2 ** 63), dtype=torch.int64)
        meta = torch.zeros(3, dtype=torch.int64)
        ops.hash_lookup_or_insert_(slots, meta, torch.tensor([1, 2, 3, 4]))
        s0 = slots.clone()
        try:
            ops._hash_rebuild_(slots, torch.tensor([[7, 0, 1]]))
            raise SystemExit("no error")
        except RuntimeError as e:
            assert "empty" in str(e), e
        assert torch.equal(slots, s0)
        print("OK")
    """, timeout=60)
    assert "OK" in out


@pytest.mark.parametrize("entries, match", [
    ([[5, 0, 1], [6, 1, 1], [5, 2, 1]], "distinct"),
    ([[5, 0, 1], [EMPTY, 1, 1]], "reserved"),
    ([[5, 0, 1], [EMPTY + 1, 1, 1]], "reserved"),
])
def test_hash_rebuild_bad_entries_change_nothing(entries, match):
    slots, _ = _table(8)
    with pytest.raises(RuntimeError, match=match):
        ops._hash_rebuild_(slots, torch.tensor(entries))
    assert bool((slots == EMPTY).all())


def test_hash_rebuild_strided_entries():
    slots, _ = _table(8)
    e = torch.tensor([[5, 0, 2], [6, 1, 3]]).t().contiguous().t()  # non-contiguous view
    ops._hash_rebuild_(slots, e)
    ids, counts = ops.hash_find(slots, torch.tensor([6, 5, 7]))
    assert ids.tolist() == [1, 0, -1] and counts.tolist() == [3, 2, 0]


# --------------------------------------------------------------------------------------------
# gather_rows

def test_gather_rows_zero_width_rows_huge_out_rows():
    out = run_isolated("""
        r = ops.gather_rows([torch.empty(3, 0), torch.empty(3, 5, 0, dtype=torch.int64)],
                            torch.tensor([2, 0]), 2 ** 40)
        assert r[0].shape == (2 ** 40, 0) and r[1].shape == (2 ** 40, 5, 0)
        r = ops.gather_rows([torch.empty(3, 0)], torch.tensor([2, 0]), 4)  # memcpy of null
        assert r[0].shape == (4, 0)
        print("OK")
    """, timeout=60)
    assert "OK" in out


def test_gather_rows_mixed_zero_width_rows():
    a = torch.arange(12.).view(3, 4)
    r = ops.gather_rows([torch.empty(3, 0), a], torch.tensor([2, 0]), 3)
    assert r[0].shape == (3, 0)
    assert torch.equal(r[1], torch.tensor([[8., 9, 10, 11], [0, 1, 2, 3], [0, 0, 0, 0]]))


def test_gather_rows_from_zero_rows_pads_with_zeros():
    junk = torch.full((4096, 4), 7.0)  # the output's memory is likely to be this block's
    del junk
    r = ops.gather_rows([torch.empty(0, 4), torch.empty(0, 2, dtype=torch.int64)],
                        torch.empty(0, dtype=torch.int64), 4096)
    assert r[0].shape == (4096, 4) and bool((r[0] == 0).all())
    assert r[1].shape == (4096, 2) and bool((r[1] == 0).all())


def test_gather_rows_bad_out_rows():
    with pytest.raises(RuntimeError, match="out_rows"):
        ops.gather_rows([torch.zeros(3, 2)], torch.tensor([0]), -1)


# --------------------------------------------------------------------------------------------
# slot memory: _slot_read_hard_bwd indices

def test_slot_read_hard_bwd_minus_one_indices_are_fine():
    q, M, Q = torch.randn(2, 3), torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    count = torch.tensor([0, 4])
    idx, scores = ops.slot_read_hard(q, M, Q, count, 2)
    assert idx[0].tolist() == [-1, -1]
    dq, dM, dQ = ops._slot_read_hard_bwd(torch.ones_like(scores), q, M, Q, count, idx)
    assert bool(torch.isfinite(dq).all())


@pytest.mark.parametrize("indices, match", [
    ("torch.full((4, 2), 10 ** 6, dtype=torch.int64)", r"indices.*\[-1, 5\)"),
    ("torch.full((4, 2), 5, dtype=torch.int64)", r"indices.*\[-1, 5\)"),
    ("torch.full((4, 2), -2, dtype=torch.int64)", r"indices.*\[-1, 5\)"),
    ("torch.zeros(1, 2, dtype=torch.int64)", r"indices must be int64 \[B, K\]"),
    ("torch.zeros(4, 2, dtype=torch.int32)", r"indices must be int64"),
    ("torch.zeros(4, dtype=torch.int64)", r"indices must be int64 \[B, K\]"),
])
def test_slot_read_hard_bwd_bad_indices(indices, match):
    out = run_isolated(f"""
        import re
        B, N, d = 4, 5, 3
        q, M, Q = torch.randn(B, d), torch.randn(B, N, d), torch.randn(B, N, d)
        count = torch.full((B,), N, dtype=torch.int64)
        idx = {indices}
        K = idx.shape[1] if idx.dim() == 2 else 1
        try:
            ops._slot_read_hard_bwd(torch.ones(B, K, N), q, M, Q, count, idx)
            raise SystemExit("no error")
        except RuntimeError as e:
            assert re.search({match!r}, str(e)), e
        print("OK")
    """)
    assert "OK" in out


def test_slot_read_bwd_tensors_of_another_dtype():
    q, M, C = torch.randn(2, 3), torch.randn(2, 4, 3), torch.randn(2, 4, 3)
    count = torch.tensor([4, 4])
    u, attn, saved = ops.slot_read(q, M, C, count, 2, None)
    with pytest.raises(RuntimeError, match="saved_u must have dtype Float like grad_u, got Double"):
        ops._slot_read_bwd(torch.ones_like(u), None, M, C, count, None, saved.double(), attn)
    with pytest.raises(RuntimeError, match="attention must have dtype Float like grad_u, got Double"):
        ops._slot_read_bwd(torch.ones_like(u), None, M, C, count, None, saved, attn.double())


# --------------------------------------------------------------------------------------------
# sizes past the int32 limit (expanded, stride-0 tensors: no memory), narrowed to int before

# a missed check fails, not swaps; not under AddressSanitizer, whose shadow memory is a large
# address-space reservation (the CI's ASan stage preloads libasan)
_CAP_MEMORY = """
import os, resource
if "libasan" not in os.environ.get("LD_PRELOAD", ""):
    resource.setrlimit(resource.RLIMIT_AS, (6 << 30, 6 << 30))
"""


def _expect_error(expr: str, match: str) -> None:
    out = run_isolated(_CAP_MEMORY + textwrap.dedent(f"""
        import re
        try:
            {expr}
            raise SystemExit("no error")
        except RuntimeError as e:
            assert re.search({match!r}, str(e)), str(e)[:500]
        print("OK")
    """))
    assert "OK" in out


BIG = 2 ** 32 + 1  # narrowed to int: 1


def test_slot_read_hops_past_int32():
    _expect_error(f"ops.slot_read(torch.ones(1, 1), torch.ones(1, 1, 1), torch.ones(1, 1, 1), "
                  f"torch.ones(1, dtype=torch.int64), {BIG}, None)", r"hops: K = 4294967297")


def test_slot_read_hard_slots_past_int32():
    _expect_error(f"ops.slot_read_hard(torch.ones(1, 1), torch.ones(1, 1, 1).expand(1, {BIG}, 1), "
                  f"torch.ones(1, 1, 1).expand(1, {BIG}, 1), torch.ones(1, dtype=torch.int64), 1)",
                  r"M: N = 4294967297")


def test_delta_rule_chunk_T_past_int32():
    x = f"torch.ones(1, 1, 1).expand(1, {BIG}, 1)"
    _expect_error(f"ops.delta_rule_chunk({x}, {x}, {x}, torch.ones(1, 1).expand(1, {BIG}), None, "
                  f"1.0, 64, False)", r"q: T = 4294967297")


def test_mlp_memory_scan_T_past_int32():
    x = f"torch.ones(1, 1, 1, 2).expand(1, {BIG}, 1, 2)"
    _expect_error(f"ops.mlp_memory_scan([torch.zeros(1, 2, 2)], {x}, [{x}], "
                  f"torch.ones(1, 1).expand(1, {BIG}), {x}, None, None, 'grad', 'tanh', 16)",
                  r"write_keys: T = 4294967297")


def test_mlp_memory_read_heads_past_int32():
    _expect_error(f"ops.mlp_memory_read([torch.zeros(1, 2, 2)], "
                  f"torch.ones(1, 1, 2).expand(1, {BIG}, 2), 'tanh')", r"keys: H = 4294967297")


def test_mlp_memory_weights_past_int32_in_total():
    # two layers of 1.6e9 elements each: each fits an int, their sum does not
    n = 40000
    _expect_error(f"ops.mlp_memory_read([torch.zeros(1, 1, 1).expand(1, {n}, {n}), "
                  f"torch.zeros(1, 1, 1).expand(1, {n}, {n})], torch.ones(1, 1, {n}), 'tanh')",
                  r"all layers' weights with 32-bit ints")

"""Property-based tests of every public op and every raw torch.ops.memory_ext op (issue 15).

Hypothesis generates, per op, random shapes, dtypes (float32 / float64), devices (cpu, meta),
sizes past the int32 limits (as meta tensors: nothing is allocated), op parameters (huge or
negative checkpoint_every, hops, chunk_size, out_rows, ...) and one mutation of a valid input
(wrong shape or rank of one argument, wrong dtype, a non-contiguous or stride-0 expanded view, a
meta tensor among CPU ones, NaN / +-Inf values, out-of-range integers). The cases run in worker
subprocesses (tests/properties_worker.py), so that a crash or a hang is a failing case and not
a dead pytest; a worker that dies is restarted after the case that killed it.

Every case must end in one of: an error (RuntimeError / ValueError / TypeError / IndexError)
naming the argument, with every input bit-identical to before; or the reference's answer
(memory_ext.reference, autograd through it for the backward ops, a Python model for the
tables), NaN where the reference has NaN, float64 tight and float32 loose.

Deterministic: hypothesis runs derandomized with a fixed max_examples per op. The number of
cases run is printed (pytest -s) and asserted.
"""
from __future__ import annotations

import hashlib
import json
import os
import re
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
WORKER = HERE / "properties_worker.py"
EXAMPLES = int(os.environ.get("MEMORY_EXT_PROPERTY_EXAMPLES", "60"))  # cases per op
# a case running longer is a hang (the worker is killed and restarted); the sanitizer stage,
# several times slower, sets a longer one
CASE_TIMEOUT_S = float(os.environ.get("MEMORY_EXT_PROPERTY_CASE_TIMEOUT", "4"))

I32 = 2 ** 31
MUTATIONS = ["none"] * 6 + ["nan", "posinf", "neginf", "shape", "rank", "dtype_int", "dtype_float",
                            "noncontig", "expanded", "meta_mix", "range"]


# --- strategies ----------------------------------------------------------------------------------------
def _mutation():
    return st.fixed_dictionaries({"kind": st.sampled_from(MUTATIONS),
                                  "pick": st.integers(0, 10 ** 6), "pos": st.integers(0, 10 ** 6)})


def _base(op, device_choices=("cpu", "cpu", "cpu", "meta")):
    return {"op": st.just(op), "seed": st.integers(0, 2 ** 31 - 1),
            "dtype": st.sampled_from(["float64", "float32"]),
            "device": st.sampled_from(device_choices), "mutation": _mutation(),
            "huge": st.sampled_from([False] * 9 + [True])}


@st.composite
def mlp_spec(draw, op):
    time = op.endswith("scan") or op == "_mlp_memory_scan_bwd"
    L = draw(st.integers(1, 3))
    widths = draw(st.lists(st.integers(1, 6), min_size=L + 1, max_size=L + 1))
    dims = {"B": draw(st.integers(1, 3)), "H": draw(st.integers(1, 3)), "Hr": draw(st.integers(1, 3)),
            "T": draw(st.integers(0 if op != "_mlp_memory_scan_bwd" else 1, 5)) if time else 1,
            "widths": widths}
    public = op.startswith("pub_")
    params = {"rule": draw(st.sampled_from(["local", "grad"])),
              "activation": draw(st.sampled_from(["tanh", "sigmoid", "relu", "identity"])),
              "beta_per_layer": draw(st.booleans()),
              "alpha": draw(st.sampled_from(["none", "tensor"] + (["float"] if public else []))),
              "recon": draw(st.booleans()),
              "checkpoint_every": draw(st.sampled_from(
                  [1, 2, 3, 16] * 3 + ([I32 - 1, I32, 2 ** 32, 10 ** 9, 0, -1] if op != "_mlp_memory_scan_bwd"
                                       else [I32 - 1, 10 ** 9])))}
    spec = draw(st.fixed_dictionaries(_base(op)))
    if spec["huge"]:
        dims["B"] = draw(st.sampled_from([I32 + 1, 2 ** 32 + 3, 3 * 2 ** 30]))
        if op in ("_mlp_memory_scan_bwd", "_mlp_memory_step_bwd_"):
            spec["huge"] = False
            dims["B"] = 2
    return dict(spec, dims=dims, params=params)


@st.composite
def delta_spec(draw, op):
    dims = {"B": draw(st.integers(1, 2)), "T": draw(st.integers(0 if op == "pub_delta_rule" else 1, 9)),
            "H": draw(st.integers(1, 3)), "K": draw(st.integers(1, 6)), "V": draw(st.integers(1, 6))}
    params = {"scale": draw(st.sampled_from([None, 0.5, 1.0])),
              "mode": draw(st.sampled_from(["chunk", "recurrent", None])),
              "checkpoint_every": draw(st.sampled_from([1, 2, 16, 16, 16, I32 - 1, I32, 2 ** 32, 10 ** 9, 0])),
              "chunk_size": draw(st.sampled_from([None, None, 1, 2, 3, 16, 64] +
                                                 ([0, -1, I32] if op != "_delta_rule_chunk_bwd" else []))),
              "l2norm": draw(st.booleans()), "initial_state": draw(st.booleans()),
              "give_out": draw(st.booleans()), "save_states": draw(st.booleans()),
              "grad_final": draw(st.booleans())}
    spec = draw(st.fixed_dictionaries(_base(op)))
    if spec["huge"]:
        if op == "_delta_rule_chunk_bwd":
            spec["huge"] = False
        else:
            dims["B"] = draw(st.sampled_from([I32 + 1, 2 ** 32 + 3]))
            dims["T"] = min(dims["T"], 2)
    if spec["huge"] and params["mode"] is None:
        params["mode"] = "chunk"
    return dict(spec, dims=dims, params=params)


@st.composite
def slot_spec(draw, op):
    dims = {"B": draw(st.integers(1, 3)), "N": draw(st.integers(1, 5)), "d": draw(st.integers(1, 6))}
    # hops past int32 only as meta sizes (an [B, hops, N] output on the CPU would be allocated)
    params = {"hops": draw(st.sampled_from([1, 2, 3, 1, 2] + ([0, -1] if "bwd" not in op else []))),
              "policy": draw(st.sampled_from(["append", "ring"])), "full": draw(st.booleans()),
              "per_hop": draw(st.booleans()), "R": draw(st.booleans()),
              "grad_attention": draw(st.booleans())}
    spec = draw(st.fixed_dictionaries(_base(op)))
    if spec["huge"]:
        if "bwd" in op or params["hops"] < 1:
            spec["huge"] = False
        elif op != "pub_slot_write_" and op != "slot_write_" and draw(st.booleans()):
            params["hops"] = draw(st.sampled_from([I32 - 1, I32, 2 ** 40]))
        else:
            dims["B"] = draw(st.sampled_from([I32 + 1, 2 ** 32 + 3]))
    return dict(spec, dims=dims, params=params)


@st.composite
def hash_spec(draw, op):
    dims = {"cap": draw(st.sampled_from([1, 2, 4, 8, 16, 64])), "n_pre": draw(st.integers(0, 12)),
            "n": draw(st.integers(0, 12))}
    params = {"action": draw(st.sampled_from(["lookup_or_insert", "find", "erase", "load_state_dict"])),
              "bad_state": draw(st.sampled_from([None, None, "next_id_huge", "next_id_negative", "dup_key",
                                                 "id_range", "neg_count", "reserved_key"])),
              "load_cap": draw(st.sampled_from([1, 4, 64])),
              "huge_keys": draw(st.booleans()), "full": draw(st.sampled_from([False] * 9 + [True])),
              "into_nonempty": draw(st.sampled_from([False] * 5 + [True])), "fit": draw(st.booleans())}
    spec = draw(st.fixed_dictionaries(_base(op, ("cpu", "cpu", "cpu", "meta"))))
    return dict(spec, huge=False, dims=dims, params=params)


@st.composite
def gather_spec(draw, op):
    widths = draw(st.lists(st.lists(st.integers(0, 3), max_size=2), min_size=1, max_size=4))
    dims = {"R": draw(st.integers(0, 6)), "n": draw(st.integers(0, 8)), "widths": widths}
    zero_width = all(0 in w for w in widths)
    extra = [0, 0, 1, 5, -1] + ([I32 + 7] if zero_width else [])  # more huge out_rows in EDGES
    params = {"extra_rows": draw(st.sampled_from(extra))}
    spec = draw(st.fixed_dictionaries(_base(op)))
    return dict(spec, huge=False, dims=dims, params=params)


@st.composite
def token_spec(draw, op):
    params = {"n_pre": draw(st.integers(0, 8)), "n": draw(st.integers(0, 8)),
              "container": draw(st.sampled_from(["list", "list", "tuple", "seq", "gen_list"])),
              "action": draw(st.sampled_from(["add", "lookup", "remove", "prune", "decode"])),
              "unk": draw(st.sampled_from([-1, 0, I32, -(2 ** 63), 2 ** 63 - 1])),
              "min_count": draw(st.sampled_from([0, 1, 2, -1, 2 ** 62])),
              "grace": draw(st.sampled_from([0, 1, -1, 2 ** 62])),
              "ids": draw(st.lists(st.sampled_from([0, 1, 2, 3, -1, 7, I32, 2 ** 62]), max_size=4)),
              "ids_tensor": draw(st.booleans())}
    spec = draw(st.fixed_dictionaries(_base(op)))
    return dict(spec, huge=False, device="cpu", dims={}, params=params)


MLP_OPS = ["pub_mlp_memory_read", "pub_mlp_memory_write", "pub_mlp_memory_step", "pub_mlp_memory_scan",
           "mlp_memory_read", "_mlp_memory_read_bwd", "mlp_memory_write", "mlp_memory_step",
           "mlp_memory_scan", "_mlp_memory_scan_bwd", "_mlp_memory_step_", "_mlp_memory_step_bwd_"]
DELTA_OPS = ["pub_delta_rule", "pub_delta_rule_step", "delta_rule_step_", "delta_rule_chunk",
             "_delta_rule_chunk_bwd"]
SLOT_OPS = ["pub_slot_write_", "slot_write_", "pub_slot_read", "slot_read", "_slot_read_bwd",
            "pub_slot_read_hard", "slot_read_hard", "_slot_read_hard_bwd"]
HASH_OPS = ["pub_IntHashTable", "hash_lookup_or_insert_", "hash_find", "hash_erase_", "_hash_rebuild_"]
STRATEGIES = {**{o: mlp_spec for o in MLP_OPS}, **{o: delta_spec for o in DELTA_OPS},
              **{o: slot_spec for o in SLOT_OPS}, **{o: hash_spec for o in HASH_OPS},
              "gather_rows": gather_spec, "pub_TokenTable": token_spec}
ALL_OPS = list(STRATEGIES)


def generate(op: str, n: int):
    specs = []

    @settings(max_examples=n, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck), phases=["explicit", "generate"])
    @given(STRATEGIES[op](op))
    def collect(spec):
        specs.append(spec)

    collect()
    # hypothesis favours the first values of a sampled_from; every edge value of EDGES also runs
    # once, on a generated spec of the op with no mutation
    base = [sp for sp in specs if not sp["huge"]] or specs
    for j, edge in enumerate(EDGES.get(op, [])):
        sp = json.loads(json.dumps(base[j % len(base)]))
        sp.update(device="cpu", mutation={"kind": "none", "pick": 0, "pos": 0})
        for section, name, value in edge:
            sp[section][name] = value
        if op == "pub_TokenTable":
            sp["params"]["n"] = max(sp["params"]["n"], 3)
        specs.append(sp)
    return specs


_CKPT = [[("params", "checkpoint_every", c)] for c in (I32 - 1, I32, 2 ** 32, 10 ** 9)]
EDGES = {  # op -> [[(section, name, value), ...], ...]
    "pub_mlp_memory_scan": _CKPT, "mlp_memory_scan": _CKPT, "_mlp_memory_scan_bwd": _CKPT[:1] + _CKPT[3:],
    "pub_delta_rule": [[("params", "mode", "recurrent"), ("params", "checkpoint_every", c), ("dims", "T", 3)]
                       for c in (16, I32 - 1, I32, 2 ** 32)],
    "pub_TokenTable": [[("params", "container", c), ("params", "action", a)]
                       for c in ("tuple", "seq") for a in ("add", "lookup", "remove")],
    "gather_rows": [[("dims", "widths", [[0]]), ("dims", "R", 3), ("dims", "n", 2), ("params", "extra_rows", e)]
                    for e in (0, I32 + 7, 2 ** 40)],
    "hash_lookup_or_insert_": [[("params", "full", True), ("dims", "n", 3)]] * 2,
    "hash_find": [[("params", "full", True), ("dims", "n", 3)]] * 2,
    "_hash_rebuild_": [[("params", "into_nonempty", True), ("dims", "n_pre", 6), ("dims", "n", 4)]] * 2,
    "slot_read": [[("params", "hops", h)] for h in (0, -1)],
    "pub_slot_read_hard": [[("params", "hops", h)] for h in (0, -1)],
    "_slot_read_hard_bwd": [[("params", "hops", 2), ("dims", "N", 4), ("mutation", "kind", k), ("mutation", "pick", 5),
                             ("mutation", "pos", 7 * j)] for k, j in (("range", 1), ("range", 2), ("shape", 1))],
}


# --- the worker pool ----------------------------------------------------------------------------------
def run_cases(specs, timeout=CASE_TIMEOUT_S):
    """Runs specs [(id, spec)] in worker processes; returns {id: result}. A case during which the
    worker died or hung gets {"ok": False, "why": "crash ..." / "hang ..."}; the next worker starts
    after it."""
    results, todo = {}, list(specs)
    # the installed memory_ext (the repository root on the path would import the source folder,
    # which has no compiled core in a fresh clone)
    env = dict(os.environ, MEMORY_EXT_DEBUG_NAN_FILL="1", OMP_NUM_THREADS="1")
    while todo:
        # the specs go through a file (a pipe would block the parent while the worker waits for
        # its own stdout to be read), stderr to a file too
        with tempfile.TemporaryFile("w+") as fin, tempfile.TemporaryFile("w+") as ferr:
            fin.write("".join(json.dumps([i, s]) + "\n" for i, s in todo))
            fin.seek(0)
            proc = subprocess.Popen([sys.executable, str(WORKER)], stdin=fin, stdout=subprocess.PIPE,
                                    stderr=ferr, env=env, bufsize=0)
            running, why = _drain(proc, results, timeout)
            ferr.seek(0)
            err = ferr.read()[-1500:]
        if why.startswith("crash") and err.strip():
            why += f"; stderr tail: {err}"
        done = set(results)
        if running is not None:
            results[running] = {"ok": False, "why": why}
            done.add(running)
        elif not all(i in done for i, _ in todo):
            raise RuntimeError(f"worker failed before any case: {why}")
        todo = [(i, s) for i, s in todo if i not in done]
    return results


def _drain(proc, results, timeout):
    """Reads the worker's reports until it ends; returns (the case it died in or None, why)."""
    running, why, buf = None, "", b""
    deadline = time.monotonic() + 120.0  # the first case also waits for the imports
    fd = proc.stdout.fileno()
    while True:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            proc.kill()
            proc.wait()
            why = f"hang: no answer within {timeout:.0f} s"
            break
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            rc = proc.wait()
            why = f"crash: worker exited with status {rc}" + (f" (signal {-rc})" if rc < 0 else "")
            break
        buf += chunk
        *lines, buf = buf.split(b"\n")
        for line in lines:
            msg = json.loads(line)
            if "start" in msg:
                running = msg["start"]
                deadline = time.monotonic() + timeout
            else:
                results[msg["done"]] = msg
                running = None
    proc.stdout.close()
    return running, why


def _describe(spec):
    s = dict(spec)
    return json.dumps(s, sort_keys=True)


def _generate_in_fresh_process():
    """{op: specs}, generated in a fresh interpreter: hypothesis's derandomized generation gave
    other cases after some of the other test modules had run in the same session, so the cases
    a CI run checks are pinned to what a fresh process generates."""
    code = ("import json, sys; import test_properties as t; "
            "json.dump({op: t.generate(op, t.EXAMPLES) for op in t.ALL_OPS}, sys.stdout)")
    out = subprocess.run([sys.executable, "-c", code], cwd=str(HERE), capture_output=True, text=True,
                         check=True, env=dict(os.environ, PYTHONHASHSEED="0"))
    return json.loads(out.stdout)


@pytest.fixture(scope="module")
def outcomes():
    t0 = time.monotonic()
    specs = _generate_in_fresh_process()
    flat = [((op, j), s) for op in ALL_OPS for j, s in enumerate(specs[op])]
    ids = {n: k for n, (k, _) in enumerate(flat)}
    res = run_cases([(n, s) for n, (_, s) in enumerate(flat)])
    by_op = {op: [] for op in ALL_OPS}
    for n, (key, spec) in enumerate(flat):
        by_op[key[0]].append((spec, res[n]))
    total = len(flat)
    failed = sum(not r["ok"] for r in res.values())
    raised = sum(r.get("outcome") == "raised" for r in res.values())
    digest = hashlib.sha1(json.dumps([s for _, s in flat], sort_keys=True).encode()).hexdigest()[:12]
    print(f"\n[test_properties] {total} generated cases (digest {digest}) over {len(ALL_OPS)} ops "
          f"({EXAMPLES} per op): {total - failed} passed ({raised} raised a clear error), {failed} failed, "
          f"{time.monotonic() - t0:.1f} s")
    del ids
    return by_op


def test_every_registered_op_is_covered():
    text = (HERE.parent / "csrc" / "ops" / "registration.cpp").read_text()
    registered = set(re.findall(r'm\.def\(\s*"(\w+)\(', text))
    assert len(registered) >= 21, registered
    covered = {op for op in ALL_OPS if not op.startswith("pub_")}
    assert registered <= covered, f"raw ops without generated cases: {sorted(registered - covered)}"


def test_enough_cases_ran(outcomes):
    total = sum(len(v) for v in outcomes.values())
    assert total >= EXAMPLES * len(ALL_OPS) * 0.9, total
    for op, cases in outcomes.items():
        kinds = {r.get("kind") for _, r in cases if r["ok"]}
        assert len(cases) >= EXAMPLES * 0.9, (op, len(cases))
        del kinds


def _check(cases, op, what):
    bad = [(s, r) for s, r in cases if not r["ok"]]
    ok_returned = sum(r.get("outcome") == "returned" for _, r in cases if r["ok"])
    lines = [f"{len(bad)} of {len(cases)} generated {what} cases of {op} failed:"]
    for s, r in bad[:12]:
        lines.append(f"- {r['why'][:700]}\n  spec: {_describe(s)}")
    assert not bad, "\n".join(lines)
    return ok_returned


# Ops whose generated cases fail on this commit, as strict xfails naming the finding (issue 15's
# last seven were fixed: backward NaN/Inf contract, dead slots, hop-count message, worker model).
# strict: an entry turns into a failure the moment it passes, so the list can only shrink.
OPEN_CPU = {}
OPEN_META = {}  # the fake kernels check ranks and dtypes like the CPU ops (was 13 entries)


def _ops(open_findings, ops):
    return [pytest.param(op, marks=pytest.mark.xfail(strict=True, reason=open_findings[op]))
            if op in open_findings else op for op in ops]


@pytest.mark.parametrize("op", _ops(OPEN_CPU, ALL_OPS))
def test_op_properties(outcomes, op):
    """CPU cases: a clear error with the inputs untouched, or the reference's answer."""
    cases = [(s, r) for s, r in outcomes[op] if r.get("device", "cpu") == "cpu"]
    ok_returned = _check(cases, op, "cpu")
    # valid random inputs mostly succeed
    assert ok_returned >= len(cases) // 4, f"{op}: only {ok_returned} of {len(cases)} cases returned"


@pytest.mark.parametrize("op", _ops(OPEN_META, [op for op in ALL_OPS
                                                 if op not in ("pub_TokenTable", "pub_IntHashTable")]))
def test_op_properties_on_meta(outcomes, op):
    """All-meta cases (the fake kernels): the CPU op's output shapes, or a clear error where the
    CPU op refuses the shapes; and sizes past int32 (meta, nothing allocated): the reference's
    shapes or a clear error, never a crash."""
    cases = [(s, r) for s, r in outcomes[op] if r.get("device", "cpu") in ("meta", "huge")]
    _check(cases, op, "meta")

"""`memory-ext bench` machinery on tiny cases (speed itself is never asserted)."""
import json

import pytest

from memory_ext.bench.delta_cases import DeltaCase, DeltaStepCase
from memory_ext.bench.fla_peer import fla_implementations
from memory_ext.bench.mlp_cases import MlpCase
from memory_ext.bench.slot_cases import SlotReadCase
from memory_ext.bench.runner import format_table, run_case
from memory_ext.cli import main

PEAKS = {"matmul_fp32_gflops": 100.0}


@pytest.mark.parametrize("case", [
    MlpCase("step", B=1, H=2, widths=(8, 8)),
    MlpCase("scan", B=2, T=4, H=2, widths=(8, 8, 8), rule="grad"),
    DeltaCase(B=1, T=4, H=2, K=8, V=8),
    DeltaStepCase(B=1, H=2, K=8, V=8),
    SlotReadCase(B=2, N=5, d=4, hops=2),
], ids=lambda c: c.op_name)
def test_run_case_rows(case):
    rows = run_case(case, "cpu", PEAKS, min_time=0.0)
    # every (mode, impl) has a row; a baseline that cannot run says why instead of vanishing
    impls = ("fused-rec", "fused-chunk", "eager", "compile", *fla_implementations("cpu")) \
        if case.op_name == "delta_rule" else ("fused", "eager", "compile")
    assert sorted((r["mode"], r["impl"]) for r in rows) == sorted(
        (m, i) for m in case.modes for i in impls)
    assert all(not r.get("error") for r in rows if r["impl"] != "compile")
    for r in rows:
        assert r["op"] == case.op_name
        if r.get("error"):
            continue
        assert r["median_ms"] > 0 and r["reps"] >= 5 and r["speedup_vs_eager"] > 0
        assert (r["peak_mem_mb"] is None) == (r["mode"] == "fwd")
    table = format_table(rows)
    assert table.count("\n") >= len(rows) + 1 and "x eager" in table
    json.dumps(rows)  # JSON-serialisable


def test_controller_case_rows_and_same_loss():
    """The training-step case: a row per implementation, and the three compute one model."""
    from memory_ext.bench.controller_cases import ControllerCase
    case = ControllerCase(B=2, T=3, hidden=8, widths=(4, 6, 4))
    rows = run_case(case, "cpu", PEAKS, min_time=0.0)
    assert sorted(r["impl"] for r in rows) == ["eager", "fused", "fused-step-loop"]
    assert all(r["median_ms"] > 0 for r in rows)
    inputs = case.make_inputs("cpu", requires_grad=True)
    losses = {n: case.loss(f(inputs)) for n, f in case.implementations().items()}
    for n in ("fused-step-loop", "eager"):
        assert abs(float(losses[n]) - float(losses["fused"])) < 1e-5, n


def test_cli_rejects_cuda_without_gpu(monkeypatch, capsys):
    monkeypatch.setattr("torch.cuda.is_available", lambda: False)
    assert main(["bench", "--device", "cuda"]) == 2
    assert capsys.readouterr().err == ("memory-ext bench: error: --device cuda but torch sees no "
                                       "CUDA device\n")


def test_cli_op_names_are_the_cases_op_names():
    from memory_ext.bench.cases import CUDA_CASES, FULL_CASES, QUICK_CASES
    from memory_ext.cli import BENCH_OPS
    names = {c.op_name for c in QUICK_CASES + FULL_CASES + CUDA_CASES} | {"vocab"}
    assert names == set(BENCH_OPS)


def test_sweep_writes_json_and_plots(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from memory_ext.bench import sweep

    monkeypatch.setitem(sweep.SWEEPS, "T", {
        "mlp_memory_scan": ((2, 4), lambda t: MlpCase("scan", B=1, T=t, H=1, widths=(4, 4))),
        "delta_rule": ((2, 4), lambda t: DeltaCase(B=1, T=t, H=1, K=4, V=4)),
    })
    rows = sweep.run_sweep("T", "cpu", PEAKS, str(tmp_path), min_time=0.0)
    assert {(r["op"], r["value"]) for r in rows} == {
        (op, t) for op in ("mlp_memory_scan", "delta_rule") for t in (2, 4)}
    saved = json.loads((tmp_path / "sweep_T.json").read_text())
    assert len(saved) == len(rows)
    for op in ("mlp_memory_scan", "delta_rule"):
        png = tmp_path / f"sweep_T_{op}.png"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_sweep_rejects_unknown_dimension(tmp_path):
    from memory_ext.bench.sweep import run_sweep
    with pytest.raises(ValueError, match="--sweep must be one of"):
        run_sweep("H", "cpu", PEAKS, str(tmp_path))


def test_fla_peer_rows_match_ours_when_installed():
    """The fla column computes the same thing as ours (else its timing would mean nothing)."""
    impls = fla_implementations("cpu")
    if not impls:
        pytest.skip("flash-linear-attention (fla) or einops is not installed")
    case = DeltaCase(B=1, T=9, H=2, K=8, V=4)
    inputs = case.make_inputs("cpu", requires_grad=False)
    ours = case.implementations("cpu")["fused-chunk"](inputs)
    for name, fn in impls.items():
        for a, b in zip(fn(inputs), ours):
            assert a.shape == b.shape, name
            assert (a - b).abs().max().item() < 1e-4, name


def test_vocab_group_rows_on_tiny_sizes():
    from memory_ext.bench import vocab_bench as vb
    peaks = {"copy_gbs": 10.0}
    rows = (vb.grow_rows("cpu", False, V=100, D=8, new=130, batch=64)
            + vb.hash_rows("cpu", False, n=1000) + vb.token_table_rows(False, n=1000)
            + vb.compact_rows("cpu", peaks, False, V=256, D=8))
    assert [(r["op"], r["impl"]) for r in rows] == [
        ("vocab_grow", "concat/token"), ("vocab_grow", "fused"),
        ("hash_lookup_or_insert", "python dict"), ("hash_lookup_or_insert", "fused"),
        ("token_table_add", "python dict"), ("token_table_add", "fused"),
        ("vocab_compact", "eager"), ("vocab_compact", "fused")]
    for r in rows:
        assert r["median_ms"] > 0 and r["speedup_vs_eager"] > 0
        assert (r["gbs"] is not None) == (r["op"] == "vocab_compact")
        assert (r["items_per_s"] is not None) == (r["op"] != "vocab_compact")
    assert "M items/s" in format_table(rows)

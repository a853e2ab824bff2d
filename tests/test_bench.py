"""`memory-ext bench` machinery on tiny cases (speed itself is never asserted)."""
import json

import pytest

from memory_ext.bench.delta_cases import DeltaCase, DeltaStepCase
from memory_ext.bench.fla_peer import fla_implementations
from memory_ext.bench.mlp_cases import MlpCase
from memory_ext.bench.slot_cases import SlotReadCase
from memory_ext.bench.runner import WIDTH, format_table, run_case
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
    for full in (False, True):
        table = format_table(rows, full=full)
        assert table.count("\n") >= len(rows) + 1 and "x eager" in table
        assert all(len(line) <= WIDTH for line in table.splitlines()) or full
    assert "IQR ms" in format_table(rows, full=True) and "IQR ms" not in format_table(rows)
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
    quick = ControllerCase(B=2, T=3, hidden=8, widths=(4, 6, 4), step_loop=False)
    assert sorted(quick.implementations()) == ["eager", "fused"]  # the quick run's case


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
    assert "items/s" in format_table(rows)
    assert "% copy" in format_table(rows, full=True)


def test_round_robin_interleaves_and_rotates():
    """Every repeat runs each implementation once, the order rotated by one per repeat, so a
    burst of load lands on all of them alike; medians per implementation."""
    from memory_ext.bench.timing import time_round_robin
    calls = []
    fns = {n: (lambda n=n: calls.append(n)) for n in ("a", "b", "c")}
    out = time_round_robin(fns, "cpu", warmup=1, min_time=0.0, min_reps=4, max_reps=4)
    assert calls == ["a", "b", "c",  # warm-up round
                     "a", "b", "c", "b", "c", "a", "c", "a", "b", "a", "b", "c"]
    assert sorted(out) == ["a", "b", "c"]
    assert all(t.reps == 4 and len(t.times) == 4 and t.median_s >= 0 for t in out.values())


def test_round_robin_setup_is_untimed_and_per_call():
    from memory_ext.bench.timing import time_round_robin
    calls = []
    setup = {n: (lambda n=n: calls.append("setup " + n) or n) for n in ("x", "y")}
    fns = {n: (lambda state, n=n: calls.append(f"run {n} {state}")) for n in ("x", "y")}
    time_round_robin(fns, "cpu", warmup=0, min_time=0.0, min_reps=2, max_reps=2, setup=setup)
    assert calls == ["setup x", "run x x", "setup y", "run y y",
                     "setup y", "run y y", "setup x", "run x x"]


def test_round_robin_max_time_keeps_three_repeats():
    from memory_ext.bench.timing import FLOOR_REPS, time_round_robin
    out = time_round_robin({"a": lambda: None, "b": lambda: None}, "cpu", warmup=0,
                           min_time=10.0, min_reps=5, max_time=0.0)
    assert FLOOR_REPS == 3 and all(t.reps == 3 for t in out.values())


def test_run_case_times_implementations_interleaved(monkeypatch):
    """run_case hands all implementations of a mode to one round-robin timing: the recorded
    timed calls alternate between them, and x eager is the ratio of those medians."""
    from memory_ext.bench import runner
    case = MlpCase("step", B=1, H=2, widths=(8, 8), modes=("fwd",))
    calls = []
    real = case.implementations("cpu")

    def record(name):
        def fn(i):
            calls.append(name)
            return real[name](i)
        return fn
    monkeypatch.setattr(MlpCase, "implementations",
                        lambda self, device="cpu": {n: record(n) for n in ("fused", "eager")})
    rows = run_case(case, "cpu", PEAKS, min_time=0.0, warmup=0, min_reps=5)
    first, timed = calls[:2], calls[2:]  # one untimed call each (does it run?), then the repeats
    assert first == ["fused", "eager"]
    assert len(timed) == 2 * rows[0]["reps"] >= 10
    for k in range(0, len(timed), 2):  # each repeat runs both, in alternating order
        assert sorted(timed[k:k + 2]) == ["eager", "fused"]
        assert timed[k] == ("fused" if (k // 2) % 2 == 0 else "eager")
    by = {r["impl"]: r for r in rows}
    assert by["eager"]["speedup_vs_eager"] == 1.0
    assert abs(by["fused"]["speedup_vs_eager"]
               - by["eager"]["median_ms"] / by["fused"]["median_ms"]) < 1e-9


def _tiny_bench(monkeypatch):
    """The default `memory-ext bench` on tiny cases (machine peaks and vocab sizes shrunk)."""
    from memory_ext.bench import runner, vocab_bench as vb
    monkeypatch.setattr(runner, "QUICK_CASES", [
        MlpCase("step", B=1, H=2, widths=(8, 8)),
        MlpCase("scan", B=2, T=4, H=2, widths=(8, 8, 8), rule="grad"),
        DeltaCase(B=1, T=4, H=2, K=8, V=8), DeltaStepCase(B=1, H=2, K=8, V=8),
        SlotReadCase(B=2, N=5, d=4, hops=2)])
    monkeypatch.setattr(runner, "machine_peaks", lambda device, quick=True: {
        "matmul_fp32_gflops": 123.4, "matmul_n": 64, "copy_gbs": 12.3, "copy_mb": 1.0})
    monkeypatch.setattr(vb, "run_vocab_group", lambda device, peaks, full: (
        vb.grow_rows(device, full, V=100, D=8, new=130, batch=64)
        + vb.hash_rows(device, full, n=1000) + vb.token_table_rows(full, n=1000)
        + vb.compact_rows(device, peaks, full, V=256, D=8)))


def test_default_output_fits_100_columns(monkeypatch, capsys):
    _tiny_bench(monkeypatch)
    assert main(["bench"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert len(lines) > 40
    too_wide = [line for line in lines if len(line) > 100]
    assert not too_wide, too_wide
    assert lines[1].startswith("machine peaks (this run): fp32 matmul 123.4 GFLOP/s")
    assert "x eager" in out and "vocab_grow  V=100 D=8" in out
    assert "compile" not in {line.split()[1] for line in lines if line.startswith("  fwd")}


def test_error_rows_and_long_shapes_fit_100_columns():
    row = {"op": "delta_rule", "mode": "fwd+bwd", "shape": "B=1 " + "x" * 150, "impl": "compile",
           "median_ms": None, "error": "RuntimeError: " + "y" * 150}
    ok = dict(row, impl="eager", median_ms=1.0, speedup_vs_eager=1.0, error=None)
    table = format_table([ok, row])
    assert all(len(line) <= WIDTH for line in table.splitlines())
    assert "could not run: RuntimeError: yyy" in table


def test_json_carries_the_detailed_fields(monkeypatch, tmp_path, capsys):
    _tiny_bench(monkeypatch)
    path = tmp_path / "bench.json"
    assert main(["bench", "--json", str(path)]) == 0
    capsys.readouterr()
    saved = json.loads(path.read_text())
    head = saved["header"]
    for k in ("device", "device_name", "torch", "cuda", "cpu_threads", "memory_ext", "cpu_isa",
              "cuda_kernels", "git_sha", "time", "machine_peak"):
        assert k in head, k
    assert head["timing"]["order"] == "round-robin" and head["timing"]["compile"] is False
    ops = {r["op"] for r in saved["rows"]}
    assert {"mlp_memory_step", "delta_rule", "slot_read", "vocab_grow"} <= ops
    for r in saved["rows"]:
        for k in ("op", "mode", "shape", "impl", "median_ms", "iqr_ms", "reps",
                  "speedup_vs_eager", "gflops", "pct_peak", "gbs", "pct_copy", "peak_mem_mb"):
            assert k in r, (r["op"], k)
        assert r["median_ms"] > 0 and r["iqr_ms"] >= 0 and r["reps"] >= 3
    grads = [r for r in saved["rows"] if r["mode"] == "fwd+bwd"]
    assert grads and all(r["peak_mem_mb"] is not None for r in grads)
    assert any(r["pct_copy"] is not None for r in saved["rows"])  # delta_rule_step, compaction


def test_full_table_has_the_detail_columns(monkeypatch, capsys):
    _tiny_bench(monkeypatch)
    from memory_ext.bench import runner
    monkeypatch.setattr(runner, "FULL_CASES", runner.QUICK_CASES)
    assert main(["bench", "--full", "--ops", "delta_rule_step,slot_read"]) == 0
    out = capsys.readouterr().out
    for h in ("IQR ms", "reps", "% peak", "GB/s", "% copy", "fwd+bwd MB"):
        assert h in out, h
    assert "  fwd      compile" in out  # --full keeps the torch.compile baseline

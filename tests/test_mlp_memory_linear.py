"""The linear special case (spec 1.4): with L = 1 the memory is the delta rule.

    rule grad:  W' = W + (2 beta / (H n_1)) sum_h (v_h - W k_h) k_h^T
    H = 1:      the fast-weight delta rule with beta_eff = 2 beta / n_1
    rule local with targets [v] gives exactly the same W' as rule grad.
"""
import dataclasses

import pytest
import torch

from _inputs import (ACTIVATIONS, F64_TOL, Shape, make_inputs, make_weights, native_dtype,
                     require_float64, run_fused, same_result_tol)

import memory_ext


def _linear_inputs(B, T, H, Hr, n0, n1, *, seed, device, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    lead = (B, T) if T is not None else (B,)
    w = make_weights((n0, n1), B, gen=g, dtype=dtype)[0]
    k = torch.randn(*lead, H, n0, generator=g, dtype=dtype)
    v = torch.randn(*lead, H, n1, generator=g, dtype=dtype)
    kr = torch.randn(*lead, Hr, n0, generator=g, dtype=dtype)
    beta = 0.05 + 0.5 * torch.rand(*lead, generator=g, dtype=dtype)
    return [t.to(device) for t in (w, k, v, kr, beta)]


@pytest.mark.parametrize("beta_per_layer", [False, True], ids=["beta_B", "beta_B1"])
@pytest.mark.parametrize("activation", ACTIVATIONS)
@pytest.mark.parametrize("H", [1, 3], ids=lambda h: f"H{h}")
def test_grad_rule_is_delta_rule_by_hand(device, H, activation, beta_per_layer):
    require_float64(device)
    B, n0, n1 = 3, 7, 5
    W, k, v, _, beta = _linear_inputs(B, None, H, 1, n0, n1, seed=H, device=device)
    # W' = W + (2 beta / (H n_1)) sum_h (v_h - W k_h) k_h^T
    err = v - torch.einsum("bij,bhj->bhi", W, k)                       # [B, H, n_1]
    want = W + (2 * beta / (H * n1))[:, None, None] * torch.einsum("bhi,bhj->bij", err, k)
    b = beta[:, None] if beta_per_layer else beta
    (got,) = memory_ext.mlp_memory_write([W], k, v, b, rule="grad", activation=activation)
    torch.testing.assert_close(got, want, **F64_TOL)


def test_single_head_scan_is_fast_weight_delta_rule(device):
    """H = 1 over T steps: S_t = S + beta_eff (v_t - S k_t) k_t^T, read_t = S_t k_r,t."""
    require_float64(device)
    B, T, Hr, n0, n1 = 2, 25, 3, 6, 4
    W, k, v, kr, beta = _linear_inputs(B, T, 1, Hr, n0, n1, seed=7, device=device)
    beta_eff = 2 * beta / n1                                           # [B, T]
    S, reads = W.clone(), []
    for t in range(T):
        kt, vt = k[:, t, 0], v[:, t, 0]                                 # [B, n0], [B, n1]
        u = vt - torch.einsum("bij,bj->bi", S, kt)
        S = S + beta_eff[:, t, None, None] * torch.einsum("bi,bj->bij", u, kt)
        reads.append(torch.einsum("bij,bhj->bhi", S, kr[:, t]))
    got_reads, (got_S,), _ = memory_ext.mlp_memory_scan([W], k, v, beta, kr, rule="grad",
                                                        activation="identity")
    torch.testing.assert_close(got_S, S, **F64_TOL)
    torch.testing.assert_close(got_reads, torch.stack(reads, 1), **F64_TOL)


@pytest.mark.parametrize("alpha", ["none", "float", "tensor"], ids=lambda a: f"alpha_{a}")
@pytest.mark.parametrize("op", ["write", "step", "scan"])
def test_local_rule_with_value_target_equals_grad_rule(device, op, alpha):
    """At L = 1 rule local with targets [v] is rule grad, bit for bit."""
    dtype = native_dtype(device)
    shape = Shape(B=3, H=4, Hr=2, widths=(9, 6), T=10)
    grad_inp = make_inputs(shape, rule="grad", activation="tanh", time=(op == "scan"),
                           alpha=alpha, dtype=dtype, device=device)
    # rule local computes recon only against given values: give it the written values
    local_inp = dataclasses.replace(
        grad_inp, rule="local", targets=[grad_inp.targets],
        recon_values=None if op == "write" else grad_inp.targets)
    got, want = run_fused(op, local_inp), run_fused(op, grad_inp)
    assert got.keys() == want.keys()
    for name in want:
        assert torch.equal(got[name], want[name]), name
    # and the update is not trivial
    w1 = want["weights[0]"]
    assert not torch.allclose(w1, grad_inp.weights[0], **same_result_tol(dtype))

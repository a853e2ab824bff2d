"""Optional: memory_ext.delta_rule against flash-linear-attention's own naive recurrence
(fla.ops.delta_rule.naive) when fla is installed. Its package __init__ needs triton, which CPU
machines lack, so the naive file is loaded on its own (it needs only torch and einops)."""
import pytest
import torch

import memory_ext
from memory_ext.bench.fla_peer import load_fla_naive


def _fla_naive():
    naive = load_fla_naive()
    if naive is None:
        pytest.skip("flash-linear-attention (fla) or einops is not installed")
    return naive


@pytest.mark.parametrize("mode", ["recurrent", "chunk"])
def test_matches_fla_naive_recurrence(mode):
    naive = _fla_naive()
    g = torch.Generator().manual_seed(0)
    B, T, H, K, V = 2, 40, 3, 16, 24
    q = torch.randn(B, T, H, K, generator=g)
    k = torch.nn.functional.normalize(torch.randn(B, T, H, K, generator=g), dim=-1)
    v = torch.randn(B, T, H, V, generator=g)
    beta = torch.rand(B, T, H, generator=g)
    s0 = torch.randn(B, H, K, V, generator=g) * 0.1
    o, s = memory_ext.delta_rule(q, k, v, beta, initial_state=s0, output_final_state=True,
                                 mode=mode)
    hf = lambda x: x.transpose(1, 2).contiguous()  # noqa: E731  fla naive is head-first
    o_f, s_f = naive(hf(q), hf(k), hf(v), hf(beta), initial_state=s0, output_final_state=True)
    torch.testing.assert_close(o, o_f.transpose(1, 2), rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(s, s_f, rtol=1e-4, atol=1e-5)

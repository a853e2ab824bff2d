"""The CPU kernels' own tanh / sigmoid (vectorisable exp) against torch, over the whole range."""
import pytest
import torch

import memory_ext

TORCH_ACT = {"tanh": torch.tanh, "sigmoid": torch.sigmoid,
             "relu": torch.relu, "identity": lambda x: x}
# relative error bounds: float32 a few ulp, float64 near 1 ulp
BOUND = {torch.float32: 1e-6, torch.float64: 1e-14}


def _points(dtype):
    dense = torch.linspace(-30, 30, 120001, dtype=torch.float64)
    special = torch.tensor([0.0, -0.0, 1e-30, -1e-30, 1e-8, -1e-8, 1e-3, 88.0, -88.0, 100.0,
                            -100.0, 700.0, -700.0, 1e30, -1e30], dtype=torch.float64)
    return torch.cat([dense, special]).to(dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "identity"])
def test_hidden_activation_accuracy(activation, dtype):
    """A read through W^1 = W^2 = [[1]] returns act(x) exactly as the kernel computes it."""
    x = _points(dtype)
    W = [torch.ones(1, 1, 1, dtype=dtype), torch.ones(1, 1, 1, dtype=dtype)]
    got = memory_ext.mlp_memory_read(W, x.view(1, -1, 1), activation).view(-1).double()
    want = TORCH_ACT[activation](x.double())
    assert torch.isfinite(got).all()
    rel = (got - want).abs() / want.abs().clamp_min(torch.finfo(dtype).tiny)
    # below the smallest normal number the relative error is not meaningful: compare absolutely
    tiny = want.abs() < torch.finfo(dtype).tiny
    assert rel[~tiny].max().item() <= BOUND[dtype]
    assert (got - want)[tiny].abs().max().item() <= torch.finfo(dtype).tiny if tiny.any() else True

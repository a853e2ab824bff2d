"""Autograd of the memory_ext ops. Every backward runs our own kernels
(_mlp_memory_read_bwd, _mlp_memory_scan_bwd); step and write are scans of one step, so their
backward is the scan backward with the input weights as the only checkpoint."""
import torch

_ops = torch.ops.memory_ext


def _unpack(ctx, layout):
    """Split ctx.saved_tensors back into the named groups of `layout` (name -> count)."""
    saved = list(ctx.saved_tensors)
    out, i = {}, 0
    for name, n in layout:
        out[name] = saved[i:i + n]
        i += n
    return out


def _grad_list(grads, like):
    """Upstream grads on a Tensor[] output: [] when none arrived, zeros for the missing ones."""
    if grads is None or all(g is None for g in grads):
        return []
    return [torch.zeros_like(w) if g is None else g for g, w in zip(grads, like)]


def _opt(g, present=True):
    return g if (present and g is not None and g.numel() > 0) else None


# --- read --------------------------------------------------------------------------------------
def _read_setup(ctx, inputs, output):
    weights, keys, activation = inputs
    ctx.activation = activation
    ctx.L = len(weights)
    ctx.save_for_backward(*weights, keys)


def _read_backward(ctx, grad):
    *weights, keys = ctx.saved_tensors
    gw, gk = _ops._mlp_memory_read_bwd(weights, keys, grad, ctx.activation)
    return list(gw), gk, None


torch.library.register_autograd("memory_ext::mlp_memory_read", _read_backward,
                                setup_context=_read_setup)


# --- scan --------------------------------------------------------------------------------------
def _save_common(ctx, ckpts, kw, targets, beta, kr, alpha, rv, rule, activation, C):
    ctx.rule, ctx.activation, ctx.C = rule, activation, C
    ctx.L, ctx.nz = len(ckpts), len(targets)
    ctx.has_alpha, ctx.has_rv = alpha is not None, rv is not None
    ctx.save_for_backward(*ckpts, kw, *targets, beta, kr, alpha, rv)


def _load_common(ctx):
    s = _unpack(ctx, [("ck", ctx.L), ("kw", 1), ("z", ctx.nz), ("beta", 1), ("kr", 1),
                      ("alpha", 1), ("rv", 1)])
    return (s["ck"], s["kw"][0], s["z"], s["beta"][0], s["kr"][0],
            s["alpha"][0] if ctx.has_alpha else None, s["rv"][0] if ctx.has_rv else None)


def _scan_setup(ctx, inputs, output):
    weights, kw, targets, beta, kr, alpha, rv, rule, activation, C = inputs
    ctx.recon_out = rv is not None or rule == "grad"
    _save_common(ctx, output[3], kw, targets, beta, kr, alpha, rv, rule, activation, C)


def _scan_backward(ctx, g_reads, g_final, g_recon, g_ckpts):
    ck, kw, z, beta, kr, alpha, rv = _load_common(ctx)
    gw, gkw, gz, gbeta, gkr, galpha, grv = _ops._mlp_memory_scan_bwd(
        ck, kw, z, beta, kr, alpha, rv, g_reads, _grad_list(g_final, ck),
        _opt(g_recon, ctx.recon_out), ctx.rule, ctx.activation, ctx.C)
    return (list(gw), gkw, list(gz), gbeta, gkr, galpha if ctx.has_alpha else None,
            grv if ctx.has_rv else None, None, None, None)


torch.library.register_autograd("memory_ext::mlp_memory_scan", _scan_backward,
                                setup_context=_scan_setup)


# --- step and write: scans of one step ------------------------------------------------------------
def _t1(x):
    return None if x is None else x.unsqueeze(1)


def _one_step_backward(ctx, g_reads, g_final, g_recon):
    ck, kw, z, beta, kr, alpha, rv = _load_common(ctx)
    gw, gkw, gz, gbeta, gkr, galpha, grv = _ops._mlp_memory_scan_bwd(
        [w.unsqueeze(1) for w in ck], _t1(kw), [_t1(t) for t in z], _t1(beta), _t1(kr), alpha,
        _t1(rv), _t1(g_reads), _grad_list(g_final, ck), _t1(_opt(g_recon, ctx.recon_out)),
        ctx.rule, ctx.activation, 1)
    return (list(gw), gkw.squeeze(1), [g.squeeze(1) for g in gz], gbeta.squeeze(1),
            gkr.squeeze(1), galpha if ctx.has_alpha else None,
            grv.squeeze(1) if ctx.has_rv else None)


def _step_setup(ctx, inputs, output):
    weights, kw, targets, beta, kr, alpha, rv, rule, activation = inputs
    ctx.recon_out = rv is not None or rule == "grad"
    _save_common(ctx, weights, kw, targets, beta, kr, alpha, rv, rule, activation, 1)


def _step_backward(ctx, g_new, g_reads, g_recon):
    return (*_one_step_backward(ctx, g_reads, g_new, g_recon), None, None)


torch.library.register_autograd("memory_ext::mlp_memory_step", _step_backward,
                                setup_context=_step_setup)


def _write_setup(ctx, inputs, output):
    weights, kw, targets, beta, alpha, rule, activation = inputs
    ctx.recon_out = False
    kr = kw.new_empty(kw.shape[0], 0, kw.shape[2])
    _save_common(ctx, weights, kw, targets, beta, kr, alpha, None, rule, activation, 1)


def _write_backward(ctx, g_new):
    gw, gkw, gz, gbeta, _gkr, galpha, _grv = _one_step_backward(ctx, None, g_new, None)
    return gw, gkw, gz, gbeta, galpha, None, None


torch.library.register_autograd("memory_ext::mlp_memory_write", _write_backward,
                                setup_context=_write_setup)

"""Fake (meta) kernels of the memory_ext ops: output shapes for torch.compile and opcheck.

They also run when real meta tensors are passed; a meta tensor mixed with tensors of another
device would silently run them instead of a kernel (uninitialised outputs, in-place ops doing
nothing), so every fake first checks that all tensor arguments share one device.
"""
import functools

import torch

_lib = "memory_ext::"


def _tensors(values):
    for v in values:
        if isinstance(v, torch.Tensor):
            yield v
        elif isinstance(v, (list, tuple)):
            yield from _tensors(v)


def _rank(op, name, t, *ranks):
    """The CPU op's rank check, for the fakes (which would otherwise index a missing dim)."""
    if t.dim() not in ranks:
        want = " or ".join(f"{r}-D" for r in ranks)
        raise RuntimeError(f"{op}: {name} must be {want}, got {t.dim()}-D {list(t.shape)}")


def _weights(op, weights, name="weights"):
    for i, w in enumerate(weights):
        _rank(op, f"{name}[{i}]", w, 3)


def _dtype_like(op, name, t, ref, ref_name):
    if t.dtype != ref.dtype:
        raise RuntimeError(f"{op}: {name} must have {ref_name}'s dtype {ref.dtype}, got {t.dtype}")


def _fake(name):
    """register_fake for memory_ext::<name>, behind the one-device check."""
    def register(fn):
        @functools.wraps(fn)
        def checked(*args, **kwargs):
            devices = {t.device for t in _tensors([*args, *kwargs.values()])}
            if len(devices) > 1:
                raise RuntimeError(
                    f"memory_ext.{name}: all tensors must be on one device, got "
                    f"{', '.join(sorted(map(str, devices)))} (a meta tensor among real ones would "
                    "run no kernel)")
            return fn(*args, **kwargs)
        torch.library.register_fake(_lib + name)(checked)
        return fn
    return register


def _recon_shape(rule, recon_values, *dims):
    return list(dims) if (recon_values is not None or rule == "grad") else [0]


@_fake("mlp_memory_read")
def _read_fake(weights, keys, activation="tanh"):
    _weights("mlp_memory_read", weights)
    _rank("mlp_memory_read", "keys", keys, 3)
    return keys.new_empty(keys.shape[0], keys.shape[1], weights[-1].shape[1])


@_fake("_mlp_memory_read_bwd")
def _read_bwd_fake(weights, keys, grad_reads, activation):
    _weights("_mlp_memory_read_bwd", weights)
    _rank("_mlp_memory_read_bwd", "keys", keys, 3)
    _rank("_mlp_memory_read_bwd", "grad_reads", grad_reads, 3)
    return [w.new_empty(w.shape) for w in weights], keys.new_empty(keys.shape)


@_fake("mlp_memory_write")
def _write_fake(weights, write_keys, targets, beta, alpha=None, rule="local", activation="tanh"):
    _weights("mlp_memory_write", weights)
    _rank("mlp_memory_write", "write_keys", write_keys, 3)
    return [w.new_empty(w.shape) for w in weights]


@_fake("mlp_memory_step")
def _step_fake(weights, write_keys, targets, beta, read_keys, alpha=None, recon_values=None,
               rule="local", activation="tanh"):
    _weights("mlp_memory_step", weights)
    _rank("mlp_memory_step", "write_keys", write_keys, 3)
    _rank("mlp_memory_step", "read_keys", read_keys, 3)
    B = write_keys.shape[0]
    reads = read_keys.new_empty(B, read_keys.shape[1], weights[-1].shape[1])
    recon = write_keys.new_empty(_recon_shape(rule, recon_values, B))
    return [w.new_empty(w.shape) for w in weights], reads, recon


@_fake("mlp_memory_scan")
def _scan_fake(weights, write_keys, targets, beta, read_keys, alpha=None, recon_values=None,
               rule="local", activation="tanh", checkpoint_every=16):
    _weights("mlp_memory_scan", weights)
    _rank("mlp_memory_scan", "write_keys", write_keys, 4)
    _rank("mlp_memory_scan", "read_keys", read_keys, 4)
    B, T = write_keys.shape[0], write_keys.shape[1]
    nc = (T + checkpoint_every - 1) // checkpoint_every
    reads = read_keys.new_empty(B, T, read_keys.shape[2], weights[-1].shape[1])
    recon = write_keys.new_empty(_recon_shape(rule, recon_values, B, T))
    ckpts = [w.new_empty(B, nc, w.shape[1], w.shape[2]) for w in weights]
    return reads, [w.new_empty(w.shape) for w in weights], recon, ckpts


@_fake("_mlp_memory_scan_bwd")
def _scan_bwd_fake(checkpoints, write_keys, targets, beta, read_keys, alpha, recon_values,
                   grad_reads, grad_final_weights, grad_recon, rule, activation, checkpoint_every):
    like = lambda t: t.new_empty(t.shape)  # noqa: E731
    return ([c.new_empty(c.shape[0], c.shape[2], c.shape[3]) for c in checkpoints],
            like(write_keys), [like(z) for z in targets], like(beta), like(read_keys),
            like(alpha) if alpha is not None else write_keys.new_empty(0),
            like(recon_values) if recon_values is not None else write_keys.new_empty(0))


def step_saved_numel(weights, heads: int) -> int:
    """Elements per batch element of _mlp_memory_step_'s saved block (mlp_step_saved in C++:
    per layer l = 1..L, A, D and g of H * n_l each, rounded up to 8)."""
    return sum(3 * ((heads * w.shape[1] + 7) // 8 * 8) for w in weights)


@_fake("_mlp_memory_step_")
def _step_inplace_fake(weights, write_keys, targets, beta, read_keys, alpha, recon_values, rule,
                       activation):
    _weights("_mlp_memory_step_", weights)
    _rank("_mlp_memory_step_", "write_keys", write_keys, 3)
    _rank("_mlp_memory_step_", "read_keys", read_keys, 3)
    B, H = write_keys.shape[0], write_keys.shape[1]
    reads = read_keys.new_empty(B, read_keys.shape[1], weights[-1].shape[1])
    recon = write_keys.new_empty(_recon_shape(rule, recon_values, B))
    return reads, recon, write_keys.new_empty(B, step_saved_numel(weights, H))


@_fake("_mlp_memory_step_bwd_")
def _step_bwd_inplace_fake(weights, grad_weights, saved, write_keys, targets, beta, read_keys,
                           alpha, recon_values, grad_reads, grad_recon, rule, activation):
    _weights("_mlp_memory_step_bwd_", weights)
    _weights("_mlp_memory_step_bwd_", grad_weights, "grad_weights")
    _rank("_mlp_memory_step_bwd_", "write_keys", write_keys, 3)
    _rank("_mlp_memory_step_bwd_", "read_keys", read_keys, 3)
    like = lambda t: t.new_empty(t.shape)  # noqa: E731
    g_targets = write_keys.new_empty(*write_keys.shape[:2], sum(z.shape[-1] for z in targets))
    return (like(write_keys), g_targets, like(beta), like(read_keys),
            like(alpha) if alpha is not None else write_keys.new_empty(0),
            like(recon_values) if recon_values is not None else write_keys.new_empty(0))


@_fake("delta_rule_step_")
def _delta_rule_step_fake(state, q, k, v, beta, scale, out):
    return None  # writes state and out in place


@_fake("delta_rule_chunk")
def _delta_rule_chunk_fake(q, k, v, beta, initial_state, scale, chunk_size, save_states):
    BH, T, K = q.shape
    V = v.shape[-1]
    n = (T + chunk_size - 1) // chunk_size if T else 0
    states = q.new_empty(BH, n, K, V) if save_states else q.new_empty(0)
    return q.new_empty(BH, T, V), q.new_empty(BH, K, V), states


@_fake("_delta_rule_chunk_bwd")
def _delta_rule_chunk_bwd_fake(q, k, v, beta, states, grad_o, grad_final, scale, chunk_size):
    BH, _, K = q.shape
    return (q.new_empty(q.shape), k.new_empty(k.shape), v.new_empty(v.shape),
            beta.new_empty(beta.shape), q.new_empty(BH, K, v.shape[-1]))


@_fake("hash_lookup_or_insert_")
def _hash_lookup_or_insert_fake(slots, meta, keys):
    return keys.new_empty(keys.shape)


@_fake("hash_find")
def _hash_find_fake(slots, keys):
    return keys.new_empty(keys.shape), keys.new_empty(keys.shape)


@_fake("hash_erase_")
def _hash_erase_fake(slots, meta, keys):
    return keys.new_empty(keys.shape, dtype=torch.bool)


@_fake("_hash_rebuild_")
def _hash_rebuild_fake(slots, entries):
    return None


@_fake("gather_rows")
def _gather_rows_fake(tensors, index, out_rows):
    return [t.new_empty((out_rows,) + tuple(t.shape[1:])) for t in tensors]


@_fake("slot_write_")
def _slot_write_fake(M, C, count, m, c, policy):
    _rank("slot_write_", "M", M, 3)
    for n, t in (("C", C), ("m", m), ("c", c)):
        _dtype_like("slot_write_", n, t, M, "M")
    return None


@_fake("slot_read")
def _slot_read_fake(query, M, C, count, hops, R):
    B, d = query.shape
    N = M.shape[-2]
    return query.new_empty(B, d), query.new_empty(B, hops, N), query.new_empty(B, hops, d)


@_fake("_slot_read_bwd")
def _slot_read_bwd_fake(grad_u, grad_attention, M, C, count, R, saved_u, attention):
    _rank("_slot_read_bwd", "grad_u", grad_u, 2)
    _rank("_slot_read_bwd", "M", M, 3, 4)
    d = grad_u.shape[1]
    dR = grad_u.new_empty(d, d) if R is not None else grad_u.new_empty(0)
    return grad_u.new_empty(grad_u.shape), M.new_empty(M.shape), C.new_empty(C.shape), dR


@_fake("slot_read_hard")
def _slot_read_hard_fake(query, M, Q, count, hops):
    B, N = M.shape[0], M.shape[1]
    return count.new_empty(B, hops), query.new_empty(B, hops, N)


@_fake("_slot_read_hard_bwd")
def _slot_read_hard_bwd_fake(grad_scores, query, M, Q, count, indices):
    _rank("_slot_read_hard_bwd", "query", query, 2)
    _rank("_slot_read_hard_bwd", "M", M, 3)
    _rank("_slot_read_hard_bwd", "indices", indices, 2)
    return query.new_empty(query.shape), M.new_empty(M.shape), Q.new_empty(Q.shape)

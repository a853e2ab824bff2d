"""Worker of tests/test_properties.py: runs generated cases, one JSON spec per line on stdin, and
reports one JSON line per case on stdout. Before a case runs it prints {"start": i}, so the
parent knows which case was running when the process died (segfault, abort) or hung.

A spec names an op (OPS below), a seed, a dtype, a device ("cpu" or "meta"), small dims, op
parameters and one mutation. The builder of the op makes valid inputs from the seed; the
mutation then changes one argument (shape, dtype, a non-contiguous or stride-0 view, a meta
tensor among CPU ones, a NaN / Inf value, an out-of-range integer). The allowed outcomes:

* the op raises RuntimeError / ValueError / TypeError / IndexError whose message names the
  argument (a whole-word match of one of its names), and every input is bit-identical to before;
* or it returns, and the outputs match the reference's (NaN where the reference has NaN; float64
  tight, float32 loose). A valid input (no mutation, or NaN / Inf values) must return.

The reference of a forward op is memory_ext.reference (or a Python model for the tables); of a
backward op, autograd through the reference; where there is none (a non-contiguous view of a
valid input), the op's own answer on the contiguous copy.
"""
from __future__ import annotations

import json
import os
import re
import sys
import traceback

os.environ.setdefault("MEMORY_EXT_DEBUG_NAN_FILL", "1")

import torch  # noqa: E402

import memory_ext  # noqa: E402
from memory_ext import reference as ref  # noqa: E402

OPS = torch.ops.memory_ext
ALLOWED = (RuntimeError, ValueError, TypeError, IndexError)
EMPTY = -(2 ** 63)
MUST_RAISE = {"shape", "dtype_int", "meta_mix", "range", "rank"}
VALID = {"none", "nan", "posinf", "neginf"}


class CaseError(AssertionError):
    pass


# --- argument bookkeeping ---------------------------------------------------------------------
class Arg:
    """One tensor argument: names the error may use, whether its values may be mutated (derived
    state like a saved block is trusted by the op), whether it is written in place."""

    def __init__(self, names, values=True, inplace=False, intlike=None, ranges=None):
        self.names = [names] if isinstance(names, str) else list(names)
        self.values = values
        self.inplace = inplace
        self.ranges = ranges or []  # out-of-range integer values to try (int tensors)


class Case:
    def __init__(self, inputs, call, reference=None, args=None, meta_ok=True, huge=False,
                 expect_raise=None, raise_names=()):
        self.inputs = inputs          # name -> tensor or list of tensors or python value
        self.call = call              # inputs -> dict name -> tensor (or list / python value)
        self.reference = reference    # inputs -> same dict, or None
        self.args = args or {}        # name -> Arg (tensor args only)
        self.meta_ok = meta_ok
        self.huge = huge
        self.expect_raise = expect_raise  # a reason: the op must raise
        self.raise_names = list(raise_names)


def _leaves(inputs):
    """(key, tensor) for every tensor among the inputs, list items as key[i]."""
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            yield k, v
        elif isinstance(v, (list, tuple)):
            for i, t in enumerate(v):
                if isinstance(t, torch.Tensor):
                    yield f"{k}[{i}]", t


def _get(inputs, key):
    m = re.fullmatch(r"(\w+)\[(\d+)\]", key)
    return inputs[m.group(1)][int(m.group(2))] if m else inputs[key]


def _set(inputs, key, value):
    m = re.fullmatch(r"(\w+)\[(\d+)\]", key)
    if m:
        lst = list(inputs[m.group(1)])
        lst[int(m.group(2))] = value
        inputs[m.group(1)] = lst
    else:
        inputs[key] = value


def _arg(case, key):
    return case.args.get(key) or case.args.get(re.sub(r"\[\d+\]$", "", key)) or Arg(key)


def _snapshot(t: torch.Tensor):
    """Bit-exact snapshot: metadata, and the bytes of the whole storage (small even for an
    expanded view of a huge size)."""
    meta = (t.dtype, tuple(t.shape), t.stride(), t.storage_offset(), t.device.type)
    if t.device.type == "meta":
        return meta, None
    return meta, bytes(t.untyped_storage())


def _dense(t):
    return t.detach().clone() if t.device.type != "meta" else t


# --- the generator of one op's valid inputs ------------------------------------------------------
def _gen(spec):
    g = torch.Generator().manual_seed(int(spec["seed"]))
    dtype = getattr(torch, spec.get("dtype", "float64"))

    huge = spec.get("huge", False)  # sizes past int32 as meta tensors: nothing is allocated

    def randn(*s, scale=1.0):
        if huge:
            return torch.empty(*s, dtype=dtype, device="meta")
        return torch.randn(*s, generator=g, dtype=torch.float64).mul_(scale).to(dtype)

    def rand(*s, lo=0.0, hi=1.0):
        if huge:
            return torch.empty(*s, dtype=dtype, device="meta")
        return (lo + (hi - lo) * torch.rand(*s, generator=g, dtype=torch.float64)).to(dtype)

    return g, dtype, randn, rand


def _mlp_inputs(spec, time):
    d, p = spec["dims"], spec["params"]
    g, dtype, randn, rand = _gen(spec)
    B, H, Hr, T, widths = d["B"], d["H"], d["Hr"], d["T"], d["widths"]
    L = len(widths) - 1
    lead = (B, T) if time else (B,)
    W = [randn(B, widths[l + 1], widths[l], scale=widths[l] ** -0.5) for l in range(L)]
    kw = randn(*lead, H, widths[0])
    if p["rule"] == "local":
        targets = [randn(*lead, H, widths[l + 1]) for l in range(L)]
    else:
        targets = randn(*lead, H, widths[-1])
    beta = rand(*lead, *((L,) if p["beta_per_layer"] else ()), lo=0.05, hi=0.3)
    kr = randn(*lead, Hr, widths[0])
    alpha = {"none": None, "float": 0.25, "tensor": rand(B, lo=0.0, hi=0.3)}[p["alpha"]]
    rv = randn(*lead, H, widths[-1]) if p["recon"] else None
    return W, kw, targets, beta, kr, alpha, rv


def _tl(targets):
    return targets if isinstance(targets, list) else [targets]


def _alpha_t(alpha, like):
    if isinstance(alpha, float):
        return torch.full((like.shape[0],), alpha, dtype=like.dtype)
    return alpha


def _has_recon(p):
    return p["recon"] or p["rule"] == "grad"


MLP_ARGS = {
    "weights": Arg("weights"), "keys": Arg("keys"), "write_keys": Arg(["write_keys", "keys"]),
    "targets": Arg(["targets", "values"]), "beta": Arg("beta"), "read_keys": Arg("read_keys"),
    "alpha": Arg("alpha"), "recon_values": Arg("recon_values"), "grad_reads": Arg("grad_reads"),
}


def _ref_scan_states(W, kw, targets, beta, kr, alpha, rv, rule, act, C):
    """Reference scan: reads, final weights, recon, and the weights at steps 0, C, 2C, ..."""
    T = kw.shape[1]
    w, reads, recons, ck = list(W), [], [], []
    for t in range(T):
        if t % C == 0:
            ck.append(w)
        tg = [z[:, t] for z in targets] if isinstance(targets, list) else targets[:, t]
        w, r, rc = ref.mlp_step(w, kw[:, t], tg, beta[:, t], kr[:, t], rule=rule, activation=act,
                                alpha=alpha, recon_values=None if rv is None else rv[:, t])
        reads.append(r)
        recons.append(rc)
    B, Hr, nL = kr.shape[0], kr.shape[2], W[-1].shape[1]
    R = torch.stack(reads, 1) if T else kr.new_zeros(B, 0, Hr, nL)
    rc = (torch.stack(recons, 1) if T and recons[0] is not None else kr.new_zeros(B, 0)) \
        if (rv is not None or rule == "grad") else None
    cks = [torch.stack([c[l] for c in ck], 1) if ck else W[l].new_zeros(B, 0, *W[l].shape[1:])
           for l in range(len(W))]
    return R, w, rc, cks


def build_mlp(spec):
    op, p = spec["op"], spec["params"]
    rule, act = p["rule"], p["activation"]
    time = op.endswith("scan") or op == "_mlp_memory_scan_bwd"
    W, kw, targets, beta, kr, alpha, rv = _mlp_inputs(spec, time)
    g, dtype, randn, rand = _gen(dict(spec, seed=spec["seed"] + 1))
    C = p.get("checkpoint_every", 16)
    raw = not op.startswith("pub_")
    if raw:
        alpha = _alpha_t(alpha, kw)
        targets = _tl(targets)

    if spec.get("huge"):
        alpha = None if alpha is None else (alpha if isinstance(alpha, float) else torch.empty(
            W[0].shape[0], dtype=dtype, device="meta"))
    if op in ("pub_mlp_memory_read", "mlp_memory_read"):
        inputs = dict(weights=W, keys=kr, activation=act)
        fn = memory_ext.mlp_memory_read if op.startswith("pub") else OPS.mlp_memory_read
        return Case(inputs, lambda i: {"reads": fn(i["weights"], i["keys"], i["activation"])},
                    lambda i: {"reads": ref.mlp_read(i["weights"], i["keys"], i["activation"])},
                    MLP_ARGS)
    if op == "_mlp_memory_read_bwd":
        gr = randn(kr.shape[0], kr.shape[1], W[-1].shape[1])
        inputs = dict(weights=W, keys=kr, grad_reads=gr, activation=act)

        def call(i):
            gw, gk = OPS._mlp_memory_read_bwd(i["weights"], i["keys"], i["grad_reads"], i["activation"])
            return {"grad_weights": list(gw), "grad_keys": gk}

        def reference(i):
            leaves = [t.detach().clone().requires_grad_() for t in (*i["weights"], i["keys"])]
            out = ref.mlp_read(leaves[:-1], leaves[-1], i["activation"])
            gs = torch.autograd.grad(out, leaves, i["grad_reads"])
            return {"grad_weights": list(gs[:-1]), "grad_keys": gs[-1]}
        return Case(inputs, call, reference, MLP_ARGS)

    common = dict(weights=W, write_keys=kw, targets=targets, beta=beta, alpha=alpha)
    if op in ("pub_mlp_memory_write", "mlp_memory_write"):
        inputs = dict(common, rule=rule, activation=act)

        def call(i):
            if raw:
                return {"weights": list(OPS.mlp_memory_write(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                                             i["alpha"], i["rule"], i["activation"]))}
            return {"weights": memory_ext.mlp_memory_write(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                                           rule=i["rule"], activation=i["activation"], alpha=i["alpha"])}

        def reference(i):
            return {"weights": ref.mlp_write(i["weights"], i["write_keys"], i["targets"], i["beta"],
                                             rule=i["rule"], activation=i["activation"], alpha=i["alpha"])}
        return Case(inputs, call, reference, MLP_ARGS)

    common.update(read_keys=kr, recon_values=rv, rule=rule, activation=act)
    if op in ("pub_mlp_memory_step", "mlp_memory_step", "_mlp_memory_step_"):
        def call(i):
            a = (i["weights"], i["write_keys"], i["targets"], i["beta"], i["read_keys"])
            if op == "pub_mlp_memory_step":
                w, r, rc = memory_ext.mlp_memory_step(*a, rule=i["rule"], activation=i["activation"],
                                                      alpha=i["alpha"], recon_values=i["recon_values"])
            elif op == "mlp_memory_step":
                w, r, rc = OPS.mlp_memory_step(*a, i["alpha"], i["recon_values"], i["rule"], i["activation"])
                rc = rc if _has_recon(p) else None
            else:
                r, rc, _saved = OPS._mlp_memory_step_(*a, i["alpha"], i["recon_values"], i["rule"], i["activation"])
                w, rc = i["weights"], (rc if _has_recon(p) else None)
            return {"weights": list(w), "reads": r, "recon": rc}

        def reference(i):
            w, r, rc = ref.mlp_step(i["weights"], i["write_keys"], i["targets"], i["beta"], i["read_keys"],
                                    rule=i["rule"], activation=i["activation"], alpha=i["alpha"],
                                    recon_values=i["recon_values"])
            return {"weights": w, "reads": r, "recon": rc}
        args = dict(MLP_ARGS)
        if op == "_mlp_memory_step_":
            args["weights"] = Arg("weights", inplace=True)
        return Case(dict(common), call, reference, args)
    if op in ("pub_mlp_memory_scan", "mlp_memory_scan"):
        inputs = dict(common, checkpoint_every=C)

        def call(i):
            a = (i["weights"], i["write_keys"], i["targets"], i["beta"], i["read_keys"])
            if raw:
                r, w, rc, ck = OPS.mlp_memory_scan(*a, i["alpha"], i["recon_values"], i["rule"], i["activation"],
                                                   i["checkpoint_every"])
                return {"reads": r, "weights": list(w), "recon": rc if _has_recon(p) else None,
                        "checkpoints": list(ck)}
            r, w, rc = memory_ext.mlp_memory_scan(*a, rule=i["rule"], activation=i["activation"], alpha=i["alpha"],
                                                  recon_values=i["recon_values"],
                                                  checkpoint_every=i["checkpoint_every"])
            return {"reads": r, "weights": w, "recon": rc}

        def reference(i):
            R, w, rc, ck = _ref_scan_states(i["weights"], i["write_keys"], i["targets"], i["beta"], i["read_keys"],
                                            i["alpha"], i["recon_values"], i["rule"], i["activation"],
                                            i["checkpoint_every"])
            out = {"reads": R, "weights": w, "recon": rc}
            if raw:
                out["checkpoints"] = ck
            return out
        case = Case(inputs, call, reference, MLP_ARGS)
        if C >= 2 ** 31 - 1 or C < 1:
            case.raise_names = ["checkpoint_every"]  # a raise must name it; a return must match
        return case
    if op == "_mlp_memory_step_bwd_":
        Wn = [w.clone() for w in W]
        _, recon, saved = OPS._mlp_memory_step_(Wn, kw, targets, beta, kr, alpha, rv, rule, act)
        G = [randn(*w.shape) for w in W]
        grd = randn(kr.shape[0], kr.shape[1], W[-1].shape[1])
        grc = randn(*recon.shape) if _has_recon(p) else None
        inputs = dict(weights=Wn, grad_weights=G, saved=saved, write_keys=kw, targets=targets, beta=beta,
                      read_keys=kr, alpha=alpha, recon_values=rv, grad_reads=grd, grad_recon=grc,
                      rule=rule, activation=act)

        def call(i):
            o = OPS._mlp_memory_step_bwd_(i["weights"], i["grad_weights"], i["saved"], i["write_keys"], i["targets"],
                                          i["beta"], i["read_keys"], i["alpha"], i["recon_values"], i["grad_reads"],
                                          i["grad_recon"], i["rule"], i["activation"])
            gz = list(o[1].split([z.shape[-1] for z in i["targets"]], -1))
            return {"weights": list(i["weights"]), "grad_weights": list(i["grad_weights"]), "g_write_keys": o[0],
                    "g_targets": gz, "g_beta": o[2], "g_read_keys": o[3],
                    "g_alpha": o[4] if i["alpha"] is not None else None,
                    "g_recon_values": o[5] if i["recon_values"] is not None else None}

        def reference(i):
            # the op undoes the write: weights before it are the reference's leaves
            return _step_bwd_reference(i, W)
        def refresh(i):  # the saved block and the written weights of the (mutated) inputs
            Wn2 = [w.clone() for w in W]
            _, _, sv = OPS._mlp_memory_step_(Wn2, i["write_keys"], i["targets"], i["beta"], i["read_keys"],
                                             i["alpha"], i["recon_values"], rule, act)
            i["weights"], i["saved"] = Wn2, sv
        args = dict(MLP_ARGS, weights=Arg("weights", values=False, inplace=True),
                    grad_weights=Arg("grad_weights", inplace=True), saved=Arg("saved", values=False),
                    grad_recon=Arg("grad_recon"))
        case = Case(inputs, call, reference, args)
        case.refresh = refresh
        return case
    if op == "_mlp_memory_scan_bwd":
        _, final, recon, ck = OPS.mlp_memory_scan(W, kw, targets, beta, kr, alpha, rv, rule, act, C)
        grd = randn(kr.shape[0], kr.shape[1], kr.shape[2], W[-1].shape[1])
        gfin = [randn(*w.shape) for w in W]
        grc = randn(*recon.shape) if _has_recon(p) else None
        inputs = dict(checkpoints=list(ck), write_keys=kw, targets=targets, beta=beta, read_keys=kr, alpha=alpha,
                      recon_values=rv, grad_reads=grd, grad_final_weights=gfin, grad_recon=grc, rule=rule,
                      activation=act, checkpoint_every=C)

        def call(i):
            o = OPS._mlp_memory_scan_bwd(i["checkpoints"], i["write_keys"], i["targets"], i["beta"], i["read_keys"],
                                         i["alpha"], i["recon_values"], i["grad_reads"], i["grad_final_weights"],
                                         i["grad_recon"], i["rule"], i["activation"], i["checkpoint_every"])
            return {"g_weights": list(o[0]), "g_write_keys": o[1], "g_targets": list(o[2]), "g_beta": o[3],
                    "g_read_keys": o[4], "g_alpha": o[5] if i["alpha"] is not None else None,
                    "g_recon_values": o[6] if i["recon_values"] is not None else None}

        def reference(i):
            return _scan_bwd_reference(i, W)
        args = dict(MLP_ARGS, checkpoints=Arg("checkpoints", values=False),
                    grad_final_weights=Arg("grad_final_weights"), grad_recon=Arg("grad_recon"))
        case = Case(inputs, call, reference, args)

        def refresh(i):
            i["checkpoints"] = list(OPS.mlp_memory_scan(W, i["write_keys"], i["targets"], i["beta"], i["read_keys"],
                                                        i["alpha"], i["recon_values"], rule, act, C)[3])
        case.refresh = refresh
        return case
    raise KeyError(op)


def _grads(outs, grads_out, leaves):
    pairs = [(o, g) for o, g in zip(outs, grads_out) if o is not None and g is not None]
    gs = torch.autograd.grad([o for o, _ in pairs], leaves, [g for _, g in pairs], allow_unused=True)
    return [torch.zeros_like(l) if x is None else x for l, x in zip(leaves, gs)]


def _leafify(ts):
    return [None if t is None else t.detach().clone().requires_grad_() for t in ts]


def _step_bwd_reference(i, W_prev):
    tg = i["targets"]
    rule = i["rule"]
    names = ["w%d" % l for l in range(len(W_prev))] + ["kw"] + ["z%d" % l for l in range(len(tg))] + \
        ["beta", "kr", "alpha", "rv"]
    vals = [*W_prev, i["write_keys"], *tg, i["beta"], i["read_keys"], i["alpha"], i["recon_values"]]
    lv = _leafify(vals)
    L = len(W_prev)
    w, r, rc = ref.mlp_step(lv[:L], lv[L], lv[L + 1:L + 1 + len(tg)] if rule == "local" else lv[L + 1],
                            lv[-4], lv[-3], rule=rule, activation=i["activation"], alpha=lv[-2],
                            recon_values=lv[-1])
    leaves = [x for x in lv if x is not None]
    gs = _grads([*w, r, rc], [*i["grad_weights"], i["grad_reads"], i["grad_recon"]], leaves)
    it = iter(gs)
    got = {n: (next(it) if v is not None else None) for n, v in zip(names, vals)}
    return {"weights": [w.detach() for w in W_prev], "grad_weights": [got[f"w{l}"] for l in range(L)],
            "g_write_keys": got["kw"], "g_targets": [got[f"z{l}"] for l in range(len(tg))], "g_beta": got["beta"],
            "g_read_keys": got["kr"], "g_alpha": got["alpha"], "g_recon_values": got["rv"]}


def _scan_bwd_reference(i, W0):
    tg = i["targets"]
    rule = i["rule"]
    L = len(W0)
    vals = [*W0, i["write_keys"], *tg, i["beta"], i["read_keys"], i["alpha"], i["recon_values"]]
    lv = _leafify(vals)
    R, w, rc = ref.mlp_scan(lv[:L], lv[L], lv[L + 1:L + 1 + len(tg)] if rule == "local" else lv[L + 1],
                            lv[-4], lv[-3], rule=rule, activation=i["activation"], alpha=lv[-2],
                            recon_values=lv[-1])
    leaves = [x for x in lv if x is not None]
    gs = _grads([R, *w, rc], [i["grad_reads"], *i["grad_final_weights"], i["grad_recon"]], leaves)
    it = iter(gs)
    got = [next(it) if v is not None else None for v in vals]
    return {"g_weights": got[:L], "g_write_keys": got[L], "g_targets": got[L + 1:L + 1 + len(tg)],
            "g_beta": got[-4], "g_read_keys": got[-3], "g_alpha": got[-2], "g_recon_values": got[-1]}


# --- delta rule ------------------------------------------------------------------------------------
DELTA_ARGS = {"q": Arg("q"), "k": Arg("k"), "v": Arg("v"), "beta": Arg("beta"),
              "initial_state": Arg("initial_state"), "state": Arg("state", inplace=True),
              "out": Arg("out", values=False, inplace=True), "states": Arg("states", values=False),
              "grad_o": Arg("grad_o"), "grad_final": Arg("grad_final")}


def build_delta(spec):
    op, d, p = spec["op"], spec["dims"], spec["params"]
    g, dtype, randn, rand = _gen(spec)
    B, T, H, K, V = d["B"], d["T"], d["H"], d["K"], d["V"]
    scale = p["scale"]
    if op == "pub_delta_rule":
        q, k, v = randn(B, T, H, K), randn(B, T, H, K), randn(B, T, H, V)
        if not p["l2norm"]:
            k = k * K ** -0.5  # keeps the recurrence stable without normalisation
        beta = rand(B, T, H, lo=0.05, hi=0.9)
        S0 = randn(B, H, K, V) if p["initial_state"] else None
        inputs = dict(q=q, k=k, v=v, beta=beta, initial_state=S0)
        kw = dict(scale=scale, output_final_state=True, use_qk_l2norm=p["l2norm"])

        def call(i):
            o, S = memory_ext.delta_rule(i["q"], i["k"], i["v"], i["beta"], initial_state=i["initial_state"],
                                         mode=p["mode"], checkpoint_every=p["checkpoint_every"],
                                         chunk_size=p["chunk_size"], **kw)
            return {"o": o, "S": S}

        def reference(i):
            o, S = ref.delta_rule(i["q"], i["k"], i["v"], i["beta"], initial_state=i["initial_state"], **kw)
            return {"o": o, "S": S}
        case = Case(inputs, call, reference, DELTA_ARGS)
        if p["mode"] == "recurrent" and (p["checkpoint_every"] >= 2 ** 31 - 1 or p["checkpoint_every"] < 1):
            case.raise_names = ["checkpoint_every"]
        if p["chunk_size"] is not None and p["chunk_size"] < 1:
            case.raise_names = ["chunk_size"]
        return case
    if op in ("pub_delta_rule_step", "delta_rule_step_"):
        q, k, v = randn(B, H, K), randn(B, H, K) * K ** -0.5, randn(B, H, V)
        beta = rand(B, H, lo=0.05, hi=0.9)
        state = randn(B, H, K, V)
        out = randn(B, H, V)
        sc = scale if scale is not None else K ** -0.5
        inputs = dict(state=state, q=q, k=k, v=v, beta=beta, out=out)

        def call(i):
            if op == "pub_delta_rule_step":
                o = memory_ext.delta_rule_step(i["q"], i["k"], i["v"], i["beta"], i["state"], scale=scale,
                                               out=i["out"] if p["give_out"] else None)
            else:
                OPS.delta_rule_step_(i["state"], i["q"], i["k"], i["v"], i["beta"], sc, i["out"])
                o = i["out"]
            return {"o": o, "state": i["state"]}

        def reference(i):
            o, S = ref.delta_rule(i["q"][:, None], i["k"][:, None], i["v"][:, None], i["beta"][:, None],
                                  scale=sc, initial_state=i["state"], output_final_state=True)
            return {"o": o[:, 0], "state": S.to(i["state"].dtype)}
        return Case(inputs, call, reference, DELTA_ARGS)
    # raw chunk ops: [BH, T, K] layout
    BH = B * H
    q, k, v = randn(BH, T, K), randn(BH, T, K) * K ** -0.5, randn(BH, T, V)
    beta = rand(BH, T, lo=0.05, hi=0.9)
    S0 = randn(BH, K, V) if (p["initial_state"] or op == "_delta_rule_chunk_bwd") else None
    sc = scale if scale is not None else K ** -0.5
    cs = p["chunk_size"] or 16

    def ref_fwd(q, k, v, beta, S0):
        o, S = ref.delta_rule(q[:, :, None], k[:, :, None], v[:, :, None], beta[:, :, None], scale=sc,
                              initial_state=None if S0 is None else S0[:, None], output_final_state=True)
        return o[:, :, 0], S[:, 0]
    if op == "delta_rule_chunk":
        inputs = dict(q=q, k=k, v=v, beta=beta, initial_state=S0, chunk_size=cs)

        def call(i):
            o, S, states = OPS.delta_rule_chunk(i["q"], i["k"], i["v"], i["beta"], i["initial_state"], sc,
                                                i["chunk_size"], p["save_states"])
            return {"o": o, "S": S}

        def reference(i):
            o, S = ref_fwd(i["q"], i["k"], i["v"], i["beta"], i["initial_state"])
            return {"o": o, "S": S}
        case = Case(inputs, call, reference, DELTA_ARGS)
        if cs < 1 or cs >= 2 ** 31:
            case.raise_names = ["chunk_size"]
        return case
    if op == "_delta_rule_chunk_bwd":
        _, _, states = OPS.delta_rule_chunk(q, k, v, beta, S0, sc, cs, True)
        go = randn(BH, T, V)
        gf = randn(BH, K, V) if p["grad_final"] else None
        inputs = dict(q=q, k=k, v=v, beta=beta, states=states, grad_o=go, grad_final=gf, chunk_size=cs)

        def call(i):
            r = OPS._delta_rule_chunk_bwd(i["q"], i["k"], i["v"], i["beta"], i["states"], i["grad_o"],
                                          i["grad_final"], sc, i["chunk_size"])
            return dict(zip(("dq", "dk", "dv", "dbeta", "dS0"), r))

        def reference(i):
            lv = _leafify([i["q"], i["k"], i["v"], i["beta"], S0])
            o, S = ref_fwd(*lv)
            gs = _grads([o, S], [i["grad_o"], i["grad_final"]], lv)
            return dict(zip(("dq", "dk", "dv", "dbeta", "dS0"), gs))
        case = Case(inputs, call, reference, DELTA_ARGS)

        def refresh(i):
            i["states"] = OPS.delta_rule_chunk(i["q"], i["k"], i["v"], i["beta"], S0, sc, cs, True)[2]
        case.refresh = refresh
        return case
    raise KeyError(op)


# --- slot memory -----------------------------------------------------------------------------------
SLOT_ARGS = {"M": Arg("M"), "C": Arg("C"), "Q": Arg("Q"), "query": Arg("query"), "R": Arg("R"),
             "count": Arg("count", ranges=[-1, -(2 ** 31), 2 ** 31, 2 ** 62]),
             "m": Arg("m"), "c": Arg("c"), "grad_u": Arg("grad_u"),
             "grad_attention": Arg("grad_attention"), "saved_u": Arg("saved_u", values=False),
             "attention": Arg("attention", values=False), "grad_scores": Arg("grad_scores"),
             "indices": Arg("indices", ranges=[-2, 2 ** 31, 2 ** 40, -(2 ** 63)])}


def build_slot(spec):
    op, d, p = spec["op"], spec["dims"], spec["params"]
    g, dtype, randn, rand = _gen(spec)
    B, N, dd, K = d["B"], d["N"], d["d"], p["hops"]
    count = (torch.empty(B, dtype=torch.int64, device="meta") if spec.get("huge")
             else torch.randint(0, N + 1, (B,), generator=g))
    if op in ("pub_slot_write_", "slot_write_"):
        policy = p["policy"]
        if spec.get("huge"):
            pass
        elif policy == "ring":
            count = torch.randint(0, 2 * N + 1, (B,), generator=g)
        elif p.get("full"):
            count[0] = N
        else:
            count = count.clamp(max=N - 1)
        inputs = dict(M=randn(B, N, dd), C=randn(B, N, dd), count=count, m=randn(B, dd), c=randn(B, dd),
                      policy=policy)
        if spec.get("huge"):
            inputs["count"] = count
        fn = memory_ext.slot_write_ if op.startswith("pub") else OPS.slot_write_

        def call(i):
            fn(i["M"], i["C"], i["count"], i["m"], i["c"], i["policy"])
            return {"M": i["M"], "C": i["C"], "count": i["count"]}

        def reference(i):
            M, C, n = ref.slot_write(i["M"], i["C"], i["count"], i["m"], i["c"], i["policy"])
            return {"M": M, "C": C, "count": n}
        args = dict(SLOT_ARGS, M=Arg("M", inplace=True), C=Arg("C", inplace=True),
                    count=Arg("count", inplace=True, ranges=[-1, -(2 ** 31), 2 ** 62]))
        case = Case(inputs, call, reference, args)
        if policy == "append" and p.get("full"):
            case.expect_raise = "append to a full row"
            case.raise_names = ["count", "full"]
        return case
    per_hop = p.get("per_hop", False) and 1 <= K <= 8 and op in ("pub_slot_read", "slot_read", "_slot_read_bwd")
    Ms = (K, B, N, dd) if per_hop else (B, N, dd)
    query = randn(B, dd)
    M, C = randn(*Ms), randn(*Ms)
    R = randn(dd, dd, scale=dd ** -0.5) if p.get("R") else None
    if op in ("pub_slot_read", "slot_read"):
        inputs = dict(query=query, M=M, C=C, count=count, hops=K, R=R)

        def call(i):
            if op == "pub_slot_read":
                u, a = memory_ext.slot_read(i["query"], i["M"], i["C"], i["count"], i["hops"], R=i["R"])
            else:
                u, a, _ = OPS.slot_read(i["query"], i["M"], i["C"], i["count"], i["hops"], i["R"])
            return {"u": u, "attention": a}

        def reference(i):
            u, a = ref.slot_read(i["query"], i["M"], i["C"], i["count"], i["hops"], i["R"])
            return {"u": u, "attention": a}
        case = Case(inputs, call, reference, SLOT_ARGS)
        if K < 1 or K >= 2 ** 31:
            case.expect_raise, case.raise_names = "hops < 1 or huge", ["hops"]
        return case
    if op == "_slot_read_bwd":
        u, attn, saved = OPS.slot_read(query, M, C, count, K, R)
        gu = randn(B, dd)
        ga = randn(*attn.shape) if p.get("grad_attention") else None
        inputs = dict(grad_u=gu, grad_attention=ga, M=M, C=C, count=count, R=R, saved_u=saved, attention=attn)

        def call(i):
            r = OPS._slot_read_bwd(i["grad_u"], i["grad_attention"], i["M"], i["C"], i["count"], i["R"],
                                   i["saved_u"], i["attention"])
            return {"dq": r[0], "dM": r[1], "dC": r[2], "dR": r[3] if i["R"] is not None else None}

        def reference(i):
            lv = _leafify([query, i["M"], i["C"], i["R"]])
            u2, a2 = ref.slot_read(lv[0], lv[1], lv[2], i["count"], K, lv[3])
            gs = _grads([u2, a2], [i["grad_u"], i["grad_attention"]], [x for x in lv if x is not None])
            return {"dq": gs[0], "dM": gs[1], "dC": gs[2], "dR": gs[3] if lv[3] is not None else None}
        case = Case(inputs, call, reference, SLOT_ARGS)

        def refresh(i):
            _, i["attention"], i["saved_u"] = OPS.slot_read(query, i["M"], i["C"], i["count"], K, i["R"])
        case.refresh = refresh
        return case
    Q = randn(B, N, dd)
    if op in ("pub_slot_read_hard", "slot_read_hard"):
        inputs = dict(query=query, M=M, Q=Q, count=count, hops=K)
        fn = memory_ext.slot_read_hard if op.startswith("pub") else OPS.slot_read_hard

        def call(i):
            idx, s = fn(i["query"], i["M"], i["Q"], i["count"], i["hops"])
            return {"indices": idx, "scores": s}

        def reference(i):
            idx, s = ref.slot_read_hard(i["query"], i["M"], i["Q"], i["count"], i["hops"])
            return {"indices": idx, "scores": s}
        case = Case(inputs, call, reference, SLOT_ARGS)
        if K < 1 or K >= 2 ** 31:
            case.expect_raise, case.raise_names = "hops < 1 or huge", ["hops"]
        return case
    if op == "_slot_read_hard_bwd":
        idx, scores = OPS.slot_read_hard(query, M, Q, count, K)
        gs_ = randn(*scores.shape)
        inputs = dict(grad_scores=gs_, query=query, M=M, Q=Q, count=count, indices=idx)

        def call(i):
            r = OPS._slot_read_hard_bwd(i["grad_scores"], i["query"], i["M"], i["Q"], i["count"], i["indices"])
            return {"dq": r[0], "dM": r[1], "dQ": r[2]}

        def reference(i):
            lv = _leafify([i["query"], i["M"], i["Q"]])
            _, s = ref.slot_read_hard(lv[0], lv[1], lv[2], i["count"], K)
            gsc = i["grad_scores"]  # the raw op: no nan_to_num (that is the autograd wrapper's)
            live = torch.arange(N)[None, None, :] < i["count"][:, None, None]
            gsc = gsc.masked_fill(~live, 0.0)
            gs = _grads([s], [gsc], lv)
            return {"dq": gs[0], "dM": gs[1], "dQ": gs[2]}
        args = dict(SLOT_ARGS, count=Arg("count", values=False))  # indices come from this count
        case = Case(inputs, call, reference, args)

        def refresh(i):
            i["indices"] = OPS.slot_read_hard(i["query"], i["M"], i["Q"], i["count"], K)[0]
        case.refresh = refresh
        return case
    raise KeyError(op)


# --- hash table ------------------------------------------------------------------------------------
class HashModel:
    def __init__(self):
        self.map, self.next_id = {}, 0

    def insert(self, keys):
        out = []
        for k in keys:
            if k not in self.map:
                self.map[k] = [self.next_id, 0]
                self.next_id += 1
            self.map[k][1] += 1
            out.append(self.map[k][0])
        return out

    def find(self, keys):
        return [self.map[k][0] if k in self.map else -1 for k in keys], \
               [self.map[k][1] if k in self.map else 0 for k in keys]

    def erase(self, keys):
        out = []
        for k in keys:
            out.append(self.map.pop(k, None) is not None)
        return out


def _t(x, dtype=torch.int64):
    return torch.tensor(x, dtype=dtype)


HASH_ARGS = {"slots": Arg("slots", values=False, inplace=True), "meta": Arg("meta", values=False, inplace=True),
             "keys": Arg("keys", ranges=[EMPTY, EMPTY + 1]), "entries": Arg("entries", values=False)}


def build_hash(spec):
    op, d, p = spec["op"], spec["dims"], spec["params"]
    g = torch.Generator().manual_seed(int(spec["seed"]))
    cap = d["cap"]
    pre = torch.randint(-50, 50, (d["n_pre"],), generator=g).tolist()
    keys = torch.randint(-60, 60, (d["n"],), generator=g)
    if p.get("huge_keys"):
        keys = keys * (2 ** 56)
    model = HashModel()
    table = memory_ext.IntHashTable(cap)
    if pre:
        table.lookup_or_insert(_t(pre))
        model.insert(pre)
        table.erase(_t(pre[: len(pre) // 3]))
        model.erase(pre[: len(pre) // 3])
    if op == "pub_IntHashTable":
        action = p["action"]
        inputs = dict(keys=keys)
        if action == "load_state_dict":
            st = table.state_dict()
            e = st["entries"].clone()
            bad = p.get("bad_state")
            nid = st["next_id"]
            if bad == "next_id_huge":
                nid = 2 ** 63 - 1
            elif bad == "next_id_negative":
                nid = -1
            elif bad == "dup_key" and e.shape[0] >= 2:
                e[1, 0] = e[0, 0]
            elif bad == "id_range" and e.shape[0] >= 1:
                e[0, 1] = nid + 5
            elif bad == "neg_count" and e.shape[0] >= 1:
                e[0, 2] = -3
            elif bad == "reserved_key" and e.shape[0] >= 1:
                e[0, 0] = EMPTY
            inputs = dict(entries=e)
            fresh = memory_ext.IntHashTable(p.get("load_cap", 4))

            def call(i):
                fresh.load_state_dict(dict(st, entries=i["entries"], next_id=nid))
                f = fresh.find(keys)
                ids, grew = fresh.lookup_or_insert(_t([123456]))
                return {"find": f, "counts": fresh.counts(keys), "new_id": ids, "len": len(fresh)}

            def reference(i):
                m2 = HashModel()
                m2.map = {k: [a, c] for k, a, c in i["entries"].tolist()}
                m2.next_id = nid
                f, c = m2.find(keys.tolist())
                return {"find": _t(f), "counts": _t(c), "new_id": _t(m2.insert([123456])), "len": len(m2.map)}
            case = Case(inputs, call, reference, dict(entries=Arg(["entries", "state_dict"], values=False)),
                        meta_ok=False)
            # next_id_huge: new ids would overflow int64 (load_state_dict takes next_id <= 2**62)
            if bad and not (bad in ("dup_key",) and e.shape[0] < 2) and not (
                    bad in ("id_range", "neg_count", "reserved_key") and e.shape[0] < 1):
                case.expect_raise = f"bad state_dict ({bad})"
                case.raise_names = ["entries", "next_id", "state_dict"]
                case.state_objects = [fresh]
            return case

        def call(i):
            if action == "lookup_or_insert":
                ids, _ = table.lookup_or_insert(i["keys"])
                out = {"ids": ids}
            elif action == "find":
                out = {"ids": table.find(i["keys"]), "counts": table.counts(i["keys"])}
            else:
                out = {"erased": table.erase(i["keys"])}
            out["len"] = len(table)
            out["after"] = table.find(_t(sorted(set(pre + keys.tolist()))))
            return out

        def reference(i):
            ks = i["keys"].tolist()
            if action == "lookup_or_insert":
                out = {"ids": _t(model.insert(ks))}
            elif action == "find":
                f, c = model.find(ks)
                out = {"ids": _t(f), "counts": _t(c)}
            else:
                out = {"erased": _t(model.erase(ks), torch.bool)}
            out["len"] = len(model.map)
            out["after"] = _t(model.find(sorted(set(pre + keys.tolist())))[0])
            return out
        case = Case(inputs, call, reference, HASH_ARGS, meta_ok=False)
        case.state_objects = [table]
        return case
    slots, meta = table.slots, table.meta
    if p.get("full"):  # every slot used: a probe for a missing key never meets an empty slot
        slots = torch.stack([torch.arange(cap) + 1000, torch.arange(cap), torch.ones(cap, dtype=torch.int64)], 1)
        meta = _t([cap, cap, cap])
        model = HashModel()
        model.map = {1000 + j: [j, 1] for j in range(cap)}
        model.next_id = cap
    if op == "hash_lookup_or_insert_":
        inputs = dict(slots=slots, meta=meta, keys=keys)

        def call(i):
            return {"ids": OPS.hash_lookup_or_insert_(i["slots"], i["meta"], i["keys"]),
                    "meta12": i["meta"][1:].clone()}

        def reference(i):
            ids = model.insert(i["keys"].tolist())
            return {"ids": _t(ids), "meta12": _t([len(model.map), model.next_id])}
        case = Case(inputs, call, reference, HASH_ARGS)
        new = set(keys.tolist()) - set(model.map)
        empty = int((slots[:, 0] == EMPTY).sum())  # tombstones are not reused
        if len(new) > empty:  # more distinct new keys than empty slots: refused before any write
            case.expect_raise = "table full"
            case.raise_names = ["slots", "full", "capacity", "keys"]
        return case
    if op == "hash_find":
        inputs = dict(slots=slots, keys=keys)

        def call(i):
            a, b = OPS.hash_find(i["slots"], i["keys"])
            return {"ids": a, "counts": b}

        def reference(i):
            f, c = model.find(i["keys"].tolist())
            return {"ids": _t(f), "counts": _t(c)}
        return Case(inputs, call, reference, dict(HASH_ARGS, slots=Arg("slots", values=False)))
    if op == "hash_erase_":
        inputs = dict(slots=slots, meta=meta, keys=keys)

        def call(i):
            e = OPS.hash_erase_(i["slots"], i["meta"], i["keys"])
            return {"erased": e, "live": i["meta"][1].clone(),
                    "find": OPS.hash_find(i["slots"], _t(sorted(model.map) or [10 ** 12]).to(i["slots"].device))[0]}

        def reference(i):
            before = sorted(model.map) or [10 ** 12]
            e = model.erase(i["keys"].tolist())
            return {"erased": _t(e, torch.bool), "live": _t(len(model.map)), "find": _t(model.find(before)[0])}
        return Case(inputs, call, reference, HASH_ARGS)
    if op == "_hash_rebuild_":
        m = HashModel()
        uk = sorted(set(keys.tolist()))
        m.map = {k: [j, j % 3] for j, k in enumerate(uk)}
        entries = _t([[k, a, c] for k, (a, c) in m.map.items()]).reshape(-1, 3)
        if p.get("into_nonempty"):
            target = slots
        else:
            target = torch.full((max(cap, 2 * len(uk) + 2) if p.get("fit", True) else cap, 3), EMPTY,
                                dtype=torch.int64)
            target = torch.full((1 << (target.shape[0] - 1).bit_length(), 3), EMPTY, dtype=torch.int64)
        inputs = dict(slots=target, entries=entries)

        def call(i):
            OPS._hash_rebuild_(i["slots"], i["entries"])
            a, b = OPS.hash_find(i["slots"], _t(uk or [10 ** 12]).to(i["slots"].device))
            return {"ids": a, "counts": b}

        def reference(i):
            f, c = m.find(uk or [10 ** 12])
            return {"ids": _t(f), "counts": _t(c)}
        case = Case(inputs, call, reference, HASH_ARGS)
        nonempty = bool((target[:, 0] > EMPTY + 1).any()) or bool((target[:, 0] == EMPTY + 1).any())
        if nonempty and len(uk):
            case.expect_raise = "rebuild into a non-empty table"
            case.raise_names = ["slots", "empty"]
        if len(uk) >= target.shape[0]:
            case.expect_raise, case.raise_names = "entries do not fit", ["entries"]
        return case
    raise KeyError(op)


# --- gather_rows and TokenTable ----------------------------------------------------------------------
def build_gather(spec):
    d, p = spec["dims"], spec["params"]
    g = torch.Generator().manual_seed(int(spec["seed"]))
    R, n = d["R"], d["n"]
    widths = d["widths"]
    dts = [torch.float32, torch.int64, torch.bool, torch.float64, torch.int8, torch.bfloat16]
    tensors = []
    for j, w in enumerate(widths):
        x = torch.randint(-100, 100, (R, *w), generator=g)
        tensors.append(x.to(dts[j % len(dts)]) if dts[j % len(dts)] != torch.bool else x > 0)
    index = torch.randint(0, max(R, 1), (n,), generator=g) if R else torch.zeros(0, dtype=torch.int64)
    n = index.shape[0]
    out_rows = n + p["extra_rows"]
    inputs = dict(tensors=tensors, index=index, out_rows=out_rows)

    def call(i):
        out = OPS.gather_rows(i["tensors"], i["index"], i["out_rows"])
        return {"shapes": [list(o.shape) for o in out], "rows": [o[: i["index"].shape[0]] for o in out]}

    def reference(i):
        return {"shapes": [[i["out_rows"], *t.shape[1:]] for t in i["tensors"]],
                "rows": [t[i["index"]] for t in i["tensors"]]}
    case = Case(inputs, call, reference, {"tensors": Arg("tensors"),
                                          "index": Arg("index", ranges=[-1, R, 2 ** 31, 2 ** 40, -(2 ** 63)])})
    if out_rows < n:
        case.expect_raise, case.raise_names = "out_rows < n", ["out_rows"]
    if n == 0 and R == 0 and not widths:
        pass
    return case


class StrSeq:
    """A sequence of str that is not a list: every item a fresh object."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def __getitem__(self, j):
        if j >= len(self.items) or j < -len(self.items):
            raise IndexError(j)
        return "".join(list(self.items[j]))  # a new str object, alive only while referenced


def build_token(spec):
    p = spec["params"]
    g = torch.Generator().manual_seed(int(spec["seed"]))
    alphabet = ["a", "bb", "ccc", "tok", "x" * 40, "ü", "日本", "a b"]
    pre = [alphabet[j] for j in torch.randint(0, len(alphabet), (p["n_pre"],), generator=g).tolist()]
    toks = [alphabet[j] for j in torch.randint(0, len(alphabet), (p["n"],), generator=g).tolist()]
    toks = [t + str(j % 3) * 20 if j % 2 else t * 10 for j, t in enumerate(toks)]
    kind = p["container"]
    if kind in ("tuple", "seq"):  # equal lengths: a freed item's memory is reused by the next one
        toks = [t.ljust(64, ".") for t in toks]
    wrap = {"list": list, "tuple": tuple, "seq": StrSeq, "gen_list": lambda x: [str(s) for s in x]}[kind]
    action = p["action"]

    def fresh():
        t = memory_ext.TokenTable()
        if pre:
            t.add(pre)
        return t

    table = fresh()

    def run(t, tokens, ids):
        if action == "add":
            return {"ids": t.add(tokens), "counts": t.counts(), "len": len(t)}
        if action == "lookup":
            return {"ids": t.lookup(tokens, p["unk"])}
        if action == "remove":
            return {"freed": t.remove(tokens), "len": len(t)}
        if action == "prune":
            return {"freed": t.prune(p["min_count"], tokens, p["grace"]), "len": len(t)}
        if action == "decode":
            return {"tokens": t.decode(ids)}
        raise KeyError(action)

    ids = [int(x) for x in p["ids"]]
    inputs = dict(ids=torch.tensor(ids, dtype=torch.int64) if p["ids_tensor"] else ids)

    def call(i):
        return run(table, wrap(toks), i["ids"])

    def reference(i):
        return run(fresh(), list(toks), list(i["ids"]) if not isinstance(i["ids"], torch.Tensor) else i["ids"])
    case = Case(inputs, call, reference, {"ids": Arg("ids")}, meta_ok=False)
    bound = table.id_bound
    live = table.live_mask().tolist()
    if action == "decode" and any(x < 0 or x >= bound or not live[x] for x in ids):
        case.expect_raise, case.raise_names = "decode of an invalid id", ["ids"]
    return case


BUILDERS = {}
for _op in ("pub_mlp_memory_read", "pub_mlp_memory_write", "pub_mlp_memory_step", "pub_mlp_memory_scan",
            "mlp_memory_read", "_mlp_memory_read_bwd", "mlp_memory_write", "mlp_memory_step",
            "mlp_memory_scan", "_mlp_memory_scan_bwd", "_mlp_memory_step_", "_mlp_memory_step_bwd_"):
    BUILDERS[_op] = build_mlp
for _op in ("pub_delta_rule", "pub_delta_rule_step", "delta_rule_step_", "delta_rule_chunk",
            "_delta_rule_chunk_bwd"):
    BUILDERS[_op] = build_delta
for _op in ("pub_slot_write_", "slot_write_", "pub_slot_read", "slot_read", "_slot_read_bwd",
            "pub_slot_read_hard", "slot_read_hard", "_slot_read_hard_bwd"):
    BUILDERS[_op] = build_slot
for _op in ("pub_IntHashTable", "hash_lookup_or_insert_", "hash_find", "hash_erase_", "_hash_rebuild_"):
    BUILDERS[_op] = build_hash
BUILDERS["gather_rows"] = build_gather
BUILDERS["pub_TokenTable"] = build_token


# --- mutations ---------------------------------------------------------------------------------------
def _pick(seq, n):
    return seq[n % len(seq)] if seq else None


def mutate(case, spec):
    """Apply spec['mutation'] to one argument. Returns (kind, key) actually applied; a mutation
    that does not apply to this case (no int tensor for "range", ...) becomes "none"."""
    mu = spec["mutation"]
    kind, pick, pos = mu["kind"], int(mu["pick"]), int(mu["pos"])
    if kind == "none":
        return "none", None
    leaves = [(k, t) for k, t in _leaves(case.inputs) if k in case.args or re.sub(r"\[\d+\]$", "", k) in case.args]
    if kind in ("nan", "posinf", "neginf"):
        cands = [(k, t) for k, t in leaves if t.is_floating_point() and t.numel() > 0 and _arg(case, k).values]
        if not cands:
            return "none", None
        k, t = _pick(cands, pick)
        t = t.clone()
        t.view(-1)[pos % t.numel()] = {"nan": float("nan"), "posinf": float("inf"), "neginf": float("-inf")}[kind]
        _set(case.inputs, k, t)
        return kind, k
    if kind == "range":
        cands = [(k, t) for k, t in leaves if _arg(case, k).ranges and t.numel() > 0]
        if not cands:
            return "none", None
        k, t = _pick(cands, pick)
        t = t.clone()
        t.view(-1)[pos % t.numel()] = _pick(_arg(case, k).ranges, pos // 7)
        _set(case.inputs, k, t)
        return kind, k
    if not leaves:
        return "none", None
    k, t = _pick(leaves, pick)
    if kind == "shape":
        if t.dim() == 0:
            return "none", None
        s = list(t.shape)
        s[pos % t.dim()] += 1
        nt = torch.zeros(s, dtype=t.dtype)
        nt[tuple(slice(0, x) for x in t.shape)] = t
        _set(case.inputs, k, nt)
    elif kind == "rank":
        _set(case.inputs, k, t[None].clone() if pos % 2 else t.reshape(-1).clone())
    elif kind == "dtype_int":
        if not t.is_floating_point():
            _set(case.inputs, k, t.to(torch.float32))
        else:
            _set(case.inputs, k, t.to(torch.int64))
    elif kind == "dtype_float":  # float32 <-> float64 (may be promoted, or refused)
        if not t.is_floating_point():
            return "none", None
        _set(case.inputs, k, t.to(torch.float32 if t.dtype == torch.float64 else torch.float64))
    elif kind == "noncontig":
        if t.dim() >= 2 and t.shape[-1] > 1 and t.shape[-2] > 1:
            nt = t.transpose(-1, -2).contiguous().transpose(-1, -2)
        else:
            big = torch.zeros((t.shape[0] * 2 if t.dim() else 2, *t.shape[1:]), dtype=t.dtype) \
                if t.dim() else None
            if big is None or t.shape[0] == 0:
                return "none", None
            big[::2] = t
            nt = big[::2]
        _set(case.inputs, k, nt)
    elif kind == "expanded":
        if t.dim() == 0 or t.shape[0] == 0:
            return "none", None
        row = t[:1].clone()
        if pos % 2:  # the same values in every row: compare against a dense copy
            _set(case.inputs, k, row.expand_as(t))
        else:
            _set(case.inputs, k, row.expand(t.shape))
    elif kind == "meta_mix":
        _set(case.inputs, k, t.to("meta"))
    else:
        raise KeyError(kind)
    return kind, k


# --- comparison -----------------------------------------------------------------------------------------
def _flat(out, prefix=""):
    if isinstance(out, dict):
        for k, v in out.items():
            yield from _flat(v, f"{prefix}{k}")
    elif isinstance(out, (list, tuple)) and out and all(isinstance(x, (torch.Tensor, type(None))) for x in out):
        for j, v in enumerate(out):
            yield from _flat(v, f"{prefix}[{j}]")
    else:
        yield prefix, out


def compare(got, want, dtype_name, backward=False):
    """Outputs agree with the reference: the same keys and shapes, NaN at the same positions and
    the values close (float64 tight, float32 loose). For a backward op (backward=True) the
    positions of the non-finite entries must agree, but an entry the reference has as NaN may be
    +-Inf here and the other way round: which of the two a gradient with an Inf input becomes
    depends on the order of its sums (inf + -inf = NaN, inf + x = inf), so it is not part of the
    contract (docs: "NaN and Inf")."""
    tight = dtype_name == "float64"
    g, w = dict(_flat(got)), dict(_flat(want))
    if set(g) != set(w):
        raise CaseError(f"outputs {sorted(g)} != reference outputs {sorted(w)}")
    for k in g:
        a, b = g[k], w[k]
        if isinstance(b, torch.Tensor) and isinstance(a, torch.Tensor):
            if a.device.type == "meta":
                if tuple(a.shape) != tuple(b.shape):
                    raise CaseError(f"{k}: meta shape {list(a.shape)} != reference {list(b.shape)}")
                continue
            if tuple(a.shape) != tuple(b.shape):
                raise CaseError(f"{k}: shape {list(a.shape)} != reference {list(b.shape)}")
            if a.is_floating_point() or b.is_floating_point():
                a64, b64 = a.detach().double(), b.detach().double()
                if backward and torch.equal(a64.isfinite(), b64.isfinite()):
                    a64, b64 = _nonfinite_as_nan(a64), _nonfinite_as_nan(b64)
                if not torch.equal(a64.isnan(), b64.isnan()):
                    raise CaseError(f"{k}: NaN at {a64.isnan().nonzero()[:4].tolist()} but the reference has "
                                    f"NaN at {b64.isnan().nonzero()[:4].tolist()}")
                tol = dict(rtol=1e-7, atol=1e-9) if tight else dict(rtol=2e-3, atol=2e-4)
                scale = max(1.0, float(b64[b64.isfinite()].abs().max()) if b64.isfinite().any() else 1.0)
                try:
                    torch.testing.assert_close(a64, b64, equal_nan=True, rtol=tol["rtol"], atol=tol["atol"] * scale)
                except AssertionError as e:
                    raise CaseError(f"{k}: {str(e)[:400]}")
            elif not torch.equal(a.cpu(), b.cpu().to(a.dtype)):
                raise CaseError(f"{k}: {a.tolist()[:8]} != reference {b.tolist()[:8]}")
        elif isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
            if a is None and isinstance(b, torch.Tensor) and b.numel() == 0:
                continue
            raise CaseError(f"{k}: {type(a).__name__} != reference {type(b).__name__}")
        elif a != b:
            raise CaseError(f"{k}: {a!r} != reference {b!r}")


def _nonfinite_as_nan(t):
    return torch.where(t.isfinite(), t, torch.full_like(t, float("nan")))


def _densify(inputs):
    """Contiguous CPU copies of every tensor (the reference's inputs)."""
    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.detach().clone().contiguous()
        elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            out[k] = [t.detach().clone().contiguous() for t in v]
        else:
            out[k] = v
    return out


def _to_meta(inputs):
    out = {}
    for k, v in inputs.items():
        if isinstance(v, torch.Tensor):
            out[k] = v.to("meta")
        elif isinstance(v, list) and v and isinstance(v[0], torch.Tensor):
            out[k] = [t.to("meta") for t in v]
        else:
            out[k] = v
    return out


def _message_names(msg, names):
    return any(re.search(r"(?<![A-Za-z0-9_])" + re.escape(n) + r"(?![A-Za-z0-9_])", msg) for n in names)


def run_case(spec):
    case = BUILDERS[spec["op"]](spec)
    if spec.get("huge"):
        return run_huge(case, spec)
    kind, key = mutate(case, spec)
    if kind in VALID and kind != "none" and hasattr(case, "refresh"):
        # a backward op: its saved state (checkpoints, saved blocks, attention, indices) is
        # recomputed by the forward op from the mutated inputs, so that the inputs agree
        case.refresh(case.inputs)
        if spec["op"] == "_mlp_memory_step_bwd_":
            case.skip_outputs = ["weights"]  # a write of NaN / Inf cannot be undone exactly
    elif kind == "range" and hasattr(case, "refresh"):
        # an out-of-range value the op may accept (a count past N: a ring memory's count keeps
        # growing): the saved state must then follow it too, unless the mutated argument is
        # itself saved state (indices), or the forward refuses the value (the op must as well)
        before = dict(case.inputs)
        try:
            case.refresh(case.inputs)
        except ALLOWED:
            case.inputs = before
        if case.inputs.get(key) is not before.get(key):
            case.inputs = before
    device = spec.get("device", "cpu")
    if device == "meta":
        if not case.meta_ok or kind == "meta_mix":
            device = "cpu"
        else:
            clean = _densify(case.inputs)
            case.inputs = _to_meta(case.inputs)
            try:
                want = case.call(_densify(clean))
            except ALLOWED:
                want = None
    spec["_device"] = device
    names = set(case.raise_names)
    if key is not None:
        names.update(_arg(case, key).names)
        names.add(key)
    if kind == "meta_mix":
        names.update(["device", "meta"])
    clean = _densify(case.inputs) if device == "cpu" else None
    snaps = {k: _snapshot(t) for k, t in _leaves(case.inputs)}
    state = [(o.slots.clone(), o.meta.clone()) for o in getattr(case, "state_objects", [])]
    try:
        got = case.call(case.inputs)
    except ALLOWED as e:
        msg = f"{type(e).__name__}: {e}".split("\nException raised from")[0]
        if kind in VALID and not case.expect_raise and not case.raise_names:
            raise CaseError(f"a valid input ({kind} mutation) raised {msg[:500]}")
        if not _message_names(msg, names):
            raise CaseError(f"the error does not name the argument (any of {sorted(names)}): {msg[:500]}")
        for k, t in _leaves(case.inputs):
            if k in snaps and _snapshot(t) != snaps[k]:
                raise CaseError(f"raised ({msg[:200]}) but changed input {k}")
        for (s, m), o in zip(state, getattr(case, "state_objects", [])):
            if not (torch.equal(o.slots, s) and torch.equal(o.meta, m)):
                raise CaseError(f"raised ({msg[:200]}) but changed the table")
        return {"outcome": "raised", "kind": kind, "arg": key, "msg": msg[:300]}
    except Exception as e:  # noqa: BLE001
        raise CaseError(f"raised {type(e).__name__} (not one of {[c.__name__ for c in ALLOWED]}): "
                        f"{str(e)[:400]}")
    # it returned
    if device == "meta":
        if want is None:
            if kind in ("shape", "rank", "dtype_int") and not case.expect_raise:
                raise CaseError(f"returned on meta, but the same call on the CPU raises ({kind} of {key})")
            return {"outcome": "returned", "kind": kind, "arg": key, "device": "meta", "unchecked": True}
        compare(got, want, spec["dtype"])  # shapes only for meta tensors
        return {"outcome": "returned", "kind": kind, "arg": key, "device": "meta"}
    if case.expect_raise:
        raise CaseError(f"returned for an invalid input ({case.expect_raise}); expected an error naming "
                        f"{sorted(names)}")
    if case.reference is None:
        return {"outcome": "returned", "kind": kind, "arg": key}
    try:
        want = case.reference(clean)
    except Exception as e:  # noqa: BLE001
        if kind in MUST_RAISE or kind == "dtype_float":
            raise CaseError(f"returned for an invalid input ({kind} of {key}); the reference raises "
                            f"{type(e).__name__}: {str(e)[:200]}")
        raise
    if kind in MUST_RAISE and kind not in ("range",):
        # the reference accepted it too (broadcasting, promotion): the answers must agree
        pass
    for k in getattr(case, "skip_outputs", []):
        got.pop(k, None)
        want.pop(k, None)
    compare(got, want, spec["dtype"], backward="_bwd" in spec["op"])
    return {"outcome": "returned", "kind": kind, "arg": key}


def run_huge(case, spec):
    """Sizes whose product passes 2**31, all meta: the op returns the reference's shapes (the
    reference run on meta tensors too) or raises a clear error."""
    inputs = _to_meta(case.inputs)
    try:
        got = case.call(inputs)
    except ALLOWED as e:
        msg = f"{type(e).__name__}: {e}".split("\nException raised from")[0]
        return {"outcome": "raised", "kind": "huge", "msg": msg[:300]}
    except Exception as e:  # noqa: BLE001
        raise CaseError(f"huge meta sizes: raised {type(e).__name__}: {str(e)[:300]}")
    try:  # (the reference loops over hops: no reference for a huge hops, only no crash)
        small = int(spec["params"].get("hops", 1)) <= 64
        want = case.reference(_to_meta(case.inputs)) if case.reference and small else None
    except Exception:  # noqa: BLE001  (the reference may need values: no shapes to compare)
        want = None
    if want is not None:
        compare(got, want, spec["dtype"])
    return {"outcome": "returned", "kind": "huge", "compared": want is not None}


def main():
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        idx, spec = json.loads(line)
        print(json.dumps({"start": idx}), flush=True)
        try:
            res = run_case(spec)
            res["ok"] = True
        except CaseError as e:
            res = {"ok": False, "why": str(e)}
        except Exception as e:  # noqa: BLE001  (a bug of the harness or an unexpected error)
            res = {"ok": False, "why": f"harness: {type(e).__name__}: {e}\n{traceback.format_exc()[-800:]}"}
        res["done"] = idx
        res["device"] = "huge" if spec.get("huge") else spec.get("_device", spec.get("device", "cpu"))
        print(json.dumps(res), flush=True)


if __name__ == "__main__":
    main()

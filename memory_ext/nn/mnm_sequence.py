"""The MNM controller's time loop as ONE autograd node: the fused path of MNMController.

Forward runs, per time step, the LSTM cell, the interaction vectors and one fused memory step
(torch.ops.memory_ext.mlp_memory_step) without recording a graph. Backward walks time in
reverse with hand-written LSTM and interaction gradients and one memory backward kernel per
step, and makes the weight gradients of all steps at the end as a few large matmuls. The math
is that of the per-step autograd loop (MNMController with sequence_node=False); the tests
compare both, values and gradients.

Shapes: B batch, T steps, Hd LSTM width, R = H n_L read width, Zw = n_beta + H (2 n_0 + n_L)
interaction width, G = 4 Hd gates.
"""
from __future__ import annotations

from typing import List, NamedTuple, Optional, Sequence, Tuple

import torch
from torch import Tensor
from torch.autograd.function import once_differentiable


# backward undoes each step's write from its saved factors; a copy of the weights every this
# many steps bounds the rounding drift of undoing
CHECKPOINT_EVERY = 32


class SequenceSpec(NamedTuple):
    """What the node needs to know of the memory heads (all plain values)."""
    n_beta: int
    heads: int
    widths: Tuple[int, ...]
    rule: str
    activation: str


def split_heads(z: Tensor, spec: SequenceSpec):
    """z [..., Zw] -> (k_w [..., H, n0], v_w [..., H, nL], k_r [..., H, n0]) views."""
    n0, nL = spec.widths[0], spec.widths[-1]
    per_head = z[..., spec.n_beta:].unflatten(-1, (spec.heads, 2 * n0 + nL))
    return per_head.split([n0, nL, n0], -1)


def local_targets(v_w: Tensor, w_tgt: Tensor, b_tgt: Tensor, spec: SequenceSpec) -> List[Tensor]:
    """Rule "local": every layer's targets from v_w [..., H, nL] by the merged target map
    (w_tgt [sum n_l, nL], b_tgt), as one 2-D matmul (linear() on the 3-D strided v_w would go
    through an expanded bmm). Returns L tensors [..., H, n_l]."""
    flat = torch.addmm(b_tgt, v_w.reshape(-1, spec.widths[-1]), w_tgt.t())
    return list(flat.view(*v_w.shape[:-1], -1).split(list(spec.widths[1:]), -1))


class _MNMSequence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, spec: SequenceSpec, gx, mask, h, c, r, w_rec, w_int, b_int, w_beta, b_beta,
                w_tgt, b_tgt, *W0):
        B, T = gx.shape[:2]
        nb = spec.n_beta
        # the memory lives in one private buffer, updated in place step by step; backward
        # undoes the steps from their saved factors, re-anchored at checkpoints
        W: List[Tensor] = [w.clone(memory_format=torch.contiguous_format) for w in W0]
        ckpts = {}
        saved = {k: [] for k in ("mem", "u", "f", "mult", "otc", "z", "beta", "beta_eff",
                                 "heads", "targets")}
        hs, rs, recons = [], [], []
        for t in range(T):
            u = torch.cat([r, h], 1)
            gates = torch.addmm(gx[:, t], u, w_rec)
            s = gates.sigmoid()
            Hd = h.shape[1]
            s[:, 2 * Hd: 3 * Hd] = gates[:, 2 * Hd: 3 * Hd].tanh()
            i, f, g, o = s.chunk(4, 1)
            c_new = torch.addcmul(f * c, i, g)
            tc = c_new.tanh()
            h_new = o * tc
            # the LSTM cell's backward in two whole-tensor products (fewer small ops there):
            # dgates = [dc | dc | dc | dh] * mult, and dc += dh * otc
            act_grad = torch.addcmul(s, s, s, value=-1)  # sigmoid' = s (1 - s) of i, f, o
            act_grad[:, 2 * Hd: 3 * Hd] = torch.addcmul(torch.ones_like(g), g, g, value=-1)
            mult = torch.cat([g, c, i, tc], 1).mul_(act_grad)
            otc = o * torch.addcmul(torch.ones_like(tc), tc, tc, value=-1)
            z = torch.addmm(b_int, h_new, w_int.t()).tanh_()
            beta = torch.addmm(b_beta, z[:, :nb], w_beta.t()).sigmoid_().squeeze(1)
            beta_eff = beta if mask is None else beta * mask[:, t]
            # contiguous once here, so neither memory op copies them
            heads = [x.contiguous() for x in split_heads(z, spec)]
            k_w, v_w, k_r = heads
            targets = [v_w] if spec.rule == "grad" else [
                x.contiguous() for x in local_targets(v_w, w_tgt, b_tgt, spec)]
            if t % CHECKPOINT_EVERY == 0 and t > 0:
                ckpts[t] = [w.clone() for w in W]
            r_new, recon, mem = torch.ops.memory_ext._mlp_memory_step_(
                W, k_w, targets, beta_eff, k_r, None, v_w, spec.rule, spec.activation)
            for k, v in (("mem", mem), ("u", u), ("f", f), ("mult", mult), ("otc", otc),
                         ("z", z), ("beta", beta), ("beta_eff", beta_eff), ("heads", heads),
                         ("targets", targets)):
                saved[k].append(v)
            r_new = r_new.flatten(1)
            if mask is None:
                h, c, r = h_new, c_new, r_new
            else:
                m = mask[:, t, None].bool()
                h, c, r = torch.where(m, h_new, h), torch.where(m, c_new, c), torch.where(m, r_new, r)
                recon = recon * mask[:, t]
            hs.append(h_new)
            rs.append(r_new)
            recons.append(recon)
        ctx.spec, ctx.saved, ctx.ckpts, ctx.final = spec, saved, ckpts, W
        ctx.hs = hs
        ctx.save_for_backward(mask, w_rec, w_int, w_beta, w_tgt)
        ctx.has_tgt_bias = b_tgt is not None
        return (torch.stack(hs, 1), torch.stack(rs, 1), torch.stack(recons, 1), h, c, r,
                *[w.clone() for w in W])

    @staticmethod
    @once_differentiable
    def backward(ctx, d_hs, d_rs, d_recon, d_h, d_c, d_r, *d_W):
        spec, sv = ctx.spec, ctx.saved
        mask, w_rec, w_int, w_beta, w_tgt = ctx.saved_tensors
        T = len(sv["u"])
        like = sv["u"][0]
        B, Hd = like.shape[0], w_int.shape[1]
        R = like.shape[1] - Hd
        H, n0, nL, nb = spec.heads, spec.widths[0], spec.widths[-1], spec.n_beta
        zeros = like.new_zeros
        dh = d_h if d_h is not None else zeros(B, Hd)
        dc = d_c if d_c is not None else zeros(B, Hd)
        dr = d_r if d_r is not None else zeros(B, R)
        W = [w.clone() for w in ctx.final]  # W_T, turned back into W_0 step by step
        G = [g.clone(memory_format=torch.contiguous_format) if g is not None
             else torch.zeros_like(w) for g, w in zip(d_W, W)]  # dJ/dW_t, in place
        DG, DZ, DL, DT = [None] * T, [None] * T, [None] * T, [None] * T
        for t in reversed(range(T)):
            m = None if mask is None else mask[:, t, None]
            dh_new = dh if m is None else dh * m
            dr_new = dr if m is None else dr * m
            dc_new = dc if m is None else dc * m
            if d_hs is not None:
                dh_new = dh_new + d_hs[:, t]
            if d_rs is not None:
                dr_new = dr_new + d_rs[:, t]
            d_rec = None
            if d_recon is not None:
                d_rec = d_recon[:, t] if m is None else d_recon[:, t] * m[:, 0]
            # the memory step
            z = sv["z"][t]
            k_w, v_w, k_r = sv["heads"][t]
            gkw, gz, gbeta, gkr, _, grv = torch.ops.memory_ext._mlp_memory_step_bwd_(
                W, G, sv["mem"][t], k_w, sv["targets"][t], sv["beta_eff"][t], k_r, None, v_w,
                dr_new.view(B, H, nL), d_rec, spec.rule, spec.activation)
            if t in ctx.ckpts:  # W is now W_t: take the stored copy (no drift from undoing)
                for w, k in zip(W, ctx.ckpts[t]):
                    w.copy_(k)
            if m is not None:
                gbeta = gbeta * m[:, 0]
            dv = grv
            if spec.rule == "grad":
                dv = dv + gz
            else:
                dt = gz  # [B, H, sum n_l]: every layer's target gradient
                DT[t] = dt
                dv = dv + (dt.reshape(B * H, -1) @ w_tgt).view(B, H, nL)
            beta = sv["beta"][t]
            dlogit = gbeta * beta * (1 - beta)
            dz = torch.cat([dlogit[:, None] * w_beta,
                            torch.cat([gkw, dv, gkr], -1).flatten(1)], 1)
            dz = dz * (1 - z * z)
            DZ[t], DL[t] = dz, dlogit
            dh_new = torch.addmm(dh_new, dz, w_int)
            # the LSTM cell
            dc_new = torch.addcmul(dc_new, dh_new, sv["otc"][t])
            dgates = torch.cat([dc_new, dc_new, dc_new, dh_new], 1).mul_(sv["mult"][t])
            DG[t] = dgates
            du = dgates @ w_rec.t()
            dc_prev = dc_new * sv["f"][t]
            if m is None:
                dr, dh, dc = du[:, :R], du[:, R:], dc_prev
            else:
                keep = 1 - m
                dr, dh, dc = du[:, :R] + dr * keep, du[:, R:] + dh * keep, dc_prev + dc * keep
        # weight gradients of all steps at once
        d_gx = torch.stack(DG, 1)
        flat = lambda xs: torch.stack(xs, 1).flatten(0, 1)  # noqa: E731  [B T, ...]
        DGf, DZf = d_gx.flatten(0, 1), flat(DZ)
        d_wrec = flat(sv["u"]).t() @ DGf
        d_wint = DZf.t() @ flat(ctx.hs)
        d_bint = DZf.sum(0)
        DLf = flat(DL)
        d_wbeta = (DLf[None, :] @ flat(sv["z"])[:, :nb])
        d_bbeta = DLf.sum().reshape(1)
        d_wtgt = d_btgt = None
        if spec.rule == "local":
            DTf = torch.stack(DT, 1).flatten(0, 2)  # [B T H, sum n_l]
            V = torch.stack([hd[1] for hd in sv["heads"]], 1).reshape(-1, nL)
            d_wtgt, d_btgt = DTf.t() @ V, DTf.sum(0)
        return (None, d_gx, None, dh, dc, dr, d_wrec, d_wint, d_bint, d_wbeta, d_bbeta, d_wtgt,
                d_btgt if ctx.has_tgt_bias else None, *G)


def mnm_sequence(spec: SequenceSpec, gx: Tensor, mask: Optional[Tensor], h: Tensor, c: Tensor,
                 r: Tensor, W: Sequence[Tensor], w_rec: Tensor, w_int: Tensor, b_int: Tensor,
                 w_beta: Tensor, b_beta: Tensor, w_tgt: Optional[Tensor], b_tgt: Optional[Tensor]):
    """T >= 1 steps of the MNM controller's recurrence.

    gx [B, T, G]: the input part of the LSTM gates (x W_ih[:, :I]^T + b_ih + b_hh); mask [B, T]
    float 0/1 or None; h, c [B, Hd], r [B, R] and W (L tensors [B, n_{l+1}, n_l]) the state;
    w_rec [R + Hd, G] = [W_ih[:, I:] | W_hh]^T; interaction Linear (w_int [Zw, Hd], b_int),
    beta Linear (w_beta [1, n_beta], b_beta [1]), merged target map (w_tgt [sum n_l, n_L],
    b_tgt) or None for rule "grad".

    Returns (h_new [B, T, Hd], reads [B, T, R], recon [B, T], (h, c, r, W) final state); at
    masked steps h_new / reads are what the step computed, the state keeps its old values and
    recon is 0."""
    out = _MNMSequence.apply(spec, gx, mask, h, c, r, w_rec, w_int, b_int, w_beta, b_beta,
                             w_tgt, b_tgt, *W)
    hs, rs, recon, h, c, r = out[:6]
    return hs, rs, recon, (h, c, r, list(out[6:]))

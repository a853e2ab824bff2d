"""The delta rule (spec 2) in flash-linear-attention's layout: ``delta_rule`` (front.py: the
recurrent form on the MLP-memory scan kernel and the chunk form, fixed-length or varlen) and
``delta_rule_step`` (one decoding step, in place); chunk.py holds the chunk form's raw op,
autograd and fake kernels."""
from .front import delta_rule, delta_rule_step

__all__ = ["delta_rule", "delta_rule_step"]

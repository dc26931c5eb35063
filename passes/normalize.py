"""Data-based layer-wise weight normalisation (Diehl et al. 2015; Rueckauer et al. 2017).

Every value ``a`` of the network gets a scale ``λ`` and the rewritten graph computes ``a / λ``.
A weighted layer (dense, conv) takes the ``percentile`` of its positive activations as its
``λ`` (at most ``m`` when it feeds only clips to ``[0, m]``, as ReLU6 does); with ``λ_in`` the
scale of its input, ``W ← W · λ_in / λ`` and ``b ← b / λ``, so that its normalised activations
rarely exceed 1 — the threshold of the IF neurons that convert-to-spiking makes of it.  Ops
that commute with a positive factor (ReLU, pooling, flatten, reshape, transpose, leaky ReLU)
keep their input's scale; graph inputs have scale 1 (the encoders present values in [0, 1]).

Inputs of an ``add`` or ``concat`` must share one scale: the joined value takes its own
percentile as ``λ`` and each branch whose scale differs is rescaled by an inserted
``ann.mul`` by the constant ``λ_branch / λ`` (a projection weight after conversion).  An op
that is not positively homogeneous (sigmoid, tanh, softmax, clip with a negative bound) gets
its true input back through a ``mul`` by ``λ`` and leaves a scale of 1.
"""

from __future__ import annotations

import numpy as np

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir import ann
from nmc.ir.core import Blob, Graph, Op, Value
from nmc.passes.calibrate import calibrate, calibration_batch, is_calibrated
from nmc.passmanager import Pass, PassContext, register_pass

WEIGHTED = ("ann.dense", "ann.conv")
HOMOGENEOUS = ("ann.relu", "ann.leaky_relu", "ann.prelu", "ann.maxpool", "ann.avgpool", "ann.global_avgpool",
               "ann.flatten", "ann.reshape", "ann.transpose", "ann.identity", "ann.dropout")
JOINS = ("ann.add", "ann.concat")


def layer_scale(op: Op) -> float:
    """``λ`` of a layer from its calibration: the percentile, else the maximum, else 1."""
    for key in ("calib.p", "calib.max"):
        value = float(op.extra.get(key, 0.0))
        if value > 0:
            return value
    return 1.0


def rate_coded_scale(values: np.ndarray, timesteps: int, max_values: int = 200_000) -> float:
    """The ``λ`` that best represents ``values`` as firing rates over ``timesteps`` steps.

    An IF neuron with ``v0 = θ/2`` and reset by subtraction under a constant normalised input
    ``r`` fires ``clip(⌊T·r + 1/2⌋, 0, T)`` times in ``T`` steps, so it stands for
    ``λ · clip(⌊T·a/λ + 1/2⌋, 0, T) / T``.  A large ``λ`` wastes the few rate levels a short
    window has, a small one clips: choose, among the 90th…100th percentiles of the positive
    values, the one with the least squared error (threshold calibration for low latency, as in
    Li et al. 2021 and Bu et al. 2022).  Values ≤ 0 stay 0 exactly and do not count."""
    positive = np.asarray(values, dtype=np.float64).reshape(-1)
    positive = positive[positive > 0]
    if positive.size == 0:
        return 1.0
    positive = positive[:: -(-positive.size // max_values)]  # a deterministic subsample
    candidates = np.unique(np.percentile(positive, np.linspace(90.0, 100.0, 101)))
    errors = [np.sum((positive - lam * np.clip(np.floor(timesteps * positive / lam + 0.5), 0, timesteps)
                      / timesteps) ** 2) for lam in candidates]
    return float(candidates[int(np.argmin(errors))])


def clip_bound(graph: Graph, op: Op) -> float | None:
    """``m`` when every user of ``op``'s result is a clip to ``[0, m]`` (ReLU6 is ``m = 6``), else None.

    Such a layer's activation never exceeds ``m``: its percentile is that of the clipped values,
    ``min(m, p)``, and ``λ = m`` makes the clip exactly the IF neuron's rate bound of 1 (the
    trainable clipping threshold of Ho & Chang 2021 and Bu et al. 2022 is trained for this)."""
    users = graph.users(op.result)
    if not users or any(u.KIND != "ann.clip" or u.min != 0.0 or not u.max > 0.0 for u in users):
        return None
    bounds = {float(u.max) for u in users}
    return bounds.pop() if len(bounds) == 1 else None


def _constant_scalar(v: Value) -> float | None:
    """The value of a one-element constant, else None."""
    owner = v.owner
    if owner is not None and owner.KIND == "ann.constant" and owner.value.size == 1:
        return float(owner.value.data.reshape(-1)[0])
    return None


def _rescale(graph: Graph, user: Op, v: Value, factor: float) -> Value:
    """Insert ``v * factor`` before ``user`` and return it."""
    dtype = v.type.np_dtype
    const = ann.Constant(value=Blob(np.full((1,), factor, dtype=dtype)), loc=user.loc)
    graph.insert_before(user, const)
    mul = ann.Mul(a=v, b=const.result, loc=user.loc)
    graph.insert_before(user, mul)
    return mul.result


def normalize(graph: Graph, ctx: PassContext, chosen: dict[Op, float] | None = None) -> dict[Value, float]:
    """Rewrite ``graph`` in place; returns the scale of every value.  ``chosen``: the ``λ`` of
    some weighted layers and joins (else :func:`layer_scale`)."""
    chosen = chosen or {}
    scale: dict[Value, float] = {}
    for op in list(graph.ops):
        if op.result is None:
            continue
        kind = op.KIND
        if kind in ("ann.input", "ann.constant"):
            scale[op.result] = 1.0
            continue
        ins = [scale.get(v, 1.0) for v in op.operands]
        if kind in WEIGHTED:
            lam = chosen.get(op) or min(layer_scale(op), clip_bound(graph, op) or np.inf)
            w = op.weight.data.astype(np.float64) * ins[0] / lam
            changes = {"weight": Blob(w.astype(op.weight.data.dtype), op.weight.name)}
            if op.bias is not None:
                changes["bias"] = Blob((op.bias.data.astype(np.float64) / lam).astype(op.bias.data.dtype), op.bias.name)
            new = op.with_changes(**changes)
            new.extra["norm.scale"] = lam
            graph.replace(op, new)
            op = new
            ctx.stat("layers-normalized")
            ctx.log.debug("%r: lambda_in %g, lambda %g", op, ins[0], lam)
        elif kind in HOMOGENEOUS:
            lam = ins[0]
        elif kind == "ann.mul" and (_constant_scalar(op.a) is not None or _constant_scalar(op.b) is not None):
            lam = ins[0] if _constant_scalar(op.b) is not None else ins[1]
        elif kind == "ann.clip" and op.min >= 0:
            lam = ins[0]
            new = op.with_changes(min=op.min / lam, max=op.max / lam)
            graph.replace(op, new)
            op = new
        elif kind in JOINS:
            lam = chosen.get(op) or layer_scale(op)
            for v, s in zip(list(op.operands), ins):
                if not np.isclose(s, lam, rtol=1e-12, atol=0):
                    op.replace_operand(v, _rescale(graph, op, v, s / lam))
                    ctx.stat("branches-rescaled")
        else:  # not positively homogeneous: give it its true input back
            for v, s in zip(list(op.operands), ins):
                if s != 1.0:
                    op.replace_operand(v, _rescale(graph, op, v, s))
            lam = 1.0
        scale[op.result] = lam
        for key in ("calib.max", "calib.p"):
            if key in op.extra:
                op.extra[key] = float(op.extra[key]) / lam
    return scale


@register_pass("normalize")
class Normalize(Pass):
    """Layer-wise weight normalisation from calibration statistics.

    Requires: an ``ann`` graph whose ops carry ``calib.*`` measured at this ``percentile``
    (the calibrate pass), or ``ctx.calibration`` (then it calibrates first).
    Ensures: every dense/conv output is divided by its ``λ`` (the percentile of its positive
    activations, capped by a clip's bound: :func:`clip_bound`; ``norm.scale`` on the op);
    inputs of each add/concat share a scale; graph outputs are the original ones divided by
    positive factors (``meta.output_scale``), so the argmax is unchanged; ``meta.normalized =
    true``.  With ``timesteps`` > 0 each ``λ`` is instead the one that best represents the
    layer's activations on ``ctx.calibration`` as rates over that many steps
    (:func:`rate_coded_scale`)."""

    percentile: float = 99.9
    timesteps: int = 0

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if not 0.0 < self.percentile <= 100.0:
            raise NmcError(f"normalize: percentile must lie in (0, 100], got {self.percentile}")
        if graph.meta.get("normalized"):
            ctx.remark("the graph is already normalised; nothing to do")
            return False
        measured = [op for op in graph.ops if op.KIND in WEIGHTED + JOINS]
        if ctx.calibration is not None:
            calibrate(graph, calibration_batch(ctx, graph, 0, "normalize"), self.percentile)
        for op in measured:
            if not is_calibrated(op):
                raise NmcError(f"'{op.KIND}' op has no calibration statistics", op.loc,
                               hint="run the calibrate pass first (with --calib DATA.npz), e.g. "
                                    f"--passes=calibrate{{percentile={self.percentile}}},normalize")
            if float(op.extra["calib.percentile"]) != self.percentile:
                raise NmcError(f"'{op.KIND}' op was calibrated at percentile {op.extra['calib.percentile']}, "
                               f"normalize asks for {self.percentile}", op.loc,
                               hint=f"use calibrate{{percentile={self.percentile}}}, or give the calibration data again")
        chosen = {}
        if self.timesteps > 0:
            if ctx.calibration is None:
                raise NmcError(f"normalize{{timesteps={self.timesteps}}} needs calibration data",
                               hint="pass --calib DATA.npz, or drop timesteps to use the calibrated percentiles")
            values = semantics.run_ann(graph, [calibration_batch(ctx, graph, 512, "normalize")], keep=True).values
            chosen = {op: rate_coded_scale(np.minimum(values[op.result], clip_bound(graph, op) or np.inf),
                                           self.timesteps) for op in measured}
        scale = normalize(graph, ctx, chosen)
        graph.meta["normalized"] = True
        graph.meta["output_scale"] = [float(scale.get(v, 1.0)) for v in graph.outputs]
        return True

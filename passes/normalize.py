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

For a window of ``T`` steps (``timesteps``), :func:`fit_layers` fits each layer's ``λ`` (and,
as options, one per channel and bias offsets) to the ``T + 1`` rate levels its IF neurons can
show, one layer after the other; :func:`normalize` applies them.
"""

from __future__ import annotations

from typing import Literal

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


#: ops through which a per-channel scale passes unchanged (channel axis 1 kept) to the next layer
CHANNEL_PRESERVING = ("ann.relu", "ann.identity", "ann.dropout", "ann.avgpool", "ann.global_avgpool", "ann.maxpool")


def channel_scalable(graph: Graph, op: Op) -> bool:
    """Whether ``op``'s result may take one ``λ`` per channel: every path from it passes only
    through ops that keep channels apart (ReLU, pooling; flatten or reshape before a dense
    layer) and ends at a dense or ungrouped conv layer, which takes the factors into its
    weights.  Joins, clips, graph outputs and other readers need one scale."""
    if op.KIND not in WEIGHTED or op.result.type.rank < 1:
        return False
    todo, flat = [op.result], False
    while todo:
        v = todo.pop()
        if v in graph.outputs:
            return False
        for user in graph.users(v):
            if user.KIND == "ann.dense" or (user.KIND == "ann.conv" and user.groups == 1 and not flat):
                if user.x is not v or not (user.KIND == "ann.dense" or len(user.x.type.shape) == 3):
                    return False
            elif user.KIND in CHANNEL_PRESERVING and not flat:
                todo.append(user.result)
            elif user.KIND in ("ann.flatten", "ann.reshape") and user.result.type.rank == 1:
                flat = True
                todo.append(user.result)
            else:
                return False
    return True


def spiking_ops(graph: Graph, ops: list[Op]) -> list[Op]:
    """Those of ``ops`` whose result only ReLUs or clips to ``[0, m]`` read: the layers that
    become spiking IF neurons."""
    def relu_like(u: Op) -> bool:
        return u.KIND == "ann.relu" or (u.KIND == "ann.clip" and u.min == 0.0 and u.max > 0.0)

    outputs = {id(v) for v in graph.outputs}
    return [op for op in ops if id(op.result) not in outputs and graph.users(op.result)
            and all(relu_like(u) for u in graph.users(op.result))]


def rate_code(z: np.ndarray, lam, offset, timesteps: int) -> np.ndarray:
    """What IF neurons of scale ``lam`` (threshold ``lam`` in ``z``'s units, ``v0 = θ/2``, reset
    by subtraction) show of a constant input ``z`` in ``timesteps`` steps, with a constant
    ``offset`` (in spikes) added to their charge: ``lam · clip(⌊T·z/lam + ½ + offset⌋, 0, T) / T``."""
    return lam * np.clip(np.floor(timesteps * z / lam + 0.5 + offset), 0, timesteps) / timesteps


OFFSETS = np.linspace(-0.5, 0.5, 11)  # offset candidates, in spikes per window
def search_low(timesteps: int) -> float:
    """The lowest percentile of the positive activations tried as ``λ``: 50 for one or two steps,
    where the best binary or ternary code of an activation sits well below its top decile
    (measured: docs/conversion.md), else 90."""
    return 50.0 if timesteps <= 2 else 90.0


def fit_rate_code(z: np.ndarray, a: np.ndarray, timesteps: int, channelwise: bool, offsets: bool,
                  max_values: int = 8192) -> tuple[float | np.ndarray, np.ndarray]:
    """``(λ, offset)`` whose :func:`rate_code` of the layer's input ``z`` (as the rate-coded
    network before it delivers it) comes closest, in squared error, to the ANN's activation
    ``a`` (both ``[N, C, ...]``).  ``λ``: one number, or one per channel (``channelwise``);
    ``offset``: one per channel (zeros unless ``offsets``).  The candidates for ``λ`` are the
    ``search_low(T)`` … 100th percentiles of the positive ``a`` (of the layer, or of the channel);
    a channel that is never positive takes the layer's ``λ``."""
    channels = z.shape[1] if z.ndim > 1 else 1
    zc = np.moveaxis(z, 1, 0).reshape(channels, -1).astype(np.float64)
    ac = np.moveaxis(a, 1, 0).reshape(channels, -1).astype(np.float64)
    step = -(-zc.shape[1] // max_values)
    zc, ac = zc[:, ::step], ac[:, ::step]  # a deterministic subsample per channel
    shifts = OFFSETS if offsets else np.zeros(1)
    qs = np.linspace(search_low(timesteps), 100.0, 51)

    def errors(lams: np.ndarray) -> np.ndarray:  # [channels, len(shifts)] for one λ per channel
        lam = lams[:, None, None]
        return np.sum((ac[:, None] - rate_code(zc[:, None], lam, shifts[None, :, None], timesteps)) ** 2, axis=2)

    positive = ac[ac > 0]
    layer_lams = np.unique(np.percentile(positive, qs)) if positive.size else np.ones(1)
    table = np.stack([errors(np.full(channels, lam)) for lam in layer_lams])  # [λ, channels, shifts]
    best = int(np.argmin(table.min(axis=2).sum(axis=1)))
    lam, shift = layer_lams[best], shifts[np.argmin(table[best], axis=1)]
    if not channelwise:
        return float(lam), shift
    lams = np.full(channels, lam)
    live = [c for c in range(channels) if np.any(ac[c] > 0)]
    if live:
        cands = np.stack([np.percentile(ac[c][ac[c] > 0], qs) for c in live], axis=1)  # [q, live]
        sub = np.stack([np.sum((ac[live][:, None] - rate_code(zc[live][:, None], lam_q[:, None, None],
                                                               shifts[None, :, None], timesteps)) ** 2, axis=2)
                        for lam_q in cands])  # [q, live, shifts]
        flat = sub.reshape(len(qs), len(live), -1)
        q_best, s_best = np.unravel_index(np.argmin(flat.transpose(1, 0, 2).reshape(len(live), -1), axis=1),
                                          (len(qs), len(shifts)))
        lams[live] = cands[q_best, np.arange(len(live))]
        shift = shift.copy()
        shift[live] = shifts[s_best]
    return lams, shift


def fit_layers(graph: Graph, x: np.ndarray, measured: list[Op], timesteps: int, *, channelwise: bool,
               offsets: bool, coded_input: bool, reconstruct: str = "none", burst: int = 1
               ) -> tuple[dict[Op, float | np.ndarray], dict[Op, np.ndarray], dict[Op, tuple]]:
    """``λ`` for every op of ``measured`` and a bias offset (in the op's own units) for the
    spiking ones, fitted one layer after the other on ``x`` (layer-wise calibration, Li et al.
    2021): each spiking layer's ``λ`` and offsets make the rate code of its input — as the
    layers before it, already fitted, deliver it, and the input as a rate code of ``timesteps``
    steps if ``coded_input`` — closest to the ANN's activation (:func:`fit_rate_code`).  Other
    ops (the output layer, joins that do not feed neurons) keep :func:`rate_coded_scale` of
    their activations.  Offsets only go to dense/conv layers (they carry a bias).

    ``reconstruct`` (``bias`` or ``weights``): before its ``λ`` is fitted, each dense/conv
    layer's parameters are corrected so that its output from the rate-coded input comes closer
    to the ANN's (:func:`reconstruction`); returned as ``(ΔW or None, Δb)`` per layer.

    ``burst``: the spiking layers are burst neurons of up to ``burst`` spikes per step, whose
    rate code has ``burst · timesteps + 1`` levels (the input's keeps ``timesteps + 1``)."""
    levels = timesteps * burst
    clean = semantics.stream_ann(graph, [x])
    if coded_input:
        x = rate_code(np.clip(x, 0.0, 1.0), 1.0, 0.0, timesteps).astype(x.dtype)
    spiking = set(spiking_ops(graph, measured))
    wanted = set(measured)
    fitted: dict = {}
    chosen, bias, corrections = {}, {}, {}
    kept = {}  # the rate-coded inputs of dense layers (reconstruct=weights), by value
    readers = {}
    if reconstruct == "weights":
        for op in measured:
            if op.KIND == "ann.dense":
                readers[op.x] = readers.get(op.x, 0) + 1
    # One pass in program order: the network whose fitted layers deliver their rate codes
    # (``coded``) beside the ANN (``clean``).  A layer's input depends only on the layers
    # before it, so each is fitted when reached, and its rate code replaces its value for
    # the layers after it — the same as re-running the network for every layer, once.
    coded = semantics.stream_ann(graph, [x])
    item = next(coded, None)
    while item is not None:
        op, z = item
        a_op, a = next(clean)
        assert a_op is op
        replaced = None
        if op in wanted and op.KIND in WEIGHTED and reconstruct != "none":
            xin = None
            if op.KIND == "ann.dense" and op.x in kept:
                xin = kept[op.x][0]
                kept[op.x][1] -= 1
                if kept[op.x][1] == 0:
                    del kept[op.x]
            dw, db, z = reconstruction(z, a, xin)
            corrections[op] = (dw, db)
            replaced = z
        if op in wanted:
            bound = clip_bound(graph, op) or np.inf
            if op not in spiking:
                chosen[op] = rate_coded_scale(np.minimum(a, bound), timesteps)
            else:
                lam, shift = fit_rate_code(z, np.clip(a, 0.0, bound), levels,
                                           channelwise and channel_scalable(graph, op),
                                           offsets and op.KIND in WEIGHTED)
                fitted[op.result] = (lam, shift)
                shape = (-1,) + (1,) * (z.ndim - 2)
                replaced = rate_code(z, np.reshape(lam, shape), np.reshape(shift, shape), levels).astype(z.dtype)
        if op.result in readers:
            kept[op.result] = [z if replaced is None else replaced, readers[op.result]]
        try:
            item = coded.send(replaced)
        except StopIteration:
            item = None
    for op in [o for o in measured if o in spiking]:  # program order
        lam, shift = fitted[op.result]
        chosen[op] = lam
        if np.any(shift != 0):
            bias[op] = shift * np.reshape(lam, -1) / levels
    return chosen, bias, corrections


#: ridge of :func:`reconstruction`'s weight fit, relative to the mean variance of the inputs
RIDGE = 0.1


def reconstruction(z: np.ndarray, a: np.ndarray, x: np.ndarray | None
                   ) -> tuple[np.ndarray | None, np.ndarray, np.ndarray]:
    """``(ΔW, Δb, z')``: a correction of a layer whose output is ``z`` from its rate-coded input
    and ``a`` from the clean one (both ``[N, C, ...]``), and its output after it.  Without the
    input ``x``: the bias correction of Li et al. 2021, ``Δb`` the mean of ``a − z`` per
    channel.  With ``x`` (``[N, in]``, a dense layer): the ``ΔW`` (``[C, in]``) and ``Δb`` of a
    least-squares fit of ``a − z`` from ``x``, with a ridge that keeps ``ΔW`` small (layer-wise
    weight calibration, as in their advanced pipeline)."""
    residual = (a.astype(np.float64) - z).reshape(len(z), z.shape[1] if z.ndim > 1 else 1, -1)
    if x is None:
        db = residual.mean(axis=(0, 2))
        return None, db, (z + db.reshape((-1,) + (1,) * (z.ndim - 2))).astype(z.dtype)
    xs = x.reshape(len(x), -1).astype(np.float64)
    r = residual[:, :, 0]
    xm, rm = xs.mean(axis=0), r.mean(axis=0)
    xc, rc = xs - xm, r - rm
    gram = xc.T @ xc / len(xs)
    ridge = RIDGE * max(float(np.trace(gram)) / len(gram), 1e-12)
    dwt = np.linalg.solve(gram + ridge * np.eye(len(gram)), xc.T @ rc / len(xs))  # [in, C]
    db = rm - xm @ dwt
    return dwt.T, db, (z + xs @ dwt + db).astype(z.dtype)




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


def normalize(graph: Graph, ctx: PassContext, chosen: dict[Op, float | np.ndarray] | None = None) -> dict[Value, float]:
    """Rewrite ``graph`` in place; returns the scale of every value.  ``chosen``: the ``λ`` of
    some weighted layers and joins (else :func:`layer_scale`); an array gives one ``λ`` per
    output channel, allowed only where :func:`channel_scalable` holds (the scale of a value is
    then an array broadcasting against one sample of it)."""
    chosen = chosen or {}
    scale: dict[Value, float | np.ndarray] = {}
    for op in list(graph.ops):
        if op.result is None:
            continue
        kind = op.KIND
        if kind in ("ann.input", "ann.constant"):
            scale[op.result] = 1.0
            continue
        ins = [scale.get(v, 1.0) for v in op.operands]
        if kind in WEIGHTED:
            lam = chosen.get(op)
            lam = min(layer_scale(op), clip_bound(graph, op) or np.inf) if lam is None else lam
            changes = {"weight": Blob(_scaled(op.weight.data, _input_factor(op, ins[0]), lam), op.weight.name)}
            if op.bias is not None:
                changes["bias"] = Blob((op.bias.data.astype(np.float64) / np.reshape(lam, -1)).astype(op.bias.data.dtype),
                                       op.bias.name)
            new = op.with_changes(**changes)
            if not np.isscalar(lam):
                lam = np.reshape(lam, (-1,) + (1,) * (len(op.result.type.shape) - 1))
            new.extra["norm.scale"] = float(np.max(lam))
            graph.replace(op, new)
            op = new
            ctx.stat("layers-normalized")
            ctx.log.debug("%r: lambda_in %g, lambda %g", op, ins[0], lam)
        elif kind in ("ann.flatten", "ann.reshape") and not np.isscalar(ins[0]):
            lam = np.broadcast_to(ins[0], op.x.type.shape).reshape(op.result.type.shape)
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
                    graph.redirect(op, v, _rescale(graph, op, v, s / lam))
                    ctx.stat("branches-rescaled")
        else:  # not positively homogeneous: give it its true input back
            for v, s in zip(list(op.operands), ins):
                if s != 1.0:
                    graph.redirect(op, v, _rescale(graph, op, v, s))
            lam = 1.0
        scale[op.result] = lam
        for key in ("calib.max", "calib.p"):
            if key in op.extra:
                op.extra[key] = float(op.extra[key]) / float(np.min(lam))
    return scale


ROWS = 1 << 20  # weights scaled in float64 at a time (8 MiB): VGG-19's first dense layer has 102 M


def _scaled(w: np.ndarray, factor, lam) -> np.ndarray:
    """``w · factor / λ`` in float64, returned in ``w``'s dtype (a dense or conv weight; ``λ`` one
    number or one per output row/channel), about :data:`ROWS` weights at a time: the same
    numbers as on the whole array, without its float64 copies."""
    out = np.empty_like(w)
    out_lam = np.broadcast_to(np.reshape(lam, (-1,) + (1,) * (w.ndim - 1)), (len(w),) + (1,) * (w.ndim - 1))
    step = max(1, ROWS // max(1, w[0].size))
    for i in range(0, len(w), step):
        out[i:i + step] = (w[i:i + step].astype(np.float64) * factor / out_lam[i:i + step]).astype(w.dtype)
    return out


def _input_factor(op: Op, lam_in: float | np.ndarray) -> float | np.ndarray:
    """The input scale as a factor on ``op``'s weight: a number, or (per channel) one factor per
    input column of a dense layer / input channel of a conv."""
    if np.isscalar(lam_in):
        return lam_in
    flat = np.broadcast_to(lam_in, op.x.type.shape)
    if op.KIND == "ann.dense":
        return flat.reshape(1, -1)
    return flat.reshape(flat.shape[0], -1)[:, 0].reshape(1, -1, 1, 1)


@register_pass("normalize")
class Normalize(Pass):
    """Layer-wise weight normalisation from calibration statistics.

    Requires: an ``ann`` graph whose ops carry ``calib.*`` measured at this ``percentile``
    (the calibrate pass), or ``ctx.calibration`` (then it calibrates first).
    Ensures: every dense/conv output is divided by its ``λ`` (the percentile of its positive
    activations, capped by a clip's bound: :func:`clip_bound`; ``norm.scale`` on the op);
    inputs of each add/concat share a scale; graph outputs are the original ones divided by
    positive factors (``meta.output_scale``), so the argmax is unchanged; ``meta.normalized =
    true``.  With ``timesteps`` > 0 each ``λ`` is instead fitted on ``ctx.calibration`` (512
    samples) for a window of that many steps, layer after layer (:func:`fit_layers`): the
    ``λ`` whose rate code of the layer's input, as the already fitted layers before it (and a
    ``rate``/``poisson`` input, per ``encoding``) deliver it, comes closest to the ANN's
    activation.  ``channelwise``: one ``λ`` per output channel where the next layer can take
    the factors (:func:`channel_scalable`), one per layer elsewhere.  ``offsets``: each
    spiking dense/conv layer's bias also moves by a fitted offset per channel, within ±½
    spike per window (the charge an initial potential other than θ/2 would add).  Both need
    ``timesteps``.  ``burst = B``: the layers are fitted for the burst neurons of
    ``convert-to-spiking{burst=B}``, a rate code of ``B·T + 1`` levels."""

    percentile: float = 99.9
    timesteps: int = 0
    channelwise: bool = False
    offsets: bool = False
    encoding: Literal["rate", "poisson", "current"] = "rate"
    reconstruct: Literal["none", "bias", "weights"] = "none"
    samples: int = 512
    burst: int = 1

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        with graph.tracked_uses():  # the layers' users are asked for again and again
            return self._run(graph, ctx)

    def _run(self, graph: Graph, ctx: PassContext) -> bool:
        if not 0.0 < self.percentile <= 100.0:
            raise NmcError(f"normalize: percentile must lie in (0, 100], got {self.percentile}")
        if self.burst < 1:
            raise NmcError(f"normalize: burst must be at least 1, got {self.burst}")
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
            x = calibration_batch(ctx, graph, self.samples, "normalize")
            chosen, offsets, corrections = fit_layers(
                graph, x, measured, self.timesteps, channelwise=self.channelwise, offsets=self.offsets,
                coded_input=self.encoding != "current", reconstruct=self.reconstruct, burst=self.burst)
            for op in [o for o in measured if o in offsets or o in corrections]:
                dw, db = corrections.get(op, (None, 0.0))
                shift = db + offsets.get(op, 0.0)
                old = np.zeros(op.weight.shape[0]) if op.bias is None else op.bias.data.astype(np.float64)
                dtype = op.weight.data.dtype if op.bias is None else op.bias.data.dtype
                name = f"{op.weight.name}.bias" if op.bias is None and op.weight.name else getattr(op.bias, "name", None)
                changes = {"bias": Blob((old + shift).astype(dtype), name)}
                if dw is not None:
                    changes["weight"] = Blob((op.weight.data.astype(np.float64) + dw).astype(op.weight.data.dtype),
                                             op.weight.name)
                new = op.with_changes(**changes)
                graph.replace(op, new)
                chosen[new] = chosen.pop(op)
                ctx.stat("layers-offset" if op in offsets else "layers-reconstructed")
        elif self.channelwise or self.offsets or self.reconstruct != "none" or self.burst != 1:
            raise NmcError("normalize: channelwise, offsets, reconstruct and burst are fitted for a window of T steps",
                           hint="give timesteps=T as well")
        scale = normalize(graph, ctx, chosen)
        graph.meta["normalized"] = True
        graph.meta["output_scale"] = [float(scale.get(v, 1.0)) for v in graph.outputs]
        return True

"""fold-affine: fold multiplications and additions by constants into neighbouring conv/dense,
and linear layers into the convolution they follow.

Frontends turn ``(x - mean) / std`` input normalisation and the separate bias adds that
exporters write (CNTK's ``Conv`` + ``Add``, ``MatMul`` + ``Add``) into ``ann.mul``/``ann.add``
by an ``ann.constant``.  These patterns absorb them into a conv's or dense's weights and bias
whenever that is exact.  Two linear layers with no ReLU between them — a 1×1 convolution (a
per-channel affine map among them) after a convolution, an average pool that tiles the output
of a convolution — are one convolution: a spiking network can only hold a linear value as the
input current of neurons, so a linear layer reading a linear layer has no other exact form.
"""

from __future__ import annotations

import math

from nmc.ir.core import Blob, Graph, Op, Value
from nmc.lazy import lazy_import
from nmc.passmanager import PassContext, register_pass
from nmc.rewrite import Pattern, PatternPass

np = lazy_import("numpy")

LAYERS = ("ann.conv", "ann.dense")


def _split(op: Op) -> tuple[Value, np.ndarray] | None:
    """(the non-constant operand, the constant's array) of a binary op by one constant whose
    result has the shape of that operand; None otherwise."""
    a, b = op.a, op.b
    for x, c in ((a, b), (b, a)):
        if c.owner is not None and c.owner.KIND == "ann.constant" and not (
                x.owner is not None and x.owner.KIND == "ann.constant"):
            if op.result.type.shape != x.type.shape:
                return None
            return x, c.owner.value.data.astype(np.float64)
    return None


def _per_channel(c: np.ndarray, shape: tuple[int, ...]) -> np.ndarray | None:
    """``c`` broadcast to a per-sample ``shape`` ([C, *spatial] or [features]) as one value per
    channel (axis 0); None when it varies along another axis."""
    full = np.broadcast_to(c, shape)
    if len(shape) == 1:
        return np.array(full)
    first = full[(slice(None),) + (slice(0, 1),) * (len(shape) - 1)]
    if not np.array_equal(np.broadcast_to(first, shape), full):
        return None
    return np.array(first).reshape(-1)


def _f64(b: Blob | None, n: int) -> np.ndarray:
    return b.data.astype(np.float64) if b is not None else np.zeros(n)


def _rebuild(layer: Op, weight: np.ndarray, bias: np.ndarray, **changes) -> Op:
    dt = layer.weight.data.dtype
    if layer.bias is None and not bias.any():
        new_bias = None
    else:
        new_bias = Blob(bias.astype(dt), layer.bias.name if layer.bias is not None else None)
    return layer.with_changes(weight=Blob(weight.astype(dt), layer.weight.name), bias=new_bias, **changes)


def _drop_constant_if_unused(graph: Graph, op: Op) -> None:
    for v in (op.a, op.b):
        if v.owner is not None and v.owner.KIND == "ann.constant" and graph.holds(v.owner) and not graph.users(v):
            graph.erase(v.owner)


def _input_channel_map(layer: Op) -> np.ndarray:
    """For a conv weight ``[O, I/g, k...]``: the input channel each ``[o, i]`` reads."""
    out, per_group = layer.weight.shape[:2]
    group = np.arange(out) // (out // layer.groups)
    return group[:, None] * per_group + np.arange(per_group)[None, :]


def ungrouped(weight: np.ndarray, groups: int) -> np.ndarray:
    """A conv weight ``[O, I/groups, k...]`` as the equivalent ungrouped ``[O, I, k...]`` (zeros
    where an output channel does not read an input channel)."""
    if groups == 1:
        return weight
    out, per_group = weight.shape[:2]
    full = np.zeros((out, per_group * groups) + weight.shape[2:], weight.dtype)
    for o in range(out):
        g = o // (out // groups)
        full[o, g * per_group:(g + 1) * per_group] = weight[o]
    return full


def regrouped(full: np.ndarray, groups: int) -> np.ndarray:
    """The inverse of :func:`ungrouped`: ``[O, I, k...]`` → ``[O, I/groups, k...]`` (the caller
    knows the weights outside the groups are zero)."""
    if groups == 1:
        return full
    out, inputs = full.shape[:2]
    per_out, per_in = out // groups, inputs // groups
    return np.stack([full[o, (o // per_out) * per_in:(o // per_out + 1) * per_in] for o in range(out)])


def _is_pointwise(conv: Op) -> bool:
    """A 1×1 (or 1) convolution with unit strides and dilations and no padding: a per-position
    linear map of the channels, which commutes with anything done to the positions."""
    return (conv.KIND == "ann.conv" and all(k == 1 for k in conv.weight.shape[2:])
            and all(s == 1 for s in conv.strides) and not any(conv.pads) and all(d == 1 for d in conv.dilations))


def _compose_convs(outer: Op, graph: Graph, ctx: PassContext) -> bool:
    """``conv_B(conv_A(x))`` → one conv of ``x`` when B is pointwise and A has no other user:
    A's geometry, weight ``Σ_a B[o, a] · A[a, ...]``, bias ``B·b_A + b_B``, groups
    ``gcd(g_A, g_B)``.  Exact: B reads every position A computes and pads nothing."""
    inner = outer.x.owner
    if (not _is_pointwise(outer) or inner is None or inner.KIND != "ann.conv"
            or graph.users(inner.result) != [outer]):
        return False
    a = ungrouped(inner.weight.data.astype(np.float64), inner.groups)
    b = ungrouped(outer.weight.data.astype(np.float64), outer.groups).reshape(outer.weight.shape[0], -1)
    weight = np.einsum("oa,a...->o...", b, a)
    bias = b @ _f64(inner.bias, a.shape[0]) + _f64(outer.bias, b.shape[0])
    groups = math.gcd(inner.groups, outer.groups)
    composed = _rebuild(outer, regrouped(weight, groups), bias, x=inner.x, strides=inner.strides,
                        pads=inner.pads, dilations=inner.dilations, groups=groups)
    graph.replace(outer, composed)
    graph.erase(inner)
    ctx.log.debug("composed %r into %r", inner, composed)
    return True


def _fold_pool_into_conv(pool: Op, graph: Graph, ctx: PassContext) -> bool:
    """``avgpool(conv(x))`` → one conv of ``x`` when the pool tiles (kernel = strides, no pads,
    no ceil mode), the conv is undilated and has no other user: kernel ``K + (k − 1)·s``,
    strides ``s·k``, the conv's pads, weight the mean of the conv's kernel shifted by
    ``s·(u, v)`` over the pool window.  Exact: each output averages whole conv windows, every one
    of which the conv computed (its bias included)."""
    conv = pool.x.owner
    k = tuple(pool.kernel)
    if (conv is None or conv.KIND != "ann.conv" or len(k) != 2 or tuple(pool.strides) != k or any(pool.pads)
            or pool.ceil_mode or len(conv.weight.shape) != 4 or any(d != 1 for d in conv.dilations)
            or graph.users(conv.result) != [pool]):
        return False
    w = conv.weight.data.astype(np.float64)
    (sh, sw), (kh, kw) = conv.strides, w.shape[2:]
    spread = np.zeros(w.shape[:2] + (kh + (k[0] - 1) * sh, kw + (k[1] - 1) * sw))
    for u in range(k[0]):
        for v in range(k[1]):
            spread[:, :, u * sh:u * sh + kh, v * sw:v * sw + kw] += w / (k[0] * k[1])
    folded = _rebuild(conv, spread, _f64(conv.bias, w.shape[0]), strides=(sh * k[0], sw * k[1]))
    assert tuple(folded.result.type.shape) == tuple(pool.result.type.shape)  # ⌊(⌊M/s⌋ + 1)/k⌋ both
    graph.replace(conv, folded)
    folded.result.name = pool.result.name
    graph.replace(pool, folded.result)
    ctx.log.debug("folded %r into %r", pool, folded)
    return True


def _fold_into_next(op: Op, graph: Graph, ctx: PassContext) -> bool:
    """``conv|dense(x * s)`` → scaled input columns; ``conv|dense(x + t)`` → shifted bias,
    the latter only without padding (padded cells would see ``t`` otherwise)."""
    split = _split(op)
    users = graph.users(op.result)
    if split is None or len(users) != 1 or users[0].KIND not in LAYERS or users[0].x is not op.result:
        return False
    x, c = split
    layer = users[0]
    vec = _per_channel(c, x.type.shape)
    if vec is None:
        return False
    w = layer.weight.data.astype(np.float64)
    bias = _f64(layer.bias, w.shape[0])
    if layer.KIND == "ann.dense":
        cols = vec
    else:
        cols = vec[_input_channel_map(layer)].reshape(w.shape[:2] + (1,) * (w.ndim - 2))
    if op.KIND == "ann.mul":
        new = _rebuild(layer, w * cols, bias, x=x)
    else:
        if layer.KIND == "ann.conv" and any(layer.pads):
            return False
        shift = (w * cols).reshape(w.shape[0], -1).sum(axis=1)
        new = _rebuild(layer, w, bias + shift, x=x)
    graph.replace(layer, new)
    graph.erase(op)
    _drop_constant_if_unused(graph, op)
    ctx.log.debug("folded %r into the following %r", op, new)
    return True


def _fold_into_previous(op: Op, graph: Graph, ctx: PassContext) -> bool:
    """``conv|dense(x) * s`` → scaled weights and bias; ``conv|dense(x) + t`` → shifted bias
    (``s``, ``t`` per output channel or scalar; the layer has no other user)."""
    split = _split(op)
    if split is None:
        return False
    y, c = split
    layer = y.owner
    if layer is None or layer.KIND not in LAYERS or graph.users(y) != [op]:
        return False
    vec = _per_channel(c, y.type.shape)
    if vec is None:
        return False
    w = layer.weight.data.astype(np.float64)
    bias = _f64(layer.bias, w.shape[0])
    if op.KIND == "ann.mul":
        new = _rebuild(layer, w * vec.reshape((-1,) + (1,) * (w.ndim - 1)), bias * vec)
    else:
        new = _rebuild(layer, w, bias + vec)
    graph.replace(layer, new)
    new.result.name = op.result.name
    graph.replace(op, new.result)
    _drop_constant_if_unused(graph, op)
    ctx.log.debug("folded %r into the preceding %r", op, new)
    return True


PATTERNS = (
    Pattern("affine-folded-into-next", "ann.mul", _fold_into_next),
    Pattern("affine-folded-into-next", "ann.add", _fold_into_next),
    Pattern("affine-folded-into-previous", "ann.mul", _fold_into_previous),
    Pattern("affine-folded-into-previous", "ann.add", _fold_into_previous),
    Pattern("convs-composed", "ann.conv", _compose_convs),
    Pattern("pools-folded-into-conv", "ann.avgpool", _fold_pool_into_conv),
)


@register_pass("fold-affine")
class FoldAffine(PatternPass):
    """Fold ``ann.mul``/``ann.add`` by a scalar or per-channel ``ann.constant`` into the
    conv or dense it feeds (a mul always; an add only when that conv has no padding) or
    that feeds it (when the layer has no other user); a pointwise (1×1, unit strides, no pads)
    conv into the single-use conv it reads, and a tiling average pool into the single-use,
    undilated conv it reads.  Requires: ann graph.  Ensures: outputs unchanged up to float
    rounding; such adds and muls next to single-use layers are gone, and no pointwise conv or
    tiling average pool reads a single-use conv."""

    PATTERNS = PATTERNS

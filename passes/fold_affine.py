"""fold-affine: fold multiplications and additions by constants into neighbouring conv/dense.

Frontends turn ``(x - mean) / std`` input normalisation and the separate bias adds that
exporters write (CNTK's ``Conv`` + ``Add``, ``MatMul`` + ``Add``) into ``ann.mul``/``ann.add``
by an ``ann.constant``.  These patterns absorb them into a conv's or dense's weights and bias
whenever that is exact.
"""

from __future__ import annotations

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
        if v.owner is not None and v.owner.KIND == "ann.constant" and v.owner in graph.ops and not graph.users(v):
            graph.erase(v.owner)


def _input_channel_map(layer: Op) -> np.ndarray:
    """For a conv weight ``[O, I/g, k...]``: the input channel each ``[o, i]`` reads."""
    out, per_group = layer.weight.shape[:2]
    group = np.arange(out) // (out // layer.groups)
    return group[:, None] * per_group + np.arange(per_group)[None, :]


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
)


@register_pass("fold-affine")
class FoldAffine(PatternPass):
    """Fold ``ann.mul``/``ann.add`` by a scalar or per-channel ``ann.constant`` into the
    conv or dense it feeds (a mul always; an add only when that conv has no padding) or
    that feeds it (when the layer has no other user).  Requires: ann graph.  Ensures: outputs
    unchanged up to float rounding; such adds and muls next to single-use layers are gone."""

    PATTERNS = PATTERNS

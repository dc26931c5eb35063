"""Rewrites over channels that give convert-to-spiking an exact form of what the ANN computes.

A spiking network holds a value either as the spikes of neurons (never negative) or as the
input current of the neurons that read it (a linear value, read once).  Four ANN patterns of
the ONNX light zoo fit neither as written; each rewrite below turns one into an equal graph
that does (docs/passes.md, "Channel rewrites"):

* ``batchnorm-to-conv`` — a batch normalisation that cannot fold into a conv or dense before
  it (its producer is a pool, a concatenation, or a layer with other users) is a per-channel
  affine map: a depthwise 1×1 convolution with weight ``γ/√(σ²+ε)`` and bias ``β − μ·γ/√(σ²+ε)``.
* ``fold-channel-shuffle`` — a chain of reshapes and transposes that only permutes channels
  (ShuffleNet's channel shuffle: reshape to ``[g, C/g, …]``, transpose, reshape back) folds into
  the conv or dense that produces its input (through ReLUs: a permutation commutes with them),
  whose output channels it reorders, or else into the convs and dense layers that read it, whose
  input channels it reorders.  Grouped convolutions keep as many groups as the permutation
  allows (a shuffle across groups leaves one: the weights gain zeros, the values do not change).
* ``split-concat`` — a ReLU of a concatenation is the concatenation of its parts' ReLUs, and a
  per-channel affine map (depthwise 1×1 convolution, batch normalisation) of a channel
  concatenation the concatenation of the maps of its parts (DenseNet's batch norm → ReLU read
  by every later layer of a block); each reader gets its own parts, the original concatenation
  stays for its other readers.
* ``split-sign`` — a linear conv or dense whose value several convs or dense layers read (no
  ReLU between; DenseNet after the above: each later layer reads its own affine map of one
  convolution) becomes two populations, ``p = relu(y)`` and ``n = relu(−y)``, and each reader
  ``B(y)`` becomes ``B(p) + B⁻(n)`` (``B⁻``: B's weights negated, no bias).  Exact because
  ``y = relu(y) − relu(−y)`` and B is linear (its zero padding pads both alike).  Copying the
  producer into each reader instead would also be exact but costs its whole fan-in once per
  reader (docs/passes.md).
"""

from __future__ import annotations

from nmc.ir.ann import Add, Concat, Conv, Relu
from nmc.ir.core import Blob, Graph, Op, Value
from nmc.lazy import lazy_import
from nmc.passes.fold_affine import _is_pointwise, _per_channel, _split, regrouped, ungrouped
from nmc.passmanager import PassContext, register_pass
from nmc.rewrite import Pattern, PatternPass

np = lazy_import("numpy")

LAYERS = ("ann.conv", "ann.dense")

# ---------------------------------------------------------------------- batchnorm-to-conv


def _bn_affine(bn: Op) -> tuple[np.ndarray, np.ndarray]:
    f64 = lambda b: b.data.astype(np.float64)  # noqa: E731
    gain = f64(bn.scale) / np.sqrt(f64(bn.var) + bn.epsilon)
    return gain, f64(bn.bias) - f64(bn.mean) * gain


def _depthwise(x: Value, gain: np.ndarray, shift: np.ndarray, dtype, loc, name: str | None = None) -> Conv:
    """The per-channel affine map ``gain·x + shift`` of ``[C, H, W]`` values as a depthwise 1×1 conv."""
    c = len(gain)
    return Conv(x=x, weight=Blob(gain.reshape(c, 1, 1, 1).astype(dtype), f"{name}.weight" if name else None),
                bias=Blob(shift.astype(dtype), f"{name}.bias" if name else None), groups=c, loc=loc)


def _batchnorm_to_conv(bn: Op, graph: Graph, ctx: PassContext) -> bool:
    producer = bn.x.owner
    if len(bn.x.type.shape) != 3 or (producer is not None and producer.KIND in LAYERS
                                     and graph.users(bn.x) == [bn]):
        return False  # fold-batchnorm's case (or not an image)
    gain, shift = _bn_affine(bn)
    graph.replace(bn, _depthwise(bn.x, gain, shift, bn.scale.data.dtype, bn.loc, bn.result.name))
    return True


BATCHNORM_TO_CONV = Pattern("batchnorms-to-conv", "ann.batchnorm", _batchnorm_to_conv)


@register_pass("batchnorm-to-conv")
class BatchNormToConv(PatternPass):
    """Turn each batchnorm on ``[C, H, W]`` values that fold-batchnorm cannot fold (its producer
    is not a conv or dense, or has other users) into the depthwise 1×1 conv that computes it.
    Requires: ann graph.  Ensures: no such batchnorm; outputs unchanged up to float rounding."""

    PATTERNS = (BATCHNORM_TO_CONV,)


# ------------------------------------------------------------------- fold-channel-shuffle

RESHAPES = ("ann.reshape", "ann.flatten")


def _chain_permutation(x: Value, chain: list[Op]) -> np.ndarray | None:
    """The channel (axis 0) permutation ``p`` with ``y[c] = x[p[c]]`` that the reshapes and
    transposes of ``chain`` compute from ``x``; None if they do anything else."""
    shape = tuple(x.type.shape)
    idx = np.arange(int(np.prod(shape))).reshape(shape)
    for op in chain:
        idx = idx.transpose(op.perm) if op.KIND == "ann.transpose" else idx.reshape(op.result.type.shape)
    if tuple(idx.shape) != shape:
        return None
    rows = idx.reshape(shape[0], -1)
    per = rows.shape[1]
    perm = rows[:, 0] // per
    if not np.array_equal(rows, perm[:, None] * per + np.arange(per)[None, :]):
        return None
    return perm


def _groups_kept(old_group: np.ndarray, position: np.ndarray, groups: int) -> int:
    """The most groups ``g' | groups`` a grouped layer keeps when the channel in ``old_group[i]``
    (of ``groups``) moves to ``position[i]`` of ``n`` (each new block of ``n/g'`` must hold only
    channels of one block of ``g'`` old groups)."""
    n = len(position)
    for g in sorted((d for d in range(1, groups + 1) if groups % d == 0), reverse=True):
        if np.array_equal(old_group // (groups // g), position // (n // g)):
            return g
    return 1


def _permuted_outputs(layer: Op, perm: np.ndarray) -> Op:
    """``layer`` whose output channel ``j`` is its old channel ``perm[j]``."""
    w = layer.weight.data
    bias = None if layer.bias is None else Blob(layer.bias.data[perm], layer.bias.name)
    if layer.KIND == "ann.dense":
        return layer.with_changes(weight=Blob(w[perm], layer.weight.name), bias=bias)
    g = layer.groups
    kept = _groups_kept(perm // (w.shape[0] // g), np.arange(w.shape[0]), g)
    return layer.with_changes(weight=Blob(regrouped(ungrouped(w, g)[perm], kept), layer.weight.name),
                              bias=bias, groups=kept)


def _permuted_inputs(layer: Op, perm: np.ndarray, x: Value) -> Op:
    """``layer`` reading ``x`` where it read ``y`` with ``y[c] = x[perm[c]]``."""
    w = layer.weight.data
    if layer.KIND == "ann.dense":
        cols = np.zeros_like(w)
        cols[:, perm] = w
        return layer.with_changes(x=x, weight=Blob(cols, layer.weight.name))
    g = layer.groups
    full = ungrouped(w, g)
    moved = np.zeros_like(full)
    moved[:, perm] = full
    inputs = full.shape[1]
    kept = _groups_kept(np.arange(inputs) // (inputs // g), perm, g)
    return layer.with_changes(x=x, weight=Blob(regrouped(moved, kept), layer.weight.name), groups=kept)


def _fold_channel_shuffle(op: Op, graph: Graph, ctx: PassContext) -> bool:
    """Root: a transpose.  The longest chain of single-use reshapes, flattens and transposes
    around it that maps ``x`` to ``y`` of the same shape by a channel permutation folds into
    ``x``'s producer (a single-use conv or dense, through single-use ReLUs and clips) or else
    into ``y``'s readers (all convs or dense layers reading it)."""
    chain = [op]
    while chain[0].x.owner is not None and chain[0].x.owner.KIND in RESHAPES + ("ann.transpose",) \
            and graph.users(chain[0].x) == [chain[0]]:
        chain.insert(0, chain[0].x.owner)
    while True:
        users = graph.users(chain[-1].result)
        if len(users) != 1 or users[0].KIND not in RESHAPES + ("ann.transpose",):
            break
        chain.append(users[0])
    x, y = chain[0].x, chain[-1].result
    if len(x.type.shape) < 1 or tuple(x.type.shape) != tuple(y.type.shape):
        return False
    perm = _chain_permutation(x, chain)
    if perm is None:
        return False
    if not _fold_into_producer(graph, x, chain, perm) and not _fold_into_readers(graph, y, x, perm):
        return False
    for o in reversed(chain):
        graph.erase(o)
    ctx.remark(f"channel shuffle %{y.name} folded ({len(chain)} reshapes and transposes)")
    return True


def _fold_into_producer(graph: Graph, x: Value, chain: list[Op], perm: np.ndarray) -> bool:
    v, reader = x, chain[0]
    while graph.users(v) == [reader] and v.owner is not None and v.owner.KIND in ("ann.relu", "ann.clip"):
        v, reader = v.owner.x, v.owner
    layer = v.owner
    if layer is None or layer.KIND not in LAYERS or graph.users(v) != [reader]:
        return False
    graph.replace(layer, _permuted_outputs(layer, perm))
    graph.replace_all_uses(chain[-1].result, x)
    return True


def _fold_into_readers(graph: Graph, y: Value, x: Value, perm: np.ndarray) -> bool:
    readers = graph.users(y)
    if not readers or any(r.KIND not in LAYERS or r.x is not y for r in readers):
        return False
    for r in readers:
        graph.replace(r, _permuted_inputs(r, perm, x))
    return True


FOLD_CHANNEL_SHUFFLE = Pattern("channel-shuffles-folded", "ann.transpose", _fold_channel_shuffle)


@register_pass("fold-channel-shuffle")
class FoldChannelShuffle(PatternPass):
    """Fold each chain of reshapes and transposes that permutes channels (a channel shuffle)
    into the single-use conv or dense producing its input (through ReLUs and clips), or else
    into the convs and dense layers reading it.  Requires: ann graph.  Ensures: those chains
    are gone (others stay, and convert-to-spiking refuses their transposes); outputs unchanged
    bit for bit (weights only move); a grouped conv keeps the most groups the permutation allows."""

    PATTERNS = (FOLD_CHANNEL_SHUFFLE,)


# ---------------------------------------------------------------------------- split-concat


def _channel_affine(op: Op) -> tuple[np.ndarray, np.ndarray] | None:
    """(gain, shift) per channel of a batchnorm or a depthwise pointwise conv; else None."""
    if op.KIND == "ann.batchnorm":
        return _bn_affine(op)
    if op.KIND == "ann.conv" and _is_pointwise(op) and op.groups == op.weight.shape[0] == op.x.type.shape[0]:
        gain = op.weight.data.astype(np.float64).reshape(-1)
        return gain, np.zeros(len(gain)) if op.bias is None else op.bias.data.astype(np.float64)
    return None


def _folds_next(graph: Graph, op: Op) -> bool:
    """``op``'s only user is a mul or add by a per-channel constant, which fold-affine folds
    into it first (pushed into the parts, it would have to follow)."""
    users = graph.users(op.result)
    if len(users) != 1 or users[0].KIND not in ("ann.mul", "ann.add"):
        return False
    split = _split(users[0])
    return split is not None and _per_channel(split[1], tuple(op.result.type.shape)) is not None


def _leaves(cat: Op) -> list[Value]:
    """The parts of a concatenation, those that are concatenations along the same axis expanded."""
    out = []
    for p in cat.inputs:
        inner = p.owner
        out.extend(_leaves(inner) if inner is not None and inner.KIND == "ann.concat" and inner.axis == cat.axis
                   else [p])
    return out


def _affine_into_concat(op: Op, graph: Graph, ctx: PassContext) -> bool:
    cat = op.x.owner
    affine = _channel_affine(op)
    if (affine is None or cat is None or cat.KIND != "ann.concat" or cat.axis != 0
            or len(op.x.type.shape) != 3 or _folds_next(graph, op)):
        return False
    gain, shift = affine
    dtype = (op.scale if op.KIND == "ann.batchnorm" else op.weight).data.dtype
    parts, start = [], 0
    for p in _leaves(cat):
        n = p.type.shape[0]
        part = _depthwise(p, gain[start:start + n], shift[start:start + n], dtype, op.loc)
        graph.insert_before(op, part)
        parts.append(part.result)
        start += n
    graph.replace(op, Concat(inputs=parts, axis=0, loc=op.loc))
    return True


def _relu_into_concat(op: Op, graph: Graph, ctx: PassContext) -> bool:
    cat = op.x.owner
    if cat is None or cat.KIND != "ann.concat" or graph.users(op.x) != [op]:
        return False
    parts = []
    for p in _leaves(cat):
        if op.KIND == "ann.relu" and p.owner is not None and p.owner.KIND == "ann.relu":
            parts.append(p)  # relu(relu(p)) = relu(p)
            continue
        part = op.with_changes(x=p)
        part.result.name = None
        graph.insert_before(op, part)
        parts.append(part.result)
    graph.replace(op, Concat(inputs=parts, axis=cat.axis, loc=op.loc))
    return True


SPLIT_CONCAT = (
    Pattern("relus-into-concat", "ann.relu", _relu_into_concat),
    Pattern("relus-into-concat", "ann.clip", _relu_into_concat),
    Pattern("affines-into-concat", "ann.batchnorm", _affine_into_concat),
    Pattern("affines-into-concat", "ann.conv", _affine_into_concat),
)


@register_pass("split-concat")
class SplitConcat(PatternPass):
    """Push ReLUs and clips of a single-use concatenation into its parts, and per-channel affine
    maps (batchnorm, depthwise 1×1 conv) of a channel concatenation of ``[C, H, W]`` values into
    per-part depthwise 1×1 convs (the concatenation stays for its other users).  Requires: ann
    graph.  Ensures: no ReLU or clip reads a single-use concatenation, no such affine map reads
    a channel concatenation (unless a per-channel mul or add follows it, which fold-affine folds
    first); outputs unchanged up to float rounding."""

    PATTERNS = SPLIT_CONCAT


# ------------------------------------------------------------------------------ split-sign


def _split_sign(op: Op, graph: Graph, ctx: PassContext) -> bool:
    weights = [op.weight.data] + ([op.bias.data] if op.bias is not None else [])
    if all(np.all(w >= 0) for w in weights):
        return False  # never negative on spikes: convert-to-spiking makes it neurons as it is
    readers = graph.users(op.result)
    if len(readers) < 2 or any(r.KIND not in LAYERS or r.x is not op.result for r in readers):
        return False
    name = op.result.name
    neg = op.with_changes(weight=Blob(-op.weight.data, None),
                          bias=None if op.bias is None else Blob(-op.bias.data, None))
    neg.result.name = f"{name}.neg" if name else None
    pos = Relu(x=op.result, loc=op.loc)
    pos.result.name = f"{name}.pos" if name else None
    negr = Relu(x=neg.result, loc=op.loc)
    negr.result.name = f"{name}.negpos" if name else None
    graph.insert_after(op, negr)
    graph.insert_after(op, neg)
    graph.insert_after(op, pos)
    for r in readers:
        a = r.with_changes(x=pos.result)
        b = r.with_changes(x=negr.result, weight=Blob(-r.weight.data, None), bias=None)
        a.result.name = b.result.name = None
        graph.insert_before(r, a)
        graph.insert_before(r, b)
        graph.replace(r, Add(a=a.result, b=b.result, loc=r.loc))
    ctx.remark(f"%{name}, read by {len(readers)} linear layers, split into relu(y) and relu(-y)")
    return True


SPLIT_SIGN = (Pattern("signs-split", "ann.conv", _split_sign), Pattern("signs-split", "ann.dense", _split_sign))


@register_pass("split-sign")
class SplitSign(PatternPass):
    """Split each conv or dense ``y`` that has a negative weight or bias and is read by two or
    more convs or dense layers (and nothing else) into ``relu(y)`` and ``relu(−y)``; each reader
    ``B(y)`` becomes ``B(relu(y)) + B⁻(relu(−y))``.  Requires: ann graph.  Ensures: no such
    value; outputs unchanged up to float rounding."""

    PATTERNS = SPLIT_SIGN


CHANNEL_PATTERNS = (BATCHNORM_TO_CONV, FOLD_CHANNEL_SHUFFLE, *SPLIT_CONCAT, *SPLIT_SIGN)

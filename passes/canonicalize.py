"""Canonicalisation: rewrites that simplify an ``ann`` graph without changing what it computes.

Each pass is a table of local patterns (:mod:`nmc.rewrite`) or a graph sweep; ``canonicalize``
runs all of them to a fixed point.  Statistics count the firings of each pattern.
"""

from __future__ import annotations

from nmc.ir.ann import Constant
from nmc.ir.core import Blob, Graph, Op
from nmc.lazy import lazy_import
from nmc.passes.channels import CHANNEL_PATTERNS
from nmc.passes.fold_affine import PATTERNS as FOLD_AFFINE
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.rewrite import Pattern, PatternPass, apply_patterns

np = lazy_import("numpy")

# ------------------------------------------------------------------------- fold-batchnorm


def _fold_batchnorm(bn: Op, graph: Graph, ctx: PassContext) -> bool:
    """``batchnorm(conv|dense(x))`` → ``conv|dense(x)`` with scaled weights and shifted bias,
    when the batchnorm is the producer's only user."""
    producer = bn.x.owner
    if producer is None or producer.KIND not in ("ann.conv", "ann.dense") or graph.users(bn.x) != [bn]:
        return False
    f64 = lambda b: b.data.astype(np.float64)  # noqa: E731
    gain = f64(bn.scale) / np.sqrt(f64(bn.var) + bn.epsilon)
    w = producer.weight.data
    weight = f64(producer.weight) * gain.reshape((-1,) + (1,) * (w.ndim - 1))
    bias = f64(producer.bias) if producer.bias is not None else np.zeros(w.shape[0])
    bias = (bias - f64(bn.mean)) * gain + f64(bn.bias)
    folded = producer.with_changes(
        weight=Blob(weight.astype(w.dtype), producer.weight.name),
        bias=Blob(bias.astype(w.dtype), producer.bias.name if producer.bias is not None else None),
    )
    graph.replace(producer, folded)
    folded.result.name = bn.result.name  # the value users see keeps its name
    graph.replace(bn, folded.result)
    ctx.log.debug("folded %r into %r", bn, folded)
    return True


FOLD_BATCHNORM = Pattern("batchnorms-folded", "ann.batchnorm", _fold_batchnorm)


@register_pass("fold-batchnorm")
class FoldBatchNorm(PatternPass):
    """Fold each inference batchnorm into the conv or dense that feeds it (when that producer
    has no other user).  Ensures: no batchnorm directly after a single-use conv or dense;
    outputs unchanged up to float rounding."""

    PATTERNS = (FOLD_BATCHNORM,)


# --------------------------------------------------------------- drop-dropout, drop-identity


def _forward_operand(op: Op, graph: Graph, ctx: PassContext) -> bool:
    graph.replace(op, op.x)
    return True


DROP_DROPOUT = Pattern("dropouts-removed", "ann.dropout", _forward_operand)
DROP_IDENTITY = Pattern("identities-removed", "ann.identity", _forward_operand)


@register_pass("drop-dropout")
class DropDropout(PatternPass):
    """Remove inference dropouts (the identity).  Ensures: no ``ann.dropout``."""

    PATTERNS = (DROP_DROPOUT,)


@register_pass("drop-identity")
class DropIdentity(PatternPass):
    """Remove identities.  Ensures: no ``ann.identity``."""

    PATTERNS = (DROP_IDENTITY,)


# -------------------------------------------------------------------------- fold-constants


def _fold_constant(op: Op, graph: Graph, ctx: PassContext) -> bool:
    """Replace an ``ann`` op whose operands are all constants by the constant it computes;
    operand constants left without users go too."""
    operands = op.operands
    if op.dialect != "ann" or op.result is None or not operands or op.KIND == "ann.constant":
        return False
    if not all(v.owner is not None and v.owner.KIND == "ann.constant" for v in operands):
        return False
    from nmc import semantics  # imported when a constant folds (dce alone does not need it)

    value = semantics.eval_op(op, [v.owner.value.data[None] for v in operands], batch=1)[0]
    folded = Constant(value=Blob(value), loc=op.loc)
    graph.replace(op, folded)
    for v in dict.fromkeys(operands):
        if not graph.users(v):
            graph.erase(v.owner)
    ctx.log.debug("folded %r to a constant", op)
    return True


FOLD_CONSTANTS = Pattern("ops-folded", "*", _fold_constant)


@register_pass("fold-constants")
class FoldConstants(PatternPass):
    """Evaluate every ``ann`` op whose operands are all ``ann.constant`` (through the reference
    semantics) and replace it by the constant result.  Ensures: no ann op with only constant
    operands; outputs unchanged bit for bit."""

    PATTERNS = (FOLD_CONSTANTS,)


# -------------------------------------------------------------------- strip-output-softmax


def _only_reaches_outputs(graph: Graph, v) -> bool:
    """``v`` feeds graph outputs only, directly or through reshapes and flattens (which keep
    the flat order, so the arg-max)."""
    users = graph.users(v)
    return bool(users) and all(u.KIND == "ann.output" or (u.KIND in ("ann.reshape", "ann.flatten")
                                                          and _only_reaches_outputs(graph, u.result)) for u in users)


def _strip_output_softmax(op: Op, graph: Graph, ctx: PassContext) -> bool:
    """A softmax over a whole sample that only feeds graph outputs (perhaps reshaped) does
    not change the argmax."""
    t = op.x.type
    whole_sample = t.shape[op.axis] == t.size
    if not whole_sample or not _only_reaches_outputs(graph, op.result):
        return False
    name = op.result.name
    graph.replace(op, op.x)
    stripped = list(graph.meta.get("stripped_output_softmax", []))
    graph.meta["stripped_output_softmax"] = stripped + [name or "?"]
    ctx.remark(f"removed the output {op.KIND} %{name}: outputs are now its logits (same argmax)")
    return True


STRIP_OUTPUT_SOFTMAX = Pattern("softmaxes-stripped", "ann.softmax", _strip_output_softmax)
STRIP_OUTPUT_LOG_SOFTMAX = Pattern("softmaxes-stripped", "ann.log_softmax", _strip_output_softmax)


@register_pass("strip-output-softmax")
class StripOutputSoftmax(PatternPass):
    """Remove a softmax or log-softmax over the whole sample whose only users are graph
    outputs, directly or through reshapes and flattens (opset < 13 exporters wrap a softmax
    over channels in a flatten and a reshape back): a spiking network cannot compute it, and it does not change the predicted class.
    Records the removed values in ``meta.stripped_output_softmax`` and as a remark.
    Ensures: outputs are the logits; their argmax is unchanged."""

    PATTERNS = (STRIP_OUTPUT_SOFTMAX, STRIP_OUTPUT_LOG_SOFTMAX)


# ------------------------------------------------------------------------------------ dce


def dead_ops(graph: Graph) -> list[Op]:
    """Ops that no graph output depends on (graph inputs are the interface and stay)."""
    producers = {id(op.result): op for op in graph.ops if op.result is not None}
    live: set[int] = set()
    stack = graph.walk("ann.output")
    while stack:  # every op an output depends on, through any operand
        op = stack.pop()
        if id(op) not in live:
            live.add(id(op))
            stack.extend(producers[id(v)] for v in op.operands if id(v) in producers)
    return [op for op in graph.ops if id(op) not in live and op.KIND != "ann.input"]


@register_pass("dce")
class DeadCodeElimination(Pass):
    """Remove every op no graph output depends on (including unused recurrent loops).
    Graph inputs stay, so the graph's signature never changes.  Ensures: every op except
    inputs is an ancestor of ``ann.output``."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        dead = dead_ops(graph)
        dead_ids = {id(op) for op in dead}
        graph.ops = [op for op in graph.ops if id(op) not in dead_ids]
        if dead:
            ctx.stat("ops-removed", len(dead))
        return bool(dead)


# ---------------------------------------------------------------------------- canonicalize


@register_pass("canonicalize")
class Canonicalize(Pass):
    """All canonicalisation patterns (fold-batchnorm, drop-dropout, drop-identity,
    fold-constants, strip-output-softmax, fold-affine, and the channel rewrites
    batchnorm-to-conv, fold-channel-shuffle, split-concat, split-sign), then dce, repeated until
    nothing changes."""

    PATTERNS = (FOLD_BATCHNORM, DROP_DROPOUT, DROP_IDENTITY, FOLD_CONSTANTS,
                STRIP_OUTPUT_SOFTMAX, STRIP_OUTPUT_LOG_SOFTMAX, *FOLD_AFFINE, *CHANNEL_PATTERNS)

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        changed = False
        while True:
            step = apply_patterns(graph, self.PATTERNS, ctx)
            step |= DeadCodeElimination().run(graph, ctx)
            if not step:
                return changed
            changed = True

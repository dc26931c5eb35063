"""ANN networks in ``.nmd``: statements, layer chains, ``block`` expansion, and the layer
builders (:data:`ANN_LAYERS`) that infer shapes layer to layer and emit ``ann.*`` ops."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

import lark
import numpy as np

from nmc.diagnostics import Loc, NmcError
from nmc.frontends.nmd.values import Arg, Bound, LayerSpec, Scope, Sym, show, window
from nmc.ir import ann
from nmc.ir.core import Graph, Splat, Value
from nmc.ir.types import TensorType

if TYPE_CHECKING:
    from nmc.frontends.nmd.builder import Builder


# ----------------------------------------------------------------------------- the program


def build_ann(b: Builder, body: list[lark.Tree]) -> Graph:
    scope = Scope({}, {})
    outputs = None
    for s in body:
        if s.data == "input":
            name_tok, shape_node, encode = s.children
            if encode is not None:
                raise b.err(encode, "'encode' applies to spiking networks (written with pop and connect)",
                            hint="an ANN takes its input as a tensor")
            b.define(scope, name_tok, b.add(ann.Input, s, str(name_tok), declared_type=TensorType(b.shape(shape_node, scope))))
        elif s.data == "let":
            b.let(s, scope)
        elif s.data == "assign":
            name_tok, chain = s.children
            b.define(scope, name_tok, _chain(b, chain, scope, str(name_tok)))
        elif s.data == "chain_stmt":
            raise b.err(s, "the result of this chain is not used; name it: NAME = ...")
        elif s.data == "output":
            if outputs is not None:
                raise b.err(s, "a second 'output' statement", hint="list every output in one: output a, b")
            outputs = s
        else:
            raise b.err(s, f"'{s.data}' is not allowed here")
    if outputs is None:
        raise NmcError("the network has no 'output' statement", Loc(b.src.filename),
                       hint="end the file with: output NAME")
    values = []
    for item in outputs.children:
        name_tok, decode = item.children
        if decode is not None:
            raise b.err(decode, "'decode' applies to spiking networks (written with pop and connect)")
        values.append(b.lookup(scope, name_tok))
    b.add(ann.Output, outputs, None, values=values)
    return b.graph


def _chain(b: Builder, chain: lark.Tree, scope: Scope, target: str | None) -> Value:
    """Apply a chain's layers in turn; the last op created gets the name ``target``."""
    layers = [c for c in chain.children if c is not None]
    prefix = scope.prefix + target if target else scope.prefix.rstrip(".")
    first = layers[0]
    start = len(b.graph.ops)
    if first.data == "bare" and str(first.children[0]) not in MULTI_INPUT:
        x = b.lookup(scope, first.children[0])
    else:
        x = _layer(b, None, first, scope, prefix)
    for node in layers[1:]:
        x = _layer(b, x, node, scope, prefix)
    if target is not None and len(b.graph.ops) > start and x.owner is b.graph.ops[-1]:
        x.name = scope.prefix + target
    return x


def _layer(b: Builder, x: Value | None, node: lark.Tree, scope: Scope, prefix: str) -> Value:
    name = str(node.children[0])
    if name in b.blocks:
        return _instantiate(b, x, node, scope, prefix)
    args = b.bind(node, scope, ANN_LAYERS, "layer")
    if x is None and name not in MULTI_INPUT:
        raise b.err(node, f"{name} needs an input: x -> {name}(...)")
    if x is not None and not isinstance(x.type, TensorType):
        raise b.err(node, f"{name} needs a tensor input, got {x.type}")
    return ANN_LAYERS[name].fn(b, x, args, scope, f"{prefix}.{name}" if prefix else name)


def _instantiate(b: Builder, x: Value | None, node: lark.Tree, scope: Scope, prefix: str) -> Value:
    """Expand a block: its parameters become constants, ``in`` is the input value."""
    block = b.blocks[str(node.children[0])]
    name = str(block.children[0])
    params = [p for p in block.children[1:] if isinstance(p, lark.Tree) and p.data == "param"]
    stmts = [s for s in block.children[1:] if isinstance(s, lark.Tree) and s.data != "param"]
    if x is None:
        raise b.err(node, f"block {name} needs an input: x -> {name}(...)")
    if b.depth > 32:
        raise b.err(node, f"block {name} expands itself without end", hint="a block may not use itself")
    spec = LayerSpec(tuple(str(p.children[0]) for p in params), None)
    args = b.bind(node, scope, {name: spec}, "block")
    consts = {}
    for p in params:
        pname, default = str(p.children[0]), p.children[1]
        if args.has(pname):
            consts[pname] = args.raw(pname)
        elif default is not None:
            consts[pname] = b.eval(default, Scope(consts, {}))
        else:
            raise b.err(node, f"block {name} needs argument '{pname}'",
                        hint=f"it takes: {', '.join(spec.params)}")
    base = f"{prefix}.{name}" if prefix else name
    uses = b.instances[base] = b.instances.get(base, -1) + 1
    inner = Scope(consts, {"in": x}, (f"{base}_{uses}" if uses else base) + ".")
    b.depth += 1
    try:
        result = x
        for s in stmts:
            if s.data == "let":
                b.let(s, inner)
            elif s.data == "assign":
                name_tok, chain = s.children
                result = _chain(b, chain, inner, str(name_tok))
                b.define(inner, name_tok, result)
            elif s.data == "chain_stmt":
                result = _chain(b, s.children[0], inner, None)
            else:
                raise b.err(s, f"'{s.data}' is not allowed inside a block",
                            hint="a block holds let statements and layer chains")
    except NmcError as err:
        err.notes.append(f"in block '{name}' used at {b.loc(node)}")
        raise
    finally:
        b.depth -= 1
    return result


# ----------------------------------------------------------------------------- layers


def _need_rank(b: Builder, args: Bound, x: Value, ranks: tuple[int, ...], hint: str | None = None) -> TensorType:
    t = x.type
    if t.rank not in ranks:
        want = " or ".join(f"rank {r}" for r in ranks)
        raise b.err(args.node, f"{args.what} needs a {want} input per sample, got {list(t.shape)}", hint=hint)
    return t



def _dense(b: Builder, x, args: Bound, scope, name):
    t = _need_rank(b, args, x, (1,), hint="insert flatten before dense")
    fan_in = t.shape[0]
    units = args.size("units") if args.has("units") else None
    if units is None:
        if not isinstance(args.raw("weight"), str):
            raise b.err(args.node, "dense needs the number of units: dense(10)")
        w = b.blob(args, "weight", None)
        if w.data.ndim != 2:
            raise b.err(args.node_of("weight"), f"'weight' of dense must be [units, {fan_in}], got {list(w.shape)}")
        units = w.shape[0]
    shape = (units, fan_in)
    ctx = f"dense({units}) on an input of {list(t.shape)}"
    w = b.blob(args, "weight", shape, b.default_init(fan_in) if not args.has("weight") else None, context=ctx)
    bias = b.blob(args, "bias", (units,), context=ctx)
    return b.add(ann.Dense, args.node, name, x=x, weight=w, bias=bias)


def _conv(b: Builder, x, args: Bound, scope, name):
    t = _need_rank(b, args, x, (2, 3))
    n = t.rank - 1
    channels = args.size("channels") if args.has("channels") else None
    file_w = b.blob(args, "weight", None) if isinstance(args.raw("weight"), str) else None
    if channels is None:
        if file_w is None:
            raise b.err(args.node, "conv needs the number of output channels: conv(16, kernel = 3)")
        if file_w.data.ndim != n + 2:
            raise b.err(args.node_of("weight"), f"'weight' of conv must be [channels, {t.shape[0]}/groups, kernel...], got {list(file_w.shape)}")
        channels = file_w.shape[0]
    if args.has("kernel"):
        kernel = args.ints("kernel", n)
    elif file_w is not None and file_w.data.ndim == n + 2:
        kernel = file_w.shape[2:]
    else:
        raise b.err(args.node, "conv needs a 'kernel' size")
    groups = args.number("groups", 1, integer=True)
    if groups < 1 or t.shape[0] % groups:
        raise b.err(args.node_of("groups"), f"groups = {groups} does not divide the {t.shape[0]} input channels")
    dil = args.ints("dilation", n, (1,) * n)
    strides, pads = window(args, n, kernel, dil)
    shape = (channels, t.shape[0] // groups, *kernel)
    ctx = f"conv({channels}, kernel = {list(kernel)}) on an input of {list(t.shape)}"
    fan_in = int(np.prod(shape[1:]))
    w = b.blob(args, "weight", shape, b.default_init(fan_in) if not args.has("weight") else None, context=ctx)
    bias = b.blob(args, "bias", (channels,), context=ctx)
    return b.add(ann.Conv, args.node, name, x=x, weight=w, bias=bias, strides=strides, pads=pads,
                 dilations=dil, groups=groups)


def _pool(cls):
    def build(b: Builder, x, args: Bound, scope, name):
        t = _need_rank(b, args, x, (2, 3))
        n = t.rank - 1
        kernel = args.ints("kernel", n)
        strides, pads = window(args, n, kernel, allow_same=False)
        fields = dict(kernel=kernel, strides=strides, pads=pads, ceil_mode=args.flag("ceil_mode"))
        if cls is ann.AvgPool:
            fields["count_include_pad"] = args.flag("count_include_pad")
        return b.add(cls, args.node, name, x=x, **fields)

    return build


def _batchnorm(b: Builder, x, args: Bound, scope, name):
    t = _need_rank(b, args, x, (1, 2, 3))
    c = (t.shape[0],)
    fields = {}
    for key, default in (("scale", Splat(1.0)), ("bias", Splat(0.0)), ("mean", Splat(0.0)), ("var", Splat(1.0))):
        if args.has("file") and not args.has(key):
            path = args.string("file")
            args.args[key] = Arg(f"{path}:{key}", args.node_of("file"))
        fields[key] = b.blob(args, key, c, default, context=f"batchnorm over {c[0]} channels")
    return b.add(ann.BatchNorm, args.node, name, x=x, epsilon=float(args.number("eps", 1e-5)), **fields)


def _unary(cls, **params):
    def build(b: Builder, x, args: Bound, scope, name):
        fields = {k: args.number(k, d, integer=k == "axis") for k, d in params.items()}
        return b.add(cls, args.node, name, x=x, **{k: v if k == "axis" else float(v) for k, v in fields.items()})

    return build


def _flatten(b: Builder, x, args: Bound, scope, name):
    return b.add(ann.Flatten, args.node, name, x=x)


def _reshape(b: Builder, x, args: Bound, scope, name):
    items = args.raw("shape")
    if len(items) == 1 and isinstance(items[0].value, list):
        items = [Arg(v, items[0].node) for v in items[0].value]
    if not items:
        raise b.err(args.node, "reshape needs the new shape: reshape(16, 7, 7)")
    shape = tuple(b.as_number(item, "a dimension of reshape", True) for item in items)
    if int(np.prod(shape)) != x.type.size or any(d < 1 for d in shape):
        raise b.err(args.node, f"cannot reshape {list(x.type.shape)} ({x.type.size} elements) to {list(shape)}")
    return b.add(ann.Reshape, args.node, name, x=x, shape=shape)


def _inputs(b: Builder, x, args: Bound, scope) -> list[Value]:
    values = [x] if x is not None else []
    for item in args.raw("inputs"):
        if not isinstance(item.value, Sym):
            raise b.err(item.node, f"{args.what} takes values (names), got {show(item.value)}")
        values.append(b.lookup(scope, item.node.children[0]))
    if len(values) < 2:
        raise b.err(args.node, f"{args.what} needs at least two inputs: {args.what}(a, b)")
    return values


def _elementwise(cls):
    def build(b: Builder, x, args: Bound, scope, name):
        values = _inputs(b, x, args, scope)
        acc = values[0]
        for i, v in enumerate(values[1:]):
            a_t, v_t = acc.type.shape, v.type.shape
            try:
                np.broadcast_shapes(a_t, v_t)
            except ValueError:
                raise b.err(args.node, f"{args.what}: shapes {list(a_t)} and {list(v_t)} do not match (nor broadcast)") from None
            last = i == len(values) - 2
            acc = b.add(cls, args.node, name if last else f"{name}.{i}", a=acc, b=v)
        return acc

    return build


def _concat(b: Builder, x, args: Bound, scope, name):
    values = _inputs(b, x, args, scope)
    axis = args.number("axis", 0, integer=True)
    rank = values[0].type.rank
    if not -rank <= axis < rank:
        raise b.err(args.node_of("axis"), f"axis {axis} is out of range for inputs of rank {rank}")
    axis %= rank
    first = values[0].type.shape
    for v in values[1:]:
        s = v.type.shape
        if len(s) != rank or any(s[i] != first[i] for i in range(rank) if i != axis):
            raise b.err(args.node, f"concat along axis {axis}: shapes {list(first)} and {list(s)} differ on another axis")
    return b.add(ann.Concat, args.node, name, inputs=values, axis=axis)

MULTI_INPUT = {"add", "mul", "concat"}

ANN_LAYERS: dict[str, LayerSpec] = {
    "dense": LayerSpec(("units", "weight", "bias"), _dense),
    "conv": LayerSpec(("channels", "kernel", "stride", "pad", "dilation", "groups", "weight", "bias"), _conv),
    "maxpool": LayerSpec(("kernel", "stride", "pad", "ceil_mode"), _pool(ann.MaxPool)),
    "avgpool": LayerSpec(("kernel", "stride", "pad", "ceil_mode", "count_include_pad"), _pool(ann.AvgPool)),
    "global_avgpool": LayerSpec((), lambda b, x, args, scope, name: b.add(ann.GlobalAvgPool, args.node, name, x=x)),
    "batchnorm": LayerSpec(("file", "scale", "bias", "mean", "var", "eps"), _batchnorm),
    "relu": LayerSpec((), _unary(ann.Relu)),
    "sigmoid": LayerSpec((), _unary(ann.Sigmoid)),
    "tanh": LayerSpec((), _unary(ann.Tanh)),
    "clip": LayerSpec(("min", "max"), _unary(ann.Clip, min=-math.inf, max=math.inf)),
    "leaky_relu": LayerSpec(("alpha",), _unary(ann.LeakyRelu, alpha=0.01)),
    "softmax": LayerSpec(("axis",), _unary(ann.Softmax, axis=-1)),
    "log_softmax": LayerSpec(("axis",), _unary(ann.LogSoftmax, axis=-1)),
    "dropout": LayerSpec(("ratio",), _unary(ann.Dropout, ratio=0.5)),
    "identity": LayerSpec((), _unary(ann.Identity)),
    "flatten": LayerSpec((), _flatten),
    "reshape": LayerSpec(("*shape",), _reshape),
    "add": LayerSpec(("*inputs",), _elementwise(ann.Add)),
    "mul": LayerSpec(("*inputs",), _elementwise(ann.Mul)),
    "concat": LayerSpec(("*inputs", "axis"), _concat),
}

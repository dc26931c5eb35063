"""Spiking networks in ``.nmd``: populations (``pop``), projections (``connect``), input
encoders and output decoders, emitted as ``snn.*`` ops; neuron models, projection kinds and
encodings are tables of :class:`~nmc.frontends.nmd.values.LayerSpec`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import lark
import numpy as np

from nmc.diagnostics import Loc, NmcError
from nmc.frontends.nmd.values import Arg, Bound, LayerSpec, Scope, Time, show, suggest, window
from nmc.ir import ann, snn
from nmc.ir.core import Blob, Graph, Op, Value
from nmc.ir.snn import DECAY_ONE
from nmc.ir.types import SpikeType, TensorType

if TYPE_CHECKING:
    from nmc.frontends.nmd.builder import Builder


@dataclass
class _Connect:
    stmt: lark.Tree
    src: str
    dst: str


def build_snn(b: Builder, body: list[lark.Tree]) -> Graph:
    """Inputs (with encoders) first, then populations in declaration order, each preceded by
    the projections from inputs and earlier populations; a projection from the population
    itself or a later one follows its source and closes a loop (a forward reference)."""
    scope = Scope({}, {})
    pops: list[lark.Tree] = []
    index: dict[str, int] = {}  # population name → declaration order
    connects: list[_Connect] = []
    encoders: dict[str, Value] = {}
    outputs = None
    for s in body:
        if s.data == "input":
            name_tok, shape_node, encode = s.children
            b.define(scope, name_tok, b.add(ann.Input, s, str(name_tok),
                                                  declared_type=TensorType(b.shape(shape_node, scope))))
            encoders[str(name_tok)] = _encoder(b, scope.values[str(name_tok)], encode, scope, s)
        elif s.data == "let":
            b.let(s, scope)
        elif s.data == "pop":
            name_tok = s.children[0]
            if str(name_tok) in encoders or str(name_tok) in index:
                raise b.err(name_tok, f"'{name_tok}' is already defined")
            index[str(name_tok)] = len(pops)
            pops.append(s)
        elif s.data == "connect":
            connects.append(_Connect(s, str(s.children[0]), str(s.children[1])))
        elif s.data == "output":
            if outputs is not None:
                raise b.err(s, "a second 'output' statement", hint="list every output in one: output a, b")
            outputs = s
        elif s.data in ("assign", "chain_stmt"):
            raise b.err(s, "layer chains describe ANNs; this file is a spiking network (it has pop or connect)",
                           hint="write a spiking network with pop and connect, an ANN with layer chains, not both")
        else:
            raise b.err(s, f"'{s.data}' is not allowed here")
    into: dict[str, list[_Connect]] = {}  # the connects by destination and by source, in file order
    out_of: dict[str, list[_Connect]] = {}
    for c in connects:
        into.setdefault(c.dst, []).append(c)
        out_of.setdefault(c.src, []).append(c)
        src_tok, dst_tok = c.stmt.children[0], c.stmt.children[1]
        if c.src not in index and c.src not in encoders:
            raise b.err(src_tok, f"unknown source '{c.src}'; a projection starts at an input or a population",
                           hint=suggest(c.src, list(index) + list(encoders)))
        if c.dst not in index:
            what = "an input cannot receive a projection" if c.dst in encoders else f"unknown population '{c.dst}'"
            raise b.err(dst_tok, what, hint=suggest(c.dst, index) if c.dst not in encoders else None)
    # an integer network (any population with bits > 0) has integer weights throughout
    integer = any(b.bind(p.children[2], scope, _MODELS, "neuron model").raw("bits", 0) for p in pops)
    b.weight_dtype = np.int32 if integer else np.float32
    populations: dict[str, Op] = {}
    for i, p in enumerate(pops):
        name_tok, shape_node, model = p.children
        name = str(name_tok)
        shape = b.shape(shape_node, scope) if shape_node is not None else None
        currents = []
        for c in into.get(name, ()):
            if c.src in encoders or index[c.src] < i:
                v = _projection(b, c, encoders.get(c.src) or populations[c.src].result, shape, scope)
                shape = shape or v.type.shape
                currents.append(v)
        if shape is None:
            raise b.err(name_tok, f"the shape of population '{name}' cannot be inferred",
                           hint=f"give it one (pop {name}: [64] ...), or a projection into it from an earlier population or input")
        args = b.bind(model, scope, _MODELS, "neuron model")
        populations[name] = _MODELS[str(model.children[0])].fn(b, args, shape, currents, name)
        for c in out_of.get(name, ()):
            if index[c.dst] <= i:
                target = populations[c.dst]
                target.currents.append(_projection(b, c, populations[name].result, target.result.type.shape, scope))
    if outputs is None:
        raise NmcError("the network has no 'output' statement", Loc(b.src.filename),
                       hint="end the file with: output NAME decode count")
    values = []
    for item in outputs.children:
        name_tok, decode = item.children
        if str(name_tok) not in populations:
            what = "an input cannot be an output" if str(name_tok) in encoders else f"unknown population '{name_tok}'"
            raise b.err(name_tok, what, hint=suggest(str(name_tok), populations))
        mode = "count"
        if decode is not None:
            mode = str(decode)
            if mode not in ("count", "membrane"):
                raise b.err(decode, f"unknown decoding '{mode}'", hint="decodings: count, membrane")
        values.append(b.add(snn.Decode, item, f"{name_tok}.out", x=populations[str(name_tok)].result, mode=mode))
    b.add(ann.Output, outputs, None, values=values)
    return b.graph


def _encoder(b: Builder, x: Value, encode, scope: Scope, stmt) -> Value:
    name = f"{x.name}.enc"
    if encode is None:
        return b.add(snn.Encode, stmt, name, x=x)
    args = b.bind(encode, scope, _ENCODINGS, "encoding")
    fields = {"encoding": args.what}
    if args.has("seed"):
        fields["seed"] = args.number("seed", integer=True)
    if args.has("scale"):
        fields["scale"] = float(args.number("scale"))
    return b.add(snn.Encode, encode, name, x=x, **fields)


def _delay(b: Builder, args: Bound) -> int:
    if not args.has("delay"):
        return 1
    v = args.raw("delay")
    node = args.node_of("delay")
    if isinstance(v, Time):
        if b.dt is None:
            raise b.err(node, f"a delay of {v.text} needs the time step", hint="declare it: network NAME(dt = 1ms)")
        steps = v.seconds / b.dt
        if steps != steps.to_integral_value():
            raise b.err(node, f"a delay of {v.text} is not a whole number of steps of dt = {float(b.dt)} s")
        d = int(steps)
    else:
        d = args.number("delay", integer=True)
    if d < 1:
        raise b.err(node, f"delay must be at least 1 step, got {d}", hint="every projection delays spikes by >= 1 step")
    return d


def _projection(b: Builder, c: _Connect, src: Value, target: tuple[int, ...] | None, scope: Scope) -> Value:
    """Build the projection of ``connect`` from ``src``; its current must fit ``target``."""
    kind_node = c.stmt.children[2]
    args = b.bind(kind_node, scope, _PROJECTIONS, "projection")
    s = src.type
    fields: dict[str, Any] = {"kind": args.what, "delay": _delay(b, args)}
    ctx = f"{args.what} from '{c.src}' {list(s.shape)} into '{c.dst}'"
    if args.what == "dense":
        units = args.size("units") if args.has("units") else (math.prod(target) if target else None)
        if units is None and isinstance(args.raw("weight"), str):
            w = b.blob(args, "weight", None, dtype=b.weight_dtype)
            if w.data.ndim != 2:
                raise b.err(args.node_of("weight"), f"'weight' of dense must be [units, {s.size}], got {list(w.shape)}")
            units = w.shape[0]
        if units is None:
            raise b.err(kind_node, f"the size of '{c.dst}' is unknown", hint=f"give dense the number of units, or '{c.dst}' a shape")
        default = b.default_init(s.size) if not args.has("weight") else None
        fields["weight"] = b.blob(args, "weight", (units, s.size), default, dtype=b.weight_dtype, context=ctx)
    elif args.what == "conv2d":
        if s.rank != 3:
            raise b.err(kind_node, f"conv2d needs a [channels, height, width] source, '{c.src}' is {list(s.shape)}")
        channels = args.size("channels") if args.has("channels") else (target[0] if target and len(target) == 3 else None)
        if channels is None:
            raise b.err(kind_node, "conv2d needs the number of output channels: conv2d(16, kernel = 3)")
        kernel = args.ints("kernel", 2)
        groups = args.number("groups", 1, integer=True)
        if groups < 1 or s.shape[0] % groups:
            raise b.err(args.node_of("groups"), f"groups = {groups} does not divide the {s.shape[0]} source channels")
        dil = args.ints("dilation", 2, (1, 1))
        fields["strides"], fields["pads"] = window(args, 2, kernel, dil)
        fields["dilations"], fields["groups"] = dil, groups
        shape = (channels, s.shape[0] // groups, *kernel)
        default = b.default_init(int(np.prod(shape[1:]))) if not args.has("weight") else None
        fields["weight"] = b.blob(args, "weight", shape, default, dtype=b.weight_dtype, context=ctx)
    elif args.what == "pool":
        if s.rank != 3:
            raise b.err(kind_node, f"pool needs a [channels, height, width] source, '{c.src}' is {list(s.shape)}")
        fields["kernel"] = args.ints("kernel", 2)
        fields["strides"], fields["pads"] = window(args, 2, fields["kernel"], allow_same=False)
        fields["weight"] = _param(b, args, "weight", 1.0, b.weight_dtype)
    elif args.what == "one_to_one":
        fields["weight"] = _param(b, args, "weight", 1.0, b.weight_dtype)
    else:  # sparse
        if target is None:
            raise b.err(kind_node, f"a sparse projection needs the shape of '{c.dst}'", hint=f"give it one: pop {c.dst}: [64] ...")
        if args.has("file"):
            path = args.string("file")
            for key in ("indptr", "indices", "weight"):
                args.args.setdefault(key, Arg(f"{path}:{key}", args.node_of("file")))
        for key in ("indptr", "indices", "weight"):
            if not args.has(key):
                raise b.err(kind_node, f"sparse needs '{key}' (or file = \"conn.npz\" holding indptr, indices, weight)")
        fields["indptr"] = b.blob(args, "indptr", (s.size + 1,), dtype=np.int64, context=f"{ctx}: source size + 1")
        fields["indices"] = b.blob(args, "indices", None, dtype=np.int64)
        fields["weight"] = b.blob(args, "weight", None, dtype=b.weight_dtype)
        fields["shape"] = tuple(target)
    v = b.add(snn.Project, kind_node, f"{c.dst}.from_{c.src}", src=src, **fields)
    if target is not None and v.type.size != math.prod(target):
        raise b.err(kind_node, f"{ctx} delivers current for {list(v.type.shape)} ({v.type.size} neurons), "
                                  f"but '{c.dst}' is {list(target)} ({math.prod(target)} neurons)")
    return v


def _param(b: Builder, args: Bound, key: str, default: float, dtype=np.float32) -> Any:
    """A per-neuron parameter or weight: a number, or an array from a weight source."""
    v = args.raw(key, default)
    if isinstance(v, bool):
        raise b.err(args.node_of(key), f"'{key}' of {args.what} must be a number, got {show(v)}")
    if isinstance(v, int | float):
        if np.issubdtype(dtype, np.integer):
            if not float(v).is_integer():
                raise b.err(args.node_of(key), f"'{key}' of {args.what} must be an integer in an integer network, got {v}")
            return int(v)
        return float(v)
    if isinstance(v, Time):
        raise b.err(args.node_of(key), f"'{key}' of {args.what} is a plain number, not a time ({v.text})")
    return b.blob(args, key, None, dtype=dtype)


def _decay(b: Builder, args: Bound, key: str, integer: bool) -> float | int:
    tau = args.time(key)
    if b.dt is None:
        raise b.err(args.node_of(key), f"'{key}' is a time constant: converting it needs the time step",
                       hint="declare it: network NAME(dt = 1ms)")
    d = DECAY_ONE * (1.0 - math.exp(-float(b.dt) / float(tau)))
    return int(round(d)) if integer else d


def _model(kind: str):
    def build(b: Builder, args: Bound, shape, currents, name):
        bits = args.number("bits", 0, integer=True)
        if bits and not 2 <= bits <= 32:
            raise b.err(args.node_of("bits"), f"bits must be 0 (float) or 2..32, got {bits}")
        fields: dict[str, Any] = {"bits": bits, "reset": args.word("reset", ("subtract", "zero"), "subtract")}
        for key, default in (("threshold", 1.0), ("bias", 0.0), ("v0", 0.0)):
            value = _param(b, args, key, default)
            if isinstance(value, Blob):
                try:
                    ok = np.broadcast_shapes(value.shape, tuple(shape)) == tuple(shape)
                except ValueError:
                    ok = False
                if not ok:
                    raise b.err(args.node_of(key), f"'{key}' of shape {list(value.shape)} does not fit population '{name}' of {list(shape)}")
                if bits:
                    value = Blob(value.data.astype(np.int64), name=value.name)
            elif bits:
                if value != round(value) and not math.isinf(value):
                    raise b.err(args.node_of(key), f"'{key}' must be an integer in an integer (bits = {bits}) population, got {value}")
                value = int(value) if not math.isinf(value) else value
            fields[key] = value
        if kind == "if":
            fields["du"], fields["dv"] = DECAY_ONE, 0
        elif kind == "lif":
            fields["du"], fields["dv"] = DECAY_ONE, _decay(b, args, "tau", bool(bits)) if args.has("tau") else None
            if fields["dv"] is None:
                raise b.err(args.node, "lif needs its membrane time constant: lif(tau = 20ms)")
        else:
            for key, field in (("tau_syn", "du"), ("tau_mem", "dv")):
                if not args.has(key):
                    raise b.err(args.node, f"cuba needs '{key}': cuba(tau_syn = 5ms, tau_mem = 20ms)")
                fields[field] = _decay(b, args, key, bool(bits))
        for k in ("du", "dv"):
            if isinstance(fields[k], float) and fields[k].is_integer():
                fields[k] = int(fields[k])
        v = b.add(snn.Population, args.node, name, currents=list(currents), declared_type=SpikeType(tuple(shape)), **fields)
        return v.owner

    return build


_COMMON = ("threshold", "bias", "v0", "reset", "bits")
_MODELS: dict[str, LayerSpec] = {
    "if": LayerSpec(_COMMON, _model("if")),
    "lif": LayerSpec(("tau",) + _COMMON, _model("lif")),
    "cuba": LayerSpec(("tau_syn", "tau_mem") + _COMMON, _model("cuba")),
}
_PROJECTIONS: dict[str, LayerSpec] = {
    "dense": LayerSpec(("units", "weight", "delay"), None),
    "conv2d": LayerSpec(("channels", "kernel", "stride", "pad", "dilation", "groups", "weight", "delay"), None),
    "pool": LayerSpec(("kernel", "stride", "pad", "weight", "delay"), None),
    "one_to_one": LayerSpec(("weight", "delay"), None),
    "sparse": LayerSpec(("file", "indptr", "indices", "weight", "delay"), None),
}
_ENCODINGS: dict[str, LayerSpec] = {
    "rate": LayerSpec((), None),
    "poisson": LayerSpec(("seed",), None),
    "current": LayerSpec(("scale",), None),
    "spikes": LayerSpec((), None),
}

"""Per-operator converters of the ONNX frontend: ONNX nodes (batched) → ``ann`` ops (per sample).

Each converter ``fn(cx, node)`` reads its inputs through the :class:`Converter` (runtime values
as :class:`Value`, constants as numpy arrays) and binds each output name to a value.  ONNX axes
count the batch axis; ``ann`` axes do not (``cx.sample_axis``).
"""

from __future__ import annotations

import math

import numpy as np
import onnx
from onnx import helper

from nmc.diagnostics import Loc, NmcError
from nmc.ir import ann
from nmc.ir.core import Blob, Graph, Splat, Value
from nmc.ir.types import TensorType

FLOAT_TYPES = {onnx.TensorProto.FLOAT: "f32", onnx.TensorProto.DOUBLE: "f64"}


def node_name(node) -> str:
    return node.name or (node.output[0] if node.output else node.op_type)


def attr(node, name: str, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


class Padded:
    """The result of a spatial zero Pad, waiting to be folded into the Conv or pool it feeds."""

    def __init__(self, value: Value, pads: list[int], node):
        self.value, self.pads, self.node = value, pads, node


class Converter:
    """Turns one (sorted, shape-inferred, constant-folded) ONNX model into an ``ann`` graph."""

    def __init__(self, path, model, consts, tainted, batch, opset, source_opset):
        self.path, self.model, self.consts, self.tainted = path, model, consts, tainted
        self.batch = batch
        self.opset = opset  # what the nodes follow now (13 after a successful version conversion)
        self.source_opset = source_opset  # what the exporter wrote (legacy PRelu broadcasting)
        self.env: dict[str, object] = {}
        self.graph: Graph | None = None
        self.node = None
        self.matmuls: set[int] = set()  # ann.dense ops made from a MatMul (a following Add is its bias)
        g = model.graph
        self.infos = {vi.name: vi for vi in list(g.input) + list(g.value_info) + list(g.output)}
        self.uses: dict[str, int] = {}
        for n in model.graph.node:
            for i in n.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in model.graph.output:
            self.uses[o.name] = self.uses.get(o.name, 0) + 1
        self.unchecked: set[str] = set()  # tensors whose ONNX-inferred shape is known to be wrong

    # -- driver ------------------------------------------------------------------------------

    def convert(self, name: str, meta: dict) -> Graph:
        self.graph = Graph(name, meta)
        self._check_supported()
        for vi in self.model.graph.input:
            if vi.name not in self.consts:
                self._input(vi)
        for node in self.model.graph.node:
            self.node = node
            try:
                CONVERTERS[node.op_type](self, node)
            except NmcError as err:  # an ann op's own check (VerifyError) knows no ONNX node
                if err.loc is None:
                    err.loc = self.loc(node)
                raise
            self._check_shapes(node)
        self.node = None
        outs = [self.output_value(o.name) for o in self.model.graph.output]
        self.graph.add(ann.Output(values=outs, loc=Loc(self.path)))
        self._drop_dead()
        return self.graph

    def _check_supported(self) -> None:
        first: dict[str, object] = {}
        for n in self.model.graph.node:
            if n.op_type not in CONVERTERS or n.domain not in ("", "ai.onnx"):
                first.setdefault(n.op_type if n.domain in ("", "ai.onnx") else f"{n.domain}.{n.op_type}", n)
        if not first:
            return
        locs = [self.loc(n) for n in first.values()]
        why = {k: OUT_OF_SCOPE.get(k, "unsupported operator") for k in first}
        kinds = list(first)
        raise NmcError(why[kinds[0]], locs[0],
                       notes=[f"{loc}: {why[k]}" for loc, k in zip(locs[1:], kinds[1:])],
                       hint="supported operators: " + ", ".join(sorted(CONVERTERS)))

    def _check_shapes(self, node) -> None:
        """Each result's per-sample shape must be ONNX shape inference's without the batch axis
        (a disagreement is a bug in a converter, not in the model).

        One exception: with ``ceil_mode=1`` ONNX shape inference keeps a last window that would
        start in the end padding, which onnxruntime and PyTorch drop; nmc follows them, so the
        pool's result and everything computed from it are not checked against ONNX's shapes."""
        if any(i in self.unchecked for i in node.input):
            self.unchecked.update(node.output)
            return
        ceil_pool = node.op_type in ("MaxPool", "AveragePool") and any(
            a.name == "ceil_mode" and a.i for a in node.attribute)
        for name in node.output:
            v = self.env.get(name)
            vi = self.infos.get(name)
            if not isinstance(v, Value) or vi is None or not vi.type.tensor_type.HasField("shape"):
                continue
            dims = [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]
            if len(dims) != v.type.rank + 1 or any(d is not None and d != s for d, s in zip(dims[1:], v.type.shape)):
                if ceil_pool:
                    self.unchecked.add(name)
                    continue
                raise RuntimeError(f"ONNX frontend: {self.loc(node)}: per-sample shape {list(v.type.shape)} "
                                   f"disagrees with ONNX shape inference {dims}")

    def _input(self, vi) -> None:
        t = vi.type.tensor_type
        loc = Loc(self.path, node=vi.name, op_type="graph input")
        if t.elem_type not in FLOAT_TYPES:
            raise NmcError(f"input of element type {onnx.TensorProto.DataType.Name(t.elem_type)}", loc,
                           hint="nmc reads float32 or float64 graph inputs")
        dims = list(t.shape.dim)
        if not dims:
            raise NmcError("the input has no batch axis (or no known shape)", loc,
                           hint="export the model with a batch axis first")
        shape = []
        for d in dims[1:]:
            if not d.HasField("dim_value"):
                raise NmcError(f"symbolic dimension '{d.dim_param}' after the batch axis", loc,
                               hint="only the batch axis may be symbolic; export with fixed sizes")
            shape.append(d.dim_value)
        op = ann.Input(declared_type=TensorType(tuple(shape), FLOAT_TYPES[t.elem_type]), loc=loc)
        self.env[vi.name] = self.graph.add(op, vi.name)

    def _drop_dead(self) -> None:
        """Remove ops no output depends on (left behind by folded transpose pairs and fusions)."""
        while True:
            used = {id(v) for op in self.graph.ops for v in op.operands}
            dead = [op for op in self.graph.ops
                    if op.result is not None and op.KIND != "ann.input" and id(op.result) not in used]
            if not dead:
                return
            ids = {id(op) for op in dead}
            self.graph.ops = [op for op in self.graph.ops if id(op) not in ids]

    # -- access ------------------------------------------------------------------------------

    def loc(self, node=None) -> Loc:
        node = node or self.node
        return Loc(self.path, node=node_name(node), op_type=node.op_type)

    def error(self, message: str, hint: str | None = None, node=None) -> NmcError:
        return NmcError(message, self.loc(node), hint=hint)

    def inputs(self, node) -> list[str]:
        return list(node.input)

    def has(self, node, i: int) -> bool:
        return len(node.input) > i and node.input[i] != ""

    def is_const(self, name: str) -> bool:
        return name in self.consts

    def const(self, name: str, what: str) -> np.ndarray:
        if name not in self.consts:
            raise self.error(f"{what} '{name}' must be a constant (an initializer or a constant subgraph)",
                             hint="nmc compiles networks with fixed weights and shapes")
        if name in self.tainted and not (self.node.op_type == "Reshape" and what == "shape"):
            raise self.error(f"{what} '{name}' depends on the batch size",
                             hint="the IR describes one sample; export with a fixed per-sample layout")
        return self.consts[name]

    def value(self, name: str, what: str = "input") -> Value:
        v = self.env.get(name)
        if isinstance(v, Padded):
            raise self.error(f"the Pad '{node_name(v.node)}' feeding this node cannot be folded into it",
                             hint="a spatial zero Pad is supported only before Conv, AveragePool or MaxPool")
        if v is None:
            if name in self.consts:
                return self.constant(self.consts[name], None)
            raise self.error(f"{what} '{name}' is not defined")
        return v

    def output_value(self, name: str) -> Value:
        v = self.env.get(name)
        if isinstance(v, Padded):
            raise self.error(f"the Pad '{node_name(v.node)}' is a graph output and cannot be folded",
                             node=v.node)
        if v is None and name in self.consts:
            arr = self.consts[name]
            return self.constant(arr[0] if arr.ndim else arr, None, name)
        return v

    def bind(self, name: str, value) -> None:
        self.env[name] = value

    def emit(self, op, out: str | None = None) -> Value:
        op.loc = self.loc()
        out = out if out is not None else self.node.output[0]
        result = self.graph.add(op, out)
        self.env[out] = result
        return result

    def constant(self, arr: np.ndarray, like: Value | None, name: str | None = None) -> Value:
        dtype = like.type.np_dtype if like is not None else np.float32
        op = ann.Constant(value=Blob(np.asarray(arr, dtype=dtype), name), loc=self.loc() if self.node else Loc(self.path))
        return self.graph.add(op, name)

    def sample_const(self, arr: np.ndarray, x: Value, what: str) -> np.ndarray:
        """A constant broadcast against batched ``x`` as a per-sample array (drops the leading
        axes of size 1 that line up with the batch axis)."""
        arr = np.asarray(arr)
        rank = x.type.rank
        while arr.ndim > rank:
            if arr.shape[0] != 1:
                raise self.error(f"{what} of shape {list(arr.shape)} varies along the batch axis",
                                 hint="the IR describes one sample; a per-sample constant must not")
            arr = arr[0]
        return arr

    def sample_axis(self, axis: int, rank: int, what: str = "axis") -> int:
        """ONNX ``axis`` of a batched rank-``rank + 1`` tensor as a per-sample axis."""
        a = axis + rank + 1 if axis < 0 else axis
        if a == 0:
            raise self.error(f"{what} {axis} is the batch axis", hint="the IR describes one sample")
        if not 1 <= a <= rank:
            raise self.error(f"{what} {axis} out of range for a rank-{rank + 1} tensor")
        return a - 1


# -------------------------------------------------------------------------------- helpers


def _unary(kind):
    def convert(cx, node):
        cx.emit(kind(x=cx.value(node.input[0])))
    return convert


def _alias(cx, node):
    cx.bind(node.output[0], cx.env.get(node.input[0]) or cx.value(node.input[0]))


def _window(cx, node, x: Value, kernel, dilations, strides, extra_pads=None):
    """ONNX pads (explicit or auto_pad) for a window op on per-sample ``x``."""
    n = len(kernel)
    spatial = x.type.shape[1:]
    if len(spatial) != n:
        raise cx.error(f"kernel {list(kernel)} does not match the input's {len(spatial)} spatial axes")
    auto = attr(cx.node, "auto_pad", b"NOTSET")
    auto = auto.decode() if isinstance(auto, bytes) else auto
    if auto in ("NOTSET", ""):
        pads = list(attr(node, "pads", [0] * (2 * n)))
    elif auto == "VALID":
        pads = [0] * (2 * n)
    elif auto in ("SAME_UPPER", "SAME_LOWER"):
        begin, end = [], []
        for i in range(n):
            out = math.ceil(spatial[i] / strides[i])
            total = max(0, (out - 1) * strides[i] + (kernel[i] - 1) * dilations[i] + 1 - spatial[i])
            small, large = total // 2, total - total // 2
            begin.append(small if auto == "SAME_UPPER" else large)
            end.append(large if auto == "SAME_UPPER" else small)
        pads = begin + end
    else:
        raise cx.error(f"unsupported auto_pad '{auto}'", hint="auto_pad is NOTSET, SAME_UPPER, SAME_LOWER or VALID")
    if extra_pads is not None:
        pads = [p + e for p, e in zip(pads, extra_pads)]
    return pads


def _window_input(cx, node):
    """(value, pads of a folded Pad or None) of a Conv/pool's first input."""
    v = cx.env.get(node.input[0])
    if isinstance(v, Padded):
        return v.value, v.pads
    return cx.value(node.input[0]), None


# ------------------------------------------------------------------------------ converters


def conv(cx, node):
    x, extra = _window_input(cx, node)
    w = cx.const(node.input[1], "weight").astype(x.type.np_dtype)
    if w.ndim not in (3, 4):
        raise cx.error(f"{w.ndim - 2}-D convolution", hint="nmc supports 1-D and 2-D Conv")
    bias = cx.const(node.input[2], "bias").astype(x.type.np_dtype) if cx.has(node, 2) else None
    n = w.ndim - 2
    kernel = list(attr(node, "kernel_shape", w.shape[2:]))
    strides = list(attr(node, "strides", [1] * n))
    dil = list(attr(node, "dilations", [1] * n))
    pads = _window(cx, node, x, kernel, dil, strides, extra)
    cx.emit(ann.Conv(x=x, weight=Blob(w, node.input[1]), bias=Blob(bias, node.input[2]) if bias is not None else None,
                     strides=strides, pads=pads, dilations=dil, groups=attr(node, "group", 1)))


def _pool(cx, node, kind):
    x, extra = _window_input(cx, node)
    kernel = list(attr(node, "kernel_shape"))
    n = len(kernel)
    if n not in (1, 2):
        raise cx.error(f"{n}-D pooling", hint="nmc supports 1-D and 2-D pooling")
    strides = list(attr(node, "strides", [1] * n))
    dil = list(attr(node, "dilations", [1] * n))
    ceil = bool(attr(node, "ceil_mode", 0))
    if len(node.output) > 1 and node.output[1]:
        raise cx.error("the Indices output of MaxPool is not supported")
    if extra is not None and ceil:
        raise cx.error("a Pad before a ceil_mode pool cannot be folded exactly")
    if kind == "max":
        if extra is not None:
            producer = x.owner
            nonneg = producer is not None and (producer.KIND in ("ann.relu", "ann.sigmoid")
                                               or (producer.KIND == "ann.clip" and producer.min >= 0))
            if not nonneg or any(e >= k for e, k in zip(extra, kernel + kernel)):
                raise cx.error("a zero Pad before MaxPool folds only when its input is non-negative "
                               "(after Relu) and the padding is smaller than the kernel",
                               hint="MaxPool pads with -inf, Pad with zeros")
        cx.emit(ann.MaxPool(x=x, kernel=kernel, strides=strides, pads=_window(cx, node, x, kernel, dil, strides, extra),
                            dilations=dil, ceil_mode=ceil))
    else:
        if any(d != 1 for d in dil):
            raise cx.error("dilated AveragePool is not supported")
        include = bool(attr(node, "count_include_pad", 0))
        own = _window(cx, node, x, kernel, dil, strides)
        if extra is not None:
            if not include and any(own):
                raise cx.error("a Pad before an AveragePool with its own pads and count_include_pad=0 "
                               "cannot be folded exactly")
            include = True
        cx.emit(ann.AvgPool(x=x, kernel=kernel, strides=strides, pads=_window(cx, node, x, kernel, dil, strides, extra),
                            ceil_mode=ceil, count_include_pad=include))


def pad(cx, node):
    x = cx.value(node.input[0])
    mode = attr(node, "mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    pads = list(attr(node, "pads", [])) if not cx.has(node, 1) else [int(p) for p in cx.const(node.input[1], "pads")]
    value = attr(node, "value", 0.0)
    if cx.has(node, 2):
        value = float(np.asarray(cx.const(node.input[2], "constant value")).reshape(-1)[0])
    rank = x.type.rank + 1
    if cx.has(node, 3):
        axes = [a + rank if a < 0 else a for a in cx.const(node.input[3], "axes").tolist()]
        full = [0] * (2 * rank)
        for i, a in enumerate(axes):
            full[a], full[rank + a] = pads[i], pads[len(axes) + i]
        pads = full
    if mode != "constant" or value != 0.0:
        raise cx.error(f"Pad mode '{mode}' with value {value}", hint="only constant zero padding is supported")
    if any(p < 0 for p in pads) or pads[0] or pads[1] or pads[rank] or pads[rank + 1]:
        raise cx.error(f"Pad {pads} pads the batch or channel axis (or crops)",
                       hint="only non-negative padding of the spatial axes is supported")
    users = [n for n in cx.model.graph.node if node.output[0] in n.input]
    if not users or cx.uses.get(node.output[0], 0) != 1 or users[0].op_type not in ("Conv", "AveragePool", "MaxPool") \
            or users[0].input[0] != node.output[0]:
        raise cx.error("a Pad is supported only when it feeds exactly one Conv, AveragePool or MaxPool",
                       hint="the padding is folded into that op's pads")
    cx.bind(node.output[0], Padded(x, pads[2:rank] + pads[rank + 2:], node))


def gemm(cx, node):
    if attr(node, "transA", 0):
        raise cx.error("Gemm with transA=1 would transpose the batch axis")
    x = cx.value(node.input[0])
    if x.type.rank != 1:
        raise cx.error(f"Gemm input must be [batch, features], got per-sample {x.type}")
    b = cx.const(node.input[1], "weight")
    w = b if attr(node, "transB", 0) else b.T
    if attr(node, "alpha", 1.0) != 1.0:  # else the weight is used as it is (AlexNet's: 38 M elements)
        w = w.astype(np.float64) * attr(node, "alpha", 1.0)
    bias = None
    if cx.has(node, 2):
        c = cx.sample_const(cx.const(node.input[2], "bias"), x, "bias") * attr(node, "beta", 1.0)
        bias = np.broadcast_to(c, (w.shape[0],))
    dt = x.type.np_dtype
    cx.emit(ann.Dense(x=x, weight=Blob(w.astype(dt), node.input[1]),
                      bias=Blob(bias.astype(dt), node.input[2]) if bias is not None else None))


def matmul(cx, node):
    if cx.is_const(node.input[0]):
        raise cx.error("MatMul with a constant first operand mixes samples", hint="nmc supports x @ W")
    x = cx.value(node.input[0])
    if x.type.rank != 1:
        raise cx.error(f"MatMul on a per-sample {x.type}", hint="nmc supports MatMul of [batch, features] by a matrix")
    w = cx.const(node.input[1], "weight")
    if w.ndim != 2:
        raise cx.error(f"MatMul by a rank-{w.ndim} constant", hint="the weight must be a matrix")
    op = ann.Dense(x=x, weight=Blob(w.T.astype(x.type.np_dtype), node.input[1]))
    cx.matmuls.add(id(op))
    cx.emit(op)


def _binary(cx, node, kind: str):
    """Add/Sub/Mul/Div: with a constant (→ ann.add/ann.mul by ann.constant), or two tensors."""
    a_name, b_name = node.input[0], node.input[1]
    a_c, b_c = cx.is_const(a_name), cx.is_const(b_name)
    if a_c and b_c:
        raise cx.error("both operands are constants but were not folded")
    if a_c or b_c:
        x = cx.value(b_name if a_c else a_name)
        c = cx.sample_const(cx.const(a_name if a_c else b_name, "constant operand"), x, "constant operand")
        c = c.astype(np.float64)
        c_name = (a_name if a_c else b_name) + {"Sub": ".neg", "Div": ".inv"}.get(kind, "")
        if kind == "Div":
            if a_c:
                raise cx.error("division of a constant by a tensor", hint="nmc supports x / c")
            c = 1.0 / c
        if kind == "Sub":
            if a_c:  # c - x = (-1) * x + c
                x = cx.emit(ann.Mul(a=x, b=cx.constant(np.array(-1.0), x)), node.output[0] + ".neg")
            else:
                c = -c
        if kind in ("Add", "Sub"):
            if _fuse_bias(cx, node, x, c):
                return
            cx.emit(ann.Add(a=x, b=cx.constant(c, x, c_name)))
        else:
            cx.emit(ann.Mul(a=x, b=cx.constant(c, x, c_name)))
        return
    a, b = cx.value(a_name), cx.value(b_name)
    if a.type.rank != b.type.rank:
        raise cx.error(f"operands of different ranks ({a.type}, {b.type}) would broadcast across the batch axis")
    if kind == "Div":
        raise cx.error("division of two tensors", hint="nmc supports Div by a constant")
    if kind == "Sub":
        b = cx.emit(ann.Mul(a=b, b=cx.constant(np.array(-1.0), b)), node.output[0] + ".neg")
    cx.emit((ann.Mul if kind == "Mul" else ann.Add)(a=a, b=b))


def _fuse_bias(cx, node, x: Value, c: np.ndarray) -> bool:
    """MatMul followed by Add of a [out] constant → one ann.dense with bias."""
    d = x.owner
    if d is None or id(d) not in cx.matmuls or d.bias is not None or cx.uses.get(node.input[0], 0) != 1:
        return False
    if c.size != d.weight.shape[0] or np.broadcast_shapes(c.shape, x.type.shape) != x.type.shape:
        return False
    fused = d.with_changes(bias=Blob(c.reshape(-1).astype(x.type.np_dtype), node.input[1]))
    cx.graph.replace(d, fused)
    fused.result.name = node.output[0]
    cx.bind(node.output[0], fused.result)
    return True


def sum_(cx, node):
    vals = [cx.value(n) for n in node.input]
    acc = vals[0]
    for i, v in enumerate(vals[1:]):
        out = node.output[0] if i == len(vals) - 2 else f"{node.output[0]}.{i}"
        acc = cx.emit(ann.Add(a=acc, b=v), out)
    if len(vals) == 1:
        cx.bind(node.output[0], acc)


def clip(cx, node):
    lo, hi = attr(node, "min", -math.inf), attr(node, "max", math.inf)
    if cx.has(node, 1):
        lo = float(cx.const(node.input[1], "min"))
    if cx.has(node, 2):
        hi = float(cx.const(node.input[2], "max"))
    cx.emit(ann.Clip(x=cx.value(node.input[0]), min=float(lo), max=float(hi)))


def prelu(cx, node):
    x = cx.value(node.input[0])
    slope = cx.sample_const(cx.const(node.input[1], "slope"), x, "slope").astype(x.type.np_dtype)
    if cx.source_opset < 7 and slope.ndim == 1 and x.type.rank > 1 and slope.size == x.type.shape[0]:
        slope = slope.reshape((-1,) + (1,) * (x.type.rank - 1))  # opset 6: one slope per channel
    cx.emit(ann.PRelu(x=x, slope=Blob(slope, node.input[1])))


def batchnorm(cx, node):
    if attr(node, "training_mode", 0) or any(o for o in node.output[1:]):
        raise cx.error("BatchNormalization in training mode", hint="export the model in inference mode")
    x = cx.value(node.input[0])
    dt = x.type.np_dtype
    b = [Blob(cx.const(node.input[i], w).astype(dt), node.input[i])
         for i, w in enumerate(("input", "scale", "bias", "mean", "var")) if i]
    cx.emit(ann.BatchNorm(x=x, scale=b[0], bias=b[1], mean=b[2], var=b[3], epsilon=attr(node, "epsilon", 1e-5)))


def lrn(cx, node):
    cx.emit(ann.LRN(x=cx.value(node.input[0]), size=int(attr(node, "size")), alpha=float(attr(node, "alpha", 0.0001)),
                    beta=float(attr(node, "beta", 0.75)), bias=float(attr(node, "bias", 1.0))))


def flatten(cx, node):
    x = cx.value(node.input[0])
    axis = attr(node, "axis", 1)
    if (axis + x.type.rank + 1 if axis < 0 else axis) != 1:
        raise cx.error(f"Flatten with axis={axis}", hint="only axis=1 (keep the batch axis) is supported")
    cx.emit(ann.Flatten(x=x))


def _reshape_to(cx, x: Value, shape) -> None:
    shape = [int(d) for d in shape]
    if shape == list(x.type.shape):
        cx.bind(cx.node.output[0], x)
        return
    cx.emit(ann.Reshape(x=x, shape=shape))


def reshape(cx, node):
    x = cx.value(node.input[0])
    target = [int(d) for d in (cx.const(node.input[1], "shape") if cx.has(node, 1) else attr(node, "shape"))]
    allowzero = attr(node, "allowzero", 0)
    if not target:
        raise cx.error("Reshape to a scalar drops the batch axis")
    head, rest = target[0], target[1:]
    batch_marks = {-1, cx.batch.placeholder} | ({0} if not allowzero else set())
    if head not in batch_marks:
        raise cx.error(f"Reshape target {target} does not keep the batch axis first",
                       hint="the IR describes one sample; reshape [batch, ...] to [batch, ...]")
    if not allowzero:
        rest = [x.type.shape[i] if d == 0 else d for i, d in enumerate(rest)]
    if head == -1 and -1 in rest:
        raise cx.error(f"Reshape target {target} leaves two axes to infer")
    if -1 in rest:
        known = math.prod(d for d in rest if d != -1)
        if known == 0 or x.type.size % known:
            raise cx.error(f"cannot reshape per-sample {x.type} to {target}")
        rest[rest.index(-1)] = x.type.size // known
    if math.prod(rest) != x.type.size:
        raise cx.error(f"Reshape target {target} changes the per-sample size {x.type.size}",
                       hint="the IR describes one sample; the batch axis must stay separate")
    _reshape_to(cx, x, rest)


def _axes(cx, node) -> list[int]:
    if cx.has(node, 1):
        return [int(a) for a in cx.const(node.input[1], "axes")]
    return list(attr(node, "axes", []))


def squeeze(cx, node):
    x = cx.value(node.input[0])
    axes = [cx.sample_axis(a, x.type.rank) for a in _axes(cx, node)]
    shape = x.type.shape
    if not axes:
        axes = [i for i, d in enumerate(shape) if d == 1]
    if any(shape[a] != 1 for a in axes):
        raise cx.error(f"Squeeze of an axis whose size is not 1 ({x.type})")
    _reshape_to(cx, x, [d for i, d in enumerate(shape) if i not in axes])


def unsqueeze(cx, node):
    x = cx.value(node.input[0])
    axes = _axes(cx, node)
    out_rank = x.type.rank + len(axes)
    axes = sorted(cx.sample_axis(a, out_rank) for a in axes)
    shape = list(x.type.shape)
    for a in axes:
        shape.insert(a, 1)
    _reshape_to(cx, x, shape)


def transpose(cx, node):
    x = cx.value(node.input[0])
    rank = x.type.rank
    perm = list(attr(node, "perm", list(range(rank, -1, -1))))
    if perm[0] != 0:
        raise cx.error(f"Transpose perm {perm} moves the batch axis", hint="the IR describes one sample")
    p = [a - 1 for a in perm[1:]]
    if p == list(range(rank)):
        cx.bind(node.output[0], x)
        return
    inner = x.owner
    if inner is not None and inner.KIND == "ann.transpose" and [inner.perm[i] for i in p] == list(range(rank)):
        cx.bind(node.output[0], inner.x)  # a transpose followed by its inverse cancels
        return
    cx.emit(ann.Transpose(x=x, perm=p))


def concat(cx, node):
    vals = [n for n in node.input if n]
    ref = next((cx.env[n] for n in vals if isinstance(cx.env.get(n), Value)), None)
    if ref is None:
        raise cx.error("Concat of constants only was not folded")
    axis = cx.sample_axis(attr(node, "axis"), ref.type.rank)
    ins = [cx.constant(cx.sample_const(cx.consts[n], ref, "constant input"), ref) if cx.is_const(n)
           else cx.value(n) for n in vals]
    cx.emit(ann.Concat(inputs=ins, axis=axis))


def reduce_mean(cx, node):
    """ReduceMean over per-sample axes, axes as an input (opset 18+) or attribute (earlier).

    Over spatial axes: ``ann.global_avgpool`` (all of them, what torch's dynamo exporter writes
    for an adaptive or global average pool) or ``ann.avgpool`` with the reduced axes' full size
    as the kernel (some).  Over the channel axis: a convolution with one output channel and
    weights 1/C (over the features of a vector, a dense layer with weights 1/F), then any
    spatial part.  ``keepdims=0`` drops the reduced axes with ``ann.reshape``.  The batch axis
    is never reduced."""
    x = cx.value(node.input[0])
    rank, shape = x.type.rank, x.type.shape
    axes = _axes(cx, node)
    if not axes:
        if attr(node, "noop_with_empty_axes", 0):
            cx.bind(node.output[0], x)
            return
        raise cx.error("ReduceMean over all axes averages over the batch axis",
                       hint="the IR describes one sample; give the per-sample axes to reduce")
    red = sorted({cx.sample_axis(int(a), rank, "reduced axis") for a in axes})
    keep = [1 if i in red else d for i, d in enumerate(shape)]
    out_shape = keep if attr(node, "keepdims", 1) else [d for i, d in enumerate(shape) if i not in red]
    if not out_shape:
        raise cx.error(f"ReduceMean of per-sample {x.type} to a scalar (keepdims=0)",
                       hint="export the mean with keepdim=True, or reduce fewer axes")
    if rank > 3:
        raise cx.error(f"ReduceMean of a rank-{rank + 1} tensor",
                       hint="nmc averages over the channel and 1 or 2 spatial axes of [batch, C, ...] "
                            "or the features of [batch, F]")
    if rank == 1:
        n = shape[0]
        y = cx.emit(ann.Dense(x=x, weight=Blob(np.full((1, n), 1.0 / n, x.type.np_dtype), f"{node.output[0]}.mean",
                                               Splat(1.0 / n))), node.output[0] + ".mean")
    else:
        y = x
        if 0 in red:
            c = shape[0]
            weight = np.full((1, c) + (1,) * (rank - 1), 1.0 / c, x.type.np_dtype)
            y = cx.emit(ann.Conv(x=y, weight=Blob(weight, f"{node.output[0]}.channels", Splat(1.0 / c))),
                        node.output[0] + ".channels")
        spatial = [a for a in red if a > 0]
        if spatial == list(range(1, rank)):
            y = cx.emit(ann.GlobalAvgPool(x=y), node.output[0] + ".pool")
        elif spatial:
            kernel = [shape[a] if a in spatial else 1 for a in range(1, rank)]
            y = cx.emit(ann.AvgPool(x=y, kernel=kernel), node.output[0] + ".pool")
    _rename_last(cx, node, y, out_shape)


def _rename_last(cx, node, y: Value, out_shape) -> None:
    """Bind ``node``'s output to ``y`` reshaped to ``out_shape``, the last op taking the output's name."""
    if list(y.type.shape) != list(out_shape):
        cx.emit(ann.Reshape(x=y, shape=list(out_shape)))
        return
    y.name = node.output[0]
    cx.bind(node.output[0], y)


def _softmax(kind):
    def convert(cx, node):
        x = cx.value(node.input[0])
        default = -1 if cx.opset >= 13 else 1
        axis = cx.sample_axis(attr(node, "axis", default), x.type.rank)
        if cx.opset < 13 and axis != x.type.rank - 1:
            # opsets < 13 take the softmax over all axes from ``axis`` on, as one
            flat = list(x.type.shape[:axis]) + [math.prod(x.type.shape[axis:])]
            y = cx.emit(ann.Reshape(x=x, shape=flat), node.output[0] + ".flat")
            y = cx.emit(kind(x=y, axis=axis), node.output[0] + ".soft")
            cx.emit(ann.Reshape(x=y, shape=list(x.type.shape)))
            return
        cx.emit(kind(x=x, axis=axis))
    return convert


def cast(cx, node):
    x = cx.value(node.input[0])
    to = attr(node, "to")
    if to not in FLOAT_TYPES and to != onnx.TensorProto.FLOAT16:
        raise cx.error(f"Cast of a tensor to {onnx.TensorProto.DataType.Name(to)}",
                       hint="only casts between float types are supported (they are dropped)")
    cx.bind(node.output[0], x)


def dropout(cx, node):
    if len(node.output) > 1 and node.output[1] and cx.uses.get(node.output[1]):
        raise cx.error("the mask output of Dropout is used", hint="export the model in inference mode")
    ratio = attr(node, "ratio", 0.5)
    if cx.has(node, 1):
        ratio = float(cx.const(node.input[1], "ratio"))
    cx.emit(ann.Dropout(x=cx.value(node.input[0]), ratio=float(ratio)))


def _folded(cx, node):
    """Constant-producing nodes: folded before conversion; any left has a runtime input."""
    raise cx.error(f"{node.op_type} of a runtime tensor", hint="only constant subgraphs of this operator are supported")


CONVERTERS = {
    "Conv": conv,
    "Gemm": gemm,
    "MatMul": matmul,
    "Add": lambda cx, n: _binary(cx, n, "Add"),
    "Sub": lambda cx, n: _binary(cx, n, "Sub"),
    "Mul": lambda cx, n: _binary(cx, n, "Mul"),
    "Div": lambda cx, n: _binary(cx, n, "Div"),
    "Sum": sum_,
    "Relu": _unary(ann.Relu),
    "Sigmoid": _unary(ann.Sigmoid),
    "Tanh": _unary(ann.Tanh),
    "Clip": clip,
    "LeakyRelu": lambda cx, n: cx.emit(ann.LeakyRelu(x=cx.value(n.input[0]), alpha=attr(n, "alpha", 0.01))),
    "PRelu": prelu,
    "BatchNormalization": batchnorm,
    "LRN": lrn,
    "MaxPool": lambda cx, n: _pool(cx, n, "max"),
    "AveragePool": lambda cx, n: _pool(cx, n, "avg"),
    "GlobalAveragePool": _unary(ann.GlobalAvgPool),
    "ReduceMean": reduce_mean,
    "Flatten": flatten,
    "Reshape": reshape,
    "Transpose": transpose,
    "Concat": concat,
    "Dropout": dropout,
    "Identity": _alias,
    "Softmax": _softmax(ann.Softmax),
    "LogSoftmax": _softmax(ann.LogSoftmax),
    "Cast": cast,
    "Constant": _folded,
    "ConstantOfShape": _folded,
    "Shape": _folded,
    "Gather": _folded,
    "Squeeze": squeeze,
    "Unsqueeze": unsqueeze,
    "Pad": pad,
}

OUT_OF_SCOPE = {
    "ConvTranspose": "transposed convolution (ConvTranspose) is out of scope",
}

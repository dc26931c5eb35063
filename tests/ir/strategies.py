"""Hypothesis strategies: random valid graphs drawn from every op kind of both dialects.

Graphs are built with the Python API (result types are inferred, as a pass would build them),
with small shapes (at most 6 per axis) so that the reference semantics runs in milliseconds.

* :func:`ann_graphs` — tensor dataflow over every ``ann`` op kind, float32 blobs with special
  values (-0.0, subnormals, ±inf, nan), integer and bool constants, extra (discardable)
  attributes and graph metadata.
* :func:`snn_graphs` — an input, an encoder (every encoding), layers of projections (every
  kind, delays >= 1, exponents) into float or integer populations (scalar and blob parameters,
  every reset mode, recurrent projections named before they are defined), decoders (both modes).
* :func:`graphs` — either.
* :func:`features_of` — what a graph contains (op kinds, enum choices, structural variants);
  :data:`FEATURES` is the set the strategies are meant to reach (tests check they do).
* :func:`inputs_for` — deterministic input arrays for running a graph.

Blobs come in every form the printer distinguishes: inline (<= 16 elements), named (> 16,
through the sidecar), ``splat`` and ``random`` initialisers, all-equal arrays without an
initialiser, and integer/bool arrays.  Every drawn graph passes :func:`nmc.ir.verify`.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import strategies as st

from nmc.hashrng import random_array
from nmc.ir import ann, snn
from nmc.ir.ann import pooled_size
from nmc.ir.core import OPS, Blob, Graph, Op, Random, Splat, Value
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify

# ------------------------------------------------------------------------------- features

#: Structural variants beyond op kinds and enum choices that the strategies must produce.
EXTRA_FEATURES = {
    "ann.conv:1d", "ann.conv:2d", "ann.conv:groups", "ann.conv:dilated", "ann.conv:strided",
    "ann.conv:padded", "ann.maxpool:1d", "ann.maxpool:2d", "ann.maxpool:ceil_mode",
    "ann.avgpool:1d", "ann.avgpool:2d", "ann.avgpool:count_include_pad",
    "snn.project:delay>1", "snn.project:exponent>0", "snn.project:number-weight",
    "snn.project:integer", "snn.project:float",
    "snn.population:integer", "snn.population:float", "snn.population:blob-param",
    "snn.population:recurrent",
    "blob:inline", "blob:named", "blob:splat", "blob:random", "blob:all-equal",
    "blob:integer", "blob:bool", "blob:nan", "blob:inf", "blob:-0.0", "blob:subnormal",
    "extra-attribute", "meta",
}


def _enum_features() -> set[str]:
    out = set()
    for kind, cls in OPS.items():
        for name, spec in cls.attr_specs():
            if spec.kind == "enum":
                out.update(f"{kind}:{name}={c}" for c in spec.choices)
    return out


#: Every feature the strategies reach: every op kind, every choice of every enum attribute
#: (encodings, projection kinds, reset modes, decode modes) and :data:`EXTRA_FEATURES`.
FEATURES = set(OPS) | _enum_features() | EXTRA_FEATURES


def _blob_features(b: Blob) -> set[str]:
    out = set()
    d = b.data
    if isinstance(b.init, Splat):
        out.add("blob:splat")
    elif isinstance(b.init, Random):
        out.add("blob:random")
    elif d.size > 16 and len(np.unique(d.view(f"u{d.itemsize}") if d.dtype.kind == "f" else d)) == 1:
        out.add("blob:all-equal")
    elif d.size > 16:
        out.add("blob:named")
    else:
        out.add("blob:inline")
    if d.dtype == np.bool_:
        out.add("blob:bool")
    elif d.dtype.kind in "iu":
        out.add("blob:integer")
    elif d.size:
        if np.isnan(d).any():
            out.add("blob:nan")
        if np.isinf(d).any():
            out.add("blob:inf")
        if (np.signbit(d) & (d == 0)).any():
            out.add("blob:-0.0")
        if ((d != 0) & (np.abs(d) < np.finfo(d.dtype).tiny)).any():
            out.add("blob:subnormal")
    return out


def features_of(graph: Graph) -> set[str]:
    """The features (see :data:`FEATURES`) ``graph`` contains, read from its ops."""
    out = {"meta"} if graph.meta else set()
    index = {id(op): i for i, op in enumerate(graph.ops)}
    for i, op in enumerate(graph.ops):
        k = op.KIND
        out.add(k)
        for name, spec in op.attr_specs():
            if spec.kind == "enum":
                out.add(f"{k}:{name}={getattr(op, name)}")
        if op.extra:
            out.add("extra-attribute")
        for _, b in op.blobs():
            out |= _blob_features(b)
        if k in ("ann.conv", "ann.maxpool", "ann.avgpool"):
            n = len(op.strides)
            out.add(f"{k}:{n}d")
            if any(s > 1 for s in op.strides):
                out.add(f"{k}:strided")
            if any(op.pads):
                out.add(f"{k}:padded")
            if any(d > 1 for d in getattr(op, "dilations", ())):
                out.add(f"{k}:dilated")
            if getattr(op, "groups", 1) > 1:
                out.add(f"{k}:groups")
            for flag in ("ceil_mode", "count_include_pad"):
                if getattr(op, flag, False):
                    out.add(f"{k}:{flag}")
        if k == "snn.project":
            out.add("snn.project:integer" if op.is_integer else "snn.project:float")
            if op.delay > 1:
                out.add("snn.project:delay>1")
            if op.exponent > 0:
                out.add("snn.project:exponent>0")
            if not isinstance(op.weight, Blob):
                out.add("snn.project:number-weight")
        if k == "snn.population":
            out.add("snn.population:integer" if op.bits else "snn.population:float")
            if any(isinstance(getattr(op, p), Blob) for p in op.PARAMS):
                out.add("snn.population:blob-param")
            if any(index[id(c.owner)] > i for c in op.currents):
                out.add("snn.population:recurrent")
    return out


# ----------------------------------------------------------------------------------- blobs

SPECIAL_F32 = {
    "-0.0": np.float32(-0.0),
    "subnormal": np.float32(1e-45),
    "subnormal2": np.float32(-3.5e-39),
    "inf": np.float32(np.inf),
    "-inf": np.float32(-np.inf),
    "nan": np.float32(np.nan),
    "-nan": -np.float32(np.nan),
    "max": np.finfo(np.float32).max,
}
FINITE_SPECIAL = ("-0.0", "subnormal", "subnormal2")
BLOB_NAMES = (None, None, "w", "w", "fc1.weight", "bias", "a-b$c", "bad name")

seeds = st.integers(0, 2**31 - 1)


@st.composite
def blobs(draw, shape, dtype=np.float32, lo=-1.0, hi=1.0, special=(), random_ok=True):
    """A blob of ``shape``/``dtype`` with elements in [lo, hi] (plus drawn ``special`` values,
    names of :data:`SPECIAL_F32`, for float dtypes), in one of the printer's forms."""
    dtype = np.dtype(dtype)
    shape = tuple(shape)
    size = math.prod(shape)
    integer = dtype.kind in "iub"
    modes = ["values", "values", "values", "splat", "all-equal"]
    if random_ok and dtype != np.bool_ and size:
        modes.append("random")
    mode = draw(st.sampled_from(modes))
    name = draw(st.sampled_from(BLOB_NAMES))
    if dtype == np.bool_:
        element = st.booleans()
    elif integer:
        element = st.integers(int(math.ceil(lo)), int(math.floor(hi)))
    else:
        element = st.floats(lo, hi).map(lambda v: float(np.float32(v)))
    if mode == "splat":
        v = draw(element)
        return Blob(np.full(shape, v, dtype=dtype), name=name, init=Splat(v))
    if mode == "all-equal":
        return Blob(np.full(shape, draw(element), dtype=dtype), name=name)
    if mode == "random":
        dist = draw(st.sampled_from(["uniform", "normal"]))
        bound = min(abs(lo), abs(hi))
        if integer:
            scale = float(draw(st.integers(0, int(bound)))) if dist == "uniform" else 0.0
        else:
            scale = draw(st.floats(0.0, bound / 6 if dist == "normal" else bound))
        init = Random(dist, draw(seeds), scale)
        return Blob(random_array(dist, init.seed, scale, shape, dtype), name=name, init=init)
    rng = np.random.default_rng(draw(seeds))
    if dtype == np.bool_:
        data = rng.integers(0, 2, size=shape).astype(bool)
    elif integer:
        data = rng.integers(int(math.ceil(lo)), int(math.floor(hi)) + 1, size=shape).astype(dtype)
    else:
        data = rng.uniform(lo, hi, size=shape).astype(dtype)
        if special and size and draw(st.integers(0, 3)) == 0:
            flat = data.reshape(-1)
            for _ in range(draw(st.integers(1, 3))):
                flat[draw(st.integers(0, size - 1))] = SPECIAL_F32[draw(st.sampled_from(special))]
    return Blob(data, name=name)


# ---------------------------------------------------------------------------- small values

VALUE_NAMES = (None, None, None, "x", "h", "y", "conv1", "0", "3", "a.b", "w-1", "n$", "bad name")
EXTRA_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,4}(\.[a-z0-9_]{1,5}){1,2}", fullmatch=True)
META_KEYS = st.from_regex(r"[a-z_][a-z0-9_]{0,6}", fullmatch=True)
ALL_FLOATS = st.floats(width=64)


def generic_values(max_leaves: int = 4):
    """Values of discardable attributes and metadata: numbers, strings, bools, lists."""
    leaf = st.integers(-(2**40), 2**40) | ALL_FLOATS | st.booleans() | st.text(max_size=6)
    return st.recursive(leaf, lambda inner: st.lists(inner, max_size=3), max_leaves=max_leaves)


def _small_shape(draw, rank: int) -> tuple[int, ...]:
    if rank == 0:
        return ()
    if rank == 1:
        return (draw(st.integers(1, 6)),)
    if rank == 2:
        return (draw(st.integers(1, 4)), draw(st.integers(1, 6)))
    return (draw(st.integers(1, 3)), draw(st.integers(1, 6)), draw(st.integers(1, 6)))


def _factor_shape(draw, size: int) -> tuple[int, ...]:
    """A random shape holding ``size`` elements (rank 1..3)."""
    factors, n, p = [], size, 2
    while n > 1:
        while n % p == 0:
            factors.append(p)
            n //= p
        p += 1
    rank = draw(st.integers(1, 3))
    dims = [1] * rank
    for f in draw(st.permutations(factors)):
        dims[draw(st.integers(0, rank - 1))] *= f
    return tuple(dims)


def _broadcast_shape_for(draw, shape: tuple[int, ...]) -> tuple[int, ...]:
    """A shape that broadcasts to ``shape``: a suffix of it with some axes set to 1."""
    k = draw(st.integers(0, len(shape)))
    suffix = shape[len(shape) - k:]
    return tuple(1 if draw(st.booleans()) else d for d in suffix)


class _Builder:
    """The graph being drawn, the float32 values ops may consume, and naming."""

    def __init__(self, draw, graph: Graph):
        self.draw = draw
        self.g = graph
        self.pool: list[Value] = []
        self.other: list[Value] = []  # integer/bool tensors: only fit for ann.output

    def add(self, op: Op, pool: bool = True) -> Value | None:
        draw = self.draw
        if draw(st.integers(0, 7)) == 0:
            op.extra[draw(EXTRA_KEYS)] = draw(generic_values())
        if draw(st.integers(0, 15)) == 0:
            dtype = draw(st.sampled_from([np.float32, np.int32, np.bool_]))
            op.extra[draw(EXTRA_KEYS)] = draw(blobs((draw(st.integers(1, 20)),), dtype, -5, 5,
                                                    special=tuple(SPECIAL_F32)))
        v = self.g.add(op, draw(st.sampled_from(VALUE_NAMES)))
        if pool and v is not None:
            if isinstance(v.type, TensorType) and v.type.dtype == "f32":
                self.pool.append(v)
            else:
                self.other.append(v)
        return v


def _window(draw, size: int, allow_dilation: bool, pad_below_kernel: bool, padded: bool):
    """(kernel, stride, pad_begin, pad_end, dilation) for one spatial axis of ``size`` that fits."""
    k = draw(st.integers(1, min(3, size)))
    cap = (k - 1 if pad_below_kernel else 1) if padded else 0
    pb, pe = draw(st.integers(0, min(1, cap))), draw(st.integers(0, min(1, cap)))
    d = draw(st.integers(1, 2)) if allow_dilation else 1
    if d * (k - 1) + 1 > size + pb + pe:
        d = 1
    return k, draw(st.integers(1, 2)), pb, pe, d


def _window_attrs(draw, sizes, allow_dilation: bool, pad_below_kernel: bool):
    """kernel, strides, pads, dilations for windows over ``sizes``; strides, pads and
    dilations are sometimes None (left to their derived default, which is then what fits)."""
    padded = draw(st.booleans())
    axes = [_window(draw, s, allow_dilation, pad_below_kernel, padded) for s in sizes]
    kernel = tuple(a[0] for a in axes)
    strides = tuple(a[1] for a in axes)
    pads = tuple(a[2] for a in axes) + tuple(a[3] for a in axes)
    dil = tuple(a[4] for a in axes)
    if all(s == 1 for s in strides) and draw(st.booleans()):
        strides = None
    if all(d == 1 for d in dil) and draw(st.booleans()):
        dil = None
    return kernel, strides, pads if padded else _maybe(draw, pads), dil


# ---------------------------------------------------------------------------- ann builders

ANN_SPECIAL = tuple(SPECIAL_F32)


def _new_input(b: _Builder, rank: int) -> Value:
    op = ann.Input(declared_type=TensorType(_small_shape(b.draw, rank)))
    return b.add(op)


def _pick(b: _Builder, ranks=(1, 2, 3)) -> Value:
    """An existing float value of one of ``ranks``, or (sometimes, or if none) a new input."""
    cands = [v for v in b.pool if v.type.rank in ranks]
    if not cands or b.draw(st.integers(0, 6)) == 0:
        return _new_input(b, b.draw(st.sampled_from(sorted(ranks))))
    return b.draw(st.sampled_from(cands))


def _maybe(draw, value, default=None):
    """``value`` or (sometimes) ``default``, so that both given and omitted attributes occur."""
    return value if draw(st.booleans()) else default


def build_input(b):
    _new_input(b, b.draw(st.integers(0, 3)))


def build_constant(b):
    draw = b.draw
    shape = _small_shape(draw, draw(st.integers(0, 3)))
    dtype = draw(st.sampled_from(["f32", "f32", "f32", "f64", "i8", "i16", "i32", "i64", "u8", "bool"]))
    np_dtype = np.dtype({"f32": np.float32, "f64": np.float64, "i8": np.int8, "i16": np.int16,
                         "i32": np.int32, "i64": np.int64, "u8": np.uint8, "bool": np.bool_}[dtype])
    lo, hi = (0, 200) if dtype == "u8" else (-100, 100)
    special = ANN_SPECIAL if dtype in ("f32", "f64") else ()
    b.add(ann.Constant(value=draw(blobs(shape, np_dtype, lo, hi, special=special))))


def build_dense(b):
    draw = b.draw
    x = _pick(b, (1,))
    out = draw(st.integers(1, 6))
    w = draw(blobs((out, x.type.shape[0]), special=ANN_SPECIAL))
    bias = _maybe(draw, draw(blobs((out,), special=ANN_SPECIAL)))
    b.add(ann.Dense(x=x, weight=w, bias=bias))


def build_conv(b):
    draw = b.draw
    x = _pick(b, (2, 3))
    c, *spatial = x.type.shape
    groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
    out = groups * draw(st.integers(1, 2))
    kernel, strides, pads, dil = _window_attrs(draw, spatial, True, False)
    w = draw(blobs((out, c // groups, *kernel), special=ANN_SPECIAL))
    bias = _maybe(draw, draw(blobs((out,), special=ANN_SPECIAL)))
    b.add(ann.Conv(x=x, weight=w, bias=bias, strides=strides, pads=pads, dilations=dil, groups=groups))


def build_batchnorm(b):
    draw = b.draw
    x = _pick(b)
    c = x.type.shape[0]
    kw = {name: draw(blobs((c,), special=ANN_SPECIAL)) for name in ("scale", "bias", "mean")}
    kw["var"] = draw(blobs((c,), lo=0.0, hi=4.0, random_ok=False))
    eps = draw(st.sampled_from([1e-5, 1e-3])) if draw(st.booleans()) else draw(st.floats(1e-8, 0.1))
    b.add(ann.BatchNorm(x=x, epsilon=eps, **kw))


def _unary(cls, **attrs):
    def build(b):
        x = _pick(b, (0, 1, 2, 3))
        b.add(cls(x=x, **{k: b.draw(s) for k, s in attrs.items()}))

    build.__name__ = f"build_{cls.KIND.split('.')[1]}"
    return build


def build_clip(b):
    draw = b.draw
    bound = st.floats(-1e6, 1e6) | st.just(-math.inf) | st.just(math.inf)
    lo, hi = sorted([draw(bound), draw(bound)])
    b.add(ann.Clip(x=_pick(b, (0, 1, 2, 3)), min=lo, max=hi))


def build_prelu(b):
    draw = b.draw
    x = _pick(b, (0, 1, 2, 3))
    slope = draw(blobs(_broadcast_shape_for(draw, x.type.shape), special=ANN_SPECIAL))
    b.add(ann.PRelu(x=x, slope=slope))


def _softmax(cls):
    def build(b):
        x = _pick(b)
        r = x.type.rank
        b.add(cls(x=x, axis=b.draw(st.integers(-r, r - 1))))

    build.__name__ = f"build_{cls.KIND.split('.')[1]}"
    return build


def build_maxpool(b):
    draw = b.draw
    x = _pick(b, (2, 3))
    kernel, strides, pads, dil = _window_attrs(draw, x.type.shape[1:], True, True)
    b.add(ann.MaxPool(x=x, kernel=kernel, strides=strides, pads=pads, dilations=dil, ceil_mode=draw(st.booleans())))


def build_avgpool(b):
    draw = b.draw
    x = _pick(b, (2, 3))
    kernel, strides, pads, _ = _window_attrs(draw, x.type.shape[1:], False, True)
    b.add(ann.AvgPool(x=x, kernel=kernel, strides=strides, pads=pads,
                      ceil_mode=draw(st.booleans()), count_include_pad=draw(st.booleans())))


def build_global_avgpool(b):
    b.add(ann.GlobalAvgPool(x=_pick(b, (2, 3))))


def _binary(cls):
    def build(b):
        draw = b.draw
        a = _pick(b, (0, 1, 2, 3))
        partners = [v for v in b.pool if _broadcasts(v.type.shape, a.type.shape)]
        how = draw(st.sampled_from(["pool", "constant"])) if partners else "constant"
        if how == "pool":
            other = draw(st.sampled_from(partners))
        else:
            shape = _broadcast_shape_for(draw, a.type.shape)
            other = b.add(ann.Constant(value=draw(blobs(shape, special=ANN_SPECIAL))))
        x, y = (a, other) if draw(st.booleans()) else (other, a)
        b.add(cls(a=x, b=y))

    build.__name__ = f"build_{cls.KIND.split('.')[1]}"
    return build


def _broadcasts(s1, s2) -> bool:
    try:
        np.broadcast_shapes(s1, s2)
        return True
    except ValueError:
        return False


def build_lrn(b):
    draw = b.draw
    b.add(ann.LRN(x=_pick(b), size=draw(st.integers(1, 9)), alpha=draw(ALL_FLOATS), beta=draw(ALL_FLOATS),
                  bias=draw(st.floats(min_value=1e-3, max_value=1e3))))


def build_concat(b):
    draw = b.draw
    a = _pick(b)
    r = a.type.rank
    axis = draw(st.integers(0, r - 1))
    same = [v for v in b.pool if v.type.rank == r
            and all(v.type.shape[i] == a.type.shape[i] for i in range(r) if i != axis)]
    rest = draw(st.lists(st.sampled_from(same), max_size=2))
    b.add(ann.Concat(inputs=[a, *rest], axis=axis))


def build_flatten(b):
    b.add(ann.Flatten(x=_pick(b, (0, 1, 2, 3))))


def build_reshape(b):
    x = _pick(b)
    b.add(ann.Reshape(x=x, shape=_factor_shape(b.draw, x.type.size)))


def build_transpose(b):
    x = _pick(b)
    b.add(ann.Transpose(x=x, perm=tuple(b.draw(st.permutations(range(x.type.rank))))))


ANN_BUILDERS = {
    "ann.input": build_input,
    "ann.constant": build_constant,
    "ann.dense": build_dense,
    "ann.conv": build_conv,
    "ann.batchnorm": build_batchnorm,
    "ann.relu": _unary(ann.Relu),
    "ann.sigmoid": _unary(ann.Sigmoid),
    "ann.tanh": _unary(ann.Tanh),
    "ann.identity": _unary(ann.Identity),
    "ann.dropout": _unary(ann.Dropout, ratio=ALL_FLOATS),
    "ann.clip": build_clip,
    "ann.leaky_relu": _unary(ann.LeakyRelu, alpha=ALL_FLOATS),
    "ann.prelu": build_prelu,
    "ann.lrn": build_lrn,
    "ann.softmax": _softmax(ann.Softmax),
    "ann.log_softmax": _softmax(ann.LogSoftmax),
    "ann.maxpool": build_maxpool,
    "ann.avgpool": build_avgpool,
    "ann.global_avgpool": build_global_avgpool,
    "ann.add": _binary(ann.Add),
    "ann.mul": _binary(ann.Mul),
    "ann.concat": build_concat,
    "ann.flatten": build_flatten,
    "ann.reshape": build_reshape,
    "ann.transpose": build_transpose,
}
"""One builder per ``ann`` op kind (``ann.output`` ends every graph)."""

GRAPH_NAMES = st.sampled_from(["main", "g", "net-1", "a.b", "x$y", "bad name"])


@st.composite
def graph_meta(draw):
    meta = {}
    if draw(st.booleans()):
        meta = draw(st.dictionaries(META_KEYS | EXTRA_KEYS, generic_values(), max_size=3))
    return meta


def _finish(b: _Builder) -> Graph:
    draw = b.draw
    values = draw(st.lists(st.sampled_from(b.pool + b.other), min_size=1, max_size=3))
    b.add(ann.Output(values=values))
    verify(b.g)
    return b.g


@st.composite
def ann_graphs(draw, max_ops: int = 10) -> Graph:
    """A verified ``ann`` graph: inputs, then up to ``max_ops`` drawn ops, then ``ann.output``."""
    b = _Builder(draw, Graph(draw(GRAPH_NAMES), draw(graph_meta())))
    _new_input(b, draw(st.integers(1, 3)))
    for _ in range(draw(st.integers(3, max_ops))):
        draw(st.sampled_from(sorted(ANN_BUILDERS)).map(ANN_BUILDERS.get))(b)
    return _finish(b)


# ---------------------------------------------------------------------------- snn builders


class _Snn:
    """Choices that hold for the whole spiking graph: float or integer (and its bit width)."""

    def __init__(self, draw):
        self.integer = draw(st.booleans())
        self.bits = draw(st.integers(8, 24)) if self.integer else 0

    def weight_blob(self, draw, shape):
        if self.integer:
            dtype = draw(st.sampled_from([np.int8, np.int16, np.int32]))
            return draw(blobs(shape, dtype, -20, 20))
        return draw(blobs(shape, np.float32, -1.5, 1.5, special=FINITE_SPECIAL))

    def weight_number(self, draw):
        if self.integer:
            return draw(st.integers(-20, 20))
        return draw(st.floats(-1.5, 1.5))

    def param(self, draw, name: str, shape):
        """A population parameter: a number or a blob broadcast to ``shape``."""
        if self.integer:
            limit = 2 ** (self.bits - 1)
            lo, hi = {"threshold": (1, min(limit - 1, 200)), "bias": (-5, 5), "v0": (-10, 10),
                      "du": (0, 4096), "dv": (0, 4096)}[name]
        else:
            lo, hi = {"threshold": (0.05, 2.0), "bias": (-0.3, 0.3), "v0": (-0.5, 0.5),
                      "du": (0.0, 4096.0), "dv": (0.0, 4096.0)}[name]
        form = draw(st.sampled_from(["default", "number", "number", "blob"]))
        if form == "default":
            return None
        if form == "number":
            return draw(st.integers(lo, hi)) if self.integer else draw(st.floats(lo, hi))
        bshape = _broadcast_shape_for(draw, shape)
        if self.integer:
            # integral float blobs are legal parameters of an integer population too
            dtype = draw(st.sampled_from([np.int32, np.int16, np.float32])) if hi < 2**15 else np.int32
            blob = draw(blobs(bshape, np.int32, lo, hi, random_ok=False))
            return Blob(blob.data.astype(dtype), name=blob.name)
        special = () if lo > 0 else ("-0.0", "subnormal") if lo == 0 else FINITE_SPECIAL
        return draw(blobs(bshape, np.float32, lo, hi, special=special, random_ok=False))


def _project(draw, b: _Builder, s: _Snn, src: Value, kind: str, out_size: int | None = None) -> Value:
    """A projection of ``kind`` from ``src``; with ``out_size``, it must deliver that many."""
    st_shape = src.type.shape
    common = dict(exponent=draw(st.sampled_from([0, 0, 1, 3])), delay=draw(st.sampled_from([1, 1, 2, 3])))
    if kind == "dense":
        out = out_size or draw(st.integers(1, 6))
        shape = _maybe(draw, _factor_shape(draw, out), ())
        op = snn.Project(src=src, kind="dense", weight=s.weight_blob(draw, (out, src.type.size)),
                         shape=shape, **common)
    elif kind == "conv2d":
        c, h, w = st_shape
        groups = draw(st.sampled_from([g for g in range(1, c + 1) if c % g == 0]))
        out = groups * draw(st.integers(1, 2))
        kernel, strides, pads, dil = _window_attrs(draw, (h, w), True, False)
        op = snn.Project(src=src, kind="conv2d", weight=s.weight_blob(draw, (out, c // groups, *kernel)),
                         strides=strides, pads=pads, dilations=dil, groups=groups, **common)
    elif kind in ("pool", "maxgate"):
        kernel, strides, pads, _ = _window_attrs(draw, st_shape[1:], False, True)
        st_, pd = strides or (1, 1), pads or (0, 0, 0, 0)
        outshape = (st_shape[0], *(pooled_size(st_shape[1 + i], kernel[i], st_[i], pd[i], pd[2 + i], 1, False)
                                   for i in range(2)))
        weight = (s.weight_number(draw) if draw(st.booleans())
                  else s.weight_blob(draw, _broadcast_shape_for(draw, outshape)))
        op = snn.Project(src=src, kind=kind, weight=weight, kernel=kernel, strides=strides, pads=pads, **common)
    elif kind == "one_to_one":
        weight = (s.weight_number(draw) if draw(st.booleans())
                  else s.weight_blob(draw, _broadcast_shape_for(draw, st_shape)))
        shape = _maybe(draw, _factor_shape(draw, src.type.size), ())
        op = snn.Project(src=src, kind="one_to_one", weight=weight, shape=shape, **common)
    else:  # sparse
        n = src.type.size
        target = _factor_shape(draw, out_size) if out_size else _small_shape(draw, draw(st.integers(1, 2)))
        m = math.prod(target)
        counts = draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
        idx_dtype = draw(st.sampled_from([np.int32, np.int64]))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(idx_dtype)
        nnz = int(indptr[-1])
        indices = np.asarray(draw(st.lists(st.integers(0, m - 1), min_size=nnz, max_size=nnz)), dtype=idx_dtype)
        op = snn.Project(src=src, kind="sparse", weight=s.weight_blob(draw, (nnz,)), indptr=Blob(indptr),
                         indices=Blob(indices), shape=target, **common)
    return b.add(op, pool=False)


def _population(draw, b: _Builder, s: _Snn, currents: list[Value], shape) -> Op:
    params = {name: s.param(draw, name, shape) for name in snn.Population.PARAMS}
    params = {k: v for k, v in params.items() if v is not None}
    if s.bits and not any(c.owner.kind == "maxgate" for c in currents) and draw(st.integers(0, 4)) == 0:
        top = min(s.bits - 1, 15)  # bit-shift neurons: shifts below the width, a positive threshold
        params.update(leak="shift", du=draw(st.integers(0, top)), du2=draw(st.integers(0, top)),
                      dv=draw(st.integers(0, top)), threshold=draw(st.integers(1, min(100, 2 ** (s.bits - 1) - 1))),
                      max_spikes=draw(st.sampled_from([1, 31])))
    elif not isinstance(params.get("threshold"), Blob) and draw(st.integers(0, 4)) == 0:
        params["max_spikes"] = draw(st.sampled_from([2, 5]))  # burst neurons (positive thresholds)
    once = params.get("leak") == "shift" or params.get("max_spikes", 1) > 1
    resets = ["subtract", "zero"] if once else list(snn.RESETS)  # shift and burst: no delayed reset
    op = snn.Population(currents=currents, declared_type=SpikeType(tuple(shape)),
                        reset=draw(st.sampled_from(resets)), bits=s.bits, **params)
    b.add(op, pool=False)
    return op


@st.composite
def snn_graphs(draw, max_layers: int = 3) -> Graph:
    """A verified spiking graph: input → encode → layers of projections and populations
    (with recurrent projections defined after the population they feed) → decode → output."""
    s = _Snn(draw)
    b = _Builder(draw, Graph(draw(GRAPH_NAMES), draw(graph_meta())))
    x = _new_input(b, draw(st.sampled_from([1, 3])))
    encoding = draw(st.sampled_from(snn.ENCODINGS))
    if encoding != "spikes" and draw(st.integers(0, 3)) == 0:
        x = b.add(ann.Clip(x=x, min=0.0, max=1.0))
    enc = b.add(snn.Encode(x=x, encoding=encoding, seed=draw(st.integers(0, 2**31 - 1)),
                           scale=draw(st.sampled_from([1.0, 0.5, 3.0])),
                           phase=draw(st.sampled_from([0, 128])) if encoding == "rate" else 0), pool=False)
    sources = [enc]
    pops: list[Op] = []
    for _ in range(draw(st.integers(1, max_layers))):
        src = draw(st.sampled_from(sources))
        kinds = ["dense", "one_to_one", "sparse"] + (["conv2d", "pool", "maxgate"] if src.type.rank == 3 else [])
        first = _project(draw, b, s, src, draw(st.sampled_from(kinds)))
        size = first.type.size
        currents = [first]
        for _ in range(draw(st.integers(0, 1))):
            other = draw(st.sampled_from(sources))
            kind = draw(st.sampled_from(["dense", "sparse"] + (["one_to_one"] if other.type.size == size else [])))
            currents.append(_project(draw, b, s, other, kind, out_size=size))
        shape = first.type.shape if draw(st.booleans()) else _factor_shape(draw, size)
        pops.append(_population(draw, b, s, currents, shape))
        sources.append(pops[-1].result)
    for _ in range(draw(st.integers(0, 2))):
        i = draw(st.integers(0, len(pops) - 1))
        j = draw(st.integers(i, len(pops) - 1))
        target = pops[i]
        kind = draw(st.sampled_from(["dense", "sparse"]))
        target.currents.append(_project(draw, b, s, pops[j].result, kind, out_size=target.result.type.size))
    outs = [pops[-1], *draw(st.lists(st.sampled_from(pops), max_size=1))]
    for pop in outs:
        d = b.add(snn.Decode(x=pop.result, mode=draw(st.sampled_from(["count", "membrane"]))))
        if draw(st.integers(0, 4)) == 0:
            d = b.add(ann.Softmax(x=d))
    if draw(st.integers(0, 2)) == 0:
        _hw_mapping(draw, b, pops)
    b.pool = [v for v in b.pool if v.owner.KIND in ("snn.decode", "ann.softmax")]
    return _finish(b)


def _hw_mapping(draw, b: _Builder, pops: list[Op]) -> None:
    """``hw.core`` ops holding every population (one or two slices each), placed or not, and a
    ``hw.route`` from the host, as ``partition,place,route`` leave them."""
    from nmc.ir import hw

    placed = draw(st.booleans())
    if placed:
        b.g.meta["hw.board"] = [4, 4, 1, 1]
    k = 0
    for pop in pops:
        size = pop.result.type.size
        cut = draw(st.integers(1, size - 1)) if size > 1 and draw(st.booleans()) else size
        for a, c in ((0, cut), (cut, size)):
            if a == c:
                continue
            where = {"chip": (0, 0), "xy": (k % 4, k // 4)} if placed else {}
            b.add(hw.Core(pops=[pop.result], id=k, slices=(a, c), neurons=c - a, **where), pool=False)
            k += 1
    b.add(hw.Route(src=-1, dests=(0,), load=draw(st.sampled_from([0.0, 1.5])), links=1), pool=False)


def graphs():
    """An ``ann`` or an ``snn`` graph."""
    return ann_graphs() | snn_graphs()


# ---------------------------------------------------------------------------------- inputs

TIMESTEPS = 3
BATCH = 2


def inputs_for(graph: Graph, seed: int = 0, timesteps: int = TIMESTEPS) -> list[np.ndarray]:
    """Deterministic inputs for :func:`nmc.semantics.run`: values in [0, 1) for spiking graphs
    (a spike train ``[N, T, ...]`` for inputs of ``spikes`` encoders), normal otherwise."""
    rng = np.random.default_rng(seed)
    spiking = any(op.dialect == "snn" for op in graph.ops)
    arrays = []
    for v in graph.inputs:
        t = v.type
        trains = any(u.KIND == "snn.encode" and u.encoding == "spikes" for u in graph.users(v))
        if trains:
            arrays.append(rng.integers(0, 3, size=(BATCH, timesteps, *t.shape)).astype(t.np_dtype))
        elif spiking:
            arrays.append(rng.uniform(0, 1, size=(BATCH, *t.shape)).astype(t.np_dtype))
        else:
            arrays.append(rng.standard_normal(size=(BATCH, *t.shape)).astype(t.np_dtype))
    return arrays

"""ANN → SNN conversion (rate coding; Diehl et al. 2015, Rueckauer et al. 2017).

Every ReLU becomes a population of IF neurons (threshold 1, so a normalised activation ``a``
becomes a firing rate ``min(1, a)``).  The linear ops between ReLUs become projections into
that population: dense and conv → ``dense``/``conv2d``, average pooling → ``pool``, the
branches of an ``add`` and the parts of a ``concat`` → several projections into one
population, flatten/reshape → nothing (currents meet neurons by flat index), a multiplication
by a constant → a factor in the projection's weights.  Biases become the population's
constant bias current.  The graph's output layer becomes a non-spiking population (infinite
threshold) read by ``snn.decode{mode = membrane}``.  See docs/conversion.md.

While converting, each ann value is one of:

* :class:`Spk` — spikes of an snn op (encoder or population),
* :class:`Cur` — a sum of projections from spiking sources, plus a bias (not yet neurons),
* :class:`Parts` — a concatenation of spiking values (split by whoever consumes it).
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir import snn
from nmc.ir.core import Blob, Graph, Op, Value
from nmc.ir.types import SpikeType
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.windows import window_geometry

#: how far under the threshold a pre-charged neuron stays before its input arrives (a fraction of θ,
#: room for the rounding of v0 and bias to integers)
PRECHARGE_MARGIN = 1 / 64

REFUSED = {
    "ann.sigmoid": "a sigmoid is bounded on both sides and not positively homogeneous; IF neurons with "
                   "rate coding compute only ReLU-like (max(0, x)) activations",
    "ann.tanh": "tanh takes negative values, which a firing rate cannot represent",
    "ann.softmax": "a softmax normalises across neurons, which no population of independent IF neurons can do",
    "ann.log_softmax": "a log-softmax normalises across neurons, which no population of independent IF neurons can do",
    "ann.leaky_relu": "its negative slope needs negative firing rates",
    "ann.prelu": "its negative slope needs negative firing rates",
    "ann.batchnorm": "batch normalisation must be folded into the preceding dense/conv first",
    "ann.transpose": "a transpose of spiking values has no projection form here (canonicalize folds one that "
                     "only permutes channels, a channel shuffle, into the conv or dense before or after it; this "
                     "one moves values across positions, or its neighbours are not such layers)",
    "ann.lrn": "local response normalisation divides each activation by a power of its neighbouring channels' "
               "squares; IF neurons with rate coding compute weighted sums and max(0, x), not that division",
}
HINTS = {
    "ann.softmax": "a softmax at the output is removed by canonicalize (strip-output-softmax); inside the "
                   "network, replace it by a ReLU and retrain",
    "ann.log_softmax": "at the output, canonicalize removes it (strip-output-softmax)",
    "ann.batchnorm": "run canonicalize before convert-to-spiking: it folds a batchnorm into the conv or dense "
                     "before it, or turns one on [C, H, W] values into a depthwise 1x1 conv (batchnorm-to-conv)",
    "ann.lrn": "--convert lrn=scale replaces it by one gain fitted on the calibration data (pass lrn-to-scale, "
               "an approximation whose error and top-1 agreement are reported; docs/conversion.md), "
               "or retrain the network without LRN",
}


@dataclass
class Spk:
    """Spikes of ``value`` (an encoder or a population), seen with the ann ``shape``."""

    value: Value
    shape: tuple
    depth: int  # projections between the encoder and this op
    unit: float = 1.0  # the activation one spike stands for (1/B for burst neurons of B spikes)


@dataclass
class Term:
    """One projection to be made: ``fields`` of an ``snn.project`` reading ``src``."""

    src: Spk
    fields: dict

    def scaled(self, factor: float) -> Term:
        w = self.fields["weight"]
        w = Blob(w.data.astype(np.float64) * factor, w.name) if isinstance(w, Blob) else float(w) * factor
        return Term(self.src, {**self.fields, "weight": w})

    def nonnegative(self) -> bool:
        w = self.fields["weight"]
        return bool(np.all((w.data if isinstance(w, Blob) else np.asarray(w)) >= 0))


@dataclass
class Cur:
    """Σ of projections into ``shape`` plus ``bias`` (flat, per neuron) — a linear value."""

    terms: list[Term]
    shape: tuple
    bias: np.ndarray | None = None

    @property
    def size(self) -> int:
        return int(np.prod(self.shape))


@dataclass
class Parts:
    """Spiking values joined along per-sample ``axis``, part ``i`` standing for its spikes ×
    ``factors[i]`` (a positive scale from a multiplication by a constant, which the readers —
    dense and conv weights, average pools — take into their weights; none: all 1)."""

    parts: list[Spk]
    axis: int
    shape: tuple
    factors: tuple = ()

    def factor(self, i: int) -> float:
        return self.factors[i] if self.factors else 1.0


@dataclass
class Converter:
    graph: Graph
    ctx: PassContext
    options: ConvertToSpiking
    ops: list[Op] = field(default_factory=list)
    env: dict = field(default_factory=dict)

    # -- helpers --------------------------------------------------------------------------

    def refuse(self, op: Op, why: str, hint: str | None = None) -> NmcError:
        return NmcError(f"cannot convert '{op.KIND}' to spiking neurons: {why}", op.loc, hint=hint)

    def emit(self, op: Op, name: str | None = None) -> Value:
        self.ops.append(op)
        if name and op.result is not None:
            op.result.name = name
        return op.result

    def spikes_of(self, op: Op, v: Value) -> Spk | Parts:
        """The operand as spikes, materialising a non-negative linear value as IF neurons."""
        x = self.env.get(v)
        if isinstance(x, Spk | Parts):
            return x
        if isinstance(x, Cur):
            if all(t.nonnegative() for t in x.terms) and (x.bias is None or np.all(x.bias >= 0)):
                self.env[v] = self.population(x, op, name=v.name)  # later readers share these neurons
                return self.env[v]
            raise self.refuse(op, "its input is a linear layer that may be negative and has no ReLU after it",
                              hint="put a ReLU between linear layers (average pooling of spikes needs none)")
        raise self.refuse(op, f"its input %{v.name} is not a spiking value")

    def linear_of(self, op: Op, v: Value) -> Cur:
        x = self.env.get(v)
        if isinstance(x, Cur):
            return x
        if isinstance(x, Spk):
            return Cur([Term(x, {"kind": "one_to_one", "weight": 1.0})], x.shape)
        if isinstance(x, Parts) and len(x.parts) == 1:  # scaled spikes
            return Cur([Term(x.parts[0], {"kind": "one_to_one", "weight": x.factor(0)})], x.shape)
        if isinstance(x, Parts) and x.axis == 0 and len(x.shape) == 3:
            return self.embedded(x)
        raise self.refuse(op, f"its input %{v.name} is a concatenation not along the channels of an image, "
                              "which only dense and conv layers can read", hint="feed the concat into a dense or conv layer")

    def embedded(self, x: Parts) -> Cur:
        """A channel concatenation of spikes as a linear value (e.g. read by an add): each part
        placed at its channel offset by a 1×1 ``conv2d`` projection whose weight is the part's
        factor on the diagonal of its block and 0 elsewhere (shared weights: ``C × c_part``
        per output position; an explicit one-to-one list would turn the whole population's
        mapping into synapse lists)."""
        c, terms, start = x.shape[0], [], 0
        for i, p in enumerate(x.parts):
            n = p.shape[0]
            w = np.zeros((c, n, 1, 1), np.float32)
            w[start + np.arange(n), np.arange(n), 0, 0] = x.factor(i)
            terms.append(Term(p, {"kind": "conv2d", "weight": Blob(w), "strides": (1, 1), "pads": (0, 0, 0, 0),
                                  "dilations": (1, 1), "groups": 1}))
            start += n
        self.ctx.stat("concats-embedded")
        return Cur(terms, x.shape)

    def project(self, term: Term, name: str | None) -> Value:
        if term.src.unit != 1.0:  # each spike of a burst source is 1/B of an activation
            term = term.scaled(term.src.unit)
        fields = dict(term.fields)
        w = fields["weight"]
        if isinstance(w, Blob) and w.data.dtype != np.float32:
            fields["weight"] = Blob(w.data.astype(np.float32), w.name)
        return self.emit(snn.Project(src=term.src.value, **fields), name)

    def population(self, cur: Cur, op: Op, name: str | None, *, spiking: bool = True,
                   threshold: float = 1.0, reset: str | None = None, v0: float | None = None) -> Spk:
        """IF neurons integrating ``cur`` (see the module docstring); with ``burst = B`` the
        spiking ones (not the relays of max pooling, which pass their own ``reset``) are burst
        neurons of threshold ``1/B`` emitting up to ``B`` spikes per step, each read as ``1/B``."""
        depth = max(t.src.depth + t.fields.get("delay", 1) for t in cur.terms)
        burst = self.options.burst if spiking and reset is None else 1
        threshold = threshold / burst
        currents = [self.project(t, f"{name}.in{i}" if name else None) for i, t in enumerate(cur.terms)]
        bias = np.zeros(cur.size) if cur.bias is None else np.asarray(cur.bias, dtype=np.float64).reshape(-1)
        v0 = (self.options.v0 * threshold if spiking else 0.0) if v0 is None else v0
        v0s = v0 - (depth - 1) * bias if self.options.bias_correction else np.full(cur.size, v0)
        if spiking and self.options.bias_correction and depth > 1:
            v0s, bias = _no_early_spikes(v0, v0s, bias, threshold, depth, self.options.timesteps)
        pop = snn.Population(currents=currents, threshold=threshold if spiking else float("inf"),
                             bias=_param(bias, cur.shape, f"{name}.bias" if name else None),
                             v0=_param(v0s, cur.shape, f"{name}.v0" if name else None),
                             reset=reset or self.options.reset, max_spikes=burst,
                             declared_type=SpikeType(tuple(cur.shape)), loc=op.loc)
        self.emit(pop, name)
        self.ctx.stat("populations")
        self.ctx.stat("neurons", cur.size)
        return Spk(pop.result, tuple(cur.shape), depth, threshold if burst > 1 else 1.0)

    # -- ops ------------------------------------------------------------------------------

    def weighted(self, op: Op) -> Cur:
        fused = self.fuse_pooling(op) if self.options.fuse_pooling else None
        if fused is not None:
            return fused
        x = self.spikes_of(op, op.x)
        weight = op.weight
        if isinstance(x, Parts) and len(x.parts) == 1:  # scaled spikes: the factor goes into the weight
            x, factor = x.parts[0], x.factor(0)
            if factor != 1.0:
                weight = Blob(op.weight.data.astype(np.float64) * factor, op.weight.name)
        w = weight.data.astype(np.float64)
        bias = None if op.bias is None else np.repeat(op.bias.data.astype(np.float64),
                                                      int(np.prod(op.result.type.shape[1:])))
        out = tuple(op.result.type.shape)
        if op.KIND == "ann.dense":
            parts = x.parts if isinstance(x, Parts) else [x]
            cols = np.cumsum([0] + [int(np.prod(p.shape)) for p in parts])
            factor = x.factor if isinstance(x, Parts) else lambda i: 1.0
            terms = [Term(p, {"kind": "dense", "weight": Blob(w[:, a:b] * factor(i),
                                                              _part_name(op.weight.name, i, len(parts)))})
                     for i, (p, a, b) in enumerate(zip(parts, cols[:-1], cols[1:]))]
            return Cur(terms, out, bias)
        if len(op.weight.shape) != 4:
            raise self.refuse(op, "only 2-D convolutions have a spiking form (snn.project kind conv2d)")
        geometry = {"strides": op.strides, "pads": op.pads, "dilations": op.dilations, "groups": op.groups}
        if isinstance(x, Parts):
            if x.axis != 0 or op.groups != 1:
                raise self.refuse(op, "it reads a concatenation that is not along channels (or uses groups)")
            chans = np.cumsum([0] + [p.shape[0] for p in x.parts])
            terms = [Term(p, {"kind": "conv2d", "weight": Blob(w[:, a:b] * x.factor(i),
                                                               _part_name(op.weight.name, i, len(x.parts))),
                              **geometry}) for i, (p, a, b) in enumerate(zip(x.parts, chans[:-1], chans[1:]))]
            return Cur(terms, out, bias)
        self.require_image(op, x)
        return Cur([Term(x, {"kind": "conv2d", "weight": weight, **geometry})], out, bias)

    def fuse_pooling(self, op: Op) -> Cur | None:
        """A dense or conv reading an average pool of spikes, as one projection from the pool's
        source (None when not exact): the pool must tile its input (kernel = strides, no pads,
        one weight) and the conv be undilated; a conv's pads grow by the pool's factor."""
        x = self.env.get(op.x)
        if not (isinstance(x, Cur) and len(x.terms) == 1 and x.bias is None
                and x.terms[0].fields["kind"] == "pool" and not isinstance(x.terms[0].fields["weight"], Blob)):
            return None
        src, pool = x.terms[0].src, x.terms[0].fields
        kernel, (c, h, w) = pool["kernel"], src.shape
        if (tuple(pool["strides"]) != tuple(kernel) and (h, w) != tuple(kernel)) or any(pool["pads"]) \
                or h % kernel[0] or w % kernel[1]:
            return None
        spread = np.ones(kernel) * float(pool["weight"])  # each pooled weight spread over its window
        weight = op.weight.data.astype(np.float64)
        out = tuple(op.result.type.shape)
        bias = None if op.bias is None else np.repeat(op.bias.data.astype(np.float64), int(np.prod(out[1:])))
        if op.KIND == "ann.dense":
            pooled = (c, h // kernel[0], w // kernel[1])
            fused = np.kron(weight.reshape(len(weight), *pooled), spread).reshape(len(weight), -1)
            fields = {"kind": "dense"}
        elif (h, w) == tuple(kernel) or tuple(op.dilations) != (1, 1) or len(op.weight.shape) != 4:
            return None
        else:
            fused = np.kron(weight, spread)
            fields = {"kind": "conv2d", "strides": tuple(s * k for s, k in zip(op.strides, kernel)),
                      "pads": tuple(p * kernel[i % 2] for i, p in enumerate(op.pads)), "dilations": (1, 1),
                      "groups": op.groups}
        self.ctx.stat("pools-fused")
        name = f"{op.weight.name}.fused" if op.weight.name else None
        return Cur([Term(src, {**fields, "weight": Blob(fused.astype(np.float32), name)})], out, bias)

    def require_image(self, op: Op, x: Spk) -> None:
        if len(x.shape) != 3 or tuple(x.value.type.shape) != tuple(x.shape):
            raise self.refuse(op, f"it needs [C, H, W] spikes, its input is {list(x.shape)} "
                                  f"(held by neurons of shape {list(x.value.type.shape)})")

    def per_part(self, op: Op, x: Parts, pool, factors: tuple = ()) -> Parts:
        """A pooling op over a channel concatenation, as the concatenation of each part's
        pooling (pooling acts on each channel alone); ``pool(op, i, name)`` pools part ``i``
        into spikes; ``factors``: the parts' scales after it."""
        if x.axis != 0:
            raise self.refuse(op, "pooling a concatenation that is not along channels is not supported")
        n = len(x.parts)
        parts = [pool(op, i, _part_name(op.result.name, i, n)) for i in range(n)]
        return Parts(parts, 0, tuple(op.result.type.shape), factors)

    def avgpool(self, op: Op) -> Cur | Parts:
        x = self.spikes_of(op, op.x)
        if isinstance(x, Parts):  # each part's average (× its factor) as IF neurons: a linear value cannot be concatenated
            def pool(o, i, name):
                avg = self.avgpool_of(o, x.parts[i])
                return self.population(Cur([t.scaled(x.factor(i)) for t in avg.terms], avg.shape), o, name)

            return self.per_part(op, x, pool)
        return self.avgpool_of(op, x)

    def avgpool_of(self, op: Op, x: Spk) -> Cur:
        self.require_image(op, x)
        if op.KIND == "ann.global_avgpool":
            kernel, strides, pads = tuple(x.shape[1:]), (1, 1), (0, 0, 0, 0)
            weight = 1.0 / (x.shape[1] * x.shape[2])
        else:
            if len(op.kernel) != 2:
                raise self.refuse(op, "only 2-D pooling has a spiking form")
            kernel, strides, pads = op.kernel, op.strides, op.pads
            ceil = window_geometry(x.shape[1:], kernel, strides, pads, (1, 1), op.ceil_mode)[0]
            floor = window_geometry(x.shape[1:], kernel, strides, pads, (1, 1), False)[0]
            if ceil != floor:
                raise self.refuse(op, "ceil_mode adds windows a pool projection does not have",
                                  hint="pad the input explicitly instead of ceil_mode")
            cells = semantics.window_sum(np.ones((1, 1, *x.shape[1:])), kernel, strides, pads)[0]
            count = np.full_like(cells, float(np.prod(kernel))) if op.count_include_pad else cells
            weight = 1.0 / count
            weight = float(weight.flat[0]) if np.all(weight == weight.flat[0]) else Blob(weight.astype(np.float32))
        fields = {"kind": "pool", "weight": weight, "kernel": tuple(kernel), "strides": tuple(strides), "pads": tuple(pads)}
        return Cur([Term(x, fields)], _pooled(op, x))

    def maxpool(self, op: Op) -> Spk | Parts:
        """Max pooling into relay neurons (threshold 0.5, reset to zero), which fire in a step
        when their projection delivered a spike.  ``maxpool=gate`` (default): a ``maxgate``
        projection passes only the spikes of the window's input with the most spikes so far
        (Rueckauer et al. 2017), whose rate tends to the largest input rate.  ``maxpool=or``: a
        spiking OR (pool weight 1): a neuron fires when any neuron of its window fired; its rate
        is at least the largest input rate, and equals it when the window's spikes coincide."""
        x = self.env.get(op.x)
        if isinstance(x, Parts):  # max(f·a) = f·max(a) for f > 0: the factors stay
            return self.per_part(op, x, lambda o, i, name: self.maxpool_of(o, x.parts[i], name), x.factors)
        if not isinstance(x, Spk):
            raise self.refuse(op, "max pooling has no exact spiking form and this one reads a linear value",
                              hint="apply the ReLU before the MaxPool (they commute), so the pool reads spikes")
        return self.maxpool_of(op, x, op.result.name)

    def maxpool_of(self, op: Op, x: Spk, name: str | None) -> Spk:
        self.require_image(op, x)
        if len(op.kernel) != 2 or op.dilations != (1, 1) or op.ceil_mode:
            raise self.refuse(op, "only 2-D max pooling without dilation or ceil_mode has a spiking form")
        if self.options.maxpool == "tree":
            return self.max_tree(op, x, name)
        if self.options.burst > 1:
            raise self.refuse(op, f"maxpool={self.options.maxpool} relays one spike per step, but burst neurons "
                                  f"(burst={self.options.burst}) send several", hint="convert with maxpool=tree")
        gate = self.options.maxpool == "gate"
        fields = {"kind": "maxgate" if gate else "pool", "weight": 1.0, "kernel": tuple(op.kernel),
                  "strides": op.strides, "pads": op.pads}
        cur = Cur([Term(x, fields)], _pooled(op, x))
        if gate:
            self.ctx.remark(f"max pooling %{name} by a gate passing the spikes of its window's most "
                            "active input (maxpool=gate, docs/conversion.md)")
        else:
            self.ctx.remark(f"max pooling %{name} approximated by a spiking OR of its window "
                            "(maxpool=or, docs/conversion.md)")
        return self.population(cur, op, name, threshold=0.5, reset="zero", v0=0.0)

    def max_tree(self, op: Op, x: Spk, name: str | None) -> Spk:
        """``maxpool=tree``: the window's maximum from the identity ``max(a, b) = b + relu(a − b)``,
        applied as a tournament: each round pairs the window's values and makes
        IF neurons of ``a − b`` (``relu`` as a firing rate); a value is a sum of projections (a
        window element is a one-hot depthwise conv of the source; each round adds a population
        read one-to-one), and the last sum feeds relay neurons that hold the maximum as one spike
        train.  Stateless synapses only, so every target runs it, at ``k − 1`` populations of
        the pooled size for a ``k``-element window and ``⌈log2 k⌉ + 1`` steps from input to output; delays
        align every sum's terms to arrive as if from the same step.  A pad cell is a 0, which
        never changes the maximum of spike rates."""
        c = x.shape[0]
        kh, kw = op.kernel
        out = _pooled(op, x)
        geometry = {"strides": tuple(op.strides), "pads": tuple(op.pads), "dilations": (1, 1), "groups": c}

        def element(i: int, j: int) -> Cur:
            w = np.zeros((c, 1, kh, kw), np.float32)
            w[:, 0, i, j] = 1.0
            return Cur([Term(x, {"kind": "conv2d", "weight": Blob(w), **geometry})], out)

        values = [element(i, j) for i in range(kh) for j in range(kw)]
        level = 0
        while len(values) > 1:
            paired = []
            for k, (a, b) in enumerate(zip(values[0::2], values[1::2])):
                diff = _aligned(a.terms + [t.scaled(-1.0) for t in b.terms], out)
                relu = self.population(diff, op, f"{name}.max{level}.{k}")
                paired.append(Cur([Term(relu, {"kind": "one_to_one", "weight": 1.0})] + b.terms, out))
            values = paired + values[2 * len(paired):]
            level += 1
        self.ctx.remark(f"max pooling %{name} by a tournament of IF neurons, max(a, b) = b + relu(a - b) "
                        f"({level} rounds; maxpool=tree, docs/conversion.md)")
        return self.population(_aligned(values[0].terms, out), op, name)

    def add(self, op: Op) -> Cur:
        a, b = self.linear_of(op, op.a), self.linear_of(op, op.b)
        if a.size != b.size or tuple(op.result.type.shape) != tuple(a.shape):
            raise self.refuse(op, "its operands differ in shape (broadcasting has no projection form)")
        bias = _add_bias(a.bias, b.bias, a.size)
        return Cur(a.terms + b.terms, a.shape, bias)

    def mul(self, op: Op):
        const = [_scalar(v) for v in (op.a, op.b)]
        if const[0] is None and const[1] is None:
            raise self.refuse(op, "only a multiplication by a one-element constant has a projection form")
        factor, v = (const[1], op.a) if const[1] is not None else (const[0], op.b)
        x = self.env.get(v)
        if isinstance(x, Spk) and factor > 0:  # spikes scaled (lrn=scale's gain): readers scale, pools pass it on
            return Parts([x], 0, x.shape, (factor,))
        if isinstance(x, Parts) and factor > 0:  # a concatenation rescaled (normalize's joins): its readers scale
            return replace(x, factors=tuple(x.factor(i) * factor for i in range(len(x.parts))))
        x = self.linear_of(op, v)
        return Cur([t.scaled(factor) for t in x.terms], x.shape, None if x.bias is None else x.bias * factor)

    def concat(self, op: Op) -> Parts:
        parts, factors = [], []
        for v in op.inputs:
            x = self.spikes_of(op, v)
            if isinstance(x, Parts) and x.axis != op.axis:
                raise self.refuse(op, "nested concatenations along different axes are not supported")
            if isinstance(x, Parts):
                parts.extend(x.parts)
                factors.extend(x.factor(i) for i in range(len(x.parts)))
            else:
                parts.append(x)
                factors.append(1.0)
        return Parts(parts, op.axis, tuple(op.result.type.shape), tuple(factors) if any(f != 1.0 for f in factors) else ())

    def reshape(self, op: Op):
        x = self.env.get(op.x)
        shape = tuple(op.result.type.shape)
        if isinstance(x, Spk | Cur):
            return replace(x, shape=shape)
        if isinstance(x, Parts) and len(x.parts) == 1:
            return replace(x, parts=[replace(x.parts[0], shape=shape)], shape=shape)
        if isinstance(x, Parts) and x.axis == 0 and len(shape) == 1:  # channel-major parts stay contiguous
            return Parts([replace(p, shape=(int(np.prod(p.shape)),)) for p in x.parts], 0, shape, x.factors)
        raise self.refuse(op, "this reshape of a concatenation mixes its parts")

    def relu_like(self, op: Op):
        x = self.env.get(op.x)
        if op.KIND == "ann.clip" and (op.min != 0.0 or op.max < 1.0):
            raise self.refuse(op, f"clip to [{op.min}, {op.max}] differs from the IF neuron's range [0, 1] "
                                  "(after normalisation)", hint="normalize first; only min = 0 and max >= 1 convert")
        if isinstance(x, Spk | Parts):
            return x  # spikes are never negative
        return self.population(x, op, op.result.name)

    def output(self, op: Op) -> list[Value]:
        decoded = []
        for v in op.values:
            x = self.env.get(v)
            if isinstance(x, Parts) and len(x.parts) == 1:
                x = self.linear_of(op, v)
            if isinstance(x, Cur):
                spk = self.population(x, op, v.name, spiking=False)
                mode = "membrane"
            elif isinstance(x, Spk) and x.value.owner.KIND == "snn.population":
                spk, mode = x, "count"
            else:
                raise self.refuse(op, f"output %{v.name} is not computed by neurons")
            decoded.append(self.emit(snn.Decode(x=spk.value, mode=mode, loc=op.loc), f"{v.name}.out" if v.name else None))
        return decoded

    def run(self) -> None:
        inputs, outputs = [], None
        for op in self.graph.ops:
            kind = op.KIND
            if kind == "ann.input":
                inputs.append(op)
                rate = self.options.encoding == "rate"  # an IF neuron of the input: it starts at v0 too
                enc = snn.Encode(x=op.result, encoding=self.options.encoding, seed=self.ctx.seed,
                                 phase=min(255, max(0, round(self.options.v0 * 256))) if rate else 0, loc=op.loc)
                self.env[op.result] = Spk(self.emit(enc, f"{op.result.name}.enc"), tuple(op.result.type.shape), 0)
                peak = float(op.extra.get("calib.max", 0.0))
                if self.options.encoding in ("rate", "poisson") and peak > 1.0 + 1e-6:
                    raise NmcError(f"input %{op.result.name} reaches {peak:g} in the calibration data, but "
                                   f"{self.options.encoding} encoding takes values in [0, 1] (it would clip the "
                                   "rest, and the thresholds calibrated for them would silence the network)", op.loc,
                                   hint="scale the data to [0, 1] (images: x / 255), or use "
                                        "convert-to-spiking{encoding=current}")
            elif kind == "ann.constant":
                self.env[op.result] = None
            elif kind in ("ann.dense", "ann.conv"):
                self.env[op.result] = self.weighted(op)
            elif kind in ("ann.avgpool", "ann.global_avgpool"):
                self.env[op.result] = self.avgpool(op)
            elif kind == "ann.maxpool":
                self.env[op.result] = self.maxpool(op)
            elif kind in ("ann.relu", "ann.clip"):
                self.env[op.result] = self.relu_like(op)
            elif kind == "ann.add":
                self.env[op.result] = self.add(op)
            elif kind == "ann.mul":
                self.env[op.result] = self.mul(op)
            elif kind == "ann.concat":
                self.env[op.result] = self.concat(op)
            elif kind in ("ann.flatten", "ann.reshape"):
                self.env[op.result] = self.reshape(op)
            elif kind in ("ann.identity", "ann.dropout"):
                self.env[op.result] = self.env.get(op.x)
            elif kind == "ann.output":
                outputs = op.with_changes(values=self.output(op))
            elif kind == "ann.lrn" and self.options.lrn == "scale":
                raise self.refuse(op, "lrn=scale needs the pass lrn-to-scale before calibrate",
                                  hint="nmc compile and nmc eval insert it with --convert lrn=scale; in a "
                                       "hand-written pipeline put lrn-to-scale after canonicalize")
            elif kind in REFUSED:
                raise self.refuse(op, REFUSED[kind], HINTS.get(kind))
            elif op.dialect == "ann":
                raise self.refuse(op, "no conversion rule for this op")
            else:
                raise self.refuse(op, "the graph is already (partly) spiking")
        self.graph.ops = inputs + self.ops + ([outputs] if outputs is not None else [])


def _aligned(terms: list[Term], shape: tuple) -> Cur:
    """``Σ terms`` with delays that make every term arrive in the step the deepest one does,
    and the terms that differ only in weight (same source and geometry) summed into one."""
    deepest = max(t.src.depth + t.fields.get("delay", 1) for t in terms)
    merged: dict = {}
    for t in terms:
        fields = {**t.fields, "delay": deepest - t.src.depth}
        key = (id(t.src.value), repr(sorted((k, v) for k, v in fields.items() if k != "weight")))
        if key in merged:
            w0, w1 = (np.asarray(f["weight"].data if isinstance(f["weight"], Blob) else f["weight"], np.float64)
                      for f in (merged[key].fields, fields))
            merged[key] = Term(t.src, {**fields, "weight": Blob(w0 + w1) if w0.ndim else float(w0 + w1)})
        else:
            merged[key] = Term(t.src, fields)
    return Cur(list(merged.values()), shape)


def _pooled(op: Op, x: Spk) -> tuple:
    """The shape a pooling ``op`` gives spikes ``x`` (one part of a concatenation, or all of its input)."""
    return (x.shape[0], *op.result.type.shape[1:])


def _param(values: np.ndarray, shape: tuple, name: str | None):
    """A per-neuron parameter: a number when all neurons share it, else a blob of ``shape``."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    return Blob(flat.reshape(shape).astype(np.float32), name)


def _scalar(v: Value) -> float | None:
    o = v.owner
    if o is not None and o.KIND == "ann.constant" and o.value.size == 1:
        return float(o.value.data.reshape(-1)[0])
    return None


def _no_early_spikes(v0: float, v0s: np.ndarray, bias: np.ndarray, threshold: float, depth: int,
                     timesteps: int) -> tuple[np.ndarray, np.ndarray]:
    """``(v0, bias)`` per neuron such that no neuron fires before its input arrives.

    A negative bias ``b`` acting for the ``depth − 1`` steps before the input is cancelled by
    starting at ``v0 − (depth − 1)·b``; when that start plus one step's ``b`` reaches the
    threshold, the neuron would fire at step 0, a spike no later input takes back (the voltage
    only falls).  Such a neuron instead starts just under the threshold, ``top − b'``, with the
    bias ``b' = (v0 + T·b − top) / (T + depth − 2)``: its voltage falls until the input comes,
    and the charge it holds at the end of its window of ``T`` steps, ``v0 + T·b`` plus the
    input, is unchanged (``top = θ·(1 − PRECHARGE_MARGIN)``; ``b < b' < 0``)."""
    top = threshold * (1 - PRECHARGE_MARGIN)
    early = v0s + np.minimum(bias, 0.0) > top
    if not np.any(early):
        return v0s, bias
    moved = (v0 + timesteps * bias - top) / (timesteps + depth - 2)
    return np.where(early, top - moved, v0s), np.where(early, moved, bias)


def _add_bias(a, b, size):
    if a is None and b is None:
        return None
    return (np.zeros(size) if a is None else a) + (np.zeros(size) if b is None else b)


def _part_name(name: str | None, i: int, n: int) -> str | None:
    return name if n == 1 or name is None else f"{name}.{i}"


@register_pass("convert-to-spiking")
class ConvertToSpiking(Pass):
    """Convert a (normalised) ``ann`` graph into a float ``snn`` graph of IF neurons.

    Requires: an ``ann`` graph of dense/conv(2-D)/relu/clip/avgpool/global_avgpool/maxpool/
    add/mul-by-constant/concat/flatten/reshape, without batchnorm (fold it first) and without
    sigmoid, tanh or softmax (refused with the op's location).  Normalisation (the normalize
    pass) is not required but without it rates saturate.
    Ensures: every ReLU is an IF population (threshold 1, ``reset``, initial voltage ``v0``
    thresholds, bias = the layer's bias); the output layer is a non-spiking population read
    with ``snn.decode{mode = membrane}``; ``meta.timesteps = timesteps``.  With
    ``bias-correction`` each population starts at ``v0 - (depth - 1) · bias`` so that the
    bias acting before the first input arrives (``depth - 1`` steps) is cancelled.  A ``rate``
    encoder, an IF neuron of the input, starts its accumulator at ``v0`` too (``phase =
    round(256 · v0)``, within [0, 255]): with v0 = ½ it presents ``x`` as ``round(T·x)`` spikes
    rather than ``⌊T·x⌋``.  ``spikes``: the input is a spike train ``[samples, T, *shape]``
    encoded outside the graph (its length sets the steps); such a graph, converted with
    ``reset=zero`` and ``v0=0``, can be exported to NIR (docs/nir.md).
    ``maxpool``: how max pooling converts, ``gate`` (a ``maxgate`` projection, stateful: the
    CPU runtime and the reference run it, chips whose synapses keep no state do not), ``tree``
    (a tournament of IF neurons, ``max(a, b) = b + relu(a − b)``; the default of such chips) or
    ``or`` (a spiking OR); see :meth:`Converter.maxpool` and :meth:`Converter.max_tree`.
    ``lrn``: ``refuse`` (the default) refuses ``ann.lrn``; ``scale`` says that the pipeline
    replaces it by a fitted gain first (the pass ``lrn-to-scale``, which ``nmc compile`` and
    ``nmc eval`` insert after ``canonicalize`` for this option).  Max and average pooling of a
    channel concatenation pool each part.  ``burst = B > 1``: every IF population becomes burst
    neurons (``max_spikes = B``) of threshold ``1/B`` (and ``v0 · 1/B``), whose spikes the
    projections they feed weigh ``1/B`` each: a rate code of ``B·T + 1`` levels in ``T`` steps,
    for which normalize fits the layers with its own ``burst = B`` (docs/conversion.md)."""

    timesteps: int = 32
    reset: Literal["subtract", "zero"] = "subtract"
    encoding: Literal["rate", "poisson", "current", "spikes"] = "rate"
    v0: float = 0.5
    bias_correction: bool = True
    fuse_pooling: bool = True
    maxpool: Literal["gate", "or", "tree"] = "gate"
    lrn: Literal["refuse", "scale"] = "refuse"
    burst: int = 1

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if self.timesteps < 1:
            raise NmcError(f"convert-to-spiking: timesteps must be at least 1, got {self.timesteps}")
        if not 1 <= self.burst <= snn.MAX_SPIKES:
            raise NmcError(f"convert-to-spiking: burst must lie in 1..{snn.MAX_SPIKES}, got {self.burst}")
        modes = getattr(getattr(ctx.target, "formats", None), "reset_modes", None)
        if modes is not None and self.reset not in modes:
            raise NmcError(f"convert-to-spiking: the target's neurons do not support reset '{self.reset}'",
                           hint=f"the target supports: {', '.join(modes)}")
        if not graph.meta.get("normalized"):
            ctx.remark("the graph is not normalised (run calibrate,normalize first); rates may saturate")
        Converter(graph, ctx, self).run()
        graph.meta["timesteps"] = self.timesteps
        return True

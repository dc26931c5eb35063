"""The reference semantics: what every graph means (docs/design.md §5).  Plain numpy, for clarity.

This module is the oracle every executor (CPU runtime, chip emulators) is tested against.

* ``ann.*`` ops follow ONNX exactly (NCHW; ``pads`` = begins then ends; floor or ceil window
  counts; dilations; groups; ``count_include_pad``).  Arrays carry a leading batch axis;
  each op computes in float64 and rounds its result to its declared element type.
* ``snn.*`` graphs run in discrete steps.  A population integrates at step ``t`` the spikes
  its sources emitted at ``t - d`` (``d`` = the projection's delay).  Input presented at step
  ``t`` (``0 <= t < T``) counts as emitted at ``t - 1``: the host injects it before the step,
  so a first population sees it at ``t + d - 1`` and a feed-forward path of total delay ``D``
  needs ``T + D - 1`` steps (:func:`latency_steps`).
* Float populations compute in float64 without saturation; integer populations (``bits = B``)
  compute in int64 and saturate current and voltage to B-bit signed range, as Lava's
  bit-accurate Loihi model does.

Entry points: :func:`run_ann`, :func:`run_snn`, :func:`run` (either), :func:`eval_op` (one
ann op on batched arrays), :func:`classify`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np

from nmc import neuron
from nmc.binding import InputSpec, bind_arrays
from nmc.binding import resolve_timesteps as resolve_steps
from nmc.diagnostics import NmcError
from nmc.ir.core import Blob, Graph, Op, Value, param_array
from nmc.neuron import RATE_ONE, NeuronParams, NeuronState, ShiftNeuronState  # noqa: F401  (RATE_ONE: re-exported)
from nmc.windows import cover_counts, pad_spatial, window_geometry, window_views


# ------------------------------------------------------------------------------ windows


def conv(x, w, strides, pads, dilations, groups):
    """ONNX Conv without bias: ``x`` [N, C, *spatial], ``w`` [O, C/groups, *kernel]."""
    kernel = w.shape[2:]
    out, extra = window_geometry(x.shape[2:], kernel, strides, pads, dilations)
    padded = pad_spatial(x, pads, extra, 0.0)
    n_out, c_group = w.shape[0], w.shape[1]
    o_group = n_out // groups
    y = np.zeros((x.shape[0], n_out, *out), dtype=np.result_type(x, w))
    for offset, view in window_views(padded, kernel, strides, dilations, out):
        for g in range(groups):
            xs = view[:, g * c_group:(g + 1) * c_group]
            ws = w[(slice(g * o_group, (g + 1) * o_group), slice(None)) + offset]
            y[:, g * o_group:(g + 1) * o_group] += np.einsum("nc...,oc->no...", xs, ws)
    return y


def _sumwindow_views(padded, kernel, strides, out):
    """Sum of each (undilated) window of an already padded ``[N, C, *spatial]`` array."""
    views = [v for _, v in window_views(padded, kernel, strides, (1,) * len(kernel), out)]
    return np.add.reduce(views)


def window_sum(x, kernel, strides, pads, ceil_mode=False):
    """Sum of each pooling window of ``x`` [N, C, *spatial], zero padded."""
    out, extra = window_geometry(x.shape[2:], kernel, strides, pads, (1,) * len(kernel), ceil_mode)
    return _sumwindow_views(pad_spatial(x, pads, extra, 0), kernel, strides, out)


def _maxpool(op, x):
    out, extra = window_geometry(x.shape[2:], op.kernel, op.strides, op.pads, op.dilations, op.ceil_mode)
    padded = pad_spatial(x, op.pads, extra, -np.inf)
    return np.maximum.reduce([v for _, v in window_views(padded, op.kernel, op.strides, op.dilations, out)])


def _avgpool(op, x):
    """ONNX AveragePool: the divisor counts the real cells of each window, plus the explicit
    pads when ``count_include_pad``; never the overhang that ``ceil_mode`` adds."""
    n = len(op.kernel)
    out, extra = window_geometry(x.shape[2:], op.kernel, op.strides, op.pads, (1,) * n, op.ceil_mode)
    total = _sumwindow_views(pad_spatial(x, op.pads, extra, 0.0), op.kernel, op.strides, out)
    cells = pad_spatial(np.ones((1, 1, *x.shape[2:])), op.pads, (0,) * n, float(op.count_include_pad))
    cells = pad_spatial(cells, (0,) * (2 * n), extra, 0.0)
    return total / _sumwindow_views(cells, op.kernel, op.strides, out)


# ------------------------------------------------------------------------------ ann ops


def _per_sample(arr: np.ndarray, rank: int) -> np.ndarray:
    """``arr`` [N, *shape] with ones inserted after the batch axis up to ``rank`` sample axes
    (numpy broadcasting of per-sample shapes, aligned from the right)."""
    missing = rank - (arr.ndim - 1)
    return arr.reshape(arr.shape[:1] + (1,) * missing + arr.shape[1:])


def _axis(axis: int) -> int:
    """A per-sample axis as an axis of the batched array."""
    return axis + 1 if axis >= 0 else axis


def _softmax(x, axis):
    z = x - np.max(x, axis=axis, keepdims=True)
    e = np.exp(z)
    return e / np.sum(e, axis=axis, keepdims=True)


def _lrn(op, x):
    """ONNX LRN over axis 1 of the batched array (the channels)."""
    c = x.shape[1]
    lo, hi = (op.size - 1) // 2, op.size - 1 - (op.size - 1) // 2
    sq = np.concatenate([np.zeros((x.shape[0], lo, *x.shape[2:])), x * x,
                         np.zeros((x.shape[0], hi, *x.shape[2:]))], axis=1)
    window = np.cumsum(np.concatenate([np.zeros((x.shape[0], 1, *x.shape[2:])), sq], axis=1), axis=1)
    total = window[:, op.size:op.size + c] - window[:, :c]
    return x / (op.bias + op.alpha / op.size * total) ** op.beta


def _dense(op, x):
    y = x @ op.weight.data.astype(np.float64).T
    return y + op.bias.data if op.bias is not None else y


def _conv_op(op, x):
    w = op.weight.data.astype(np.float64)
    y = conv(x, w, op.strides, op.pads, op.dilations, op.groups)
    if op.bias is not None:
        y = y + op.bias.data.reshape((1, -1) + (1,) * (y.ndim - 2))
    return y


def _batchnorm(op, x):
    shape = (1, -1) + (1,) * (x.ndim - 2)
    c = lambda b: b.data.astype(np.float64).reshape(shape)  # noqa: E731
    return (x - c(op.mean)) / np.sqrt(c(op.var) + op.epsilon) * c(op.scale) + c(op.bias)


def _binary(fn):
    def apply(op, a, b):
        rank = len(op.result.type.shape)
        return fn(_per_sample(a, rank), _per_sample(b, rank))

    return apply


ANN_SEMANTICS = {
    "ann.dense": _dense,
    "ann.conv": _conv_op,
    "ann.batchnorm": _batchnorm,
    "ann.relu": lambda op, x: np.maximum(x, 0.0),
    "ann.sigmoid": lambda op, x: 1.0 / (1.0 + np.exp(-x)),
    "ann.tanh": lambda op, x: np.tanh(x),
    "ann.identity": lambda op, x: x,
    "ann.dropout": lambda op, x: x,
    "ann.clip": lambda op, x: np.clip(x, op.min, op.max),
    "ann.leaky_relu": lambda op, x: np.where(x < 0, op.alpha * x, x),
    "ann.prelu": lambda op, x: np.where(x < 0, op.slope.data.astype(np.float64) * x, x),
    "ann.softmax": lambda op, x: _softmax(x, _axis(op.axis)),
    "ann.log_softmax": lambda op, x: np.log(_softmax(x, _axis(op.axis))),
    "ann.lrn": _lrn,
    "ann.maxpool": _maxpool,
    "ann.avgpool": _avgpool,
    "ann.global_avgpool": lambda op, x: np.mean(x, axis=tuple(range(2, x.ndim)), keepdims=True),
    "ann.add": _binary(np.add),
    "ann.mul": _binary(np.multiply),
    "ann.concat": lambda op, *xs: np.concatenate(xs, axis=_axis(op.axis)),
    "ann.flatten": lambda op, x: x.reshape(len(x), -1),
    "ann.reshape": lambda op, x: x.reshape((len(x), *op.shape)),
    "ann.transpose": lambda op, x: x.transpose((0, *(p + 1 for p in op.perm))),
}


def eval_op(op: Op, args: list[np.ndarray], batch: int) -> np.ndarray:
    """One ``ann`` op on batched operands (``[batch, *shape]``); the result has the op's
    element type.  ``ann.constant`` repeats its value for each of ``batch`` samples."""
    t = op.result.type
    if op.KIND == "ann.constant":
        return np.broadcast_to(op.value.data, (batch, *t.shape)).astype(t.np_dtype)
    fn = ANN_SEMANTICS.get(op.KIND)
    if fn is None:
        raise NmcError(f"the reference semantics has no rule for '{op.KIND}' here", op.loc)
    with np.errstate(over="ignore", under="ignore"):
        result = fn(op, *(np.asarray(a, dtype=np.float64) for a in args))
    return np.asarray(result).astype(t.np_dtype)


# --------------------------------------------------------------------------- ANN graphs


@dataclass
class AnnResult:
    """``outputs``: one array per graph output.  ``values``: every op's result (with ``keep``)."""

    outputs: list[np.ndarray]
    values: dict[Value, np.ndarray] = field(default_factory=dict)


def bind_inputs(graph: Graph, inputs, time_axis: set[int] = frozenset()) -> tuple[dict[Value, np.ndarray], int]:
    """Check ``inputs`` against the graph's inputs; returns (value → array, batch size).

    Input ``i`` must be ``[N, *shape]`` (``[N, T, *shape]`` for ``i`` in ``time_axis``)."""
    specs = [InputSpec(tuple(v.type.shape), i in time_axis, v.name or "") for i, v in enumerate(graph.inputs)]
    arrays, batch = bind_arrays(inputs, specs, f"graph @{graph.name}")
    return dict(zip(graph.inputs, arrays)), batch


def host_ops(graph: Graph, values: dict[Value, np.ndarray], ops: list[Op], batch: int,
              transform: Callable[[Value, np.ndarray], np.ndarray] | None = None) -> None:
    for op in ops:
        if op.KIND in ("ann.input", "ann.output"):
            continue
        values[op.result] = eval_op(op, [values[v] for v in op.operands], batch)
        if transform is not None:
            values[op.result] = transform(op.result, values[op.result])


def run_ann(graph: Graph, inputs, keep: bool = False,
            transform: Callable[[Value, np.ndarray], np.ndarray] | None = None) -> AnnResult:
    """Evaluate an ``ann`` graph on a batch (``inputs``: one ``[N, *shape]`` array per input).
    ``transform(value, array)``, when given, replaces every op's result before its users read it
    (an experiment on the network, e.g. ``nmc eval``'s ANN seen through a rate code)."""
    values, batch = bind_inputs(graph, inputs)
    values = {v: a.astype(v.type.np_dtype) for v, a in values.items()}
    host_ops(graph, values, graph.ops, batch, transform)
    outputs = [values[v] for v in graph.outputs]
    return AnnResult(outputs, values if keep else {})


def stream_ann(graph: Graph, inputs) -> Iterator[tuple[Op, np.ndarray]]:
    """Evaluate an ``ann`` graph on a batch one op at a time, holding only the values some
    later op still reads: yields ``(op, array)`` for every input and every op with a result,
    in program order.  ``generator.send(array)`` in reply replaces that op's result for the
    ops that read it (a ``for`` loop sends nothing).  Memory is the live values at the widest
    point of the graph, not every activation (as ``run_ann(keep=True)``)."""
    values, batch = bind_inputs(graph, inputs)
    values = {v: a.astype(v.type.np_dtype) for v, a in values.items()}
    last = {}
    for i, op in enumerate(graph.ops):
        for v in op.operands:
            last[id(v)] = i
    for i, op in enumerate(graph.ops):
        if op.KIND == "ann.output" or op.result is None:
            continue
        arr = values[op.result] if op.KIND == "ann.input" else eval_op(op, [values[v] for v in op.operands], batch)
        replaced = yield op, arr
        values[op.result] = arr if replaced is None else replaced
        for v in op.operands:
            if last.get(id(v)) == i:
                values.pop(v, None)
        if id(op.result) not in last:
            values.pop(op.result, None)


# ------------------------------------------------------------------------------- time


def is_spiking(graph: Graph) -> bool:
    return any(op.dialect == "snn" for op in graph.ops)


def latency_steps(graph: Graph, timesteps: int) -> int:
    """Steps a run takes: ``T + D - 1``, ``D`` the largest total delay along a path of the
    network that does not go round a recurrent loop (at least 1)."""
    import networkx as nx

    g = graph.nx()
    position = {op: i for i, op in enumerate(graph.ops)}
    g.remove_edges_from([(a, b, k) for a, b, k in g.edges(keys=True) if position[a] > position[b]])  # back edges
    for a, b, k in g.edges(keys=True):
        g.edges[a, b, k]["delay"] = a.delay if a.KIND == "snn.project" else 0
    depth = nx.dag_longest_path_length(g, weight="delay") if len(g) else 0
    return timesteps + max(depth, 1) - 1


# ------------------------------------------------------------------------- projections


def fanout(p: Op) -> np.ndarray:
    """Structural fan-out of each source neuron of projection ``p`` (synapses it drives)."""
    src = p.src.type
    if p.kind == "dense":
        return np.full(src.size, p.weight.shape[0], dtype=np.int64)
    if p.kind == "one_to_one":
        return np.ones(src.size, dtype=np.int64)
    if p.kind == "sparse":
        return np.diff(p.indptr.data).astype(np.int64)
    # conv2d, pool and maxgate: each output cell whose window covers a source cell is one synapse
    kernel = p.weight.shape[2:] if p.kind == "conv2d" else p.kernel
    dil = p.dilations if p.kind == "conv2d" else (1, 1)
    covered = cover_counts(src.shape[1:], kernel, p.strides, p.pads, dil, p.result.type.shape[1:])
    per_channel = p.weight.shape[0] // p.groups if p.kind == "conv2d" else 1
    return np.tile(covered * per_channel, src.shape[0])


def _gate(p: Op, s: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """A maxgate's selection: for each output cell, ``s`` at the window cell of the largest
    ``counts`` (ties: the first cell in row-major window order; pad cells never win, a window
    of pads alone selects 0).  ``s``, ``counts``: [N, C, H, W]; the result [N, C, OH, OW]."""
    out, extra = window_geometry(s.shape[2:], p.kernel, p.strides, p.pads, (1, 1))
    real = pad_spatial(np.ones((1, 1, *s.shape[2:]), dtype=bool), p.pads, extra, False)
    cells = zip(window_views(real, p.kernel, p.strides, (1, 1), out),
                window_views(pad_spatial(counts, p.pads, extra, 0), p.kernel, p.strides, (1, 1), out),
                window_views(pad_spatial(s, p.pads, extra, 0), p.kernel, p.strides, (1, 1), out))
    best = np.zeros((len(s), s.shape[1], *out), dtype=counts.dtype)
    chosen = np.zeros((len(s), s.shape[1], *out), dtype=s.dtype)
    found = np.zeros((1, 1, *out), dtype=bool)
    for (_, r), (_, c), (_, v) in cells:  # row-major window order; strictly larger replaces
        take = r & (~found | (c > best))
        best = np.where(take, c, best)
        chosen = np.where(take, v, chosen)
        found = found | r
    return chosen


def project(p: Op, s: np.ndarray, integer: bool, state: dict | None = None) -> np.ndarray:
    """The current ``p`` delivers for source values ``s`` ([N, *source shape]), flat [N, size].

    ``state`` holds the per-run state of stateful projections (``maxgate``: the running
    counts ``[N, *source shape]`` under key ``p``, zero when absent); each call is one
    delivery and updates it."""
    n = len(s)
    dtype = np.int64 if integer else np.float64
    weight = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    weight = weight.astype(dtype)
    s = s.astype(dtype)
    if p.kind == "maxgate":
        if state is None:
            raise NmcError("a maxgate projection needs its running counts (project(..., state=...))", p.loc)
        counts = state.get(p)
        counts = (np.zeros_like(s) if counts is None else counts) + s
        state[p] = counts
        y = _gate(p, s, counts) * weight
    elif p.kind == "dense":
        y = s.reshape(n, -1) @ weight.T
    elif p.kind == "conv2d":
        y = conv(s, weight, p.strides, p.pads, p.dilations, p.groups)
    elif p.kind == "pool":
        y = window_sum(s, p.kernel, p.strides, p.pads) * weight
    elif p.kind == "one_to_one":
        y = s * weight
    else:  # sparse, CSR by presynaptic neuron
        sources = np.repeat(np.arange(p.src.type.size), np.diff(p.indptr.data))
        y = np.zeros((n, int(np.prod(p.shape))), dtype=dtype)
        np.add.at(y, (slice(None), p.indices.data), s.reshape(n, -1)[:, sources] * weight)
    y = y.reshape(n, -1)
    return y << p.exponent if integer else y * 2.0**p.exponent


def weight_matrix(p: Op) -> np.ndarray:
    """The integer ``[target, source]`` matrix of a stateless integer projection, its exponent
    applied: :func:`project` of one-hot sources."""
    n = p.src.type.size
    if p.kind == "maxgate":
        raise NmcError("a max-pool gate has no fixed weight matrix", p.loc)
    eye = np.eye(n, dtype=np.int64).reshape((n, *p.src.type.shape))
    return project(p, eye, True).T if n else np.zeros((p.result.type.size, 0), np.int64)


# ------------------------------------------------------------------------------ neurons


def population_params(op: Op) -> NeuronParams:
    """The :class:`~nmc.neuron.NeuronParams` of an ``snn.population`` (flat, in C order)."""
    dtype = np.int64 if op.bits else np.float64
    shape = op.result.type.shape
    flat = {name: param_array(getattr(op, name), shape, dtype).reshape(-1)
            for name in ("threshold", "bias", "du", "dv", "v0")}
    return NeuronParams(**flat, reset_zero=op.reset in ("zero", "zero_delayed"), bits=op.bits,
                        reset_delayed=op.reset.endswith("_delayed"), max_spikes=op.max_spikes)


def neuron_state(op: Op, batch: int) -> NeuronState | ShiftNeuronState:
    """The initial state of population ``op`` for a batch (bit-shift neurons for ``leak = shift``)."""
    if op.leak != "shift":
        return NeuronState.initial(population_params(op), batch)
    shape = op.result.type.shape
    flat = {name: param_array(getattr(op, name), shape, np.int64).reshape(-1)
            for name in ("threshold", "bias", "du", "du2", "dv", "v0")}
    return ShiftNeuronState.initial(du=np.stack([flat["du"], flat["du2"]]), dv=flat["dv"], threshold=flat["threshold"],
                                    bias=flat["bias"], v0=flat["v0"], bits=op.bits, max_spikes=op.max_spikes,
                                    reset_zero=op.reset == "zero", batch=batch)


def encode(op: Op, x: np.ndarray, t: int, timesteps: int, state: dict, integer: bool) -> np.ndarray:
    """What encoder ``op`` emits for presentation step ``t`` (:func:`nmc.neuron.encode`);
    ``state`` holds the rate accumulators between calls, by encoder op."""
    return neuron.encode(op.encoding, x, t, timesteps, op.result.type.size, state=state, key=op, phase=op.phase,
                         seed=op.seed, scale=op.scale, integer=integer)


# ----------------------------------------------------------------------------- SNN graphs


@dataclass
class SnnResult:
    """A spiking run.  ``outputs``: one array per graph output.  ``voltages``: final voltage of
    the population each output decodes (None for other outputs).  ``spikes``: recorded trains
    ``[N, steps, *shape]`` by population op.  ``spike_count``: population spikes, all samples.
    ``synaptic_ops``: Σ over emitted events of the synapses each drives (all samples).
    ``counts``: spikes per neuron over the run ``[N, *shape]``, by population op."""

    outputs: list[np.ndarray]
    voltages: list[np.ndarray | None]
    spikes: dict[Op, np.ndarray]
    timesteps: int
    steps: int
    spike_count: int
    synaptic_ops: int
    counts: dict[Op, np.ndarray] = field(default_factory=dict)


def resolve_timesteps(graph: Graph, encoders: list[Op], host: dict, timesteps: int | None) -> int:
    """The run's presentation steps (:func:`nmc.binding.resolve_timesteps`; default: the graph's)."""
    trains = [host[e.x].shape[1] for e in encoders if e.encoding == "spikes"]
    return resolve_steps(trains, timesteps, graph.meta.get("timesteps"), f"graph @{graph.name}")


def split_host(graph: Graph) -> tuple[list[Op], list[Op], list[Op]]:
    """(ann ops before the network, snn ops, ann ops reading decoded outputs)."""
    import networkx as nx

    snn = [op for op in graph.ops if op.dialect == "snn"]
    downstream = set()
    g = graph.nx()
    for op in graph.walk("snn.decode"):
        downstream |= nx.descendants(g, op)
    pre = [op for op in graph.ops if op.dialect == "ann" and op not in downstream]
    post = [op for op in graph.ops if op.dialect == "ann" and op in downstream]
    return pre, snn, post


def train_inputs(graph: Graph) -> set[int]:
    """Indices of the graph inputs that feed ``spikes`` encoders (they carry a time axis);
    refuses a ``spikes`` encoder that does not read a graph input directly."""
    spikes = [e for e in graph.walk("snn.encode") if e.encoding == "spikes"]
    for e in spikes:
        if e.x.owner is None or e.x.owner.KIND != "ann.input":
            raise NmcError("a 'spikes' encoder must read a graph input directly", e.loc)
    return {i for i, v in enumerate(graph.inputs) if any(e.x is v for e in spikes)}


def run_snn(graph: Graph, inputs, timesteps: int | None = None, record=()) -> SnnResult:
    """Run a spiking graph on a batch (docs/design.md §5).  ``record``: population ops whose spike
    trains to return.  Inputs feeding ``spikes`` encoders carry a time axis ``[N, T, ...]``."""
    host, batch = bind_inputs(graph, inputs, train_inputs(graph))
    pre, _, post = split_host(graph)
    host_ops(graph, host, pre, batch)
    encoders = graph.walk("snn.encode")
    projections = graph.walk("snn.project")
    populations = graph.walk("snn.population")
    T = resolve_timesteps(graph, encoders, host, timesteps)
    steps = latency_steps(graph, T)

    integer_proj = {p: p.is_integer for p in projections}
    integer_enc = {e: all(integer_proj[u] for u in graph.users(e.result) if u.KIND == "snn.project")
                   and any(u.KIND == "snn.project" for u in graph.users(e.result)) for e in encoders}
    fanouts = {p: fanout(p) for p in projections}
    state = {pop: neuron_state(pop, batch) for pop in populations}
    # history[pop][t]: spikes at step t; history[encoder][i]: presentation step i (emitted at i - 1)
    history: dict[Op, list[np.ndarray]] = {op: [] for op in encoders + populations}
    accumulators: dict = {}
    counts = {pop: np.zeros((batch, pop.result.type.size), dtype=np.int64) for pop in populations}
    gates: dict = {}  # running counts of maxgate projections, per run (project's state)
    matrices: dict = {}  # [target, source] weights of projections into bit-shift populations
    synaptic_ops = 0

    def emitted(src: Op, t: int):
        """What ``src`` emitted at step ``t`` (encoders: presentation step ``t + 1``)."""
        trace = history[src]
        offset = 1 if src.KIND == "snn.encode" else 0  # encoder traces start at step -1
        i = t + offset
        return trace[i] if 0 <= i < len(trace) else None

    for t in range(-1, steps):
        # encoders: input presented at step t + 1 is emitted at step t
        for e in encoders:
            history[e].append(encode(e, host[e.x], t + 1, T, accumulators, integer_enc[e]))
        if t < 0:
            continue
        fired = {}
        for pop in populations:
            shift = pop.leak == "shift"
            current = np.zeros((batch, pop.result.type.size), dtype=np.int64 if pop.bits else np.float64)
            for c, k in zip(pop.currents, pop.synapse or (0,) * len(pop.currents)):
                p = c.owner
                s = emitted(p.src.owner, t - p.delay)
                if s is None:
                    continue
                synaptic_ops += int(np.sum((s != 0) @ fanouts[p]))
                if shift:  # events arrive one source at a time (docs/design.md §5, bit-shift neurons)
                    if p not in matrices:
                        matrices[p] = weight_matrix(p)
                    state[pop].deliver(k, s.reshape(batch, -1).astype(np.int64), matrices[p])
                    continue
                shaped = s.reshape((batch, *p.src.type.shape))
                current = current + project(p, shaped, integer_proj[p], gates).astype(current.dtype)
            fired[pop] = state[pop].advance() if shift else state[pop].step(current)
            counts[pop] += fired[pop]
        for pop in populations:  # after all updates: within a step, order does not matter
            history[pop].append(fired[pop])
    outputs_by_value = {}
    voltages_by_value = {}
    for d in graph.walk("snn.decode"):
        pop = d.x.owner
        final_v = state[pop].v.reshape((batch, *pop.result.type.shape)).astype(np.float32)
        counted = counts[pop].reshape((batch, *pop.result.type.shape)).astype(np.float32)
        outputs_by_value[d.result] = final_v if d.mode == "membrane" else counted
        voltages_by_value[d.result] = final_v
    host.update(outputs_by_value)
    host_ops(graph, host, post, batch)
    outputs = [host[v] for v in graph.outputs]
    voltages = [voltages_by_value.get(v) for v in graph.outputs]
    recorded = {pop: np.stack(history[pop], axis=1).reshape((batch, steps, *pop.result.type.shape))
                for pop in record}
    spike_count = int(sum(int(c.sum()) for c in counts.values()))
    shaped = {pop: c.reshape((batch, *pop.result.type.shape)) for pop, c in counts.items()}
    return SnnResult(outputs, voltages, recorded, T, steps, spike_count, synaptic_ops, shaped)


def run(graph: Graph, inputs, timesteps: int | None = None, record=()) -> AnnResult | SnnResult:
    """:func:`run_snn` for spiking graphs, :func:`run_ann` otherwise."""
    if is_spiking(graph):
        return run_snn(graph, inputs, timesteps, record)
    return run_ann(graph, inputs)


def classify(outputs: np.ndarray, voltages: np.ndarray | None = None) -> np.ndarray:
    """The class of each sample: the index of the largest output; among equal outputs the one
    with the highest final ``voltages`` (if given), then the lowest index."""
    scores = np.asarray(outputs).reshape(len(outputs), -1)
    best = scores == scores.max(axis=1, keepdims=True)
    if voltages is None:
        return np.argmax(best, axis=1)
    v = np.asarray(voltages, dtype=np.float64).reshape(len(outputs), -1)
    v = np.where(best, v, -np.inf)
    return np.argmax(v == v.max(axis=1, keepdims=True), axis=1)

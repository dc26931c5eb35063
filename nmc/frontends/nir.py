"""NIR interchange: read NIR graphs into the ``snn`` dialect, write ``snn`` graphs back as NIR.

:func:`load_nir` (the frontend for ``.nir`` files) and :func:`to_nir` / :func:`export_nir`.
The mapping and the discretisation of every continuous-time node are specified in docs/nir.md;
in short:

* Weight nodes between two spiking sources (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d,
  AvgPool2d, with Flatten and Delay) become one ``snn.project`` per path; a chain of linear
  nodes with no neuron between is composed into one projection.  Flatten is no op at all
  (currents meet neurons by flat index).
* Neuron nodes become ``snn.population`` with forward-Euler decays ``du = 4096·dt/τ_syn``,
  ``dv = 4096·dt/τ_mem``; the input gain (``R``, ``dt/τ``, ``w_in``) is folded into the
  weights of every projection into the population, ``v_leak`` into its bias.
* Time is aligned exactly with NIR's discrete simulators: a population at feed-forward depth
  ``d`` runs ``d − 1`` steps behind NIR time, so each projection's delay is the depth
  difference (plus one round a recurrent loop, plus any Delay node).  Affine biases arrive
  through a projection, delayed the same way, from a constant always-on source.
* The graph input is an ``snn.encode{encoding = spikes}``; each Output an ``snn.decode``
  (``count`` for spiking nodes, ``membrane`` for I, LI and CubaLI).

Every op carries ``Loc(file, node=<NIR node>, op_type=<NIR class>)``.  Files nir cannot read and
nodes nmc cannot map raise :class:`NmcError` naming the node.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from nmc.diagnostics import Loc, NmcError
from nmc.ir.core import Blob, Graph, Op
from nmc.ir.ann import Constant, Input, Output
from nmc.ir.snn import DECAY_ONE, Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType

NEURONS = ("IF", "LIF", "I", "LI", "CubaLIF", "CubaLI", "Threshold")
NON_SPIKING = ("I", "LI", "CubaLI")
WINDOWED = ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")
DENSE = ("Affine", "Linear", "Scale")
LINEAR = DENSE + WINDOWED + ("Flatten", "Delay")
RESETS = ("zero", "subtract")


def _kind(node) -> str:
    return type(node).__name__


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _param(values: np.ndarray):
    """A population parameter: one number when every neuron shares it, else a blob."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    exact, single = np.asarray(values, dtype=np.float64), np.asarray(values, dtype=np.float32)
    return Blob(single if np.array_equal(single, exact) else exact)  # f32 when nothing is lost


# ======================================================================== reading NIR


def _read(path: str):
    import nir

    try:
        return nir.read(path)
    except Exception as err:  # noqa: BLE001 — nir reports malformed files with many exception types
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        mismatch = re.search(r"type mismatch: (\S+)\.output", detail)  # nir names the node whose type is wrong
        loc = Loc(os.fspath(path), node=mismatch.group(1)) if mismatch else Loc(os.fspath(path))
        raise NmcError(f"the nir package cannot read this file: {detail}", loc,
                       hint="the graph is malformed (for example an exporter wrote inconsistent shapes); "
                            "re-export it with a current NIR exporter") from None


def _endpoint(graph, prefix: str, name: str, port: str, loc: Loc) -> str:
    """The flat name an edge end ``name`` refers to: a node, or the Input/Output (``port``)
    of a nested graph, found recursively; ``sub.inner`` names a nested graph's node."""
    import nir

    node = graph.nodes.get(name)
    if node is None and "." in name:
        head, rest = name.split(".", 1)
        if isinstance(graph.nodes.get(head), nir.NIRGraph):
            return _endpoint(graph.nodes[head], f"{prefix}{head}.", rest, port, loc)
    if node is None:
        raise NmcError(f"an edge names node '{prefix}{name}', which the graph does not have", loc)
    if isinstance(node, nir.NIRGraph):
        ports = [k for k, n in node.nodes.items() if _kind(n) == port]
        if len(ports) != 1:
            raise NmcError(f"nested graph '{prefix}{name}' has {len(ports)} {port} nodes; an edge to the graph "
                           f"itself needs exactly one", Loc(loc.file, node=prefix + name, op_type="NIRGraph"),
                           hint=f"name the port in the edge, as '{prefix}{name}.<{port.lower()} node>'")
        return _endpoint(node, f"{prefix}{name}.", ports[0], port, loc)
    return prefix + name


def _flatten(graph, prefix: str, loc: Loc, nodes: dict, edges: list, identities: set) -> None:
    """Inline nested graphs: their nodes get ``prefix.`` names; their Input/Output nodes
    become identities (removed afterwards)."""
    import nir

    for name, node in graph.nodes.items():
        if isinstance(node, nir.NIRGraph):
            _flatten(node, f"{prefix}{name}.", loc, nodes, edges, identities)
        else:
            nodes[prefix + name] = node
            if prefix and _kind(node) in ("Input", "Output"):
                identities.add(prefix + name)
    for a, b in graph.edges:
        edges.append((_endpoint(graph, prefix, a, "Output", loc), _endpoint(graph, prefix, b, "Input", loc)))


@dataclass
class _Synapse:
    """One path of linear nodes from a source into a target, composed."""

    source: str
    target: str
    names: list[str]
    kind: str = "one_to_one"
    weight: np.ndarray | float = 1.0
    bias: np.ndarray | None = None  # per target neuron (flat), before the target's gain
    steps: int = 0  # from Delay nodes
    attrs: dict = field(default_factory=dict)
    out_gain: np.ndarray | None = None  # per-target elementwise Scale after a window node


@dataclass
class _Neuron:
    """A population's parameters and the gain folded into the weights into it."""

    shape: tuple[int, ...]
    threshold: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    gain: np.ndarray  # flat, per neuron
    bias: np.ndarray  # flat, per neuron (from v_leak)
    spiking: bool


class _Importer:
    def __init__(self, path: str, dt: float | None, reset: str | None):
        self.path = os.fspath(path)
        if dt is not None and not (dt > 0 and math.isfinite(dt)):
            raise NmcError(f"dt must be a positive number of seconds, got {dt}", hint="pass --dt SECONDS, e.g. --dt 1e-4")
        if reset is not None and reset not in RESETS:
            raise NmcError(f"unknown reset mode '{reset}'", hint="reset is 'zero' (NIR's definition) or 'subtract'")
        self.dt = dt
        self.reset = reset or "zero"

    def loc(self, name: str) -> Loc:
        node = self.nodes.get(name)
        return Loc(self.path, node=name, op_type=_kind(node) if node is not None else None)

    def error(self, name: str, message: str, hint: str | None = None) -> NmcError:
        return NmcError(message, self.loc(name), hint=hint)

    # -- structure ---------------------------------------------------------------------

    def load(self, nir_graph) -> Graph:
        self.nodes: dict = {}
        edges: list = []
        identities: set = set()
        _flatten(nir_graph, "", Loc(self.path), self.nodes, edges, identities)
        edges = list(dict.fromkeys(edges))
        for name in sorted(identities):  # a nested graph's Input/Output: wire through
            ins = [a for a, b in edges if b == name]
            outs = [b for a, b in edges if a == name]
            edges = [e for e in edges if name not in e] + [(a, b) for a in ins for b in outs]
            del self.nodes[name]
        self.preds = {n: [a for a, b in edges if b == n] for n in self.nodes}
        self.succs = {n: [b for a, b in edges if a == n] for n in self.nodes}
        for name, node in self.nodes.items():
            if _kind(node) not in NEURONS + LINEAR + ("Input", "Output"):
                raise self.error(name, f"NIR node type {_kind(node)} is not supported",
                                 hint="nmc maps " + ", ".join(NEURONS + LINEAR + ("Input", "Output", "NIRGraph")))
        inputs = [n for n, node in self.nodes.items() if _kind(node) == "Input"]
        outputs = [n for n, node in self.nodes.items() if _kind(node) == "Output"]
        if not inputs or not outputs:
            raise NmcError("the NIR graph needs an Input and an Output node", Loc(self.path))
        neurons = {n: self._neuron(n, node) for n, node in self.nodes.items() if _kind(node) in NEURONS}
        for n in neurons:
            if not neurons[n].spiking and any(_kind(self.nodes[s]) != "Output" for s in self.succs[n]):
                raise self.error(n, f"the non-spiking {_kind(self.nodes[n])} node feeds "
                                    f"'{[s for s in self.succs[n] if _kind(self.nodes[s]) != 'Output'][0]}'; "
                                    "nmc projections carry spikes only",
                                 hint="a non-spiking node (I, LI, CubaLI) can only be read by an Output")
        self.neurons = neurons
        self.readouts: dict[str, str] = {}  # Output fed by linear nodes → readout population name
        synapses = []
        for target in list(neurons) + outputs:
            paths = sorted(self._paths(target), key=lambda sc: (sc[1][-1] if sc[1] else "", sc[0]))
            for source, chain in paths:  # in a canonical order: float sums then round-trip exactly
                if _kind(self.nodes[target]) == "Output" and not chain:
                    continue  # a neuron or Input read directly
                if _kind(self.nodes[target]) == "Output":
                    self._add_readout(target)
                syn = self._compose(source, chain, self.readouts.get(target, target))
                synapses.append(syn)
        return self._build(inputs, outputs, synapses)

    def _add_readout(self, output: str) -> None:
        if output in self.readouts:
            return
        shape = tuple(int(d) for d in np.atleast_1d(self.nodes[output].output_type["output"]))
        ones = np.ones(shape)
        self.readouts[output] = f"{output}.readout"
        self.neurons[self.readouts[output]] = _Neuron(shape, np.full(shape, np.inf), ones * DECAY_ONE, ones * DECAY_ONE,
                                       ones.reshape(-1), np.zeros(ones.size), spiking=False)

    def _paths(self, target: str) -> list[tuple[str, list[str]]]:
        """(source, linear nodes in signal order) for every path into ``target``."""
        found = []

        def walk(node: str, chain: list[str]):
            for p in self.preds[node]:
                kind = _kind(self.nodes[p])
                if kind == "Input" or kind in NEURONS:
                    found.append((p, chain[::-1]))
                elif kind in LINEAR:
                    if p in chain:
                        raise self.error(p, "a loop of weight nodes with no neuron in it never settles",
                                         hint="every recurrent loop must pass through a neuron node")
                    walk(p, chain + [p])
                else:
                    raise self.error(p, f"an {kind} node cannot feed '{node}'")

        walk(target, [])
        return found

    def _shape_of(self, name: str) -> tuple[int, ...]:
        node = self.nodes[name]
        if name in self.neurons:
            return self.neurons[name].shape
        t = node.output_type.get("output") if node.output_type else None
        if t is None:
            raise self.error(name, "the node's output shape is unknown")
        return tuple(int(d) for d in np.atleast_1d(t))

    # -- neurons ---------------------------------------------------------------------------

    def _ratio(self, name: str, tau, what: str) -> np.ndarray:
        if self.dt is None:
            raise self.error(name, f"NIR carries no time step, and this {_kind(self.nodes[name])} node has time "
                                   f"constants ({what})", hint="pass --dt SECONDS (e.g. --dt 1e-4), the step the model was trained with")
        tau = _arr(tau)
        if np.any(~(tau > 0)):
            raise self.error(name, f"{what} must be positive, got {tau.min()}")
        ratio = self.dt / tau
        if np.any(ratio > 1):
            raise self.error(name, f"{what} = {tau.min():g} s is shorter than dt = {self.dt:g} s; "
                                   "the forward-Euler step would overshoot", hint="use a smaller --dt")
        return ratio

    def _neuron(self, name: str, node) -> _Neuron:
        kind = _kind(node)
        if kind == "Threshold":
            th = _arr(node.threshold)
            ones = np.ones_like(th)
            return _Neuron(th.shape, th, ones * DECAY_ONE, ones * DECAY_ONE, ones.reshape(-1),
                           np.zeros(th.size), spiking=True)
        v_reset = getattr(node, "v_reset", None)
        if v_reset is not None and np.any(_arr(v_reset) != 0):
            raise self.error(name, f"v_reset = {_arr(v_reset).reshape(-1)[np.argmax(_arr(v_reset).reshape(-1) != 0)]:g} "
                                   f"is not supported (reset {self.reset})",
                             hint="nmc neurons reset to 0 (reset zero) or subtract the threshold (reset subtract); "
                                  "shift v_threshold and v_leak so that v_reset becomes 0")
        r = _arr(node.r)
        shape = r.shape
        spiking = kind not in NON_SPIKING
        threshold = _arr(node.v_threshold) if spiking else np.full(shape, np.inf)
        full = np.full(shape, float(DECAY_ONE))
        if kind in ("IF", "I"):  # v += R·I per step (the step is the unit of time)
            return _Neuron(shape, threshold, full, np.zeros(shape), r.reshape(-1), np.zeros(r.size), spiking)
        if kind in ("LIF", "LI"):
            a = self._ratio(name, node.tau, "tau")
            return _Neuron(shape, threshold, full, DECAY_ONE * a, (a * r).reshape(-1),
                           (a * _arr(node.v_leak)).reshape(-1), spiking)
        a_syn = self._ratio(name, node.tau_syn, "tau_syn")
        a_mem = self._ratio(name, node.tau_mem, "tau_mem")
        gain = a_syn * _arr(node.w_in) * a_mem * r
        return _Neuron(shape, threshold, DECAY_ONE * a_syn, DECAY_ONE * a_mem, gain.reshape(-1),
                       (a_mem * _arr(node.v_leak)).reshape(-1), spiking)

    # -- composing weight paths --------------------------------------------------------------

    def _delay_steps(self, name: str, node) -> int:
        delay = _arr(node.delay)
        if delay.size == 0 or np.any(delay != delay.reshape(-1)[0]):
            raise self.error(name, "per-element delays that differ are not supported",
                             hint="nmc delays a whole projection; split the node by delay")
        seconds = float(delay.reshape(-1)[0])
        if seconds == 0:
            return 0
        if self.dt is None:
            raise self.error(name, "NIR carries no time step, and this Delay node is in seconds",
                             hint="pass --dt SECONDS (e.g. --dt 1e-4)")
        steps = seconds / self.dt
        if abs(steps - round(steps)) > 1e-6 * max(1.0, steps) or steps < 0:
            raise self.error(name, f"delay {seconds:g} s is not a whole number of steps of dt = {self.dt:g} s")
        return int(round(steps))

    def _compose(self, source: str, chain: list[str], target: str) -> _Synapse:
        syn = _Synapse(source, target, chain)
        parts = []
        for name in chain:
            node = self.nodes[name]
            kind = _kind(node)
            if kind == "Delay":
                syn.steps += self._delay_steps(name, node)
            elif kind != "Flatten":
                parts.append(name)
        kinds = [_kind(self.nodes[p]) for p in parts]
        src_size = int(np.prod(self._shape_of(source)))
        if kinds and kinds[0] in WINDOWED and all(k == "Scale" for k in kinds[1:]):
            self._compose_window(syn, parts[0])  # the weights stay shared
            for p in parts[1:]:
                s = _arr(self.nodes[p].scale).reshape(-1)
                syn.out_gain = s if syn.out_gain is None else syn.out_gain * s
                syn.bias = None if syn.bias is None else syn.bias * s
        elif kinds[:2] in (["SumPool2d", "Conv2d"], ["AvgPool2d", "Conv2d"]) and all(k == "Scale" for k in kinds[2:]) \
                and self._pool_conv(syn, parts[0], parts[1]):
            for p in parts[2:]:
                s = _arr(self.nodes[p].scale).reshape(-1)
                syn.out_gain = s if syn.out_gain is None else syn.out_gain * s
                syn.bias = None if syn.bias is None else syn.bias * s
        else:  # other chains with no neuron between are composed into one dense projection
            self._compose_dense(syn, parts, src_size)
        size = int(np.prod(self.neurons[target].shape))
        natural = self._natural_size(syn, src_size)
        if natural != size:
            raise self.error(parts[-1] if parts else source, f"delivers {natural} values into '{target}', "
                                                             f"which has {size} neurons")
        return syn

    def _natural_size(self, syn: _Synapse, src_size: int) -> int:
        if syn.kind == "dense":
            return int(syn.weight.shape[0])
        if syn.kind == "one_to_one":
            return src_size
        return int(np.prod(syn.attrs["out_shape"]))

    def _compose_dense(self, syn: _Synapse, parts: list[str], src_size: int) -> None:
        matrix, bias, scale = None, None, np.ones(src_size)
        for name in parts:
            node = self.nodes[name]
            kind = _kind(node)
            if kind == "Scale":
                s = _arr(node.scale).reshape(-1)
                if matrix is None:
                    if s.size != scale.size:
                        raise self.error(name, f"scales {s.size} values, its input has {scale.size}")
                    scale = scale * s
                else:
                    matrix, bias = s[:, None] * matrix, None if bias is None else s * bias
                continue
            if kind in WINDOWED:
                step, b = self._window_matrix(name)
            else:
                step = _arr(node.weight)
                if step.ndim != 2:
                    raise self.error(name, f"weight of rank {step.ndim} is not supported", hint="nmc takes [out, in] weights")
                b = _arr(node.bias).reshape(-1) if kind == "Affine" else None
            w = step * scale[None, :] if matrix is None else step @ matrix
            if matrix is None and w.shape[1] != src_size:
                raise self.error(name, f"weight {list(w.shape)} does not match its input of {src_size} values")
            bias = (None if bias is None else step @ bias)
            if b is not None:
                bias = b if bias is None else bias + b
            matrix = w
        if matrix is None:
            syn.kind, syn.weight = "one_to_one", scale
        else:
            syn.kind, syn.weight, syn.bias = "dense", matrix, bias

    def _pool_conv(self, syn: _Synapse, pool_name: str, conv_name: str) -> bool:
        """Fuse a pool whose windows tile its input (kernel = stride, no padding) and the
        Conv2d after it into one convolution: kernel (k−1)·s + s, stride s·stride, padding
        s·padding.  False when the pool does not tile (the caller then composes densely)."""
        pool = _Synapse(pool_name, pool_name, [pool_name])
        self._compose_window(pool, pool_name)
        self._compose_window(syn, conv_name)
        k, st = pool.attrs["kernel"], pool.attrs["strides"]
        in_hw = tuple(int(d) for d in np.atleast_1d(self.nodes[pool_name].input_type["input"]))[1:]
        a = syn.attrs
        if k != st or any(pool.attrs["pads"]) or a["dilations"] != (1, 1) or any(in_hw[i] % st[i] for i in range(2)):
            syn.kind, syn.weight, syn.bias, syn.attrs = "one_to_one", 1.0, None, {}
            return False
        syn.weight = np.repeat(np.repeat(syn.weight, st[0], axis=2), st[1], axis=3) * pool.weight
        a["strides"] = (a["strides"][0] * st[0], a["strides"][1] * st[1])
        a["pads"] = tuple(p * st[i % 2] for i, p in enumerate(a["pads"]))
        return True

    def _window_matrix(self, name: str) -> tuple[np.ndarray, np.ndarray | None]:
        """A Conv/Pool node as a dense ``[out, in]`` matrix (and its bias), for composing it
        with the weight nodes after it: its response to each unit input."""
        from nmc.semantics import conv, window_sum

        syn = _Synapse(name, name, [name])
        self._compose_window(syn, name)
        src = syn.attrs.get("src_shape") or tuple(int(d) for d in np.atleast_1d(self.nodes[name].input_type["input"]))
        eye = np.eye(int(np.prod(src))).reshape((-1, *src))
        if syn.kind == "conv2d":
            a = syn.attrs
            y = conv(eye, syn.weight, a["strides"], a["pads"], a["dilations"], a["groups"])
        else:
            y = window_sum(eye, syn.attrs["kernel"], syn.attrs["strides"], syn.attrs["pads"]) * syn.weight
        return y.reshape(len(eye), -1).T, syn.bias

    def _compose_window(self, syn: _Synapse, name: str) -> None:
        node = self.nodes[name]
        kind = _kind(node)
        in_shape = tuple(int(d) for d in np.atleast_1d(node.input_type["input"]))
        if kind == "Conv1d":
            w = _arr(node.weight)[:, :, None, :]
            spatial = (1, in_shape[1])
            stride, dilation = (1, int(np.atleast_1d(node.stride)[0])), (1, int(np.atleast_1d(node.dilation)[0]))
            padding = node.padding if isinstance(node.padding, str) else (0, int(np.atleast_1d(node.padding)[0]))
            syn.attrs["src_shape"] = (in_shape[0], 1, in_shape[1])
        elif kind == "Conv2d":
            w = _arr(node.weight)
            spatial = in_shape[1:]
            stride = tuple(int(s) for s in np.broadcast_to(node.stride, 2))
            dilation = tuple(int(s) for s in np.broadcast_to(node.dilation, 2))
            padding = node.padding if isinstance(node.padding, str) else tuple(int(p) for p in np.broadcast_to(node.padding, 2))
        else:
            kernel = tuple(int(k) for k in np.broadcast_to(node.kernel_size, 2))
            stride = tuple(int(s) for s in np.broadcast_to(node.stride, 2))
            pads = tuple(int(p) for p in np.broadcast_to(node.padding, 2))
            out = tuple((in_shape[1 + i] + 2 * pads[i] - kernel[i]) // stride[i] + 1 for i in range(2))
            syn.kind = "pool"
            syn.weight = 1.0 if kind == "SumPool2d" else 1.0 / (kernel[0] * kernel[1])
            syn.attrs = {"kernel": kernel, "strides": stride, "pads": pads + pads, "out_shape": (in_shape[0], *out)}
            return
        kernel = w.shape[2:]
        if isinstance(padding, str):
            if padding == "valid":
                pads = (0, 0, 0, 0)
            else:  # 'same': PyTorch puts the odd cell at the end
                total = [max((math.ceil(spatial[i] / stride[i]) - 1) * stride[i] + dilation[i] * (kernel[i] - 1) + 1
                             - spatial[i], 0) for i in range(2)]
                pads = (total[0] // 2, total[1] // 2, total[0] - total[0] // 2, total[1] - total[1] // 2)
        else:
            pads = tuple(padding) + tuple(padding)
        out = tuple((spatial[i] + pads[i] + pads[2 + i] - dilation[i] * (kernel[i] - 1) - 1) // stride[i] + 1
                    for i in range(2))
        syn.kind, syn.weight = "conv2d", w
        syn.attrs.update(strides=stride, pads=pads, dilations=dilation, groups=int(node.groups),
                         out_shape=(w.shape[0], *out))
        bias = _arr(node.bias).reshape(-1)
        if np.any(bias != 0):
            syn.bias = np.broadcast_to(bias[:, None], (w.shape[0], out[0] * out[1])).reshape(-1).copy()

    # -- time ----------------------------------------------------------------------------------

    def _timing(self, inputs: list[str], synapses: list[_Synapse]):
        """(back edges, depth per source/population, topological order of populations)."""
        g = nx.DiGraph()
        g.add_nodes_from(inputs + list(self.neurons))
        g.add_edges_from((s.source, s.target) for s in synapses)
        index = {n: i for i, n in enumerate(self.nodes)}

        def order(n):
            return (index.get(n, len(index)), n)

        back = _back_edges(g, inputs, order)
        dag = nx.DiGraph(g)
        dag.remove_edges_from(back)
        depth = {}
        topo = list(nx.lexicographical_topological_sort(dag, key=order))
        for n in topo:
            preds = list(dag.predecessors(n))
            depth[n] = 0 if n in inputs else max((depth[p] + 1 for p in preds), default=1)
        return back, depth, [n for n in topo if n in self.neurons]

    # -- building the graph --------------------------------------------------------------------

    def _build(self, inputs: list[str], outputs: list[str], synapses: list[_Synapse]) -> Graph:
        graph = Graph(os.path.splitext(os.path.basename(self.path))[0] or "nir", {"dt": self.dt} if self.dt else {})
        back, depth, order = self._timing(inputs, synapses)
        values = {}
        conv1d_inputs = {s.source: s.attrs["src_shape"] for s in synapses if "src_shape" in s.attrs}
        for name in inputs:
            shape = conv1d_inputs.get(name) or self._shape_of(name)
            x = graph.add(Input(declared_type=TensorType(tuple(shape), "f32"), loc=self.loc(name)), name)
            values[name] = graph.add(Encode(x=x, encoding="spikes", loc=self.loc(name)), f"{name}.spikes")
        pops = {}
        for name in order:
            n = self.neurons[name]
            shape = conv1d_inputs.get(name, n.shape)
            v0 = self._warm_up(name, n, depth[name] - 1)
            pops[name] = Population(currents=[], declared_type=SpikeType(tuple(shape)), threshold=_param(n.threshold),
                                    du=_param(n.du), dv=_param(n.dv), bias=_param(n.bias.reshape(n.shape)),
                                    v0=_param(v0.reshape(n.shape)), reset=self.reset, loc=self.loc(name))
            pops[name].result.name = name
            values[name] = pops[name].result
        biases: dict[str, np.ndarray] = {}
        projections = []
        for syn in synapses:
            n = self.neurons[syn.target]
            gain = n.gain if syn.out_gain is None else n.gain * syn.out_gain
            delay = depth[syn.target] - depth[syn.source] + (1 if (syn.source, syn.target) in back else 0) + syn.steps
            proj = self._projection(syn, gain, values[syn.source], delay)
            projections.append((syn, proj))
            pops[syn.target].currents.append(proj.result)
            if syn.bias is not None and np.any(syn.bias != 0):
                biases[syn.target] = biases.get(syn.target, 0) + gain * syn.bias
        bias_source = None
        if biases:  # located at the first weight node with a bias
            first = next(s.names[-1] for s in synapses if s.bias is not None and np.any(s.bias != 0))
            one = graph.add(Constant(value=Blob(np.ones(1, dtype=np.float32)), loc=self.loc(first)), "one")
            bias_source = graph.add(Encode(x=one, encoding="rate", loc=self.loc(first)), "bias_source")
        placed = set(inputs) | ({"bias_source"} if biases else set())
        pending = list(projections)
        for name in order:
            if name in biases:
                proj = Project(src=bias_source, kind="dense", weight=Blob(biases[name].astype(np.float32).reshape(-1, 1)),
                               delay=depth[name], loc=self.loc(name))
                pops[name].currents.append(graph.add(proj, f"{name}.bias"))
            for syn, proj in [p for p in pending if p[0].target == name and p[0].source in placed]:
                graph.add(proj, proj.result.name)
                pending.remove((syn, proj))
            graph.add(pops[name])
            placed.add(name)
            for syn, proj in [p for p in pending if p[0].source in placed]:
                graph.add(proj, proj.result.name)
                pending.remove((syn, proj))
        decoded = []
        for name in outputs:
            src = self.readouts.get(name) or next((p for p in self.preds[name]), None)
            if src is None or src not in pops:
                raise self.error(name, "the Output must read a neuron node or weight nodes",
                                 hint="an Output fed directly by the Input has nothing for nmc to compute")
            mode = "count" if self.neurons[src].spiking else "membrane"
            decoded.append(graph.add(Decode(x=pops[src].result, mode=mode, loc=self.loc(name)), name))
        graph.add(Output(values=decoded, loc=self.loc(outputs[0])))
        from nmc.ir.verifier import verify

        verify(graph)
        return graph

    def _warm_up(self, name: str, n: _Neuron, steps: int) -> np.ndarray:
        """The initial voltage that brings a population driven only by its bias (from v_leak)
        to v = 0 after ``steps`` steps: the population runs that far behind NIR time, and must
        stand at rest when NIR time begins (:func:`warm_up_v0`)."""
        v0 = warm_up_v0(n.bias, n.dv.reshape(-1), steps)
        v = v0.copy()
        for _ in range(steps):
            if np.any(v > n.threshold.reshape(-1)):
                raise self.error(name, "v_leak drives this neuron above its threshold before its input arrives",
                                 hint="nmc cannot align this population's resting state with NIR time")
            v = v * (1 - n.dv.reshape(-1) / DECAY_ONE) + n.bias
        return v0

    def _projection(self, syn: _Synapse, gain: np.ndarray, src, delay: int) -> Project:
        name = syn.names[-1] if syn.names else f"{syn.source}.to.{syn.target}"
        loc = self.loc(syn.names[-1] if syn.names else syn.target)
        if delay < 1:
            raise self.error(name, f"the path from '{syn.source}' into '{syn.target}' would need delay {delay}",
                             hint="this graph's timing cannot be expressed with delays >= 1")
        common = dict(src=src, delay=delay, loc=loc)
        if syn.kind == "dense":
            p = Project(kind="dense", weight=Blob((gain[:, None] * syn.weight).astype(np.float32)), **common)
        elif syn.kind == "one_to_one":
            w = (np.broadcast_to(syn.weight, gain.shape) * gain).reshape(src.type.shape)
            p = Project(kind="one_to_one", weight=_param(w), **common)
        elif syn.kind == "pool":
            w = (syn.weight * gain).reshape(syn.attrs["out_shape"])
            p = Project(kind="pool", weight=_param(w), kernel=syn.attrs["kernel"], strides=syn.attrs["strides"],
                        pads=syn.attrs["pads"], **common)
        else:
            per_channel = gain.reshape(syn.attrs["out_shape"][0], -1)
            if np.any(per_channel != per_channel[:, :1]):
                raise self.error(syn.target, "neuron parameters (r, tau, w_in) that vary within a channel cannot "
                                             "be folded into shared convolution weights",
                                 hint="give every neuron of a channel the same r, tau and w_in")
            w = syn.weight * per_channel[:, 0][:, None, None, None]
            p = Project(kind="conv2d", weight=Blob(w.astype(np.float32)), strides=syn.attrs["strides"],
                        pads=syn.attrs["pads"], dilations=syn.attrs["dilations"], groups=syn.attrs["groups"], **common)
        p.result.name = name
        return p


def _back_edges(g: nx.DiGraph, roots: list, key) -> set:
    """The edges a depth-first search closes a cycle with, starting from ``roots`` then every
    other node, successors in ``key`` order — deterministic, so import and export agree on
    which projection of a loop is the recurrent one."""
    back, state = set(), {}
    for root in list(roots) + sorted(g.nodes, key=key):
        if root in state:
            continue
        state[root] = 1
        stack = [(root, iter(sorted(g.successors(root), key=key)))]
        while stack:
            node, successors = stack[-1]
            nxt = next(successors, None)
            if nxt is None:
                state[node] = 2
                stack.pop()
            elif state.get(nxt) == 1:
                back.add((node, nxt))
            elif nxt not in state:
                state[nxt] = 1
                stack.append((nxt, iter(sorted(g.successors(nxt), key=key))))
    return back


def warm_up_v0(bias: np.ndarray, dv: np.ndarray, steps: int) -> np.ndarray:
    """``v0`` such that ``v ← (1 − dv/4096)·v + bias`` reaches exactly 0 after ``steps`` steps
    (0 where there is nothing to undo: no steps, no bias, or no memory, dv = 4096)."""
    keep = 1 - np.asarray(dv, dtype=np.float64) / DECAY_ONE
    bias = np.asarray(bias, dtype=np.float64)
    if steps == 0:
        return np.zeros(np.broadcast_shapes(bias.shape, keep.shape))
    with np.errstate(divide="ignore", invalid="ignore"):
        drift = np.where(keep == 1, steps * bias, bias * (1 - keep**steps) / np.where(keep == 1, 0.5, 1 - keep))
        v0 = np.where(keep == 0, 0.0, -drift / np.where(keep == 0, 1.0, keep**steps))
    return np.where(bias == 0, 0.0, v0)


def load_nir(path: str, dt: float | None = None, reset: str | None = None) -> Graph:
    """Read a NIR file into an ``snn`` graph (docs/nir.md).

    ``dt`` (seconds) is required when a node has time constants or delays; ``reset`` is
    ``"zero"`` (NIR's definition, the default) or ``"subtract"``.  The graph records ``dt`` in
    its meta.  Raises :class:`NmcError` naming the node for anything nmc cannot map."""
    return _Importer(path, dt, reset).load(_read(path))


def from_nir(nir_graph, dt: float | None = None, reset: str | None = None, name: str = "nir") -> Graph:
    """:func:`load_nir` for an in-memory ``nir.NIRGraph``."""
    return _Importer(name, dt, reset).load(nir_graph)


# ======================================================================== writing NIR


def _is_bias_source(op: Op | None) -> bool:
    """The constant always-on source :func:`load_nir` makes for Affine biases: a rate encoder
    of a constant 1."""
    return (op is not None and op.KIND == "snn.encode" and op.encoding == "rate"
            and op.x.owner is not None and op.x.owner.KIND == "ann.constant"
            and bool(np.all(op.x.owner.value.data == 1)))


def _flat(p, shape) -> np.ndarray:
    arr = p.data if isinstance(p, Blob) else np.asarray(p)
    return np.broadcast_to(np.asarray(arr, dtype=np.float64), shape).copy()


class _Exporter:
    def __init__(self, graph: Graph, dt: float | None):
        self.graph = graph
        self.dt = dt if dt is not None else graph.meta.get("dt")
        self.names: dict[int, str] = {}
        taken: set[str] = set()
        for i, op in enumerate(graph.ops):
            if op.result is not None:
                base = (op.result.name or f"{op.KIND.split('.')[-1]}{i}").replace("/", "_")
                name, k = base, 1
                while name in taken:
                    name, k = f"{base}_{k}", k + 1
                taken.add(name)
                self.names[id(op)] = name
        self.nodes: dict = {}
        self.edges: list = []

    def error(self, op: Op, message: str, hint: str | None = None) -> NmcError:
        return NmcError(f"cannot export to NIR: {message}", op.loc, hint=hint)

    def name(self, op: Op) -> str:
        return self.names[id(op)]

    def _timing(self, sources: list[Op], projections: list[Op]):
        """Back edges and depths, as :class:`_Importer` computes them on the NIR side."""
        index = {id(op): i for i, op in enumerate(self.graph.ops)}
        g = nx.DiGraph()
        ops = {id(o): o for o in sources + self.graph.walk("snn.population")}
        g.add_nodes_from(ops)
        for p in projections:
            target = next(u for u in self.graph.users(p.result))
            g.add_edge(id(p.src.owner), id(target))
        back = _back_edges(g, [id(s) for s in sources], index.get)
        dag = nx.DiGraph(g)
        dag.remove_edges_from(back)
        depth = {}
        for n in nx.lexicographical_topological_sort(dag, key=index.get):
            depth[n] = 0 if n in {id(s) for s in sources} else max((depth[p] + 1 for p in dag.predecessors(n)), default=1)
        return back, depth

    def run(self):
        import nir

        g = self.graph
        for op in g.ops:
            if op.KIND not in ("ann.input", "ann.constant", "ann.output") and op.dialect != "snn":
                raise self.error(op, f"'{op.KIND}' is not a spiking op",
                                 hint="export a spiking (snn) graph: run convert-to-spiking first")
            if op.KIND == "snn.project" and op.kind == "maxgate":
                raise self.error(op, f"projection %{op.result.name or '?'} is a max-pool gate (kind maxgate), "
                                     "which keeps running spike counts; NIR has no such node",
                                 hint="convert with --convert maxpool=or (a spiking OR, a NIR SumPool2d)")
        sources = []
        for e in g.walk("snn.encode"):
            if _is_bias_source(e):
                continue
            if e.encoding != "spikes" or e.x.owner is None or e.x.owner.KIND != "ann.input":
                raise self.error(e, f"encoding '{e.encoding}' has no NIR equivalent",
                                 hint="NIR graphs take spike trains: use encoding = spikes on a graph input")
            self.names[id(e)] = self.name(e.x.owner)  # the NIR Input is the graph input and its encoder
            self.nodes[self.name(e)] = nir.Input(input_type=np.array(e.result.type.shape))
            sources.append(e)
        projections = [p for p in g.walk("snn.project") if not _is_bias_source(p.src.owner)]
        back, depth = self._timing(sources, projections)
        self.depth = depth
        target_of = {id(p): g.users(p.result)[0] for p in g.walk("snn.project")}
        biases: dict[int, np.ndarray] = {}
        for p in g.walk("snn.project"):
            if _is_bias_source(p.src.owner):
                pop = target_of[id(p)]
                if p.kind != "dense" or p.delay != depth[id(pop)]:
                    raise self.error(p, "a bias projection must be dense and delayed by its target's depth")
                biases[id(pop)] = biases.get(id(pop), 0) + p.weight.data.astype(np.float64).reshape(-1) * 2.0**p.exponent
        readouts = {}
        for pop in g.walk("snn.population"):
            biases[id(pop)] = biases.get(id(pop), 0) + self._neuron(pop, readouts)
        for p in projections:
            pop = target_of[id(p)]
            delay_expected = depth[id(pop)] - depth[id(p.src.owner)] + (1 if (id(p.src.owner), id(pop)) in back else 0)
            self._projection(p, pop, p.delay - delay_expected, biases, readouts)
        for op in g.walk("snn.population"):
            b = biases.get(id(op))
            if b is not None and np.any(np.asarray(b) != 0):
                raise self.error(op, "its bias has no incoming dense or convolution projection to carry it",
                                 hint="NIR has no bias on IF neurons; an Affine or Conv2d before them carries it")
        for d in g.walk("snn.decode"):
            pop = d.x.owner
            spiking = not np.all(np.isinf(_flat(pop.threshold, (1,))))
            if (d.mode == "count") != spiking:
                raise self.error(d, f"a '{d.mode}' read-out of a {'spiking' if spiking else 'non-spiking'} population "
                                    "has no NIR equivalent")
            self.nodes[self.name(d)] = nir.Output(output_type=np.array(d.result.type.shape))
            self.edges.append((readouts.get(id(pop), self.name(pop)), self.name(d)))
        try:
            return nir.NIRGraph(nodes=self.nodes, edges=self.edges, metadata={})
        except (ValueError, AssertionError) as err:
            raise NmcError(f"cannot export to NIR: the nir package rejects the graph: {err}") from None

    def _neuron(self, pop: Op, readouts: dict) -> np.ndarray:
        """Add ``pop``'s neuron node; returns its bias as an Affine bias (flat)."""
        import nir

        shape = pop.result.type.shape
        if pop.bits:
            raise self.error(pop, "integer (quantised) populations have no NIR equivalent", hint="export the float graph")
        th, b = _flat(pop.threshold, shape), _flat(pop.bias, shape)
        v0 = _flat(pop.v0, shape)
        rest = warm_up_v0(b, _flat(pop.dv, shape), self.depth[id(pop)] - 1)
        if not np.allclose(v0, rest, rtol=1e-9, atol=1e-12):
            lag = self.depth[id(pop)] - 1
            hint = (f"its input first arrives at step {lag}; v0 = {rest.reshape(-1)[0]:.17g} brings it to rest by then"
                    if lag and np.all(rest == rest.reshape(-1)[0]) else "set v0 = 0")
            raise self.error(pop, "NIR neurons start at rest (v = 0 when their input first arrives); this population "
                                  "does not" + (f" (its bias acts for {lag} step(s) before its input)" if lag else ""),
                             hint=hint)
        du, dv = _flat(pop.du, shape) / DECAY_ONE, _flat(pop.dv, shape) / DECAY_ONE
        spiking = bool(np.all(np.isfinite(th)))
        if not spiking and not np.all(np.isinf(th)):
            raise self.error(pop, "some neurons have an infinite threshold and some do not")
        if spiking and pop.reset != "zero":
            raise self.error(pop, "NIR has no subtractive reset (its neurons reset to v_reset)",
                             hint="use reset = zero (import NIR files without --reset subtract)")
        zeros = np.zeros(shape)
        name = self.name(pop)
        if np.all(du == 1) and np.all(dv == 1):
            if spiking:
                self.nodes[name] = nir.Threshold(threshold=th)
            else:
                readouts[id(pop)] = None  # filled by its projection: the Output reads that node
            return b.reshape(-1)
        if np.all(du == 1) and np.all(dv == 0):
            ones = np.ones(shape)
            self.nodes[name] = nir.IF(r=ones, v_threshold=th, v_reset=zeros) if spiking else nir.I(r=ones)
            return b.reshape(-1)
        if self.dt is None:
            raise self.error(pop, "the graph records no dt, and this population leaks",
                             hint="pass --dt SECONDS (the step its decays were computed for)")
        dt = float(self.dt)
        if np.any(dv <= 0):
            raise self.error(pop, "a population with dv = 0 and du < 4096 has no NIR equivalent")
        if np.all(du == 1):
            tau, r, leak = dt / dv, 1 / dv, b / dv
            self.nodes[name] = (nir.LIF(tau=tau, r=r, v_leak=leak, v_threshold=th, v_reset=zeros) if spiking
                                else nir.LI(tau=tau, r=r, v_leak=leak))
            return np.zeros(b.size)
        if np.any(du <= 0):
            raise self.error(pop, "a population with du = 0 (a current that never decays) has no NIR equivalent")
        kw = dict(tau_syn=dt / du, tau_mem=dt / dv, r=1 / dv, v_leak=b / dv, w_in=1 / du)
        self.nodes[name] = nir.CubaLIF(v_threshold=th, v_reset=zeros, **kw) if spiking else nir.CubaLI(**kw)
        return np.zeros(b.size)

    def _projection(self, p: Op, pop: Op, extra_delay: int, biases: dict, readouts: dict) -> None:
        import nir

        src_shape, out_shape = p.src.type.shape, pop.result.type.shape
        name = self.name(p)
        chain = []  # (node name, node) from the source on
        if extra_delay < 0:
            raise self.error(p, f"delay {p.delay} is shorter than the path it closes needs in NIR time",
                             hint="NIR's feed-forward paths take no time; a skip connection needs the delay of the long path")
        if extra_delay:
            if self.dt is None:
                raise self.error(p, "a delay needs the graph's dt to be written in seconds", hint="pass --dt SECONDS")
            chain.append((f"{name}.delay", nir.Delay(delay=np.full(src_shape, extra_delay * float(self.dt)))))
        scale = 2.0**p.exponent
        bias = biases.get(id(pop))
        has_bias = bias is not None and np.any(np.asarray(bias) != 0)
        w = p.weight.data.astype(np.float64) * scale if isinstance(p.weight, Blob) else float(p.weight) * scale
        if p.kind in ("dense", "sparse"):
            if p.kind == "sparse":
                dense = np.zeros((int(np.prod(p.shape)), p.src.type.size))
                rows = np.repeat(np.arange(p.src.type.size), np.diff(p.indptr.data))
                np.add.at(dense, (p.indices.data, rows), w)
                w = dense
            if len(src_shape) > 1:
                chain.append((f"{name}.flatten", nir.Flatten(input_type={"input": np.array(src_shape)}, start_dim=0)))
            if len(out_shape) > 1:
                raise self.error(p, f"a dense projection into a population of shape {list(out_shape)}: NIR has no reshape")
            if has_bias:
                chain.append((name, nir.Affine(weight=w.astype(np.float32), bias=np.asarray(bias, dtype=np.float32))))
                biases[id(pop)] = None
            else:
                chain.append((name, nir.Linear(weight=w.astype(np.float32))))
        elif p.kind == "conv2d":
            pads = p.pads
            if pads[:2] != pads[2:]:
                raise self.error(p, f"asymmetric padding {list(pads)} has no NIR equivalent")
            b = np.zeros(w.shape[0])
            if has_bias:
                per_channel = np.asarray(bias).reshape(w.shape[0], -1)
                if np.all(per_channel == per_channel[:, :1]):
                    b = per_channel[:, 0]
                    biases[id(pop)] = None
            chain.append((name, nir.Conv2d(input_shape=tuple(src_shape[1:]), weight=w.astype(np.float32), stride=p.strides,
                                           padding=tuple(pads[:2]), dilation=p.dilations, groups=p.groups,
                                           bias=b.astype(np.float32))))
        elif p.kind == "pool":
            pads = p.pads
            if pads[:2] != pads[2:]:
                raise self.error(p, f"asymmetric padding {list(pads)} has no NIR equivalent")
            k = np.array(p.kernel)
            ws = np.broadcast_to(w, out_shape)
            args = dict(kernel_size=k, stride=np.array(p.strides), padding=np.array(pads[:2]))
            if np.all(ws == 1.0 / (k[0] * k[1])) and k[0] * k[1] > 1:
                chain.append((name, nir.AvgPool2d(**args)))
            else:
                chain.append((name, nir.SumPool2d(**args)))
                if not np.all(ws == 1):
                    chain.append((f"{name}.scale", nir.Scale(scale=np.asarray(ws, dtype=np.float32))))
        else:  # one_to_one
            if tuple(src_shape) != tuple(out_shape):
                raise self.error(p, f"a one-to-one projection from {list(src_shape)} into {list(out_shape)}: NIR has no reshape")
            chain.append((name, nir.Scale(scale=np.broadcast_to(w, src_shape).astype(np.float32))))
        previous = self.name(p.src.owner)
        for node_name, node in chain:
            self.nodes[node_name] = node
            self.edges.append((previous, node_name))
            previous = node_name
        if id(pop) in readouts:
            if readouts[id(pop)] is not None:
                raise self.error(pop, "a membrane read-out fed by more than one projection has no NIR equivalent")
            readouts[id(pop)] = previous
        else:
            self.edges.append((previous, self.name(pop)))


def to_nir(graph: Graph, dt: float | None = None):
    """An ``snn`` graph as a ``nir.NIRGraph`` (the inverse of :func:`load_nir`, docs/nir.md).

    ``dt`` defaults to the graph's ``meta["dt"]``; it is needed for leaky populations and
    delays beyond what NIR's timing implies.  Raises :class:`NmcError` for what NIR cannot say
    (subtractive reset, integer populations, non-spike encoders, v0 != 0)."""
    from nmc.ir.verifier import verify

    verify(graph)
    return _Exporter(graph, dt).run()


def export_nir(graph: Graph, path: str, dt: float | None = None) -> None:
    """Write :func:`to_nir` of ``graph`` to ``path`` (whole or not at all)."""
    import io

    import nir

    from nmc.fileio import atomic_write

    nir_graph = to_nir(graph, dt)
    buf = io.BytesIO()
    nir.write(buf, nir_graph)
    atomic_write(os.fspath(path), buf.getvalue())

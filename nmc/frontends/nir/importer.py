"""The NIR importer: a flat NIR graph (:mod:`.graph`) to an ``snn`` graph — neuron nodes to
populations, paths of weight nodes composed into projections, time aligned (:mod:`.timing`)."""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from nmc.diagnostics import Loc, NmcError
from nmc.frontends.nir.graph import flat_graph, node_kind
from nmc.frontends.nir.timing import back_edges, warm_up_v0
from nmc.ir.ann import Constant, Input, Output
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import DECAY_ONE, Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType

NEURONS = ("IF", "LIF", "I", "LI", "CubaLIF", "CubaLI", "Threshold")
NON_SPIKING = ("I", "LI", "CubaLI")
WINDOWED = ("Conv1d", "Conv2d", "SumPool2d", "AvgPool2d")
DENSE = ("Affine", "Linear", "Scale")
LINEAR = DENSE + WINDOWED + ("Flatten", "Delay")
RESETS = ("zero", "subtract", "subtract_delayed", "zero_delayed")
CONVENTIONS = ("nir", "snntorch", "norse", "sinabs", "rockpool")  # how the library's file means its parameters (docs/nir.md)


def _arr(x) -> np.ndarray:
    return np.asarray(x, dtype=np.float64)


def _param(values: np.ndarray):
    """A population parameter: one number when every neuron shares it, else a blob."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size and np.all(flat == flat[0]):
        return float(flat[0])
    exact, single = np.asarray(values, dtype=np.float64), np.asarray(values, dtype=np.float32)
    return Blob(single if np.array_equal(single, exact) else exact)  # f32 when nothing is lost


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


class Importer:
    def __init__(self, path: str, dt: float | None, reset: str | None, convention: str | None = None):
        self.path = os.fspath(path)
        self.convention = convention or "nir"
        if self.convention not in CONVENTIONS:
            raise NmcError(f"unknown NIR convention '{convention}'", hint="conventions: " + ", ".join(CONVENTIONS))
        if dt is None and self.convention == "snntorch":
            dt = 1e-4  # snnTorch's export_to_nir writes tau = dt/(1 - beta) with dt = 1e-4
        if reset is None and self.convention == "rockpool":
            reset = "subtract"  # rockpool's LIFTorch subtracts the threshold
        if dt is not None and not (dt > 0 and math.isfinite(dt)):
            raise NmcError(f"dt must be a positive number of seconds, got {dt}", hint="pass --dt SECONDS, e.g. --dt 1e-4")
        if reset is not None and reset not in RESETS:
            raise NmcError(f"unknown reset mode '{reset}'", hint="reset is 'zero' (NIR's definition), 'subtract', "
                                                                "'subtract_delayed' or 'zero_delayed' (docs/nir.md)")
        self.dt = dt
        self.reset = reset or "zero"

    def _reset_of(self, name: str, recurrent: bool) -> str:
        """The reset of population ``name``: ``--reset`` as given, except under the snnTorch
        convention, where ``zero`` and ``subtract`` name snnTorch's ``reset_mechanism`` and its
        neurons reset one step late (``reset_delay=True``, its default): ``subtract`` is
        ``subtract_delayed`` for all of them; ``zero`` is NIR's for ``Leaky`` (it zeroes ``mem``
        before integrating) and ``zero_delayed`` for ``Synaptic`` (CubaLIF) and ``RLeaky`` (a LIF
        with a recurrent projection), which zero ``mem`` in the step after the spike."""
        if self.convention != "snntorch" or self.reset not in ("zero", "subtract"):
            return self.reset
        if self.reset == "subtract":
            return "subtract_delayed"
        return "zero_delayed" if node_kind(self.nodes[name]) == "CubaLIF" or recurrent else "zero"

    def loc(self, name: str) -> Loc:
        node = self.nodes.get(name)
        return Loc(self.path, node=name, op_type=node_kind(node) if node is not None else None)

    def error(self, name: str, message: str, hint: str | None = None) -> NmcError:
        return NmcError(message, self.loc(name), hint=hint)

    # -- structure ---------------------------------------------------------------------

    def load(self, nir_graph) -> Graph:
        self.nodes, edges = flat_graph(nir_graph, Loc(self.path))
        self.preds = {n: [a for a, b in edges if b == n] for n in self.nodes}
        self.succs = {n: [b for a, b in edges if a == n] for n in self.nodes}
        for name, node in self.nodes.items():
            if node_kind(node) not in NEURONS + LINEAR + ("Input", "Output"):
                raise self.error(name, f"NIR node type {node_kind(node)} is not supported",
                                 hint="nmc maps " + ", ".join(NEURONS + LINEAR + ("Input", "Output", "NIRGraph")))
        inputs = [n for n, node in self.nodes.items() if node_kind(node) == "Input"]
        outputs = [n for n, node in self.nodes.items() if node_kind(node) == "Output"]
        if not inputs or not outputs:
            raise NmcError("the NIR graph needs an Input and an Output node", Loc(self.path))
        neurons = {n: self._neuron(n, node) for n, node in self.nodes.items() if node_kind(node) in NEURONS}
        for n in neurons:
            if not neurons[n].spiking and any(node_kind(self.nodes[s]) != "Output" for s in self.succs[n]):
                raise self.error(n, f"the non-spiking {node_kind(self.nodes[n])} node feeds "
                                    f"'{[s for s in self.succs[n] if node_kind(self.nodes[s]) != 'Output'][0]}'; "
                                    "nmc projections carry spikes only",
                                 hint="a non-spiking node (I, LI, CubaLI) can only be read by an Output")
        self.neurons = neurons
        self.readouts: dict[str, str] = {}  # Output fed by linear nodes → readout population name
        synapses = []
        for target in list(neurons) + outputs:
            paths = sorted(self._paths(target), key=lambda sc: (sc[1][-1] if sc[1] else "", sc[0]))
            for source, chain in paths:  # in a canonical order: float sums then round-trip exactly
                if node_kind(self.nodes[target]) == "Output" and not chain:
                    continue  # a neuron or Input read directly
                if node_kind(self.nodes[target]) == "Output":
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
                kind = node_kind(self.nodes[p])
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
        """``dt/τ``, the forward-Euler decay per step, as the file's convention means ``τ``."""
        tau = _arr(tau)
        if np.any(~(tau > 0)):
            raise self.error(name, f"{what} must be positive, got {tau.min()}")
        if self.convention == "sinabs":  # τ in steps, decay exp(−1/τ) per step
            return -np.expm1(-1 / tau)
        if self.dt is None:
            raise self.error(name, f"NIR carries no time step, and this {node_kind(self.nodes[name])} node has time "
                                   f"constants ({what})", hint="pass --dt SECONDS (e.g. --dt 1e-4), the step the model was trained with")
        if self.convention == "norse":  # Norse's to_nir writes dt/τ_inv = dt·τ
            tau = tau / self.dt
        if self.convention == "rockpool":  # exact decays exp(−dt/τ)
            return -np.expm1(-self.dt / tau)
        ratio = self.dt / tau
        if np.any(ratio > 1):
            raise self.error(name, f"{what} = {tau.min():g} s is shorter than dt = {self.dt:g} s; "
                                   "the forward-Euler step would overshoot",
                             hint="use a smaller --dt" + ("; if Norse wrote this file (its to_nir writes "
                                                          "tau = dt/tau_inv), pass --convention norse"
                                                          if self.convention == "nir" and np.all(tau * self.dt**-2 >= 1) else ""))
        return ratio

    def _input_gain(self, a: np.ndarray, r: np.ndarray) -> np.ndarray:
        """The weight on an input spike: ``a·R`` by NIR's equations; where ``τ`` and ``R`` are
        both infinite (snnTorch's ``Leaky(beta=1)``: ``τ = dt/(1−β)``, ``R = τ/dt``) the limit 1."""
        return np.where(np.isinf(r) & (a == 0), 1.0, a * np.where(np.isinf(r), 0.0, r))

    def _neuron(self, name: str, node) -> _Neuron:
        kind = node_kind(node)
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
            return _Neuron(shape, threshold, full, DECAY_ONE * a, self._input_gain(a, r).reshape(-1),
                           (a * _arr(node.v_leak)).reshape(-1), spiking)
        a_syn = self._ratio(name, node.tau_syn, "tau_syn")
        a_mem = self._ratio(name, node.tau_mem, "tau_mem")
        if self.convention == "rockpool":  # I ← e^{−dt/τ_syn}·(I + S), then v ← e^{−dt/τ_mem}·v + I
            gain = 1 - a_syn
        else:
            w_in = 1 / a_syn if self.convention == "norse" else _arr(node.w_in)  # Norse's current jumps by the input
            gain = a_syn * w_in * self._input_gain(a_mem, r)
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
            kind = node_kind(node)
            if kind == "Delay":
                syn.steps += self._delay_steps(name, node)
            elif kind != "Flatten":
                parts.append(name)
        kinds = [node_kind(self.nodes[p]) for p in parts]
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
            kind = node_kind(node)
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
        kind = node_kind(node)
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

        back = back_edges(g, inputs, order)
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
        recurrent = {s.target for s in synapses if s.source == s.target}
        for name in order:
            n = self.neurons[name]
            shape = conv1d_inputs.get(name, n.shape)
            v0 = self._warm_up(name, n, depth[name] - 1)
            pops[name] = Population(currents=[], declared_type=SpikeType(tuple(shape)), threshold=_param(n.threshold),
                                    du=_param(n.du), dv=_param(n.dv), bias=_param(n.bias.reshape(n.shape)),
                                    v0=_param(v0.reshape(n.shape)), loc=self.loc(name),
                                    reset=self._reset_of(name, name in recurrent) if name in self.nodes else self.reset)
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

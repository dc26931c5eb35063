"""NIR export: write ``snn`` graphs as NIR, the inverse of the import mapping
(:mod:`nmc.frontends.nir`, docs/nir.md).

:func:`to_nir` gives the ``nir.NIRGraph``; :func:`export_nir` writes it to a file.  Time is
aligned as the importer aligns it (:mod:`nmc.frontends.nir.timing`), so that export then import
gives the graph back.  What NIR cannot say raises :class:`NmcError` at the op.
"""

from __future__ import annotations

import os

import networkx as nx
import numpy as np

from nmc.diagnostics import NmcError
from nmc.frontends.nir.timing import back_edges, warm_up_v0
from nmc.ir.core import Blob, Graph, Op
from nmc.ir.snn import DECAY_ONE

IF_TAU_STEPS = 1e30  # an IF neuron for snnTorch: a LIF whose beta = 1 − 1e-30 rounds to 1


def _is_bias_source(op: Op | None) -> bool:
    """The constant always-on source :func:`~nmc.frontends.nir.load_nir` makes for Affine
    biases: a rate encoder of a constant 1."""
    return (op is not None and op.KIND == "snn.encode" and op.encoding == "rate"
            and op.x.owner is not None and op.x.owner.KIND == "ann.constant"
            and bool(np.all(op.x.owner.value.data == 1)))


def _flat(p, shape) -> np.ndarray:
    arr = p.data if isinstance(p, Blob) else np.asarray(p)
    return np.broadcast_to(np.asarray(arr, dtype=np.float64), shape).copy()


COMPATS = ("snntorch", "norse", "sinabs", "rockpool")
SNNTORCH_DT = 1e-4  # snnTorch's import_from_nir reads tau with dt = 1e-4, whatever the graph's
UNREADABLE = {  # (library, NIR node) pairs the library's reader has no form for, and why
    ("snntorch", "I"): "snnTorch's import_from_nir has no I node",
    ("snntorch", "LI"): "snnTorch's import_from_nir has no LI node",
    ("snntorch", "Threshold"): "snnTorch's import_from_nir has no Threshold node",
    ("norse", "I"): "Norse's from_nir has no I node (it drops the read-out)",
    ("norse", "LI"): "Norse's from_nir has no LI node (it drops the read-out)",
    ("norse", "CubaLI"): "Norse's from_nir has no CubaLI node",
    ("norse", "Threshold"): "Norse's from_nir has no Threshold node",
    ("sinabs", "I"): "sinabs' from_nir has no I node",
    ("sinabs", "CubaLI"): "sinabs' from_nir has no CubaLI node",
    ("sinabs", "CubaLIF"): "sinabs' from_nir has no CubaLIF node",
    ("sinabs", "Threshold"): "sinabs' from_nir has no Threshold node",
    ("rockpool", "IF"): "rockpool's from_nir has no IF node",
    ("rockpool", "I"): "rockpool's from_nir has no I node",
    ("rockpool", "LIF"): "rockpool's from_nir fails on LIF nodes (it reads tau_mem, which LIF lacks)",
    ("rockpool", "CubaLI"): "rockpool's from_nir has no CubaLI node",
    ("rockpool", "Threshold"): "rockpool's from_nir has no Threshold node",
    ("rockpool", "Conv2d"): "rockpool's from_nir has no Conv2d node",
    ("rockpool", "SumPool2d"): "rockpool's from_nir has no SumPool2d node",
    ("rockpool", "AvgPool2d"): "rockpool's from_nir has no AvgPool2d node",
    ("rockpool", "Scale"): "rockpool's from_nir has no Scale node",
    ("rockpool", "Delay"): "rockpool's from_nir has no Delay node",
    ("snntorch", "Delay"): "snnTorch's import_from_nir has no Delay node",
    ("norse", "Delay"): "Norse's from_nir has no Delay node",
    ("sinabs", "Delay"): "sinabs' from_nir has no Delay node",
    ("norse", "Scale"): "Norse's from_nir has no Scale node",
    ("sinabs", "Scale"): "sinabs' from_nir has no Scale node",
    ("norse", "AvgPool2d"): "Norse's from_nir has no AvgPool2d node",
    ("sinabs", "AvgPool2d"): "sinabs' from_nir has no AvgPool2d node",
}


class _Exporter:
    def __init__(self, graph: Graph, dt: float | None, compat: str | None = None):
        self.graph = graph
        if compat is not None and compat not in COMPATS:
            raise NmcError(f"unknown --compat library '{compat}'", hint="libraries: " + ", ".join(COMPATS))
        self.compat = compat
        self.warnings: list[str] = []
        self.in_scale: dict[int, np.ndarray] = {}  # per target population: a factor on the weights into it
        dt = dt if dt is not None else graph.meta.get("dt")
        self.dt = SNNTORCH_DT if compat == "snntorch" else dt
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
        """Back edges and depths, as :class:`~nmc.frontends.nir.importer.Importer` computes them
        on the NIR side."""
        index = {id(op): i for i, op in enumerate(self.graph.ops)}
        g = nx.DiGraph()
        ops = {id(o): o for o in sources + self.graph.walk("snn.population")}
        g.add_nodes_from(ops)
        for p in projections:
            target = next(u for u in self.graph.users(p.result))
            g.add_edge(id(p.src.owner), id(target))
        back = back_edges(g, [id(s) for s in sources], index.get)
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
        if back and self.compat == "snntorch":
            self.warnings.append("the graph is recurrent: snnTorch 1.0's import_from_nir fails on recurrent graphs, "
                                 "its own RLeaky files included (AttributeError in nirtorch's nir_to_torch)")
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
        if self.compat == "snntorch":  # its reader splits node names at dots
            plain = {k: k.replace(".", "_") for k in self.nodes}
            if len(set(plain.values())) < len(plain):
                raise NmcError("cannot export to NIR for snntorch: node names collide once their dots are replaced")
            self.nodes = {plain[k]: n for k, n in self.nodes.items()}
            self.edges = [(plain[a], plain[b]) for a, b in self.edges]
        for name, node in self.nodes.items():
            why = UNREADABLE.get((self.compat, type(node).__name__))
            if why:
                raise NmcError(f"cannot export to NIR for {self.compat}: node '{name}' is a {type(node).__name__}; {why}",
                               hint=f"export without --compat {self.compat}, or change the graph")
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
            if not lag:
                hint = "set v0 = 0"
            elif np.all(rest == rest.reshape(-1)[0]):
                hint = f"its input first arrives at step {lag}; v0 = {rest.reshape(-1)[0]:.17g} brings it to rest by then"
            else:
                hint = (f"its input first arrives at step {lag}; each neuron needs the v0 that cancels its bias over "
                        f"those steps (v0 = -{lag}·bias for IF neurons; convert-to-spiking with v0=0 and "
                        "bias-correction=true sets them)")
            raise self.error(pop, "NIR neurons start at rest (v = 0 when their input first arrives); this population "
                                  "does not" + (f" (its bias acts for {lag} step(s) before its input)" if lag else ""),
                             hint=hint)
        du, dv = _flat(pop.du, shape) / DECAY_ONE, _flat(pop.dv, shape) / DECAY_ONE
        if pop.leak == "linear" and pop.max_spikes > 1:
            raise self.error(pop, f"it is a burst population (up to {pop.max_spikes} spikes per step); NIR's neurons "
                                  "emit at most one spike per step", hint="convert without --convert burst=B")
        spiking = bool(np.all(np.isfinite(th)))
        if not spiking and not np.all(np.isinf(th)):
            raise self.error(pop, "some neurons have an infinite threshold and some do not")
        if spiking and pop.reset != "zero" and not (self.compat == "rockpool" and pop.reset == "subtract"):
            raise self.error(pop, self._reset_refusal(pop.reset),
                             hint="only a reset = zero graph can be written (and it runs differently from this one)")
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
            if spiking and self.compat == "snntorch":  # its reader makes IF a Leaky(beta=0.9)
                tau = np.full(shape, IF_TAU_STEPS * SNNTORCH_DT)
                self.nodes[name] = nir.LIF(tau=tau, r=tau / SNNTORCH_DT, v_leak=zeros, v_threshold=th, v_reset=zeros)
                self.warnings.append(f"{name}: IF written as LIF with tau = {IF_TAU_STEPS:g}·dt (beta = 1 in float32): "
                                     "snnTorch's import_from_nir reads IF as Leaky(beta=0.9)")
                return b.reshape(-1)
            if spiking and self.compat == "sinabs":
                self.warnings.append(f"{name}: sinabs' from_nir reads IF as IAFSqueeze with its defaults (multi-spike, "
                                     "reset by subtraction, v clipped at -threshold); spike counts can differ")
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
            if self.compat == "sinabs":  # tau in steps, decay exp(-1/tau), inputs added unscaled
                if np.any(dv >= 1) or np.any(b != 0):
                    raise self.error(pop, "sinabs' LIF has no leak voltage and needs 0 < dv < 4096",
                                     hint="export without --compat sinabs")
                tau, r = -1 / np.log1p(-dv), np.ones(shape)
                if spiking:
                    self.warnings.append(f"{name}: sinabs' from_nir reads LIF as LIFSqueeze with its defaults (multi-spike, "
                                         "reset by subtraction); spike counts can differ")
            elif self.compat == "norse":  # Norse's reader ignores r: the gain 1/dv goes into the weights
                self.in_scale[id(pop)] = (1 / dv).reshape(-1)
                r = np.ones(shape)
            self.nodes[name] = (nir.LIF(tau=tau, r=r, v_leak=leak, v_threshold=th, v_reset=zeros) if spiking
                                else nir.LI(tau=tau, r=r, v_leak=leak))
            return np.zeros(b.size)
        if np.any(du <= 0):
            raise self.error(pop, "a population with du = 0 (a current that never decays) has no NIR equivalent")
        kw = dict(tau_syn=dt / du, tau_mem=dt / dv, r=1 / dv, v_leak=b / dv, w_in=1 / du)
        if self.compat == "rockpool":  # I ← e^{−dt/τ_syn}·(I + S), v ← e^{−dt/τ_mem}·v + I; dt = τ_mem/(1 + r)
            if np.any(du >= 1) or np.any(dv >= 1) or np.any(b != 0):
                raise self.error(pop, "rockpool's LIFTorch needs 0 < du, dv < 4096 and no bias",
                                 hint="export without --compat rockpool")
            if pop.reset == "zero":
                self.warnings.append(f"{name}: rockpool's LIFTorch resets by subtraction, this population to zero; "
                                     "spike counts can differ")
            if spiking:
                self.warnings.append(f"{name}: rockpool's from_nir builds LIFTorch with its default max_spikes_per_dt "
                                     "(many spikes per step), which NIR has no field for: set max_spikes_per_dt = 1 "
                                     "on the loaded LIFTorch modules to run single spikes, as this population does")
            tau_mem = -dt / np.log1p(-dv)
            kw = dict(tau_syn=-dt / np.log1p(-du), tau_mem=tau_mem, r=tau_mem / dt - 1, v_leak=zeros, w_in=np.ones(shape))
            self.in_scale[id(pop)] = (1 / (1 - du)).reshape(-1)
        self.nodes[name] = nir.CubaLIF(v_threshold=th, v_reset=zeros, **kw) if spiking else nir.CubaLI(**kw)
        return np.zeros(b.size)

    def _reset_refusal(self, reset: str) -> str:
        """Why a population that resets by ``reset`` (not zero) cannot be written for the reader."""
        what = {"subtract_delayed": "reset = subtract_delayed (the threshold taken off one step after the spike)",
                "zero_delayed": "reset = zero_delayed (v set to 0 one step after the spike)"}.get(reset, f"reset = {reset}")
        if self.compat == "snntorch":
            return (f"{what}: snnTorch's import_from_nir builds every Leaky and Synaptic with "
                    "reset_mechanism='zero' and reset_delay=False, and reads no reset field from the file, so no NIR "
                    "file makes it reset otherwise")
        if self.compat == "rockpool":
            return f"{what}: rockpool's LIFTorch subtracts the threshold in the step it fires"
        if reset == "zero_delayed":
            return f"{what}: NIR's neurons reset to v_reset in the step they fire"
        return f"{what}: NIR has no subtractive reset (its neurons reset to v_reset)"

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
        gain = self.in_scale.get(id(pop))
        if gain is not None:  # a neuron's input gain the reader ignores, moved into the weights
            if has_bias:
                biases[id(pop)] = bias = np.asarray(bias) * gain
            if p.kind == "dense":
                w = w * gain[:, None]
            elif p.kind == "conv2d":
                per_channel = gain.reshape(w.shape[0], -1)
                if np.any(per_channel != per_channel[:, :1]):
                    raise self.error(p, "the neurons' gains differ within a channel; a convolution cannot carry them")
                w = w * per_channel[:, 0][:, None, None, None]
            elif p.kind != "sparse":
                w = np.broadcast_to(w, out_shape) * gain.reshape(out_shape)
            else:
                raise self.error(p, "a sparse projection into neurons whose gain must move into the weights")
        if p.kind in ("dense", "sparse"):
            if p.kind == "sparse":
                dense = np.zeros((int(np.prod(p.shape)), p.src.type.size))
                rows = np.repeat(np.arange(p.src.type.size), np.diff(p.indptr.data))
                np.add.at(dense, (p.indices.data, rows), w)
                w = dense
            if len(src_shape) > 1:
                # axes counted from the end: torch readers (snnTorch's, Norse's) make it nn.Flatten(start_dim,
                # end_dim), which then keeps their batch axis (start_dim = 0 would fold it in)
                chain.append((f"{name}.flatten", nir.Flatten(input_type={"input": np.array(src_shape)},
                                                             start_dim=-len(src_shape), end_dim=-1)))
            if len(out_shape) > 1:
                raise self.error(p, f"a dense projection into a population of shape {list(out_shape)}: NIR has no reshape")
            if has_bias or self.compat == "sinabs":  # sinabs reads no Linear
                b = np.asarray(bias, dtype=np.float32) if has_bias else np.zeros(w.shape[0], np.float32)
                chain.append((name, nir.Affine(weight=w.astype(np.float32), bias=b)))
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


def to_nir(graph: Graph, dt: float | None = None, compat: str | None = None, warnings: list | None = None):
    """An ``snn`` graph as a ``nir.NIRGraph`` (the inverse of :func:`load_nir`, docs/nir.md).

    ``dt`` defaults to the graph's ``meta["dt"]``; it is needed for leaky populations and
    delays beyond what NIR's timing implies.  ``compat`` (``snntorch``, ``norse``, ``sinabs``,
    ``rockpool``) writes the parameters as that library's reader means them, and refuses
    nodes it cannot read; ``warnings`` (a list) receives what the reader will run differently.
    Raises :class:`NmcError` for what NIR cannot say (subtractive reset, integer populations,
    non-spike encoders, v0 != 0)."""
    from nmc.ir.verifier import verify

    verify(graph)
    exporter = _Exporter(graph, dt, compat)
    result = exporter.run()
    if warnings is not None:
        warnings.extend(exporter.warnings)
    return result


def _without_zero_v_reset(data: bytes) -> bytes:
    """The file with every all-zero ``v_reset`` left out: nir ≤ 1.0.4 readers (sinabs') refuse
    the field, newer ones read its absence as 0."""
    import io

    import h5py

    buf = io.BytesIO(data)
    with h5py.File(buf, "r+") as f:
        def visit(name, obj):
            if isinstance(obj, h5py.Group) and "v_reset" in obj and not np.any(obj["v_reset"][()]):
                found.append(obj)
        found: list = []
        f.visititems(visit)
        for group in found:
            del group["v_reset"]
    return buf.getvalue()


def export_nir(graph: Graph, path: str, dt: float | None = None, compat: str | None = None) -> list[str]:
    """Write :func:`to_nir` of ``graph`` to ``path`` (whole or not at all), readable by nir
    1.0.4 and newer; returns the warnings for ``compat``'s reader."""
    import io

    import nir

    from nmc.fileio import atomic_write

    warnings: list[str] = []
    nir_graph = to_nir(graph, dt, compat, warnings)
    buf = io.BytesIO()
    nir.write(buf, nir_graph)
    atomic_write(os.fspath(path), _without_zero_v_reset(buf.getvalue()))
    return warnings

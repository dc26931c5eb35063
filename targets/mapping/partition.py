"""Partitioning: spread the neurons of an integer snn graph over cores with per-core limits.

Shared by the chip classes whose cores hold neurons and their incoming synapses (a class's
partition pass calls :func:`partition`); nothing here knows where cores are.

Each population is cut into runs of consecutive neurons in a *tile order*, and the runs are
then packed onto cores.  Two tile orders are tried for the whole graph and the better plan is
kept (fewest cores, then fewest output routing entries, i.e. least traffic):

* ``channel``: the flat C-order index — a convolution's output is cut into channel tiles, then
  spatial tiles inside a channel when one channel is too large;
* ``spatial``: for ``[C, H, W]`` populations the order ``(y, c, x)`` — a run is a band of rows
  across all channels, so the next convolution's window (its input halo) and each neuron's
  fan-out stay within a few cores.  A band is stored as one slice per channel.

A set of neurons fits a core when it respects all four per-core limits (:class:`CoreLimits`,
docs/mesh-target.md):

* neurons: at most ``neurons``;
* input axons: the distinct presynaptic sources (encoder elements or neurons) that reach any
  neuron of the set, at most ``input_axons``;
* synapse memory: Σ weight bits of the set's synapses — a convolution or pooling
  projection on a chip with ``shared_weights`` costs its kernel once per output channel
  present instead — at most ``synapse_memory_bits``;
* output routing entries: Σ over the set's neurons of the distinct cores their spikes
  reach, at most ``output_axons``.

Cutting is greedy: each run is the longest that fits, which for limits that only grow with the
run gives the fewest runs per population.  Packing is next-fit in graph order: a run joins the
previous core when the union still fits, so small layers share cores with their neighbours
(and their traffic stays on the core).  The output entries depend on how the *downstream*
populations are cut; a packed core over them is unpacked, and a population whose own cores
exceed them is re-cut with a smaller neuron cap, until every core fits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op
from nmc.targets.mapping.netlist import Netlist, distinct, pop_name, require_stateless, weight_bits

HINT = ("use a larger board, fewer channels or neurons in the layer, "
        "or fewer weight bits (quantize{weight-bits=N})")
MAX_ROUNDS = 40
ORDERS = ("channel", "spatial")


@dataclass(frozen=True)
class CoreLimits:
    """What one core holds (module docstring)."""

    neurons: int
    input_axons: int
    output_axons: int
    synapse_memory_bits: int
    shared_weights: bool


def check_formats(graph: Graph, formats, chip_name: str) -> None:
    """Per-op requirements of a chip's :class:`~nmc.targets.chip.Formats`: integer state within
    its widths, its reset modes, weight bits and exponents within its synapse format, and
    stateless synapses unless it has stateful ones."""
    if not formats.stateful_synapses:
        for p in graph.walk("snn.project"):  # first: no quantization makes these fit
            require_stateless(p, chip_name)
    state_bits = min(formats.current_bits, formats.voltage_bits)
    for i, pop in enumerate(graph.walk("snn.population")):
        name = pop_name(pop, i)
        if not pop.bits:
            raise NmcError(f"population %{name} is a float population; chip '{chip_name}' runs integer graphs",
                           pop.loc, hint="run quantize{weight-bits=8} before partition")
        if pop.bits > state_bits:
            raise NmcError(f"population %{name} has {pop.bits}-bit state; chip '{chip_name}' holds {state_bits} bits "
                           f"(over by {pop.bits - state_bits})", pop.loc,
                           hint=f"quantize for this chip (its state width is {state_bits} bits)")
        if pop.reset not in formats.reset_modes:
            raise NmcError(f"population %{name} resets by '{pop.reset}'; chip '{chip_name}' supports "
                           f"{', '.join(formats.reset_modes)}", pop.loc)
    for p in graph.walk("snn.project"):
        bits = weight_bits(p)
        if bits > formats.weight_bits_max:
            raise NmcError(f"projection %{p.result.name or '?'} has weights of {bits} bits; chip '{chip_name}' holds "
                           f"at most {formats.weight_bits_max} (over by {bits - formats.weight_bits_max})", p.loc,
                           hint=f"quantize{{weight-bits={formats.weight_bits_max}}}")
        if p.exponent > formats.weight_exponent_max:
            raise NmcError(f"projection %{p.result.name or '?'} has weight exponent {p.exponent}; chip '{chip_name}' "
                           f"allows at most {formats.weight_exponent_max}", p.loc,
                           hint="quantize for this chip (it chooses exponents the chip holds)")


def _tile_order(pop: Op, order: str) -> np.ndarray | None:
    """Flat neuron index at each position of the tile order; None for the flat order itself."""
    shape = pop.result.type.shape
    if order == "channel" or len(shape) != 3 or shape[0] == 1 or shape[1] * shape[2] == 1:
        return None
    return np.arange(pop.result.type.size, dtype=np.int64).reshape(shape).transpose(1, 0, 2).reshape(-1)


class _Slicer:
    """Usage of a run ``[a, b)`` of one population's neurons, in its tile order, on one core."""

    def __init__(self, net: Netlist, pop: Op, limits: CoreLimits, chip_name: str, order: str):
        self.pop, self.limits, self.chip_name = pop, limits, chip_name
        self.order = _tile_order(pop, order)
        inc = net.incoming(pop)
        shared = np.zeros(len(inc.projections), bool)
        self.shared_terms = []  # bits per output channel present
        for k, p in enumerate(inc.projections):
            if limits.shared_weights and p.kind in ("conv2d", "pool"):
                shared[k] = True
                per_channel = int(np.prod(p.weight.shape[1:])) if p.kind == "conv2d" else 1
                self.shared_terms.append(per_channel * weight_bits(p))
        cost = np.where(shared[inc.proj], 0, inc.bits) if len(inc.proj) else np.zeros(0, np.int64)
        ptr, src = inc.ptr, inc.src
        size = pop.result.type.size
        flat = np.arange(size, dtype=np.int64) if self.order is None else self.order
        if self.order is not None:  # the synapses of the neurons in tile order
            counts = np.diff(ptr)[flat]
            pos = np.concatenate([[0], np.cumsum(counts)])
            idx = np.repeat(ptr[flat] - pos[:-1], counts) + np.arange(pos[-1], dtype=np.int64)
            ptr, src, cost = pos, src[idx], cost[idx]
        self.ptr, self.src = ptr, src
        # prev[i]: the last synapse before i with the same source (-1: none), so that the
        # distinct sources of a run starting at synapse lo are those i with prev[i] < lo
        by_src = np.argsort(src, kind="stable")
        same = np.concatenate([[False], src[by_src][1:] == src[by_src][:-1]])
        self.prev = np.full(len(src), -1, np.int64)
        self.prev[by_src[same]] = by_src[np.flatnonzero(same) - 1]
        self.cum = np.concatenate([[0], np.cumsum(cost)])[ptr]
        shape = pop.result.type.shape
        self.channel = flat // max(1, int(np.prod(shape[1:]))) if self.shared_terms else None

    def sources(self, a: int, b: int) -> np.ndarray:
        return distinct(self.src[self.ptr[a]:self.ptr[b]])

    def usage(self, a: int, b: int) -> tuple[int, int, int]:
        """(neurons, input axons, synapse bits) of positions ``[a, b)``."""
        lo, hi = self.ptr[a], self.ptr[b]
        mem = int(self.cum[b] - self.cum[a])
        if self.shared_terms:
            mem += distinct(self.channel[a:b]).size * sum(self.shared_terms)
        return b - a, int(np.count_nonzero(self.prev[lo:hi] < lo)), mem

    def fits(self, a: int, b: int, cap: int) -> bool:
        n, axons, mem = self.usage(a, b)
        c = self.limits
        return n <= cap and axons <= c.input_axons and mem <= c.synapse_memory_bits

    def runs(self, a: int, b: int) -> list[tuple[int, int]]:
        """Positions ``[a, b)`` as runs of consecutive flat indices, ascending."""
        if self.order is None:
            return [(a, b)]
        flat = np.sort(self.order[a:b])
        breaks = np.flatnonzero(np.diff(flat) != 1) + 1
        return [(int(r[0]), int(r[-1]) + 1) for r in np.split(flat, breaks)]

    def flat(self, a: int, b: int) -> np.ndarray:
        return np.arange(a, b, dtype=np.int64) if self.order is None else self.order[a:b]

    def binding(self, cut: list[tuple[int, int]], cap: int) -> str:
        """The limit that ended the first run of ``cut``, in words."""
        if len(cut) == 1:
            return "nothing (one core)"
        a, b = cut[0]
        n, axons, mem = self.usage(a, b + 1)
        c = self.limits
        if cap < c.neurons and n > cap:
            return "output routing entries"
        if n > c.neurons:
            return "neurons"
        return "input axons" if axons > c.input_axons else "synapse memory"

    def total_bits(self) -> int:
        return self.usage(0, self.pop.result.type.size)[2]

    def cut(self, cap: int, name: str) -> list[tuple[int, int]]:
        size = self.pop.result.type.size
        out, a = [], 0
        while a < size:
            if not self.fits(a, a + 1, cap):
                raise self.single_neuron_error(a, name)
            good, b = a + 1, min(a + cap, size)
            if not self.fits(a, b, cap):
                bad, step = b, 1
                while good + step < bad and self.fits(a, good + step, cap):  # gallop, then bisect
                    good += step
                    step *= 2
                bad = min(bad, good + step)
                while bad - good > 1:
                    mid = (good + bad) // 2
                    good, bad = (mid, bad) if self.fits(a, mid, cap) else (good, mid)
                b = good
            out.append((a, b))
            a = b
        return out

    def single_neuron_error(self, j: int, name: str) -> NmcError:
        _, axons, mem = self.usage(j, j + 1)
        j = int(self.flat(j, j + 1)[0])
        c = self.limits
        if axons > c.input_axons:
            what = (f"neuron {j} receives {axons} distinct inputs; a core has {c.input_axons} input axons "
                    f"(over by {axons - c.input_axons})")
            hint = ("one neuron's inputs must fit one core: fewer input channels or a smaller kernel in this "
                    "layer, or a chip with more input axons per core")
        else:
            what = (f"neuron {j} needs {mem} bits of synapse memory; a core has {c.synapse_memory_bits} "
                    f"(over by {mem - c.synapse_memory_bits})")
            hint = "fewer weight bits (quantize{weight-bits=N}), or fewer inputs per neuron in this layer"
        return NmcError(f"population %{name} does not fit chip '{self.chip_name}': {what}", self.pop.loc, hint=hint)


@dataclass
class _Core:
    """Runs ``(pop, a, b)`` (positions in each population's tile order) on one core, and their
    neurons, distinct sources and synapse bits."""

    pieces: list
    neurons: int
    sources: np.ndarray
    bits: int


def _pack(net: Netlist, slicers: dict, cuts: dict, alone: set, c: CoreLimits) -> list[_Core]:
    """Next-fit: each run joins the previous core when the union fits (module docstring); runs
    of populations in ``alone`` get cores of their own."""
    cores: list[_Core] = []
    for pop in net.populations:
        sl = slicers[pop]
        for a, b in cuts[pop]:
            n, _, bits = sl.usage(a, b)
            src = sl.sources(a, b)
            last = cores[-1] if cores else None
            if (last is not None and pop not in alone and last.pieces[-1][0] not in alone
                    and last.neurons + n <= c.neurons and last.bits + bits <= c.synapse_memory_bits):
                union = distinct(np.concatenate([last.sources, src]))
                if union.size <= c.input_axons:
                    last.pieces.append((pop, a, b))
                    last.neurons, last.sources, last.bits = last.neurons + n, union, last.bits + bits
                    continue
            cores.append(_Core([(pop, a, b)], n, src, bits))
    return cores


def _output_entries(net: Netlist, cores_of: np.ndarray) -> np.ndarray:
    """Routing entries each global neuron needs: the distinct cores its spikes reach."""
    pairs = []
    for pop in net.populations:
        inc = net.incoming(pop)
        size = pop.result.type.size
        tgt = np.repeat(np.arange(size, dtype=np.int64) + net.neuron_offset[pop], np.diff(inc.ptr))
        keep = inc.src >= net.n_ports
        pairs.append(np.stack([inc.src[keep] - net.n_ports, cores_of[tgt[keep]]], axis=1))
    if not pairs:
        return np.zeros(net.n_neurons, np.int64)
    both = np.concatenate(pairs)
    width = int(cores_of.max()) + 1 if len(cores_of) else 1
    keys = distinct(both[:, 0] * width + both[:, 1])  # one int64 per (neuron, core): fast
    return np.bincount(keys // width, minlength=net.n_neurons)


@dataclass
class _Plan:
    order: str
    slicers: dict
    cuts: dict
    caps: dict
    cores: list
    outputs: np.ndarray  # output routing entries per core


def _plan(net: Netlist, c: CoreLimits, chip_name: str, order: str, names: dict) -> _Plan:
    """Cut, pack and re-cut until every core's output routing entries fit (module docstring)."""
    slicers = {pop: _Slicer(net, pop, c, chip_name, order) for pop in net.populations}
    caps = {pop: c.neurons for pop in net.populations}
    cuts = {pop: slicers[pop].cut(caps[pop], names[pop]) for pop in net.populations}
    alone: set = set()
    for _ in range(MAX_ROUNDS):
        cores = _pack(net, slicers, cuts, alone, c)
        cores_of = np.zeros(net.n_neurons, np.int64)
        for k, core in enumerate(cores):
            for pop, a, b in core.pieces:
                cores_of[net.neuron_offset[pop] + slicers[pop].flat(a, b)] = k
        entries = _output_entries(net, cores_of)
        per_core = np.bincount(cores_of, weights=entries, minlength=len(cores)).astype(np.int64)
        over = np.flatnonzero(per_core > c.output_axons)
        if not len(over):
            return _Plan(order, slicers, cuts, caps, cores, per_core)
        recut = set()
        for i in over:
            pieces = cores[i].pieces
            if len(pieces) > 1:
                alone |= {pop for pop, _, _ in pieces}
                continue
            pop, a, b = pieces[0]
            if b - a == 1:
                n = int(per_core[i])
                j = int(slicers[pop].flat(a, b)[0])
                raise NmcError(f"population %{names[pop]} does not fit chip '{chip_name}': neuron {j} sends to {n} "
                               f"cores; a core has {c.output_axons} output routing entries (over by {n - c.output_axons})",
                               pop.loc, hint=HINT)
            caps[pop] = min(caps[pop], max(1, (b - a) * c.output_axons // int(per_core[i])))
            recut.add(pop)
        for pop in recut:
            cuts[pop] = slicers[pop].cut(caps[pop], names[pop])
    raise NmcError(f"partition found no cut whose output routing entries fit chip '{chip_name}' "
                   f"after {MAX_ROUNDS} rounds", hint=HINT)


def partition(graph: Graph, formats, limits: CoreLimits, chip_name: str, order: str = "auto") -> dict:
    """Cut and pack every population (module docstring).  Returns ``{"cores": [(runs, neurons,
    axons, bits, outputs)]`` with ``runs`` a list of ``(pop, a, b)`` flat-index slices,
    ``"lower_bound"`` (the graph's), ``"layers"``: ``{pop: (cores, lower bound, limited by)}``,
    ``"order"``, ``"names"}``; or raises NmcError when a population cannot fit a core.  ``order``: a tile order of :data:`ORDERS`, or ``auto`` for the better plan."""
    check_formats(graph, formats, chip_name)
    net = Netlist(graph)
    c = limits
    names = {pop: pop_name(pop, i) for i, pop in enumerate(net.populations)}
    if order != "auto":
        orders = (order,)
    elif any(_tile_order(p, "spatial") is not None for p in net.populations):
        orders = ORDERS
    else:
        orders = ORDERS[:1]  # no population has a spatial order of its own
    plans, first_error = [], None
    for order in orders:
        try:
            plans.append(_plan(net, c, chip_name, order, names))
        except NmcError as err:
            first_error = first_error or err
    if not plans:
        raise first_error
    plan = min(plans, key=lambda p: (len(p.cores), int(p.outputs.sum())))
    cores = []
    for k, core in enumerate(plan.cores):
        runs = [(pop, a, b) for pop, pa, pb in core.pieces for a, b in plan.slicers[pop].runs(pa, pb)]
        cores.append((runs, core.neurons, int(core.sources.size), core.bits, int(plan.outputs[k])))
    total_bits = sum(plan.slicers[p].total_bits() for p in net.populations)
    lower = max(-(-net.n_neurons // c.neurons), -(-total_bits // c.synapse_memory_bits))
    layers = {}
    used_by = Counter(p for core in plan.cores for p in {p for p, _, _ in core.pieces})  # cores holding a piece of p
    for pop in net.populations:
        used = used_by[pop]
        own = max(-(-pop.result.type.size // c.neurons), -(-plan.slicers[pop].total_bits() // c.synapse_memory_bits))
        layers[pop] = (used, own, plan.slicers[pop].binding(plan.cuts[pop], plan.caps[pop]))
    return {"cores": cores, "lower_bound": lower, "layers": layers, "order": plan.order, "names": names}

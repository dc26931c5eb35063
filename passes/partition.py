"""``partition``: slice every population of an integer snn graph over the cores of a mesh chip.

Each population is cut into contiguous slices of its flat (C-order) neuron index — for a
convolution's output that is channel tiles first, then spatial tiles within a channel when one
channel is too large.  A slice fits a core when it respects all four per-core limits
(docs/mesh-target.md):

* neurons: at most ``core.neurons``;
* input axons: the distinct presynaptic sources (encoder elements or neurons) that reach any
  neuron of the slice, at most ``core.input_axons``;
* synapse memory: Σ weight bits of the slice's synapses — a convolution or pooling
  projection on a chip with ``shared_weights`` costs its kernel once per output channel
  present instead — at most ``core.synapse_memory_bits``;
* output routing entries: Σ over the slice's neurons of the distinct cores their spikes
  reach, at most ``core.output_axons``.

Slicing is greedy: each slice is the longest run that fits, which for contiguous slices with
limits that only grow with the run gives the fewest cores per population.  The output
entries depend on how the *downstream* populations are cut, so a population whose cores
exceed them is re-cut with a smaller neuron cap until every core fits.
"""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op
from nmc.ir.hw import Core
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.targets.mesh.netlist import Netlist, pop_name, weight_bits

HINT = ("use a larger board (more chips: chips_x/chips_y), fewer channels or neurons in the layer, "
        "or fewer weight bits (quantize{weight-bits=N})")
MAX_ROUNDS = 40


def mesh_chip(ctx: PassContext, name: str):
    """The target chip of a mapping pass, required to be of class mesh."""
    chip = ctx.target
    if chip is None:
        raise NmcError(f"the '{name}' pass needs a target chip", hint="pass --target mesh (or a chip .toml)")
    if getattr(chip, "chip_class", None) != "mesh":
        raise NmcError(f"the '{name}' pass maps onto mesh-class chips; target '{chip.name}' is of class "
                       f"'{chip.chip_class}'")
    return chip


def clear_hw(graph: Graph) -> None:
    """Remove the hw ops of an earlier mapping (so a pass can run again)."""
    graph.ops = [op for op in graph.ops if op.dialect != "hw"]


def hw_insert(graph: Graph, ops: list[Op]) -> None:
    """Put hw ops, in order, right before ``ann.output`` (which stays last)."""
    at = len(graph.ops)
    if graph.ops and graph.ops[-1].KIND == "ann.output":
        at -= 1
    graph.ops[at:at] = ops


def check_fits_chip(graph: Graph, chip) -> None:
    """Per-op requirements of the chip: integer state within its widths, its reset modes,
    weight bits and exponents within its synapse format."""
    state_bits = min(chip.state.current_bits, chip.state.voltage_bits)
    for i, pop in enumerate(graph.walk("snn.population")):
        name = pop_name(pop, i)
        if not pop.bits:
            raise NmcError(f"population %{name} is a float population; chip '{chip.name}' runs integer graphs",
                           pop.loc, hint="run quantize{weight-bits=8} before partition")
        if pop.bits > state_bits:
            raise NmcError(f"population %{name} has {pop.bits}-bit state; chip '{chip.name}' holds {state_bits} bits "
                           f"(over by {pop.bits - state_bits})", pop.loc,
                           hint=f"quantize for this chip (its state width is {state_bits} bits)")
        if pop.reset not in chip.state.reset_modes:
            raise NmcError(f"population %{name} resets by '{pop.reset}'; chip '{chip.name}' supports "
                           f"{', '.join(chip.state.reset_modes)}", pop.loc)
    for p in graph.walk("snn.project"):
        bits = weight_bits(p)
        if bits > chip.core.weight_bits_max:
            raise NmcError(f"projection %{p.result.name or '?'} has weights of {bits} bits; chip '{chip.name}' holds "
                           f"at most {chip.core.weight_bits_max} (over by {bits - chip.core.weight_bits_max})", p.loc,
                           hint=f"quantize{{weight-bits={chip.core.weight_bits_max}}}")
        if p.exponent > chip.core.weight_exponent_max:
            raise NmcError(f"projection %{p.result.name or '?'} has weight exponent {p.exponent}; chip '{chip.name}' "
                           f"allows at most {chip.core.weight_exponent_max}", p.loc,
                           hint="quantize for this chip (it chooses exponents the chip holds)")


class _Slicer:
    """Usage of a run ``[a, b)`` of one population's neurons on one core."""

    def __init__(self, net: Netlist, pop: Op, chip):
        self.pop, self.chip = pop, chip
        inc = net.incoming(pop)
        self.ptr, self.src = inc.ptr, inc.src
        shared = np.zeros(len(inc.projections), bool)
        self.shared_terms = []  # (neurons per channel, bits per channel)
        for k, p in enumerate(inc.projections):
            if chip.core.shared_weights and p.kind in ("conv2d", "pool"):
                shared[k] = True
                shape = p.result.type.shape
                per_channel = int(np.prod(p.weight.shape[1:])) if p.kind == "conv2d" else 1
                self.shared_terms.append((int(np.prod(shape[1:])), per_channel * weight_bits(p)))
        cost = np.where(shared[inc.proj], 0, inc.bits) if len(inc.proj) else np.zeros(0, np.int64)
        self.cum = np.concatenate([[0], np.cumsum(cost)])[self.ptr]

    def usage(self, a: int, b: int) -> tuple[int, int, int]:
        axons = np.unique(self.src[self.ptr[a]:self.ptr[b]]).size
        mem = int(self.cum[b] - self.cum[a])
        for hw, bits in self.shared_terms:
            mem += ((b - 1) // hw - a // hw + 1) * bits
        return b - a, int(axons), mem

    def fits(self, a: int, b: int, cap: int) -> bool:
        n, axons, mem = self.usage(a, b)
        c = self.chip.core
        return n <= cap and axons <= c.input_axons and mem <= c.synapse_memory_bits

    def binding(self, cut: list[tuple[int, int]], cap: int) -> str:
        """The limit that ended the first slice of ``cut``, in words."""
        if len(cut) == 1:
            return "nothing (one core)"
        a, b = cut[0]
        n, axons, mem = self.usage(a, b + 1)
        c = self.chip.core
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
        c = self.chip.core
        if axons > c.input_axons:
            what = (f"neuron {j} receives {axons} distinct inputs; a core has {c.input_axons} input axons "
                    f"(over by {axons - c.input_axons})")
        else:
            what = (f"neuron {j} needs {mem} bits of synapse memory; a core has {c.synapse_memory_bits} "
                    f"(over by {mem - c.synapse_memory_bits})")
        return NmcError(f"population %{name} does not fit chip '{self.chip.name}': {what}", self.pop.loc, hint=HINT)


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
    keys = np.unique(both[:, 0] * width + both[:, 1])  # one int64 per (neuron, core): fast unique
    return np.bincount(keys // width, minlength=net.n_neurons)


def partition(graph: Graph, chip) -> dict:
    """Cut every population into slices (module docstring).  Returns ``{"slices": [(pop,
    a, b, neurons, axons, bits, outputs)], "lower_bound": {pop: n}, "limited_by": {pop: str}}``
    or raises NmcError when a population cannot fit or the board has too few cores."""
    check_fits_chip(graph, chip)
    net = Netlist(graph)
    c = chip.core
    names = {pop: pop_name(pop, i) for i, pop in enumerate(net.populations)}
    slicers = {pop: _Slicer(net, pop, chip) for pop in net.populations}
    caps = {pop: c.neurons for pop in net.populations}
    cuts = {pop: slicers[pop].cut(caps[pop], names[pop]) for pop in net.populations}
    for _ in range(MAX_ROUNDS):
        cores_of = np.zeros(net.n_neurons, np.int64)
        core_pop, k = [], 0
        for pop in net.populations:
            off = net.neuron_offset[pop]
            for a, b in cuts[pop]:
                cores_of[off + a:off + b] = k
                core_pop.append((pop, a, b))
                k += 1
        entries = _output_entries(net, cores_of)
        per_core = np.bincount(cores_of, weights=entries, minlength=k).astype(np.int64)
        over = np.flatnonzero(per_core > c.output_axons)
        if not len(over):
            break
        for i in over:
            pop, a, b = core_pop[i]
            if b - a == 1:
                n = int(per_core[i])
                raise NmcError(f"population %{names[pop]} does not fit chip '{chip.name}': neuron {a} sends to {n} "
                               f"cores; a core has {c.output_axons} output routing entries (over by {n - c.output_axons})",
                               pop.loc, hint=HINT)
            caps[pop] = min(caps[pop], max(1, (b - a) * c.output_axons // int(per_core[i])))
        for pop in {core_pop[i][0] for i in over}:
            cuts[pop] = slicers[pop].cut(caps[pop], names[pop])
    else:
        raise NmcError(f"partition found no cut whose output routing entries fit chip '{chip.name}' "
                       f"after {MAX_ROUNDS} rounds", hint=HINT)
    slices = []
    for i, (pop, a, b) in enumerate(core_pop):
        n, axons, bits = slicers[pop].usage(a, b)
        slices.append((pop, a, b, n, axons, bits, int(per_core[i])))
    lower, limited = {}, {}
    for pop in net.populations:
        size = pop.result.type.size
        lower[pop] = max(-(-size // c.neurons), -(-slicers[pop].total_bits() // c.synapse_memory_bits))
        limited[pop] = slicers[pop].binding(cuts[pop], caps[pop])
    available = chip.cores * chip.mesh.chips_x * chip.mesh.chips_y
    if len(slices) > available:
        worst = max(net.populations, key=lambda p: len(cuts[p]))
        raise NmcError(f"the graph needs {len(slices)} cores; chip '{chip.name}' has {available} "
                       f"({chip.mesh.chips_x}x{chip.mesh.chips_y} chips of {chip.mesh.cores_x}x{chip.mesh.cores_y} cores), "
                       f"{len(slices) - available} too many; the largest layer %{names[worst]} takes "
                       f"{len(cuts[worst])} cores (limited by {limited[worst]})", worst.loc, hint=HINT)
    return {"slices": slices, "lower_bound": lower, "limited_by": limited, "names": names, "cuts": cuts}


@register_pass("partition")
class Partition(Pass):
    """Slice every population over the cores of the target mesh chip (module docstring).

    Requires: ``ctx.target`` a mesh-class chip; an integer snn graph whose state widths, reset
    modes, weight bits and exponents the chip holds.  Ensures: one ``hw.core`` per core (ids
    0.., populations in graph order) before ``ann.output``, every neuron on exactly one core,
    every core within the chip's four limits; earlier hw ops removed; the snn ops unchanged;
    ``meta["hw.mesh"]`` and ``meta["hw.cores_lower_bound"]``.  Fails with a diagnostic naming
    the layer, the limit and by how much when something cannot fit."""

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = mesh_chip(ctx, "partition")
        clear_hw(graph)
        plan = partition(graph, chip)
        hw_insert(graph, [Core(pops=[pop.result], id=k, slices=(a, b), neurons=n, axons=axons,
                               synapse_bits=bits, outputs=outs)
                          for k, (pop, a, b, n, axons, bits, outs) in enumerate(plan["slices"])])
        m = chip.mesh
        graph.meta["hw.mesh"] = [m.cores_x, m.cores_y, m.chips_x, m.chips_y]
        lower = sum(plan["lower_bound"].values())
        graph.meta["hw.cores_lower_bound"] = lower
        ctx.stat("cores", len(plan["slices"]))
        ctx.stat("cores-lower-bound", lower)
        ctx.stat("neurons", sum(s[3] for s in plan["slices"]))
        for pop, cut in plan["cuts"].items():
            ctx.remark(f"%{plan['names'][pop]}: {len(cut)} core(s) (lower bound {plan['lower_bound'][pop]}), "
                       f"limited by {plan['limited_by'][pop]}")
        return True

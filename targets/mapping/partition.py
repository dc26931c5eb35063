"""Partitioning: spread the neurons of an integer snn graph over cores with per-core limits.

Shared by the chip classes whose cores hold neurons and their incoming synapses (a class's
partition pass calls :func:`partition`); nothing here knows where cores are.

A set of neurons fits a core when it respects all four per-core limits (:class:`CoreLimits`,
docs/mesh-target.md):

* neurons: at most ``neurons``;
* input axons: the distinct presynaptic sources (encoder elements or neurons) that reach any
  neuron of the set, at most ``input_axons``;
* synapse memory: Σ weight bits of the set's synapses — a convolution or pooling
  projection on a chip with ``shared_weights`` costs its kernel once per output channel
  present instead; ``synapse_word_bits`` (when not 0) replaces the weight bits of every
  synapse, and each input axon costs ``axon_bits`` and each neuron ``neuron_bits`` more (a
  core whose synaptic rows, row headers and neuron state share one memory) — at most
  ``synapse_memory_bits``;
* output routing entries: Σ over the set's neurons of the distinct cores their spikes
  reach, at most ``output_axons``.

**By shape.**  A population whose projections are all shaped (convolution, pooling, dense,
one-to-one: :mod:`~nmc.targets.mapping.shapes`) is cut into a grid of *boxes* ``channels ×
rows × columns`` of one size ``(tc, th, tw)``, counted from the projections' geometry without
expanding a synapse.  The size is searched: for every pair of row and column tile heights
that divide the plane into equal parts (the distinct ``⌈H / k⌉``), the largest channel count
whose boxes all fit (the receptive field of a box is a product of per-axis index sets, so the
worst box's input axons are the product of per-axis maxima), keeping the size with the fewest
boxes (then the fewest input axons in total, i.e. the least traffic).

**Explicit.**  A population with an irregular (``sparse``) projection is cut from its
explicit synapse lists into runs of consecutive neurons, each the longest that fits.

Packing is next-fit in graph order: a tile joins the previous core when the union still fits,
so small layers share cores with their neighbours (and their traffic stays on the core).  The
output entries depend on how the *downstream* populations are cut; a packed core over them is
unpacked, and a population whose own cores exceed them is re-cut with a smaller neuron cap,
until every core fits.

**Mixing.**  When that takes more cores than the lower bound (on plans of at most
``MIX_MAX_CORES`` cores and ``MIX_MAX_WORK`` cores × units), layers are mixed on cores by all
resources at once: each shaped unit in turn, largest first, is
taken off the cores and put back in *block order* (its boxes in tile order, each box position by
position with the channels innermost, :func:`~nmc.targets.mapping.shapes.block_run_boxes`) —
first into the room the other cores leave (first-fit: each core takes the longest run that still
fits its neurons, input axons and memory), then onto new cores; a trial is kept when it takes
fewer cores and every core's output entries fit.  So the part-filled last boxes of layers
share cores, and a layer bound by memory or input axons takes a neuron-bound layer's cells
beside it.  A second trial mixes by the binding resource (:func:`_reserve`, when every unit is
shaped and none is held alone): the memory-bound layers go first onto cores each filled only to
``1 − f`` of the memory, ``f`` about the neuron-bound layers' share of all the memory, and the
neuron-bound layers then fill the room left (their neurons are cheap in memory, the memory-bound
layers' cores have neuron slots to spare); the fewer cores win.  On small plans (at most
``RECUT_MAX_CORES`` cores) each unit's next
``RECUT_SIZES`` box sizes are tried too, packed and mixed: smaller boxes of an axon-bound layer
leave room for a neuron-bound one.
"""

from __future__ import annotations

import weakref
from collections import Counter
from dataclasses import dataclass, replace

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op
from nmc.targets.mapping import fanin
from nmc.targets.mapping.netlist import Netlist, distinct, pop_name, require_stateless, weight_bits
from nmc.targets.mapping.shapes import (axis_synapses, block_run_boxes, box_bits, box_runs, field_ids, geometry,
                                        runs_to_boxes, shared_bits_per_channel, view3)

HINT = ("use a larger board, fewer channels or neurons in the layer, "
        "or fewer weight bits (quantize{weight-bits=N})")
MAX_ROUNDS = 40
MIX_MAX_CORES = 4096  # layers are mixed on plans of at most this many cores (each trial scans them all)
MIX_MAX_WORK = 65536  # ... and at most this many cores × units (a trial per unit)
RECUT_MAX_CORES = 64  # ... and layers cut into other box sizes on plans of at most this many
RECUT_SIZES = 8  # ... the next this many sizes of each layer
RESERVE_SHARES = (0.85, 0.9, 1.0)  # memory left on memory-bound cores: these times the neuron-bound layers' share


@dataclass(frozen=True)
class CoreLimits:
    """What one core holds (module docstring)."""

    neurons: int
    input_axons: int
    output_axons: int
    synapse_memory_bits: int
    shared_weights: bool
    fanin: str = "none"  # fan-in splitting mechanism (nmc.targets.mapping.fanin)
    partial_bits: int = 0
    synapse_word_bits: int = 0  # bits of memory per synapse; 0: its weight bits
    axon_bits: int = 0  # bits of memory per input axon
    neuron_bits: int = 0  # bits of memory per neuron
    source_bits: tuple = ()  # ((source op, bits), ...): memory a core spends once per source population it reads

    def weight_cost(self, p: Op) -> int:
        """Memory bits one synapse of ``p`` costs (without shared weights)."""
        return self.synapse_word_bits or weight_bits(p)

    def memory(self, neurons: int, axons: int, synapse_bits: int, sources=()) -> int:
        """Memory bits of a core with these neurons, input axons and synapse bits, reading
        ``sources`` (source ops)."""
        bits = synapse_bits + axons * self.axon_bits + neurons * self.neuron_bits
        if self.source_bits and sources:
            per_source = dict(self.source_bits)
            bits += sum(per_source.get(src, 0) for src in sources)
        return bits


def check_formats(graph: Graph, formats, chip_name: str) -> None:
    """Per-op requirements of a chip's :class:`~nmc.targets.chip.Formats`: integer state within
    its widths, its reset modes, spikes per step within its messages, weight bits and exponents
    within its synapse format, and stateless synapses unless it has stateful ones."""
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
        formats.require_spikes(pop, name, chip_name)
        if pop.leak not in formats.leaks:
            raise NmcError(f"population %{name} decays by leak = {pop.leak}; chip '{chip_name}' has neurons with "
                           f"{', '.join(formats.leaks)} decay", pop.loc, hint="compile for a chip whose class has this neuron")
        if pop.reset not in formats.reset_modes:
            raise NmcError(f"population %{name} resets by '{pop.reset}'; chip '{chip_name}' supports "
                           f"{', '.join(formats.reset_modes)}", pop.loc,
                           hint=("its neurons reset in the step they fire; run the graph on the CPU "
                                 "(nmc run) or re-train it with reset in that step" if pop.reset.endswith("_delayed")
                                 else None))
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




def shaped(pop: Op) -> list | None:
    """``[(projection, Geometry)]`` of a population whose projections are all shaped, else None."""
    out = []
    for c in pop.currents:
        g = geometry(c.owner)
        if g is None:
            return None
        out.append((c.owner, g))
    return out


def _heights(n: int) -> list[int]:
    """The distinct tile heights ``⌈n / k⌉`` (each cuts ``n`` into ``k`` near-equal parts), largest first."""
    return sorted({-(-n // k) for k in range(1, n + 1)}, reverse=True)


class _BoxTiler:
    """Boxes of a shaped population (module docstring)."""

    def __init__(self, net: Netlist, pops: list, limits: CoreLimits, chip_name: str, name: str):
        self.net, self.pops, self.limits, self.chip_name, self.name = net, pops, limits, chip_name, name
        self.pop = pops[0]
        self.shape = view3(self.pop.result.type.shape)
        self.projections = [pg for pop in pops for pg in shaped(pop)]
        # one receptive field per distinct (source, geometry): identical fields share their axons
        self.fields = list(dict.fromkeys((p.src.owner, g) for p, g in self.projections))
        self.sources = {src for src, _ in self.fields}
        self._max: dict = {}
        self._bits = {p: (limits.weight_cost(p), shared_bits_per_channel(p) if g.kind == "window" else 0)
                      for p, g in self.projections}
        self._usage: dict = {}

    def _axis_max(self, what: str, g, size: int) -> int:
        key = (what, g, size)
        if key not in self._max:
            C, H, W = self.shape
            if what == "c":
                v = max(b - a for a, b in (g.channels(c0, min(c0 + size, C)) for c0 in range(0, C, size)))
            elif what == "y":
                v = max(len(g.rows(y0, min(y0 + size, H))) for y0 in range(0, H, size))
            elif what == "x":
                v = max(len(g.cols(x0, min(x0 + size, W))) for x0 in range(0, W, size))
            elif g.kind != "window":  # synapses of the worst box of one output channel
                v = size[0] * size[1] * (1 if g.kind == "one_to_one" else int(np.prod(g.src)))
            else:  # a window's per-axis maxima multiply
                th, tw = size
                k, st, pd, dl = g.kernel, g.strides, g.pads, g.dilations
                v = g.c_group * (max(axis_synapses(g.src[1], y0, min(y0 + th, H), k[0], st[0], pd[0], dl[0])
                                     for y0 in range(0, H, th))
                                 * max(axis_synapses(g.src[2], x0, min(x0 + tw, W), k[1], st[1], pd[1], dl[1])
                                       for x0 in range(0, W, tw)))
            self._max[key] = v
        return self._max[key]

    def worst(self, tc: int, th: int, tw: int) -> tuple[int, int]:
        """Upper bounds of (input axons, synapse bits) over the boxes of size ``(tc, th, tw)``."""
        axons = sum(self._axis_max("c", g, tc) * self._axis_max("y", g, th) * self._axis_max("x", g, tw)
                    for _, g in self.fields)
        bits = 0
        for p, g in self.projections:
            w, per_channel = self._bits[p]
            if self.limits.shared_weights and g.kind == "window":
                bits += tc * per_channel
            else:
                bits += tc * self._axis_max("s", g, (th, tw)) * w
        return axons, bits

    def fits(self, tc: int, th: int, tw: int, cap: int) -> bool:
        axons, bits = self.worst(tc, th, tw)
        n = tc * th * tw * len(self.pops)
        c = self.limits
        return n <= cap and axons <= c.input_axons and c.memory(n, axons, bits, self.sources) <= c.synapse_memory_bits

    def candidates(self, cap: int) -> list[tuple[int, int, int]]:
        """Box sizes that fit, one per pair of row and column tile heights (the most channels
        that fit), fewest boxes first (then the fewest input axons in total, the widest rows)."""
        C, H, W = self.shape
        out = []
        for th in _heights(H):
            for tw in _heights(W):
                top = min(C, cap // (th * tw * len(self.pops)))
                if top < 1 or not self.fits(1, th, tw, cap):
                    continue
                lo, hi = 1, top  # the largest channel count that fits (monotone)
                while lo < hi:
                    mid = (lo + hi + 1) // 2
                    lo, hi = (mid, hi) if self.fits(mid, th, tw, cap) else (lo, mid - 1)
                tc = -(-C // -(-C // lo))  # the same number of channel tiles, balanced
                if not self.fits(tc, th, tw, cap):
                    tc = lo
                n = -(-C // tc) * -(-H // th) * -(-W // tw)
                out.append(((n, n * self.worst(tc, th, tw)[0], -tw), (tc, th, tw)))
        return [size for _, size in sorted(out)]

    def size(self, cap: int) -> tuple[int, int, int]:
        """The box size with the fewest boxes (module docstring), or the single-neuron error."""
        sizes = self.candidates(cap)
        if not sizes:
            raise self.single_neuron_error()
        return self.grown(sizes[0], cap)

    def grown(self, size: tuple, cap: int) -> tuple[int, int, int]:
        """The same number of boxes per axis, each axis's size as large as still fits: the
        last box of a row, column or channel run is then the smallest, and packs with the next
        layer more often."""
        C, H, W = self.shape
        size = list(size)
        for axis, n in ((2, W), (1, H), (0, C)):
            count = -(-n // size[axis])
            top = -(-n // (count - 1)) - 1 if count > 1 else n
            while size[axis] < top:
                trial = list(size)
                trial[axis] += 1
                if not self.fits(*trial, cap):
                    break
                size = trial
        return tuple(size)

    def tiles(self, cap: int, size: tuple | None = None) -> list[tuple]:
        """The boxes of ``size`` (default: the best), rows outermost, then columns, then channels."""
        C, H, W = self.shape
        tc, th, tw = size or self.size(cap)
        return [(c0, min(c0 + tc, C), y0, min(y0 + th, H), x0, min(x0 + tw, W))
                for y0 in range(0, H, th) for x0 in range(0, W, tw) for c0 in range(0, C, tc)]

    def usage(self, box) -> tuple[int, list, int]:
        """(neurons, receptive fields ``[(source op, field)]``, synapse bits) of a box (as
        :func:`~nmc.targets.mapping.shapes.box_bits` counts them); remembered per box (the
        rounds of :func:`_plan` pack the same boxes again)."""
        known = self._usage.get(box)
        if known is None:
            n = (box[1] - box[0]) * (box[3] - box[2]) * (box[5] - box[4]) * len(self.pops)
            fields = [(src, g.field(box)) for src, g in self.fields]
            bits = 0
            for p, g in self.projections:
                w, per_channel = self._bits[p]
                bits += ((box[1] - box[0]) * per_channel if self.limits.shared_weights and g.kind == "window"
                         else g.synapses(box) * w)
            known = self._usage[box] = (n, fields, bits)
        return known

    def single_neuron_error(self) -> NmcError:
        C, H, W = self.shape
        g = max((g for _, g in self.fields), key=lambda g: self._axis_max("c", g, 1) * self._axis_max("y", g, 1)
                * self._axis_max("x", g, 1))
        c = max(range(0, C, max(1, C // 64)), key=lambda c: np.subtract(*g.channels(c, c + 1)[::-1]))
        y = max(range(H), key=lambda y: len(g.rows(y, y + 1)))
        x = max(range(W), key=lambda x: len(g.cols(x, x + 1)))
        box = (c, c + 1, y, y + 1, x, x + 1)
        n, fields, mem = self.usage(box)
        axons = sum(_union_count([f]) for _, f in fields)
        return _neuron_error(self.pop, self.name, self.chip_name, self.limits, (c * H + y) * W + x, axons,
                             self.limits.memory(n, axons, mem))


def _neuron_error(pop, name, chip_name, c: CoreLimits, j: int, axons: int, mem: int) -> NmcError:
    if axons > c.input_axons:
        what = (f"neuron {j} receives {axons} distinct inputs; a core has {c.input_axons} input axons "
                f"(over by {axons - c.input_axons})")
        hint = ("one neuron's inputs must fit one core: fewer input channels or a smaller kernel in this "
                f"layer, or a chip with more input axons per core; {fanin.HINT}")
    else:
        what = (f"neuron {j} needs {mem} bits of synapse memory; a core has {c.synapse_memory_bits} "
                f"(over by {mem - c.synapse_memory_bits})")
        hint = f"fewer weight bits (quantize{{weight-bits=N}}), or fewer inputs per neuron in this layer; {fanin.HINT}"
    return NmcError(f"population %{name} does not fit chip '{chip_name}': {what}", pop.loc, hint=hint)


class _RunTiler:
    """Runs of consecutive neurons of a population with explicit synapse lists."""

    def __init__(self, net: Netlist, pop: Op, limits: CoreLimits, chip_name: str, name: str):
        self.pop, self.limits, self.chip_name, self.name = pop, limits, chip_name, name
        self.pops = [pop]
        inc = net.incoming(pop)
        self.sources = {p.src.owner for p in inc.projections}
        shared = np.zeros(len(inc.projections), bool)
        self.shared_terms = []  # bits per output channel present
        for k, p in enumerate(inc.projections):
            if limits.shared_weights and p.kind in ("conv2d", "pool"):
                shared[k] = True
                self.shared_terms.append(shared_bits_per_channel(p))
        bits = np.full(len(inc.bits), limits.synapse_word_bits) if limits.synapse_word_bits else inc.bits
        cost = np.where(shared[inc.proj], 0, bits) if len(inc.proj) else np.zeros(0, np.int64)
        self.ptr, self.src = inc.ptr, inc.src
        # prev[i]: the last synapse before i with the same source (-1: none), so that the
        # distinct sources of a run starting at synapse lo are those i with prev[i] < lo
        by_src = np.argsort(self.src, kind="stable")
        same = np.concatenate([[False], self.src[by_src][1:] == self.src[by_src][:-1]])
        self.prev = np.full(len(self.src), -1, np.int64)
        self.prev[by_src[same]] = by_src[np.flatnonzero(same) - 1]
        self.cum = np.concatenate([[0], np.cumsum(cost)])[self.ptr]
        size = pop.result.type.size
        shape = pop.result.type.shape
        self.channel = np.arange(size, dtype=np.int64) // max(1, int(np.prod(shape[1:]))) if self.shared_terms else None

    def count(self, a: int, b: int) -> tuple[int, int, int]:
        """(neurons, input axons, synapse bits) of neurons ``[a, b)``."""
        lo, hi = self.ptr[a], self.ptr[b]
        mem = int(self.cum[b] - self.cum[a])
        if self.shared_terms:
            mem += distinct(self.channel[a:b]).size * sum(self.shared_terms)
        return b - a, int(np.count_nonzero(self.prev[lo:hi] < lo)), mem

    def usage(self, run) -> tuple[int, list, int]:
        n, _, mem = self.count(*run)
        return n, [(None, distinct(self.src[self.ptr[run[0]]:self.ptr[run[1]]]))], mem

    def fits(self, a: int, b: int, cap: int) -> bool:
        n, axons, mem = self.count(a, b)
        c = self.limits
        return n <= cap and axons <= c.input_axons and c.memory(n, axons, mem, self.sources) <= c.synapse_memory_bits

    def tiles(self, cap: int) -> list[tuple[int, int]]:
        size = self.pop.result.type.size
        out, a = [], 0
        while a < size:
            if not self.fits(a, a + 1, cap):
                n, axons, mem = self.count(a, a + 1)
                raise _neuron_error(self.pop, self.name, self.chip_name, self.limits, a, axons,
                                    self.limits.memory(n, axons, mem))
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


def _union_count(fields: list) -> int:
    """Distinct sources of receptive fields of one source (products, or id arrays)."""
    if len(fields) == 1 or all(_same(fields[0], f) for f in fields[1:]):
        f = fields[0]
        return len(f) if isinstance(f, np.ndarray) else (f[1] - f[0]) * len(f[2]) * len(f[3])
    return len(distinct(np.concatenate([f if isinstance(f, np.ndarray) else field_ids(f, (0, 1 << 20, 1 << 20))
                                        for f in fields])))


def _same(a, b) -> bool:
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return isinstance(a, np.ndarray) and isinstance(b, np.ndarray) and np.array_equal(a, b)
    return a[:2] == b[:2] and np.array_equal(a[2], b[2]) and np.array_equal(a[3], b[3])


def _reads(net: Netlist, pieces: list, fields_of: dict) -> dict:
    """What a core's pieces read, by source: ``{source op: [field, ...]}`` with each field a
    product ``(channel lo, channel hi, rows, columns)`` of the source's ``(C, H, W)`` view or an
    array of flat indices into it; under the key None, global source ids (with repeats) of
    explicit synapse lists, then the only key (so the keys' sets are disjoint).  A split
    population's neurons (soma pieces) read nothing: their inputs reach the dendrite cores.  ``fields_of``: each shaped population's distinct
    ``(source op, Geometry)``, filled as needed."""
    out: dict = {}
    for pop, piece in pieces:
        if piece[0] == "soma":
            continue
        if piece[0] == "part":
            for src, f in fanin.part_fields(pop, piece[1], piece[2]):
                out.setdefault(src, []).append(f)
        elif len(piece) == 6:
            if pop not in fields_of:
                fields_of[pop] = list(dict.fromkeys((p.src.owner, g) for p, g in shaped(pop)))
            for src, g in fields_of[pop]:
                out.setdefault(src, []).append(g.field(piece))
        else:
            inc = net.incoming(pop)
            out.setdefault(None, []).append(inc.src[inc.ptr[piece[0]]:inc.ptr[piece[1]]])
    if None in out and len(out) > 1:  # explicit lists beside fields may share sources: one set
        return {None: [_distinct_reads(net, src, fields) for src, fields in out.items()]}
    return out


def _distinct_reads(net: Netlist, src, fields: list) -> np.ndarray:
    """Sorted distinct global source ids of one source's fields (:func:`_reads`)."""
    if src is None:
        return distinct(np.concatenate(fields))
    shape = view3(src.result.type.shape)
    ids = [f if isinstance(f, np.ndarray) else field_ids(f, shape) for f in fields[:1] + [
        f for f in fields[1:] if not _same(fields[0], f)]]
    return net.source_offset[src] + (ids[0] if len(ids) == 1 else distinct(np.concatenate(ids)))


def _axis_index(ix: np.ndarray):
    """A sorted distinct index array as a slice when it is an arithmetic progression."""
    if len(ix) < 2:
        return slice(int(ix[0]), int(ix[0]) + 1) if len(ix) else slice(0, 0)
    step = int(ix[1] - ix[0])
    if int(ix[-1] - ix[0]) == step * (len(ix) - 1) and np.all(np.diff(ix) == step):
        return slice(int(ix[0]), int(ix[-1]) + 1, step)
    return ix


class _Readers:
    """Per global source, the number of cores that read it (population neurons only; an
    encoder's elements stay 0), kept across the partitioner's rounds: :meth:`update` adds the
    marks of the cores that are new and takes back those of the cores that are gone, so a
    round costs what it changes.  A core's marks are additions on views of one array (a
    receptive field is a product of index sets), without listing a (source, core) pair."""

    def __init__(self, net: Netlist):
        self.net = net
        self.count = np.zeros(net.n_sources, np.int32)
        self.held: Counter = Counter()  # the marked cores, by their pieces
        self.pieces: dict = {}
        self.fields_of: dict = {}  # for _reads
        self.index: dict = {}  # id(axis index array) -> (it, its slice or itself)
        self.views: dict = {}  # source op -> its (C, H, W) view of count

    def view(self, op: Op) -> np.ndarray:
        if op not in self.views:
            off, (C, H, W) = self.net.source_offset[op], view3(op.result.type.shape)
            self.views[op] = self.count[off:off + C * H * W].reshape(C, H, W)
        return self.views[op]

    def _index(self, ix: np.ndarray):
        known = self.index.get(id(ix))
        if known is None or known[0] is not ix:
            known = self.index[id(ix)] = (ix, _axis_index(ix))
        return known[1]

    def update(self, cores: list[list[tuple]]) -> np.ndarray:
        """The counts for cores given as ``(pop, piece)`` lists."""
        new: Counter = Counter()
        for pieces in cores:
            key = tuple((id(pop), piece) for pop, piece in pieces)
            new[key] += 1
            self.pieces.setdefault(key, pieces)
        for key in set(self.held) | set(new):
            if new[key] != self.held[key]:
                self._mark(self.pieces[key], new[key] - self.held[key])
        self.held = new
        self.pieces = {key: pieces for key, pieces in self.pieces.items() if key in new}
        return self.count

    def _mark(self, pieces: list, delta: int) -> None:
        net = self.net
        for src, fields in _reads(net, pieces, self.fields_of).items():
            if src is not None and src.KIND == "snn.encode":
                continue
            if src is None or isinstance(fields[0], np.ndarray) or not all(_same(fields[0], f) for f in fields[1:]):
                ids = _distinct_reads(net, src, fields)
                self.count[ids[ids >= net.n_ports]] += delta
                continue
            a, b, ys, xs = fields[0]
            sy, sx = self._index(ys), self._index(xs)
            if isinstance(sy, slice) and isinstance(sx, slice):
                self.view(src)[a:b, sy, sx] += delta
            else:
                self.view(src)[a:b, np.asarray(ys)[:, None], np.asarray(xs)[None, :]] += delta

    def sum_over(self, pieces: list) -> int:
        """Σ of the counts over the neurons of a core's pieces."""
        total = 0
        for pop, piece in pieces:
            if piece[0] == "part":
                continue
            box = piece[1] if piece[0] == "soma" else piece
            if len(box) == 6:
                c0, c1, y0, y1, x0, x1 = box
                total += int(self.view(pop)[c0:c1, y0:y1, x0:x1].sum())
            else:
                off = self.net.source_offset[pop]
                total += int(self.count[off + box[0]:off + box[1]].sum())
        return total


def core_pieces(net: Netlist, pops: list, slices: tuple) -> list[tuple]:
    """``(pop, piece)`` of a core from its population slices: boxes of shaped populations
    (runs joined into as few boxes as cover them), runs of the others."""
    runs: dict = {}
    for v, a, b in zip(pops, slices[::2], slices[1::2]):
        runs.setdefault(v.owner, []).append((a, b))
    out = []
    for pop, rs in runs.items():
        if shaped(pop) is not None:
            out += [(pop, box) for box in runs_to_boxes(rs, view3(pop.result.type.shape))]
        else:
            out += [(pop, r) for r in rs]
    return out


def source_core_pairs(net: Netlist, cores: list[list[tuple]]) -> np.ndarray:
    """Distinct ``(global source, core)`` pairs, sorted, of cores given as ``(pop, piece)``
    lists (int64)."""
    return _axons_and_pairs(net, cores, np.int64)[1]


def _axons_and_pairs(net: Netlist, cores: list[list[tuple]], dt=None) -> tuple[np.ndarray, np.ndarray]:
    """(each core's distinct sources: its input axons, the distinct ``(global source, core)``
    pairs sorted by source then core).  The pairs are placed by a counting sort on the source
    (cores in order, so each source's cores ascend): no sort of all pairs.  Their type ``dt``
    by default int32 while the sources and cores fit (ResNet-50: 5·10^7 pairs)."""
    fields_of: dict = {}
    if dt is None:
        dt = np.int32 if max(net.n_sources, len(cores)) < 2**31 else np.int64
    reads = [[_distinct_reads(net, src, fields).astype(dt) for src, fields in _reads(net, pieces, fields_of).items()]
             for pieces in cores]
    axons = np.array([sum(len(ids) for ids in r) for r in reads], np.int64)
    start = np.zeros(net.n_sources + 1, np.int64)
    for r in reads:
        for ids in r:
            start[ids + 1] += 1  # distinct: a core's keys read disjoint sets (:func:`_reads`)
    start = np.cumsum(start)
    pairs = np.empty((int(start[-1]), 2), dt)
    for k, r in enumerate(reads):
        for ids in r:
            at = start[ids]
            pairs[at, 0] = ids
            pairs[at, 1] = k
            start[ids] += 1
    return axons, pairs


@dataclass
class _Core:
    """Tiles ``(unit, piece)`` on one core, their neurons, receptive fields per source, bits."""

    tiles: list
    neurons: int
    fields: dict
    bits: int
    soma: object = None  # a dendrite core of a split population: its soma _Core
    counts: dict | None = None  # distinct sources per source key of ``fields`` (computed when needed)

    @property
    def pieces(self) -> list:
        """``(pop, piece)`` of every population on the core."""
        return [(pop, piece) for unit, piece in self.tiles for pop in unit.pops]

    @classmethod
    def of(cls, tiles: list) -> "_Core":
        """A core holding ``tiles`` (of units with ``usage``)."""
        core = cls([], 0, {}, 0)
        for unit, piece in tiles:
            n, fields, bits = unit.usage(piece)
            core.tiles.append((unit, piece))
            core.neurons, core.bits = core.neurons + n, core.bits + bits
            for src, f in fields:
                core.fields.setdefault(src, []).append(f)
        return core

    def axon_counts(self) -> dict:
        if self.counts is None:
            self.counts = {src: _union_count(fs) for src, fs in self.fields.items()}
        return self.counts

    @property
    def axons(self) -> int:
        return sum(self.axon_counts().values())

    def with_run(self, unit, boxes: list, room: tuple) -> "_Core":
        """A new core: this one with ``boxes`` of ``unit`` added (``room`` from :func:`_room`)."""
        neurons, touched, bits, new = room
        return _Core(self.tiles + [(unit, box) for box in boxes], neurons, {**self.fields, **touched}, bits,
                     counts={**self.axon_counts(), **new})


def _pack(units: list, tiles: dict, alone: set, c: CoreLimits) -> list[_Core]:
    """Next-fit: each tile joins the previous core when the union fits (module docstring);
    tiles of units in ``alone`` get cores of their own."""
    cores: list[_Core] = []
    for unit in units:
        if getattr(unit, "split", False):
            cores += _split_cores(unit, tiles[unit])
            continue
        for piece in tiles[unit]:
            n, fields, bits = unit.usage(piece)
            last = cores[-1] if cores else None
            if (last is not None and unit not in alone and last.tiles[-1][0] not in alone
                    and last.neurons + n <= c.neurons
                    and c.memory(last.neurons + n, 0, last.bits + bits) <= c.synapse_memory_bits):
                sources = unit.sources.union(*(u.sources for u, _ in last.tiles))
                merged = {k: list(v) for k, v in last.fields.items()}
                for src, f in fields:
                    merged.setdefault(src, []).append(f)
                axons = sum(_union_count(f) for f in merged.values())
                if (axons <= c.input_axons
                        and c.memory(last.neurons + n, axons, last.bits + bits, sources) <= c.synapse_memory_bits):
                    last.tiles.append((unit, piece))
                    last.neurons, last.fields, last.bits = last.neurons + n, merged, last.bits + bits
                    continue
            merged = {}
            for src, f in fields:
                merged.setdefault(src, []).append(f)
            cores.append(_Core([(unit, piece)], n, merged, bits))
    return cores


def _room(core: _Core, unit, usage: tuple, c: CoreLimits) -> tuple | None:
    """``core`` with ``usage`` = (neurons, [(source, field)], synapse bits) of ``unit`` added, as
    (neurons, fields of the sources it touches, bits, their distinct counts), or None when that
    does not fit ``c`` (neurons, input axons, memory)."""
    n, fields, bits = usage
    neurons, bits = core.neurons + n, core.bits + bits
    if neurons > c.neurons or c.memory(neurons, 0, bits) > c.synapse_memory_bits:
        return None
    counts = core.axon_counts()
    touched: dict = {}
    for src, f in fields:
        touched.setdefault(src, list(core.fields.get(src, ()))).append(f)
    new = {src: _union_count(fs) for src, fs in touched.items()}
    axons = core.axons - sum(counts.get(src, 0) for src in touched) + sum(new.values())
    sources = unit.sources.union(*(u.sources for u, _ in core.tiles))
    if axons > c.input_axons or c.memory(neurons, axons, bits, sources) > c.synapse_memory_bits:
        return None
    return neurons, touched, bits, new


def _run_usage(unit: "_BoxTiler", block: tuple, a: int, b: int) -> tuple[list, tuple]:
    """(boxes, usage) of cells ``[a, b)`` of a shaped unit in block order (:func:`block_run_boxes`)."""
    boxes = block_run_boxes(a, b, unit.shape, block)
    n = bits = 0
    fields = []
    for box in boxes:
        dn, f, dbits = unit.usage(box)
        n, bits = n + dn, bits + dbits
        fields += f
    return boxes, (n, fields, bits)


def _longest(core: _Core, unit: "_BoxTiler", block: tuple, a: int, end: int, c: CoreLimits) -> tuple[int, tuple]:
    """The largest ``b ≤ end`` such that cells ``[a, b)`` of the unit fit on ``core`` beside what
    it holds (galloping, then bisection: every resource grows with ``b``), and the core with them
    (:func:`_room`); ``(a, None)`` when not even one cell fits."""
    def room(b: int):
        boxes, usage = _run_usage(unit, block, a, b)
        r = _room(core, unit, usage, c)
        return None if r is None else (boxes, r)

    hi = min(end, a + (c.neurons - core.neurons) // len(unit.pops))
    found = room(a + 1) if hi > a else None
    if found is None:
        return a, None
    if hi > a + 1:
        full = room(hi)
        if full is not None:
            return hi, full
    good, step = a + 1, 1
    while good + step < hi:
        r = room(good + step)
        if r is None:
            break
        good, found, step = good + step, r, step * 2
    bad = min(hi, good + step)
    while bad - good > 1:
        mid = (good + bad) // 2
        r = room(mid)
        good, bad, found = (mid, bad, r) if r is not None else (good, mid, found)
    return good, found


def _place(cores: list[_Core], hosts: list[int], unit: "_BoxTiler", block: tuple, c: CoreLimits) -> None:
    """Every cell of a shaped unit, in block order: runs first into the room left on the cores
    ``hosts`` (indices into ``cores``, in order; each takes the longest run that fits, replaced by
    a new :class:`_Core`), then into new cores appended to ``cores``."""
    size = int(np.prod(unit.shape))
    a = 0
    for k in hosts:
        if a == size:
            return
        b, found = _longest(cores[k], unit, block, a, size, c)
        if found is not None:
            cores[k] = cores[k].with_run(unit, *found)
            a = b
    while a < size:
        empty = _Core([], 0, {}, 0)
        b, found = _longest(empty, unit, block, a, size, c)
        if found is None:
            raise unit.single_neuron_error()
        cores.append(empty.with_run(unit, *found))
        a = b


def _block(tiles: list) -> tuple[int, int, int]:
    """The box size of a shaped unit's tiles (the first is a whole box)."""
    c0, c1, y0, y1, x0, x1 = tiles[0]
    return c1 - c0, y1 - y0, x1 - x0


def _refill(units: list, tiles: dict, alone: set, c: CoreLimits, cores: list[_Core], lower: int, ok) -> list[_Core]:
    """Fewer cores by mixing layers (module docstring): each shaped unit in turn, largest
    first, is taken off the cores and put back in block order, first into the room every other
    core leaves (first-fit: a run of it beside another layer's boxes, where all resources
    allow), then onto new cores; each result is kept when it takes fewer cores and ``ok(cores)``
    (every core's output routing entries fit).  Units in ``alone`` (those whose output entries
    limit them) neither move nor host."""
    fillers = [u for u in units if isinstance(u, _BoxTiler) and u not in alone]
    best = cores
    for unit in sorted(fillers, key=lambda u: -int(np.prod(u.shape)) * len(u.pops)):
        if len(best) <= lower:
            break
        trial = []
        for core in best:
            keep = [(u, p) for u, p in core.tiles if u is not unit]
            if len(keep) == len(core.tiles):
                trial.append(core)
            elif keep:
                trial.append(_Core.of(keep))
        hosts = [k for k, core in enumerate(trial) if core.soma is None
                 and not any(getattr(u, "split", False) or u in alone for u, _ in core.tiles)]
        _place(trial, hosts, unit, _block(tiles[unit]), c)
        if len(trial) < len(best) and ok(trial):
            best = trial
    return best


def _box_memory(unit: "_BoxTiler", box: tuple, c: CoreLimits) -> int:
    """Memory bits of a core holding one box of ``unit`` and nothing else."""
    core = _Core.of([(unit, box)])
    return c.memory(core.neurons, core.axons, core.bits, unit.sources)


def _reserve(units: list, tiles: dict, alone: set, c: CoreLimits, fewer_than: int, ok) -> list[_Core] | None:
    """Cores with layers mixed by their binding resource (module docstring, "Mixing"), or None
    when no trial takes fewer than ``fewer_than`` cores with ``ok``.  The *memory-bound* units
    (a whole box of theirs fills more of a core's memory than of its neurons) go first, in
    block order of the boxes that fit ``1 − f`` of the memory, onto new cores each filled to
    that; the others then go,
    largest first, into the room those leave (next-fit over the cores, all resources), then
    onto new cores.  ``f`` is the other units' share of all the boxes' memory, times each of
    ``RESERVE_SHARES``.  Only when every unit is shaped and none is held alone."""
    if alone or not all(isinstance(u, _BoxTiler) for u in units):
        return None
    heavy = [u for u in units
             if _box_memory(u, tiles[u][0], c) * c.neurons > c.synapse_memory_bits * u.usage(tiles[u][0])[0]]
    light = sorted((u for u in units if u not in heavy), key=lambda u: -int(np.prod(u.shape)) * len(u.pops))
    if not heavy or not light:
        return None
    memory = {u: sum(_box_memory(u, box, c) for box in tiles[u]) for u in units}
    share = sum(memory[u] for u in light) / sum(memory.values())
    best = None
    for k in RESERVE_SHARES:
        room = replace(c, synapse_memory_bits=int(c.synapse_memory_bits * (1 - min(0.5, k * share))))
        cores: list[_Core] = []
        for u in heavy:
            try:  # in block order of the boxes that fit the smaller memory
                block = _BoxTiler(u.net, u.pops, room, u.chip_name, u.name).size(room.neurons)
            except NmcError:
                block = _block(tiles[u])
            _place(cores, [], u, block, room)
        start = 0  # next-fit: the cores before the last one a unit reached are left as full
        for u in light:
            before = list(cores)
            _place(cores, list(range(start, len(before))), u, _block(tiles[u]), c)
            start = max((j for j in range(start, len(before)) if cores[j] is not before[j]), default=start)
        if len(cores) < (fewer_than if best is None else len(best)) and ok(cores):
            best = cores
    return best


def _mix(units: list, tiles: dict, alone: set, caps: dict, c: CoreLimits, cores: list[_Core],
         lower: int, ok) -> tuple[list[_Core], dict]:
    """(cores, tiles) with fewer cores than ``cores`` where mixing finds them: :func:`_refill`;
    then, on small plans (at most ``RECUT_MAX_CORES``), each shaped unit cut into boxes of its
    next ``RECUT_SIZES`` sizes too (smaller boxes leave room for other layers: a layer bound by
    input axons beside one bound by neurons), packed and refilled; the fewest cores win."""
    best, best_tiles = _refill(units, tiles, alone, c, cores, lower, ok), tiles
    if len(best) > lower:
        reserved = _reserve(units, tiles, alone, c, len(best), ok)
        if reserved is not None:
            best = reserved
    if len(best) <= lower or len(cores) > RECUT_MAX_CORES:
        return best, best_tiles
    for unit in units:
        if not isinstance(unit, _BoxTiler) or unit in alone:
            continue
        for size in unit.candidates(caps[unit])[1:RECUT_SIZES + 1]:
            trial_tiles = {**tiles, unit: unit.tiles(caps[unit], unit.grown(size, caps[unit]))}
            trial = _refill(units, trial_tiles, alone, c, _pack(units, trial_tiles, alone, c), lower, ok)
            if len(trial) < len(best):
                best, best_tiles = trial, trial_tiles
            if len(best) <= lower:
                return best, best_tiles
    return best, best_tiles


def _split_cores(unit, groups: list) -> list[_Core]:
    """A split population's cores: per soma group, a dendrite core per box and part, then the
    soma core holding the group's boxes (:mod:`nmc.targets.mapping.fanin`)."""
    out = []
    for boxes in groups:
        soma = _Core([(unit, ("soma", box)) for box in boxes], 0, {}, 0)
        for box in boxes:
            n = (box[1] - box[0]) * (box[3] - box[2]) * (box[5] - box[4])
            soma.neurons += n
            for part in unit.parts:
                out.append(_Core([(unit, ("part", tuple(part), box))], n, {}, unit.part_bits(part, box), soma))
        out.append(soma)
    return out


def _core_bits(pieces: list, limits: CoreLimits, unit_of: dict, shapes: dict) -> int:
    """Exact synapse bits of a core: with shared weights a window projection's kernel counts
    once per distinct output channel on the core.  ``shapes``: :func:`shaped` of each
    population, and the kernel bits per channel of each projection, filled as needed."""
    bits, channels = 0, {}
    for pop, piece in pieces:
        t = unit_of[pop]
        if getattr(t, "split", False):
            bits += t.part_bits(piece[1], piece[2]) if piece[0] == "part" else 0
            continue
        if isinstance(t, _RunTiler):
            bits += t.count(*piece)[2]
            continue
        if pop not in shapes:
            shapes[pop] = shaped(pop)
        for p, g in shapes[pop]:
            if limits.shared_weights and g.kind == "window":
                channels.setdefault(p, set()).update(range(piece[0], piece[1]))
            else:
                bits += box_bits(p, g, piece, False, limits.synapse_word_bits)
    for p, ch in channels.items():
        if p not in shapes:
            shapes[p] = shared_bits_per_channel(p)
        bits += len(ch) * shapes[p]
    return bits


@dataclass
class _Plan:
    units: list
    unit_of: dict  # population -> its unit
    tiles: dict
    caps: dict
    cores: list
    outputs: np.ndarray  # output routing entries per core


def _runs(pop: Op, piece) -> list[tuple[int, int]]:
    """The neurons a piece puts on its core (a dendrite core's part: none)."""
    if piece[0] in ("part", "soma"):
        return [] if piece[0] == "part" else box_runs(piece[1], view3(pop.result.type.shape))
    return box_runs(piece, view3(pop.result.type.shape)) if len(piece) == 6 else [piece]


def _groups(net: Netlist) -> list[list]:
    """Shaped populations of one shape joined by one-to-one projections (e.g. the stages of a
    max-pool tournament), each a list in graph order; every other population alone."""
    parent = {pop: pop for pop in net.populations}

    def root(p):
        while parent[p] is not p:
            parent[p] = parent[parent[p]]
            p = parent[p]
        return p

    for pop in net.populations:
        if shaped(pop) is None:
            continue
        for c in pop.currents:
            src = c.owner.src.owner
            if (c.owner.kind == "one_to_one" and src in parent and shaped(src) is not None
                    and view3(src.result.type.shape) == view3(pop.result.type.shape)):
                parent[root(pop)] = root(src)
    groups: dict = {}
    for pop in net.populations:
        groups.setdefault(root(pop), []).append(pop)
    return list(groups.values())


def _units(net: Netlist, c: CoreLimits, chip_name: str, names: dict) -> list:
    """One tiler per population, or one per group of populations tiled together when that
    takes no more boxes than tiling them apart (:func:`_groups`)."""
    units = []
    for group in _groups(net):
        alone = [_BoxTiler(net, [pop], c, chip_name, names[pop]) if shaped(pop) is not None
                 else _RunTiler(net, pop, c, chip_name, names[pop]) for pop in group]
        if c.fanin == fanin.MECHANISM:  # a neuron too large for one core is split across cores
            alone = [fanin.SplitUnit(net, u.pop, c, chip_name, u.name)
                     if isinstance(u, _BoxTiler) and not u.fits(1, 1, 1, c.neurons) else u for u in alone]
        if len(group) > 1 and not any(getattr(u, "split", False) for u in alone):
            together = _BoxTiler(net, group, c, chip_name, names[group[0]])
            try:
                if len(together.tiles(c.neurons)) <= sum(len(u.tiles(c.neurons)) for u in alone):
                    alone = [together]
            except NmcError:
                pass
        units += alone
    order = {pop: i for i, pop in enumerate(net.populations)}
    return sorted(units, key=lambda u: order[u.pops[0]])


def _outputs(cores: list, readers: _Readers) -> np.ndarray:
    """Output routing entries per core of packed cores: a source neuron's entries are the cores
    that read it (:class:`_Readers`), summed over the neurons of its own core."""
    pieces = [core.pieces for core in cores]
    readers.update(pieces)
    return np.array([readers.sum_over(p) for p in pieces], np.int64)


def _lower_bound(net: Netlist, unit_of: dict, c: CoreLimits) -> int:
    """No partition uses fewer cores: all neurons, and all synapse bits, over full cores."""
    total_bits = sum(_total_bits(p, unit_of[p], c) for p in net.populations)
    return max(-(-net.n_neurons // c.neurons), -(-total_bits // c.synapse_memory_bits))


def _plan(net: Netlist, c: CoreLimits, chip_name: str, names: dict) -> _Plan:
    """Cut, pack and re-cut until every core's output routing entries fit (module docstring)."""
    units = _units(net, c, chip_name, names)
    unit_of = {pop: u for u in units for pop in u.pops}
    caps = {u: c.neurons for u in units}
    tiles = {u: u.tiles(caps[u]) for u in units}
    alone: set = {u for u in units if getattr(u, "split", False)}
    readers = _Readers(net)
    for _ in range(MAX_ROUNDS):
        cores = _pack(units, tiles, alone, c)
        per_core = _outputs(cores, readers)
        over = np.flatnonzero(per_core > c.output_axons)
        if not len(over):
            plan = _Plan(units, unit_of, tiles, caps, cores, per_core)
            lower = _lower_bound(net, unit_of, c)
            if lower < len(cores) <= MIX_MAX_CORES and len(cores) * len(units) <= MIX_MAX_WORK:
                def ok(cores: list) -> bool:
                    return (c.output_axons >= c.neurons * len(cores)
                            or bool(np.all(_outputs(cores, readers) <= c.output_axons)))

                fixed = alone | {u for u in units if caps[u] < c.neurons}  # cut for their output entries
                mixed, mixed_tiles = _mix(units, tiles, fixed, caps, c, cores, lower, ok)
                if len(mixed) < len(cores):
                    return _Plan(units, unit_of, mixed_tiles, caps, mixed, _outputs(mixed, readers))
            return plan
        recut = set()
        for i in over:
            if len(cores[i].tiles) > 1 and not getattr(cores[i].tiles[0][0], "split", False):
                alone |= {u for u, _ in cores[i].tiles}
                continue
            unit, piece = cores[i].tiles[0]
            n = cores[i].neurons
            if n <= len(unit.pops):
                pop = unit.pops[0]
                j = _runs(pop, piece)[0][0]
                raise NmcError(f"population %{names[pop]} does not fit chip '{chip_name}': neuron {j} sends to "
                               f"{int(per_core[i])} cores; a core has {c.output_axons} output routing entries "
                               f"(over by {int(per_core[i]) - c.output_axons})", pop.loc, hint=HINT)
            caps[unit] = min(caps[unit], max(len(unit.pops), n * c.output_axons // int(per_core[i])))
            recut.add(unit)
        for unit in recut:
            tiles[unit] = unit.tiles(caps[unit])
    raise NmcError(f"partition found no cut whose output routing entries fit chip '{chip_name}' "
                   f"after {MAX_ROUNDS} rounds", hint=HINT)


def _total_bits(pop: Op, tiler, c: CoreLimits) -> int:
    if getattr(tiler, "split", False):
        return tiler.total_bits()
    if isinstance(tiler, _RunTiler):
        return tiler.count(0, pop.result.type.size)[2]
    C, H, W = tiler.shape
    return sum(box_bits(p, g, (0, C, 0, H, 0, W), c.shared_weights, c.synapse_word_bits) for p, g in shaped(pop))


def _binding(tiler, pieces: list, cap: int, c: CoreLimits) -> str:
    """The limit that keeps a population's tiles from being one core, in words."""
    if getattr(tiler, "split", False):
        return tiler.binding()
    if len(pieces) == 1:
        return "nothing (one core)"
    if cap < c.neurons:
        return "output routing entries"
    if isinstance(tiler, _RunTiler):
        n, axons, mem = tiler.count(0, tiler.pop.result.type.size)
    else:
        C, H, W = tiler.shape
        n = C * H * W * len(tiler.pops)
        axons, mem = tiler.worst(C, H, W)
    if n > c.neurons:
        return "neurons"
    return "input axons" if axons > c.input_axons else "synapse memory"


def partition(graph: Graph, formats, limits: CoreLimits, chip_name: str) -> dict:
    """Cut and pack every population (module docstring).  Returns ``{"cores": [(runs, neurons,
    axons, bits, outputs, partial)]`` with ``runs`` a list of ``(pop, a, b)`` flat-index slices
    and ``partial`` the ``hw.core`` attribute of a dendrite core (else empty),
    ``"lower_bound"`` (the graph's), ``"layers"``: ``{pop: (cores, lower bound, limited by)}``,
    ``"names"``, ``"pairs"``: the distinct ``(global source, core)`` pairs, sorted, int32
    while they fit}; or raises
    NmcError when a population cannot fit a core.  The result is kept with the graph and
    given again while its snn ops, the limits and the formats are the same."""
    check_formats(graph, formats, chip_name)
    ops = [op for op in graph.ops if op.dialect != "hw"]
    key = (limits, formats, tuple(map(id, ops)))
    known = _PLANS.get(graph)
    if known is not None and known[0] == key:  # e.g. --board auto's count, then the partition pass
        return known[2]
    result = _partition(graph, limits, chip_name)
    _PLANS[graph] = (key, ops, result)  # the ops kept alive, so no id in the key is reused
    return result


# graph -> (limits, formats and its snn ops by id; those ops; partition's result)
_PLANS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _partition(graph: Graph, limits: CoreLimits, chip_name: str) -> dict:
    net = Netlist(graph)
    c = limits
    names = {pop: pop_name(pop, i) for i, pop in enumerate(net.populations)}
    plan = _plan(net, c, chip_name, names)
    axons, pairs = _axons_and_pairs(net, [core.pieces for core in plan.cores])
    cores = []
    shapes: dict = {}
    index = {id(core): k for k, core in enumerate(plan.cores)}
    for k, core in enumerate(plan.cores):
        if core.soma is not None:  # a dendrite core: partial sums of its box's neurons, sent to one core
            (pop, (_, part, box)), = core.pieces
            runs = [(pop, a, b) for a, b in fanin.box_neuron_runs(pop, box)]
            cores.append((runs, core.neurons, int(axons[k]), _core_bits(core.pieces, c, plan.unit_of, shapes),
                          core.neurons, (index[id(core.soma)], *fanin.triples(part))))
            continue
        runs = [(pop, a, b) for pop, piece in core.pieces for a, b in _runs(pop, piece)]
        partial_axons = sum(core.neurons * len(t.parts) for t in {u for u, _ in core.tiles} if getattr(t, "split", False))
        cores.append((runs, core.neurons, int(axons[k]) + partial_axons, _core_bits(core.pieces, c, plan.unit_of, shapes),
                      int(plan.outputs[k]), ()))
    lower = _lower_bound(net, plan.unit_of, c)
    layers = {}
    used_by = Counter(p for core in plan.cores for p in {p for p, _ in core.pieces})  # cores holding a piece of p
    for pop in net.populations:
        used = used_by[pop]
        unit = plan.unit_of[pop]
        own = max(-(-pop.result.type.size // c.neurons), -(-_total_bits(pop, unit, c) // c.synapse_memory_bits))
        layers[pop] = (used, own, _binding(unit, plan.tiles[unit], plan.caps[unit], c))
    return {"cores": cores, "lower_bound": lower, "layers": layers, "names": names,
            "pairs": pairs}

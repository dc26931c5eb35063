"""Planning the CPU lowering: what to emit, where everything lives (DESIGN §5, §6).

:func:`plan` decides, for a :class:`Network` (the spiking part of a graph), every choice the
emitter (:mod:`.emit`) follows, and records it in a :class:`Layout`: the pointer table of
host arrays and the per-thread scratch areas; the loop order (:func:`choose_schedule`:
``step``, or ``layer`` for feed-forward networks, :func:`feed_forward_order`, with the
time-batched kernel for the populations it can run); per projection the kernel (event lists,
or the dense kernel from the source's known activity, :func:`dense_kernel`, byte-vector
pools, :func:`dense_pool`, and the direct convolution, :func:`direct_conv`); per population
and projection the accumulator types (:func:`narrow_accumulator`, :func:`private_accumulator`,
:func:`conv_halo`) and the neuron lanes (:func:`lanes32`), all bounded through
:func:`unit_bound`; and whether the neurons of a sparse network are split into parts that
threads run side by side (:func:`split_parts`).

Nothing here imports llvmlite: planning decisions are plain functions of the graph (and of
the host CPU's features, which the caller may give; when it does not, they are probed through
:func:`.jit.host_features`, only when a decision needs them).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.ann import pooled_size
from nmc.ir.core import Blob, Graph, Op, param_array
from nmc.semantics import fanout

from .tables import int_weights

#: The compiled function's name (:mod:`.emit` defines it; :mod:`.prepared` looks it up
#: without importing the emitter).
FUNCTION_NAME = "nmc_run"
#: Encodings whose every value is 0 or 1.
UNIT_ENCODINGS = ("rate", "poisson")
#: The synaptic-operation count a ``layer``-scheduled function leaves for a sample it did not
#: run (a listed encoder emitted values other than 0 and 1): the executor runs it again with
#: the ``step`` schedule (:func:`needs_step_rerun`).
SKIPPED = -1


# ------------------------------------------------------------------------------- layout


@dataclass
class Layout:
    """Where every host array and scratch area lives.

    ``slots``: (kind, op) per entry of the pointer table, kind one of ``enc`` (encoder values
    ``[N, T, size]``, :meth:`Network.enc_dtype`), ``u``, ``v`` (``[N, size]``, :func:`state_dtype`),
    ``count`` (``[N, size]`` i32), ``rec`` (``[N, steps, size]`` u8, or null), ``synops`` (``[N]`` i64).
    ``scratch``: byte offsets of per-thread areas keyed by (kind, op).  ``narrow``: populations
    whose accumulator is i32 (:func:`narrow_accumulator`), ``short`` those of them whose
    accumulator is i16 instead (:func:`short_accumulator`); ``wide``: those of them that also
    have an i64 side accumulator for events of other values than 1.  ``dense``: projections run
    by the dense kernel (:func:`dense_kernel`) and pools read from byte vectors
    (:func:`dense_pool`); ``spike_rows``: populations feeding one, which keep a ring of byte
    spike vectors (``spk``) beside their spike lists; ``unlisted``: populations whose spikes no
    kernel reads as lists (every projection from them reads byte vectors, or none leaves
    them), which count their spikes but keep no lists (:func:`unlisted`).

    ``schedule``: ``step`` (every population at each step) or ``layer`` (each population over
    all steps of a sample, in the feed-forward ``order``; :func:`choose_schedule`).  Under
    ``layer``, populations that feed others keep their spike lists of the whole run
    (``whole_run``: a ring slot per step), ``tiled`` maps populations to the projections that
    the time-batched kernel runs (:func:`.kernels.dense.tiled_currents`), and ``listed`` are the
    encoders whose non-zero values are listed per step for it; ``raw`` those of them (``spikes``
    encoders read only by the kernel) whose values the function reads as float32, the host's
    own array when it is one (:func:`raw_encoders`).  Areas sized by the run's steps live after
    the fixed ones (:meth:`reserve_run`, :meth:`scratch_size`).

    ``direct``: conv2d projections that may run the direct convolution
    (:mod:`.kernels.conv_direct`, :func:`direct_conv`), each with the least number of events
    in a step from which it does (0: always; else the event kernel below it), and their areas
    ``cin`` (the step's input, channel-last bytes); its sums go into the private accumulator.
    Integer sparse projections have an area ``defer`` (i32, a source's worth per part): the
    fixed rows with an overflow that a step's spikes reached (:mod:`.kernels.sparse`).

    ``overwritten``: integer populations whose first current is a conv2d, whose flush writes
    the whole accumulator each step, so that the neuron update need not clear it.
    ``features``: the host CPU features the plan was made for (LLVM names; None: this host's,
    probed when a choice needs them), which the emitter's kernel choices follow too.

    ``parts``: when not empty, every population's neurons are split into :data:`PARTS` ranges,
    ``parts[pop]`` their bounds (:func:`split_parts`), so that the threads running one sample
    each take some parts (synapses by target part, neurons, spike lists) and wait for each
    other's previous step before reading its spikes, sharing one scratch area; the pointer
    table then ends with a ``barrier`` slot (i64 ``[BARRIER_WORDS]``: the next thread's index,
    the threads sharing a sample, each thread's finished steps; :data:`BARRIER_WORDS`)."""

    slots: list[tuple[str, Op | None]] = field(default_factory=list)
    scratch: dict[tuple[str, Op], int] = field(default_factory=dict)
    scratch_bytes: int = 0
    ring: dict[Op, int] = field(default_factory=dict)
    private: dict[Op, np.dtype] = field(default_factory=dict)
    narrow: set[Op] = field(default_factory=set)
    short: set[Op] = field(default_factory=set)
    wide: set[Op] = field(default_factory=set)
    dense: set[Op] = field(default_factory=set)
    direct: dict[Op, int] = field(default_factory=dict)
    spike_rows: set[Op] = field(default_factory=set)
    unlisted: set[Op] = field(default_factory=set)
    schedule: str = "step"
    order: list[Op] = field(default_factory=list)
    whole_run: set[Op] = field(default_factory=set)
    tiled: dict[Op, list[Op]] = field(default_factory=dict)
    listed: set[Op] = field(default_factory=set)
    raw: set[Op] = field(default_factory=set)
    run: dict[tuple[str, Op], int] = field(default_factory=dict)
    run_bytes: int = 0
    overwritten: set[Op] = field(default_factory=set)
    features: frozenset[str] | None = None
    parts: dict[Op, list[int]] = field(default_factory=dict)

    def slot(self, kind: str, op: Op | None) -> int:
        for i, (k, o) in enumerate(self.slots):
            if k == kind and o is op:
                return i
        raise KeyError((kind, op))

    def reserve(self, kind: str, op: Op, nbytes: int) -> None:
        self.scratch[(kind, op)] = self.scratch_bytes
        self.scratch_bytes += (nbytes + 63) // 64 * 64

    def reserve_run(self, kind: str, op: Op, bytes_per_step: int) -> None:
        """An area of ``bytes_per_step · steps`` bytes after the fixed ones (steps is known
        only at run time): its offset is ``scratch_bytes + steps · run[(kind, op)]``."""
        self.run[(kind, op)] = self.run_bytes
        self.run_bytes += (bytes_per_step + 7) // 8 * 8

    def scratch_size(self, steps: int) -> int:
        """Bytes of one thread's scratch area for a run of ``steps`` steps."""
        return self.scratch_bytes + self.run_bytes * steps


@dataclass
class Network:
    """The spiking part of a graph, as the lowering and the executor see it."""

    graph: Graph
    encoders: list[Op]
    populations: list[Op]
    projections: list[Op]
    integer_enc: dict[Op, bool]

    @classmethod
    def of(cls, graph: Graph) -> Network:
        encoders = graph.walk("snn.encode")
        projections = graph.walk("snn.project")
        populations = graph.walk("snn.population")
        integer_enc = {}
        for e in encoders:  # as nmc.semantics.run_snn decides it
            users = [u for u in graph.users(e.result) if u.KIND == "snn.project"]
            integer_enc[e] = bool(users) and all(u.is_integer for u in users)
        for pop in populations:
            if pop.leak != "linear":
                raise NmcError(f"this lowering takes linear-leak populations; leak = {pop.leak} runs through "
                               "targets/cpu/shift.py (nmc.targets.cpu.prepare chooses it)", pop.loc)
            if pop.max_spikes > MAX_BURST:
                raise NmcError(f"the CPU runtime holds spike counts of at most {MAX_BURST} per step in a byte; this "
                               f"population emits up to {pop.max_spikes}", pop.loc, hint="run with --backend reference")
            for c in pop.currents:
                p = c.owner
                if p.is_integer != bool(pop.bits):
                    raise NmcError(
                        f"the CPU runtime needs projection weights of the population's kind: "
                        f"{'integer' if p.is_integer else 'float'} weights feed a "
                        f"{'integer' if pop.bits else 'float'} population", p.loc,
                        hint="quantize the whole network, or none of it")
        return cls(graph, encoders, populations, projections, integer_enc)

    def enc_dtype(self, e: Op) -> np.dtype:
        """How the host hands over encoder ``e``'s values: rate and poisson emit 0 or 1."""
        if e.encoding in ("rate", "poisson"):
            return np.dtype(np.int8)
        return np.dtype(np.int64 if self.integer_enc[e] or e.encoding == "spikes" else np.float64)


#: The largest burst (``max_spikes``) the runtime holds: a step's spike counts are signed bytes.
MAX_BURST = 127

KERNELS = ("auto", "event", "dense")
SCHEDULES = ("auto", "step", "layer")


def plan(net: Network, kernels: str = "auto", schedule: str = "auto",
         features: Collection[str] | None = None, split: bool = True) -> Layout:
    """Where everything lives; ``kernels`` chooses the kernel of dense projections (``auto``:
    :func:`dense_kernel`; ``event`` or ``dense``: all of them, for tests and measurements);
    ``schedule`` the loop order (``auto``: :func:`choose_schedule`; ``step`` or ``layer``
    forced, for tests and measurements; ``layer`` needs a feed-forward network).
    ``features``: the CPU features to plan for (LLVM names, e.g. ``{"avx2"}``); None: this
    host's (:func:`host_features`, probed only if a choice depends on them).  ``split``
    False: never split into parts (:func:`split_parts`)."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, not {kernels!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    lay = Layout(features=None if features is None else frozenset(features))
    for p in net.projections:
        if dense_kernel(p, kernels, lay.features) or dense_pool(p, kernels):
            lay.dense.add(p)
            if p.src.owner.KIND == "snn.population":
                lay.spike_rows.add(p.src.owner)
        elif burst_source(p):  # its events read their counts from the byte vector
            lay.spike_rows.add(p.src.owner)
    lay.unlisted = unlisted(net, lay)
    for e in net.encoders:
        lay.slots.append(("enc", e))
    for pop in net.populations:
        for kind in ("u", "v", "count", "rec"):
            lay.slots.append((kind, pop))
    lay.slots.append(("synops", None))
    for pop in net.populations:
        if narrow_accumulator(pop):
            lay.narrow.add(pop)
            if short_accumulator(pop):
                lay.short.add(pop)
    order = feed_forward_order(net)
    if schedule == "layer" and order is None:
        raise ValueError("schedule 'layer' needs a feed-forward network; this one has recurrence")
    lay.schedule = choose_schedule(net, lay, order) if schedule == "auto" else schedule
    lay.parts = split_parts(net, lay) if split else {}
    if lay.parts:
        lay.slots.append(("barrier", None))
    lists = PARTS if lay.parts else 1  # spike lists per ring slot: one per part
    if lay.schedule == "layer":
        lay.order = order
        lay.tiled = {pop: [c.owner for c in pop.currents] for pop in order if tiled_population(net, lay, pop)}
        lay.listed = {p.src.owner for ps in lay.tiled.values() for p in ps if p.src.owner.KIND == "snn.encode"}
        lay.whole_run = {p.src.owner for p in net.projections if p.src.owner.KIND == "snn.population"}
        lay.raw = raw_encoders(net, lay)
    for pop in net.populations:
        size = pop.result.type.size
        delays = [p.delay for p in net.projections if p.src.owner is pop]
        lay.ring[pop] = max(delays, default=0) + 1
        if pop in lay.narrow and not all(unit_events(c.owner) for c in pop.currents):
            lay.wide.add(pop)
            lay.reserve("wide", pop, 8 * size)
        lay.reserve("acc", pop, (2 if pop in lay.short else 4 if pop in lay.narrow else 8) * size)
        lay.reserve("cnt8", pop, list_stride(pop))  # the steps' counts (count_period)
        if pop in lay.short and pop in lay.wide:  # a step with a side accumulator: i32 currents
            lay.reserve("acc32", pop, 4 * size)
        if pop in lay.whole_run:  # one slot per step of the run
            if pop not in lay.unlisted:
                lay.reserve_run("ring_idx", pop, 4 * list_stride(pop))
            lay.reserve_run("ring_cnt", pop, 4)
            if pop in lay.spike_rows:
                lay.reserve_run("spk", pop, spk_stride(pop))
        else:
            if pop not in lay.unlisted:
                lay.reserve("ring_idx", pop, 4 * list_stride(pop) * lay.ring[pop] * lists)
            lay.reserve("ring_cnt", pop, 4 * count_stride(lay) * lay.ring[pop] * lists)
            if pop in lay.spike_rows:
                lay.reserve("spk", pop, spk_stride(pop) * lay.ring[pop])
        if pop in lay.tiled:  # the currents of every step: [steps, tile_columns(size)] i32
            lay.reserve_run("cur", pop, 4 * tile_columns(size))
    for e in net.encoders:
        if e in lay.listed:  # non-zero indices per presentation step (T <= steps)
            lay.reserve_run("eidx", e, 4 * e.result.type.size)
            lay.reserve_run("ecnt", e, 4)
    for p in lay.dense:  # integer values other than 0 and 1, narrowed each step
        if p.is_integer and not unit_events(p):
            lay.reserve("xn", p, 3 * p.src.type.size)  # i16, then bytes
    target = {c.owner: pop for pop in net.populations for c in pop.currents}
    for p in net.projections:
        dtype = private_accumulator(p, target.get(p) in lay.narrow)
        if dtype is not None and p not in lay.dense:
            lay.private[p] = dtype
            halo = conv_halo(p, dtype)
            cells = halo[2] * halo[3] * p.result.type.shape[0] if halo else p.result.type.size
            lay.reserve("pacc", p, dtype.itemsize * cells)
        least = direct_conv(p, lay, kernels)
        if least is not None:
            lay.direct[p] = least
            geo = direct_geometry(p)
            lay.reserve("cin", p, geo.cells * geo.depth)
    for p in net.projections:  # the rows whose overflow a step's spikes reach (kernels.sparse)
        if p.kind == "sparse" and p.is_integer:
            lay.reserve("defer", p, 4 * p.src.type.size * lists)
    reserve_gates(net, lay)
    lay.overwritten = {pop for pop in net.populations if pop.bits and pop.currents
                       and pop.currents[0].owner.kind == "conv2d"}
    return lay


def unlisted(net: Network, lay: Layout) -> set[Op]:
    """The populations whose spike lists no kernel reads: every projection from them runs
    from their byte spike vectors (``lay.dense``: the dense kernel, pools from bytes), or
    none leaves them.  Their update counts the step's spikes (the count is still read:
    :meth:`.emit.Lowering.source_vector`) without writing a list (W2's first layer: a
    vector store per 8 neurons of its 10,816, its only reader a pool from bytes)."""
    return {pop for pop in net.populations
            if all(p in lay.dense for p in net.projections if p.src.owner is pop)}


def reserve_gates(net: Network, lay: Layout) -> None:
    """Per-thread areas of each ``maxgate`` projection (:func:`.kernels.maxgate.project_maxgate`):
    ``gcount``, its running counts per source neuron (reset at the start of every sample), and
    ``gval``, the values its source delivers this step (zero between steps); both i64 (float
    graphs: f64)."""
    for p in net.projections:
        if p.kind == "maxgate":
            lay.reserve("gcount", p, 8 * p.src.type.size)
            lay.reserve("gval", p, 8 * p.src.type.size)


#: Parts a population's neurons are split into when one sample runs on several threads
#: (:func:`split_parts`): the two cores of the machine this was measured on.
PARTS = 2
#: i64 words of the ``barrier`` slot of a split network: word 2 counts the threads that have
#: claimed their index, word 3 is how many share a sample (both set by the executor), and
#: thread ``k``'s count of finished steps is word ``8·(k+1)``, a cache line of its own
#: (:meth:`.emit.Lowering.parted_steps`).
BARRIER_WORDS = 8 * (PARTS + 1)
#: Fewest synapses from which a network is split into parts: below, a step's work is too
#: small for a wait per step.
SPLIT_SYNAPSES = 100_000
#: Parts are cut at multiples of this many neurons: 64 bytes of an i16 accumulator (128 of
#: i32 state), so that no cache line of a population's accumulator or state holds neurons of
#: two parts, which the threads' random adds would pass back and forth between their cores
#: (W3's cut, at 8, shared one such line).  Populations of fewer than ``PARTS · CUT`` neurons
#: are cut at multiples of 8 (the neuron update's vectors).
CUT = 32


def split_parts(net: Network, lay: Layout) -> dict[Op, list[int]]:
    """The bounds of the :data:`PARTS` neuron ranges of each population (``[0, c1, …, size]``,
    inner cuts multiples of :data:`CUT` or 8), or ``{}`` when the network is not split.  It is split when it
    runs by ``step`` and every projection is ``sparse`` with at least :data:`SPLIT_SYNAPSES`
    synapses in all: each part's synapses then have their own CSR rows
    (:func:`.tables.split_synapse_table`), so the thread running a part adds into its own
    neurons only, and a target's synapses keep their order (float sums too).  Cuts balance
    the synapses into each part plus its neurons (one unit each), at multiples of :data:`CUT`."""
    if lay.schedule != "step" or not net.projections or any(p.kind != "sparse" for p in net.projections):
        return {}
    if sum(int(p.indices.data.size) for p in net.projections) < SPLIT_SYNAPSES:
        return {}
    bounds = {}
    for pop in net.populations:
        size = pop.result.type.size
        load = np.ones(size)
        for c in pop.currents:
            load += np.bincount(c.owner.indices.data.astype(np.int64), minlength=size)[:size]
        total = np.cumsum(load)
        unit = CUT if size >= PARTS * CUT else 8
        cuts = [0]
        for k in range(1, PARTS):
            at = int(np.searchsorted(total, total[-1] * k / PARTS))
            cuts.append(min(max(int(round(at / unit)) * unit, cuts[-1]), size // unit * unit))
        bounds[pop] = [*cuts, size]
    return bounds


def spk_stride(pop: Op) -> int:
    """Bytes per step in ``pop``'s ring of spike vectors (one byte per neuron, padded)."""
    return (pop.result.type.size + 63) // 64 * 64


def count_stride(lay: Layout) -> int:
    """i32 entries per spike list's count in ``ring_cnt``: 16 (a cache line each) when the
    network is split into parts, whose threads each write their own lists' counts, else 1."""
    return 16 if lay.parts else 1


def list_stride(pop: Op) -> int:
    """Entries per step in ``pop``'s ring of spike lists: its size rounded up to whole groups
    of 8, so that :meth:`.emit.Lowering.list8`'s vector stores stay in the slot."""
    return (pop.result.type.size + 7) // 8 * 8


def feed_forward_order(net: Network) -> list[Op] | None:
    """The populations in an order where every population comes after the populations that
    project into it, or None when there is none (recurrence: a population that reaches
    itself through projections, whatever their delays)."""
    sources = {pop: {c.owner.src.owner for c in pop.currents if c.owner.src.owner.KIND == "snn.population"}
               for pop in net.populations}
    order: list[Op] = []
    done: set[Op] = set()
    while len(order) < len(net.populations):
        ready = [pop for pop in net.populations if pop not in done and sources[pop] <= done]
        if not ready:
            return None
        order.append(ready[0])
        done.add(ready[0])
    return order


#: Output columns per tile of the time-batched kernel: a tile's accumulators (64 i32, eight
#: AVX2 registers) stay in registers while the events of one step add their weight rows.
TILE = 64
#: The same for a projection whose step sums stay in i16 (:func:`unit_bound` below ``2**15``):
#: 128 columns, eight AVX2 registers of 16 i16 each.
TILE16 = 128
#: Largest table (bytes) of conv2d weights widened to i32 for an i32 private accumulator, so
#: that an event adds them without sign-extending each vector (W2's 16→32 conv, 18 KB: 5–7 %
#: faster in one measurement); larger kernels keep their narrow type, to stay in L1.
CONV_WIDE_WEIGHTS = 1 << 15


def tile_columns(size: int) -> int:
    """Columns of the time-batched kernel's current matrix and zero-padded weights: a multiple
    of :data:`TILE`, or for fewer outputs a power of two (at least 8), so that every tile is one
    power-of-two vector type (for W1's 500 columns, a 56-wide last tile instead of padding to
    512 measured 1.30× slower in one run and 1.15× faster in another: not settled)."""
    if size >= TILE:
        return (size + TILE - 1) // TILE * TILE
    return max(8, 1 << (size - 1).bit_length())


def tiled_population(net: Network, lay: Layout, pop: Op) -> bool:
    """Whether the time-batched kernel (:func:`.kernels.dense.tiled_currents`) computes the currents
    of ``pop`` under the ``layer`` schedule: an integer population with an i32 accumulator
    (:func:`narrow_accumulator`: no sum of events of value 1 leaves i32) fed only by dense
    projections run from event lists (not the dense kernel) whose sources are populations or
    encoders of integer values (events of other values than 1 are checked for at run time,
    and the executor then runs the sample with the ``step`` schedule: :func:`needs_step_rerun`)."""
    if not pop.bits or pop not in lay.narrow or not pop.currents:
        return False
    for c in pop.currents:
        p = c.owner
        if p.kind != "dense" or not p.is_integer or p in lay.dense or burst_source(p):
            return False
        src = p.src.owner
        if src.KIND == "snn.encode" and net.enc_dtype(src).kind != "i":
            return False
    return True


def raw_encoders(net: Network, lay: Layout) -> set[Op]:
    """The listed ``spikes`` encoders whose every projection the time-batched kernel runs: the
    function reads their values as float32 (the host's input array itself when it is float32
    and contiguous: no ``[N, T, size]`` int64 copy, which was 15 ms of W1's 64-sample run)
    and lists the non-zero ones; a value other than 0 and 1 (a count, a fraction, NaN) skips
    the sample, which the ``step`` schedule then runs from the exact int64 values
    (:func:`needs_step_rerun`)."""
    tiled = {p for ps in lay.tiled.values() for p in ps}
    return {e for e in lay.listed if e.encoding == "spikes"
            and all(p in tiled for p in net.projections if p.src.owner is e)}


def needs_step_rerun(lay: Layout) -> bool:
    """Whether the function of ``lay`` may skip samples (marking them :data:`SKIPPED`) for the
    executor to run with the ``step`` schedule: under ``layer``, when the time-batched kernel
    reads an encoder that may emit other values than 0 and 1 (``spikes``, ``current``).  Such
    samples are rare (spike trains are normally 0/1), so their code is compiled only when one
    comes (a step-path copy in every function cost W1 a fifth of its compile time)."""
    return lay.schedule == "layer" and any(enc.encoding not in UNIT_ENCODINGS for enc in lay.listed)


#: The share of a feed-forward network's synapses in projections the time-batched kernel can
#: run, from which the ``layer`` schedule is chosen (:func:`choose_schedule`).
TILED_SHARE = 0.5


def choose_schedule(net: Network, lay: Layout, order: list[Op] | None) -> str:
    """``layer`` when the network is feed-forward (``order``: :func:`feed_forward_order`) and
    at least :data:`TILED_SHARE` of its synapses (structural fan-out, summed over projections)
    are in populations that the time-batched kernel runs (:func:`tiled_population`), else
    ``step``.

    Measured on this 2-core AMD EPYC (znver3, AVX2; 32 KB L1d and 512 KB L2 per core), best
    of many interleaved runs, 1 and 2 threads (docs/cpu-runtime.md, "Time batching"):

    * reordering the loops alone (each population over all steps, spike lists kept for the
      whole run) ran W1 (784-500-500-10, T=100, batch 64 and 1), W1c and W2 (conv) at
      0.91–1.09× the step schedule (one 1.30× at two threads did not repeat): no gain;
    * with the time-batched kernel that layer order allows, W1 (every synapse tiled) ran at
      1.28–1.30× (batch 64) and 1.20–1.26× (batch 1) on one thread, 1.25–1.35× (batch 64) on
      two;
    * W1c (its first layer, 61 % of the synapses, runs the dense kernel: share 0.39) ran at
      0.97–0.98× on one thread and 0.88–0.89× on two, W2 (only its last 800→10 layer tiled:
      share 0.01) at 1.01× and 0.80–0.94×: the layers that dominate gain nothing.

    The threshold lies between those measured points; it was not tuned more finely."""
    if order is None:
        return "step"
    total = tiled = 0
    for pop in order:
        synapses = sum(int(fanout(c.owner).sum()) for c in pop.currents)
        total += synapses
        if tiled_population(net, lay, pop):
            tiled += synapses
    return "layer" if total and tiled >= TILED_SHARE * total else "step"


#: Calibrated firing rate (mean events per neuron per step) from which a source drives its
#: dense projections with the dense kernel rather than event lists, when the kernel is the
#: AVX2 byte kernel (integer graph, int8 weights: :func:`.kernels.dense.dense_bytes`).  Set by
#: ``python benchmarks/runtime.py --crossover`` (one 784→500 int8 layer, batch 32, T=50, one
#: thread, both kernels forced) on this 2-core AMD EPYC (znver3, AVX2), loaded by other jobs:
#: event/dense time 0.37–0.45 at rate 0.05, 0.77–0.96 at 0.2, 0.99–1.33 at 0.3, 1.09–1.47 at
#: 0.5, 2.29–2.41 at 1 (rate and spike-count sources; the table is in docs/cpu-runtime.md).
DENSE_RATE = 0.3
#: The same for the generic kernels (other weight types, no AVX2, float graphs), which do
#: about the event path's work per synapse without its branches: in the first measurement
#: (whole W1, rate-encoded input, batch 64) the generic select kernel was slower at every
#: rate tried (event/dense 0.24 at 0.05 up to 0.78 at a mean rate of 0.75), so only sources
#: of rate 1 — current encoders, whose every value is a non-unit event — take it.  Float
#: graphs keep event lists: a current-encoded 784→500 float layer ran 0.75× as fast dense.
DENSE_RATE_GENERIC = 1.0


def source_rate(src: Op) -> float | None:
    """Mean events per neuron per step of ``src`` when known: 1 for a ``current`` encoder
    (its values are rarely zero), else its ``calib.rate`` (the measure-rates pass) clipped to
    [0, 1].  ``calib.p`` is not a rate (a percentile of the normalised activation, about 1
    after normalisation for every layer), so it is not used."""
    if src.KIND == "snn.encode" and src.encoding == "current":
        return 1.0
    given = src.extra.get("calib.rate")
    if isinstance(given, int | float) and not isinstance(given, bool):
        return min(max(float(given), 0.0), 1.0)
    return None


def host_features() -> frozenset[str]:
    """This host's CPU features as LLVM names them (:func:`.jit.host_features`, which imports
    llvmlite: called only when a choice needs them and none were given)."""
    from .jit import host_features as probe

    return frozenset(probe())


def byte_kernel(p: Op, features: Collection[str] | None = None) -> bool:
    """Whether integer dense projection ``p`` can run the AVX2 byte kernel
    (:func:`.kernels.dense.dense_bytes`, ``vpmaddubsw``): int8 weights (exponent folded in),
    an AVX2 host (``features``; None: this host) and at least one block of 32 sources."""
    if int_weights(p).dtype != np.int8:
        return False
    return "avx2" in (host_features() if features is None else features) and p.src.type.size >= 32


def dense_kernel(p: Op, kernels: str = "auto", features: Collection[str] | None = None) -> bool:
    """Whether projection ``p`` runs as a dense kernel: every target reads the whole source
    vector of the step (integer graphs: a dot product of its weight row, vectorised over the
    sources; float graphs: all weight rows added in source order, as the event lists would
    add them, so that sums keep their order).  Only ``dense`` projections; with ``auto``,
    when :func:`source_rate` is at least :data:`DENSE_RATE` (:data:`DENSE_RATE_GENERIC` unless
    the byte kernel applies, :func:`byte_kernel` on ``features``), else (no calibration) events."""
    if p.kind != "dense" or kernels == "event" or burst_source(p):
        return False
    if kernels == "dense":
        return True
    rate = source_rate(p.src.owner)
    if rate is None or not p.is_integer:  # float: measured slower even for current encoders
        return False
    fast = p.is_integer and byte_kernel(p, features)
    return rate >= (DENSE_RATE if fast else DENSE_RATE_GENERIC)


def dense_pool(p: Op, kernels: str = "auto") -> bool:
    """Whether pool projection ``p`` reads its source's whole byte spike vector each step
    (:func:`.kernels.pool.project_pool_rows`) rather than its events: an integer pool of a
    population's spikes whose windows do not overlap and have no pads (each source cell in at
    most one window, every window inside the plane).  It reads one byte per source neuron per
    step, vectorised: less than that population's own update costs, so it is chosen whatever
    the firing rate (W2's 2×2 pooling of 11–20 % spikes: events cost 8–9 cycles each, the
    scattered adds of a window depending on each other).  ``kernels="event"`` forces events."""
    if p.kind != "pool" or kernels == "event" or not p.is_integer or p.src.owner.KIND != "snn.population" \
            or burst_source(p):
        return False
    return not any(p.pads) and all(k <= s for k, s in zip(p.kernel, p.strides))


def state_dtype(pop: Op) -> np.dtype:
    """How the host holds ``u`` and ``v`` of ``pop``: i32 when every value fits (saturated to
    ``bits`` <= 31, and after a reset by subtraction, ``v - θ`` fits 32 bits), else i64; f64
    for float populations.  Arithmetic is i64 regardless."""
    if not pop.bits:
        return np.dtype(np.float64)
    return np.dtype(np.int32 if pop.bits <= 31 else np.int64)


COUNT_DTYPE = np.dtype(np.int32)  # spikes per neuron over a run: at most max_spikes per step


def count_period(pop: Op) -> int:
    """Steps a population's spike counts are summed over in bytes (the scratch area ``cnt8``,
    one unsigned byte per neuron, read and written at each step: a quarter of an i32 count's
    traffic) before they are added into its host count row (``count``, i32) and cleared: as
    many as a byte holds, ``255 // max_spikes``; and at the run's last step."""
    return 255 // pop.max_spikes


def unit_events(p: Op) -> bool:
    """Whether every event of ``p``'s source has value 0 or 1 (populations other than burst
    ones, rate and poisson)."""
    src = p.src.owner
    if src.KIND == "snn.population":
        return src.max_spikes == 1
    return src.encoding in ("rate", "poisson")


def burst_source(p: Op) -> bool:
    """Whether ``p``'s source is a burst population (``max_spikes > 1``): its events carry spike
    counts, which only the event path reads (:meth:`.emit.Lowering.events`); the dense, byte-pool
    and time-batched kernels take events of value 1."""
    src = p.src.owner
    return src.KIND == "snn.population" and src.max_spikes > 1


def unit_bound(p: Op) -> int:
    """The largest ``Σ |w| << exponent`` into one target of integer projection ``p``: a bound
    of what events of value 0 or 1 add to one neuron in one step (a source emits at most one
    event per step)."""
    data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    if p.kind in ("dense", "conv2d") and data.size and data.dtype.kind in "iu" and data.itemsize <= 4:
        # narrow weights (W1: 392,000 int8): |w| in a type twice as wide, rows summed in i64,
        # the exponent applied to the largest sum (compile time: called for every population)
        rows = np.abs(data.astype(np.int16 if data.itemsize == 1 else np.int64)).reshape(data.shape[0], -1)
        return int(rows.sum(axis=1, dtype=np.int64).max()) << p.exponent
    w = np.abs(data.astype(np.int64)) << p.exponent
    if w.size == 0:
        return 0
    if p.kind in ("dense", "conv2d"):  # [out, ...]: one output (channel) per row
        return int(w.reshape(w.shape[0], -1).sum(axis=1).max())
    if p.kind == "sparse":
        return int(np.bincount(p.indices.data, w.astype(np.float64)).max())
    if p.kind == "pool":
        return int(w.max()) * int(np.prod(p.kernel))
    return int(w.max())  # one_to_one


def lanes32(pop: Op) -> bool:
    """Whether ``pop``'s neurons are updated in i32 lanes rather than i64 (the same results):
    an integer population of at most 30 bits whose threshold and bias fit its state (as the
    verifier requires).  Then ``|decay(u)|, |decay(v)|, |bias|, |θ| <= 2**29``; the current is
    clamped to ±2**30 first, which leaves ``sat(decay(u) + I)`` unchanged (as in
    :meth:`.emit.Lowering.fold`), so ``decay(u) + I``, ``decay(v) + u + bias`` and ``v - θ`` stay
    inside i32.  Only a decay's product ``|x| · (4096 - d)`` is formed in i64."""
    if not pop.bits or pop.bits > 30:
        return False
    limit = 2 ** (pop.bits - 1)
    for name in ("threshold", "bias"):
        arr = np.asarray(param_array(getattr(pop, name), pop.result.type.shape, np.int64))
        if arr.size and (arr.min() < -limit or arr.max() >= limit):
            return False
    return True


def narrow_accumulator(pop: Op) -> bool:
    """Whether ``pop``'s accumulator can be i32: an integer population of at most 30 bits whose
    events of value 1 cannot sum out of i32 (Σ of :func:`unit_bound`), and no conv2d
    projection with events of other values.

    Other events go into an i64 side accumulator, which is folded in before the update with
    the sum clamped to ±2**30: exact, since ``sat(decay(u) + I)`` saturates alike for any
    ``|I| >= 2**30`` when ``|decay(u)| <= 2**29``."""
    if not pop.bits or pop.bits > 30:
        return False
    projections = [c.owner for c in pop.currents]
    if any(p.kind == "conv2d" and not unit_events(p) for p in projections):
        return False
    return sum(unit_bound(p) for p in projections) < 2**31


def short_accumulator(pop: Op) -> bool:
    """Whether ``pop``'s accumulator can be i16 (half the cache lines that W3's random adds
    touch, half the bytes a conv's flush writes and the update reads): every projection
    ``sparse`` (kernels adding through :meth:`.emit.Lowering.accumulate`) or a ``conv2d`` of
    events of value 1 (its i16 private accumulator flushed without widening,
    :func:`private_accumulator`), and no sum of events of value 1 can leave i16 (Σ of
    :func:`unit_bound` below 2**15), so that i16 sums are exact in any order.  Other events go
    to the i64 side accumulator as for an i32 one (:func:`narrow_accumulator`); a step that
    used it folds both into i32 currents (:meth:`.emit.Lowering.population_step`)."""
    projections = [c.owner for c in pop.currents]
    return (bool(projections) and all(p.kind == "sparse" or p.kind == "conv2d" and unit_events(p) for p in projections)
            and sum(unit_bound(p) for p in projections) < 2**15)


def private_accumulator(p: Op, narrow: bool) -> np.dtype | None:
    """The element type of a projection's own accumulator, or None when it adds straight into
    the population's (``narrow``: an i32 one).

    conv2d always has one (channel-last, so that an event adds contiguous channel vectors):
    with events of value 0 or 1 only, i16 when no output's sum of one step can leave i16
    (:func:`unit_bound` below ``2**15``; any partial sum is bounded alike, so no intermediate
    wraps), which halves the vector work per kernel cell, else i32 when it cannot leave i32;
    otherwise i64 (f64 for float graphs).  An integer dense projection into an i64 accumulator
    has an i32 one (twice the vector width) when no output can leave i32 from events of value 1; events of other values (spike counts,
    integer currents) then add straight into the population's accumulator."""
    integer = p.is_integer
    bounded = integer and p.kind in ("dense", "conv2d") and unit_bound(p) < 2**31
    if p.kind == "conv2d":
        if bounded and unit_events(p):
            return np.dtype(np.int16 if unit_bound(p) < 2**15 else np.int32)
        return np.dtype(np.int64 if integer else np.float64)
    if p.kind == "dense" and bounded and not narrow:
        return np.dtype(np.int32)
    return None


def conv_halo(p: Op, dtype: np.dtype | None) -> tuple[int, int, int, int] | None:
    """``(HY, HX, OHp, OWp)`` when conv2d ``p`` scatters into a private accumulator with a halo
    (:func:`.kernels.conv2d.project_conv2d`), else None.  Stride 1 and an i16 or i32 accumulator
    whose output channels per group fill whole AVX2 vectors: the accumulator is
    ``[OHp, OWp, O]`` with output cell ``(oy, ox)`` at ``(oy + HY, ox + HX)``, ``HY = (kh-1)·dy``
    (likewise x), so that every kernel cell of every event lands inside it; the cells outside
    the outputs take the sums that fall off the edges and are never read."""
    if p.kind != "conv2d" or dtype not in (np.dtype(np.int16), np.dtype(np.int32)) or tuple(p.strides) != (1, 1):
        return None
    O, _, kh, kw = p.weight.shape
    if (O // p.groups) % (32 // dtype.itemsize):
        return None
    _, H, W = p.src.type.shape
    OH, OW = conv_out(p)
    hy, hx = (kh - 1) * p.dilations[0], (kw - 1) * p.dilations[1]
    return hy, hx, hy + max(H + p.pads[0], OH), hx + max(W + p.pads[1], OW)




#: Sums (512-bit registers of 16 output channels) that the direct convolution keeps in
#: registers for one block of output cells (:mod:`.kernels.conv_direct`).
DIRECT_SUMS = 16
#: Cost of one ``vpdpbusd`` of the direct convolution (64 multiply-adds: 16 output channels
#: times 4 input channels) in event-kernel vector adds (a load, an add and a store of one
#: channel vector at one kernel cell): :func:`direct_conv` puts the crossover where the two
#: kernels' vector operations cost the same.  Measured on W2's 16 → 32 conv (MNIST input,
#: 530 events per step on average; ``perf`` samples of each kernel forced, one thread, this
#: AMD EPYC of the Zen 4 generation): 0.82 cycles per ``vpdpbusd``, 3.0 per event vector add.
DIRECT_COST = 0.3
#: How far below the crossover a population's mean spike count per step (its calibrated
#: ``calib.rate`` times its size) must be for :func:`direct_conv` to emit only the event
#: kernel: a margin for the steps that spike more than the mean (a judgement, not measured).
RATE_MARGIN = 4


class DirectGeometry(NamedTuple):
    """The direct convolution of one conv2d (:func:`direct_geometry`)."""

    hp: int  # padded input rows
    wp: int  # padded input columns
    cells: int  # input cells, with slack
    depth: int  # bytes per input cell
    owr: int  # output columns summed per row (whole blocks)
    run: int  # output cells of a row per block
    pair: int  # 16-channel blocks of outputs per block


def direct_geometry(p: Op) -> DirectGeometry:
    """Conv2d ``p``'s direct convolution: its input plane is ``[cells, depth]`` bytes,
    channel-last, padded by ``p.pads`` to ``hp × wp`` cells (then ``run`` cells of slack, read
    by the block of a row's last outputs), each cell ``depth = groups · K4`` bytes (each group's
    input channels padded to ``K4``, a multiple of 4).  Each block sums ``run`` output cells of
    a row times ``pair`` · 16 output channels in registers (at most :data:`DIRECT_SUMS` of
    them; a row in as few blocks as that allows, of equal length): ``owr`` output columns per
    row, ``OW`` rounded up to whole blocks."""
    C, H, W = p.src.type.shape
    k4 = -(-(C // p.groups) // 4) * 4
    hp, wp = H + p.pads[0] + p.pads[2], W + p.pads[1] + p.pads[3]
    pair = 2 if (p.weight.shape[0] // p.groups // 16) % 2 == 0 else 1
    ow = conv_out(p)[1]
    blocks = -(-ow // (DIRECT_SUMS // pair))
    run = -(-ow // blocks)
    return DirectGeometry(hp, wp, hp * wp + run, p.groups * k4, blocks * run, run, pair)


def direct_conv(p: Op, lay: Layout, kernels: str = "auto") -> int | None:
    """Whether conv2d ``p`` may run the direct convolution (:mod:`.kernels.conv_direct`), and
    from how many events in a step: None (never), 0 (always) or the least number.

    It sums every output from the whole input (``vpdpbusd``: the input as 0/1 bytes, int8
    weights, i32 sums), at a cost that does not depend on the firing rate; the event kernel
    costs a vector add per kernel cell and channel vector of every event.  Candidates: integer
    stride-1 convs whose events are 0 or 1, with int8 weights (exponent folded in), sums
    bounded in i32 (:func:`unit_bound`), output channels per group a multiple of 16, on an
    AVX-512 VNNI host (``lay.features``), not split into parts.  ``kernels="dense"``: always;
    ``"event"``: never; ``"auto"``: a population's spike list is counted at each step and the
    kernel chosen there (the crossover below), unless no step can reach the crossover (it is
    above the population's size) or the population's calibrated rate puts its mean count at
    :data:`RATE_MARGIN` times below it: then only the event kernel is emitted (a compile-time
    choice, which spares the code of the other kernel).  An encoder's rate is known only when
    calibrated (``calib.rate``, :func:`source_rate`), which then decides once."""
    if p.kind != "conv2d" or kernels == "event" or not p.is_integer or not unit_events(p):
        return None
    O, _, kh, kw = p.weight.shape
    og = O // p.groups
    if tuple(p.strides) != (1, 1) or og % 16 or int_weights(p).dtype != np.int8 or unit_bound(p) >= 2**31:
        return None
    features = host_features() if lay.features is None else lay.features
    if not {"avx512vnni", "avx512bw"} <= set(features) or (lay.parts and p.src.owner in lay.parts):
        return None
    if kernels == "dense":
        return 0
    geo = direct_geometry(p)
    dense = conv_out(p)[0] * geo.owr * (geo.depth // 4) * kh * kw * (og // 16)  # vpdpbusd per step
    vector = 32 if lay.private.get(p) == np.dtype(np.int16) else 16  # 512-bit channel vectors
    per_event = kh * kw * -(-og // vector)
    least = max(1, int(np.ceil(dense * DIRECT_COST / per_event)))
    src = p.src.owner
    rate = source_rate(src)
    if src.KIND == "snn.population":
        size = src.result.type.size
        return None if least > size or (rate is not None and rate * size * RATE_MARGIN <= least) else least
    return 0 if rate is not None and rate * src.result.type.size >= least else None


def conv_weights_dtype(p: Op, dtype: np.dtype) -> np.dtype | None:
    """The type conv2d ``p``'s weights are widened to when its private accumulator has element
    type ``dtype``: the accumulator's own type (an event then adds them without sign-extending
    each vector) when it is i16 or i32 and the accumulator has a halo (:func:`conv_halo`) or the
    widened table is at most :data:`CONV_WIDE_WEIGHTS` bytes; else None (weights as narrow as
    they stay exact, to stay in L1)."""
    if dtype not in (np.dtype(np.int16), np.dtype(np.int32)):
        return None
    if conv_halo(p, dtype) or p.weight.data.size * dtype.itemsize <= CONV_WIDE_WEIGHTS:
        return dtype
    return None


def conv_out(p: Op) -> tuple[int, int]:
    """Output height and width of a conv2d projection (its flat order is [O, OH, OW])."""
    H, W = p.src.type.shape[1:]
    kh, kw = p.weight.shape[2:]
    return (pooled_size(H, kh, p.strides[0], p.pads[0], p.pads[2], p.dilations[0], False),
            pooled_size(W, kw, p.strides[1], p.pads[1], p.pads[3], p.dilations[1], False))


def pool_out(p: Op) -> tuple[int, int]:
    """Output height and width of a pool or maxgate projection (flat order [C, OH, OW])."""
    H, W = p.src.type.shape[1:]
    return (pooled_size(H, p.kernel[0], p.strides[0], p.pads[0], p.pads[2], 1, False),
            pooled_size(W, p.kernel[1], p.strides[1], p.pads[1], p.pads[3], 1, False))

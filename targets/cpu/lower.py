"""Lowering an ``snn`` graph to one LLVM function (docs/design.md §5, §6).

The generated function runs whole samples, step by step, exactly as :func:`nmc.semantics.run_snn`
does, specialised on every shape and constant of the graph (weights and per-neuron parameters
are global constants)::

    void nmc_run(ptr bufs, ptr scratch, i64 n0, i64 n1, i64 T, i64 steps)

``bufs`` is a table of pointers to host arrays laid out by :class:`Layout` (encoder values
per sample and presentation step, per-population state ``u``/``v``, spike counts, optional
recorded trains, synaptic-op counts per sample); ``scratch`` is a per-thread work area of
``Layout.scratch_bytes`` (current accumulators and ring buffers of past spike events).  Samples
``n0 <= n < n1`` are run; samples are independent, so disjoint ranges may run on different
threads at once.

A ``dense`` projection of an integer graph whose source is known to fire densely (a
``current`` encoder, or a ``calib.rate`` of at least :data:`DENSE_RATE`) runs a dense kernel
instead (:func:`dense_kernel`, :meth:`_Lowering.project_dense_rows`): one dot product per
target over the step's whole source vector (a population's byte spike vector, kept in a ring
beside its spike lists), 32 synapses per AVX2 ``vpmaddubsw`` for int8 weights.  Otherwise
projections are event driven: each source keeps, per step, the list of its spiking neurons
(a ring buffer as deep as the longest delay out of it), and each event adds one weight row
(dense: a contiguous row of the transposed matrix; conv2d: one kernel scattered, channel-last,
into a private accumulator — i16 when no step's sum can leave i16, see :func:`private_accumulator`
— transposed into the population's in 8×8 register blocks; pool: its
windows; both found through a table per source position, :func:`window_table`; sparse: its CSR
synapses, see :func:`synapse_table`).  An integer pool of a population without overlaps or
pads instead sums each window of the source's byte spike vector, 8 outputs at a time
(:func:`dense_pool`).  Encoder values are scanned for non-zeros (0/1 bytes 64
at a time, as bit masks); events of value 1 skip the multiply.  An integer population's
accumulator is i32 when events of value 1 cannot overflow it (:func:`narrow_accumulator`;
other events go through an i64 side accumulator), else i64 (:func:`private_accumulator` then gives dense projections an i32 one
where it can).  Neurons are updated 8 at a time with explicit vectors, each group's spike bits
appending its spikes to the step's list without branches (:meth:`_Lowering.list8`: a table of
the set bits' indices per byte, stored as one vector).  Integer
populations compute with the exact decay/saturation rules of :mod:`nmc.semantics`, in i32
lanes when no intermediate can leave i32 (:func:`lanes32`), else in i64; float populations in
f64 in the reference's operation order, without fast-math (only the order of synaptic sums differs).
Tables larger than :data:`EMBED_BYTES` are external constants bound by the JIT (see
:meth:`Emitter.const_array`).

Two loop orders (``Layout.schedule``, :func:`choose_schedule`): ``step`` runs, for each step,
every population; ``layer`` (feed-forward networks only, :func:`feed_forward_order`) runs each
population over all steps of the sample before the next, keeping its spike lists for the
whole run (scratch sized by ``steps`` at run time: :meth:`Layout.reserve_run`).  Under
``layer``, populations fed only by event-driven integer dense projections get their currents
for every step from the time-batched kernel (:meth:`_Lowering.tiled_currents`: 64 outputs at a
time summed in registers over each step's events) before their neurons are updated step by
step; everything else runs as under ``step``.  Both orders compute the same sums in the same
arithmetic, so results do not depend on the schedule; a sample whose encoder values the
kernel cannot take (other than 0 and 1) is skipped, for the executor to run by ``step``
(:func:`needs_step_rerun`).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
from llvmlite import ir

from nmc.diagnostics import NmcError
from nmc.ir.ann import pooled_size
from nmc.ir.core import Blob, Graph, Op, param_array
from nmc.ir.snn import DECAY_ONE
from nmc.semantics import fanout

from .jit import host_features as AVX2_PROBE

I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
FUNCTION_NAME = "nmc_run"
EMBED_BYTES = 1 << 16
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
    whose accumulator is i32 (:func:`narrow_accumulator`); ``wide``: those of them that also
    have an i64 side accumulator for events of other values than 1.  ``dense``: projections run
    by the dense kernel (:func:`dense_kernel`) and pools read from byte vectors
    (:func:`dense_pool`); ``spike_rows``: populations feeding one, which keep a ring of byte
    spike vectors (``spk``) beside their spike lists.

    ``schedule``: ``step`` (every population at each step) or ``layer`` (each population over
    all steps of a sample, in the feed-forward ``order``; :func:`choose_schedule`).  Under
    ``layer``, populations that feed others keep their spike lists of the whole run
    (``whole_run``: a ring slot per step), ``tiled`` maps populations to the projections that
    the time-batched kernel runs (:meth:`_Lowering.tiled_currents`), and ``listed`` are the
    encoders whose non-zero values are listed per step for it.  Areas sized by the run's
    steps live after the fixed ones (:meth:`reserve_run`, :meth:`scratch_size`)."""

    slots: list[tuple[str, Op | None]] = field(default_factory=list)
    scratch: dict[tuple[str, Op], int] = field(default_factory=dict)
    scratch_bytes: int = 0
    ring: dict[Op, int] = field(default_factory=dict)
    private: dict[Op, np.dtype] = field(default_factory=dict)
    narrow: set[Op] = field(default_factory=set)
    wide: set[Op] = field(default_factory=set)
    dense: set[Op] = field(default_factory=set)
    spike_rows: set[Op] = field(default_factory=set)
    schedule: str = "step"
    order: list[Op] = field(default_factory=list)
    whole_run: set[Op] = field(default_factory=set)
    tiled: dict[Op, list[Op]] = field(default_factory=dict)
    listed: set[Op] = field(default_factory=set)
    run: dict[tuple[str, Op], int] = field(default_factory=dict)
    run_bytes: int = 0

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


KERNELS = ("auto", "event", "dense")
SCHEDULES = ("auto", "step", "layer")


def plan(net: Network, kernels: str = "auto", schedule: str = "auto") -> Layout:
    """Where everything lives; ``kernels`` chooses the kernel of dense projections (``auto``:
    :func:`dense_kernel`; ``event`` or ``dense``: all of them, for tests and measurements);
    ``schedule`` the loop order (``auto``: :func:`choose_schedule`; ``step`` or ``layer``
    forced, for tests and measurements; ``layer`` needs a feed-forward network)."""
    if kernels not in KERNELS:
        raise ValueError(f"kernels must be one of {KERNELS}, not {kernels!r}")
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, not {schedule!r}")
    lay = Layout()
    for p in net.projections:
        if dense_kernel(p, kernels) or dense_pool(p, kernels):
            lay.dense.add(p)
            if p.src.owner.KIND == "snn.population":
                lay.spike_rows.add(p.src.owner)
    for e in net.encoders:
        lay.slots.append(("enc", e))
    for pop in net.populations:
        for kind in ("u", "v", "count", "rec"):
            lay.slots.append((kind, pop))
    lay.slots.append(("synops", None))
    for pop in net.populations:
        if narrow_accumulator(pop):
            lay.narrow.add(pop)
    order = feed_forward_order(net)
    if schedule == "layer" and order is None:
        raise ValueError("schedule 'layer' needs a feed-forward network; this one has recurrence")
    lay.schedule = choose_schedule(net, lay, order) if schedule == "auto" else schedule
    if lay.schedule == "layer":
        lay.order = order
        lay.tiled = {pop: [c.owner for c in pop.currents] for pop in order if _tiled_population(net, lay, pop)}
        lay.listed = {p.src.owner for ps in lay.tiled.values() for p in ps if p.src.owner.KIND == "snn.encode"}
        lay.whole_run = {p.src.owner for p in net.projections if p.src.owner.KIND == "snn.population"}
    for pop in net.populations:
        size = pop.result.type.size
        delays = [p.delay for p in net.projections if p.src.owner is pop]
        lay.ring[pop] = max(delays, default=0) + 1
        if pop in lay.narrow and not all(_unit_events(c.owner) for c in pop.currents):
            lay.wide.add(pop)
            lay.reserve("wide", pop, 8 * size)
        lay.reserve("acc", pop, (4 if pop in lay.narrow else 8) * size)
        if pop in lay.whole_run:  # one slot per step of the run
            lay.reserve_run("ring_idx", pop, 4 * _list_stride(pop))
            lay.reserve_run("ring_cnt", pop, 4)
            if pop in lay.spike_rows:
                lay.reserve_run("spk", pop, _spk_stride(pop))
        else:
            lay.reserve("ring_idx", pop, 4 * _list_stride(pop) * lay.ring[pop])
            lay.reserve("ring_cnt", pop, 4 * lay.ring[pop])
            if pop in lay.spike_rows:
                lay.reserve("spk", pop, _spk_stride(pop) * lay.ring[pop])
        if pop in lay.tiled:  # the currents of every step: [steps, tile_columns(size)] i32
            lay.reserve_run("cur", pop, 4 * tile_columns(size))
    for e in net.encoders:
        if e in lay.listed:  # non-zero indices per presentation step (T <= steps)
            lay.reserve_run("eidx", e, 4 * e.result.type.size)
            lay.reserve_run("ecnt", e, 4)
    for p in lay.dense:  # integer values other than 0 and 1, narrowed each step
        if p.is_integer and not _unit_events(p):
            lay.reserve("xn", p, 3 * p.src.type.size)  # i16, then bytes
    target = {c.owner: pop for pop in net.populations for c in pop.currents}
    for p in net.projections:
        dtype = private_accumulator(p, target.get(p) in lay.narrow)
        if dtype is not None and p not in lay.dense:
            lay.private[p] = dtype
            halo = conv_halo(p, dtype)
            cells = halo[2] * halo[3] * p.result.type.shape[0] if halo else p.result.type.size
            lay.reserve("pacc", p, dtype.itemsize * cells)
    _reserve_gates(net, lay)
    return lay


def _reserve_gates(net: Network, lay: Layout) -> None:
    """Per-thread areas of each ``maxgate`` projection (:meth:`_Lowering.project_maxgate`):
    ``gcount``, its running counts per source neuron (reset at the start of every sample), and
    ``gval``, the values its source delivers this step (zero between steps); both i64 (float
    graphs: f64)."""
    for p in net.projections:
        if p.kind == "maxgate":
            lay.reserve("gcount", p, 8 * p.src.type.size)
            lay.reserve("gval", p, 8 * p.src.type.size)


def _spk_stride(pop: Op) -> int:
    """Bytes per step in ``pop``'s ring of spike vectors (one byte per neuron, padded)."""
    return (pop.result.type.size + 63) // 64 * 64


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
#: Cells and channels per register block when a channel-last conv2d accumulator is transposed
#: into its population's channel-first one (:meth:`_Lowering.flush`).
BLOCK = 8
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


def _tiled_population(net: Network, lay: Layout, pop: Op) -> bool:
    """Whether the time-batched kernel (:meth:`_Lowering.tiled_currents`) computes the currents
    of ``pop`` under the ``layer`` schedule: an integer population with an i32 accumulator
    (:func:`narrow_accumulator`: no sum of events of value 1 leaves i32) fed only by dense
    projections run from event lists (not the dense kernel) whose sources are populations or
    encoders of integer values (events of other values than 1 are checked for at run time,
    and the executor then runs the sample with the ``step`` schedule: :func:`needs_step_rerun`)."""
    if not pop.bits or pop not in lay.narrow or not pop.currents:
        return False
    for c in pop.currents:
        p = c.owner
        if p.kind != "dense" or not p.is_integer or p in lay.dense:
            return False
        src = p.src.owner
        if src.KIND == "snn.encode" and net.enc_dtype(src).kind != "i":
            return False
    return True


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
    are in populations that the time-batched kernel runs (:func:`_tiled_population`), else
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
        if _tiled_population(net, lay, pop):
            tiled += synapses
    return "layer" if total and tiled >= TILED_SHARE * total else "step"


#: Calibrated firing rate (mean events per neuron per step) from which a source drives its
#: dense projections with the dense kernel rather than event lists, when the kernel is the
#: AVX2 byte kernel (integer graph, int8 weights: :meth:`_Lowering._dense_bytes`).  Set by
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


def dense_kernel(p: Op, kernels: str = "auto") -> bool:
    """Whether projection ``p`` runs as a dense kernel: every target reads the whole source
    vector of the step (integer graphs: a dot product of its weight row, vectorised over the
    sources; float graphs: all weight rows added in source order, as the event lists would
    add them, so that sums keep their order).  Only ``dense`` projections; with ``auto``,
    when :func:`source_rate` is at least :data:`DENSE_RATE`, else (no calibration) events."""
    if p.kind != "dense" or kernels == "event":
        return False
    if kernels == "dense":
        return True
    rate = source_rate(p.src.owner)
    if rate is None or not p.is_integer:  # float: measured slower even for current encoders
        return False
    fast = p.is_integer and _int_weights(p).dtype == np.int8 and "avx2" in AVX2_PROBE() and p.src.type.size >= 32
    return rate >= (DENSE_RATE if fast else DENSE_RATE_GENERIC)


def dense_pool(p: Op, kernels: str = "auto") -> bool:
    """Whether pool projection ``p`` reads its source's whole byte spike vector each step
    (:meth:`_Lowering.project_pool_rows`) rather than its events: an integer pool of a
    population's spikes whose windows do not overlap and have no pads (each source cell in at
    most one window, every window inside the plane).  It reads one byte per source neuron per
    step, vectorised: less than that population's own update costs, so it is chosen whatever
    the firing rate (W2's 2×2 pooling of 11–20 % spikes: events cost 8–9 cycles each, the
    scattered adds of a window depending on each other).  ``kernels="event"`` forces events."""
    if p.kind != "pool" or kernels == "event" or not p.is_integer or p.src.owner.KIND != "snn.population":
        return False
    return not any(p.pads) and all(k <= s for k, s in zip(p.kernel, p.strides))


def _int_weights(p: Op) -> np.ndarray:
    """Integer weights with the exponent folded in, as narrow as they stay exact."""
    wd = p.weight.data.astype(np.int64) << p.exponent
    return np.ascontiguousarray(wd.astype(_narrow_int(wd)))


def state_dtype(pop: Op) -> np.dtype:
    """How the host holds ``u`` and ``v`` of ``pop``: i32 when every value fits (saturated to
    ``bits`` <= 31, and after a reset by subtraction, ``v - θ`` fits 32 bits), else i64; f64
    for float populations.  Arithmetic is i64 regardless."""
    if not pop.bits:
        return np.dtype(np.float64)
    return np.dtype(np.int32 if pop.bits <= 31 else np.int64)


COUNT_DTYPE = np.dtype(np.int32)  # spikes per neuron over a run: at most one per step


def _unit_events(p: Op) -> bool:
    """Whether every event of ``p``'s source has value 0 or 1 (populations, rate and poisson)."""
    src = p.src.owner
    return src.KIND == "snn.population" or src.encoding in ("rate", "poisson")


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
    :meth:`_Lowering.fold`), so ``decay(u) + I``, ``decay(v) + u + bias`` and ``v - θ`` stay
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
    if any(p.kind == "conv2d" and not _unit_events(p) for p in projections):
        return False
    return sum(unit_bound(p) for p in projections) < 2**31


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
        if bounded and _unit_events(p):
            return np.dtype(np.int16 if unit_bound(p) < 2**15 else np.int32)
        return np.dtype(np.int64 if integer else np.float64)
    if p.kind == "dense" and bounded and not narrow:
        return np.dtype(np.int32)
    return None


def conv_halo(p: Op, dtype: np.dtype | None) -> tuple[int, int, int, int] | None:
    """``(HY, HX, OHp, OWp)`` when conv2d ``p`` scatters into a private accumulator with a halo
    (:meth:`_Lowering.project_conv2d`), else None.  Stride 1 and an i16 or i32 accumulator
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
    OH, OW = _conv_out(p)
    hy, hx = (kh - 1) * p.dilations[0], (kw - 1) * p.dilations[1]
    return hy, hx, hy + max(H + p.pads[0], OH), hx + max(W + p.pads[1], OW)


# -------------------------------------------------------------------------- IR helpers


def _narrow_int(data: np.ndarray) -> np.dtype:
    lo, hi = (int(data.min()), int(data.max())) if data.size else (0, 0)
    for dt in (np.int8, np.int16, np.int32):
        info = np.iinfo(dt)
        if info.min <= lo and hi <= info.max:
            return np.dtype(dt)
    return np.dtype(np.int64)


def synapse_table(p: Op) -> tuple[np.ndarray, int, ir.Type]:
    """The synapses of sparse projection ``p`` in CSR order, as ``(table, bits, weight type)``.

    ``bits > 0``: one i32 word per synapse, ``weight << bits | target`` (integer weights that
    fit the ``32 - bits`` bits the targets leave).  ``bits == 0``: ``[nnz, 2]`` records of
    (target, weight bit pattern), 32-bit when the weight is exact in 32 bits (i32 or f32), else
    64-bit.  Both keep a synapse's target and weight in one cache line."""
    data, targets = p.weight.data, p.indices.data.astype(np.int64)
    if p.is_integer:
        w = data.astype(np.int64) << p.exponent
        bits = max(int(p.result.type.size - 1).bit_length(), 1)
        if w.size == 0 or -2**(31 - bits) <= w.min() and w.max() < 2**(31 - bits):
            return (w << bits | targets).astype(np.int32), bits, I32
        narrow = w.size == 0 or -2**31 <= w.min() and w.max() < 2**31
        wbits, wt = (w.astype(np.int32), I32) if narrow else (w, I64)
    else:
        w = data.astype(np.float64) * 2.0 ** p.exponent
        w32 = w.astype(np.float32)
        narrow = np.array_equal(w32.astype(np.float64), w, equal_nan=True)
        wbits, wt = (w32.view(np.int32), F32) if narrow else (w.view(np.int64), F64)
    table = np.empty((data.size, 2), dtype=wbits.dtype)
    table[:, 0] = targets
    table[:, 1] = wbits
    return table, 0, wt


def _byte_string(raw: bytes) -> str:
    """``raw`` as an LLVM string constant ``c"\\00\\01..."`` (built with numpy: weight
    tables run to megabytes)."""
    digits = np.frombuffer(raw.hex().encode("ascii"), dtype=np.uint8)
    text = np.empty(len(raw) * 3, dtype=np.uint8)
    text[0::3] = ord("\\")
    text[1::3] = digits[0::2]
    text[2::3] = digits[1::2]
    return 'c"' + text.tobytes().decode("ascii") + '"'


def _ir_type(dtype: np.dtype) -> ir.Type:
    return {np.dtype(np.int8): I8, np.dtype(np.int16): ir.IntType(16), np.dtype(np.int32): I32,
            np.dtype(np.int64): I64, np.dtype(np.float32): F32, np.dtype(np.float64): F64}[np.dtype(dtype)]


class Emitter:
    """An IRBuilder with loops, constant arrays and typed loads."""

    def __init__(self, module: ir.Module, fn: ir.Function):
        self.module = module
        self.fn = fn
        self.entry = fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        self._globals = 0
        self.external: dict[str, np.ndarray] = {}

    def var(self, typ: ir.Type, init) -> ir.AllocaInstr:
        """A local variable (an entry-block alloca that LLVM promotes to a register)."""
        here = self.b.block
        self.b.position_at_start(self.entry)
        slot = self.b.alloca(typ)
        self.b.position_at_end(here)
        self.b.store(ir.Constant(typ, init) if not isinstance(init, ir.Value) else init, slot)
        return slot

    @contextmanager
    def loop(self, start, stop, name: str = "i"):
        """``for (i = start; i < stop; i++)`` with i64 bounds; yields ``i``."""
        b = self.b
        start = start if isinstance(start, ir.Value) else ir.Constant(I64, start)
        stop = stop if isinstance(stop, ir.Value) else ir.Constant(I64, stop)
        pre = b.block
        head = self.fn.append_basic_block(name + ".head")
        body = self.fn.append_basic_block(name + ".body")
        end = self.fn.append_basic_block(name + ".end")
        b.branch(head)
        b.position_at_end(head)
        i = b.phi(I64, name=name)
        i.add_incoming(start, pre)
        b.cbranch(b.icmp_signed("<", i, stop), body, end)
        b.position_at_end(body)
        yield i
        nxt = b.add(i, ir.Constant(I64, 1), flags=("nsw",))
        i.add_incoming(nxt, b.block)
        b.branch(head)
        b.position_at_end(end)

    @contextmanager
    def when(self, cond):
        with self.b.if_then(cond):
            yield

    def const_array(self, data: np.ndarray, name: str) -> tuple[ir.GlobalVariable, ir.Type]:
        """``data`` (flattened) as a constant global; returns (global, element type).

        Tables up to :data:`EMBED_BYTES` are initialisers in the IR.  Larger ones (weight
        matrices of megabytes, which would dominate IR formatting and parsing time) are
        external constants named after a hash of their bytes, which the JIT binds to a host
        copy (:attr:`external`); the name puts their content into the IR, hence the cache key."""
        data = np.ascontiguousarray(data).reshape(-1)
        raw = data.tobytes() or b"\0"
        typ = ir.ArrayType(I8, len(raw))
        if len(raw) > EMBED_BYTES:
            symbol = f"nmc.blob.{hashlib.sha256(raw).hexdigest()[:32]}.{len(raw)}"
            if symbol in self.module.globals:
                return self.module.globals[symbol], _ir_type(data.dtype)
            g = ir.GlobalVariable(self.module, typ, name=symbol)
            g.global_constant = True
            self.external[symbol] = np.frombuffer(raw, dtype=np.uint8)
            return g, _ir_type(data.dtype)
        g = ir.GlobalVariable(self.module, typ, name=f"{name}.{self._globals}")
        self._globals += 1
        g.global_constant = True
        g.linkage = "private"
        g.align = 64
        g.initializer = ir.FormattedConstant(typ, _byte_string(raw))
        return g, _ir_type(data.dtype)

    def load(self, base, index, typ: ir.Type):
        return self.b.load(self.b.gep(base, [index], source_etype=typ, inbounds=True), typ=typ)

    def store(self, value, base, index, typ: ir.Type):
        self.b.store(value, self.b.gep(base, [index], source_etype=typ, inbounds=True))

    def i64(self, v: int) -> ir.Constant:
        return ir.Constant(I64, int(v))


# ---------------------------------------------------------------------------- lowering


class _Lowering:
    def __init__(self, net: Network, lay: Layout):
        self.net, self.lay = net, lay
        self.module = ir.Module(name="nmc")
        fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I64, I64])
        self.fn = ir.Function(self.module, fnty, name=FUNCTION_NAME)
        for a, name in zip(self.fn.args, ("bufs", "scratch", "n0", "n1", "T", "steps")):
            a.name = name
        self.fn.args[1].add_attribute("noalias")
        self.e = Emitter(self.module, self.fn)
        # integer populations whose first current is a conv2d: its flush writes the whole
        # accumulator each step (:meth:`flush`), so the update need not clear it
        self.overwritten = {pop for pop in net.populations if pop.bits and pop.currents
                            and pop.currents[0].owner.kind == "conv2d"}

    # -- helpers ---------------------------------------------------------------------------

    def acc_type(self, pop: Op) -> ir.Type:
        """The type the population's arithmetic runs in."""
        return I64 if pop.bits else F64

    def acc_store_type(self, pop: Op) -> ir.Type:
        """The element type of the population's accumulator."""
        return I32 if pop in self.lay.narrow else self.acc_type(pop)

    def add(self, pop: Op, a, b):
        return self.e.b.add(a, b) if pop.bits else self.e.b.fadd(a, b)

    def widen(self, pop: Op, value, typ: ir.Type, to: ir.Type | None = None):
        """A loaded weight or event value as type ``to`` (default: the population's accumulator)."""
        b, acc = self.e.b, to or self.acc_type(pop)
        if typ == acc:
            return value
        if isinstance(acc, ir.IntType):  # a float encoder into integer weights truncates, as numpy's astype does
            if isinstance(typ, (ir.FloatType, ir.DoubleType)):
                return b.fptosi(value, acc)
            return b.sext(value, acc) if typ.width < acc.width else b.trunc(value, acc)
        if isinstance(typ, ir.IntType):
            return b.sitofp(value, acc)
        return b.fpext(value, acc)

    def weights(self, p: Op, data: np.ndarray, name: str):
        """Weights with the exponent folded in, stored as narrow as they stay exact."""
        pop_integer = p.is_integer
        if pop_integer:
            w = data.astype(np.int64) << p.exponent
            return self.e.const_array(w.astype(_narrow_int(w)), name)
        w = data.astype(np.float64) * 2.0 ** p.exponent
        w32 = w.astype(np.float32)
        exact = np.array_equal(w32.astype(np.float64), w, equal_nan=True)
        return self.e.const_array(w32 if exact else w, name)

    def param(self, pop: Op, name: str):
        """A per-neuron parameter: ``(constant, None)`` if uniform, else ``(None, (global, element
        type))``."""
        dtype = np.int64 if pop.bits else np.float64
        value = getattr(pop, name)
        arr = param_array(value, pop.result.type.shape, dtype).reshape(-1)
        if arr.size and np.all(arr == arr[0]):
            return ir.Constant(self.acc_type(pop), arr[0].item()), None
        if pop.bits:  # verified to fit the (at most 32-bit) state, decays to [0, 4096]
            arr = arr.astype(np.int32)
        return None, self.e.const_array(arr, f"{name}")

    # -- the function ----------------------------------------------------------------------

    def lower(self) -> ir.Module:
        e, b = self.e, self.e.b
        bufs, scratch, n0, n1, self.T, self.steps = self.fn.args
        self.buf = [b.load(b.gep(bufs, [e.i64(i)], source_etype=PTR), typ=PTR) for i in range(len(self.lay.slots))]
        self.area = {k: b.gep(scratch, [e.i64(off)], source_etype=I8) for k, off in self.lay.scratch.items()}
        for k, per_step in self.lay.run.items():  # after the fixed areas, sized by the run's steps
            off = b.add(e.i64(self.lay.scratch_bytes), b.mul(self.steps, e.i64(per_step)))
            self.area[k] = b.gep(scratch, [off], source_etype=I8)
        self.synops = e.var(I64, 0)
        self.wide_flag = {pop: e.var(I8, 0) for pop in self.lay.wide}
        self.unit_flag = {enc: e.var(I8, 1) for enc in self.lay.listed}
        with e.loop(n0, n1, "n") as n:
            self.n = n
            b.store(e.i64(0), self.synops)
            self.sample_pointers()
            if self.lay.schedule == "layer":
                for enc in self.net.encoders:
                    if enc in self.lay.listed:
                        self.list_encoder(enc)
                checked = [self.unit_flag[enc] for enc in self.net.encoders if enc in self.lay.listed
                           and enc.encoding not in UNIT_ENCODINGS]
                if not checked:  # every listed event has value 1
                    for pop in self.lay.order:
                        self.population_run(pop)
                else:  # a sample with other values is left untouched, marked for the step schedule
                    ok = ir.Constant(ir.IntType(1), 1)
                    for f in checked:
                        ok = b.and_(ok, b.icmp_unsigned("!=", b.load(f, typ=I8), ir.Constant(I8, 0)))
                    with b.if_else(ok) as (fast, slow):
                        with fast:
                            for pop in self.lay.order:
                                self.population_run(pop)
                        with slow:
                            b.store(e.i64(SKIPPED), self.synops)
            else:
                with e.loop(0, self.steps, "t") as t:
                    self.t = t
                    for pop in self.net.populations:
                        self.population_step(pop)
            out = self.buf[self.lay.slot("synops", None)]
            e.store(b.load(self.synops, typ=I64), out, n, I64)
        b.ret_void()
        return self.module

    def sample_pointers(self):
        """Pointers into this sample's rows of the host arrays."""
        e, b, n = self.e, self.e.b, self.n
        self.row = {}
        for i, (kind, op) in enumerate(self.lay.slots):
            if kind == "synops":
                continue
            if kind == "enc":
                size = op.result.type.size
                typ = _ir_type(self.net.enc_dtype(op))
                stride = b.mul(self.T, e.i64(size))
            elif kind == "rec":
                size = op.result.type.size
                typ = I8
                stride = b.mul(self.steps, e.i64(size))
            else:
                size = op.result.type.size
                typ = _ir_type(COUNT_DTYPE if kind == "count" else state_dtype(op))
                stride = e.i64(size)
            self.row[(kind, op)] = b.gep(self.buf[i], [b.mul(n, stride)], source_etype=typ)
        self.reset_gates()

    def ring_slot(self, pop: Op, t):
        """The slot of step ``t`` in ``pop``'s ring of spike lists (and byte vectors)."""
        if pop in self.lay.whole_run:
            return t
        return self.e.b.urem(t, self.e.i64(self.lay.ring[pop]))

    # -- one population over all steps (layer schedule) -----------------------------------------

    def population_run(self, pop: Op):
        """All steps of ``pop`` for this sample (its sources have run all theirs): the
        time-batched kernel when ``pop`` has it, then the neuron updates step by step; else
        the step path per step.  Every event the kernel reads has value 1: a sample in which
        a listed encoder emits other values does not get here (:meth:`lower`)."""
        e, b = self.e, self.e.b
        if pop not in self.lay.tiled:
            with e.loop(0, self.steps, "t") as t:
                self.t = t
                self.population_step(pop)
            return
        cols = tile_columns(pop.result.type.size)
        for k, p in enumerate(self.lay.tiled[pop]):
            self.tiled_currents(p, pop, k == 0)
        cur = self.area[("cur", pop)]
        with e.loop(0, self.steps, "t") as t:
            self.t = t
            self.update(pop, b.gep(cur, [b.mul(t, e.i64(cols))], source_etype=I32))

    def list_encoder(self, enc: Op):
        """List the indices of ``enc``'s non-zero values for every presentation step of this
        sample (``eidx``/``ecnt``), and clear its unit flag if any value is not 1."""
        e, b = self.e, self.e.b
        size = enc.result.type.size
        typ = _ir_type(self.net.enc_dtype(enc))
        idx_area, cnt_area = self.area[("eidx", enc)], self.area[("ecnt", enc)]
        flag = self.unit_flag[enc]
        b.store(ir.Constant(I8, 1), flag)
        check = enc.encoding not in UNIT_ENCODINGS
        with e.loop(0, self.T, "pt") as pt:
            row = b.gep(self.row[("enc", enc)], [b.mul(pt, e.i64(size))], source_etype=typ)
            lst = b.gep(idx_area, [b.mul(pt, e.i64(size))], source_etype=I32)
            count = e.var(I64, 0)
            with e.loop(0, size, "j") as j:
                x = e.load(row, j, typ)
                with e.when(b.icmp_signed("!=", x, ir.Constant(typ, 0))):
                    k = b.load(count, typ=I64)
                    e.store(b.trunc(j, I32), lst, k, I32)
                    b.store(b.add(k, e.i64(1)), count)
                    if check:
                        with e.when(b.icmp_signed("!=", x, ir.Constant(typ, 1))):
                            b.store(ir.Constant(I8, 0), flag)
            e.store(b.trunc(b.load(count, typ=I64), I32), cnt_area, pt, I32)

    def tiled_currents(self, p: Op, pop: Op, first: bool):
        """The time-batched kernel: the currents dense projection ``p`` delivers to ``pop`` at
        every step of the sample, into ``pop``'s current matrix ``[steps, tile_columns]`` (i32;
        ``first``: stored, else added).  For each tile of :data:`TILE` output columns and each
        step, the tile's pieces of the weight rows (transposed, zero-padded to the matrix's
        columns) of the step's events are summed in a vector of registers: the tile's weights
        (at most ``inputs × 64`` of them) serve every step, and no accumulator is loaded or
        stored per event.  Every event has value 1 here (population spikes, or encoder values
        checked by :meth:`lower`) and the population's accumulator is i32 because no
        such sum can leave i32 (:func:`narrow_accumulator`), so i32 sums are exact in any order."""
        e, b = self.e, self.e.b
        src = p.src.owner
        out, inp = p.weight.shape
        cols = tile_columns(out)
        wd = _int_weights(p)
        padded = np.zeros((inp, cols), dtype=wd.dtype)
        padded[:, :out] = wd.T
        g, wt = e.const_array(padded, "tiled")
        size = src.result.type.size
        if src.KIND == "snn.encode":  # presented at pt, integrated at pt + delay - 1
            idx_area, cnt_area = self.area[("eidx", src)], self.area[("ecnt", src)]
            shift, limit, stride = e.i64(p.delay - 1), self.T, size
        else:
            idx_area, cnt_area = self.area[("ring_idx", src)], self.area[("ring_cnt", src)]
            shift, limit, stride = e.i64(p.delay), self.steps, _list_stride(src)
        cur = self.area[("cur", pop)]
        events = e.var(I64, 0)  # counted in every tile (a separate loop cost compile time)

        def tile(col, width: int):
            vw, vi = ir.VectorType(wt, width), ir.VectorType(I32, width)
            with e.loop(0, self.steps, "tt") as t:
                dst = b.gep(cur, [b.add(b.mul(t, e.i64(cols)), col)], source_etype=I32)
                init = ir.Constant(vi, [0] * width) if first else b.load(dst, typ=vi, align=4)
                vacc = e.var(vi, init)
                st = b.sub(t, shift)
                valid = b.and_(b.icmp_signed(">=", st, e.i64(0)), b.icmp_signed("<", st, limit))
                with e.when(valid):
                    cnt = b.sext(e.load(cnt_area, st, I32), I64)
                    b.store(b.add(b.load(events, typ=I64), cnt), events)
                    lst = b.gep(idx_area, [b.mul(st, e.i64(stride))], source_etype=I32)
                    with e.loop(0, cnt, "k") as k:
                        j = b.sext(e.load(lst, k, I32), I64)
                        wv = b.load(b.gep(g, [b.add(b.mul(j, e.i64(cols)), col)], source_etype=wt), typ=vw, align=1)
                        wv = wv if wt == I32 else b.sext(wv, vi)
                        b.store(b.add(b.load(vacc, typ=vi), wv), vacc)
                b.store(b.load(vacc, typ=vi), dst, align=4)

        if cols < TILE:
            tile(e.i64(0), cols)
        else:
            with e.loop(0, cols // TILE, "tile") as k:
                tile(b.mul(k, e.i64(TILE)), TILE)
        # synaptic operations: every event drives `out` targets (each tile counted them all)
        events = b.udiv(b.load(events, typ=I64), e.i64(max(cols // TILE, 1)))
        b.store(b.add(b.load(self.synops, typ=I64), b.mul(events, e.i64(out))), self.synops)

    # -- one population at one step ------------------------------------------------------------

    def population_step(self, pop: Op):
        acc = self.area[("acc", pop)]  # all zero here: the update clears what it reads
        for k, c in enumerate(pop.currents):
            self.first_current = k == 0
            self.projection(c.owner, pop, acc)
        if pop in self.lay.wide:
            self.fold(pop)
        self.update(pop, acc)

    def events(self, p: Op, pop: Op, body, counted: bool = False):
        """Call ``body(j, x)`` (x None for a spike of value 1) for each event ``p`` delivers now,
        and count the synaptic operations (unless ``counted``: the body counts them)."""
        e, b = self.e, self.e.b
        src = p.src.owner
        fans = np.zeros(1, np.int64) if counted else fanout(p)
        fan_const = int(fans[0]) if fans.size and np.all(fans == fans[0]) else None
        fan_table = None if fan_const is not None else e.const_array(fans.astype(np.int32), "fanout")

        def count(j):
            if counted:
                return
            f = e.i64(fan_const) if fan_const is not None else b.sext(e.load(fan_table[0], j, I32), I64)
            b.store(b.add(b.load(self.synops, typ=I64), f), self.synops)

        if src.KIND == "snn.encode":
            pt = b.add(b.sub(self.t, e.i64(p.delay)), e.i64(1))
            valid = b.and_(b.icmp_signed(">=", pt, e.i64(0)), b.icmp_signed("<", pt, self.T))
            with e.when(valid):
                size = src.result.type.size
                typ = _ir_type(self.net.enc_dtype(src))
                row = b.gep(self.row[("enc", src)], [b.mul(pt, e.i64(size))], source_etype=typ)
                whole = 0
                if typ == I8 and _unit_events(p):  # 0/1 bytes: 64 at a time, as a bit mask
                    whole = size // 64 * 64
                    v64 = ir.VectorType(I8, 64)
                    with e.loop(0, size // 64, "jw") as k:
                        x = b.load(b.gep(row, [b.shl(k, e.i64(6))], source_etype=I8), typ=v64, align=1)
                        nz = b.bitcast(b.icmp_signed("!=", x, ir.Constant(v64, None)), I64)
                        with self.set_bits(nz, b.shl(k, e.i64(6))) as j:
                            count(j)
                            body(j, None)
                with e.loop(whole, size, "j") as j:
                    x = e.load(row, j, typ)
                    nz = b.icmp_signed("!=", x, ir.Constant(typ, 0)) if isinstance(typ, ir.IntType) \
                        else b.fcmp_unordered("!=", x, ir.Constant(typ, 0.0))
                    with e.when(nz):
                        count(j)
                        if _unit_events(p):  # rate, poisson: every event is a spike
                            body(j, None)
                        else:
                            one = b.icmp_signed("==", x, ir.Constant(typ, 1)) if isinstance(typ, ir.IntType) \
                                else b.fcmp_ordered("==", x, ir.Constant(typ, 1.0))
                            with b.if_else(one) as (spike, other):
                                with spike:  # the common case: no multiply
                                    body(j, None)
                                with other:
                                    body(j, self.widen(pop, x, typ))
            return
        st = b.sub(self.t, e.i64(p.delay))
        with e.when(b.icmp_signed(">=", st, e.i64(0))):
            size = src.result.type.size
            slot = self.ring_slot(src, st)
            cnt = b.sext(e.load(self.area[("ring_cnt", src)], slot, I32), I64)
            idx = b.gep(self.area[("ring_idx", src)], [b.mul(slot, e.i64(_list_stride(src)))], source_etype=I32)
            with e.loop(0, cnt, "k") as k:
                j = b.sext(e.load(idx, k, I32), I64)
                count(j)
                body(j, None)

    def projection(self, p: Op, pop: Op, acc):
        getattr(self, "project_" + p.kind)(p, pop, acc)

    def target(self, pop: Op, x):
        """(pointer, element type) of the accumulator that an event of value ``x`` (None: 1)
        adds into: the population's, or for other values into an i32 one, its i64 side
        accumulator (flagged for :meth:`fold`)."""
        if x is not None and pop in self.lay.wide:
            self.e.b.store(ir.Constant(I8, 1), self.wide_flag[pop])
            return self.area[("wide", pop)], I64
        return self.area[("acc", pop)], self.acc_store_type(pop)

    def accumulate(self, pop: Op, into, index, w, wtyp, x):
        """``acc[index] += w * x`` into ``into`` = (pointer, element type) (``x`` None: a spike,
        no multiply)."""
        e, b = self.e, self.e.b
        acc, acc_t = into
        w = self.widen(pop, w, wtyp, acc_t)
        if x is not None:
            x = self.widen(pop, x, self.acc_type(pop), acc_t)
        term = w if x is None else (b.mul(w, x) if pop.bits else b.fmul(w, x))
        old = e.load(acc, index, acc_t)
        e.store(b.add(old, term) if pop.bits else b.fadd(old, term), acc, index, acc_t)

    def fold(self, pop: Op):
        """Add the side accumulator of ``pop`` into its i32 one, clamped to ±2**30 (see
        :func:`narrow_accumulator`), and clear it, if any event went there this step."""
        e, b = self.e, self.e.b
        flag = self.wide_flag[pop]
        acc, wide = self.area[("acc", pop)], self.area[("wide", pop)]
        lo, hi = e.i64(-2**30), e.i64(2**30)
        with e.when(b.icmp_unsigned("!=", b.load(flag, typ=I8), ir.Constant(I8, 0))):
            b.store(ir.Constant(I8, 0), flag)
            with e.loop(0, pop.result.type.size, "fold") as i:
                total = b.add(b.sext(e.load(acc, i, I32), I64), e.load(wide, i, I64))
                total = b.select(b.icmp_signed("<", total, lo), lo, b.select(b.icmp_signed(">", total, hi), hi, total))
                e.store(b.trunc(total, I32), acc, i, I32)
                e.store(e.i64(0), wide, i, I64)

    def private(self, p: Op, pop: Op):
        """(pointer, type, touched flag) of ``p``'s private accumulator, or None."""
        kind = self.lay.private.get(p)
        if kind is None:
            return None
        touched = self.e.var(I8, 0)
        return self.area[("pacc", p)], _ir_type(kind), touched

    def flush(self, pop: Op, acc, priv, size: int, cells: int = 1, first: bool = False, halo=None):
        """Add the private accumulator (``[cells, size/cells]``, channel-last when ``cells > 1``)
        into the population's (channel-first) and clear it, if any event touched it.  ``first``:
        nothing was added to the population's accumulator yet this step, so an integer result
        is stored rather than added; the update does not clear such an accumulator
        (``overwritten``), so when no event touched the private one it is zeroed instead.
        ``halo`` = ``(OW, OWp, offset)``: output cell ``i`` is the private accumulator's cell
        ``i + (i // OW)·(OWp - OW) + offset`` (:func:`conv_halo`).  A channel-last one whose
        channels are a multiple of :data:`BLOCK` is transposed in ``BLOCK × BLOCK`` register
        blocks (:meth:`_flush_blocks`; strided scalar reads cost W2 a tenth of its time), the
        cells after the last whole block one by one."""
        e, b = self.e, self.e.b
        pacc, pt, touched = priv
        chans = size // cells
        blocked = cells // BLOCK if cells > 1 and chans % BLOCK == 0 else 0

        def place(cell):
            if halo is None:
                return cell
            ow, owp, offset = halo
            return b.add(b.add(cell, b.mul(b.udiv(cell, e.i64(ow)), e.i64(owp - ow))), e.i64(offset))

        def cells_():
            if blocked:
                self._flush_blocks(pop, acc, pacc, pt, cells, chans, first, place)
            # the rest (every cell without blocks): contiguous stores, strided reads
            with e.loop(0, chans, "ch") as ch:
                with e.loop(blocked * BLOCK, cells, "cell") as cell:
                    src = b.add(b.mul(place(cell), e.i64(chans)), ch)
                    dst = b.add(b.mul(ch, e.i64(cells)), cell)
                    self._flush_value(pop, acc, dst, e.load(pacc, src, pt), pt, first)
                    e.store(ir.Constant(pt, 0), pacc, src, pt)

        cond = b.icmp_unsigned("!=", b.load(touched, typ=I8), ir.Constant(I8, 0))
        if first and pop.bits and pop in self.overwritten:  # untouched: the step's currents start at 0
            with b.if_else(cond) as (then, otherwise):
                with otherwise:
                    with e.loop(0, size, "zero") as i:
                        e.store(ir.Constant(self.acc_store_type(pop), 0), acc, i, self.acc_store_type(pop))
                with then:
                    cells_()
        else:
            with e.when(cond):
                cells_()

    def _flush_value(self, pop: Op, acc, dst, val, pt: ir.Type, first: bool):
        """``acc[dst] (+)= val`` for a scalar or vector ``val`` of element type ``pt``."""
        b = self.e.b
        acc_t = self.acc_store_type(pop)
        vec = isinstance(val.type, ir.VectorType)
        typ = ir.VectorType(acc_t, val.type.count) if vec else acc_t
        if pt != acc_t:  # an i32 private accumulator into an i64 one
            val = b.sext(val, typ)
        ptr = b.gep(acc, [dst], source_etype=acc_t, inbounds=True)
        if not (first and pop.bits):
            old = b.load(ptr, typ=typ, align=4)
            val = b.add(old, val) if pop.bits else b.fadd(old, val)
        b.store(val, ptr, align=4)

    def _flush_blocks(self, pop: Op, acc, pacc, pt: ir.Type, cells: int, chans: int, first: bool, place):
        """The whole ``BLOCK × BLOCK`` blocks of :meth:`flush`: for each block of cells and of
        channels, load one vector per cell (its channels, at ``place(cell)``), clear them,
        transpose the block with shuffles (32-bit pairs, 64-bit pairs, 128-bit halves) and add one vector per
        channel (its cells) into the population's accumulator.  Every element is added once,
        as by the scalar loop, so the results are the same."""
        e, b = self.e, self.e.b
        vt = ir.VectorType(pt, BLOCK)
        zero = ir.Constant(vt, None)

        def shuffle(x, y, idx):
            return b.shuffle_vector(x, y, ir.Constant(ir.VectorType(I32, BLOCK), idx))

        with e.loop(0, cells // BLOCK, "fcb") as cb:
            with e.loop(0, chans // BLOCK, "fch") as chb:
                rows = []
                for r in range(BLOCK):
                    cell = place(b.add(b.mul(cb, e.i64(BLOCK)), e.i64(r)))
                    ptr = b.gep(pacc, [b.add(b.mul(cell, e.i64(chans)), b.mul(chb, e.i64(BLOCK)))],
                                source_etype=pt, inbounds=True)
                    rows.append(b.load(ptr, typ=vt, align=4))
                    b.store(zero, ptr, align=4)
                t = [shuffle(rows[i & ~1], rows[i | 1], [0, 8, 1, 9, 4, 12, 5, 13] if i % 2 == 0 else
                             [2, 10, 3, 11, 6, 14, 7, 15]) for i in range(BLOCK)]
                # t[2q]: rows 2q, 2q+1 interleaved at channels 0,1 | 4,5; t[2q+1]: channels 2,3 | 6,7
                s_ = []
                for q in range(2):  # rows 0-3, rows 4-7
                    a0, a1, a2, a3 = t[4 * q:4 * q + 4]
                    s_ += [shuffle(a0, a2, [0, 1, 8, 9, 4, 5, 12, 13]), shuffle(a0, a2, [2, 3, 10, 11, 6, 7, 14, 15]),
                           shuffle(a1, a3, [0, 1, 8, 9, 4, 5, 12, 13]), shuffle(a1, a3, [2, 3, 10, 11, 6, 7, 14, 15])]
                # s_[k] (k < 4): channels k and k+4 of rows 0-3; s_[4+k]: the same of rows 4-7
                for k in range(BLOCK):
                    lo, hi = s_[k % 4], s_[4 + k % 4]
                    col = shuffle(lo, hi, [0, 1, 2, 3, 8, 9, 10, 11] if k < 4 else [4, 5, 6, 7, 12, 13, 14, 15])
                    ch = b.add(b.mul(chb, e.i64(BLOCK)), e.i64(k))
                    dst = b.add(b.mul(ch, e.i64(cells)), b.mul(cb, e.i64(BLOCK)))
                    self._flush_value(pop, acc, dst, col, pt, first)

    def project_dense(self, p: Op, pop: Op, acc):
        if p in self.lay.dense:
            return self.project_dense_rows(p, pop)
        e, b = self.e, self.e.b
        w = p.weight.data
        out, inp = w.shape
        g, wt = self.weights(p, np.ascontiguousarray(w.T), "dense")
        priv = self.private(p, pop)

        def body(j, x):
            if priv and x is None:
                b.store(ir.Constant(I8, 1), priv[2])
                into = priv[:2]
            else:  # events of other values than 1 are not bounded: not into the private one
                into = self.target(pop, x)
            row = b.gep(g, [b.mul(j, e.i64(out))], source_etype=wt)
            with e.loop(0, out, "o") as o:
                self.accumulate(pop, into, o, e.load(row, o, wt), wt, x)

        self.events(p, pop, body)
        if priv:
            self.flush(pop, acc, priv, out)

    @contextmanager
    def source_vector(self, p: Op):
        """Yields (pointer, element type, events) for the values ``p``'s source delivers now
        (encoder values, or a population's byte spike vector), inside a test that there are
        any (none before the first delay has passed); ``events``: how many are non-zero."""
        e, b = self.e, self.e.b
        src = p.src.owner
        size = src.result.type.size
        if src.KIND == "snn.encode":
            pt = b.add(b.sub(self.t, e.i64(p.delay)), e.i64(1))
            valid = b.and_(b.icmp_signed(">=", pt, e.i64(0)), b.icmp_signed("<", pt, self.T))
            with e.when(valid):
                typ = _ir_type(self.net.enc_dtype(src))
                row = b.gep(self.row[("enc", src)], [b.mul(pt, e.i64(size))], source_etype=typ)
                nz = e.var(I64, 0)
                with e.loop(0, size, "nz") as j:  # a vectorised count
                    x = e.load(row, j, typ)
                    ne = b.icmp_signed("!=", x, ir.Constant(typ, 0)) if isinstance(typ, ir.IntType) \
                        else b.fcmp_unordered("!=", x, ir.Constant(typ, 0.0))
                    b.store(b.add(b.load(nz, typ=I64), b.zext(ne, I64)), nz)
                yield row, typ, b.load(nz, typ=I64)
            return
        st = b.sub(self.t, e.i64(p.delay))
        with e.when(b.icmp_signed(">=", st, e.i64(0))):
            slot = self.ring_slot(src, st)
            cnt = b.sext(e.load(self.area[("ring_cnt", src)], slot, I32), I64)
            row = b.gep(self.area[("spk", src)], [b.mul(slot, e.i64(_spk_stride(src)))], source_etype=I8)
            yield row, I8, cnt

    def project_dense_rows(self, p: Op, pop: Op):
        """The dense kernel (:func:`dense_kernel`).  Integer: ``acc[o] += Σ_j w[o, j] · x[j]``,
        one dot product per target over the step's whole source vector, summed in i32 when the
        source emits 0 or 1 and no row can leave i32 (:func:`unit_bound`), else in i64 (into
        the side accumulator of an i32 population accumulator).  Float: for every source ``j``
        in increasing order ``acc[:] += w[:, j] · x[j]``, the event path's order of sums with
        the zero terms added too (exact), vectorised over targets."""
        e, b = self.e, self.e.b
        w = p.weight.data
        out, inp = w.shape
        unit = _unit_events(p)
        with self.source_vector(p) as (row, xt, events):
            b.store(b.add(b.load(self.synops, typ=I64), b.mul(events, e.i64(out))), self.synops)
            if not pop.bits:
                g, wt = self.weights(p, np.ascontiguousarray(w.T), "dense")
                into = self.area[("acc", pop)], F64
                with e.loop(0, inp, "j") as j:
                    x = self.widen(pop, e.load(row, j, xt), xt, F64)
                    wrow = b.gep(g, [b.mul(j, e.i64(out))], source_etype=wt)
                    with e.loop(0, out, "o") as o:
                        self.accumulate(pop, into, o, e.load(wrow, o, wt), wt, x)
                return
            if unit:
                self.dense_unit(p, pop, row, xt)
            else:
                self.dense_values(p, pop, row, xt)

    def _dot(self, g, wt, row, xt, n, st, unit: bool):
        """``Σ_{j<n} g[j] · row[j]`` in type ``st`` (``unit``: row holds 0 or 1, selected)."""
        e, b = self.e, self.e.b
        total = e.var(st, 0)
        with e.loop(0, n, "j") as j:
            wj = self.widen(None, e.load(g, j, wt), wt, st)
            x = e.load(row, j, xt)
            if unit:
                term = b.select(b.icmp_signed("!=", x, ir.Constant(xt, 0)), wj, ir.Constant(st, 0))
            else:
                term = b.mul(wj, self.widen(None, x, xt, st))
            b.store(b.add(b.load(total, typ=st), term), total)
        return b.load(total, typ=st)

    def _add_row_sum(self, pop: Op, into, o, total, st):
        e, b = self.e, self.e.b
        acc_p, acc_t = into
        old = e.load(acc_p, o, acc_t)
        e.store(b.add(old, self.widen(pop, total, st, acc_t)), acc_p, o, acc_t)

    def _madd_ok(self, p: Op, wd: np.ndarray) -> bool:
        """Whether the ``vpmaddubsw`` kernel applies: int8 weights, AVX2, at least one block."""
        return wd.dtype == np.int8 and "avx2" in AVX2_PROBE() and p.src.type.size >= 32

    def _dense_bytes(self, p: Op, pop: Op, g, row, into, xt=I8):
        """``acc[o] += Σ_j w[o, j] · x[j]`` for int8 weights ``g`` and bytes ``0 <= x <= 127``:
        32 synapses per ``vpmaddubsw`` (x as unsigned bytes times the signed weights, pairs
        summed to i16: at most 2·127·128 < 2**15, no saturation) and ``vpmaddwd`` (pairs to
        i32; the caller has checked that no row sum leaves i32)."""
        e, b = self.e, self.e.b
        out, inp = p.weight.shape
        blocks, tail = divmod(inp, 32)
        v32i8, v16i16, v8i32 = ir.VectorType(I8, 32), ir.VectorType(ir.IntType(16), 16), ir.VectorType(I32, 8)
        maddubs = self._intrinsic("llvm.x86.avx2.pmadd.ub.sw", v16i16, [v32i8, v32i8])
        maddwd = self._intrinsic("llvm.x86.avx2.pmadd.wd", v8i32, [v16i16, v16i16])
        reduce = self._intrinsic("llvm.vector.reduce.add.v8i32", I32, [v8i32])
        ones = ir.Constant(v16i16, [1] * 16)
        with e.loop(0, out, "o") as o:
            wrow = b.gep(g, [b.mul(o, e.i64(inp))], source_etype=I8)
            vacc = e.var(v8i32, ir.Constant(v8i32, [0] * 8))
            with e.loop(0, blocks, "blk") as k:
                off = b.mul(k, e.i64(32))
                wv = b.load(b.gep(wrow, [off], source_etype=I8), typ=v32i8, align=1)
                sv = b.load(b.gep(row, [off], source_etype=I8), typ=v32i8, align=1)
                pairs = b.call(maddubs, [sv, wv])
                b.store(b.add(b.load(vacc, typ=v8i32), b.call(maddwd, [pairs, ones])), vacc)
            total = b.call(reduce, [b.load(vacc, typ=v8i32)])
            if tail:
                base = e.i64(blocks * 32)
                rest = self._dot(b.gep(wrow, [base], source_etype=I8), I8, b.gep(row, [base], source_etype=I8),
                                 I8, tail, I32, False)
                total = b.add(total, rest)
            self._add_row_sum(pop, into, o, total, I32)

    def _weights_int(self, p: Op):
        wd = _int_weights(p)
        g, wt = self.e.const_array(wd, "dense")
        return wd, g, wt

    def dense_unit(self, p: Op, pop: Op, row, xt):
        """Integer dense kernel for sources of 0 or 1 (bytes): :meth:`_dense_bytes` with int8
        weights and AVX2, else a generic dot product (LLVM vectorises it)."""
        e, b = self.e, self.e.b
        out, inp = p.weight.shape
        wd, g, wt = self._weights_int(p)
        st = I32 if unit_bound(p) < 2**31 else I64
        into = self.target(pop, None)
        if st == I32 and self._madd_ok(p, wd):
            return self._dense_bytes(p, pop, g, row, into)
        with e.loop(0, out, "o") as o:
            wrow = b.gep(g, [b.mul(o, e.i64(inp))], source_etype=wt)
            self._add_row_sum(pop, into, o, self._dot(wrow, wt, row, xt, inp, st, True), st)

    def dense_values(self, p: Op, pop: Op, row, xt):
        """Integer dense kernel for sources of any values (spike counts, integer currents).
        The step's values are first narrowed (to bytes and to i16), noting their range; then,
        with ``Σ|w|`` the largest row sum (:func:`unit_bound`), the dot products run on bytes
        (:meth:`_dense_bytes`) when ``0 <= x <= 127`` and ``127 · Σ|w| < 2**31``, else on i16
        values in i32 when ``max |x| · Σ|w| < 2**31``, else on the i64 values in i64."""
        e, b = self.e, self.e.b
        out, inp = p.weight.shape
        wd, g, wt = self._weights_int(p)
        into = self.target(pop, True)
        bound = max(unit_bound(p), 1)
        limit = min(2**15 - 1, (2**31 - 1) // bound)
        use_bytes = self._madd_ok(p, wd) and 127 * bound < 2**31
        small = self.area[("xn", p)]
        tiny = b.gep(small, [e.i64(2 * inp)], source_etype=I8)  # the byte copy, after the i16 one
        big, notbyte = e.var(I64, 0), e.var(I64, 0)
        with e.loop(0, inp, "xn") as j:
            x = self.widen(None, e.load(row, j, xt), xt, I64)
            ax = b.select(b.icmp_signed("<", x, e.i64(0)), b.neg(x), x)  # |INT64_MIN| stays negative: unsigned test
            b.store(b.or_(b.load(big, typ=I64), b.zext(b.icmp_unsigned(">", ax, e.i64(limit)), I64)), big)
            e.store(b.trunc(x, I16), small, j, I16)
            if use_bytes:  # not in [0, 127]
                b.store(b.or_(b.load(notbyte, typ=I64), b.zext(b.icmp_unsigned(">", x, e.i64(127)), I64)), notbyte)
                e.store(b.trunc(x, I8), tiny, j, I8)

        def generic(values, vt, st):
            with e.loop(0, out, "o") as o:
                wrow = b.gep(g, [b.mul(o, e.i64(inp))], source_etype=wt)
                self._add_row_sum(pop, into, o, self._dot(wrow, wt, values, vt, inp, st, False), st)

        fits = b.icmp_signed("==", b.load(big, typ=I64), e.i64(0))
        with b.if_else(fits) as (narrow, wide):
            with narrow:
                if use_bytes:
                    with b.if_else(b.icmp_signed("==", b.load(notbyte, typ=I64), e.i64(0))) as (byte, short):
                        with byte:
                            self._dense_bytes(p, pop, g, tiny, into)
                        with short:
                            generic(small, I16, I32)
                else:
                    generic(small, I16, I32)
            with wide:
                generic(row, xt, I64)

    def _intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        if name in self.module.globals:
            return self.module.globals[name]
        return ir.Function(self.module, ir.FunctionType(ret, args), name=name)

    def project_one_to_one(self, p: Op, pop: Op, acc):
        e = self.e
        shape = p.src.type.shape
        data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
        g, wt = self.weights(p, np.broadcast_to(data, shape).reshape(-1), "o2o")
        self.events(p, pop, lambda j, x: self.accumulate(pop, self.target(pop, x), j, e.load(g, j, wt), wt, x))

    def project_sparse(self, p: Op, pop: Op, acc):
        e, b = self.e, self.e.b
        indptr = p.indptr.data
        ip_t = np.int32 if indptr[-1] < 2**31 else np.int64
        ip, ipt = e.const_array(indptr.astype(ip_t), "indptr")
        table, bits, wt = synapse_table(p)
        g, gt = e.const_array(table, "synapses")

        def body(j, x):
            lo = b.sext(e.load(ip, j, ipt), I64)
            hi = b.sext(e.load(ip, b.add(j, e.i64(1)), ipt), I64)
            b.store(b.add(b.load(self.synops, typ=I64), b.sub(hi, lo)), self.synops)
            into = self.target(pop, x)
            with e.loop(lo, hi, "s") as s:
                if bits:  # one word: weight << bits | target
                    word = e.load(g, s, gt)
                    target = b.zext(b.and_(word, ir.Constant(gt, (1 << bits) - 1)), I64)
                    w = b.ashr(word, ir.Constant(gt, bits))
                else:  # (target, weight) side by side: one cache line serves both
                    s2 = b.shl(s, e.i64(1))
                    target = e.load(g, s2, gt)
                    target = b.sext(target, I64) if gt != I64 else target
                    w = e.load(g, b.add(s2, e.i64(1)), gt)
                    w = b.bitcast(w, wt) if wt != gt else w
                self.accumulate(pop, into, target, w, wt, x)

        self.events(p, pop, body, counted=True)

    def _window_targets(self, j, src_shape, kernel, strides, pads, dils, out_hw, scale, visit):
        """For source cell ``j`` of ``[C, H, W]``: call ``visit(c, k, o)`` for each output
        cell whose window covers it, with ``k = (ky · kw + kx) · scale[0]`` (the kernel cell)
        and ``o = (oy · OW + ox) · scale[1]`` (the output cell, in its channel's plane).

        One table (:func:`window_table`) lists these pairs per source position ``(y, x)``:
        one loop per event, with no tests that strides would make unpredictable and no
        arithmetic on coordinates (a table per axis, looped over in two nested loops with
        the offsets computed per pair, cost W2 a tenth of its time in its pooling layer)."""
        e, b = self.e, self.e.b
        C, H, W = src_shape
        starts, pairs = window_table((H, W), kernel, strides, pads, dils, out_hw, scale)
        c = b.udiv(j, e.i64(H * W))  # j >= 0: unsigned division by a constant is cheapest
        pos = b.sub(j, b.mul(c, e.i64(H * W)))
        counts = np.diff(starts)
        if counts.max(initial=0) <= 1:  # windows that do not overlap (pooling): no loop
            single = np.full((H * W, 2), -1, dtype=np.int32)
            single[counts == 1] = pairs[:int(starts[-1])]
            gp = e.const_array(single, "wsingle")[0]
            o = b.sext(e.load(gp, b.add(b.shl(pos, e.i64(1)), e.i64(1)), I32), I64)
            with e.when(b.icmp_signed(">=", o, e.i64(0))):
                visit(c, b.sext(e.load(gp, b.shl(pos, e.i64(1)), I32), I64), o)
            return
        gs = e.const_array(starts, "wstart")[0]
        gp = e.const_array(pairs, "wpairs")[0]
        lo = b.sext(e.load(gs, pos, I32), I64)
        hi = b.sext(e.load(gs, b.add(pos, e.i64(1)), I32), I64)
        with e.loop(lo, hi, "win") as a:
            a2 = b.shl(a, e.i64(1))
            visit(c, b.sext(e.load(gp, a2, I32), I64), b.sext(e.load(gp, b.add(a2, e.i64(1)), I32), I64))

    def project_conv2d(self, p: Op, pop: Op, acc):
        """Each event adds, per kernel cell, the weights of its input channel to the output
        channels of the cell it reaches, in a channel-last private accumulator; flushed after
        the step.  With a halo (:func:`conv_halo`) every kernel cell lands inside the
        accumulator, so an event is straight-line code: per kernel cell, whole vectors of
        channels at constant offsets from the event's first cell (one table load per event).
        Otherwise the cells come from the window table (:meth:`_window_targets`)."""
        e, b = self.e, self.e.b
        w = p.weight.data
        O, cg, kh, kw = w.shape
        groups = p.groups
        og = O // groups
        OH, OW = _conv_out(p)
        C, H, W = p.src.type.shape
        # [c_in_group, kh, kw, O]: one event walks contiguous output channels per kernel cell
        pacc, pt, touched = self.private(p, pop)  # channel-last [OH, OW, O] (with a halo: [OHp, OWp, O])
        halo = conv_halo(p, self.lay.private[p])
        wide = {I16: np.int16, I32: np.int32}.get(pt)
        if wide is not None and (halo or w.size * pt.width // 8 <= CONV_WIDE_WEIGHTS):  # no sign extension per add
            g, wt = self.e.const_array(_int_weights(p).transpose(1, 2, 3, 0).astype(wide), "conv")
        else:
            g, wt = self.weights(p, np.ascontiguousarray(w.transpose(1, 2, 3, 0)), "conv")

        def group_of(c):
            if groups == 1:
                return e.i64(0), c
            return b.udiv(c, e.i64(cg)), b.urem(c, e.i64(cg))

        if halo:
            hy, hx, _, OWp = halo
            dy, dx = p.dilations
            V = 256 // pt.width
            vt = ir.VectorType(pt, V)
            ys, xs = np.divmod(np.arange(H * W), W)  # the event's cell for kernel cell (0, 0), · O
            hbase = e.const_array((((ys + p.pads[0] + hy) * OWp + xs + p.pads[1] + hx) * O).astype(np.int32),
                                  "hbase")[0]

            def body(j, x):  # x is None: an i16/i32 private accumulator takes only 0/1 events
                b.store(ir.Constant(I8, 1), touched)
                c = b.udiv(j, e.i64(H * W))  # j >= 0: unsigned division by a constant is cheapest
                base = b.sext(e.load(hbase, b.sub(j, b.mul(c, e.i64(H * W))), I32), I64)
                grp, ci = group_of(c)
                wfirst = b.add(b.mul(ci, e.i64(kh * kw * O)), b.mul(grp, e.i64(og)))
                first = b.add(base, b.mul(grp, e.i64(og)))
                for ky in range(kh):
                    for kx in range(kw):
                        wk = b.add(wfirst, e.i64((ky * kw + kx) * O))
                        ok = b.sub(first, e.i64((ky * dy * OWp + kx * dx) * O))
                        for q in range(og // V):
                            wv = b.load(b.gep(g, [b.add(wk, e.i64(q * V))], source_etype=wt), typ=ir.VectorType(wt, V),
                                        align=1)
                            wv = wv if wt == pt else b.sext(wv, vt)
                            ptr = b.gep(pacc, [b.add(ok, e.i64(q * V))], source_etype=pt)
                            b.store(b.add(b.load(ptr, typ=vt, align=2), wv), ptr, align=2)

            self.events(p, pop, body)
            self.flush(pop, acc, (pacc, pt, touched), O * OH * OW, OH * OW, first=self.first_current,
                       halo=(OW, OWp, hy * OWp + hx))
            return

        def body(j, x):
            b.store(ir.Constant(I8, 1), touched)

            def visit(c, k, o):  # k: kernel cell · O, o: output cell · O (channel-last)
                grp, ci = group_of(c)
                wfirst = b.add(b.add(b.mul(ci, e.i64(kh * kw * O)), k), b.mul(grp, e.i64(og)))
                first = b.add(o, b.mul(grp, e.i64(og)))
                with e.loop(0, og, "oc") as oc:
                    self.accumulate(pop, (pacc, pt), b.add(first, oc), e.load(g, b.add(wfirst, oc), wt), wt, x)

            self._window_targets(j, p.src.type.shape, (kh, kw), p.strides, p.pads, p.dilations, (OH, OW),
                                 (O, O), visit)

        self.events(p, pop, body)
        self.flush(pop, acc, (pacc, pt, touched), O * OH * OW, OH * OW, first=self.first_current)

    def project_pool(self, p: Op, pop: Op, acc):
        if p in self.lay.dense:
            return self.project_pool_rows(p, pop)
        e, b = self.e, self.e.b
        C = p.src.type.shape[0]
        OH, OW = _pool_out(p)
        data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
        g, wt = self.weights(p, np.broadcast_to(data, (C, OH, OW)).reshape(-1), "pool")

        def body(j, x):
            def visit(c, k, o):
                target = b.add(b.mul(c, e.i64(OH * OW)), o)
                self.accumulate(pop, self.target(pop, x), target, e.load(g, target, wt), wt, x)

            self._window_targets(j, p.src.type.shape, p.kernel, p.strides, p.pads, (1, 1), (OH, OW), (0, 1), visit)

        self.events(p, pop, body)

    def project_pool_rows(self, p: Op, pop: Op):
        """A pool without overlaps or pads (:func:`dense_pool`) from its source's byte spike
        vector, 8 outputs of a row at a time (then the row's rest as one shorter vector): per
        window row, the bytes the outputs cover are loaded at once and the window's columns
        picked out by shuffles and summed; the sums times the weight are added into the
        accumulator.  The synaptic operations are the summed spikes (a covered spike drives
        exactly one target)."""
        e, b = self.e, self.e.b
        C, H, W = p.src.type.shape
        OH, OW = _pool_out(p)
        (ky, kx), (sy, sx) = p.kernel, p.strides
        data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
        wd = np.broadcast_to(np.asarray(data, np.int64) << p.exponent, (C, OH, OW)).reshape(-1)
        acc, acc_t = self.target(pop, None)
        uniform = bool(wd.size) and bool(np.all(wd == wd[0]))
        table = None if uniform else self.e.const_array(wd.astype(_narrow_int(wd)), "pool")

        def chunk(first, out, ox0, V):
            """Outputs ``ox0 .. ox0+V-1`` of the row whose first window starts at ``first``."""
            vi, va = ir.VectorType(I32, V), ir.VectorType(acc_t, V)
            nbytes = (V - 1) * sx + kx  # the last window's last column: inside the row
            at = b.add(first, b.mul(ox0, e.i64(sx)))
            total = None
            for dy in range(ky):
                ptr = b.gep(row, [b.add(at, e.i64(dy * W))], source_etype=I8)
                raw = b.load(ptr, typ=ir.VectorType(I8, nbytes), align=1)
                for dx in range(kx):
                    lanes = b.shuffle_vector(raw, ir.Constant(raw.type, None),
                                             ir.Constant(ir.VectorType(I32, V), [dx + i * sx for i in range(V)]))
                    x = b.zext(lanes, vi)
                    total = x if total is None else b.add(total, x)
            red = self._intrinsic(f"llvm.vector.reduce.add.v{V}i32", I32, [vi])
            b.store(b.add(b.load(covered, typ=I32), b.call(red, [total])), covered)
            o = b.add(out, ox0)
            if uniform:
                w = ir.Constant(va, [int(wd[0])] * V)
            else:
                wv = b.load(b.gep(table[0], [o], source_etype=table[1]), typ=ir.VectorType(table[1], V), align=1)
                w = wv if table[1] == acc_t else b.sext(wv, va)
            term = b.mul(total if acc_t == I32 else b.sext(total, va), w)
            ptr = b.gep(acc, [o], source_etype=acc_t, inbounds=True)
            b.store(b.add(b.load(ptr, typ=va, align=4), term), ptr, align=4)

        with self.source_vector(p) as (row, _typ, cnt):
            with e.when(b.icmp_signed(">", cnt, e.i64(0))):
                covered = e.var(I32, 0)
                with e.loop(0, C * OH, "prow") as r:  # r = c · OH + oy
                    c = b.udiv(r, e.i64(OH))
                    first = b.add(b.mul(c, e.i64(H * W)), b.mul(b.sub(r, b.mul(c, e.i64(OH))), e.i64(sy * W)))
                    out = b.mul(r, e.i64(OW))
                    if OW >= 8:
                        with e.loop(0, OW // 8, "pcol") as q:
                            chunk(first, out, b.mul(q, e.i64(8)), 8)
                    if OW % 8:
                        chunk(first, out, e.i64(OW // 8 * 8), OW % 8)
                b.store(b.add(b.load(self.synops, typ=I64), b.zext(b.load(covered, typ=I32), I64)), self.synops)

    def reset_gates(self):
        """Zero the running counts (and delivered values) of every ``maxgate`` projection: a
        sample's run starts from no counts (:func:`nmc.semantics.project`)."""
        e = self.e
        for p in self.net.projections:
            if p.kind != "maxgate":
                continue
            with e.loop(0, p.src.type.size, "greset") as j:
                for area in ("gcount", "gval"):
                    e.store(e.i64(0), self.area[(area, p)], j, I64)  # all-zero bits: 0 and 0.0

    def project_maxgate(self, p: Op, pop: Op, acc):
        """The max-pool gate (:class:`nmc.ir.snn.Project`, kind ``maxgate``), as
        :func:`nmc.semantics.project` computes it: each event adds its value to its source's
        running count and notes it in ``gval``; if there were any, each output cell scans its
        window in row-major order for the real cell of the largest count (strictly larger
        replaces, so ties keep the first) and receives ``weight · gval[winner]``; then the
        events clear their ``gval`` entries again.  Counts and values are i64 (f64 in float
        graphs), summed in the reference's order (one addition per delivery)."""
        e, b = self.e, self.e.b
        C, H, W = p.src.type.shape
        OH, OW = _pool_out(p)
        kh, kw = p.kernel
        sh, sw = p.strides
        ph, pw = p.pads[0], p.pads[1]
        data = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
        g, wt = self.weights(p, np.broadcast_to(data, (C, OH, OW)).reshape(-1), "maxgate")
        ct = self.acc_type(pop)
        integer = bool(pop.bits)
        counts = self.area[("gcount", p)]
        vals = self.area[("gval", p)]
        one = ir.Constant(ct, 1 if integer else 1.0)
        zero = ir.Constant(ct, 0 if integer else 0.0)
        touched = e.var(I8, 0)
        unit = _unit_events(p)

        def deliver(j, x):
            b.store(ir.Constant(I8, 1), touched)
            value = one if x is None else x
            old = e.load(counts, j, ct)
            e.store(b.add(old, value) if integer else b.fadd(old, value), counts, j, ct)
            e.store(value, vals, j, ct)

        self.events(p, pop, deliver)
        with e.when(b.icmp_unsigned("!=", b.load(touched, typ=I8), ir.Constant(I8, 0))):
            best = e.var(ct, zero)
            win = e.var(I64, -1)
            with e.loop(0, C, "gc") as c:
                with e.loop(0, OH, "goy") as oy:
                    with e.loop(0, OW, "gox") as ox:
                        b.store(e.i64(-1), win)
                        y0 = b.sub(b.mul(oy, e.i64(sh)), e.i64(ph))
                        x0 = b.sub(b.mul(ox, e.i64(sw)), e.i64(pw))
                        with e.loop(0, kh, "gky") as ky:
                            y = b.add(y0, ky)
                            with e.when(b.and_(b.icmp_signed(">=", y, e.i64(0)), b.icmp_signed("<", y, e.i64(H)))):
                                with e.loop(0, kw, "gkx") as kx:
                                    x = b.add(x0, kx)
                                    inside = b.and_(b.icmp_signed(">=", x, e.i64(0)), b.icmp_signed("<", x, e.i64(W)))
                                    with e.when(inside):  # pad cells never win
                                        j = b.add(b.mul(b.add(b.mul(c, e.i64(H)), y), e.i64(W)), x)
                                        cnt = e.load(counts, j, ct)
                                        larger = b.icmp_signed(">", cnt, b.load(best, typ=ct)) if integer \
                                            else b.fcmp_ordered(">", cnt, b.load(best, typ=ct))
                                        first = b.icmp_signed("<", b.load(win, typ=I64), e.i64(0))
                                        with e.when(b.or_(first, larger)):
                                            b.store(cnt, best)
                                            b.store(j, win)
                        w_idx = b.load(win, typ=I64)
                        with e.when(b.icmp_signed(">=", w_idx, e.i64(0))):
                            value = e.load(vals, w_idx, ct)
                            nz = b.icmp_signed("!=", value, zero) if integer else b.fcmp_unordered("!=", value, zero)
                            with e.when(nz):
                                target = b.add(b.mul(b.add(b.mul(c, e.i64(OH)), oy), e.i64(OW)), ox)
                                x = None if unit else value
                                self.accumulate(pop, self.target(pop, x), target, e.load(g, target, wt), wt, x)
            self.events(p, pop, lambda j, x: e.store(zero, vals, j, ct), counted=True)

    # -- neuron update ---------------------------------------------------------------------------

    def decay(self, pop: Op, x, d, dconst):
        """``decay(x, d)`` of docs/design.md §5; ``dconst`` is d's value when it is one for all neurons."""
        b = self.e.b
        if pop.bits:
            if dconst == 0:
                return x
            if dconst == DECAY_ONE:
                return ir.Constant(x.type, 0)
            neg = b.icmp_signed("<", x, ir.Constant(x.type, 0))
            ax = b.select(neg, b.neg(x), x)
            keep = b.sub(ir.Constant(x.type, DECAY_ONE), d)
            if pop.bits <= 32:
                # |x| <= 2**31 and keep <= 4096: a 32 x 32 -> 64-bit unsigned product is exact
                # (one vpmuludq instead of an emulated 64-bit vector multiply)
                t32 = I32 if not isinstance(x.type, ir.VectorType) else ir.VectorType(I32, x.type.count)
                ax, keep = (b.zext(b.trunc(z, t32), x.type) for z in (ax, keep))
            m = b.lshr(b.mul(ax, keep), ir.Constant(x.type, 12))
            return b.select(neg, b.neg(m), m)
        keep = b.fsub(ir.Constant(x.type, float(DECAY_ONE)), d)
        return b.fdiv(b.fmul(x, keep), ir.Constant(x.type, float(DECAY_ONE)))

    def saturate(self, pop: Op, x):
        b = self.e.b
        lo, hi = ir.Constant(x.type, -(1 << (pop.bits - 1))), ir.Constant(x.type, (1 << (pop.bits - 1)) - 1)
        x = b.select(b.icmp_signed("<", x, lo), lo, x)
        return b.select(b.icmp_signed(">", x, hi), hi, x)

    def neurons(self, pop: Op, acc, params, i, width: int):
        """Advance neurons ``i .. i+width-1`` (explicit vectors when ``width > 1``); returns
        their spikes (i1 or <width x i1>).  Integer populations compute in i64, or in i32
        lanes (twice as many per vector) when :func:`lanes32` allows it."""
        b = self.e.b
        narrow = lanes32(pop)
        acc_t = I32 if narrow else self.acc_type(pop)
        vt = acc_t if width == 1 else ir.VectorType(acc_t, width)

        def vec(typ):
            return typ if width == 1 else ir.VectorType(typ, width)

        def ld(base, typ=acc_t):
            """Load ``width`` values of ``typ``, widened to the lane type."""
            x = b.load(b.gep(base, [i], source_etype=typ, inbounds=True), typ=vec(typ), align=4)
            return x if typ == acc_t else b.sext(x, vt)

        def st(value, base, typ=acc_t):
            value = value if value.type == vec(typ) else b.trunc(value, vec(typ))
            b.store(value, b.gep(base, [i], source_etype=typ, inbounds=True), align=4)

        def get(name):
            const, table = params[name]
            return ir.Constant(vt, const) if const is not None else ld(table[0], table[1])

        def decay(x, name):
            if not narrow or params[name][0] in (0, DECAY_ONE):
                return self.decay(pop, x, get(name), params[name][0])
            wide = vec(I64)  # |x| · (4096 - d) needs more than 32 bits
            return b.trunc(self.decay(pop, b.sext(x, wide), b.sext(get(name), wide), params[name][0]), vt)

        state_t = _ir_type(state_dtype(pop))
        acc_st = self.acc_store_type(pop)
        u_row, v_row, count_row = self.row[("u", pop)], self.row[("v", pop)], self.row[("count", pop)]
        current = b.load(b.gep(acc, [i], source_etype=acc_st, inbounds=True),
                         typ=vec(acc_st), align=4)
        if narrow:  # clamped to ±2**30: sat(decay(u) + I) is the same (see lanes32)
            lo, hi = ir.Constant(current.type, -2**30), ir.Constant(current.type, 2**30)
            current = b.select(b.icmp_signed(">", current, hi), hi, current)
            current = b.select(b.icmp_signed("<", current, lo), lo, current)
            current = current if acc_st == I32 else b.trunc(current, vt)
        elif acc_st != acc_t:
            current = b.sext(current, vt)
        u = self.add(pop, decay(ld(u_row, state_t), "du"), current)
        if pop.bits:
            u = self.saturate(pop, u)
        dv = decay(ld(v_row, state_t), "dv")
        v = self.add(pop, self.add(pop, dv, u), get("bias"))
        if pop.bits:
            v = self.saturate(pop, v)
        theta = get("threshold")
        fired = b.icmp_signed(">", v, theta) if pop.bits else b.fcmp_ordered(">", v, theta)
        after = (b.sub(v, theta) if pop.bits else b.fsub(v, theta)) if pop.reset == "subtract" \
            else ir.Constant(vt, 0)
        st(u, u_row, state_t)
        st(b.select(fired, after, v), v_row, state_t)
        if pop not in self.overwritten:  # the accumulator is clear for the next step
            st(ir.Constant(vec(acc_st), 0), acc, acc_st)
        count_t = _ir_type(COUNT_DTYPE)
        count = b.load(b.gep(count_row, [i], source_etype=count_t, inbounds=True), typ=vec(count_t), align=4)
        st(b.add(count, b.zext(fired, vec(count_t))), count_row, count_t)
        return fired

    def update(self, pop: Op, acc):
        """Advance every neuron of ``pop`` (8 at a time, then the rest) and list its spikes
        into this step's ring slot as it goes, in increasing order (:meth:`list8`), recording
        them when the run records ``pop``."""
        e, b = self.e, self.e.b
        size = pop.result.type.size
        params = {}
        for name in ("threshold", "bias", "du", "dv"):
            const, table = self.param(pop, name)
            params[name] = (None if const is None else const.constant, table)
        width = 8
        nvec, rest = divmod(size, width)
        slot = self.ring_slot(pop, self.t)
        spk = None
        if pop in self.lay.spike_rows:  # this step's byte spike vector, for dense kernels
            spk = b.gep(self.area[("spk", pop)], [b.mul(slot, e.i64(_spk_stride(pop)))], source_etype=I8)
        lst = b.gep(self.area[("ring_idx", pop)], [b.mul(slot, e.i64(_list_stride(pop)))], source_etype=I32)
        recording = b.icmp_unsigned("!=", self.buf[self.lay.slot("rec", pop)], ir.Constant(PTR, None))
        rec_step = b.gep(self.row[("rec", pop)], [b.mul(self.t, e.i64(size))], source_etype=I8)
        lut = e.const_array(SPIKE_LUT, "spikelut")[0]
        nfired = e.var(I64, 0)
        vt = ir.VectorType(I8, width)
        with e.loop(0, nvec, "nu") as k:
            first = b.mul(k, e.i64(width))
            fired = self.neurons(pop, acc, params, first, width)
            self.list8(lut, lst, nfired, b.bitcast(fired, I8), first)
            if spk is not None:
                b.store(b.zext(fired, vt), b.gep(spk, [first], source_etype=I8, inbounds=True), align=1)
            with e.when(recording):
                b.store(b.zext(fired, vt), b.gep(rec_step, [first], source_etype=I8, inbounds=True), align=1)
        if rest:  # one scalar copy in a loop, not one per neuron (compile time)
            bits = e.var(I8, 0)
            with e.loop(nvec * width, size, "nt") as i:
                fired = self.neurons(pop, acc, params, i, 1)
                r = b.trunc(b.sub(i, e.i64(nvec * width)), I8)
                b.store(b.or_(b.load(bits, typ=I8), b.shl(b.zext(fired, I8), r)), bits)
                if spk is not None:
                    e.store(b.zext(fired, I8), spk, i, I8)
                with e.when(recording):
                    e.store(b.zext(fired, I8), rec_step, i, I8)
            self.list8(lut, lst, nfired, b.load(bits, typ=I8), e.i64(nvec * width))
        e.store(b.trunc(b.load(nfired, typ=I64), I32), self.area[("ring_cnt", pop)], slot, I32)

    def list8(self, lut, lst, nfired, bits, first):
        """Append the neurons ``first + i`` for the set bits ``i`` of the i8 ``bits`` to the
        spike list ``lst`` at ``nfired``, without branches: the 8 indices of the set bits
        (:data:`SPIKE_LUT`) plus ``first`` are stored as one vector, and ``nfired`` advances
        by their number.  Lanes past them are overwritten by the next call, or lie past the
        list's count; ``nfired <= first`` keeps every store in the slot's
        :func:`_list_stride` entries."""
        e, b = self.e, self.e.b
        vi = ir.VectorType(I32, 8)
        m = b.zext(bits, I64)
        idx = b.load(b.gep(lut, [b.shl(m, e.i64(3))], source_etype=I8), typ=ir.VectorType(I8, 8), align=1)
        base = b.insert_element(ir.Constant(vi, None), b.trunc(first, I32), ir.Constant(I32, 0))
        base = b.shuffle_vector(base, ir.Constant(vi, None), ir.Constant(vi, [0] * 8))
        n = b.load(nfired, typ=I64)
        b.store(b.add(b.zext(idx, vi), base), b.gep(lst, [n], source_etype=I32), align=4)
        b.store(b.add(n, b.ctpop(m)), nfired)

    @contextmanager
    def set_bits(self, word, base):
        """The body runs for each set bit of the i64 ``word``, in increasing order, with
        ``base`` + the bit's index: ``while (m) { i = base + ctz(m); ...; m &= m - 1; }``, 64
        candidates per test, so that the branch on an empty word is rare and predictable."""
        e, b = self.e, self.e.b
        pre = b.block
        head = self.fn.append_basic_block("bits.head")
        body = self.fn.append_basic_block("bits.body")
        done = self.fn.append_basic_block("bits.end")
        b.branch(head)
        b.position_at_end(head)
        m = b.phi(I64)
        m.add_incoming(word, pre)
        b.cbranch(b.icmp_unsigned("!=", m, e.i64(0)), body, done)
        b.position_at_end(body)
        yield b.add(base, b.cttz(m, ir.Constant(ir.IntType(1), 1)))
        m.add_incoming(b.and_(m, b.sub(m, e.i64(1))), b.block)
        b.branch(head)
        b.position_at_end(done)


#: For each byte ``m``, the indices of its set bits in increasing order, padded to 8 with 0
#: (:meth:`_Lowering.list8`).
SPIKE_LUT = np.array([[i for i in range(8) if m >> i & 1] + [0] * (8 - bin(m).count("1")) for m in range(256)],
                     dtype=np.int8)


def _list_stride(pop: Op) -> int:
    """Entries per step in ``pop``'s ring of spike lists: its size rounded up to whole groups
    of 8, so that :meth:`_Lowering.list8`'s vector stores stay in the slot."""
    return (pop.result.type.size + 7) // 8 * 8


def window_table(hw, kernel, strides, pads, dils, out_hw, scale=(1, 1)) -> tuple[np.ndarray, np.ndarray]:
    """For each source position ``y · W + x`` of a ``[H, W]`` plane, the output cells whose
    window covers it, as CSR arrays ``(starts [H·W + 1], pairs [n, 2])`` of i32: pair
    ``((ky · kw + kx) · scale[0], (oy · OW + ox) · scale[1])`` for kernel offset ``(ky, kx)``
    and output cell ``(oy, ox)``, ``y = oy · stride - pad + ky · dilation`` (likewise x), in
    increasing ``(ky, kx)`` order."""
    H, W = hw
    pos, kcell, ocell = [], [], []
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            ty = np.arange(H) + pads[0] - ky * dils[0]  # oy · stride for source row y
            tx = np.arange(W) + pads[1] - kx * dils[1]
            oky = (ty >= 0) & (ty % strides[0] == 0) & (ty // strides[0] < out_hw[0])
            okx = (tx >= 0) & (tx % strides[1] == 0) & (tx // strides[1] < out_hw[1])
            y, x = np.nonzero(oky[:, None] & okx[None, :])
            pos.append(y * W + x)
            kcell.append(np.full(y.size, (ky * kernel[1] + kx) * scale[0]))
            ocell.append((ty[y] // strides[0] * out_hw[1] + tx[x] // strides[1]) * scale[1])
    pos, kcell, ocell = (np.concatenate(v).astype(np.int64) for v in (pos, kcell, ocell))
    order = np.argsort(pos, kind="stable")  # by position, then kernel cell
    starts = np.zeros(H * W + 1, dtype=np.int64)
    np.cumsum(np.bincount(pos, minlength=H * W), out=starts[1:])
    table = np.stack([kcell[order], ocell[order]], axis=1) if pos.size else np.zeros((1, 2), np.int64)
    if starts[-1] >= 2**31 or table.max(initial=0) >= 2**31:
        raise NmcError("a convolution or pooling window table does not fit i32 offsets")
    return starts.astype(np.int32), table.astype(np.int32)


def _conv_out(p: Op) -> tuple[int, int]:
    """Output height and width of a conv2d projection (its flat order is [O, OH, OW])."""
    H, W = p.src.type.shape[1:]
    kh, kw = p.weight.shape[2:]
    return (pooled_size(H, kh, p.strides[0], p.pads[0], p.pads[2], p.dilations[0], False),
            pooled_size(W, kw, p.strides[1], p.pads[1], p.pads[3], p.dilations[1], False))


def _pool_out(p: Op) -> tuple[int, int]:
    H, W = p.src.type.shape[1:]
    return (pooled_size(H, p.kernel[0], p.strides[0], p.pads[0], p.pads[2], 1, False),
            pooled_size(W, p.kernel[1], p.strides[1], p.pads[1], p.pads[3], 1, False))


def lower(net: Network, kernels: str = "auto", schedule: str = "auto") -> tuple[ir.Module, Layout, dict[str, np.ndarray]]:
    """The LLVM module running ``net``, the layout of its buffers, and the contents of the
    external constants it declares (symbol → bytes); ``kernels`` and ``schedule`` as for
    :func:`plan`."""
    lay = plan(net, kernels, schedule)
    lowering = _Lowering(net, lay)
    return lowering.lower(), lay, lowering.e.external

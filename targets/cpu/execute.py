"""Running a compiled network on a batch: host encoding, buffers, threads (docs/design.md §5, §7).

The host does what it does for every backend — binds inputs, evaluates the ``ann`` ops before
and after the network with :func:`nmc.semantics.eval_op`, encodes input with
:func:`nmc.semantics.encode` — and the compiled function runs projections and populations.
Samples are split into contiguous ranges, one per thread; each thread calls the compiled code
through ctypes (which releases the GIL) with its own scratch area, so results do not depend on
the number of threads.
"""

from __future__ import annotations

import ctypes
import os
import threading
import time
from collections.abc import Sequence

import numpy as np

from nmc import semantics
from nmc.ir.core import Graph, Op, param_array
from nmc.runner import RunResult, population_names

from .jit import Compiled
from .plan import BARRIER_WORDS, COUNT_DTYPE, PARTS, SKIPPED, Layout, Network, needs_step_rerun, state_dtype
from .tables import aligned_empty

_SIGNATURE = ctypes.CFUNCTYPE(None, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64,
                              ctypes.c_int64, ctypes.c_int64)


def default_threads() -> int:
    return max(1, min(len(os.sched_getaffinity(0)), 64))


def host_plan(net: Network) -> dict:
    """What the host side of every run needs that depends only on the graph (worked out once,
    and kept with a prepared executor, :mod:`.prepared`): ``trains`` (inputs with a time
    axis), ``pre``/``post`` (ann ops before and after the network), ``extra_steps`` (steps =
    T + extra_steps), ``v0`` (initial voltages by population) and ``names`` (of populations)."""
    graph = net.graph
    pre, post = split_host(graph)
    return {"trains": semantics.train_inputs(graph), "pre": pre, "post": post,
            "extra_steps": semantics.latency_steps(graph, 1) - 1,
            "v0": {pop: param_array(pop.v0, pop.result.type.shape, np.int64 if pop.bits else np.float64)
                   .reshape(-1).astype(state_dtype(pop)) for pop in net.populations},
            "names": {p: p.result.name or f"population{i}" for i, p in enumerate(net.populations)}}


def split_host(graph: Graph) -> tuple[list[Op], list[Op]]:
    """The ann ops before the network and those reading decoded outputs, as
    :func:`nmc.semantics.split_host` gives them, without networkx (its import was 0.25 s of a
    start): an op is downstream when one of its operands is a decode's result or a
    downstream op's."""
    reached = {id(d.result) for d in graph.walk("snn.decode")}
    downstream: set[Op] = set()
    changed = True
    while changed:  # one pass in program order, a second to confirm
        changed = False
        for op in graph.ops:
            if op not in downstream and any(id(v) in reached for v in op.operands):
                downstream.add(op)
                if op.result is not None:
                    reached.add(id(op.result))
                changed = True
    ann = [op for op in graph.ops if op.dialect == "ann"]
    return [op for op in ann if op not in downstream], [op for op in ann if op in downstream]


class Executor:
    """``execute(inputs, timesteps=None, record=None) -> RunResult`` for one compiled graph.

    Everything that depends only on the graph (host op lists, latency, initial voltages) is
    worked out once here, so that a call costs little more than the compiled code."""

    def __init__(self, net: Network, layout: Layout, compiled: Compiled, threads: int | None = None,
                 step_version=None, host: dict | None = None, unsplit_version=None):
        self.net, self.layout, self.compiled = net, layout, compiled
        self.fn = _SIGNATURE(compiled.address)
        self.threads = threads
        # samples a layer-scheduled function skips (plan.needs_step_rerun) run again by the
        # step schedule: ``step_version()`` compiles it, once, when the first such sample comes
        self._step_version, self._step = step_version, None
        self._step_lock = threading.Lock()
        # a split network's samples not shared by threads run unsplit (each event one row, no
        # parts in turn): ``unsplit_version()`` compiles that function, once, when first needed
        self._unsplit_version = unsplit_version if layout.parts else None
        self._unsplit = None
        self._lockstep = LockstepChoice()
        self.host = host if host is not None else host_plan(net)
        self.trains, self.pre, self.post = self.host["trains"], self.host["pre"], self.host["post"]
        self.extra_steps, self.v0, self.names = self.host["extra_steps"], self.host["v0"], self.host["names"]

    def encode(self, host: dict, T: int, batch: int) -> tuple[dict, list]:
        """Encoder values ``[N, T, size]`` per encoder (what it emits for each presentation
        step), and the fills still owed: ``fill(n0, n1)`` writes samples ``n0 <= n < n1`` of
        a rate encoder's array (:func:`rate_trains`), run by each thread for its own samples."""
        out, fills = {}, []
        state: dict = {}
        for e in self.net.encoders:
            dtype = self.net.enc_dtype(e)
            if e.encoding == "spikes":  # semantics.encode's cast, for all steps at once
                trains = host[e.x][:, :T].reshape(batch, T, -1)
                out[e] = unit_floats(trains) if e in self.layout.raw else trains.astype(dtype)
                continue
            if e.encoding == "rate":
                fill = rate_trains(host[e.x].reshape(batch, -1), T, dtype, e.phase)
                if fill is not None:
                    out[e], f = fill
                    fills.append(f)
                    continue
            arr = np.empty((batch, T, e.result.type.size), dtype=dtype)
            for t in range(T):
                arr[:, t] = semantics.encode(e, host[e.x], t, T, state, self.net.integer_enc[e])
            out[e] = arr
        return out, fills

    def __call__(self, inputs: Sequence[np.ndarray], timesteps: int | None = None, record: str | None = None,
                 threads: int | None = None) -> RunResult:
        graph = self.net.graph
        host, batch = semantics.bind_inputs(graph, inputs, self.trains)
        semantics.host_ops(graph, host, self.pre, batch)
        T = semantics.resolve_timesteps(graph, self.net.encoders, host, timesteps)
        steps = T + self.extra_steps
        encoded, fills = self.encode(host, T, batch)
        recorded_pops = set(population_names(graph, record))

        arrays: list[np.ndarray | None] = []
        state = {}
        for kind, op in self.layout.slots:
            if kind == "enc":
                a = encoded[op]
            elif kind == "synops":
                a = np.zeros(batch, dtype=np.int64)
            elif kind == "barrier":  # shared by the threads of a split sample (plan.split_parts)
                a = line_aligned((BARRIER_WORDS,), np.int64)
            elif kind in ("u", "v", "count"):  # a split sample's rows start on a cache line
                dtype = COUNT_DTYPE if kind == "count" else state_dtype(op)
                init = self.v0[op] if kind == "v" else 0
                shape = (batch, op.result.type.size)
                a = line_aligned(shape, dtype, init) if self.layout.parts else \
                    np.tile(init, (batch, 1)) if kind == "v" else np.zeros(shape, dtype)
            else:  # rec
                a = np.zeros((batch, steps, op.result.type.size), dtype=np.uint8) if op in recorded_pops else None
            state[(kind, op)] = a
            arrays.append(a)
        table = pointer_table(arrays)
        chosen = threads is None  # a call's own thread count is obeyed; the executor's may be tuned
        threads = threads or self.threads or default_threads()
        lockstep = bool(self.layout.parts) and batch < min(threads, PARTS)
        if chosen and lockstep and not self._lockstep.use():
            threads = 1
        fn, layout = self.fn, self.layout
        if self.layout.parts and not (lockstep and threads > 1):
            fn, layout = self.unsplit()
        start = time.perf_counter()
        self._run(fn, layout, table, 0, batch, T, steps, threads, fills)
        if chosen and lockstep:
            self._lockstep.took(threads > 1, (time.perf_counter() - start) / max(batch * steps, 1))
        if needs_step_rerun(self.layout):
            self._rerun_skipped(state, host, T, steps, threads)

        outputs_by_value, voltages_by_value = {}, {}
        for d in graph.walk("snn.decode"):
            pop = d.x.owner
            shape = (batch, *pop.result.type.shape)
            final_v = state[("v", pop)].reshape(shape).astype(np.float32)
            counted = state[("count", pop)].reshape(shape).astype(np.float32)
            outputs_by_value[d.result] = final_v if d.mode == "membrane" else counted
            voltages_by_value[d.result] = final_v
        host.update(outputs_by_value)
        semantics.host_ops(graph, host, self.post, batch)
        recorded = {self.names[p]: state[("rec", p)].astype(np.int64).reshape((batch, steps, *p.result.type.shape))
                    for p in self.net.populations if p in recorded_pops}
        per_population = {self.names[p]: int(state[("count", p)].sum()) for p in self.net.populations}
        spikes = sum(per_population.values())
        return RunResult("cpu", [host[v] for v in graph.outputs],
                         voltages=[voltages_by_value.get(v) for v in graph.outputs],
                         recorded=recorded, population_spikes=per_population, timesteps=T, steps=steps, spikes=spikes,
                         synaptic_ops=int(state[("synops", None)].sum()),
                         stats={"threads": threads, "from_cache": self.compiled.from_cache,
                                "schedule": self.layout.schedule})

    def unsplit(self):
        """``(function, layout)`` for samples of a split network that no threads share: the
        unsplit version (compiled on first use; its pointer table is the split one's without
        the ``barrier`` slot at its end), or the split function when there is none."""
        if self._unsplit_version is None:
            return self.fn, self.layout
        with self._step_lock:
            if self._unsplit is None:
                layout, compiled = self._unsplit_version()
                assert layout.slots == self.layout.slots[:len(layout.slots)] and not layout.parts
                self._unsplit = (_SIGNATURE(compiled.address), layout, compiled)
        return self._unsplit[0], self._unsplit[1]

    def _rerun_skipped(self, state: dict, host: dict, T: int, steps: int, threads: int) -> None:
        """Run the samples the layer-scheduled function skipped (their state is untouched)
        with the step schedule, one contiguous range at a time; it reads the encoders'
        values as int64, also those the layer function read as floats (``raw``)."""
        skipped = np.flatnonzero(state[("synops", None)] == SKIPPED)
        if not len(skipped):
            return
        with self._step_lock:
            if self._step is None:
                layout, compiled = self._step_version()
                self._step = (_SIGNATURE(compiled.address), layout, compiled)
        fn, layout, _ = self._step
        assert layout.slots == self.layout.slots  # the same pointer table serves both
        arrays = []
        for kind, op in layout.slots:
            a = state[(kind, op)]
            if kind == "enc" and op in self.layout.raw:
                a = host[op.x][:, :T].reshape(a.shape).astype(self.net.enc_dtype(op))
            arrays.append(a)
        table = pointer_table(arrays)
        breaks = np.flatnonzero(np.diff(skipped) != 1) + 1
        for run in np.split(skipped, breaks):
            self._run(fn, layout, table, int(run[0]), int(run[-1]) + 1, T, steps, threads)

    @staticmethod
    def _run(fn, layout: Layout, table, n0: int, n1: int, T: int, steps: int, threads: int,
             fills: Sequence = ()) -> None:
        """Samples ``n0 <= n < n1`` on ``threads`` threads, each first doing ``fills`` for its
        own samples (:meth:`encode`)."""
        batch = n1 - n0
        # a split network (plan.split_parts) with fewer samples than threads (and parts): every
        # thread runs every sample, its own parts of it, meeting the others after each step
        split = bool(layout.parts) and batch < min(threads, PARTS)
        threads = max(1, min(threads, PARTS if split else batch))
        bounds = [n0 + batch * k // threads for k in range(threads + 1)]
        # sized per call: under the layer schedule, spike lists and currents span the run's steps
        size = layout.scratch_size(steps)
        # a split sample's threads share one scratch area: they touch their own parts of it
        scratch = [np.zeros(max(size, 64) + 64, dtype=np.uint8) for _ in range(1 if split else threads)]
        if split:
            for fill in fills:
                fill(n0, n1)
            fills = ()
        if layout.parts:  # threads sharing a sample; each claims its index at entry (emit.Lowering.lower)
            barrier = np.frombuffer((ctypes.c_void_p * len(layout.slots)).from_address(ctypes.addressof(table)),
                                    np.uintp)[layout.slot("barrier", None)]
            np.frombuffer((ctypes.c_int64 * BARRIER_WORDS).from_address(int(barrier)), np.int64)[2:4] = (0, threads if split else 1)

        def work(k: int):
            for fill in fills:
                fill(bounds[k], bounds[k + 1])
            buf = scratch[0 if split else k]
            aligned = buf.ctypes.data + (-buf.ctypes.data) % 64
            first, end = (n0, n1) if split else (bounds[k], bounds[k + 1])
            fn(ctypes.addressof(table), aligned, first, end, T, steps)

        if threads == 1:
            work(0)
            return
        pool = [threading.Thread(target=work, args=(k,)) for k in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()


class LockstepChoice:
    """Whether a split network's sample (:func:`.plan.split_parts`) runs on several threads in
    lockstep or on one: whichever ran faster lately, the other tried again every
    :attr:`EXPLORE` calls.  Threads meeting at every step need a core each: on a machine busy
    with other work, one descheduled thread stalls the others (W3 on this shared 2-core
    machine ran 1.5–4× slower on two threads than on one), on an idle one they take about
    half the time.  Results do not depend on the choice."""

    EXPLORE = 8

    def __init__(self):
        self.seconds = {True: None, False: None}  # the latest time per sample-step of each way
        self.calls = 0

    def use(self) -> bool:
        """True: lockstep threads for this call."""
        self.calls += 1
        for way in (True, False):
            if self.seconds[way] is None:
                return way
        best = self.seconds[True] <= self.seconds[False]
        return (not best) if self.calls % self.EXPLORE == 0 else best

    def took(self, lockstep: bool, seconds: float) -> None:
        self.seconds[lockstep] = seconds


def line_aligned(shape: tuple[int, ...], dtype, fill=0) -> np.ndarray:
    """An array of ``shape`` set to ``fill`` that starts on a cache line: a split sample's
    threads then share no line of a state row (the parts are cut on line bounds,
    :data:`.plan.CUT`; numpy's arrays start on 16 bytes)."""
    dtype = np.dtype(dtype)
    a = aligned_empty(int(np.prod(shape)) * dtype.itemsize).view(dtype).reshape(shape)
    a[...] = fill
    return a


def pointer_table(arrays: Sequence[np.ndarray | None]):
    """The compiled function's ``bufs``: the arrays' addresses in slot order (null for None)."""
    return (ctypes.c_void_p * len(arrays))(*[a.ctypes.data if a is not None else None for a in arrays])


def unit_floats(trains: np.ndarray) -> np.ndarray:
    """Spike trains as the layer function reads a raw ``spikes`` encoder
    (:func:`.plan.raw_encoders`): float32, contiguous, every 0 and 1 kept and every other
    value some value other than 0 and 1 (it only decides that the sample runs by the step
    schedule, which reads the exact values).  A contiguous float32 array is used as it is."""
    if trains.dtype == np.float32:
        return np.ascontiguousarray(trains)
    return np.where((trains == 0) | (trains == 1), trains, 2).astype(np.float32)


def rate_trains(x: np.ndarray, T: int, dtype: np.dtype, phase: int = 0):
    """The rate encoder's trains ``[N, T, size]`` for input ``x`` ``[N, size]``, as
    :func:`nmc.semantics.encode` emits them step by step, in closed form: with ``q`` in
    ``[0, RATE_ONE]`` quanta added per step, ``RATE_ONE`` taken per spike and the accumulator
    starting at ``phase`` in ``[0, RATE_ONE)``, it stays in ``[0, RATE_ONE)``, so the spikes up
    to step ``t`` number ``⌊((t+1)·q + phase) / RATE_ONE⌋`` and step ``t`` fires their
    difference.  Returns ``(array, fill)``: the array is written by
    ``fill(n0, n1)``, samples ``n0 <= n < n1`` at a time; None when some ``q`` is not in that
    range (NaN input), for the step-by-step encoder to handle."""
    one = semantics.RATE_ONE
    shift = one.bit_length() - 1
    assert one == 1 << shift and 0 <= phase < one
    q = np.clip(np.floor(x.astype(np.float64) * one + 0.5), 0, one)
    if not np.all((q >= 0) & (q <= one)):
        return None
    q = q.astype(np.int32 if T * one + phase < 2**31 else np.int64)
    out = np.empty((len(x), T, x.shape[1]), dtype=dtype)

    def fill(n0: int, n1: int) -> None:
        qs = q[n0:n1]
        # (t+1)·q + phase, spikes to t, spikes to t-1
        total, cur, prev = np.full_like(qs, phase), np.empty_like(qs), np.zeros_like(qs)
        for t in range(T):  # in place on [n, size] arrays that stay in cache
            np.add(total, qs, out=total)
            np.right_shift(total, shift, out=cur)  # total >= 0: ⌊total / RATE_ONE⌋
            np.subtract(cur, prev, out=out[n0:n1, t], casting="unsafe")
            prev, cur = cur, prev

    return out, fill


def prepare_graph(graph: Graph, cache: bool = True, threads: int | None = None, kernels: str = "auto",
                  schedule: str = "auto") -> Executor:
    from nmc.ir.verifier import verify

    verify(graph)
    net = Network.of(graph)
    layout, code = compile_network(net, kernels, schedule, cache)
    return Executor(net, layout, code, threads, step_version=step_version(net, kernels, cache),
                    unsplit_version=step_version(net, kernels, cache, split=False))


def compile_network(net: Network, kernels: str, schedule: str, cache: bool,
                    split: bool = True) -> tuple[Layout, Compiled]:
    """Plan, emit and JIT-compile ``net`` (object code from the cache when it has it)."""
    from .emit import FUNCTION_NAME, lower
    from .jit import compile_module

    module, layout, external = lower(net, kernels, schedule, split)
    return layout, compile_module(str(module), FUNCTION_NAME, cache=cache, symbols=external)


def step_version(net: Network, kernels: str, cache: bool, split: bool = True):
    """The ``step``-schedule version of ``net`` (``split`` False: not split into parts),
    compiled when called (:class:`Executor`)."""
    return lambda: compile_network(net, kernels, "step", cache, split)

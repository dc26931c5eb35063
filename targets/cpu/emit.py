"""Emitting the LLVM module of a planned network (DESIGN §5, §6).

The generated entry function runs whole samples, step by step, exactly as
:func:`nmc.semantics.run_snn` does, specialised on every shape and constant of the graph
(weights and per-neuron parameters are global constants); each population's code is a function
of its own that it calls (:meth:`Lowering.outlined`)::

    void nmc_run(ptr bufs, ptr scratch, i64 n0, i64 n1, i64 T, i64 steps)

``bufs`` is a table of pointers to host arrays laid out by :class:`.plan.Layout` (encoder values
per sample and presentation step, per-population state ``u``/``v``, spike counts, optional
recorded trains, synaptic-op counts per sample); ``scratch`` is a per-thread work area of
``Layout.scratch_size(steps)`` bytes (current accumulators and ring buffers of past spike
events).  Samples ``n0 <= n < n1`` are run; samples are independent, so disjoint ranges may
run on different threads at once.

:func:`lower` plans the network (:func:`.plan.plan`: every choice of what to emit) and
:class:`Lowering` emits it: the loops over samples and steps (or, under the ``layer``
schedule, over populations and then steps), the events each source delivers
(:meth:`Lowering.events`: spike lists, a ring buffer per population as deep as its longest
outgoing delay; encoder values scanned for non-zeros, 0/1 bytes 64 at a time as bit masks),
the accumulators currents are summed into, and the neuron updates.  Each projection's
currents are emitted by the kernel registered for its kind (:mod:`.kernels`).  Neurons are
updated 8 at a time with explicit vectors, each group's spike bits appending its spikes to
the step's list without branches (:meth:`Lowering.list8`: a table of the set bits' indices
per byte, :data:`.tables.SPIKE_LUT`, stored as one vector).  Integer populations compute with
the exact decay/saturation rules of :mod:`nmc.semantics`, in i32 lanes when no intermediate
can leave i32 (:func:`.plan.lanes32`), else in i64; float populations in f64 in the
reference's operation order, without fast-math (only the order of synaptic sums differs).
A network split into parts (:func:`.plan.split_parts`) runs each step part by part, the
parts of one sample possibly on several threads, each waiting for the others' previous step
before it reads their spikes (:meth:`Lowering.parted_steps`).
Tables larger than :data:`EMBED_BYTES` are external constants bound by the JIT (see
:meth:`Emitter.const_array`).  Both schedules compute the same sums in the same arithmetic,
so results do not depend on the schedule; a sample whose encoder values the time-batched
kernel cannot take is skipped (:data:`.plan.SKIPPED`), for the executor to run by ``step``
(:func:`.plan.needs_step_rerun`).
"""

from __future__ import annotations

import hashlib
from contextlib import contextmanager

import numpy as np
from llvmlite import ir

from nmc.diagnostics import NmcError
from nmc.ir.core import Op, param_array
from nmc.ir.snn import DECAY_ONE
from nmc.semantics import fanout

from .plan import (COUNT_DTYPE, FUNCTION_NAME, PARTS, SKIPPED, UNIT_ENCODINGS, Layout, Network, count_period,
                   count_stride, host_features, lanes32, list_stride, plan, spk_stride, state_dtype, tile_columns,
                   unit_events)
from .tables import SPIKE_LUT, aligned_empty, weight_table

I8, I16, I32, I64 = ir.IntType(8), ir.IntType(16), ir.IntType(32), ir.IntType(64)
F32, F64 = ir.FloatType(), ir.DoubleType()
PTR = ir.PointerType()
#: Largest constant table (bytes) kept as an initialiser in the IR; larger ones are external
#: constants bound by the JIT (:meth:`Emitter.const_array`).
EMBED_BYTES = 1 << 16
#: Spins (``pause``) a thread waits for the others' step before it yields its CPU instead
#: (:meth:`Lowering.wait`).
BARRIER_SPINS = 200
#: How many events ahead a kernel is told of in a spike list (:meth:`Lowering.events`).
AHEAD = 8
#: Cells and channels per register block when a channel-last conv2d accumulator is transposed
#: into its population's channel-first one (:func:`.kernels.common.flush`).
BLOCK = 8


def llvm_triple() -> str:
    """This process's target triple (the JIT compiles for it)."""
    import llvmlite.binding as llvm

    return llvm.get_process_triple()


def _byte_string(raw: bytes) -> str:
    """``raw`` as an LLVM string constant ``c"\\00\\01..."`` (built with numpy: weight
    tables run to megabytes)."""
    digits = np.frombuffer(raw.hex().encode("ascii"), dtype=np.uint8)
    text = np.empty(len(raw) * 3, dtype=np.uint8)
    text[0::3] = ord("\\")
    text[1::3] = digits[0::2]
    text[2::3] = digits[1::2]
    return 'c"' + text.tobytes().decode("ascii") + '"'


def ir_type(dtype: np.dtype) -> ir.Type:
    """The LLVM type of numpy ``dtype`` (int8 … int64, float32, float64)."""
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
    def at_entry(self):
        """Emit into the entry block (before its branch), where a value dominates every use;
        nested uses stay where the outer one put the builder."""
        if self.b.block is self.entry:
            yield
            return
        here = self.b.block
        if self.entry.terminator is not None:
            self.b.position_before(self.entry.terminator)
        else:
            self.b.position_at_end(self.entry)
        yield
        self.b.position_at_end(here)

    @contextmanager
    def function(self, fn: ir.Function):
        """Emit into ``fn`` (a new function: its entry block is made here), then return to the
        function, entry block and insertion point emitted into before."""
        saved = self.fn, self.entry, self.b
        self.fn, self.entry = fn, fn.append_basic_block("entry")
        self.b = ir.IRBuilder(self.entry)
        try:
            yield
        finally:
            self.fn, self.entry, self.b = saved

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
                return self.module.globals[symbol], ir_type(data.dtype)
            g = ir.GlobalVariable(self.module, typ, name=symbol)
            g.global_constant = True
            self.external[symbol] = aligned_empty(len(raw))
            self.external[symbol][:] = np.frombuffer(raw, dtype=np.uint8)
            return g, ir_type(data.dtype)
        g = ir.GlobalVariable(self.module, typ, name=f"{name}.{self._globals}")
        self._globals += 1
        g.global_constant = True
        g.linkage = "private"
        g.align = 64
        g.initializer = ir.FormattedConstant(typ, _byte_string(raw))
        return g, ir_type(data.dtype)

    def opaque(self, pointer):
        """``pointer`` (a global) as a value LLVM cannot see through, computed once in the
        entry block: constant offsets from it then become displacements from one register;
        from the global itself each becomes its own 64-bit address constant under the JIT's
        large code model (a ``movabs`` per use)."""
        here = self.b.block
        self.b.position_at_start(self.entry)
        asm = ir.InlineAsm(ir.FunctionType(PTR, [PTR]), "", "=r,0")
        value = self.b.call(asm, [pointer])
        self.b.position_at_end(here)
        return value

    def load(self, base, index, typ: ir.Type):
        return self.b.load(self.b.gep(base, [index], source_etype=typ, inbounds=True), typ=typ)

    def store(self, value, base, index, typ: ir.Type):
        self.b.store(value, self.b.gep(base, [index], source_etype=typ, inbounds=True))

    def i64(self, v: int) -> ir.Constant:
        return ir.Constant(I64, int(v))

    def prefetch(self, pointer):
        """Ask for the cache line at ``pointer`` (for reading, into every cache level)."""
        fn = self.intrinsic("llvm.prefetch.p0", ir.VoidType(), [PTR, I32, I32, I32])
        self.b.call(fn, [pointer, ir.Constant(I32, 0), ir.Constant(I32, 3), ir.Constant(I32, 1)])

    def intrinsic(self, name: str, ret: ir.Type, args: list[ir.Type]) -> ir.Function:
        """The declaration of LLVM intrinsic ``name`` (declared once per module)."""
        if name in self.module.globals:
            return self.module.globals[name]
        return ir.Function(self.module, ir.FunctionType(ret, args), name=name)


class OnDemand(dict):
    """A table of values made when first asked for: ``make(key)``, emitted in the entry block of
    the function being emitted (:meth:`Emitter.at_entry`), so that a function computes only
    the pointers its code uses."""

    def __init__(self, e: Emitter, make):
        super().__init__()
        self.e, self.make = e, make

    def __missing__(self, key):
        with self.e.at_entry():
            value = self[key] = self.make(key)
        return value


# ---------------------------------------------------------------------------- lowering


class Lowering:
    """Emits the function of ``net`` as planned in ``lay`` (:meth:`lower`).

    The kernels of :mod:`.kernels` receive it as ``lw`` and use its state and helpers: ``e``
    (the :class:`Emitter`), ``net``, ``lay``, ``area`` (scratch pointers by (kind, op)),
    ``row`` (this sample's host rows by (kind, op)), ``T``, ``steps``, ``t`` (the current step),
    ``synops`` (the sample's synaptic-operation counter), ``first_current`` (the projection is
    its population's first this step), and :meth:`events`, :meth:`source_vector`,
    :meth:`target`, :meth:`accumulate`, :meth:`weights`, :meth:`widen`."""

    def __init__(self, net: Network, lay: Layout):
        from .kernels import REGISTRY  # (the kernel modules import this one)

        self.registry = REGISTRY
        self.net, self.lay = net, lay
        self.module = ir.Module(name="nmc")
        fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I64, I64])
        self.fn = ir.Function(self.module, fnty, name=FUNCTION_NAME)
        for a, name in zip(self.fn.args, ("bufs", "scratch", "n0", "n1", "T", "steps")):
            a.name = name
        self.fn.args[1].add_attribute("noalias")
        self.e = Emitter(self.module, self.fn)
        self.part = None  # the part being run, in a network split into parts (plan.split_parts)
        self.shared: dict = {}  # functions that kernels share between projections (:meth:`shared_function`)
        self.memo: dict = {}  # what kernels compute once per network, by their own keys
        for p in net.projections:
            if p.kind not in self.registry:
                raise NmcError(f"the CPU runtime has no kernel for {p.kind!r} projections", p.loc)

    # -- helpers ---------------------------------------------------------------------------

    def shared_function(self, kind: str, key: tuple, pointers: int, emit) -> ir.Function:
        """The function ``void (ptr noalias × pointers)`` that kernels share for ``(kind, key)``
        (``key``: everything its code depends on, shapes and types): made when first asked
        for, its body by ``emit(*args)`` (into it: :meth:`Emitter.function`), internal and
        ``noinline``, named ``nmc_run_<kind>_<i>``.  Code that depends only on shapes (the
        direct sums, the flush of a conv's accumulator) is then optimised and compiled once
        for all projections of one shape (a DenseNet's dense blocks, a chain of equal layers)."""
        if (kind, key) in self.shared:
            return self.shared[kind, key]
        index = sum(k == kind for k, _ in self.shared)
        fn = ir.Function(self.module, ir.FunctionType(ir.VoidType(), [PTR] * pointers),
                         name=f"{FUNCTION_NAME}_{kind}_{index}")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        for a in fn.args:
            a.add_attribute("noalias")
        self.shared[kind, key] = fn
        with self.e.function(fn):
            emit(*fn.args)
            self.e.b.ret_void()
        return fn

    def acc_type(self, pop: Op) -> ir.Type:
        """The type the population's arithmetic runs in."""
        return I64 if pop.bits else F64

    def acc_store_type(self, pop: Op) -> ir.Type:
        """The element type of the population's accumulator."""
        return I16 if pop in self.lay.short else I32 if pop in self.lay.narrow else self.acc_type(pop)

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
        """Weights with the exponent folded in, stored as narrow as they stay exact
        (:func:`.tables.weight_table`), as a constant: (global, element type)."""
        return self.e.const_array(weight_table(p, data), name)

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
        self.pointers(bufs, scratch)
        self.synops = e.var(I64, 0)
        # whether an event went to the side accumulator this step: bit q for part q, as the
        # parts' inputs may all run before the first part's fold (parted_steps)
        self.wide_flags = {pop: e.var(I8, 0) for pop in self.lay.wide}
        self.unit_flag = {enc: e.var(I8, 1) for enc in self.lay.listed}
        if self.lay.parts:
            self.my_parts = self.claim_parts()
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
                        self.outlined(pop, "run", self.population_run)
                else:  # a sample with other values is left untouched, marked for the step schedule
                    ok = ir.Constant(ir.IntType(1), 1)
                    for f in checked:
                        ok = b.and_(ok, b.icmp_unsigned("!=", b.load(f, typ=I8), ir.Constant(I8, 0)))
                    with b.if_else(ok) as (fast, slow):
                        with fast:
                            for pop in self.lay.order:
                                self.outlined(pop, "run", self.population_run)
                        with slow:
                            b.store(e.i64(SKIPPED), self.synops)
            elif self.lay.parts:
                self.parted_steps()
            else:
                with e.loop(0, self.steps, "t") as t:
                    self.t = t
                    for pop in self.net.populations:
                        self.outlined(pop, "step", self.population_step)
            out = self.buf[self.lay.slot("synops", None)]
            if self.lay.parts:  # the threads running the sample's parts add their counts
                b.atomic_rmw("add", b.gep(out, [n], source_etype=I64), b.load(self.synops, typ=I64), "monotonic")
            else:
                e.store(b.load(self.synops, typ=I64), out, n, I64)
        b.ret_void()
        return self.module

    def pointers(self, bufs, scratch):
        """``buf`` (the host arrays by slot, from the pointer table ``bufs``) and ``area``
        (pointers into ``scratch`` by (kind, op); the run's areas after the fixed ones, sized by
        ``steps``), each made when first used (:class:`OnDemand`)."""
        e = self.e

        def buf(i: int):
            return e.b.load(e.b.gep(bufs, [e.i64(i)], source_etype=PTR), typ=PTR)

        def area(k):
            if k in self.lay.scratch:
                return e.b.gep(scratch, [e.i64(self.lay.scratch[k])], source_etype=I8)
            off = e.b.add(e.i64(self.lay.scratch_bytes), e.b.mul(self.steps, e.i64(self.lay.run[k])))
            return e.b.gep(scratch, [off], source_etype=I8)

        self.buf, self.area = OnDemand(e, buf), OnDemand(e, area)

    def outlined(self, pop: Op, phase: str, emit):
        """Emit ``emit(pop)`` (``phase`` ``run``: :meth:`population_run`) or ``emit(pop, phase)``
        (:meth:`population_step`) as a function of its own, ``noinline``, and call it here.

        One function per population keeps LLVM's function and loop passes on one layer's loops
        at a time: in one function, every layer's loops would sit inside the step loop, whose
        loop passes cost about (loops × body), quadratic in the network's size; and inlined back,
        even in a small network, every function is optimised twice, once alone and once more
        inside the entry (W2's O3 took twice as long).  The function takes what the code inside reads of the caller: ``bufs``, ``scratch``, the sample ``n``,
        ``T``, ``steps``, the step ``t`` (0 for ``run``), the part (0 when not split), and
        pointers to the caller's synaptic-operation counter and ``pop``'s side-accumulator flags;
        it counts and flags in locals of its own (registers in its loops) and adds / stores them
        back on return.  Host and scratch pointers are recomputed from ``bufs`` and ``scratch``."""
        e = self.e
        index = self.net.populations.index(pop)
        flag = self.wide_flags.get(pop)
        fnty = ir.FunctionType(ir.VoidType(), [PTR, PTR, I64, I64, I64, I64, I64, PTR, PTR])
        fn = ir.Function(self.module, fnty, name=f"{FUNCTION_NAME}_{phase}_{index}")
        fn.linkage = "internal"
        fn.attributes.add("noinline")
        fn.args[1].add_attribute("noalias")
        t = self.t if phase != "run" else e.i64(0)
        args = [self.fn.args[0], self.fn.args[1], self.n, self.T, self.steps, t,
                self.part if self.part is not None else e.i64(0), self.synops,
                flag if flag is not None else ir.Constant(PTR, None)]
        saved = (self.fn, e.fn, e.entry, e.b, self.buf, self.area, self.row, self.synops, self.wide_flags,
                 self.n, self.T, self.steps, self.part)
        self.fn = e.fn = fn
        e.entry = fn.append_basic_block("entry")
        e.b = ir.IRBuilder(e.entry)
        bufs, scratch, self.n, self.T, self.steps, t, part, synops, flags = fn.args
        self.t, self.part = t, (part if self.part is not None else None)
        self.pointers(bufs, scratch)
        self.row = OnDemand(e, self.row_pointer)
        self.synops = e.var(I64, 0)
        self.wide_flags = {pop: e.var(I8, e.b.load(flags, typ=I8))} if flag is not None else {}
        if phase == "run":
            emit(pop)
        else:
            emit(pop, phase)
        b = e.b
        b.store(b.add(b.load(synops, typ=I64), b.load(self.synops, typ=I64)), synops)
        if flag is not None:
            b.store(b.load(self.wide_flags[pop], typ=I8), flags)
        b.ret_void()
        (self.fn, e.fn, e.entry, e.b, self.buf, self.area, self.row, self.synops, self.wide_flags,
         self.n, self.T, self.steps, self.part) = saved
        self.t = args[5]
        e.b.call(fn, args)

    def parted_steps(self):
        """The steps of one sample in a network split into parts (:func:`.plan.split_parts`):
        each step runs this thread's parts ``q0 <= q < q1`` of every population (its synapses,
        neurons and spike list; :attr:`my_parts`) in two phases.  First the projections that
        read only encoders (each population's leading ones: the order of a target's sums is
        kept); then, when several threads share the sample, the thread waits until the others
        have finished the previous step (:meth:`wait`), whose spike lists the rest reads, runs
        the rest and the neuron updates, and says it has finished this step (:meth:`arrive`;
        steps counted over the call's samples).  A thread ahead of the others thus does its
        next step's input while they finish."""
        e, b = self.e, self.e.b
        q0, q1, k, threads = self.my_parts
        shared = b.icmp_signed(">", threads, e.i64(1))
        before = b.mul(b.sub(self.n, self.fn.args[2]), self.steps)  # steps of the earlier samples
        with e.loop(0, self.steps, "t") as t:
            self.t = t
            for phase in ("inputs", "rest"):
                with e.loop(q0, q1, "q") as q:
                    self.part = q
                    for pop in self.net.populations:
                        self.outlined(pop, phase, self.population_step)
                    self.part = None
                if phase == "inputs":
                    with e.when(shared):
                        self.wait(k, threads, b.add(before, t))
            with e.when(shared):
                self.arrive(k, b.add(before, b.add(t, e.i64(1))))

    def claim_parts(self):
        """``(q0, q1, k, threads)``: the parts this thread runs, its index and the threads
        sharing each sample (``barrier[3]``, set by the executor): with one, every part; else
        the thread takes the next index ``k`` (``barrier[2]``, counted atomically) and parts
        ``[PARTS·k/threads, PARTS·(k+1)/threads)``."""
        e, b = self.e, self.e.b
        bar = self.buf[self.lay.slot("barrier", None)]
        threads = e.load(bar, e.i64(3), I64)
        shared = b.icmp_signed(">", threads, e.i64(1))
        k = e.var(I64, 0)
        with e.when(shared):
            b.store(b.atomic_rmw("add", b.gep(bar, [e.i64(2)], source_etype=I64), e.i64(1), "monotonic"), k)
        k = b.load(k, typ=I64)
        q0 = b.select(shared, b.sdiv(b.mul(k, e.i64(PARTS)), threads), e.i64(0))
        q1 = b.select(shared, b.sdiv(b.mul(b.add(k, e.i64(1)), e.i64(PARTS)), threads), e.i64(PARTS))
        return q0, q1, k, threads

    def done_steps(self, k):
        """The pointer to thread ``k``'s count of finished steps: ``barrier[8·(k+1)]``, a cache
        line of its own (:data:`.plan.BARRIER_WORDS`)."""
        bar = self.buf[self.lay.slot("barrier", None)]
        return self.e.b.gep(bar, [self.e.b.mul(self.e.b.add(k, self.e.i64(1)), self.e.i64(8))], source_etype=I64)

    def arrive(self, k, steps):
        """Thread ``k`` has finished ``steps`` steps: a release store to its own count (no
        atomic read-modify-write, no line the others write)."""
        b = self.e.b  # (IRBuilder.store_atomic wants a typed pointer)
        b._insert(ir.instructions.StoreAtomicInstr(b.block, steps, self.done_steps(k), "release", 8))

    def wait(self, k, threads, steps):
        """Wait until every thread but ``k`` has finished ``steps`` steps (:meth:`arrive`):
        spin on their counts with ``pause``, yielding the CPU after :data:`BARRIER_SPINS`
        spins in a row (on a loaded machine the thread waited for may not be running)."""
        e, b = self.e, self.e.b
        with e.loop(0, threads, "peer") as j:
            with e.when(b.icmp_signed("!=", j, k)):
                count = self.done_steps(j)
                spins = e.var(I64, 0)
                head = self.fn.append_basic_block("wait.head")
                body = self.fn.append_basic_block("wait.body")
                done = self.fn.append_basic_block("wait.end")
                b.branch(head)
                b.position_at_end(head)
                now = b.load_atomic(count, "acquire", 8, typ=I64)
                b.cbranch(b.icmp_signed("<", now, steps), body, done)
                b.position_at_end(body)
                n = b.add(b.load(spins, typ=I64), e.i64(1))
                b.store(n, spins)
                with b.if_else(b.icmp_signed("<", n, e.i64(BARRIER_SPINS))) as (spin, rest):
                    with spin:
                        if "x86" in llvm_triple():
                            b.call(e.intrinsic("llvm.x86.sse2.pause", ir.VoidType(), []), [])
                    with rest:
                        b.call(e.intrinsic("sched_yield", I32, []), [])
                b.branch(head)
                b.position_at_end(done)

    def sample_pointers(self):
        """Pointers into this sample's rows of the host arrays (:meth:`rows`); then the kernels'
        set-up of every sample (``sample_start``)."""
        self.rows()
        for p in self.net.projections:  # kinds with state across steps (the max-pool gate's counts)
            start = self.registry[p.kind].sample_start
            if start is not None:
                start(self, p)

    def rows(self):
        """``row``: pointers into sample ``n``'s rows of the host arrays, by (kind, op)."""
        self.row = {key: self.row_pointer(key) for key in self.lay.slots if key[0] not in ("synops", "barrier")}

    def row_pointer(self, key):
        """The pointer to sample ``n``'s row of the host array of slot ``key`` = (kind, op)."""
        e, b, n = self.e, self.e.b, self.n
        kind, op = key
        size = op.result.type.size
        if kind == "enc":
            typ = self.enc_type(op)
            stride = b.mul(self.T, e.i64(size))
        elif kind == "rec":
            typ = I8
            stride = b.mul(self.steps, e.i64(size))
        else:
            typ = ir_type(COUNT_DTYPE if kind == "count" else state_dtype(op))
            stride = e.i64(size)
        return b.gep(self.buf[self.lay.slot(kind, op)], [b.mul(n, stride)], source_etype=typ)

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
        from .kernels.dense import tiled_currents  # the time-batched kernel: dense projections only

        for k, p in enumerate(self.lay.tiled[pop]):
            tiled_currents(self, p, pop, k == 0)
        cur = self.area[("cur", pop)]
        with e.loop(0, self.steps, "t") as t:
            self.t = t
            self.update(pop, b.gep(cur, [b.mul(t, e.i64(cols))], source_etype=I32))

    def enc_type(self, enc: Op) -> ir.Type:
        """The element type of ``enc``'s host array: float32 for a raw ``spikes`` encoder
        (:func:`.plan.raw_encoders`), else :meth:`.plan.Network.enc_dtype`'s."""
        return F32 if enc in self.lay.raw else ir_type(self.net.enc_dtype(enc))

    def list_encoder(self, enc: Op):
        """List the indices of ``enc``'s non-zero values for every presentation step of this
        sample (``eidx``/``ecnt``), and clear its unit flag if any value is not 1.  Groups of
        8 values are compared as one vector and listed without branches (:meth:`list8`), the
        values after the last whole group one by one."""
        e, b = self.e, self.e.b
        size = enc.result.type.size
        typ = self.enc_type(enc)
        idx_area, cnt_area = self.area[("eidx", enc)], self.area[("ecnt", enc)]
        flag = self.unit_flag[enc]
        b.store(ir.Constant(I8, 1), flag)
        check = enc.encoding not in UNIT_ENCODINGS
        other = e.var(I8, 0)  # the bits of values other than 0 and 1, or'ed together

        def ne(x, c):  # x != c; true for NaN
            if isinstance(typ, ir.IntType):
                return b.icmp_signed("!=", x, ir.Constant(x.type, c if x.type == typ else [c] * x.type.count))
            return b.fcmp_unordered("!=", x, ir.Constant(x.type, float(c) if x.type == typ else [float(c)] * 8))

        lut = e.const_array(SPIKE_LUT, "spikelut")[0]
        nvec, rest = divmod(size, 8)
        vt = ir.VectorType(typ, 8)
        with e.loop(0, self.T, "pt") as pt:
            row = b.gep(self.row[("enc", enc)], [b.mul(pt, e.i64(size))], source_etype=typ)
            lst = b.gep(idx_area, [b.mul(pt, e.i64(size))], source_etype=I32)
            count = e.var(I64, 0)
            with e.loop(0, nvec, "jv") as k:
                first = b.mul(k, e.i64(8))
                x = b.load(b.gep(row, [first], source_etype=typ, inbounds=True), typ=vt, align=1)
                nz = ne(x, 0)
                self.list8(lut, lst, count, b.bitcast(nz, I8), first)
                if check:
                    b.store(b.or_(b.load(other, typ=I8), b.bitcast(b.and_(nz, ne(x, 1)), I8)), other)
            if rest:
                with e.loop(nvec * 8, size, "j") as j:
                    x = e.load(row, j, typ)
                    with e.when(ne(x, 0)):
                        k = b.load(count, typ=I64)
                        e.store(b.trunc(j, I32), lst, k, I32)
                        b.store(b.add(k, e.i64(1)), count)
                        if check:
                            b.store(b.or_(b.load(other, typ=I8), b.zext(ne(x, 1), I8)), other)
            e.store(b.trunc(b.load(count, typ=I64), I32), cnt_area, pt, I32)
        if check:
            with e.when(b.icmp_unsigned("!=", b.load(other, typ=I8), ir.Constant(I8, 0))):
                b.store(ir.Constant(I8, 0), flag)

    def population_step(self, pop: Op, phase: str = "all"):
        """One step of ``pop``: its projections' currents, then its neurons.  ``phase``
        ``inputs``: only the leading projections that read encoders (:meth:`parted_steps`);
        ``rest``: the others and the neurons; ``all``: both."""
        acc = self.area[("acc", pop)]  # all zero here: the update clears what it reads
        leading = next((k for k, c in enumerate(pop.currents) if c.owner.src.owner.KIND != "snn.encode"),
                       len(pop.currents))
        chosen = {"inputs": range(leading), "rest": range(leading, len(pop.currents))}.get(phase)
        for k, c in enumerate(pop.currents):
            if chosen is None or k in chosen:
                self.first_current = k == 0
                self.projection(c.owner, pop, acc)
        if phase == "inputs":
            return
        if pop in self.lay.short and pop in self.lay.wide:  # the side accumulator: i32 currents
            b = self.e.b
            flag, bit = self.wide_flags[pop], self.wide_bit()
            with b.if_else(b.icmp_unsigned("!=", b.and_(b.load(flag, typ=I8), bit), ir.Constant(I8, 0))) as (used, unused):
                with used:
                    self.fold(pop, self.area[("acc32", pop)])
                    self.update(pop, self.area[("acc32", pop)], I32)
                with unused:
                    self.update(pop, acc)
            return
        if pop in self.lay.wide:
            self.fold(pop, acc)
        self.update(pop, acc)

    def events(self, p: Op, pop: Op, body, counted: bool = False, ahead=None):
        """Call ``body(j, x)`` (x None for a spike of value 1) for each event ``p`` delivers now,
        and count the synaptic operations (unless ``counted``: the body counts them).
        ``ahead(j)``, when given, is called before each event of a spike list with the event
        :data:`AHEAD` places later in it (the last one near the end), for the kernel to
        prefetch what that event will read."""
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
                typ = ir_type(self.net.enc_dtype(src))
                row = b.gep(self.row[("enc", src)], [b.mul(pt, e.i64(size))], source_etype=typ)

                def nonzero(x):  # true for NaN
                    zero = ir.Constant(x.type, None)
                    return b.icmp_signed("!=", x, zero) if isinstance(typ, ir.IntType) else b.fcmp_unordered("!=", x, zero)

                def deliver(j):
                    count(j)
                    if unit_events(p):  # rate, poisson: every event is a spike
                        body(j, None)
                        return
                    x = e.load(row, j, typ)
                    one = b.icmp_signed("==", x, ir.Constant(typ, 1)) if isinstance(typ, ir.IntType) \
                        else b.fcmp_ordered("==", x, ir.Constant(typ, 1.0))
                    with b.if_else(one) as (spike, other):
                        with spike:  # the common case: no multiply
                            body(j, None)
                        with other:
                            body(j, self.widen(pop, x, typ))

                # the values tested 64 at a time into a bit mask (the last 8, then 1 at a time): a
                # branch per set bit and per 64 values rather than one per value
                item = np.dtype(self.net.enc_dtype(src)).itemsize

                def mask(first, n: int):
                    """The i64 mask of the non-zero values among ``row[first + i]``, ``i < n <= 64``:
                    64 at a time, then 8, then one."""
                    m, c = None, 0
                    while c < n:
                        width = 64 if n - c >= 64 else 8 if n - c >= 8 else 1
                        x = b.load(b.gep(row, [b.add(first, e.i64(c))], source_etype=typ),
                                   typ=ir.VectorType(typ, width) if width > 1 else typ, align=item)
                        nz = nonzero(x)
                        bits = b.zext(b.bitcast(nz, ir.IntType(width)) if width > 1 else nz, I64)
                        m = bits if m is None else b.or_(m, b.shl(bits, e.i64(c)))
                        c += width
                    return m

                whole, rest = divmod(size, 64)
                with e.loop(0, whole + (rest > 0), "jw") as k:
                    first = b.mul(k, e.i64(64))
                    if not rest:
                        bits = mask(first, 64)
                    elif not whole:
                        bits = mask(first, rest)
                    else:
                        m = e.var(I64, 0)
                        with b.if_else(b.icmp_signed("<", k, e.i64(whole))) as (full, tail):
                            with full:
                                b.store(mask(first, 64), m)
                            with tail:
                                b.store(mask(first, rest), m)
                        bits = b.load(m, typ=I64)
                    with self.set_bits(bits, first) as j:
                        deliver(j)
            return
        st = b.sub(self.t, e.i64(p.delay))
        with e.when(b.icmp_signed(">=", st, e.i64(0))):
            slot = self.ring_slot(src, st)
            lists = PARTS if self.lay.parts else 1  # a split source: one list per part, in order
            counts = None  # a burst source: each listed neuron's spike count, from its byte vector
            if src.max_spikes > 1:
                counts = b.gep(self.area[("spk", src)], [b.mul(slot, e.i64(spk_stride(src)))], source_etype=I8)
            with e.loop(b.mul(slot, e.i64(lists)), b.mul(b.add(slot, e.i64(1)), e.i64(lists)), "list") as li:
                cnt = b.sext(e.load(self.area[("ring_cnt", src)], b.mul(li, e.i64(count_stride(self.lay))), I32), I64)
                idx = b.gep(self.area[("ring_idx", src)], [b.mul(li, e.i64(list_stride(src)))], source_etype=I32)
                if lists > 1:  # another thread's list: all its lines asked for at once, not one by one
                    with e.loop(0, b.udiv(b.add(cnt, e.i64(15)), e.i64(16)), "line") as line:
                        e.prefetch(b.gep(idx, [b.mul(line, e.i64(16))], source_etype=I32))
                with e.loop(0, cnt, "k") as k:
                    if ahead is not None and AHEAD:
                        later = b.add(k, e.i64(AHEAD))
                        later = b.select(b.icmp_signed("<", later, cnt), later, b.sub(cnt, e.i64(1)))
                        ahead(b.sext(e.load(idx, later, I32), I64))
                    j = b.sext(e.load(idx, k, I32), I64)
                    count(j)
                    if counts is None:
                        body(j, None)
                    else:
                        x = e.load(counts, j, I8)
                        with b.if_else(b.icmp_signed("==", x, ir.Constant(I8, 1))) as (spike, burst):
                            with spike:  # one spike: no multiply
                                body(j, None)
                            with burst:
                                body(j, self.widen(pop, x, I8))

    def projection(self, p: Op, pop: Op, acc):
        """The currents of projection ``p`` into ``pop``'s accumulator ``acc`` this step: the
        kernel registered for ``p``'s kind (:data:`.kernels.REGISTRY`)."""
        self.registry[p.kind].project(self, p, pop, acc)

    def target(self, pop: Op, x):
        """(pointer, element type) of the accumulator that an event of value ``x`` (None: 1)
        adds into: the population's, or for other values into an i32 one, its i64 side
        accumulator (flagged for :meth:`fold`)."""
        if x is not None and pop in self.lay.wide:
            flag, bit = self.wide_flags[pop], self.wide_bit()
            self.e.b.store(self.e.b.or_(self.e.b.load(flag, typ=I8), bit), flag)
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

    def wide_bit(self):
        """The bit of the part being run in a side accumulator's flags (:meth:`target`)."""
        return ir.Constant(I8, 1) if self.part is None else self.e.b.shl(ir.Constant(I8, 1), self.e.b.trunc(self.part, I8))

    def fold(self, pop: Op, into):
        """Add the side accumulator of ``pop`` to its accumulator, clamped to ±2**30 (see
        :func:`.plan.narrow_accumulator`), into the i32 currents ``into`` (the accumulator
        itself, or for an i16 one its ``acc32`` area, the i16 one then cleared), and clear it,
        if any event went there this step."""
        e, b = self.e, self.e.b
        flag, bit = self.wide_flags[pop], self.wide_bit()
        acc, wide = self.area[("acc", pop)], self.area[("wide", pop)]
        acc_t = self.acc_store_type(pop)
        lo, hi = e.i64(-2**30), e.i64(2**30)
        with e.when(b.icmp_unsigned("!=", b.and_(b.load(flag, typ=I8), bit), ir.Constant(I8, 0))):
            b.store(b.and_(b.load(flag, typ=I8), b.not_(bit)), flag)
            start, stop = self.part_range(pop)
            with e.loop(start, stop, "fold") as i:
                total = b.add(b.sext(e.load(acc, i, acc_t), I64), e.load(wide, i, I64))
                total = b.select(b.icmp_signed("<", total, lo), lo, b.select(b.icmp_signed(">", total, hi), hi, total))
                if into is not acc:
                    e.store(ir.Constant(acc_t, 0), acc, i, acc_t)
                e.store(b.trunc(total, I32), into, i, I32)
                e.store(e.i64(0), wide, i, I64)

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
                typ = ir_type(self.net.enc_dtype(src))
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
            row = b.gep(self.area[("spk", src)], [b.mul(slot, e.i64(spk_stride(src)))], source_etype=I8)
            yield row, I8, cnt

    # -- neuron update ---------------------------------------------------------------------------

    def decay(self, pop: Op, x, d, dconst):
        """``decay(x, d)`` of DESIGN §5; ``dconst`` is d's value when it is one for all neurons."""
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

    def neurons(self, pop: Op, acc, acc_st, params, i, width: int, last):
        """Advance neurons ``i .. i+width-1`` (explicit vectors when ``width > 1``), their
        currents read from ``acc`` (elements of type ``acc_st``); returns whether each fired (i1 or
        <width x i1>) and, for a burst population, its spike counts in the lane type (else None).  Integer populations compute in i64, or in i32 lanes (twice as many per
        vector) when :func:`.plan.lanes32` allows it.  ``u`` is stored only when ``last`` (an
        i1: the run's last step) if no step reads it (``du`` = 4096); the step's spikes are
        added to the byte counts ``cnt8`` (:meth:`add_counts`)."""
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
            b.store(value, b.gep(base, [i], source_etype=typ, inbounds=True), align=2 if typ == I16 else 4)

        def get(name):
            const, table = params[name]
            return ir.Constant(vt, const) if const is not None else ld(table[0], table[1])

        def decay(x, name):
            if not narrow or params[name][0] in (0, DECAY_ONE):
                return self.decay(pop, x, get(name), params[name][0])
            # |x| · (4096 - d) needs more than 32 bits; split |x| = 4096·a + r instead: then
            # (|x| · k) >> 12 = a · k + ((r · k) >> 12) exactly, and with |x| <= 2**29 (lanes32)
            # both products stay below 2**29: two i32 multiplies, no i64 lanes
            neg = b.icmp_signed("<", x, ir.Constant(vt, 0))
            ax = b.select(neg, b.neg(x), x)
            keep = b.sub(ir.Constant(vt, DECAY_ONE), get(name))
            high = b.mul(b.lshr(ax, ir.Constant(vt, 12)), keep)
            low = b.lshr(b.mul(b.and_(ax, ir.Constant(vt, DECAY_ONE - 1)), keep), ir.Constant(vt, 12))
            m = b.add(high, low)
            return b.select(neg, b.neg(m), m)

        state_t = ir_type(state_dtype(pop))
        u_row, v_row = self.row[("u", pop)], self.row[("v", pop)]
        current = b.load(b.gep(acc, [i], source_etype=acc_st, inbounds=True),
                         typ=vec(acc_st), align=2 if acc_st == I16 else 4)
        if acc_st == I16:  # |current| < 2**15 (plan.short_accumulator)
            current = b.sext(current, vt)
        elif narrow:  # clamped to ±2**30: sat(decay(u) + I) is the same (see lanes32)
            lo, hi = ir.Constant(current.type, -2**30), ir.Constant(current.type, 2**30)
            current = b.select(b.icmp_signed(">", current, hi), hi, current)
            current = b.select(b.icmp_signed("<", current, lo), lo, current)
            current = current if acc_st == I32 else b.trunc(current, vt)
        elif acc_st != acc_t:
            current = b.sext(current, vt)
        u = self.add(pop, decay(ld(u_row, state_t), "du"), current)
        if pop.bits:
            u = self.saturate(pop, u)
        before = ld(v_row, state_t)
        v = self.add(pop, self.add(pop, decay(before, "dv"), u), get("bias"))
        theta = get("threshold")
        delayed = pop.reset.endswith("_delayed")
        if delayed:  # the reset of last step's spike (nmc.neuron), inside the saturation
            fired_before = b.icmp_signed(">", before, theta) if pop.bits else b.fcmp_ordered(">", before, theta)
            reset = ir.Constant(vt, 0) if pop.reset == "zero_delayed" else (b.sub(v, theta) if pop.bits else b.fsub(v, theta))
            v = b.select(fired_before, reset, v)
        if pop.bits:
            v = self.saturate(pop, v)
        fired = b.icmp_signed(">", v, theta) if pop.bits else b.fcmp_ordered(">", v, theta)
        spikes = None  # a burst population's spike counts (nmc.neuron.burst_counts), in the lane type
        if pop.max_spikes > 1:
            spikes = self.burst_counts(pop, v, theta, vt)
            fired = b.icmp_signed(">", spikes, ir.Constant(spikes.type, 0))
        if delayed:
            after = v
        elif pop.reset == "zero":
            after = ir.Constant(vt, 0)
        elif spikes is not None:  # loses k thresholds
            after = b.sub(v, b.mul(spikes, theta)) if pop.bits else b.fsub(v, b.fmul(b.sitofp(spikes, vt), theta))
        else:
            after = b.sub(v, theta) if pop.bits else b.fsub(v, theta)
        if pop.bits and params["du"][0] == DECAY_ONE:  # u is not read (decays to 0): its last value
            with self.e.when(last):
                st(u, u_row, state_t)
        else:
            st(u, u_row, state_t)
        st(b.select(fired, after, v), v_row, state_t)
        if pop not in self.lay.overwritten:  # the accumulator is clear for the next step
            st(ir.Constant(vec(acc_st), 0), acc, acc_st)
        # this period's counts, in bytes (plan.count_period; update adds them to count_row)
        cnt8 = b.gep(self.area[("cnt8", pop)], [i], source_etype=I8, inbounds=True)
        added = b.zext(fired, vec(I8)) if spikes is None else self.count_cast(spikes, vec(I8))
        b.store(b.add(b.load(cnt8, typ=vec(I8), align=1), added), cnt8, align=1)
        return fired, spikes

    def burst_counts(self, pop: Op, v, theta, vt):
        """The spikes of burst neurons (:func:`nmc.neuron.burst_counts`) for voltages ``v``,
        ``min(B, ⌈v/θ⌉ − 1)`` and at least 0: integer lanes ``(v − 1) // θ`` (``θ ≥ 1``, a floor
        division) in ``v``'s lane type; float lanes ``ceil(v / θ) − 1`` clipped, as i64 lanes."""
        b = self.e.b
        zero, top = ir.Constant(vt, 0), ir.Constant(vt, pop.max_spikes)
        if pop.bits:
            num = b.sub(v, ir.Constant(vt, 1))
            q = b.sdiv(num, theta)  # toward zero; floor for a negative num with a remainder
            fix = b.and_(b.icmp_signed("<", num, zero), b.icmp_signed("!=", b.srem(num, theta), zero))
            k = b.sub(q, b.zext(fix, vt))
            k = b.select(b.icmp_signed("<", k, zero), zero, k)
            return b.select(b.icmp_signed(">", k, top), top, k)
        n = vt.count if isinstance(vt, ir.VectorType) else None
        ceil = self.e.intrinsic("llvm.ceil", vt, [vt]) if n is None else \
            self.e.intrinsic(f"llvm.ceil.v{n}f64", vt, [vt])
        k = b.fsub(b.call(ceil, [b.fdiv(v, theta)]), ir.Constant(vt, 1.0))
        k = b.select(b.fcmp_ordered(">", k, ir.Constant(vt, float(pop.max_spikes))), ir.Constant(vt, float(pop.max_spikes)), k)
        k = b.select(b.fcmp_ordered(">", k, ir.Constant(vt, 0.0)), k, ir.Constant(vt, 0.0))  # and NaN -> 0
        it = ir.VectorType(I64, n) if n else I64
        return b.fptosi(k, it) if it != vt else k

    def count_cast(self, x, typ):
        """Integer lanes ``x`` as ``typ`` (sign-extended or truncated)."""
        b = self.e.b
        width = lambda t: (t.element if isinstance(t, ir.VectorType) else t).width  # noqa: E731
        if width(x.type) == width(typ):
            return x
        return b.sext(x, typ) if width(x.type) < width(typ) else b.trunc(x, typ)

    def update(self, pop: Op, acc, acc_st: ir.Type | None = None):
        """Advance every neuron of ``pop`` (in groups of :meth:`group_width`, then one of 8, then
        the rest), its currents read from ``acc`` (elements of type ``acc_st``, default
        :meth:`acc_store_type`), and list its spikes into this step's ring slot as it goes, in
        increasing order (:meth:`list8`; an :attr:`.plan.Layout.unlisted` population only counts
        them), recording them when the run records ``pop`` (copied from the step's byte spike
        vector after the loop when it has one)."""
        acc_st = acc_st or self.acc_store_type(pop)
        e, b = self.e, self.e.b
        size = pop.result.type.size
        params = {}
        for name in ("threshold", "bias", "du", "dv"):
            const, table = self.param(pop, name)
            params[name] = (None if const is None else const.constant, table)
        slot = self.ring_slot(pop, self.t)
        spk = None
        if pop in self.lay.spike_rows:  # this step's byte spike vector, for dense kernels
            spk = b.gep(self.area[("spk", pop)], [b.mul(slot, e.i64(spk_stride(pop)))], source_etype=I8)
        if self.part is not None:  # this part's list (plan.split_parts)
            slot = b.add(b.mul(slot, e.i64(PARTS)), self.part)
        lst = None
        if pop not in self.lay.unlisted:
            lst = b.gep(self.area[("ring_idx", pop)], [b.mul(slot, e.i64(list_stride(pop)))], source_etype=I32)
        recording = b.icmp_unsigned("!=", self.buf[self.lay.slot("rec", pop)], ir.Constant(PTR, None))
        rec_step = b.gep(self.row[("rec", pop)], [b.mul(self.t, e.i64(size))], source_etype=I8)
        lut = e.const_array(SPIKE_LUT, "spikelut")[0]
        nfired = e.var(I64, 0)
        last = b.icmp_signed("==", b.add(self.t, e.i64(1)), self.steps)  # the run's last step

        def group(first, width: int):
            """Neurons ``first .. first+width-1`` (a multiple of 8 lanes)."""
            fired, spikes = self.neurons(pop, acc, acc_st, params, first, width, last)
            bits = b.bitcast(fired, ir.IntType(width))
            if width == 16 and lst is not None:
                self.list16(lst, nfired, fired, bits, first)
            elif lst is not None:
                self.list8(lut, lst, nfired, bits, first)
            else:
                b.store(b.add(b.load(nfired, typ=I64), b.zext(b.ctpop(bits), I64)), nfired)
            vt = ir.VectorType(I8, width)
            value = b.zext(fired, vt) if spikes is None else self.count_cast(spikes, vt)  # burst: counts
            if spk is not None:
                b.store(value, b.gep(spk, [first], source_etype=I8, inbounds=True), align=1)
            else:
                with e.when(recording):
                    b.store(value, b.gep(rec_step, [first], source_etype=I8, inbounds=True), align=1)

        start, stop = self.part_range(pop)
        width = self.group_width(pop)
        n = b.sub(stop, start)
        with e.loop(0, b.udiv(n, e.i64(width)), "nu") as k:
            group(b.add(start, b.mul(k, e.i64(width))), width)
        if width > 8:  # one group of 8 after the wide ones (part bounds are multiples of 8)
            with e.when(b.icmp_unsigned(">=", b.urem(n, e.i64(width)), e.i64(8))):
                group(b.add(start, b.mul(b.udiv(n, e.i64(width)), e.i64(width))), 8)
        nvec, rest = divmod(size, 8)
        if rest:  # one scalar copy in a loop, not one per neuron (compile time); the last part's
            with e.when(b.icmp_signed("==", stop, e.i64(size))):
                bits = e.var(I8, 0)
                with e.loop(nvec * 8, size, "nt") as i:
                    fired, spikes = self.neurons(pop, acc, acc_st, params, i, 1, last)
                    r = b.trunc(b.sub(i, e.i64(nvec * 8)), I8)
                    b.store(b.or_(b.load(bits, typ=I8), b.shl(b.zext(fired, I8), r)), bits)
                    value = b.zext(fired, I8) if spikes is None else self.count_cast(spikes, I8)
                    if spk is not None:
                        e.store(value, spk, i, I8)
                    else:
                        with e.when(recording):
                            e.store(value, rec_step, i, I8)
                if lst is None:
                    b.store(b.add(b.load(nfired, typ=I64), b.zext(b.ctpop(b.load(bits, typ=I8)), I64)), nfired)
                else:
                    self.list8(lut, lst, nfired, b.load(bits, typ=I8), e.i64(nvec * 8))
        if spk is not None:  # the step's spikes (or burst counts) are its byte vector
            with e.when(recording):
                at = b.gep(spk, [start], source_etype=I8)
                b.call(e.intrinsic("llvm.memcpy.p0.p0.i64", ir.VoidType(), [PTR, PTR, I64, ir.IntType(1)]),
                       [b.gep(rec_step, [start], source_etype=I8), at, n, ir.Constant(ir.IntType(1), 0)])
        e.store(b.trunc(b.load(nfired, typ=I64), I32), self.area[("ring_cnt", pop)],
                b.mul(slot, e.i64(count_stride(self.lay))), I32)
        self.add_counts(pop, start, stop, last)

    def add_counts(self, pop: Op, start, stop, last):
        """At the end of a period of :func:`.plan.count_period` steps and at the run's last step
        (``last``), add the byte counts of neurons ``start .. stop-1`` (``cnt8``) into their host count row
        and clear them (zero again for the next period and the next sample)."""
        e, b = self.e, self.e.b
        t1 = b.add(self.t, e.i64(1))
        due = b.or_(last, b.icmp_unsigned("==", b.urem(t1, e.i64(count_period(pop))), e.i64(0)))
        cnt8, count_row, count_t = self.area[("cnt8", pop)], self.row[("count", pop)], ir_type(COUNT_DTYPE)
        with e.when(due):
            with e.loop(start, stop, "cnt") as i:  # (vectorised by LLVM)
                e.store(b.add(e.load(count_row, i, count_t), b.zext(e.load(cnt8, i, I8), count_t)), count_row, i, count_t)
                e.store(ir.Constant(I8, 0), cnt8, i, I8)

    def group_width(self, pop: Op) -> int:
        """Neurons per group of :meth:`update`: 16 for i32 lanes (:func:`.plan.lanes32`) on an
        AVX-512 host (one 512-bit register per quantity), else 8."""
        feats = self.lay.features if self.lay.features is not None else host_features()
        return 16 if lanes32(pop) and "avx512bw" in feats else 8

    def part_range(self, pop: Op):
        """``(start, stop)``: the neurons of ``pop`` in the part being run (all of them when
        the network is not split); inner bounds are multiples of 8 (:func:`.plan.split_parts`)."""
        size = pop.result.type.size
        if self.part is None:
            return self.e.i64(0), self.e.i64(size)
        table = self.e.const_array(np.asarray(self.lay.parts[pop], np.int64), "parts")[0]
        return self.e.load(table, self.part, I64), self.e.load(table, self.e.b.add(self.part, self.e.i64(1)), I64)

    def list8(self, lut, lst, nfired, bits, first):
        """Append the neurons ``first + i`` for the set bits ``i`` of the i8 ``bits`` to the
        spike list ``lst`` at ``nfired``, without branches: the 8 indices of the set bits
        (:data:`.tables.SPIKE_LUT`) plus ``first`` are stored as one vector, and ``nfired`` advances
        by their number.  Lanes past them are overwritten by the next call, or lie past the
        list's count; ``nfired <= first`` keeps every store in the slot's
        :func:`.plan.list_stride` entries."""
        e, b = self.e, self.e.b
        vi = ir.VectorType(I32, 8)
        m = b.zext(bits, I64)
        idx = b.load(b.gep(lut, [b.shl(m, e.i64(3))], source_etype=I8), typ=ir.VectorType(I8, 8), align=1)
        base = b.insert_element(ir.Constant(vi, None), b.trunc(first, I32), ir.Constant(I32, 0))
        base = b.shuffle_vector(base, ir.Constant(vi, None), ir.Constant(vi, [0] * 8))
        n = b.load(nfired, typ=I64)
        b.store(b.add(b.zext(idx, vi), base), b.gep(lst, [n], source_etype=I32), align=4)
        b.store(b.add(n, b.ctpop(m)), nfired)

    def list16(self, lst, nfired, fired, bits, first):
        """:meth:`list8` for 16 neurons on an AVX-512 host: the indices ``first + i`` of the set
        lanes of the <16 x i1> ``fired`` packed by ``vpcompressd`` (register form) and stored
        as one vector; ``nfired`` advances by the popcount of the i16 ``bits``."""
        e, b = self.e, self.e.b
        v16 = ir.VectorType(I32, 16)
        base = b.insert_element(ir.Constant(v16, None), b.trunc(first, I32), ir.Constant(I32, 0))
        base = b.shuffle_vector(base, ir.Constant(v16, None), ir.Constant(v16, [0] * 16))
        compress = e.intrinsic("llvm.x86.avx512.mask.compress.v16i32", v16, [v16, v16, fired.type])
        packed = b.call(compress, [b.add(base, ir.Constant(v16, list(range(16)))), ir.Constant(v16, None), fired])
        n = b.load(nfired, typ=I64)
        b.store(packed, b.gep(lst, [n], source_etype=I32), align=4)
        b.store(b.add(n, b.zext(b.ctpop(bits), I64)), nfired)

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


def lower(net: Network, kernels: str = "auto", schedule: str = "auto",
          split: bool = True) -> tuple[ir.Module, Layout, dict[str, np.ndarray]]:
    """The LLVM module running ``net``, the layout of its buffers, and the contents of the
    external constants it declares (symbol → bytes); ``kernels``, ``schedule`` and ``split``
    as for :func:`.plan.plan`."""
    lay = plan(net, kernels, schedule, split=split)
    lowering = Lowering(net, lay)
    return lowering.lower(), lay, lowering.e.external

"""The CPU runtime for graphs of bit-shift neurons (``snn.population`` with ``leak = shift``).

One LLVM function advances a batch by one step: for each population, in graph order, each
input's events of the previous step are delivered one source at a time, each event saturating
its synaptic current at once (:func:`nmc.neuron.deliver_in_order`), then every neuron leaks,
integrates and fires (:class:`nmc.neuron.ShiftNeuronState`); the host loops over the steps
and keeps spike counts, recordings and the synaptic-op count.  Bit-identical to the reference
semantics (tests/test_edge.py).  Kept apart from the linear-leak lowering (:mod:`.emit`):
these networks are small recurrent fabrics, delivered in order, where that lowering's layouts
and kernels are built around sums.

Supported: ``spikes`` encoders read straight from graph inputs, projections with delay 1 of
any stateless kind (expanded to their ``[target, source]`` matrices), every population
bit-shift; anything else is refused with an NmcError.
"""

from __future__ import annotations

import ctypes

import numpy as np
from llvmlite import ir

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op, param_array
from nmc.runner import RunResult

from .emit import I64, Emitter
from .jit import compile_module

FUNCTION = "nmc_shift_step"


def is_shift_graph(graph: Graph) -> bool:
    return any(p.leak == "shift" for p in graph.walk("snn.population"))


class ShiftNetwork:
    """The graph's encoders, populations and projections, with the arrays the step reads."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.encoders = graph.walk("snn.encode")
        self.pops = graph.walk("snn.population")
        for e in self.encoders:
            if e.encoding != "spikes":
                raise NmcError(f"the CPU runtime runs bit-shift networks from 'spikes' inputs; this encoder is "
                               f"'{e.encoding}'", e.loc, hint="run with --backend reference")
        for pop in self.pops:
            if pop.leak != "shift":
                raise NmcError("the CPU runtime runs a graph of bit-shift neurons only if all its populations are",
                               pop.loc, hint="run with --backend reference")
            for c in pop.currents:
                if c.owner.delay != 1 or c.owner.kind == "maxgate":
                    raise NmcError("the CPU runtime's bit-shift lowering takes stateless projections of delay 1",
                                   c.owner.loc, hint="run with --backend reference")
        self.matrices = {c.owner: np.ascontiguousarray(semantics.weight_matrix(c.owner), dtype=np.int64)
                         for pop in self.pops for c in pop.currents}
        self.params = {}
        for pop in self.pops:
            shape = pop.result.type.shape
            p = {n: param_array(getattr(pop, n), shape, np.int64).reshape(-1)
                 for n in ("threshold", "bias", "du", "du2", "dv", "v0")}
            self.params[pop] = {"du": np.ascontiguousarray(np.stack([p["du"], p["du2"]])), "dv": p["dv"],
                                "threshold": p["threshold"], "bias": p["bias"], "v0": p["v0"]}
        self.fanouts = {p: semantics.fanout(p) for p in self.matrices}

    # -- slots: every array the step function reads or writes, by (kind, op) -------------------

    def slots(self) -> list[tuple[str, Op]]:
        out = [("enc", e) for e in self.encoders]
        for pop in self.pops:
            out += [("u", pop), ("v", pop), ("prev", pop), ("cur", pop), ("du", pop), ("dv", pop),
                    ("threshold", pop), ("bias", pop)]
        out += [("w", p) for p in self.matrices]
        return out


def lower(net: ShiftNetwork) -> str:
    """The LLVM IR text of ``void nmc_shift_step(i64 batch, i64** slots)``."""
    module = ir.Module(name="nmc_shift")
    ptr = I64.as_pointer()
    fn = ir.Function(module, ir.FunctionType(ir.VoidType(), [I64, ptr.as_pointer()]), name=FUNCTION)
    em = Emitter(module, fn)
    b = em.b
    batch, table = fn.args
    index = {slot: i for i, slot in enumerate(net.slots())}

    def slot(kind, op):
        return b.load(b.gep(table, [em.i64(index[(kind, op)])], source_etype=ptr, inbounds=True), typ=ptr)

    def clamp(x, bits):
        hi, lo = em.i64((1 << (bits - 1)) - 1), em.i64(-(1 << (bits - 1)))
        x = b.select(b.icmp_signed(">", x, hi), hi, x)
        return b.select(b.icmp_signed("<", x, lo), lo, x)

    def shd(x, d):  # x >> d, or sign(x) where that is 0
        dx = b.ashr(x, d)
        sign = b.select(b.icmp_signed(">", x, em.i64(0)), em.i64(1),
                        b.select(b.icmp_signed("<", x, em.i64(0)), em.i64(-1), em.i64(0)))
        return b.select(b.icmp_signed("==", dx, em.i64(0)), sign, dx)

    for pop in net.pops:
        n = pop.result.type.size
        bits = pop.bits
        u = slot("u", pop)
        for c, k in zip(pop.currents, pop.synapse or (0,) * len(pop.currents)):
            p = c.owner
            src = p.src.owner
            events = slot("enc", src) if src.KIND == "snn.encode" else slot("prev", src)
            w = slot("w", p)
            m = p.src.type.size
            with em.loop(0, batch, "b") as bi:
                with em.loop(0, m, "j") as j:
                    count = em.load(events, b.add(b.mul(bi, em.i64(m)), j), I64)
                    with em.when(b.icmp_signed("!=", count, em.i64(0))):
                        base = b.mul(b.add(b.mul(em.i64(k), batch), bi), em.i64(n))
                        with em.loop(0, n, "i") as i:
                            weight = em.load(w, b.add(b.mul(i, em.i64(m)), j), I64)
                            at = b.add(base, i)
                            em.store(clamp(b.add(em.load(u, at, I64), b.mul(count, weight)), bits), u, at, I64)
        v, cur = slot("v", pop), slot("cur", pop)
        du, dv, th, bias = slot("du", pop), slot("dv", pop), slot("threshold", pop), slot("bias", pop)
        top = em.i64(1 << (bits - 1))
        with em.loop(0, batch, "b") as bi:
            with em.loop(0, n, "i") as i:
                total = em.i64(0)
                for k in range(2):
                    at = b.add(b.mul(b.add(b.mul(em.i64(k), batch), bi), em.i64(n)), i)
                    x = em.load(u, at, I64)
                    x = b.sub(x, shd(x, em.load(du, b.add(em.i64(k * n), i), I64)))
                    em.store(x, u, at, I64)
                    total = b.add(total, x)
                at = b.add(b.mul(bi, em.i64(n)), i)
                vv = em.load(v, at, I64)
                leak = b.sub(em.i64(0), shd(vv, em.load(dv, i, I64)))
                leak = b.select(b.icmp_signed("==", leak, top), b.sub(em.i64(0), top), leak)
                d = clamp(b.add(leak, total), bits)
                d = clamp(b.add(d, em.load(bias, i, I64)), bits)
                vv = clamp(b.add(vv, d), bits)
                theta = em.load(th, i, I64)
                fires = b.icmp_signed(">=", vv, theta)
                many = b.add(b.sdiv(b.sub(vv, theta), theta), em.i64(1))
                limit = em.i64(pop.max_spikes)
                many = b.select(b.icmp_signed(">", many, limit), limit, many)
                events = b.select(fires, many, em.i64(0))
                if pop.reset == "zero":
                    vv = b.select(fires, em.i64(0), vv)
                else:
                    vv = b.sub(vv, b.mul(events, theta))
                em.store(vv, v, at, I64)
                em.store(events, cur, at, I64)
    b.ret_void()
    return str(module)


def prepare_shift(graph: Graph, cache: bool = True):
    """``execute(inputs, timesteps=None, record=None) -> RunResult`` (module docstring)."""
    from nmc.runner import population_names

    net = ShiftNetwork(graph)
    compiled = compile_module(lower(net), FUNCTION, cache=cache)
    step = ctypes.CFUNCTYPE(None, ctypes.c_int64, ctypes.c_void_p)(compiled.address)
    trains = semantics.train_inputs(graph)
    pre, _, post = semantics.split_host(graph)

    def execute(inputs, timesteps=None, record=None):
        host, batch = semantics.bind_inputs(graph, inputs, trains)
        semantics.host_ops(graph, host, pre, batch)
        T = semantics.resolve_timesteps(graph, net.encoders, host, timesteps)
        steps = semantics.latency_steps(graph, T)
        recorded_pops = set(population_names(graph, record))
        arrays: dict = {}
        for kind, op in net.slots():
            if kind == "enc":
                arrays[(kind, op)] = np.zeros((batch, op.result.type.size), np.int64)
            elif kind == "u":
                arrays[(kind, op)] = np.zeros((2, batch, op.result.type.size), np.int64)
            elif kind == "v":
                arrays[(kind, op)] = np.tile(net.params[op]["v0"], (batch, 1))
            elif kind in ("prev", "cur"):
                arrays[(kind, op)] = np.zeros((batch, op.result.type.size), np.int64)
            elif kind == "w":
                arrays[(kind, op)] = net.matrices[op]
            else:
                arrays[(kind, op)] = np.ascontiguousarray(net.params[op][kind])
        keys = net.slots()
        counts = {pop: np.zeros((batch, pop.result.type.size), np.int64) for pop in net.pops}
        rec = {pop: np.zeros((batch, steps, pop.result.type.size), np.int64) for pop in net.pops if pop in recorded_pops}
        synaptic_ops = 0
        trains_in = {e: host[e.x].reshape(batch, -1, e.result.type.size) for e in net.encoders}
        for t in range(steps):
            for e in net.encoders:
                arrays[("enc", e)][:] = trains_in[e][:, t] if t < T else 0
            table = (ctypes.c_void_p * len(keys))(*[arrays[k].ctypes.data for k in keys])
            step(batch, ctypes.cast(table, ctypes.c_void_p))
            for p, fan in net.fanouts.items():
                src = p.src.owner
                s = arrays[("enc", src)] if src.KIND == "snn.encode" else arrays[("prev", src)]
                synaptic_ops += int(np.sum((s != 0) @ fan))
            for pop in net.pops:
                cur = arrays[("cur", pop)]
                counts[pop] += cur
                if pop in rec:
                    rec[pop][:, t] = cur
                arrays[("prev", pop)][:] = cur
        outputs_by_value, voltages_by_value = {}, {}
        for d in graph.walk("snn.decode"):
            pop = d.x.owner
            shape = (batch, *pop.result.type.shape)
            final_v = arrays[("v", pop)].reshape(shape).astype(np.float32)
            outputs_by_value[d.result] = final_v if d.mode == "membrane" else counts[pop].reshape(shape).astype(np.float32)
            voltages_by_value[d.result] = final_v
        host.update(outputs_by_value)
        semantics.host_ops(graph, host, post, batch)
        names = {p: p.result.name or f"population{i}" for i, p in enumerate(net.pops)}
        return RunResult("cpu", [host[v] for v in graph.outputs],
                         voltages=[voltages_by_value.get(v) for v in graph.outputs],
                         recorded={names[p]: r.reshape((batch, steps, *p.result.type.shape)) for p, r in rec.items()},
                         timesteps=T, steps=steps, spikes=int(sum(int(c.sum()) for c in counts.values())),
                         synaptic_ops=synaptic_ops, stats={"from_cache": compiled.from_cache, "lowering": "shift"})

    return execute

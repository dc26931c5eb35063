"""The CPU runtime (targets/cpu) against the reference semantics (docs/design.md §5, §6).

Integer graphs must agree bit for bit with :mod:`nmc.semantics` — outputs, final voltages,
recorded spike trains, spike counts and synaptic operations — on random small graphs that
use every projection kind, delays 1–3, recurrence, scalar and per-neuron parameters, both
reset modes, small state widths that saturate, and every encoding.  Float graphs use dyadic
weights and parameters, so the reference's sums are exact whatever their order and the two
executors must agree far inside the rtol 1e-5 the design allows.

Dense projections have two kernels (event lists, and the dense kernel chosen from a source's
known firing rate): the properties run every graph with each forced, on graphs whose
encoders and populations sometimes carry a ``calib.rate``.  Feed-forward graphs may run layer
by layer (the ``layer`` schedule, with the time-batched kernel for dense layers): random
feed-forward graphs run under both schedules, and graphs with recurrence must never take it.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nmc
from nmc import neuron, semantics
from nmc.diagnostics import NmcError, UsageError
from nmc.ir import ann, snn
from nmc.ir.ann import pooled_size
from nmc.ir.core import Blob, Graph
from nmc.ir.parser import parse_ir
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.targets import cpu
from nmc.targets.cpu import emit, jit, plan, tables
from nmc.targets.cpu.plan import Network, feed_forward_order

# ----------------------------------------------------------------------------- strategies


class _Kind:
    """Integer (with a state width) or float choices for weights and parameters."""

    def __init__(self, draw, integer: bool):
        self.integer = integer
        self.bits = draw(st.sampled_from([8, 8, 12, 24, 31, 32])) if integer else 0

    def weights(self, draw, shape) -> Blob:
        n = int(np.prod(shape))
        if self.integer:
            big = 120 if self.bits == 8 else 40  # large enough that 8-bit states saturate
            dtype = draw(st.sampled_from([np.int8, np.int16, np.int32]))
            vals = draw(st.lists(st.integers(-big, big), min_size=n, max_size=n))
            return Blob(np.asarray(vals, dtype=np.int64).astype(dtype).reshape(shape))
        vals = draw(st.lists(st.integers(-24, 24), min_size=n, max_size=n))
        return Blob((np.asarray(vals, dtype=np.float32) / 16).reshape(shape))

    def number(self, draw):
        return draw(st.integers(-60, 60)) if self.integer else draw(st.integers(-24, 24)) / 16

    def param(self, draw, name: str, shape):
        """None (the default), a number, or a blob broadcast to ``shape``."""
        form = draw(st.sampled_from(["default", "number", "blob"]))
        if form == "default":
            return None
        if name in ("du", "dv"):
            pick = st.sampled_from([0, 4096, 1024, 3000]) | st.integers(0, 4096)
        elif self.integer:
            top = min((1 << (self.bits - 1)) - 1, 150)
            pick = {"threshold": st.integers(1, top), "bias": st.integers(-6, 6), "v0": st.integers(-20, 20)}[name]
        else:
            pick = {"threshold": st.integers(1, 24), "bias": st.integers(-4, 4), "v0": st.integers(-8, 8)}[name]
            pick = pick.map(lambda k: k / 8)
        if form == "number":
            return draw(pick)
        bshape = shape if draw(st.booleans()) else (1,) * (len(shape) - 1) + (shape[-1],)
        vals = draw(st.lists(pick, min_size=int(np.prod(bshape)), max_size=int(np.prod(bshape))))
        dtype = np.int32 if self.integer and name not in ("du", "dv") else np.float32
        return Blob(np.asarray(vals, dtype=dtype).reshape(bshape))


@st.composite
def _window(draw, sizes, dilate: bool):
    kernel, strides, pads, dils = [], [], [0, 0, 0, 0], []
    for axis, size in enumerate(sizes):
        k = draw(st.integers(1, min(3, size)))
        d = draw(st.integers(1, 2)) if dilate and (k - 1) * 2 + 1 <= size else 1
        pads[axis], pads[2 + axis] = draw(st.integers(0, k - 1)), draw(st.integers(0, k - 1))
        kernel.append(k), strides.append(draw(st.integers(1, 2))), dils.append(d)
    return tuple(kernel), tuple(strides), tuple(pads), tuple(dils)


def _project(draw, g: Graph, kind_of: _Kind, src, kind: str, out_size: int | None = None):
    common = dict(delay=draw(st.integers(1, 3)), exponent=draw(st.sampled_from([0, 0, 1, 2])))
    shape = src.type.shape
    if kind == "dense":
        out = out_size or draw(st.integers(1, 6))
        op = snn.Project(src=src, kind="dense", weight=kind_of.weights(draw, (out, src.type.size)), **common)
    elif kind == "conv2d":
        c = shape[0]
        groups = draw(st.sampled_from([k for k in (1, 2) if c % k == 0]))
        out = groups * draw(st.integers(1, 2))
        kernel, strides, pads, dils = draw(_window(shape[1:], True))
        op = snn.Project(src=src, kind="conv2d", weight=kind_of.weights(draw, (out, c // groups, *kernel)),
                         strides=strides, pads=pads, dilations=dils, groups=groups, **common)
    elif kind in ("pool", "maxgate"):
        kernel, strides, pads, _ = draw(_window(shape[1:], False))
        out = (shape[0], *(pooled_size(shape[1 + i], kernel[i], strides[i], pads[i], pads[2 + i], 1, False)
                           for i in range(2)))
        weight = kind_of.number(draw) if draw(st.booleans()) else kind_of.weights(draw, out)
        op = snn.Project(src=src, kind=kind, weight=weight, kernel=kernel, strides=strides, pads=pads, **common)
    elif kind == "one_to_one":
        weight = kind_of.number(draw) if draw(st.booleans()) else kind_of.weights(draw, shape)
        op = snn.Project(src=src, kind="one_to_one", weight=weight, **common)
    else:  # sparse
        n, m = src.type.size, out_size or draw(st.integers(1, 8))
        counts = draw(st.lists(st.integers(0, 3), min_size=n, max_size=n))
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
        nnz = int(indptr[-1])
        indices = np.asarray(draw(st.lists(st.integers(0, m - 1), min_size=nnz, max_size=nnz)), dtype=np.int32)
        op = snn.Project(src=src, kind="sparse", weight=kind_of.weights(draw, (nnz,)), indptr=Blob(indptr),
                         indices=Blob(indices), shape=(m,), **common)
    return g.add(op)


@st.composite
def networks(draw, integer: bool, recurrent: bool = True, dense_bias: bool = False, gates: bool = False) -> Graph:
    """input → encode → 1–3 populations fed by projections of every kind (some from earlier
    populations, some recurrent unless ``recurrent`` is false) → decode → output.
    ``dense_bias``: draw dense projections more often (the time-batched kernel runs them).
    ``gates``: draw ``maxgate`` projections too, often (stateful: running counts per sample)."""
    kind_of = _Kind(draw, integer)
    g = Graph("net")
    shape = (draw(st.integers(1, 2)), draw(st.integers(2, 5)), draw(st.integers(2, 5)))
    x = g.add(ann.Input(declared_type=TensorType(shape)), "x")
    encoding = draw(st.sampled_from(snn.ENCODINGS))
    enc = g.add(snn.Encode(x=x, encoding=encoding, seed=draw(st.integers(0, 2**31 - 1)),
                           scale=draw(st.sampled_from([1.0, 0.5, 3.0, 100.0])),
                           phase=draw(st.sampled_from([0, 128, 255])) if encoding == "rate" else 0), "s")
    rates = st.sampled_from([None, None, 0.02, 0.5, 1.0])  # calib.rate: absent, sparse, dense
    if (rate := draw(rates)) is not None:
        enc.owner.extra["calib.rate"] = rate
    sources, pops = [enc], []
    for layer in range(draw(st.integers(1, 3))):
        src = draw(st.sampled_from(sources))
        kinds = ["dense", "one_to_one", "sparse"] + (["conv2d", "pool"] if src.type.rank == 3 else [])
        kinds += ["dense"] * (len(kinds) if dense_bias else 0)
        kinds += ["maxgate"] * 3 if gates and src.type.rank == 3 else []
        first = _project(draw, g, kind_of, src, draw(st.sampled_from(kinds)))
        size = first.type.size
        currents = [first]
        if draw(st.booleans()):
            other = draw(st.sampled_from(sources))
            kinds = ["dense", "sparse"] + (["one_to_one"] if other.type.size == size else [])
            kinds += ["dense"] * (len(kinds) if dense_bias else 0)
            currents.append(_project(draw, g, kind_of, other, draw(st.sampled_from(kinds)), out_size=size))
        pshape = first.type.shape if len(first.type.shape) == 3 or draw(st.booleans()) else (size,)
        params = {name: kind_of.param(draw, name, pshape) for name in snn.Population.PARAMS}
        pop = snn.Population(currents=currents, declared_type=SpikeType(tuple(pshape)),
                             reset=draw(st.sampled_from(snn.RESETS)), bits=kind_of.bits,
                             **{k: v for k, v in params.items() if v is not None})
        g.add(pop, f"h{layer}")
        if (rate := draw(rates)) is not None:
            pop.extra["calib.rate"] = rate
        pops.append(pop)
        sources.append(pop.result)
    for _ in range(draw(st.integers(0, 2)) if recurrent else 0):  # recurrent (or backward) projections
        i = draw(st.integers(0, len(pops) - 1))
        j = draw(st.integers(i, len(pops) - 1))
        target = pops[i]
        kind = draw(st.sampled_from(["dense", "sparse"]))
        target.currents.append(_project(draw, g, kind_of, pops[j].result, kind, out_size=target.result.type.size))
    outs = []
    for pop in [pops[-1], *draw(st.lists(st.sampled_from(pops), max_size=1))]:
        outs.append(g.add(snn.Decode(x=pop.result, mode=draw(st.sampled_from(["count", "membrane"])))))
    g.add(ann.Output(values=outs))
    verify(g)
    return g


def inputs_for(graph: Graph, timesteps: int, batch: int = 3, seed: int = 0) -> list[np.ndarray]:
    """Dyadic inputs in [0, 1] (spike counts 0–2 with a time axis for ``spikes`` encoders)."""
    rng = np.random.default_rng(seed)
    (x,) = graph.inputs
    trains = any(u.KIND == "snn.encode" and u.encoding == "spikes" for u in graph.users(x))
    if trains:
        return [rng.integers(0, 3, size=(batch, timesteps, *x.type.shape)).astype(np.float32)]
    return [(rng.integers(0, 17, size=(batch, *x.type.shape)) / 16).astype(np.float32)]


# ------------------------------------------------------------------------------- helpers


def compare(graph: Graph, inputs, timesteps: int, exact: bool, threads: int | None = None,
            kernels: tuple[str, ...] = ("auto",), schedules: tuple[str, ...] = ("auto",)):
    """Run both executors (the CPU runtime once per choice of ``kernels`` and ``schedules``),
    recording every population; assert they agree."""
    pops = graph.walk("snn.population")
    ref = semantics.run_snn(graph, inputs, timesteps=timesteps, record=pops)
    for k in kernels:
        for sched in schedules:
            got = cpu.prepare(graph, cache=False, threads=threads, kernels=k, schedule=sched)(
                inputs, timesteps=timesteps, record="all")
            _agree(got, ref, pops, exact)
    return got, ref


def _agree(got, ref, pops, exact: bool):
    check = (np.testing.assert_array_equal if exact
             else lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-9))
    assert (got.timesteps, got.steps) == (ref.timesteps, ref.steps)
    for a, b in zip(got.outputs, ref.outputs):
        check(a, b)
    for a, b in zip(got.voltages, ref.voltages):
        check(a, b)
    for pop in pops:
        np.testing.assert_array_equal(got.recorded[pop.result.name], ref.spikes[pop])
    assert got.spikes == ref.spike_count
    assert got.synaptic_ops == ref.synaptic_ops


# --------------------------------------------------------------------------------- tests

PROPERTY = settings(max_examples=60, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.mark.slow
@PROPERTY
@given(networks(integer=True), st.integers(1, 6))
def test_integer_graphs_are_bit_identical_to_the_reference(graph, timesteps):
    compare(graph, inputs_for(graph, timesteps), timesteps, exact=True, kernels=("auto", "event", "dense"))


@settings(PROPERTY, max_examples=4)
@given(networks(integer=True), st.integers(1, 6))
def test_a_few_integer_graphs_are_bit_identical_to_the_reference(graph, timesteps):
    # the fast tier's sample of the property above (the slow tier draws 60 graphs)
    compare(graph, inputs_for(graph, timesteps), timesteps, exact=True, kernels=("auto", "event", "dense"))


@pytest.mark.slow
@PROPERTY
@given(networks(integer=False), st.integers(1, 6))
def test_float_graphs_agree_with_the_reference(graph, timesteps):
    compare(graph, inputs_for(graph, timesteps), timesteps, exact=False, kernels=("event", "dense"))


@pytest.mark.slow
@PROPERTY
@given(networks(integer=True, gates=True), st.integers(1, 8))
def test_maxgate_graphs_are_bit_identical_to_the_reference(graph, timesteps):
    # max-pool gates keep running counts per sample: several samples (on two threads), both
    # schedules where the network is feed-forward, every kernel
    schedules = ("step", "layer") if feed_forward_order(Network.of(graph)) else ("step",)
    compare(graph, inputs_for(graph, timesteps, batch=5), timesteps, exact=True, threads=2,
            kernels=("auto", "event", "dense"), schedules=schedules)


@pytest.mark.slow
@PROPERTY
@given(networks(integer=False, gates=True), st.integers(1, 8))
def test_maxgate_float_graphs_agree_with_the_reference(graph, timesteps):
    schedules = ("step", "layer") if feed_forward_order(Network.of(graph)) else ("step",)
    compare(graph, inputs_for(graph, timesteps, batch=5), timesteps, exact=False, threads=2,
            kernels=("event", "dense"), schedules=schedules)


LIF_TEXT = """graph @g
%x = ann.input : tensor<2x6x6xf32>
%s = snn.encode(%x) {encoding = rate} : spikes<2x6x6>
%c = snn.project(%s) {kind = conv2d, pads = [1, 1, 0, 0], strides = [2, 1], weight = random<uniform, seed = 1, scale = 40> : tensor<3x2x3x3xi16>} : current<3x3x5>
%h = snn.population(%c, %r) {bits = 8, du = 1000, dv = 300, threshold = 50} : spikes<3x3x5>
%p = snn.project(%h) {delay = 2, kernel = [2, 2], kind = pool, strides = [1, 2], weight = 7} : current<3x2x2>
%h2 = snn.population(%p) {bits = 24, reset = zero, threshold = 10} : spikes<3x2x2>
%d = snn.project(%h2) {exponent = 1, kind = dense, weight = random<uniform, seed = 2, scale = 30> : tensor<5x12xi8>} : current<5>
%r = snn.project(%h) {delay = 3, kind = dense, weight = random<uniform, seed = 3, scale = 30> : tensor<45x45xi8>} : current<45>
%o = snn.population(%d) {bits = 16, threshold = 20} : spikes<5>
%y = snn.decode(%o) : tensor<5xf32>
ann.output(%y)
"""


def _lif_input(batch: int = 5) -> np.ndarray:
    return np.random.default_rng(0).random((batch, 2, 6, 6)).astype(np.float32)


def test_conv_pool_recurrent_network_matches_and_spikes():
    got, ref = compare(parse_ir(LIF_TEXT), [_lif_input()], 12, exact=True)
    assert ref.spike_count > 100 and ref.synaptic_ops > 10_000  # the comparison is not vacuous
    assert got.outputs[0].sum() > 0


GATE_TEXT = """graph @gate
%x = ann.input : tensor<2x6x6xf32>
%s = snn.encode(%x) {{encoding = rate}} : spikes<2x6x6>
%c = snn.project(%s) {{kind = conv2d, pads = [1, 1, 1, 1], weight = random<uniform, seed = 1, scale = {scale}> : tensor<3x2x3x3x{wt}>}} : current<3x6x6>
%h = snn.population(%c) {{{bits}threshold = {th}}} : spikes<3x6x6>
%g = snn.project(%h) {{delay = 2, kernel = [3, 3], kind = maxgate, pads = [1, 1, 0, 0], strides = [2, 2], weight = {w}}} : current<3x3x3>
%m = snn.population(%g) {{{bits}reset = zero, threshold = {half}}} : spikes<3x3x3>
%d = snn.project(%m) {{kind = dense, weight = random<uniform, seed = 2, scale = {scale}> : tensor<4x27x{wt}>}} : current<4>
%o = snn.population(%d) {{{bits}threshold = {th}}} : spikes<4>
%y = snn.decode(%o) : tensor<4xf32>
ann.output(%y)
"""


@pytest.mark.parametrize("integer", [True, False])
def test_maxgate_fed_by_a_population_matches_under_both_schedules(integer):
    text = GATE_TEXT.format(scale=40 if integer else 1.0, wt="i8" if integer else "f32", bits="bits = 16, " if integer else "",
                            th=30 if integer else 0.75, w=3 if integer else 1.0, half=1 if integer else 0.5)
    g = parse_ir(text)
    got, ref = compare(g, [_lif_input(6)], 20, exact=integer, threads=2, schedules=("step", "layer"))
    gate = g.walk("snn.population")[1]
    assert ref.counts[gate].sum() > 50 and got.outputs[0].sum() > 0  # not vacuous


@pytest.mark.slow
def test_results_do_not_depend_on_the_thread_count():
    g = parse_ir(LIF_TEXT)
    x = [_lif_input(7)]
    runs = [cpu.prepare(g, cache=False, threads=k)(x, timesteps=9, record="all") for k in (1, 2, 3)]
    for r in runs[1:]:
        assert r.stats["threads"] != runs[0].stats["threads"]
        np.testing.assert_array_equal(r.outputs[0], runs[0].outputs[0])
        np.testing.assert_array_equal(r.voltages[0], runs[0].voltages[0])
        assert r.recorded.keys() == runs[0].recorded.keys()
        for k in r.recorded:
            np.testing.assert_array_equal(r.recorded[k], runs[0].recorded[k])
        assert (r.spikes, r.synaptic_ops) == (runs[0].spikes, runs[0].synaptic_ops)


def test_second_prepare_loads_the_object_from_the_disk_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NMC_NO_CACHE", raising=False)
    g = parse_ir(LIF_TEXT)
    before = dict(jit.STATS)
    first = cpu.prepare(g)
    assert (jit.STATS["compiled"], jit.STATS["loaded"]) == (before["compiled"] + 1, before["loaded"])
    assert len(list(tmp_path.glob("*.o"))) == 1
    second = cpu.prepare(parse_ir(LIF_TEXT))
    assert (jit.STATS["compiled"], jit.STATS["loaded"]) == (before["compiled"] + 1, before["loaded"] + 1)
    x = [_lif_input()]
    a, b = first(x, timesteps=8), second(x, timesteps=8)
    assert not a.stats["from_cache"] and b.stats["from_cache"]
    np.testing.assert_array_equal(a.outputs[0], b.outputs[0])
    np.testing.assert_array_equal(a.voltages[0], b.voltages[0])


def test_cache_can_be_disabled(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    monkeypatch.setenv("NMC_NO_CACHE", "1")
    before = jit.STATS["compiled"]
    cpu.prepare(parse_ir(LIF_TEXT))
    cpu.prepare(parse_ir(LIF_TEXT))
    monkeypatch.delenv("NMC_NO_CACHE")
    cpu.prepare(parse_ir(LIF_TEXT), cache=False)
    assert jit.STATS["compiled"] == before + 3
    assert list(tmp_path.iterdir()) == []


def test_runner_backend_cpu_runs_a_graph(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    g = parse_ir(LIF_TEXT)
    x = _lif_input(3)
    got = nmc.runner.run(g, x, backend="cpu", timesteps=6)
    ref = nmc.runner.run(g, x, backend="reference", timesteps=6)
    assert got.backend == "cpu"
    np.testing.assert_array_equal(got.outputs[0], ref.outputs[0])
    assert (got.spikes, got.synaptic_ops, got.steps) == (ref.spikes, ref.synaptic_ops, ref.steps)


def test_a_graph_is_verified_before_lowering():
    text = """graph @g
%x = ann.input : tensor<3xf32>
%s = snn.encode(%x) : spikes<3>
%c = snn.project(%s) {kind = one_to_one, weight = 0.5} : current<3>
%h = snn.population(%c) {bits = 16, threshold = 4} : spikes<3>
%y = snn.decode(%h) : tensor<3xf32>
ann.output(%y)
"""
    graph = parse_ir(text.replace("weight = 0.5", "weight = dense<[1, 1, 1]> : tensor<3xi8>"), "mixed.nmir")
    graph.walk("snn.project")[0].weight = 0.5  # a later rewrite broke the graph
    with pytest.raises(NmcError, match="integer weights") as info:
        cpu.prepare(graph, cache=False)
    assert "mixed.nmir:4" in str(info.value)


def test_an_ann_graph_is_refused():
    text = """graph @g
%x = ann.input : tensor<3xf32>
%y = ann.relu(%x) : tensor<3xf32>
ann.output(%y)
"""
    with pytest.raises(UsageError, match="spiking"):
        cpu.prepare(parse_ir(text))


@pytest.mark.slow
def test_tables_outside_the_ir_are_bound_also_when_loaded_from_the_cache(tmp_path, monkeypatch):

    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NMC_NO_CACHE", raising=False)
    monkeypatch.setattr(emit, "EMBED_BYTES", 0)  # every table becomes an external constant
    g = parse_ir(LIF_TEXT)
    module, _, external = emit.lower(plan.Network.of(g))
    assert external and all(name in str(module) for name in external)
    x = [_lif_input()]
    ref = semantics.run_snn(g, x, timesteps=7)
    for expect_cached in (False, True):
        got = cpu.prepare(parse_ir(LIF_TEXT))(x, timesteps=7)
        assert got.stats["from_cache"] is expect_cached
        np.testing.assert_array_equal(got.outputs[0], ref.outputs[0])
        np.testing.assert_array_equal(got.voltages[0], ref.voltages[0])
        assert got.synaptic_ops == ref.synaptic_ops


def test_changing_a_large_weight_changes_the_cache_key():

    w = np.ones((300, 300), dtype=np.int8)
    keys = []
    for value in (1, 2):
        g = Graph("big")
        x = g.add(ann.Input(declared_type=TensorType((300,))), "x")
        s = g.add(snn.Encode(x=x), "s")
        c = g.add(snn.Project(src=s, kind="dense", weight=Blob(w * value)))
        pop = snn.Population(currents=[c], declared_type=SpikeType((300,)), bits=16, threshold=100)
        g.add(pop, "h")
        g.add(ann.Output(values=[g.add(snn.Decode(x=pop.result))]))
        module, _, external = emit.lower(plan.Network.of(g))
        assert len(external) == 1  # 90 KB of weights: outside the IR text
        keys.append(jit.cache_key(str(module)))
    assert keys[0] != keys[1]


FLOAT_TEXT = """graph @f
%x = ann.input : tensor<2x6x6xf32>
%s = snn.encode(%x) {encoding = current, scale = 0.7} : spikes<2x6x6>
%c = snn.project(%s) {kind = conv2d, pads = [1, 1, 1, 1], weight = random<normal, seed = 4, scale = 0.3> : tensor<4x2x3x3xf32>} : current<4x6x6>
%h = snn.population(%c, %r) {du = 700, dv = 1234, threshold = THETA, bias = 0.01} : spikes<4x6x6>
%p = snn.project(%h) {kernel = [2, 2], kind = pool, strides = [2, 2], weight = 0.37} : current<4x3x3>
%o = snn.population(%p) {dv = 100, threshold = THETA} : spikes<4x3x3>
%r = snn.project(%h) {delay = 2, kind = dense, weight = random<normal, seed = 5, scale = 0.1> : tensor<144x144xf32>} : current<144>
%y = snn.decode(%h) {mode = membrane} : tensor<4x6x6xf32>
%z = snn.decode(%o) {mode = membrane} : tensor<4x3x3xf32>
ann.output(%y, %z)
"""


@pytest.mark.parametrize("theta", ["1.0e9", "0.8"])
def test_float_graph_with_arbitrary_weights_agrees_to_tolerance(theta):
    # Non-dyadic weights: sums depend on their order.  With theta = 1e9 no neuron fires, so
    # the voltages accumulate every rounding difference; with 0.8 neurons fire.
    g = parse_ir(FLOAT_TEXT.replace("THETA", theta))
    x = [np.random.default_rng(3).random((4, 2, 6, 6)).astype(np.float32)]
    got, ref = compare(g, x, 15, exact=False)
    assert np.abs(ref.outputs[0]).max() > 0.1
    if theta == "0.8":
        assert ref.spike_count > 100


def test_eight_bit_state_saturates_identically():
    # u = sat(300) = 127 at 8 bits; v would pass 127 without saturation and spike at theta 127
    text = """graph @sat
%x = ann.input : tensor<3xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<3>
%c = snn.project(%s) {kind = one_to_one, weight = dense<[300, -300, 100]> : tensor<3xi16>} : current<3>
%h = snn.population(%c) {bits = 8, du = 0, dv = 0, threshold = 127} : spikes<3>
%y = snn.decode(%h) {mode = membrane} : tensor<3xf32>
ann.output(%y)
"""
    x = [np.array([[[1, 1, 1], [1, 0, 1], [0, 0, 0]]], dtype=np.float32)]
    got, ref = compare(parse_ir(text), x, 3, exact=True)
    assert ref.outputs[0].tolist() == [[127.0, -128.0, 127.0]]
    assert ref.spike_count == 0


@pytest.mark.slow
def test_a_damaged_cache_file_is_compiled_again(tmp_path, monkeypatch):
    monkeypatch.setenv("NMC_CACHE_DIR", str(tmp_path))
    monkeypatch.delenv("NMC_NO_CACHE", raising=False)
    cpu.prepare(parse_ir(LIF_TEXT))
    (obj,) = tmp_path.glob("*.o")
    data = bytearray(obj.read_bytes())
    data[len(data) // 2] ^= 0xFF
    obj.write_bytes(bytes(data))
    before = jit.STATS["compiled"]
    again = cpu.prepare(parse_ir(LIF_TEXT))
    assert jit.STATS["compiled"] == before + 1
    x = [_lif_input()]
    ref = semantics.run_snn(parse_ir(LIF_TEXT), x, timesteps=6)
    np.testing.assert_array_equal(again(x, timesteps=6).outputs[0], ref.outputs[0])


def test_a_32_bit_voltage_after_reset_may_leave_32_bits():
    # bits = 32: v saturates to 2**31 - 1, and v - θ with θ = -2**31 is 2**32 - 1 (no
    # saturation after a reset, as in the reference): the state must not be held in 32 bits.
    text = """graph @wide
%x = ann.input : tensor<2xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<2>
%c = snn.project(%s) {kind = one_to_one, weight = dense<[1, 1]> : tensor<2xi32>} : current<2>
%h = snn.population(%c) {bits = 32, du = 0, dv = 4096, threshold = -2147483648, v0 = 2147483647, bias = 2147483647} : spikes<2>
%y = snn.decode(%h) {mode = membrane} : tensor<2xf32>
ann.output(%y)
"""
    x = [np.zeros((1, 2, 2), dtype=np.float32)]
    got, ref = compare(parse_ir(text), x, 2, exact=True)
    assert ref.outputs[0][0, 0] == np.float32(2**32 - 1)


def _features(g: Graph) -> set[str]:

    out = {f"auto-kernel-{'dense' if p in plan.plan(plan.Network.of(g)).dense else 'event'}"
           for p in g.walk("snn.project") if p.kind == "dense"}
    for p in g.walk("snn.project"):
        out |= {f"kind={p.kind}", f"delay={p.delay}"}
        if g.index(p.src.owner) > min(g.index(u) for u in g.users(p.result)):
            out.add("recurrent")
    for e in g.walk("snn.encode"):
        out.add(f"encoding={e.encoding}")
    for pop in g.walk("snn.population"):
        out |= {f"reset={pop.reset}", f"bits={pop.bits}"}
        out |= {f"blob-{n}" for n in snn.Population.PARAMS if isinstance(getattr(pop, n), Blob)}
        out |= {f"number-{n}" for n in snn.Population.PARAMS if not isinstance(getattr(pop, n), Blob)}
    return out


@pytest.mark.slow
@pytest.mark.parametrize("integer", [True, False])
def test_the_random_graphs_reach_every_feature(integer):
    """The property tests above mean something only if their graphs use every feature."""
    wanted = ({f"kind={k}" for k in snn.PROJECTION_KINDS if k != "maxgate"} | {f"delay={d}" for d in (1, 2, 3)}
              | {f"encoding={e}" for e in snn.ENCODINGS} | {f"reset={r}" for r in snn.RESETS} | {"recurrent"}
              | {f"{form}-{n}" for form in ("blob", "number") for n in snn.Population.PARAMS}
              | ({"bits=8", "bits=32", "auto-kernel-dense", "auto-kernel-event"} if integer else {"bits=0"}))
    seen: set[str] = set()

    @settings(max_examples=200, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(networks(integer=integer))
    def collect(graph):
        seen.update(_features(graph))

    collect()
    assert wanted <= seen, sorted(wanted - seen)

    # maxgate projections come from networks(gates=True) (their own properties), fed by
    # encoders and by populations
    gates: set[str] = set()

    @settings(max_examples=200, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(networks(integer=integer, gates=True))
    def collect_gates(graph):
        gates.update(f"maxgate-from-{p.src.owner.KIND}" for p in graph.walk("snn.project") if p.kind == "maxgate")

    collect_gates()
    assert gates == {"maxgate-from-snn.encode", "maxgate-from-snn.population"}


def _fed_population(weight_in: Blob, bits: int, sparse: tuple[np.ndarray, np.ndarray, Blob] | None = None,
                    exponent: int = 0) -> Graph:
    """spike train (4 inputs) → dense (or the given sparse synapses) → one population of 6
    neurons with a recurrent sparse projection."""
    g = Graph("fed")
    x = g.add(ann.Input(declared_type=TensorType((4,))), "x")
    s = g.add(snn.Encode(x=x, encoding="spikes"), "s")
    if sparse is None:
        c = g.add(snn.Project(src=s, kind="dense", weight=weight_in, exponent=exponent))
    else:
        indptr, indices, w = sparse
        c = g.add(snn.Project(src=s, kind="sparse", weight=w, indptr=Blob(indptr), indices=Blob(indices),
                              shape=(6,), exponent=exponent))
    pop = snn.Population(currents=[c], declared_type=SpikeType((6,)), bits=bits, threshold=3, du=1000, dv=10)
    g.add(pop, "h")
    r = g.add(snn.Project(src=pop.result, kind="sparse", weight=Blob(np.array([9, -7, 5, 11, -3, 2], np.int8)),
                          indptr=Blob(np.arange(7, dtype=np.int32)), indices=Blob(np.array([1, 2, 3, 4, 5, 0], np.int32)),
                          shape=(6,)))
    pop.currents.append(r)
    g.add(ann.Output(values=[g.add(snn.Decode(x=pop.result))]))
    verify(g)
    return g


@pytest.mark.parametrize("bits", [24, 30, 31])
def test_large_event_values_into_an_i32_accumulator_are_exact(bits):
    """Spike counts far beyond 1 reach an i32 accumulator through its i64 side accumulator,
    folded in clamped to ±2**30: currents of any size (within and beyond i32) still give the
    reference's saturated states."""

    g = _fed_population(Blob(np.array([[30000, -30000, 1, 0]] * 3 + [[-1, 2, -30000, 30000]] * 3, np.int16)), bits)
    pop = g.walk("snn.population")[0]
    layout = plan.plan(plan.Network.of(g))
    assert (pop in layout.narrow, pop in layout.wide) == (bits <= 30, bits <= 30)
    rng = np.random.default_rng(3)
    counts = np.array([0, 1, -1, 2, 35791, -35791, 71583, 2**20, -(2**21), 3 * 10**8], np.float32)
    trains = rng.choice(counts, size=(4, 30, 4)).astype(np.float32)
    trains[0, :, :2] = 1  # unit events only, and 30000 - 30000 in the same step
    compare(g, [trains], 30, exact=True, kernels=("event", "dense"))


@pytest.mark.parametrize("scale, exponent, layout_bits", [(100, 0, 16), (2**20, 0, 3), (2**29, 1, 0), (2**30, 2, 0)])
def test_every_sparse_synapse_table_layout_matches(scale, exponent, layout_bits):
    """Packed words (weight << bits | target; in 16-bit halves when both fit them) while the
    weights fit the bits the targets leave, else 32- or 64-bit (target, weight) records."""

    rng = np.random.default_rng(5)
    indptr = np.array([0, 3, 3, 7, 9], np.int32)
    indices = rng.integers(0, 6, 9).astype(np.int32)
    w = Blob((rng.integers(-scale, scale, 9)).astype(np.int64 if scale > 2**15 else np.int16))
    g = _fed_population(None, 32 if exponent == 2 else 24, (indptr, indices, w), exponent)
    table, bits, _ = tables.synapse_table(g.walk("snn.project")[0])
    assert bits == layout_bits and table.dtype == (np.int64 if exponent == 2 else np.int32)
    trains = rng.integers(0, 3, size=(3, 20, 4)).astype(np.float32)
    compare(g, [trains], 20, exact=True)


def _wide_layer(encoding: str, weight: np.ndarray, scale: float = 1.0, rate: float | None = None) -> Graph:
    """encoder (70 values: two 32-synapse blocks and a tail) → dense → population (bits 24)
    → dense → population, the hidden one with ``calib.rate`` = ``rate``."""
    g = Graph("wide")
    x = g.add(ann.Input(declared_type=TensorType((70,))), "x")
    s = g.add(snn.Encode(x=x, encoding=encoding, scale=scale), "s")
    c = g.add(snn.Project(src=s, kind="dense", weight=Blob(weight)))
    h = snn.Population(currents=[c], declared_type=SpikeType((40,)), bits=24, threshold=300, du=500)
    g.add(h, "h")
    if rate is not None:
        h.extra["calib.rate"] = rate
    w2 = np.random.default_rng(2).integers(-128, 128, (9, 40)).astype(np.int8)
    c2 = g.add(snn.Project(src=h.result, kind="dense", weight=Blob(w2), delay=2))
    o = snn.Population(currents=[c2], declared_type=SpikeType((9,)), bits=16, threshold=100)
    g.add(o, "o")
    g.add(ann.Output(values=[g.add(snn.Decode(x=o.result, mode="membrane"))]))
    verify(g)
    return g


@pytest.mark.slow
@pytest.mark.parametrize("scale", [1.0, 100.0, 127.4, 300.0, 1e5, 3e9])
@pytest.mark.parametrize("wdtype", [np.int8, np.int16])
def test_dense_kernel_on_current_encoded_input_matches(scale, wdtype):
    """Integer currents through every tier of the dense kernel: bytes in [0, 127] (AVX2
    ``vpmaddubsw`` with int8 weights), i16 values, and i64 values beyond them."""

    rng = np.random.default_rng(4)
    w = rng.integers(-128, 128, (40, 70)).astype(wdtype)
    g = _wide_layer("current", w, scale)
    assert [p.kind for p in plan.plan(plan.Network.of(g)).dense] == ["dense"]  # current: dense
    x = rng.random((5, 70)).astype(np.float32) * 2 - 0.3  # some negative currents
    x[0] = np.abs(x[0])
    got, ref = compare(g, [x], 9, exact=True, kernels=("auto", "event", "dense"))
    assert ref.spike_count > 0


@pytest.mark.parametrize("encoding", ["rate", "poisson", "spikes"])
def test_dense_kernel_on_binary_and_count_sources_matches(encoding):

    rng = np.random.default_rng(6)
    w = rng.integers(-100, 120, (40, 70)).astype(np.int8)
    g = _wide_layer(encoding, w, rate=0.6)
    enc = g.walk("snn.encode")[0]
    chosen = plan.plan(plan.Network.of(g)).dense
    assert [p.src.owner.KIND for p in chosen] == ["snn.population"]  # no calibration on the encoder
    enc.extra["calib.rate"] = 0.8
    assert len(plan.plan(plan.Network.of(g)).dense) == 2
    x = rng.integers(0, 3, (4, 12, 70)).astype(np.float32) if encoding == "spikes" else rng.random((4, 70)).astype(np.float32)
    got, ref = compare(g, [x], 12, exact=True, kernels=("auto", "event", "dense"))
    assert ref.spike_count > 20


def test_kernel_choice_follows_the_calibrated_rate():

    w = np.ones((40, 70), np.int8)
    g = _wide_layer("rate", w)
    pops = g.walk("snn.population")
    assert not plan.plan(plan.Network.of(g)).dense  # no calibration: events
    pops[0].extra["calib.rate"] = plan.DENSE_RATE / 2
    assert not plan.plan(plan.Network.of(g)).dense
    pops[0].extra["calib.rate"] = 1.5  # clipped to 1
    (p,) = plan.plan(plan.Network.of(g)).dense
    assert p.src.owner is pops[0]
    assert plan.plan(plan.Network.of(g), "event").dense == set()
    with pytest.raises(ValueError):
        plan.plan(plan.Network.of(g), "fast")


# ------------------------------------------------------------------------ time batching


def _layout(graph: Graph, kernels: str = "auto", schedule: str = "auto"):

    return plan.plan(plan.Network.of(graph), kernels, schedule)


@pytest.mark.slow
@PROPERTY
@given(networks(integer=True, recurrent=False, dense_bias=True), st.integers(1, 6))
def test_feed_forward_integer_graphs_are_bit_identical_under_both_schedules(graph, timesteps):
    assert _layout(graph, schedule="layer").schedule == "layer"
    compare(graph, inputs_for(graph, timesteps), timesteps, exact=True, kernels=("event", "dense"),
            schedules=("step", "layer"))


@pytest.mark.slow
@PROPERTY
@given(networks(integer=False, recurrent=False, dense_bias=True), st.integers(1, 6))
def test_feed_forward_float_graphs_agree_under_both_schedules(graph, timesteps):
    compare(graph, inputs_for(graph, timesteps), timesteps, exact=False, kernels=("event", "dense"),
            schedules=("step", "layer"))


@pytest.mark.slow
def test_the_feed_forward_graphs_reach_the_time_batched_kernel():
    """The properties above mean something only if the kernel runs, on every kind of source."""
    seen: set[str] = set()

    @settings(max_examples=600, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(networks(integer=True, recurrent=False, dense_bias=True))
    def collect(graph):
        lay = _layout(graph, "event", "layer")
        for pop, projections in lay.tiled.items():
            seen.add(f"tiled-currents={len(projections)}")
            seen.update(f"tiled-from={p.src.owner.encoding if p.src.owner.KIND == 'snn.encode' else 'population'}"
                        for p in projections)
            seen.update(f"tiled-delay={p.delay}" for p in projections)

    collect()
    wanted = {"tiled-currents=1", "tiled-currents=2", "tiled-from=population", "tiled-delay=1", "tiled-delay=3"}
    wanted |= {f"tiled-from={e}" for e in snn.ENCODINGS}
    assert wanted <= seen, sorted(wanted - seen)


@pytest.mark.slow
@settings(max_examples=100, deadline=None, derandomize=True, database=None,
          suppress_health_check=list(HealthCheck))
@given(networks(integer=True))
def test_graphs_with_recurrence_are_never_layer_scheduled(graph):

    net = plan.Network.of(graph)
    recurrent = any(pop in _reached_from(net, pop) for pop in net.populations)
    assert (plan.feed_forward_order(net) is None) == recurrent
    if recurrent:
        for kernels in plan.KERNELS:
            assert _layout(graph, kernels).schedule == "step"
        with pytest.raises(ValueError, match="recurrence"):
            _layout(graph, schedule="layer")


def _reached_from(net, pop) -> set:
    """The populations that ``pop``'s spikes reach through one or more projections."""
    targets = {c.owner: q for q in net.populations for c in q.currents}
    seen, todo = set(), [pop]
    while todo:
        src = todo.pop()
        for p in net.projections:
            if p.src.owner is src and targets[p] not in seen:
                seen.add(targets[p])
                todo.append(targets[p])
    return seen


def _big_feed_forward(encoding: str) -> Graph:
    """encoder (90 values) → dense 150 (three 64-column tiles, padded) ← dense from the encoder
    again with delay 2; → dense 70 (delay 3) → dense 5; every population bits 24."""
    rng = np.random.default_rng(11)
    g = Graph("ff")
    x = g.add(ann.Input(declared_type=TensorType((90,))), "x")
    s = g.add(snn.Encode(x=x, encoding=encoding), "s")
    c1 = g.add(snn.Project(src=s, kind="dense", weight=Blob(rng.integers(-20, 40, (150, 90)).astype(np.int8))))
    c2 = g.add(snn.Project(src=s, kind="dense", delay=2, weight=Blob(rng.integers(-300, 300, (150, 90)).astype(np.int16))))
    h1 = snn.Population(currents=[c1, c2], declared_type=SpikeType((150,)), bits=24, threshold=400, du=300)
    g.add(h1, "h1")
    c3 = g.add(snn.Project(src=h1.result, kind="dense", delay=3, exponent=1,
                           weight=Blob(rng.integers(-30, 50, (70, 150)).astype(np.int8))))
    h2 = snn.Population(currents=[c3], declared_type=SpikeType((70,)), bits=24, threshold=200, reset="zero")
    g.add(h2, "h2")
    c4 = g.add(snn.Project(src=h2.result, kind="dense", weight=Blob(rng.integers(-40, 60, (5, 70)).astype(np.int8))))
    h3 = snn.Population(currents=[c4], declared_type=SpikeType((5,)), bits=16, threshold=100)
    g.add(h3, "h3")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h3.result)), g.add(snn.Decode(x=h1.result, mode="membrane"))]))
    verify(g)
    return g


@pytest.mark.slow
@pytest.mark.parametrize("encoding", ["rate", "poisson", "spikes"])
def test_time_batched_layers_match_the_reference(encoding):
    """Wide tiles, two currents into one population, delays 1–3, and (``spikes``) samples with
    spike counts above 1, which fall back to the step path, beside samples of 0 and 1."""
    g = _big_feed_forward(encoding)
    lay = _layout(g)
    assert lay.schedule == "layer" and len(lay.tiled) == 3  # every synapse in a tiled layer
    rng = np.random.default_rng(12)
    if encoding == "spikes":
        x = (rng.random((4, 15, 90)) < 0.3).astype(np.float32)
        x[1, 4, 7] = 2
        x[3, 9, 0] = 5
    else:
        x = rng.random((4, 90)).astype(np.float32)
    got, ref = compare(g, [x], 15, exact=True, kernels=("auto", "event"), schedules=("auto", "step", "layer"))
    assert got.stats["schedule"] == "layer"
    assert ref.spike_count > 200 and ref.synaptic_ops > 10_000
    assert all(ref.spikes[p].any() for p in g.walk("snn.population"))


@pytest.mark.slow
@pytest.mark.parametrize("wmax, size", [(300, 200), (2000, 200), (127, 40)])
def test_time_batched_tiles_in_i16_and_i32_match(wmax, size):
    """A tile sums in i16 (128 columns, then a 64-column rest; or one small tile) when no
    step's sum into a column can leave i16, else in i32 (64 columns)."""
    rng = np.random.default_rng(16)
    g = Graph("ff")
    x = g.add(ann.Input(declared_type=TensorType((90,))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    c = g.add(snn.Project(src=s, kind="dense", weight=Blob(rng.integers(-wmax, wmax, (size, 90)).astype(np.int16))))
    h = snn.Population(currents=[c], declared_type=SpikeType((size,)), bits=24, threshold=20 * wmax)
    g.add(h, "h")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h.result, mode="membrane"))]))
    verify(g)
    assert _layout(g).tiled and (plan.unit_bound(c.owner) < 2**15) == (wmax < 1000)
    got, ref = compare(g, [rng.random((3, 90)).astype(np.float32)], 12, exact=True, schedules=("layer",))
    assert ref.spike_count > 50


@pytest.mark.slow
def test_whole_run_scratch_is_sized_per_call():
    """Spike lists and currents of a layer span the run: one executor serves runs of any length."""
    g = _big_feed_forward("spikes")
    run = cpu.prepare(g, cache=False, threads=2, schedule="layer")
    pops = g.walk("snn.population")
    rng = np.random.default_rng(13)
    for steps in (3, 40, 1, 17):
        x = [(rng.random((3, steps, 90)) < 0.3).astype(np.float32)]
        ref = semantics.run_snn(g, x, timesteps=steps, record=pops)
        _agree(run(x, timesteps=steps, record="all"), ref, pops, True)


@pytest.mark.slow
def test_samples_with_spike_counts_run_by_the_step_schedule_compiled_when_needed():
    """The layer function skips a sample whose encoder emits counts above 1 (leaving its state
    untouched); the executor compiles the step schedule on the first such sample and runs it."""
    g = _big_feed_forward("spikes")
    run = cpu.prepare(g, cache=False, threads=2)
    pops = g.walk("snn.population")
    rng = np.random.default_rng(14)
    x = (rng.random((5, 12, 90)) < 0.3).astype(np.float32)
    _agree(run([x], timesteps=12, record="all"), semantics.run_snn(g, [x], timesteps=12, record=pops), pops, True)
    assert run._step is None  # 0/1 trains only: no step version compiled
    x[1, 3, 5] = 3
    x[2, 0, 0] = -1
    x[4, 11, 89] = 2
    got = run([x], timesteps=12, record="all")
    _agree(got, semantics.run_snn(g, [x], timesteps=12, record=pops), pops, True)
    assert run._step is not None and got.stats["schedule"] == "layer"


@pytest.mark.slow
@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int32])
def test_spike_trains_read_as_floats_match_whatever_their_type(dtype):
    """The layer function reads a ``spikes`` encoder that only tiled layers read as float32
    (plan.raw_encoders): the host's own float32 array, other types converted with every value
    but 0 and 1 made 2.  Fractions (truncated by the reference), -0, counts and negative
    values must send their samples to the step schedule, whose int64 values are exact."""
    g = _big_feed_forward("spikes")
    assert plan.plan(plan.Network.of(g)).raw == set(g.walk("snn.encode"))
    run = cpu.prepare(g, cache=False, threads=2)
    pops = g.walk("snn.population")
    rng = np.random.default_rng(15)
    x = (rng.random((6, 10, 90)) < 0.3).astype(np.float64)
    if np.dtype(dtype).kind == "f":
        x[1, 2, 3], x[2, 0, 0], x[3, 9, 89], x[5, 5, 5] = 0.5, 1.75, -0.0, 0.999
    x[4, 1, 1] = -1
    x = x.astype(dtype)
    got = run([x], timesteps=10, record="all")
    _agree(got, semantics.run_snn(g, [x], timesteps=10, record=pops), pops, True)
    assert run._step is not None  # the samples with other values ran by the step schedule


def test_schedule_choice():

    g = _big_feed_forward("rate")
    assert _layout(g, schedule="step").schedule == "step"
    assert _layout(g, "dense").schedule == "step"  # nothing left for the time-batched kernel
    assert not _layout(g, "dense", "layer").tiled
    assert _layout(parse_ir(LIF_TEXT)).schedule == "step"  # recurrent
    with pytest.raises(ValueError, match="recurrence"):
        _layout(parse_ir(LIF_TEXT), schedule="layer")
    with pytest.raises(ValueError):
        _layout(g, schedule="fast")
    # a feed-forward network whose synapses are mostly outside tiled layers stays step by step
    w = np.random.default_rng(2).integers(-128, 128, (40, 70)).astype(np.int8)
    wide = _wide_layer("current", w)  # its first layer (70×40 of 3,160 synapses) runs the dense kernel
    assert _layout(wide).schedule == "step" and _layout(wide, "event").schedule == "layer"
    assert plan.tile_columns(500) == 512 and plan.tile_columns(10) == 16 and plan.tile_columns(3) == 8


# ---------------------------------------------------------- convolution and neuron kernels

CONV_TEXT = """graph @conv
%x = ann.input : tensor<2x12x12xf32>
%s = snn.encode(%x) {{encoding = {enc}}} : spikes<2x12x12>
%c = snn.project(%s) {{kind = conv2d, weight = random<uniform, seed = 1, scale = {scale}> : tensor<16x2x3x3x{wt}>}} : current<16x10x10>
%o = snn.project(%s) {{kind = conv2d, groups = 2, pads = [1, 1, 1, 1], strides = [2, 2], weight = random<uniform, seed = 4, scale = {scale}> : tensor<16x1x3x3x{wt}>}} : current<16x6x6>
%h = snn.population(%c) {{{bits}threshold = {th}}} : spikes<16x10x10>
%p = snn.project(%h) {{kernel = [2, 2], kind = pool, strides = [2, 2], weight = {w}}} : current<16x5x5>
%g = snn.population(%o, %q) {{{bits2}du = {du}, dv = 700, reset = zero, threshold = {th}}} : spikes<16x6x6>
%h2 = snn.population(%p) {{{bits}threshold = {th}, bias = {bias}}} : spikes<16x5x5>
%q = snn.project(%h2) {{kind = conv2d, pads = [1, 1, 0, 0], strides = [1, 1], weight = random<uniform, seed = 5, scale = {scale}> : tensor<16x16x1x1x{wt}>}} : current<16x6x6>
%v = snn.project(%g) {{kernel = [3, 3], kind = pool, strides = [2, 2], weight = {w}}} : current<16x2x2>
%h3 = snn.population(%v) {{{bits}threshold = {th}}} : spikes<16x2x2>
%d = snn.project(%h3) {{kind = dense, weight = random<uniform, seed = 2, scale = {scale}> : tensor<5x64x{wt}>}} : current<5>
%y0 = snn.population(%d) {{{bits}threshold = {th}}} : spikes<5>
%y = snn.decode(%y0) : tensor<5xf32>
ann.output(%y)
"""


def _conv_graph(integer: bool, enc: str = "rate", bits: int = 24, bits2: int = 24, du: int = 0) -> Graph:
    """Channel-last conv accumulators with 16 channels (two 8×8 blocks) over 100 and 36 cells
    (whole blocks and a tail), one into a population's first current and one into its second,
    a grouped conv, a 2×2/2 pool (windows do not overlap) and a 3×3/2 pool (they do), a
    288-value encoder (64-byte masks and a tail)."""
    text = CONV_TEXT.format(enc=enc, scale=40 if integer else 1.0, wt="i8" if integer else "f32",
                            bits=f"bits = {bits}, " if integer else "", bits2=f"bits = {bits2}, " if integer else "",
                            th=60 if integer else 1.5, w=9 if integer else 0.5, bias=-2 if integer else -0.125,
                            du=du if integer else 0)
    return parse_ir(text)


def _ir(graph: Graph, schedule: str = "auto") -> str:

    return str(emit.lower(Network.of(graph), schedule=schedule)[0])


@pytest.mark.slow
@pytest.mark.parametrize("integer", [True, False])
def test_conv_blocks_pool_tables_and_byte_masks_match(integer):
    """The blocked transpose of channel-last conv accumulators (first and later currents,
    i16 into i32, and f64; integer stride-1 convs with a halo, plan.conv_halo, one of them
    with pads), the pooling table without loops (events; integer pools otherwise read byte
    vectors), and encoder bytes scanned 64 at a time as bit masks: the reference's results
    under both schedules and both pool kernels, on two threads."""

    g = _conv_graph(integer)
    text = _ir(g)
    events = str(emit.lower(Network.of(g), kernels="event")[0])
    assert "shufflevector" in text  # the 8×8 blocks of kernels.common.flush_blocks
    assert '"wsingle.' in events and '"wstart.' in events  # windows without overlaps, and with
    assert ('"hbase.' in text) == integer  # both stride-1 convs (the other has stride 2: a table)
    assert "<64 x i8>" in text  # emit.Lowering.events: rate bytes as bit masks
    x = np.random.default_rng(21).random((5, 2, 12, 12)).astype(np.float32)
    got, ref = compare(g, [x], 16, exact=integer, threads=2, schedules=("step", "layer"), kernels=("auto", "event"))
    assert ref.spike_count > 500
    assert all(ref.spikes[p].any() for p in g.walk("snn.population")[:4])


@pytest.mark.slow
@pytest.mark.parametrize("bits, bits2, du, lanes", [(24, 24, 0, True), (8, 30, 1000, True), (31, 24, 4096, False),
                                                    (32, 12, 3000, False)])
def test_neurons_in_i32_lanes_match(bits, bits2, du, lanes):
    """Populations of at most 30 bits run their neurons in i32 lanes (plan.lanes32), with
    the current clamped to ±2**30 and decay products formed in i64; wider ones in i64.
    States that saturate (8 bits), decays 0, 1000, 3000 and 4096, i32 and i64 accumulators."""

    g = _conv_graph(True, bits=bits, bits2=bits2, du=du)
    pops = g.walk("snn.population")
    assert plan.lanes32(pops[0]) == lanes and plan.lanes32(pops[1]) == (bits2 <= 30)
    x = np.random.default_rng(22).random((3, 2, 12, 12)).astype(np.float32)
    compare(g, [x], 12, exact=True)


def test_i32_lanes_with_currents_beyond_i32_match():
    """Spike counts into a conv2d give a 24-bit population an i64 accumulator (no i32 bound);
    its neurons still run in i32 lanes, the current clamped first: currents far beyond ±2**31
    saturate as in the reference."""

    g = _conv_graph(True, enc="spikes")
    pop = g.walk("snn.population")[0]
    assert pop not in plan.plan(Network.of(g)).narrow and plan.lanes32(pop)
    rng = np.random.default_rng(23)
    x = rng.choice(np.array([0, 1, 2, -3, 10**6, -(10**7), 2**28], np.float32), size=(3, 10, 2, 12, 12))
    compare(g, [x], 10, exact=True)


def test_every_projection_kind_has_one_registered_kernel():
    """targets/cpu/kernels registers one emission function per projection kind (a second
    registration of a kind is refused)."""
    from nmc.targets.cpu.kernels import REGISTRY, kernel

    assert set(REGISTRY) == set(snn.PROJECTION_KINDS)
    assert all(k.kind == kind and callable(k.project) for kind, k in REGISTRY.items())
    assert [kind for kind, k in REGISTRY.items() if k.sample_start] == ["maxgate"]
    with pytest.raises(ValueError, match="two kernels"):
        kernel("dense")(lambda lw, p, pop, acc: None)


def _driven_population(bits: int, reset: str, size: int, **params) -> Graph:
    """A ``spikes`` encoder into a one_to_one projection of weight 1 into one population: the
    current of neuron ``i`` at step ``t`` is the encoder's value ``x[:, t, i]``, any integer."""
    g = Graph("neuron")
    x = g.add(ann.Input(declared_type=TensorType((size,))), "x")
    s = g.add(snn.Encode(x=x, encoding="spikes"), "s")
    c = g.add(snn.Project(src=s, kind="one_to_one", weight=1))
    pop = snn.Population(currents=[c], declared_type=SpikeType((size,)), bits=bits, reset=reset, **params)
    g.add(pop, "h")
    g.add(ann.Output(values=[g.add(snn.Decode(x=pop.result)), g.add(snn.Decode(x=pop.result, mode="membrane"))]))
    verify(g)
    return g


def _edge_values(rng, limit: int, n: int, extra: tuple[int, ...] = ()) -> np.ndarray:
    """``n`` integers in ``[-limit, limit)``: the edges (±1, limit - 1, -limit, -limit + 1, 0)
    and ``extra`` mixed with random ones."""
    edges = np.array([0, 1, -1, limit - 1, limit - 2, -limit, -limit + 1, *extra], np.int64)
    out = rng.integers(-limit, limit, n, dtype=np.int64)
    pick = rng.random(n) < 0.6
    out[pick] = rng.choice(edges, int(pick.sum()))
    return out


@pytest.mark.parametrize("reset", snn.RESETS)
@pytest.mark.parametrize("bits", [8, 12, 16, 24, 29, 30, 31, 32])
def test_neuron_arithmetic_matches_the_neuron_model(bits, reset):
    """The CPU lowering's integer neuron update against the neuron model itself
    (:class:`nmc.neuron.NeuronState`, stepped here with the same currents): decay toward
    zero (per-neuron ``du``/``dv`` of 0, 1, 2048, 4095, 4096 and random), saturation of ``u``
    and ``v`` to ``bits``, the strict threshold and every reset mode, with currents at and beyond
    ±2**(bits-1) (up to ±2**40: the i32 accumulator's side accumulator and clamp), thresholds,
    biases and initial voltages at the state's edges.  37 neurons: four 8-lane vectors and a
    scalar tail; i32 lanes up to 30 bits, i64 beyond.  Spike trains, counts and final
    voltages (as the executor reports them, f32) must be the model's."""
    rng = np.random.default_rng(40 + bits)
    limit, size, batch, T = 2 ** (bits - 1), 37, 4, 24
    decays = np.array([0, 1, 2048, 4095, 4096, 0, 1, 4095, 4096, 700], np.int64)
    params = {"du": Blob(rng.choice(decays, size).astype(np.int32)),
              "dv": Blob(rng.choice(decays, size).astype(np.int32)),
              "threshold": Blob(_edge_values(rng, limit, size)),
              "bias": Blob(_edge_values(rng, limit, size, (0, 0, 0))),
              "v0": Blob(_edge_values(rng, limit, size))}
    g = _driven_population(bits, reset, size, **params)
    pop = g.walk("snn.population")[0]
    assert plan.lanes32(pop) == (bits <= 30)
    big = (limit, limit + 1, -limit - 1, 2 * limit, -2 * limit, 2**30, -2**30, 2**31, -2**31, 2**33, -2**40)
    currents = _edge_values(rng, limit, batch * T * size, big).reshape(batch, T, size)
    currents[:, ::3] //= 1 << max(bits - 6, 0)  # some steps of small currents, so that neurons fire and reset
    x = currents.astype(np.float64)  # exact: the encoder casts to int64 as the model's input
    state = neuron.NeuronState.initial(semantics.population_params(pop), batch)
    want = np.stack([state.step(currents[:, t]) for t in range(T)], axis=1)
    got = cpu.prepare(g, cache=False)([x], timesteps=T, record="all")
    assert got.steps == T
    np.testing.assert_array_equal(got.recorded["h"], want)
    np.testing.assert_array_equal(got.outputs[0], want.sum(axis=1).astype(np.float32))
    np.testing.assert_array_equal(got.outputs[1], state.v.astype(np.float32))
    assert 0 < want.sum() < want.size  # neurons fire and stay silent


@pytest.mark.parametrize("params, reset, burst, consumer", [
    ({}, "subtract", 1, "pool"), ({"du": 1000, "dv": 300, "bias": 3}, "zero", 1, "dense"),
    ({"bias": -2}, "subtract_delayed", 1, "pool"), ({}, "zero_delayed", 1, "dense"),
    ({"du": 2000, "dv": 100}, "subtract", 100, "pool"), ({}, "zero", 3, "dense")])
def test_neuron_groups_match_the_reference(params, reset, burst, consumer):
    """Emit.Lowering.update's groups: on an AVX-512 host 16 neurons at a time (i32 lanes,
    spike lists packed by vpcompressd), then one group of 8 and a scalar tail (45 = 2·16 + 8 +
    5 neurons; their 15 targets: 8 + 7); IF (du = 4096: u not read, stored at the last step
    only) and LIF with a bias; every reset; burst populations (max_spikes 100 and 3: step
    counts held in bytes for 2 and 85 steps before they are added to the host's counts);
    300 steps (past a byte count period of 255); a consumer reading byte vectors (a pool:
    its source keeps no spike lists and is recorded from its byte vector) or spike lists
    (dense); batch 3 on two threads, both schedules."""
    rng = np.random.default_rng(60 + burst)
    T, batch, shape = 300, 3, (1, 5, 9)
    g = Graph("groups")
    x = g.add(ann.Input(declared_type=TensorType(shape)), "x")
    s = g.add(snn.Encode(x=x, encoding="spikes"), "s")
    c = g.add(snn.Project(src=s, kind="one_to_one", weight=1))
    h = snn.Population(currents=[c], declared_type=SpikeType(shape), bits=24, threshold=40, reset=reset,
                       max_spikes=burst, **params)
    g.add(h, "h")
    if consumer == "pool":
        p = g.add(snn.Project(src=h.result, kind="pool", kernel=(1, 3), strides=(1, 3), weight=20))
    else:
        p = g.add(snn.Project(src=h.result, kind="dense", weight=Blob(rng.integers(-5, 20, (15, 45)).astype(np.int8))))
    h2 = snn.Population(currents=[p], declared_type=SpikeType(p.type.shape), bits=24, threshold=50)
    g.add(h2, "h2")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h2.result)), g.add(snn.Decode(x=h.result, mode="membrane"))]))
    verify(g)
    lay = plan.plan(Network.of(g))
    assert (h in lay.unlisted) == (consumer == "pool" and burst == 1) and h2 in lay.unlisted
    if "avx512bw" in plan.host_features():
        assert ("llvm.x86.avx512.mask.compress" in _ir(g)) == (h not in lay.unlisted)
    xs = rng.integers(-60, 120, (batch, T, *shape)) * (40 * burst // 2 if burst > 1 else 1)
    got, ref = compare(g, [xs.astype(np.float32)], T, exact=True, threads=2, schedules=("step", "layer"))
    assert 0 < ref.spike_count and ref.spikes[h].max() == burst


@pytest.mark.parametrize("bits", [8, 16, 30, 31, 32])
def test_decay_toward_zero_matches_the_neuron_model(bits):
    """Without currents, bias or spikes (threshold at the top of the state), a voltage decays
    as :func:`nmc.neuron.decay` applied once per step, rounding toward zero from either
    sign: initial voltages at ±2**(bits-1) and small ones, decays 0, 1, 4095, 4096 and others."""
    limit, size, T = 2 ** (bits - 1), 16, 9
    rng = np.random.default_rng(50 + bits)
    v0 = np.array([limit - 1, -limit, -limit + 1, limit - 2, 1, -1, limit // 3, -limit // 3], np.int64)
    v0 = np.concatenate([v0, _edge_values(rng, limit, size - v0.size)])
    dv = np.array([0, 1, 4095, 4096, 1, 1, 4095, 2048, 1, 3, 4000, 17, 4095, 1, 0, 100], np.int64)
    g = _driven_population(bits, "subtract", size, du=4096, dv=Blob(dv.astype(np.int32)), threshold=limit - 1,
                           v0=Blob(v0))
    want = v0.copy()
    for _ in range(T):
        want = neuron.decay(want, dv, True)
    got = cpu.prepare(g, cache=False)([np.zeros((2, T, size))], timesteps=T, record="all")
    assert not got.recorded["h"].any()
    np.testing.assert_array_equal(got.outputs[1], np.tile(want.astype(np.float32), (2, 1)))


def test_window_table_lists_every_covering_output():
    """window_table against a direct enumeration of windows (strides, pads, dilations)."""

    for hw, k, s, pads, d in [((7, 9), (3, 2), (2, 1), (1, 0, 1, 1), (1, 2)), ((6, 6), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1)),
                              ((5, 4), (1, 3), (1, 2), (0, 2, 0, 1), (1, 1))]:
        out = tuple(pooled_size(hw[i], k[i], s[i], pads[i], pads[2 + i], d[i], False) for i in range(2))
        starts, pairs = tables.window_table(hw, k, s, pads, d, out, scale=(10, 3))
        for y in range(hw[0]):
            for x in range(hw[1]):
                want = [((ky * k[1] + kx) * 10, (oy * out[1] + ox) * 3)
                        for ky in range(k[0]) for kx in range(k[1]) for oy in range(out[0]) for ox in range(out[1])
                        if oy * s[0] - pads[0] + ky * d[0] == y and ox * s[1] - pads[1] + kx * d[1] == x]
                pos = y * hw[1] + x
                assert [tuple(p) for p in pairs[starts[pos]:starts[pos + 1]]] == want


@pytest.mark.parametrize("w, acc", [(227, "i16"), (228, "i32"), (-227, "i16")])
def test_conv_accumulator_in_i16_up_to_its_bound(w, acc):
    """A conv2d fed by 0/1 events whose per-step sums stay below 2**15 (plan.unit_bound:
    144 · 227 = 32688) adds into an i16 private accumulator, one more quantum (144 · 228) into
    an i32 one.  Every source fires every step and channel 0's weights are all ``w``, so its
    interior outputs reach the bound each step: the reference's voltages and spikes (a
    threshold near the bound; an i16 sum that wrapped would change both), and a pool of the
    first population's spikes into a second."""

    g = Graph("c16")
    x = g.add(ann.Input(declared_type=TensorType((16, 6, 6))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    rng = np.random.default_rng(31)
    weight = rng.integers(-abs(w), abs(w) + 1, (6, 16, 3, 3)).astype(np.int16)
    weight[0] = w
    c = g.add(snn.Project(src=s, kind="conv2d", weight=Blob(weight)))
    h = snn.Population(currents=[c], declared_type=SpikeType((6, 4, 4)), bits=24, threshold=144 * abs(w) - 1)
    g.add(h, "h")
    p = g.add(snn.Project(src=h.result, kind="pool", kernel=(2, 2), strides=(2, 2), weight=3))
    h2 = snn.Population(currents=[p], declared_type=SpikeType((6, 2, 2)), bits=24, threshold=2)
    g.add(h2, "h2")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h2.result))]))
    verify(g)
    lay = plan.plan(Network.of(g))
    assert lay.private[c.owner] == np.dtype(np.int16 if acc == "i16" else np.int32)
    assert ("load i16" in _ir(g)) == (acc == "i16")
    xs = np.ones((3, 16, 6, 6), np.float32)
    xs[1, :, ::2] = 0.5
    got, ref = compare(g, [xs], 9, exact=True, threads=2)
    assert ref.spikes[h].any() and ref.spikes[h2].any()


def test_rate_trains_in_closed_form_equal_the_step_by_step_encoder():
    """execute.rate_trains against semantics.encode step by step: inputs in and beyond
    [0, 1], on quantum boundaries and between, accumulators starting at several phases,
    filled one sample at a time; NaN falls back
    to the step-by-step encoder."""
    from nmc.targets.cpu.execute import rate_trains

    rng = np.random.default_rng(32)
    x = np.concatenate([rng.random(200), np.arange(-2, 260) / 256, [-5.0, 3.0, 1.0, 0.0, 0.5 / 256, 1.5 / 256]])
    x = np.stack([x, x[::-1]]).astype(np.float32)
    g = parse_ir(f"""graph @r
%x = ann.input : tensor<{x.shape[1]}xf32>
%s = snn.encode(%x) {{encoding = rate}} : spikes<{x.shape[1]}>
%c = snn.project(%s) {{kind = one_to_one, weight = 1}} : current<{x.shape[1]}>
%h = snn.population(%c) {{bits = 24, threshold = 1}} : spikes<{x.shape[1]}>
%y = snn.decode(%h) : tensor<{x.shape[1]}xf32>
ann.output(%y)
""")
    enc = g.walk("snn.encode")[0]
    T = 300
    for phase in (0, 1, 128, 255):
        enc.phase, state = phase, {}
        want = np.stack([semantics.encode(enc, x, t, T, state, True) for t in range(T)], axis=1)
        got, fill = rate_trains(x, T, np.dtype(np.int8), phase)
        fill(0, 1)
        fill(1, 2)
        assert got.dtype == np.int8
        np.testing.assert_array_equal(got, want)
    assert rate_trains(np.array([[0.5, np.nan]], np.float32), 4, np.dtype(np.int8)) is None


@pytest.mark.parametrize("bits, kernel, strides, weight, side", [
    (24, (2, 2), (2, 2), 40, 27), (24, (1, 2), (2, 3), "table", 27), (31, (3, 3), (3, 8), "table", 27),
    (12, (2, 1), (2, 2), 5, 27), (24, (2, 2), (2, 2), 40, 26), (24, (2, 2), (2, 2), "table", 16),
    (24, (16, 16), (16, 16), 40, 16)])
def test_pools_from_byte_spike_vectors_match(bits, kernel, strides, weight, side):
    """Integer pools of population spikes without overlaps or pads read the source's byte
    spike vector (plan.dense_pool): 8 outputs of a row at a time and the rest as one shorter
    vector (rows of 9, 13 and 14 outputs, and of 4), windows narrower than their stride, a weight
    per output (with an exponent) or one for all, i32 and i64 accumulators, windows of up to
    255 cells summed as bytes and one of 256 in i32; windows that tile
    the source (sides 26 and 16) take its spike count as their synaptic operations, the others
    sum the covered spikes.  The reference's results, and the event path's (``kernels="event"``)."""

    g = Graph("pool")
    x = g.add(ann.Input(declared_type=TensorType((3, side, side))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    c = g.add(snn.Project(src=s, kind="one_to_one", weight=Blob(np.full((3, side, side), 7, np.int8))))
    h = snn.Population(currents=[c], declared_type=SpikeType((3, side, side)), bits=bits, threshold=5)
    g.add(h, "h")
    oh, ow = (pooled_size(side, k, st_, 0, 0, 1, False) for k, st_ in zip(kernel, strides))
    rng = np.random.default_rng(33)
    w = Blob(rng.integers(-40, 60, (3, oh, ow)).astype(np.int8)) if weight == "table" else weight
    p = g.add(snn.Project(src=h.result, kind="pool", kernel=kernel, strides=strides, weight=w,
                          exponent=1 if weight == "table" else 0))
    h2 = snn.Population(currents=[p], declared_type=SpikeType((3, oh, ow)), bits=bits, threshold=30, dv=300)
    g.add(h2, "h2")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h2.result))]))
    verify(g)
    assert plan.dense_pool(p.owner) and not plan.dense_pool(p.owner, "event")
    assert ("llvm.vector.reduce.add" in _ir(g)) == (side % 2 == 1)
    xs = np.random.default_rng(34).random((3, 3, side, side)).astype(np.float32)
    got, ref = compare(g, [xs], 12, exact=True, threads=2, kernels=("auto", "event"))
    assert ref.spikes[h2].any() and not ref.spikes[h2].all()


@pytest.mark.parametrize("wmax, pads, wide", [(3000, (3, 0, 1, 2), 1), (100, (0, 1, 0, 0), 1),
                                               (3000, (0, 0, 1, 1), 2), (100, (1, 1, 1, 1), 2)])
def test_conv_halo_with_groups_dilations_and_pads_matches(wmax, pads, wide):
    """Stride-1 convs with a halo (plan.conv_halo): grouped, dilated, padded unevenly, into
    an i32 accumulator (8 channels per group: one AVX2 vector) and an i16 one (16: one
    vector); ``wide`` 2: twice the channels, one 512-bit vector per kernel cell on an
    AVX-512 host; sums that fall off the edges land in the halo and are never read."""

    g = Graph("halo")
    x = g.add(ann.Input(declared_type=TensorType((4, 9, 10))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    groups, out = (2, 16 * wide) if wmax > 1000 else (1, 16 * wide)
    kh, kw, dil = 3, 2, (2, 1)
    oh = 9 + pads[0] + pads[2] - dil[0] * (kh - 1)
    ow = 10 + pads[1] + pads[3] - dil[1] * (kw - 1)
    rng = np.random.default_rng(35)
    weight = rng.integers(-wmax, wmax, (out, 4 // groups, kh, kw)).astype(np.int16)
    weight[0] = wmax - 1  # 3000: Σ|w| = 12 · 2999 >= 2**15, an i32 accumulator
    c = g.add(snn.Project(src=s, kind="conv2d", weight=Blob(weight), groups=groups, dilations=dil, pads=pads))
    h = snn.Population(currents=[c], declared_type=SpikeType((out, oh, ow)), bits=24, threshold=wmax * 2, dv=500)
    g.add(h, "h")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h.result))]))
    verify(g)
    assert plan.conv_halo(c.owner, plan.plan(Network.of(g)).private[c.owner]) is not None
    text = _ir(g)
    assert '"hbase.' in text
    if wide == 2 and "avx512bw" in jit.host_features():  # one 512-bit vector per kernel cell
        assert ("<16 x i32>" if wmax > 1000 else "<32 x i16>") in text
    xs = np.random.default_rng(36).random((3, 4, 9, 10)).astype(np.float32)
    got, ref = compare(g, [xs], 10, exact=True, threads=2)
    assert ref.spikes[h].any() and not ref.spikes[h].all()

"""The emulator's event-driven kernel currents (the compiled loops of targets/mesh/jit.py, planned
by targets/mesh/kernels.py) equal its dense products and the reference semantics bit for bit:
per kernel on random geometries, values and spike densities from 0% to 100%, each loop forced
(fan tables, weight runs in int32 and int64), the loops alone against plain Python, and on
whole random graphs run with each path forced."""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_emulator import CHIP, image_of, random_graph, seeded_graph

from nmc import semantics
from nmc.ir.ann import Input
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import Encode, Project
from nmc.ir.types import TensorType
from nmc.targets.mapping.shapes import Geometry, geometry
from nmc.targets.mesh.emulator import Emulator, merge_fans
from nmc.targets.mesh import jit, kernels
from nmc.targets.mesh.kernels import KINDS, KernelRunner, window_table
from nmc.targets.mesh.sections import load_sections, pack, unpack


def projection(rng, kind: str):
    """A random projection of ``kind`` from an encoder of a random (C, H, W) input."""
    g = Graph("k", {"timesteps": 2})
    groups = int(rng.choice([1, 2, 3])) if kind == "conv2d" else 1
    C, H, W = groups * int(rng.integers(1, 4)), int(rng.integers(1, 8)), int(rng.integers(1, 8))
    x = g.add(Input(declared_type=TensorType((C, H, W), "f32")), "x")
    enc = g.add(Encode(x=x, encoding="current"), "e")
    big = rng.random() < 0.3  # weights large enough for float64 or int64 sums

    def w(shape):
        hi = (1 << 15) if big else 20
        return Blob(rng.integers(-hi, hi + 1, size=shape).astype(np.int16 if big else np.int8))

    if kind == "dense":
        return g.add(Project(src=enc, kind="dense", weight=w((int(rng.integers(1, 12)), C * H * W)),
                             exponent=int(rng.integers(0, 3))), "p").owner
    kh, kw = int(rng.integers(1, min(H, 3) + 1)), int(rng.integers(1, min(W, 3) + 1))
    strides = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    if kind == "pool":
        return g.add(Project(src=enc, kind="pool", kernel=(kh, kw), strides=strides, weight=int(rng.integers(1, 5))), "p").owner
    dil = (int(rng.integers(1, 3)), int(rng.integers(1, 3)))
    pads = tuple(int(v) for v in rng.integers(0, 3, 4))
    if (H + pads[0] + pads[2] - dil[0] * (kh - 1) - 1 < 0) or (W + pads[1] + pads[3] - dil[1] * (kw - 1) - 1 < 0):
        dil = (1, 1)
    out_c = groups * int(rng.integers(1, 4))
    return g.add(Project(src=enc, kind="conv2d", weight=w((out_c, C // groups, kh, kw)), groups=groups, strides=strides,
                         pads=pads, dilations=dil, exponent=int(rng.integers(0, 4))), "p").owner


def kernel_rows(p):
    """The ``mesh.kernels`` fields KernelRunner reads, for one projection."""
    g = geometry(p)
    wt = np.asarray(p.weight.data if isinstance(p.weight, Blob) else p.weight).astype(np.int64)
    if p.kind == "pool":
        wt = np.broadcast_to(wt, p.result.type.shape)
    wt = unpack(pack({"weights": wt.reshape(-1)}), "k", narrow=("weights",))["weights"]  # stored type, as loaded
    kr = {"kind": np.array([KINDS.index(p.kind)], np.uint8), "weights": wt, "weight_start": np.array([0, len(wt)]),
          "exponent": np.array([p.exponent])}
    return kr, g


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from(["conv2d", "conv2d", "pool", "dense"]),
       st.sampled_from([0.0, 0.03, 0.3, 1.0]), st.sampled_from([1, 7, 1 << 20, 1 << 40]))
def test_event_path_equals_dense_path_and_reference(seed, kind, density, scale):
    rng = np.random.default_rng(seed)
    p = projection(rng, kind)
    kr, g = kernel_rows(p)
    B, n = int(rng.integers(1, 4)), p.src.type.size
    x = rng.integers(-3, 4, size=(B, n)) * scale * (rng.random((B, n)) < density)
    x[x == 0] = 0
    want = semantics.project(p, x.reshape(B, *p.src.type.shape), True).reshape(B, -1)
    b, j = np.nonzero(x)
    pad = int(rng.integers(0, 3))
    for mode, runs_from, fan_max in (("dense", 4, 1 << 24), ("event", 4, 1 << 24), ("event", 1, 1 << 24),
                                     ("event", 1 << 10, 1 << 24), ("event", 1 << 10, 0), ("auto", 1, 1 << 24)):
        # runs_from 1: every convolution's events run as weight runs, 1 << 10: through a fan
        # table unless it holds more than fan_max pairs (0: none does, a pool runs dense)
        with mock.patch.object(kernels, "RUN_MIN_OUTPUTS", runs_from), mock.patch.object(kernels, "FAN_MAX", fan_max):
            runner = KernelRunner(kr, [g], mode)
            runner.plan(0)
        wide = np.zeros((B, want.shape[1] + 2 * pad), np.int64)  # the current of more neurons, as in the emulator
        out = wide[:, pad:pad + want.shape[1]]
        runner.add(0, out, x, lambda b=b, j=j: (b, j, x[b, j]))
        np.testing.assert_array_equal(out, want, err_msg=f"{mode}, runs from {runs_from}, fan tables to {fan_max}")
        assert not wide[:, :pad].any() and not wide[:, pad + want.shape[1]:].any()


def test_window_table_by_hand():
    """A 3x3 kernel, padding 1, on a 3x3 plane: the centre reaches every target through the
    mirrored cell; a corner reaches four."""
    g = Geometry("window", (1, 3, 3), (1, 3, 3), (3, 3), (1, 1), (1, 1), (1, 1), 1, 1)
    table = window_table(g)
    np.testing.assert_array_equal(table[4], [8, 7, 6, 5, 4, 3, 2, 1, 0])
    np.testing.assert_array_equal(table[0], [4, 3, -1, 1, 0, -1, -1, -1, -1])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([1, 1 << 20, 1 << 62]))
def test_fan_table_loop_equals_python(seed, scale):
    """The compiled fan loop adds v · weight at each pair of each event's source, wrapping
    modulo 2**64 as int64 arithmetic does, into a column slice of a wider array."""
    rng = np.random.default_rng(seed)
    S, n, B, E = int(rng.integers(1, 30)), int(rng.integers(1, 20)), int(rng.integers(1, 4)), int(rng.integers(0, 60))
    start = np.concatenate([[0], np.cumsum(rng.integers(0, 5, S))])
    target, weight = rng.integers(0, n, start[-1]), rng.integers(-scale, scale, start[-1])
    b, j, v = np.sort(rng.integers(0, B, E)), rng.integers(0, S, E), rng.integers(-3, 4, E)
    wide = np.zeros((B, n + 3), np.int64)
    jit.FanTable(start, target, weight).add(wide[:, 1:n + 1], b, j, v)
    want = [[0] * n for _ in range(B)]
    for bb, jj, vv in zip(b, j, v):
        for s in range(start[jj], start[jj + 1]):
            want[bb][target[s]] += int(vv) * int(weight[s])
    wrapped = [[(x + (1 << 63)) % (1 << 64) - (1 << 63) for x in row] for row in want]
    np.testing.assert_array_equal(wide[:, 1:n + 1], np.array(wrapped, dtype=np.int64).reshape(B, n))
    assert not wide[:, 0].any() and not wide[:, n + 1:].any()


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1))
def test_merged_fan_tables_equal_a_stable_sort_of_their_pairs(seed):
    """merge_fans gives each source its pairs in the parts' order, targets offset: what a
    stable sort of the parts' concatenated (source, target, weight) triples by source gives."""
    rng = np.random.default_rng(seed)
    n, parts, triples = int(rng.integers(1, 40)), [], []
    for _ in range(int(rng.integers(0, 5))):
        a = int(rng.integers(0, n))
        m = int(rng.integers(0, n - a + 1))
        start = np.concatenate([[0], np.cumsum(rng.integers(0, 4, m))])
        target, weight, t0 = rng.integers(0, 50, start[-1]), rng.integers(-9, 10, start[-1]), int(rng.integers(0, 3))
        parts.append((a, jit.FanTable(start, target, weight), t0))
        triples.append((np.repeat(np.arange(a, a + m), np.diff(start)), target + t0, weight))
    merged = merge_fans(parts, n)
    src, tgt, w = (np.concatenate([t[i] for t in triples]) if triples else np.zeros(0, np.int64) for i in range(3))
    order = np.argsort(src, kind="stable")
    np.testing.assert_array_equal(merged.start, np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]))
    np.testing.assert_array_equal(merged.target, tgt[order])
    np.testing.assert_array_equal(merged.weight, w[order])


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([np.int32, np.int64]))
def test_run_table_loop_equals_python(seed, dtype):
    """The compiled weight-run loop adds weight[c, t, :] · v at acc[b, c // c_group, table[q, t], :]
    for every cell t that reaches a position, for any number of outputs (vector and remainder)."""
    rng = np.random.default_rng(seed)
    cg, G, HW, T, L = (int(rng.integers(1, k)) for k in (4, 4, 10, 6, 8))
    og, B, E = int(rng.integers(1, 70)), int(rng.integers(1, 4)), int(rng.integers(0, 40))
    table = np.where(rng.random((HW, T)) < 0.7, rng.integers(0, L, (HW, T)), -1)
    weight = rng.integers(-1000, 1000, (cg * G, T, og)).astype(dtype)
    b, j, v = rng.integers(0, B, E), rng.integers(0, cg * G * HW, E), rng.integers(-300, 300, E)
    acc = np.zeros((B, G, L, og), dtype)
    jit.RunTable(table, cg, weight).add(acc, b, j, v)
    want = np.zeros((B, G, L, og), np.int64)
    for bb, jj, vv in zip(b, j, v):
        c, q = divmod(int(jj), HW)
        for t in range(T):
            if table[q, t] >= 0:
                want[bb, c // cg, table[q, t]] += vv * weight[c, t].astype(np.int64)
    np.testing.assert_array_equal(acc, want)


@settings(max_examples=60, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from([np.int32, np.int64]))
def test_unpack_adds_the_accumulator_channel_first_and_clears_it(seed, dtype):
    rng = np.random.default_rng(seed)
    B, G, L, og, pad = (int(rng.integers(1, k)) for k in (4, 4, 20, 40, 3))
    acc = rng.integers(-1000, 1000, (B, G, L, og)).astype(dtype)
    wide = rng.integers(-5, 5, (B, G * og * L + 2 * pad))
    want = wide.copy()
    want[:, pad:pad + G * og * L] += acc.astype(np.int64).transpose(0, 1, 3, 2).reshape(B, -1)
    jit.unpack(acc, wide[:, pad:pad + G * og * L])
    np.testing.assert_array_equal(wide, want)
    assert not acc.any()


def test_kernel_accumulators_are_reused_cleared():
    """Two steps through one scratch dict give what two fresh calls give."""
    rng = np.random.default_rng(5)
    p = projection(rng, "conv2d")
    while p.result.type.shape[0] // p.groups < 2:
        p = projection(rng, "conv2d")
    kr, g = kernel_rows(p)
    runner, scratch = KernelRunner(kr, [g], "event"), {}
    assert runner.plan(0).weight is not None  # weight runs
    for _ in range(2):
        x = rng.integers(0, 2, (3, p.src.type.size)) * rng.integers(1, 4, (3, p.src.type.size))
        b, j = np.nonzero(x)
        out, fresh = (np.zeros((3, p.result.type.size), np.int64) for _ in range(2))
        runner.add(0, out, x, lambda b=b, j=j, x=x: (b, j, x[b, j]), scratch=scratch)
        runner.add(0, fresh, x, lambda b=b, j=j, x=x: (b, j, x[b, j]))
        np.testing.assert_array_equal(out, fresh)
        assert scratch and not any(a.any() for a in scratch.values())


def run_mode(image, inputs, mode):
    from nmc.targets.chip import parse_chip

    chip = parse_chip(image.sections["chip"].decode(), "<chip>")
    return Emulator(load_sections(image.sections, chip), chip, kernels=mode).run(inputs, record="all")


def assert_same_runs(graph, inputs):
    image, _ = image_of(graph, chip=CHIP)
    ref = semantics.run_snn(graph, inputs)
    runs = {mode: run_mode(image, inputs, mode) for mode in ("dense", "event", "auto")}
    for mode, r in runs.items():
        for a, b in zip(r.outputs, ref.outputs):
            np.testing.assert_array_equal(a, b, err_msg=mode)
        assert r.synaptic_ops == ref.synaptic_ops and r.spikes == ref.spike_count, mode
        for name in runs["dense"].recorded:
            np.testing.assert_array_equal(r.recorded[name], runs["dense"].recorded[name])
        assert repr(r.stats) == repr(runs["dense"].stats), mode


@pytest.mark.parametrize("seed", [0, 1])
def test_forced_paths_agree_on_random_graphs(seed):
    assert_same_runs(*random_graph(seed))


@pytest.mark.parametrize("seed", [2, 3, 4])
def test_integrate_and_fire_graphs_step_compiled(seed):
    """Without decay and with one width of neuron, the whole run steps its neurons by the
    compiled loop (jit.Neurons) and still equals the reference semantics."""
    graph, inputs = random_graph(seed, leak=False)
    image, _ = image_of(graph, chip=CHIP)
    from nmc.targets.chip import parse_chip

    chip = parse_chip(image.sections["chip"].decode(), "<chip>")
    assert jit.Neurons.fits(Emulator(load_sections(image.sections, chip), chip).params)
    assert_same_runs(graph, inputs)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_forced_paths_agree_on_many_random_graphs(seed):
    assert_same_runs(*seeded_graph(seed))
    assert_same_runs(*seeded_graph(seed, leak=False))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1), st.sampled_from(["zero", "subtract", "mixed"]), st.sampled_from([2, 8, 16, 30]))
def test_compiled_neuron_step_equals_nmc_neuron(seed, reset, bits):
    """jit.Neurons steps int32 neurons exactly as nmc.neuron does (saturation of the current and
    of v, bias, per-neuron thresholds and resets), over several steps with currents far beyond
    the saturation range, and leaves the current cleared."""
    from nmc import neuron

    rng = np.random.default_rng(seed)
    n, B = int(rng.integers(1, 40)), int(rng.integers(1, 4))
    top = 1 << (bits - 1)
    zero = {"zero": True, "subtract": False, "mixed": rng.random(n) < 0.5}[reset]
    p = neuron.NeuronParams(threshold=rng.integers(0, top, n), bias=rng.integers(-top, top, n), du=np.full(n, 4096),
                            dv=np.zeros(n, np.int64), v0=rng.integers(-top, top, n), reset_zero=zero,
                            bits=np.full(n, bits))
    assert jit.Neurons.fits(p)
    ours, want = jit.Neurons(p, B), neuron.NeuronState.initial(p, B, narrow=True)
    for _ in range(4):
        current = rng.integers(-4 * top, 4 * top, (B, n)) * (rng.random((B, n)) < 0.7)
        current[rng.random((B, n)) < 0.05] = 1 << 40
        spikes = ours.step(c := current.copy())
        np.testing.assert_array_equal(spikes, want.step(current.copy(), np.int8))
        np.testing.assert_array_equal(ours.fired_at, want.fired_at)
        np.testing.assert_array_equal(ours.v, want.v)
        assert not c.any()


def test_compiled_neurons_refuse_what_does_not_fit():
    from nmc import neuron

    n = 3
    p = neuron.NeuronParams(threshold=np.full(n, 10), bias=np.zeros(n, np.int64), du=np.full(n, 100),
                            dv=np.zeros(n, np.int64), v0=np.zeros(n, np.int64), reset_zero=False, bits=np.full(n, 16))
    assert not jit.Neurons.fits(p)  # decay of u: not the int32 step
    with pytest.raises(ValueError, match="do not fit"):
        jit.Neurons(p, 1)

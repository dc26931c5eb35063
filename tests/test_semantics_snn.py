"""The spiking reference semantics (docs/design.md §5) against traces computed by hand.

Each trace's arithmetic is written out in the comments so a reader can check it on paper."""

from __future__ import annotations

import numpy as np
import pytest

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.ann import Conv, Input
from nmc.ir.core import Blob, Graph
from nmc.ir.parser import parse_ir
from nmc.ir.types import TensorType


def one_neuron(params: str, weight: str = "1.0", encoding: str = "spikes", decode: str = "count") -> str:
    """input → encode → one_to_one projection → one population → decode."""
    return f"""graph @neuron
%x = ann.input : tensor<1xf32>
%s = snn.encode(%x) {{encoding = {encoding}}} : spikes<1>
%c = snn.project(%s) {{kind = one_to_one, weight = {weight}}} : current<1>
%h = snn.population(%c) {{{params}}} : spikes<1>
%y = snn.decode(%h) {{mode = {decode}}} : tensor<1xf32>
ann.output(%y)
"""


def run_train(text: str, train, timesteps=None):
    """Run a one-input graph on one sample's spike train; returns (result, output spikes)."""
    g = parse_ir(text)
    x = np.asarray(train, dtype=np.float32).reshape(1, len(train), -1)
    pops = g.walk("snn.population")
    res = semantics.run_snn(g, [x], timesteps=timesteps, record=pops)
    return res, res.spikes[pops[-1]][0].reshape(res.steps, -1)


def test_integer_lif_trace():
    # I = 100 at steps 0..2 (input presented at t is integrated at t for delay 1).
    # t0: u = 100                       v = 100
    # t1: u = (100·3072)>>12 + 100 = 175  v = (100·2048)>>12 + 175 = 225
    # t2: u = (175·3072)>>12 + 100 = 231  v = (225·2048)>>12 + 231 = 343 > 250: spike, v = 93
    # t3: u = 173                       v = 46 + 173 = 219
    # t4: u = 129                       v = 109 + 129 = 238
    # t5: u = 96                        v = 119 + 96 = 215
    text = one_neuron("bits = 24, du = 1024, dv = 2048, threshold = 250, v0 = 0", weight="100")
    res, spikes = run_train(text, [1, 1, 1, 0, 0, 0])
    assert res.steps == 6 and res.timesteps == 6
    assert spikes[:, 0].tolist() == [0, 0, 1, 0, 0, 0]
    assert res.outputs[0].tolist() == [[1.0]]
    assert res.voltages[0].tolist() == [[215.0]]


def test_integer_decay_rounds_toward_zero():
    # t0: u = -100, v = -100
    # t1: u = -((100·3072)>>12) = -75, v = -((100·2048)>>12) - 75 = -125
    # t2: u = -((75·3072)>>12) = -56,  v = -((125·2048)>>12) - 56 = -62 - 56 = -118
    # (flooring instead would give -120)
    text = one_neuron("bits = 24, du = 1024, dv = 2048, threshold = 250, v0 = 0", weight="-100", decode="membrane")
    res, _ = run_train(text, [1, 0, 0])
    assert res.outputs[0].tolist() == [[-118.0]]


def test_integer_state_saturates_at_the_state_width():
    # 8 bits: [-128, 127].  u = sat(300) = 127; v = sat(v + 127) = 127, never > 127.
    text = one_neuron("bits = 8, du = 0, dv = 0, threshold = 127, v0 = 0", weight="300", decode="membrane")
    res, spikes = run_train(text, [1, 0, 0, 0])
    assert spikes.sum() == 0
    assert res.outputs[0].tolist() == [[127.0]]
    neg = one_neuron("bits = 8, du = 0, dv = 0, threshold = 127, v0 = 0", weight="-300", decode="membrane")
    assert run_train(neg, [1, 0, 0, 0])[0].outputs[0].tolist() == [[-128.0]]


def test_the_current_saturates_before_the_voltage_integrates_it():
    # docs/design.md §5: u = sat(-200) = -128, then v = sat(100 + u) = -28 (not 100 - 200 = -100).
    text = one_neuron("bits = 8, du = 0, dv = 0, threshold = 127, v0 = 100", weight="-200", decode="membrane")
    res, _ = run_train(text, [1])
    assert res.outputs[0].tolist() == [[-28.0]]


@pytest.mark.parametrize("reset, train, final", [
    # v: 0.75, 1.5 → spike → 0.5, 1.25 → spike → 0.25, 1.0 (not > 1)
    ("subtract", [0, 1, 1, 0], 1.0),
    # v: 0.75, 1.5 → spike → 0, 0.75, 1.5 → spike → 0
    ("zero", [0, 1, 0, 1], 0.0),
])
def test_reset_modes(reset, train, final):
    text = one_neuron(f"reset = {reset}", weight="0.75")
    res, spikes = run_train(text, [1, 1, 1, 1])
    assert spikes[:, 0].tolist() == train
    assert res.voltages[0].tolist() == [[final]]


@pytest.mark.parametrize("reset, train, final", [
    # keep 1/2 per step, I = 0.75: 0.75, 1.125 → spike → 0.125, 0.8125, 1.15625 → spike → 0.15625
    ("subtract", [0, 1, 0, 1], 0.15625),
    # the threshold comes off a step late, after the decay: 0.75, 1.125 → spike (kept),
    # 0.5625 + 0.75 − 1 = 0.3125, 0.15625 + 0.75 = 0.90625
    ("subtract_delayed", [0, 1, 0, 0], 0.90625),
    # zero: 0.75, 1.125 → spike → 0, 0.75, 1.125 → spike → 0
    ("zero", [0, 1, 0, 1], 0.0),
    # zero one step late, that step's input lost: 0.75, 1.125 → spike (kept), 0, 0.75
    ("zero_delayed", [0, 1, 0, 0], 0.75),
])
def test_delayed_resets_act_in_the_step_after_the_spike(reset, train, final):
    text = one_neuron(f"dv = 2048, reset = {reset}", weight="0.75")
    res, spikes = run_train(text, [1, 1, 1, 1])
    assert spikes[:, 0].tolist() == train
    assert res.voltages[0].tolist() == [[final]]


def test_float_lif_decays_exactly():
    # du = 2048 halves u each step, dv = 1024 keeps 3/4 of v.  I = 1 at t0 only.
    # t0: u = 1, v = 1;  t1: u = 0.5, v = 0.75 + 0.5 = 1.25;  t2: u = 0.25, v = 0.9375 + 0.25 = 1.1875
    text = one_neuron("du = 2048, dv = 1024, threshold = 10.0", decode="membrane")
    res, _ = run_train(text, [1, 0, 0])
    assert res.outputs[0].tolist() == [[1.1875]]


def test_bias_and_initial_voltage():
    # No input: v = v0 + b per step: 0.5 + 0.25 → 0.75, 1.0, 1.25 > 1 spike → 0.25
    text = one_neuron("bias = 0.25, v0 = 0.5")
    res, spikes = run_train(text, [0, 0, 0])
    assert spikes[:, 0].tolist() == [0, 0, 1]
    assert res.voltages[0].tolist() == [[0.25]]


CHAIN = """graph @chain
%x = ann.input : tensor<1xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<1>
%c1 = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<1>
%h1 = snn.population(%c1) {reset = zero, threshold = 0.5} : spikes<1>
%c2 = snn.project(%h1) {delay = 3, kind = one_to_one, weight = 1.0} : current<1>
%h2 = snn.population(%c2) {reset = zero, threshold = 0.5} : spikes<1>
%y = snn.decode(%h2) : tensor<1xf32>
ann.output(%y)
"""


def test_delays_shift_spikes_and_set_the_latency():
    # Input at steps 0, 1 → h1 spikes at 0, 1 → h2 integrates them 3 steps later: 3, 4.
    # Latency: T + (1 + 3) - 1 = 2 + 3 = 5 steps.
    g = parse_ir(CHAIN)
    assert semantics.latency_steps(g, 2) == 5
    res = semantics.run_snn(g, [np.ones((1, 2, 1), np.float32)], record=g.walk("snn.population"))
    h1, h2 = (res.spikes[p][0, :, 0].tolist() for p in g.walk("snn.population"))
    assert res.steps == 5
    assert h1 == [1, 1, 0, 0, 0]
    assert h2 == [0, 0, 0, 1, 1]


RECURRENT = """graph @loop
%x = ann.input : tensor<1xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<1>
%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<1>
%h = snn.population(%c, %r) {reset = zero, threshold = 0.9} : spikes<1>
%r = snn.project(%h) {kind = dense, weight = dense<[[WEIGHT]]> : tensor<1x1xf32>} : current<1>
%y = snn.decode(%h) : tensor<1xf32>
ann.output(%y)
"""


@pytest.mark.parametrize("weight, train, final", [
    # one input spike at t0 → spike; the loop delivers w at t1: w = 1 keeps it firing,
    # w = 0.5 leaves v = 0.5 for good.
    ("1.0", [1, 1, 1, 1], 0.0),
    ("0.5", [1, 0, 0, 0], 0.5),
])
def test_recurrent_loop_through_a_delayed_projection(weight, train, final):
    g = parse_ir(RECURRENT.replace("WEIGHT", weight))
    assert semantics.latency_steps(g, 4) == 4  # the loop does not lengthen the run
    pop = g.walk("snn.population")[0]
    res = semantics.run_snn(g, [np.array([[[1], [0], [0], [0]]], np.float32)], record=[pop])
    assert res.spikes[pop][0, :, 0].tolist() == train
    assert res.voltages[0].tolist() == [[final]]


@pytest.mark.parametrize("x", [0.0, 0.05, 0.2, 0.33, 0.5, 0.77, 0.999, 1.0, 1.7])
@pytest.mark.parametrize("timesteps", [16, 64])
def test_if_rate_under_constant_input_is_x_over_threshold(x, timesteps):
    text = one_neuron("threshold = 1.0", encoding="current")
    g = parse_ir(text)
    res = semantics.run_snn(g, [np.array([[x]], np.float32)], timesteps=timesteps)
    rate = res.outputs[0][0, 0] / timesteps
    assert abs(rate - min(1.0, x)) <= 1.0 / timesteps


@pytest.mark.parametrize("x, steps", [(0.25, [3, 7, 11, 15]), (0.5, [1, 3, 5, 7, 9, 11, 13, 15]), (0.0, []),
                                      (1.0, list(range(16))), (1.5, list(range(16))), (-0.5, [])])
def test_rate_encoding_accumulates_quanta_of_1_256(x, steps):
    # q = round(256x); the accumulator fires when it reaches 256.  A one_to_one projection into
    # a neuron of threshold 0.5 (reset to zero) copies the encoder's spikes, delay 1.
    g = parse_ir(one_neuron("reset = zero, threshold = 0.5", encoding="rate"))
    pop = g.walk("snn.population")[0]
    res = semantics.run_snn(g, [np.array([[x]], np.float32)], timesteps=16, record=[pop])
    assert np.flatnonzero(res.spikes[pop][0, :, 0]).tolist() == steps


@pytest.mark.parametrize("phase, rounded", [(0, np.floor), (128, lambda c: np.floor(c + 0.5))])
def test_rate_encoder_phase_128_rounds_the_count_to_nearest(phase, rounded):
    """From phase p the accumulator fires ⌊(T·q + p) / 256⌋ spikes in T steps: phase 0 counts
    T·x down, phase 128 to the nearest integer (as an IF neuron that starts at θ/2)."""
    x = np.linspace(0, 1, 41, dtype=np.float32)
    text = one_neuron("reset = zero, threshold = 0.5", encoding="rate")  # one neuron copies the encoder
    g = parse_ir(text.replace("{encoding = rate}", f"{{encoding = rate, phase = {phase}}}").replace("<1", "<41"))
    for T in (3, 8, 16):
        counts = semantics.run_snn(g, [x[None]], timesteps=T).outputs[0][0]
        q = np.floor(x.astype(np.float64) * 256 + 0.5)
        np.testing.assert_array_equal(counts, rounded(T * q / 256))


@pytest.mark.slow
def test_poisson_encoding_is_seeded_per_element_and_has_rate_x():
    text = """graph @p
%x = ann.input : tensor<3xf32>
%s = snn.encode(%x) {encoding = poisson, seed = 7} : spikes<3>
%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<3>
%h = snn.population(%c) {reset = zero, threshold = 0.5} : spikes<3>
%y = snn.decode(%h) : tensor<3xf32>
ann.output(%y)
"""
    g = parse_ir(text)
    x = np.array([[0.1, 0.5, 0.9], [0.9, 0.5, 0.1]], np.float32)
    res = semantics.run_snn(g, [x], timesteps=4000)
    counts = res.outputs[0]
    assert np.all(np.abs(counts / 4000 - x) < 0.03)
    again = semantics.run_snn(g, [x], timesteps=4000).outputs[0]
    np.testing.assert_array_equal(counts, again)
    # the draw for element i at step t depends only on (seed, t, i), not on the batch position
    single = semantics.run_snn(g, [x[1:]], timesteps=4000).outputs[0]
    np.testing.assert_array_equal(single[0], counts[1])
    other_seed = parse_ir(text.replace("seed = 7", "seed = 8"))
    assert not np.array_equal(semantics.run_snn(other_seed, [x], timesteps=4000).outputs[0], counts)


def test_integer_current_encoding_rounds_the_scaled_input():
    # x·scale = 2.6 → 3 per step; IF with threshold 5 (integer): v 3, 6 → spike → 1, 4, 7 → spike → 2
    text = """graph @ic
%x = ann.input : tensor<1xf32>
%s = snn.encode(%x) {encoding = current, scale = 2.0} : spikes<1>
%c = snn.project(%s) {kind = one_to_one, weight = 1} : current<1>
%h = snn.population(%c) {bits = 16, threshold = 5, v0 = 0} : spikes<1>
%y = snn.decode(%h) {mode = membrane} : tensor<1xf32>
ann.output(%y)
"""
    res = semantics.run_snn(parse_ir(text), [np.array([[1.3]], np.float32)], timesteps=4)
    assert res.outputs[0].tolist() == [[2.0]]


# ---------------------------------------------------------------------------- projections


def _project(text: str, s: np.ndarray, integer: bool = False) -> np.ndarray:
    g = parse_ir(text)
    return semantics.project(g.walk("snn.project")[0], s, integer)


def _graph_with_projection(src_shape: str, proj: str, pop_shape: str, pop: str = "") -> str:
    return f"""graph @proj
%x = ann.input : tensor<{src_shape}xf32>
%s = snn.encode(%x) {{encoding = spikes}} : spikes<{src_shape}>
%c = snn.project(%s) {proj} : current<{pop_shape}>
%h = snn.population(%c) {pop} : spikes<{pop_shape}>
%y = snn.decode(%h) : tensor<{pop_shape}xf32>
ann.output(%y)
"""


def test_conv2d_projection_equals_the_ann_convolution():
    rng = np.random.default_rng(0)
    w = rng.standard_normal((4, 1, 3, 3))
    s = (rng.random((2, 2, 5, 5)) < 0.4).astype(np.int64)
    g = Graph()
    x = g.add(Input(declared_type=TensorType((2, 5, 5))))
    conv = Conv(x=x, weight=Blob(w), strides=(2, 1), pads=(1, 0, 1, 2), groups=2)
    ann_out = semantics.eval_op(conv, [s], batch=2)
    proj = "{kind = conv2d, pads = [1, 0, 1, 2], strides = [2, 1], groups = 2, weight = @w}"
    text = _graph_with_projection("2x5x5", proj, "4x3x5").replace(
        "graph @proj", "graph @proj\nblob @w : tensor<4x1x3x3xf64>")
    g2 = parse_ir(text, sidecar=lambda name: w)
    p = g2.walk("snn.project")[0]
    np.testing.assert_allclose(semantics.project(p, s, False).reshape(ann_out.shape), ann_out.astype(np.float64),
                               rtol=1e-6)


def test_pool_projection_sums_windows_times_weight():
    s = np.arange(16, dtype=np.int64).reshape(1, 1, 4, 4)
    text = _graph_with_projection("1x4x4", "{kernel = [2, 2], kind = pool, strides = [2, 2], weight = 3}", "1x2x2", "{bits = 16}")
    out = _project(text, s, integer=True).reshape(2, 2)
    expected = [[3 * (0 + 1 + 4 + 5), 3 * (2 + 3 + 6 + 7)], [3 * (8 + 9 + 12 + 13), 3 * (10 + 11 + 14 + 15)]]
    assert out.tolist() == expected


def test_sparse_projection_equals_its_dense_matrix():
    # source 0 → targets 1 (w 2), 2 (w -1); source 1 → nothing; source 2 → target 1 (w 5)
    text = _graph_with_projection(
        "3", "{indices = dense<[1, 2, 1]> : tensor<3xi64>, indptr = dense<[0, 2, 2, 3]> : tensor<4xi64>, "
        "kind = sparse, shape = [3], weight = dense<[2, -1, 5]> : tensor<3xi32>}", "3", "{bits = 16}")
    dense = np.array([[0, 0, 0], [2, 0, 5], [-1, 0, 0]])
    s = np.array([[1, 1, 0], [1, 0, 1], [0, 0, 0]])
    assert _project(text, s, integer=True).tolist() == (s @ dense.T).tolist()


def test_exponent_scales_the_current():
    text = _graph_with_projection("2", "{exponent = 3, kind = one_to_one, weight = dense<[1, -2]> : tensor<2xi8>}", "2", "{bits = 16}")
    assert _project(text, np.array([[1, 1]]), integer=True).tolist() == [[8, -16]]
    assert _project(text, np.array([[1, 1]]), integer=False).tolist() == [[8.0, -16.0]]


def test_dense_projection_reshapes_into_the_population():
    text = _graph_with_projection("2", "{kind = dense, shape = [1, 2], weight = dense<[[1.0, 2.0], [3.0, 4.0]]> : tensor<2x2xf32>}", "1x2")
    assert _project(text, np.array([[1, 1]]), integer=False).tolist() == [[3.0, 7.0]]


def test_synaptic_ops_count_events_times_structural_fanout():
    # conv2d 2 output channels, 2×2 kernel over a 3×3 source: the centre cell lies in all four
    # windows of each output channel (fan-out 8), a corner in one window (fan-out 2).
    w = "splat<1.0> : tensor<2x1x2x2xf32>"
    text = _graph_with_projection("1x3x3", f"{{kind = conv2d, weight = {w}}}", "2x2x2")
    g = parse_ir(text)
    centre = np.zeros((1, 1, 1, 3, 3), np.float32)
    centre[0, 0, 0, 1, 1] = 1
    assert semantics.run_snn(g, [centre]).synaptic_ops == 8
    corner = np.zeros_like(centre)
    corner[0, 0, 0, 0, 0] = 1
    assert semantics.run_snn(g, [corner]).synaptic_ops == 2


# --------------------------------------------------------------------------- run contract


def test_timesteps_come_from_the_argument_the_meta_or_the_spike_train():
    g = parse_ir(one_neuron("threshold = 1.0", encoding="current"))
    with pytest.raises(NmcError, match="needs a number of timesteps"):
        semantics.run_snn(g, [np.ones((1, 1), np.float32)])
    g.meta["timesteps"] = 5
    assert semantics.run_snn(g, [np.ones((1, 1), np.float32)]).timesteps == 5
    spiking = parse_ir(one_neuron("threshold = 1.0"))
    assert semantics.run_snn(spiking, [np.ones((1, 7, 1), np.float32)]).timesteps == 7
    with pytest.raises(NmcError, match="has 7 steps"):
        semantics.run_snn(spiking, [np.ones((1, 7, 1), np.float32)], timesteps=3)


def test_input_shape_mismatch_is_a_clear_error():
    g = parse_ir(one_neuron("threshold = 1.0", encoding="current"))
    with pytest.raises(NmcError, match=r"expected \[samples, 1\]"):
        semantics.run_snn(g, [np.ones((2, 3), np.float32)], timesteps=3)


def test_classify_breaks_ties_by_voltage_then_index():
    outputs = np.array([[1, 3, 3], [2, 2, 0]], np.float32)
    assert semantics.classify(outputs).tolist() == [1, 0]
    voltages = np.array([[9, 0.2, 0.5], [0.1, 0.1, 5]], np.float32)
    assert semantics.classify(outputs, voltages).tolist() == [2, 0]


# ------------------------------------------------------------------------- maxgate

MAXGATE = """graph @gate
%x = ann.input : tensor<1x2x2xf32>
%s = snn.encode(%x) {{encoding = spikes}} : spikes<1x2x2>
%g = snn.project(%s) {{kernel = [2, 2], kind = maxgate, pads = [1, 0, 0, 0], weight = {weight}}} : current<1x2x1>
%h = snn.population(%g) {{bits = 16, reset = zero, threshold = 0, v0 = 0}} : spikes<1x2x1>
%y = snn.decode(%h) {{mode = count}} : tensor<1x2x1xf32>
ann.output(%y)
"""


def test_maxgate_selects_the_window_cell_with_the_largest_count():
    # source cells a b / c d; output o0's window is (pad, pad, a, b) (pads: one row on top),
    # o1's is (a, b, c, d).  Counts include the current delivery; ties go to the first cell.
    g = parse_ir(MAXGATE.format(weight="3"))
    p = g.walk("snn.project")[0]
    state: dict = {}
    trace = [  # (a b c d delivered, counts after, currents into o0 o1)
        ([1, 1, 0, 1], [1, 1, 0, 1], [3, 3]),  # o0: a = b, a first; o1: a first of a, b, d
        ([0, 1, 0, 1], [1, 2, 0, 2], [3, 3]),  # b leads both windows (b before d in o1)
        ([1, 0, 0, 0], [2, 2, 0, 2], [3, 3]),  # ties again: a wins both, and a fired
        ([0, 0, 0, 1], [2, 2, 0, 3], [0, 3]),  # o0: a wins but is silent; o1: d
        ([0, 0, 0, 1], [2, 2, 0, 4], [0, 3]),
        ([1, 0, 0, 0], [3, 2, 0, 4], [3, 0]),  # o1: d still leads, so a's spike is not passed (an OR would)
    ]
    for delivered, after, want in trace:
        s = np.asarray(delivered, dtype=np.int64).reshape(1, 1, 2, 2)
        got = semantics.project(p, s, True, state)
        assert got.tolist() == [want]
        assert state[p].reshape(-1).tolist() == after


def test_maxgate_pad_cells_never_win():
    # negative values (integer currents): a pad cell (count 0) would beat a (-2) in o0's window
    g = parse_ir(MAXGATE.format(weight="3"))
    p = g.walk("snn.project")[0]
    state: dict = {}
    got = semantics.project(p, np.asarray([-2, -5, 0, 0]).reshape(1, 1, 2, 2), True, state)
    assert got.tolist() == [[-6, 0]]  # o0: a (-2 > -5); o1: c (0 = d, c first)
    got = semantics.project(p, np.asarray([-1.0, 1.5, 0.5, 0.0]).reshape(1, 1, 2, 2), False, {})
    assert got.tolist() == [[4.5, 4.5]]  # float: o0 and o1 both b


def test_maxgate_counts_persist_across_steps_per_sample_and_run():
    # the trace above as a run (delay 1): o1 fires when its winner fires; two samples keep
    # their own counts, and a second run starts from zero counts again
    g = parse_ir(MAXGATE.format(weight="1"))
    trains = np.asarray([[1, 1, 0, 1], [0, 1, 0, 1], [1, 0, 0, 0], [0, 0, 0, 1], [0, 0, 0, 1], [1, 0, 0, 0]],
                        dtype=np.float32).reshape(1, 6, 1, 2, 2)
    other = trains[:, ::-1].copy()
    pop = g.walk("snn.population")[0]
    res = semantics.run_snn(g, [np.concatenate([trains, other])], record=[pop])
    spikes = res.spikes[pop].reshape(2, res.steps, 2)
    assert spikes[0, :, 0].tolist() == [1, 1, 1, 0, 0, 1]
    assert spikes[0, :, 1].tolist() == [1, 1, 1, 1, 1, 0]
    alone = semantics.run_snn(g, [other], record=[pop]).spikes[pop].reshape(1, res.steps, 2)
    assert np.array_equal(alone[0], spikes[1])
    again = semantics.run_snn(g, [trains], record=[pop]).spikes[pop].reshape(1, res.steps, 2)
    assert np.array_equal(again[0], spikes[0])
    # synaptic operations as for a pool: a and b are in both windows, c and d in o1's only
    assert res.synaptic_ops == 2 * int(trains[..., 0, :].sum()) * 2 + 2 * int(trains[..., 1, :].sum())

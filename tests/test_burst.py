"""Burst (graded-spike) neurons, ``snn.population`` with ``max_spikes = B > 1`` on a linear
population (docs/design.md §5): the IR text, the reference semantics worked by hand, the
CPU runtime and the mesh emulator bit-identical to the reference, conversion with
``burst=B`` and the refusal of chips without graded spikes."""

from __future__ import annotations

import json
import pathlib
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import nmc
from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.parser import parse_ir
from nmc.ir.printer import print_graph
from nmc.neuron import burst_counts
from nmc.passmanager import PassContext, PassManager, parse_pipeline
from nmc.targets import cpu
from nmc.targets.chip import load_chip, parse_chip
from nmc.targets.image import read_image
from nmc.targets.mesh.sections import emit_sections

from reference import assert_matches_reference
from test_emulator import CHIP, TEST_CHIP, assert_identical, random_graph, seeded_graph

BURST = """graph @b {timesteps = 3}
%x = ann.input : tensor<2xf32>
%e = snn.encode(%x) {encoding = current} : spikes<2>
%c = snn.project(%e) {kind = one_to_one, weight = 1} : current<2>
%h = snn.population(%c) {bits = 16, max_spikes = 3, threshold = 10} : spikes<2>
%c2 = snn.project(%h) {kind = dense, weight = dense<[[1, 2]]> : tensor<1x2xi8>} : current<1>
%y = snn.population(%c2) {bits = 16, threshold = 32767} : spikes<1>
%o = snn.decode(%y) {mode = membrane} : tensor<1xf32>
ann.output(%o)
"""
BURST_FLOAT = (BURST.replace("bits = 16, ", "").replace("tensor<1x2xi8>", "tensor<1x2xf32>").replace("weight = 1}", "weight = 1.0}")
               .replace("threshold = 32767", "threshold = inf"))
EXAMPLES = pathlib.Path(__file__).resolve().parent.parent / "examples"
# graded spikes on a chip of the emulator tests' board
GRADED_TEXT = TEST_CHIP + "\n[spikes]\nmax_per_step = 7\n"
GRADED_CHIP = parse_chip(GRADED_TEXT, "test-mesh-graded.toml")
MAPPING = "partition,place{seed=0,iterations=50},route"


def graded_image(graph):
    """``graph`` mapped onto :data:`GRADED_CHIP`, as an image (its sections and chip text)."""
    g = graph.clone()
    PassManager(parse_pipeline(MAPPING), PassContext(target=GRADED_CHIP)).run(g)
    return types.SimpleNamespace(sections={**emit_sections(g, GRADED_CHIP), "chip": GRADED_TEXT.encode()})


def test_max_spikes_prints_and_parses_exactly():
    g = parse_ir(BURST)
    assert g.walk("snn.population")[0].max_spikes == 3
    assert print_graph(g) == BURST
    assert print_graph(parse_ir(print_graph(g))) == print_graph(g)


@pytest.mark.parametrize("change, words", [
    ("threshold = 10", "max_spikes must lie in 1..255"),
    ("threshold = 0", "needs positive finite thresholds"),
    ("reset = subtract_delayed, threshold = 10", "resets in the step it fires"),
])
def test_the_verifier_refuses_bad_burst_populations(change, words):
    text = BURST.replace("max_spikes = 3, threshold = 10", f"max_spikes = {300 if 'must lie' in words else 3}, {change}")
    with pytest.raises(NmcError, match=words):
        parse_ir(text)


def test_reference_semantics_by_hand():
    # Currents 25 and 41 for T = 3 steps into threshold 10, B = 3, reset by subtraction; the run
    # lasts 4 steps (depth 2).  Neuron 0: v = 25 -> k = (25-1)//10 = 2, v 5; 30 -> 2, v 10;
    # 35 -> 3, v 5; 5 -> 0: 7 spikes (75 = 7·10 + 5).  Neuron 1: 41 -> min(3, 4) = 3, v 11;
    # 52 -> 3, v 22; 63 -> 3, v 33; 33 -> 3 (no input), v 3: 12 spikes, the cap losing none.
    g = parse_ir(BURST)
    h = g.walk("snn.population")[0]
    r = semantics.run_snn(g, [np.array([[25.0, 41.0]], np.float32)], record=[h])
    np.testing.assert_array_equal(r.spikes[h][0], [[2, 3], [2, 3], [3, 3], [0, 3]])
    # the output integrates the counts of steps 0..2 (the last step's arrive after the run):
    # 1·(2+2+3) + 2·(3+3+3) = 25
    assert r.outputs[0][0, 0] == 25
    assert r.spike_count == 7 + 12
    # synaptic ops count messages: 6 current events and 6 graded messages (one per firing
    # neuron and step, whatever its count), each of fan-out 1
    assert r.synaptic_ops == 12


def test_burst_counts_are_the_whole_thresholds_under_v():
    v = np.array([-7, 0, 1, 10, 11, 20, 21, 45, 1000])
    np.testing.assert_array_equal(burst_counts(v, 10, 3, True), [0, 0, 0, 0, 1, 1, 2, 3, 3])
    # B = 1 is the ordinary neuron: one spike exactly where v > θ
    np.testing.assert_array_equal(burst_counts(v, 10, 1, True), v > 10)
    np.testing.assert_array_equal(burst_counts(v / 10.0, 1.0, 3, False), [0, 0, 0, 0, 1, 1, 2, 3, 3])


def test_reset_to_zero_drops_the_rest():
    g = parse_ir(BURST.replace("max_spikes = 3, threshold = 10", "max_spikes = 3, reset = zero, threshold = 10"))
    h = g.walk("snn.population")[0]
    r = semantics.run_snn(g, [np.array([[25.0, 41.0]], np.float32)], record=[h])
    # 25 -> 2 (v 0), 25 -> 2, 25 -> 2, 0; 41 -> 3 (v 0) each step
    np.testing.assert_array_equal(r.spikes[h][0], [[2, 3], [2, 3], [2, 3], [0, 0]])


def assert_all_agree(seed: int, kernels=("auto",)):
    """The mesh emulator and the CPU runtime (each ``kernels`` choice) equal the reference on
    the emulator tests' random graph ``seed`` with burst populations of up to 7 spikes."""
    graph, inputs = seeded_graph(seed, burst=7)
    assert any(p.max_spikes > 1 for p in graph.walk("snn.population"))
    got, ref = assert_identical(graph, inputs, graded_image(graph))
    for k in kernels:
        assert_matches_reference(graph, inputs, cpu.prepare(graph, cache=False, kernels=k)(inputs, record="all"))
    return graph, inputs, got, ref


@pytest.mark.slow
@settings(max_examples=20, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_emulator_cpu_and_reference_agree_on_burst_graphs(seed):
    assert_all_agree(seed, kernels=("auto", "event", "dense"))


def test_emulator_cpu_and_reference_agree_on_a_burst_graph():
    # the fast tier's case of the property above; packets: one graded message per firing
    # neuron and step whatever its count, plus the host's input events
    graph, inputs, got, ref = assert_all_agree(3)
    messages = sum(int(np.count_nonzero(ref.spikes[p])) for p in graph.walk("snn.population"))
    assert messages < ref.spike_count  # some neuron sent several spikes in one step
    ports = got.stats["packets"] - messages  # the rest are the host's input events
    assert 0 <= ports <= sum(int(np.count_nonzero(x)) for x in inputs) * graph.meta["timesteps"]


def test_a_chip_without_graded_spikes_refuses_a_burst_network():
    graph, _ = random_graph(3, burst=7)
    with pytest.raises(NmcError, match=r"population %p\d+ is a burst population of up to \d spikes per step; "
                                       r"chip 'test-mesh' sends binary spikes only"):
        PassManager(parse_pipeline(MAPPING), PassContext(target=CHIP)).run(graph.clone())  # no [spikes]
    few = parse_chip(TEST_CHIP + "\n[spikes]\nmax_per_step = 2\n", "two.toml")
    with pytest.raises(NmcError, match=r"chip 'test-mesh' sends at most 2 spikes per neuron and step"):
        PassManager(parse_pipeline(MAPPING), PassContext(target=few)).run(graph.clone())
    with pytest.raises(NmcError, match="is a burst population of up to 3 spikes per step; chip 'mesh-tiny' sends binary"):
        PassManager("quantize", PassContext(target=load_chip("mesh-tiny"))).run(parse_ir(BURST_FLOAT))


def test_convert_makes_burst_neurons_of_threshold_one_over_b():
    g = nmc.load(str(EXAMPLES / "digits_mlp.nmir"))
    ctx = PassContext(calibration=np.load(EXAMPLES / "digits_calib.npz")["x"][:64])
    normed = PassManager("canonicalize,calibrate,normalize{timesteps=2,burst=3}", ctx).run(g.clone())
    snn = PassManager("convert-to-spiking{timesteps=2,burst=3}", ctx).run(normed.clone())
    hidden, out = snn.walk("snn.population")
    assert (hidden.max_spikes, out.max_spikes) == (3, 1)  # the non-spiking read-out stays
    np.testing.assert_allclose(hidden.param_data("threshold"), 1 / 3)
    # each spike of the burst layer is a third of an activation: the read-out's weights are
    # the normalised layer's divided by 3; the input's spikes are whole activations
    first, second = snn.walk("snn.project")
    dense = normed.walk("ann.dense")
    np.testing.assert_allclose(second.weight.data, dense[1].weight.data / 3, rtol=1e-6)
    np.testing.assert_allclose(first.weight.data, dense[0].weight.data, rtol=1e-6)
    # normalize{burst=3} fits the hidden layer for a code of 3·2 + 1 levels, which differs
    # from the 3-level code of B = 1
    plain = PassManager("canonicalize,calibrate,normalize{timesteps=2}", ctx).run(g.clone())
    assert not np.allclose(plain.walk("ann.dense")[0].weight.data, dense[0].weight.data)


def test_burst_needs_the_max_pool_tree():
    g = parse_ir("""graph @p
%x = ann.input : tensor<1x4x4xf32>
%c = ann.conv(%x) {weight = splat<1.0> : tensor<2x1x1x1xf32>} : tensor<2x4x4xf32>
%r = ann.relu(%c) : tensor<2x4x4xf32>
%m = ann.maxpool(%r) {kernel = [2, 2], strides = [2, 2]} : tensor<2x2x2xf32>
ann.output(%m)
""")
    with pytest.raises(NmcError, match="maxpool=gate relays one spike per step"):
        PassManager("convert-to-spiking{burst=2}", PassContext()).run(g.clone())
    out = PassManager("convert-to-spiking{burst=2,maxpool=tree}", PassContext()).run(g.clone())
    assert all(p.max_spikes == 2 for p in out.walk("snn.population"))


def test_shipped_chips_declare_their_graded_spikes():
    assert load_chip("mesh").formats.max_spikes == load_chip("mesh-board-4").formats.max_spikes == 15
    assert load_chip("mesh-tiny").formats.max_spikes == 1
    assert load_chip("spinnaker2").formats.max_spikes == 1


def test_the_pipeline_fits_normalize_for_the_burst():
    from nmc.compiler import conversion_pipeline

    text = conversion_pipeline(4, "maxpool=tree,burst=2")
    assert "normalize{timesteps=4,burst=2}" in text and "convert-to-spiking{timesteps=4,maxpool=tree,burst=2}" in text
    assert "burst" not in conversion_pipeline(4, "maxpool=tree").split("convert-to-spiking")[0]


# ------------------------------------------------------------------ the default burst of a chip

DIGITS_MLP = str(EXAMPLES / "digits_mlp.nmir")


def test_a_chip_with_graded_spikes_converts_to_burst_neurons_by_default():
    from nmc.compiler import DEFAULT_BURST, default_pipeline, resolve_target

    ann = nmc.load(DIGITS_MLP)
    burst = min(DEFAULT_BURST, load_chip("mesh").formats.max_spikes)
    for name in ("mesh", "mesh-board-4"):
        text = default_pipeline(ann, resolve_target(name), 2, 4)
        assert (f"normalize{{timesteps=4,burst={burst}}}" in text
                and f"convert-to-spiking{{timesteps=4,maxpool=tree,burst={burst}}}" in text)
    for name in ("cpu", "mesh-tiny", "spinnaker2", "xylo-audio"):  # no graded spikes: binary
        assert "burst" not in default_pipeline(ann, resolve_target(name), 2, 4), name


def test_the_default_burst_is_capped_by_the_chip_and_an_explicit_option_wins():
    from nmc.compiler import DEFAULT_BURST, chip_conversion, option_value

    two = parse_chip(TEST_CHIP + "\n[spikes]\nmax_per_step = 2\n", "test-mesh-two.toml")
    options, note = chip_conversion(two)
    assert DEFAULT_BURST >= 2 and option_value(options, "burst", "") == "2"
    assert "burst=2" in note and "max_per_step = 2" in note and "--convert burst=1" in note
    mesh = load_chip("mesh")
    for user, burst in (("burst=1", "1"), ("burst=3", "3"), ("maxpool=gate", ""), ("maxpool=or,v0=0", "")):
        options, note = chip_conversion(mesh, user)  # the user's burst, or a max pooling that relays one spike
        assert (option_value(options, "burst", ""), note) == (burst, None), user
    assert chip_conversion(None, "v0=0") == ("v0=0", None)


def test_a_mesh_image_has_burst_neurons_by_default_and_says_so(tmp_path, capsys):
    """``nmc compile --target mesh`` of an ANN: every spiking population carries ``max_spikes =
    B`` (the read-out 1), a note on stdout and in the report names B, why and the opt-out, the
    emulator runs the image as the CPU runtime does; ``--convert burst=1`` gives binary spikes."""
    from nmc.cli import main
    from nmc.compiler import DEFAULT_BURST

    burst = min(DEFAULT_BURST, load_chip("mesh").formats.max_spikes)
    x = np.load(EXAMPLES / "digits_test.npz")["x"].astype(np.float32)
    np.savez(tmp_path / "calib.npz", x=x[:40])
    for convert, expect in (None, burst), ("burst=1", 1):
        out, rep = tmp_path / f"{expect}.nmb", tmp_path / f"{expect}.json"
        argv = ["compile", DIGITS_MLP, "--target", "mesh", "--calib", str(tmp_path / "calib.npz"), "--timesteps", "2",
                "-o", str(out), "--report", str(rep)] + (["--convert", convert] if convert else [])
        assert main(argv) == 0
        printed, report = capsys.readouterr().out, json.loads(rep.read_text())
        assert report["burst"] == expect
        if convert is None:
            [note] = report["notes"]
            assert f"note: {note}" in printed and note in report["remarks"]
            assert f"burst={burst}" in note and "mesh" in note and "--convert burst=1" in note
        else:
            assert report["notes"] == [] and "note:" not in printed
        image = read_image(str(out))
        readout = {d.x for d in image.graph.walk("snn.decode")}  # the non-spiking output layer stays binary
        assert [p.max_spikes for p in image.graph.walk("snn.population")] == [
            1 if p.result in readout else expect for p in image.graph.walk("snn.population")]
        assert any(p.result not in readout for p in image.graph.walk("snn.population"))
        emu, ref = (nmc.run(image, [x[:16]], backend=b) for b in ("emulator", "cpu"))
        assert all(np.array_equal(a, b) for a, b in zip(emu.outputs, ref.outputs))
        assert (emu.spikes, emu.synaptic_ops) == (ref.spikes, ref.synaptic_ops)


def test_nmc_eval_on_a_graded_spike_chip_evaluates_the_default_burst():
    from nmc.compiler import DEFAULT_BURST
    from nmc.evaluation import evaluate

    data = np.load(EXAMPLES / "digits_test.npz")
    x, y = data["x"][:60].astype(np.float32), data["y"][:60]
    report = evaluate(nmc.load(DIGITS_MLP), x, y, x[:40], load_chip("mesh"), [2])
    burst = min(DEFAULT_BURST, 15)
    assert f"burst={burst}" in report["convert_options"].split(",")
    assert any(n.startswith(f"burst neurons by default: burst={burst}") for n in report["notes"])
    explicit = evaluate(nmc.load(DIGITS_MLP), x, y, x[:40], load_chip("mesh"), [2], convert_options="burst=1")
    assert "notes" not in explicit and "burst=1" in explicit["convert_options"].split(",")

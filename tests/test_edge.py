"""The edge chip class (class ``xylo``, docs/edge-target.md): the chip file, bit-shift neurons in
the IR, fitting and its design-rule check, the image section, the emulator against the
reference semantics and against results recorded from SynSense's XyloSim."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import nmc
from nmc.cli import main
from nmc.diagnostics import NmcError
from nmc.ir.parser import parse_ir
from nmc.ir.printer import print_graph
from nmc.semantics import run_snn
from nmc.targets.chip import load_chip
from nmc.targets.cpu import prepare as prepare_cpu
from nmc.targets.edge.emulator import Emulator
from nmc.targets.edge.fabric import SECTION, assign, load_config, random_config, random_events, to_graph
from nmc.targets.image import read_image

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = Path(__file__).parent / "data" / "xylosim_fixture.npz"
KWS = ROOT / "examples" / "kws_rnn.nmd"
CHIP = load_chip("xylo-audio")

RNN = """graph @rnn {timesteps = 6}
%x = ann.input : tensor<4xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<4>
%c = snn.project(%s) {kind = dense, weight = dense<[[10, 20, 30, 40], [50, 60, 70, 80]]> : tensor<2x4xi8>} : current<2>
%h = snn.population(%c, %r) {bits = 16, du = 3, du2 = 5, dv = 2, leak = shift, max_spikes = 31, synapse = [0, 1], threshold = 100} : spikes<2>
%r = snn.project(%h) {kind = dense, weight = dense<[[0, 1], [1, 0]]> : tensor<2x2xi8>} : current<2>
%y = snn.decode(%h) : tensor<2xf32>
ann.output(%y)
"""


def test_the_chip_file_holds_rockpools_xylo_audio_figures():
    f, w = CHIP.fabric, CHIP.sections["formats"]
    assert (f.input_channels, f.hidden_neurons, f.output_neurons) == (16, 1000, 8)
    assert (f.hidden_synapses, f.output_synapses, f.max_fan_out) == (2, 1, 64)
    assert (f.max_input_events, f.max_hidden_events, f.max_output_events) == (15, 31, 1)
    assert (w.weight_bits, w.state_bits, w.dash_bits) == (8, 16, 4)
    assert CHIP.formats.leaks == ("shift",) and CHIP.formats.reset_modes == ("subtract",)


def test_bit_shift_populations_round_trip_and_are_verified():
    g = parse_ir(RNN, "rnn.nmir")
    assert print_graph(parse_ir(print_graph(g), "again")) == print_graph(g) == RNN
    bad = {
        "bits = 16, du = 3": ("bits = 16, du = 16", "du is a bit shift under leak = shift and must lie in [0, 15]"),
        "synapse = [0, 1]": ("synapse = [0, 2]", "synapse values must lie in [0, 1]"),
        "threshold = 100}": ("threshold = 0}", "needs a threshold of at least 1"),
        "bits = 16, du = 3, du2 = 5, dv = 2, leak = shift, max_spikes = 31, synapse = [0, 1]":
            ("bits = 16, synapse = [0, 1]", "synapse and du2 apply to leak = shift only"),
    }
    for old, (new, message) in bad.items():
        with pytest.raises(NmcError, match=message.replace("[", r"\[").replace("]", r"\]")):
            parse_ir(RNN.replace(old, new), "bad.nmir")
    with pytest.raises(NmcError, match="needs an integer population"):
        parse_ir(RNN.replace("bits = 16, ", "").replace(": tensor<2x4xi8>", ": tensor<2x4xf32>")
                 .replace(": tensor<2x2xi8>", ": tensor<2x2xf32>"), "float.nmir")


def _same(a, b):
    assert a.spike_count == b.spikes and a.synaptic_ops == b.synaptic_ops
    for x, y in zip(a.outputs, b.outputs):
        np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("seed,regime", [(0, "moderate"), (1, "saturating"), (2, "strong")])
def test_the_emulator_and_cpu_runtime_are_bit_identical_to_the_reference_semantics(seed, regime):
    options = {"moderate": {"density": 0.2, "weight_scale": 40},
               "saturating": {"density": 0.6, "weight_scale": 127, "threshold_max": 32767},
               "strong": {"density": 0.5, "weight_scale": 127, "threshold_max": 300}}[regime]
    rng = np.random.default_rng(seed)
    c = random_config(rng, CHIP, inputs=int(rng.integers(1, 17)), hidden=int(rng.integers(1, 40)),
                      outputs=int(rng.integers(1, 9)), timesteps=30, **options)
    graph = to_graph(c)
    x = random_events(rng, c, 3, 30, rate=0.4)
    pops = graph.walk("snn.population")
    ref = run_snn(graph, [x], record=pops)
    emu = Emulator(c).run([x], record="all")
    cpu = prepare_cpu(graph, cache=False)([x], record="all")
    for run in (emu, cpu):
        _same(ref, run)
        np.testing.assert_array_equal(ref.spikes[pops[0]], run.recorded["h"])
        np.testing.assert_array_equal(ref.spikes[pops[1]], run.recorded["o"])
    # the configuration a compile assigns is the one the graph came from; its bytes load back
    again = load_config(assign(graph, CHIP).to_bytes(), CHIP, "test")
    for name in ("w_in", "w_rec", "w_out", "dash_syn", "dash_mem", "threshold", "bias", "threshold_out"):
        np.testing.assert_array_equal(getattr(again, name), getattr(c, name))


def test_the_emulator_matches_results_recorded_from_xylosim():
    """tests/data/xylosim_fixture.npz: a network whose synaptic currents saturate, with the
    rasters and traces xylosim 0.1.3 produced (examples/check_xylo.py --write-fixture)."""
    data = np.load(FIXTURE)
    c = load_config(data["config"].tobytes(), CHIP, "fixture")
    x = data["x"]
    T = x.shape[1]
    run = Emulator(c).run([x], record="all", trace=True)
    assert np.abs(data["i_syn"]).max() == 32767 or np.abs(data["i_syn2"]).max() == 32767 \
        or np.abs(data["v"]).max() >= 32767, "the fixture should exercise saturation"
    np.testing.assert_array_equal(run.recorded["h"][:, :T], data["spikes_h"])
    np.testing.assert_array_equal(run.recorded["o"][:, :T], data["spikes_o"])
    for key in ("v", "i_syn", "i_syn2", "v_out", "i_syn_out"):
        np.testing.assert_array_equal(run.stats["trace"][key][:, :T], data[key], err_msg=key)
    # and so does the reference semantics on the configuration's graph
    graph = to_graph(c)
    ref = run_snn(graph, [x], record=graph.walk("snn.population"))
    np.testing.assert_array_equal(ref.spikes[graph.walk("snn.population")[0]][:, :T], data["spikes_h"])


def _events(samples: int, steps: int, seed: int = 0) -> np.ndarray:
    """Synthetic audio-like events: per sample a rising or falling sweep across 16 channels
    (a filterbank's response to a chirp), Poisson counts capped at 15."""
    rng = np.random.default_rng(seed)
    t = np.arange(steps)[:, None]
    ch = np.arange(16)[None, :]
    x = np.zeros((samples, steps, 16), np.float32)
    for n in range(samples):
        centre = (t / steps * 16) if n % 2 == 0 else (16 - t / steps * 16)
        rate = 3.0 * np.exp(-0.5 * ((ch - centre) / 1.5) ** 2)
        x[n] = np.minimum(rng.poisson(rate), 15)
    return x


def test_a_recurrent_nmd_network_compiles_for_xylo_audio_and_runs_identically(tmp_path, capsys):
    image, data = tmp_path / "kws.nmb", tmp_path / "events.npy"
    np.save(data, _events(4, 100))
    assert main(["compile", str(KWS), "--target", "xylo-audio", "-o", str(image), "--print-pipeline"]) == 0
    assert capsys.readouterr().out.strip().endswith("quantize{weight-bits=8},xylo-convert,xylo-assign")
    assert main(["compile", str(KWS), "--target", "xylo-audio", "-o", str(image)]) == 0
    img = read_image(str(image))
    assert SECTION in img.sections
    graph = img.graph
    h, o = graph.walk("snn.population")
    assert h.leak == o.leak == "shift" and (h.max_spikes, o.max_spikes) == (31, 1)
    assert any(p.src.owner is h for p in graph.walk("snn.project") if p in [c.owner for c in h.currents])
    x = np.load(data)
    emu, ref = nmc.run(str(image), x, backend="emulator"), nmc.run(str(image), x, backend="reference")
    assert emu.spikes > 0 and emu.synaptic_ops > 0
    assert emu.spikes == ref.spikes and emu.synaptic_ops == ref.synaptic_ops
    np.testing.assert_array_equal(emu.outputs[0], ref.outputs[0])
    assert "energy_per_inference_j" not in emu.stats and emu.stats["hardware_synaptic_ops"] > 0
    cpu = nmc.run(str(image), x, backend="cpu")
    assert cpu.spikes == ref.spikes and cpu.synaptic_ops == ref.synaptic_ops and cpu.stats["lowering"] == "shift"
    np.testing.assert_array_equal(cpu.outputs[0], ref.outputs[0])
    out_emu, out_cpu = tmp_path / "emu.npy", tmp_path / "cpu.npy"
    assert main(["run", str(image), "--input", str(data), "--backend", "emulator", "-o", str(out_emu)]) == 0
    assert main(["run", str(image), "--input", str(data), "--backend", "cpu", "-o", str(out_cpu)]) == 0
    np.testing.assert_array_equal(np.load(out_emu), np.load(out_cpu))


def test_too_many_events_per_channel_are_refused(tmp_path):
    assert main(["compile", str(KWS), "--target", "xylo-audio", "-o", str(tmp_path / "k.nmb")]) == 0
    x = _events(1, 100)
    x[0, 3, 2] = 16
    with pytest.raises(NmcError, match=r"the chip takes whole counts in 0\.\.15"):
        nmc.run(str(tmp_path / "k.nmb"), x, backend="emulator")


def test_bad_section_content_is_refused_with_exit_1(tmp_path, capsys):
    good = tmp_path / "k.nmb"
    assert main(["compile", str(KWS), "--target", "xylo-audio", "-o", str(good)]) == 0
    img = read_image(str(good))
    np.save(tmp_path / "x.npy", _events(1, 100))
    cases = {
        "too many hidden neurons": lambda b: b.replace(b'"hidden":48', b'"hidden":4800'),
        "not JSON": lambda b: b[:-5],
        "shift beyond the chip": lambda b: b.replace(b'"shift_in":', b'"shift_in":9'),
    }
    for name, damage in cases.items():
        img.sections[SECTION] = damage(img.sections[SECTION])
        bad = tmp_path / f"bad-{name.replace(' ', '_')}.nmb"
        img.save(str(bad))
        capsys.readouterr()
        assert main(["run", str(bad), "--input", str(tmp_path / "x.npy"), "--backend", "emulator"]) == 1, name
        assert "xylo.config" in capsys.readouterr().err
        img = read_image(str(good))


def test_the_design_rule_check_names_every_violated_limit(tmp_path, capsys):
    big = tmp_path / "big.nmd"
    big.write_text(KWS.read_text().replace("[48]", "[1200]").replace("[8]", "[10]").replace("[16]", "[20]"))
    out = tmp_path / "big.nmb"
    assert main(["compile", str(big), "--target", "xylo-audio", "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "design rule(s) violated" in err
    for piece in ("20 input channels; chip 'xylo-audio' has 16 (over by 4)",
                  "1200 hidden neurons; chip 'xylo-audio' has 1000 (over by 200)",
                  "10 readout neurons; chip 'xylo-audio' has 8 (over by 2)",
                  "drive more than 64 synapses", "fewer hidden neurons"):
        assert piece in err, piece
    assert not out.exists()


def test_chips_of_other_classes_refuse_bit_shift_neurons(tmp_path, capsys):
    src = tmp_path / "rnn.nmir"
    src.write_text(RNN)
    assert main(["compile", str(src), "--target", "mesh", "-o", str(tmp_path / "m.nmb")]) == 1
    assert "decays by leak = shift" in capsys.readouterr().err


def test_a_recurrent_nir_graph_from_the_nir_paper_compiles_for_xylo_audio(tmp_path, capsys):
    """tests/data/braille_noDelay_noBias_subtract.nir (the NIR paper's Braille RNN, BSD-3,
    tests/data/LICENSE_NIR_BSD3): 12 inputs, 40 recurrent CubaLIF neurons, 7 readouts."""
    image = tmp_path / "braille.nmb"
    nir_file = Path(__file__).parent / "data" / "braille_noDelay_noBias_subtract.nir"
    assert main(["compile", str(nir_file), "--dt", "1e-4", "--reset", "subtract", "--target", "xylo-audio",
                 "-o", str(image), "--remarks"]) == 0
    assert "xylo-convert: %lif1.lif: du → shift(s) [2]" in capsys.readouterr().err
    img = read_image(str(image))
    hidden, readout = img.graph.walk("snn.population")
    assert hidden.result.type.size == 40 and readout.result.type.size == 7
    assert any(c.owner.src.owner is hidden for c in hidden.currents), "the hidden layer is recurrent"
    x = (np.random.default_rng(0).random((3, 120, 12)) < 0.15).astype(np.float32)
    runs = [nmc.run(str(image), x, backend=b) for b in ("reference", "emulator", "cpu")]
    assert runs[0].spikes > 0
    for run in runs[1:]:
        assert run.spikes == runs[0].spikes and run.synaptic_ops == runs[0].synaptic_ops
        np.testing.assert_array_equal(run.outputs[0], runs[0].outputs[0])


def test_rebuilds_are_byte_identical(tmp_path):
    a, b = tmp_path / "a.nmb", tmp_path / "b.nmb"
    for out in (a, b):
        assert main(["compile", str(KWS), "--target", "xylo-audio", "-o", str(out)]) == 0
    assert a.read_bytes() == b.read_bytes()


@pytest.mark.slow
@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), inputs=st.integers(1, 16), hidden=st.integers(1, 80),
       outputs=st.integers(1, 8), density=st.floats(0.05, 1.0), scale=st.integers(1, 127),
       threshold_max=st.integers(1, 32767), rate=st.floats(0.0, 1.0))
def test_property_emulator_cpu_and_reference_agree(seed, inputs, hidden, outputs, density, scale, threshold_max, rate):
    rng = np.random.default_rng(seed)
    c = random_config(rng, CHIP, inputs=inputs, hidden=hidden, outputs=outputs, timesteps=20, density=density,
                      weight_scale=scale, threshold_max=threshold_max)
    graph = to_graph(c)
    x = random_events(rng, c, 2, 20, rate=rate)
    ref = run_snn(graph, [x])
    for run in (Emulator(c).run([x]), prepare_cpu(graph)([x])):
        _same(ref, run)

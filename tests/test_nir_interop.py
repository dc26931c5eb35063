"""NIR files written by snnTorch, Norse, sinabs and rockpool themselves (tests/data/nir/<lib>/,
made by benchmarks/interop.py with each library's exporter, with the output spike counts its
own simulator recorded), and nmc's exports for those libraries (tests/data/nir/<lib>/nmc/).
No torch needed: the files are the libraries' output.  docs/nir.md has the table."""

from __future__ import annotations

import os

import numpy as np
import pytest

nir = pytest.importorskip("nir")
h5py = pytest.importorskip("h5py")

from nmc.cli import main  # noqa: E402
from nmc.diagnostics import NmcError  # noqa: E402
from nmc.exporters.nir import export_nir, to_nir  # noqa: E402
from nmc.frontends.nir import from_nir, load_nir  # noqa: E402
from nmc.passmanager import PassManager  # noqa: E402
from nmc.semantics import run_snn  # noqa: E402

DATA = os.path.join(os.path.dirname(__file__), "data", "nir")
DTS = {"snntorch": 1e-4, "norse": 1e-3, "rockpool": 1e-3, "sinabs": 1e-3}  # each exporter's dt

# (library, network) → the convention under which nmc's spike counts equal the library's.
EXACT = {
    ("snntorch", "mlp_lif"): "nir", ("snntorch", "mlp_if"): "nir", ("snntorch", "cnn_lif"): "nir",
    ("snntorch", "mlp_cuba"): "snntorch", ("snntorch", "rnn_lif"): "snntorch",  # Synaptic, RLeaky: zero_delayed
    ("snntorch", "mlp_lif_subtract"): "snntorch", ("snntorch", "mlp_cuba_subtract"): "snntorch",
    ("snntorch", "rnn_lif_subtract"): "snntorch",  # snnTorch's subtract: subtract_delayed
    ("norse", "mlp_iaf"): "nir", ("norse", "mlp_lifbox"): "norse", ("norse", "mlp_lif"): "norse",
    ("sinabs", "mlp_iaf"): "nir", ("sinabs", "mlp_lif"): "sinabs",
    ("rockpool", "mlp_lif"): "rockpool",
}
FILES = sorted((lib, f[:-4]) for lib in sorted(DTS) if os.path.isdir(os.path.join(DATA, lib))
               for f in os.listdir(os.path.join(DATA, lib)) if f.endswith(".nir"))


def _run(lib, name, convention, reset=None, sub=""):
    path = os.path.join(DATA, lib, sub, f"{name}.nir")
    ref = np.load(os.path.join(DATA, lib, sub, f"{name}.npz"))
    graph = load_nir(path, dt=DTS[lib], convention=None if convention == "nir" else convention, reset=reset)
    return run_snn(graph, [ref["x"]]).outputs[0], ref["counts"]


def test_every_library_network_has_a_file():
    assert {lib for lib, _ in FILES} == set(DTS) and set(EXACT) <= set(FILES)


@pytest.mark.parametrize("lib, name", sorted(EXACT))
def test_library_files_run_exactly_as_the_library_ran_them(lib, name):
    # the *_subtract networks were built with subtractive reset, and are read with --reset subtract
    counts, expected = _run(lib, name, EXACT[(lib, name)], reset="subtract" if name.endswith("_subtract") else None)
    assert expected.sum() > 0 and np.array_equal(counts, expected)


@pytest.mark.parametrize("name", ["mlp_cuba", "rnn_lif", "mlp_lif_subtract", "mlp_cuba_subtract", "rnn_lif_subtract"])
def test_snntorch_delayed_resets_differ_from_nirs(name):
    # read by NIR's equations (resets in the step of the spike) the same files run differently
    counts, expected = _run("snntorch", name, "nir", reset="subtract" if name.endswith("_subtract") else None)
    assert not np.array_equal(counts, expected)


def test_snntorch_convention_names_its_reset_mechanism():
    # under --convention snntorch, zero and subtract are snnTorch's reset_mechanism: Leaky zeroes
    # before integrating (NIR's zero); Synaptic and RLeaky zero the step after; all subtract late
    def resets(name, reset=None):
        graph = load_nir(os.path.join(DATA, "snntorch", f"{name}.nir"), convention="snntorch", reset=reset)
        return [p.reset for p in graph.walk("snn.population")]

    assert resets("mlp_lif") == ["zero", "zero"]
    assert resets("mlp_cuba") == ["zero_delayed", "zero_delayed"]
    assert resets("rnn_lif") == ["zero_delayed", "zero"]  # the RLeaky layer, then a Leaky
    assert resets("rnn_lif", "subtract") == ["subtract_delayed", "subtract_delayed"]
    assert resets("mlp_lif", "zero_delayed") == ["zero_delayed", "zero_delayed"]  # the explicit modes are literal


def test_snntorch_files_do_not_show_the_reset_mechanism():
    # snnTorch's export_to_nir writes Leaky(reset_mechanism="subtract") and ("zero") alike:
    # same nodes, v_reset = 0, no metadata; only the weights differ
    def fields(name):
        out = {}
        with h5py.File(os.path.join(DATA, "snntorch", f"{name}.nir"), "r") as f:
            f.visititems(lambda k, v: out.__setitem__(k, v[()]) if isinstance(v, h5py.Dataset) else None)
            out["attrs"] = dict(f.attrs)
        return {k: v for k, v in out.items() if not k.endswith(("weight", "bias", "edges"))}

    zero, subtract = fields("mlp_lif"), fields("mlp_lif_subtract")
    assert zero.keys() == subtract.keys() and any(k.endswith("v_reset") for k in zero)
    assert all(np.array_equal(zero[k], subtract[k]) for k in zero if k != "attrs") and zero["attrs"] == subtract["attrs"]


def test_snntorch_subtractive_reset_is_read_as_snntorch_ran_it():
    # snnTorch's Leaky subtracts the threshold one step after the spike (reset_delay=True, its
    # default): reset = subtract_delayed, which --convention snntorch --reset subtract means, and
    # which --reset subtract_delayed says without the convention (dt = 1e-4 given)
    counts, expected = _run("snntorch", "mlp_lif_subtract", "nir", reset="subtract_delayed")
    assert np.array_equal(counts, expected)


def test_snntorch_subtractive_reset_cannot_be_written_back(tmp_path):
    graph = load_nir(os.path.join(DATA, "snntorch", "mlp_lif_subtract.nir"), convention="snntorch", reset="subtract")
    with pytest.raises(NmcError, match="subtract_delayed .*NIR has no subtractive reset"):
        to_nir(graph)
    with pytest.raises(NmcError, match="snnTorch's import_from_nir builds every Leaky .*reads no reset field"):
        export_nir(graph, tmp_path / "s.nir", compat="snntorch")
    with pytest.raises(NmcError, match="rockpool's LIFTorch subtracts the threshold in the step it fires"):
        to_nir(graph, compat="rockpool")
    assert not (tmp_path / "s.nir").exists()


@pytest.mark.parametrize("target, message", [("mesh", "supported: subtract, zero; they reset in the step"),
                                             ("xylo-audio", "supported: subtract; they reset in the step")])
def test_chips_refuse_the_delayed_reset(target, message, tmp_path, capsys):
    # their Formats list the resets their neurons have; quantize (the first pass that needs them) refuses
    path = os.path.join(DATA, "snntorch", "mlp_lif_subtract.nir")
    assert main(["compile", path, "--convention", "snntorch", "--reset", "subtract", "--target", target,
                 "-o", str(tmp_path / "x.nmb")]) == 1
    err = capsys.readouterr().err
    assert "node '1' (LIF): error: the target's neurons do not support reset 'subtract_delayed'" in err and message in err
    assert "--convention snntorch" in err
    assert not (tmp_path / "x.nmb").exists()


def test_cli_reads_the_delayed_reset(tmp_path):
    out = tmp_path / "s.nmir"
    path = os.path.join(DATA, "snntorch", "mlp_lif_subtract.nir")
    assert main(["import", path, "--dt", "1e-4", "--reset", "subtract_delayed", "-o", str(out)]) == 0
    assert "reset = subtract_delayed" in out.read_text()


def test_rockpool_recurrent_file_has_no_recurrent_weights():
    # rockpool's to_nir writes LIFTorch(has_rec=True) as a plain CubaLIF: w_rec is lost, so the
    # file cannot reproduce rockpool's run; nmc runs what the file says.
    graph = nir.read(os.path.join(DATA, "rockpool", "rnn_lif.nir"), type_check=False)
    assert not any(type(n).__name__ == "NIRGraph" for n in graph.nodes.values())
    assert all(len({b for a, b in graph.edges if a == k}) <= 1 for k in graph.nodes)
    counts, expected = _run("rockpool", "rnn_lif", "rockpool")
    assert not np.array_equal(counts, expected)


def test_norse_time_constants_name_the_convention(tmp_path):
    path = os.path.join(DATA, "norse", "mlp_lifbox.nir")
    with pytest.raises(NmcError, match="shorter than dt") as info:
        load_nir(path, dt=1e-3)
    assert "--convention norse" in info.value.hint
    assert main(["import", path, "--dt", "1e-3", "--convention", "norse", "-o", str(tmp_path / "n.nmir")]) == 0


def test_batch_axes_of_one_are_dropped_and_real_mismatches_still_refused(tmp_path):
    # rockpool and Norse write Input [1, 16] before a Linear of [16] (nir's own reader refuses it)
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(os.path.join(DATA, "norse", "mlp_iaf.nir"))
    graph = load_nir(os.path.join(DATA, "norse", "mlp_iaf.nir"))
    assert graph.inputs[0].type.shape == (16,)
    odd = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([1, 2])), "lin": nir.Linear(weight=np.ones((2, 2))),
                              "lif": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
                              "out": nir.Output(output_type=np.array([1, 1, 2]))},
                       edges=[("in", "lin"), ("lin", "lif"), ("lif", "out")], type_check=False)
    nir.write(tmp_path / "odd.nir", odd)
    assert load_nir(str(tmp_path / "odd.nir")).outputs[0].type.shape == (2,)
    bad = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([2, 2])), "lin": nir.Linear(weight=np.ones((2, 2))),
                              "out": nir.Output(output_type=np.array([2]))},
                       edges=[("in", "lin"), ("lin", "out")], type_check=False)
    nir.write(tmp_path / "bad.nir", bad)
    with pytest.raises(NmcError, match="cannot read this file"):
        load_nir(str(tmp_path / "bad.nir"))


def test_scalar_neuron_parameters_are_broadcast():
    # sinabs writes one tau (0-d) per LIF layer; nir's type check sees shape [] against [12]
    path = os.path.join(DATA, "sinabs", "mlp_lif.nir")
    with pytest.raises(ValueError, match="type mismatch"):
        nir.read(path)
    pops = load_nir(path, convention="sinabs").walk("snn.population")
    assert [p.result.type.shape for p in pops] == [(12,), (4,)]
    assert pops[0].dv == pytest.approx(4096 * -np.expm1(-1 / 8))


def test_snntorch_if_with_infinite_tau_is_an_if():
    # snnTorch writes Leaky(beta=1) as tau = dt/(1 − 1) = inf, r = tau/dt = inf
    graph = load_nir(os.path.join(DATA, "snntorch", "mlp_if.nir"), dt=1e-4)
    assert all(p.dv == 0 for p in graph.walk("snn.population"))


# ------------------------------------------------------------------ nmc's exports


@pytest.mark.parametrize("lib, name", [(lib, f[:-4]) for lib in sorted(DTS)
                                       for f in sorted(os.listdir(os.path.join(DATA, lib, "nmc"))) if f.endswith(".nir")])
def test_exports_for_libraries_have_no_zero_v_reset(lib, name):
    path = os.path.join(DATA, lib, "nmc", f"{name}.nir")
    found = []
    with h5py.File(path, "r") as f:
        f.visit(lambda key: found.append(key))
    assert not any(k.endswith("v_reset") for k in found)  # nir 1.0.4 readers refuse the field
    graph = nir.read(path)
    assert lib != "snntorch" or all("." not in k for k in graph.nodes)


@pytest.mark.parametrize("lib, convention", [("snntorch", "nir"), ("norse", "nir"), ("rockpool", "rockpool")])
def test_export_for_a_library_reads_back(lib, convention):
    # nmc writes the parameters as the library's *reader* means them.  snnTorch's reader
    # resets at once (reset_delay=False), as NIR does, with dt = 1e-4; rockpool's reader
    # inverts its writer, so its convention gives nmc's graph back;
    # Norse's reader takes NIR's tau (its writer does not), and sinabs' reader adds inputs
    # unscaled (unlike the layers its writer writes)
    for name in sorted(f[:-4] for f in os.listdir(os.path.join(DATA, lib, "nmc")) if f.endswith(".nir")):
        counts, expected = _run(lib, name, convention, sub="nmc")
        assert np.array_equal(counts, expected), name


def _readout_graph():
    g = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([2])), "lin": nir.Linear(weight=np.eye(2)),
                            "if": nir.IF(r=np.ones(2), v_threshold=np.ones(2), v_reset=np.zeros(2)),
                            "lin2": nir.Linear(weight=np.eye(2)), "i": nir.I(r=np.ones(2)),
                            "out": nir.Output(output_type=np.array([2]))},
                     edges=[("in", "lin"), ("lin", "if"), ("if", "lin2"), ("lin2", "i"), ("i", "out")])
    return from_nir(g)


@pytest.mark.parametrize("lib, message", [("norse", "Norse's from_nir has no I node"),
                                          ("snntorch", "snnTorch's import_from_nir has no I node"),
                                          ("sinabs", "sinabs' from_nir has no I node"),
                                          ("rockpool", "rockpool's from_nir has no IF node")])
def test_export_says_what_a_library_cannot_read(lib, message, tmp_path):
    with pytest.raises(NmcError, match=message):
        export_nir(_readout_graph(), tmp_path / "x.nir", compat=lib)
    assert not (tmp_path / "x.nir").exists()
    to_nir(_readout_graph())  # NIR itself says it


def test_export_warns_what_the_reader_runs_differently():
    warnings = []
    to_nir(load_nir(os.path.join(DATA, "rockpool", "mlp_lif.nir"), dt=1e-3, convention="rockpool"), compat="rockpool",
           warnings=warnings)
    assert any("default max_spikes_per_dt" in w for w in warnings)
    warnings = []
    to_nir(load_nir(os.path.join(DATA, "snntorch", "rnn_lif.nir"), dt=1e-4), compat="snntorch", warnings=warnings)
    assert any("recurrent graphs" in w for w in warnings)


def test_flatten_keeps_a_torch_readers_batch_axis():
    # snnTorch's reader makes Flatten torch's nn.Flatten(start_dim, end_dim): start_dim = 0 (what
    # snnTorch itself writes) folds the batch into the features; axes counted from the end do not
    flat = [n for n in nir.read(os.path.join(DATA, "snntorch", "nmc", "cnn_lif.nir")).nodes.values()
            if type(n).__name__ == "Flatten"]
    assert len(flat) == 1 and (int(flat[0].start_dim), int(flat[0].end_dim)) == (-3, -1)
    assert list(flat[0].output_type["output"]) == [72]


def test_cli_export_compat_warns(tmp_path, capsys):
    src = os.path.join(DATA, "sinabs", "mlp_iaf.nir")
    assert main(["export", src, "--format", "nir", "--compat", "sinabs", "-o", str(tmp_path / "o.nir")]) == 0
    assert "sinabs' from_nir reads IF as IAFSqueeze" in capsys.readouterr().err
    assert main(["export", src, "--format", "nir", "--compat", "snntorch", "-o", str(tmp_path / "s.nir")]) == 0
    lif = [n for n in nir.read(tmp_path / "s.nir").nodes.values() if type(n).__name__ == "LIF"]
    assert lif and np.float32(1 - 1e-4 / lif[0].tau.reshape(-1)[0]) == 1  # snnTorch's beta: exactly 1 in float32


# --------------------------------------------------------- converted ANN → NIR (item 3)


def _digits():
    from nmc.frontends import load

    return load(os.path.join(os.path.dirname(os.path.dirname(__file__)), "examples", "digits_mlp.nmir"))


def test_converted_ann_with_spike_train_input_exports_to_nir(tmp_path):
    graph = _digits()
    PassManager("canonicalize,convert-to-spiking{encoding=spikes,reset=zero,v0=0}").run(graph)
    assert graph.walk("snn.encode")[0].encoding == "spikes"
    x = (np.random.default_rng(0).random((3, 12, *graph.inputs[0].type.shape)) < 0.3).astype(np.float32)
    expected = run_snn(graph, [x]).outputs[0]
    export_nir(graph, tmp_path / "conv.nir")
    back = load_nir(str(tmp_path / "conv.nir"), dt=graph.meta.get("dt"))
    np.testing.assert_allclose(run_snn(back, [x]).outputs[0], expected, rtol=1e-5, atol=1e-5)


def test_v0_hint_does_not_ask_for_the_v0_already_set(tmp_path):
    graph = _digits()
    PassManager("canonicalize,convert-to-spiking{encoding=spikes,reset=zero,v0=0,bias-correction=false}").run(graph)
    with pytest.raises(NmcError) as info:
        to_nir(graph)
    assert "set v0 = 0" not in info.value.hint and "bias-correction=true" in info.value.hint

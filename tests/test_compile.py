"""nmc compile / nmc.compile / nmc inspect: pipelines, images, reports, errors, determinism.

The ANN is examples/digits_mlp.nmir (scikit-learn digits, 64-32-10); calibration uses a
slice of examples/digits_test.npz.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

import nmc
import nmc.semantics
from nmc.cli import main
from nmc.compiler import default_pipeline, resolve_target
from nmc.diagnostics import NmcError, UsageError
from nmc.ir.io import write_ir
from nmc.passmanager import PassContext, run_pipeline
from nmc.targets.chip import load_chip
from nmc.targets.image import decode_image, read_image

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
MODEL = str(EXAMPLES / "digits_mlp.nmir")
DATA = str(EXAMPLES / "digits_test.npz")
REPORT_KEYS = {"target", "pipeline", "cores", "cores_lower_bound", "chips", "placement_cost",
               "placement_cost_naive", "max_link_load", "passes"}


@pytest.fixture(scope="module")
def digits():
    with np.load(DATA) as d:
        return d["x"][:60], d["y"][:60]


@pytest.fixture
def calib(tmp_path, digits):
    path = tmp_path / "calib.npz"
    np.savez(path, x=digits[0][:40])
    return str(path)


def converted(digits, T=8, quantize=False):
    """The float (or integer) snn graph the default pipeline makes, built pass by pass here."""
    graph = nmc.load(MODEL)
    chip = load_chip("mesh-tiny")
    ctx = PassContext(calibration=digits[0][:40], target=chip)
    run_pipeline(graph, f"canonicalize,calibrate,normalize{{timesteps={T}}},convert-to-spiking{{timesteps={T}}}", ctx)
    if quantize:
        run_pipeline(graph, "quantize{weight-bits=8}", ctx)
    return graph


# ------------------------------------------------------------------------------- pipelines


def test_default_pipelines():
    ann = nmc.load(MODEL)
    cpu, tiny = resolve_target("cpu"), resolve_target("mesh-tiny")
    assert default_pipeline(ann, cpu, 2, 16) == "canonicalize,calibrate,normalize{timesteps=16},convert-to-spiking{timesteps=16}"
    mesh = default_pipeline(ann, tiny, 2, 16, seed=3)
    assert mesh.startswith("canonicalize,calibrate,normalize{timesteps=16},convert-to-spiking{timesteps=16,maxpool=tree},quantize{weight-bits=8},"
                           "partition,place{seed=3")
    assert mesh.endswith("},route")
    measured = default_pipeline(ann, tiny, 2, 16, seed=3, calibrated=True)
    assert "quantize{weight-bits=8},measure-rates,partition,place{seed=3" in measured
    with pytest.raises(UsageError):
        default_pipeline(ann, cpu, 4, 16)


@pytest.mark.parametrize("encoding, fitted", [("current", ",encoding=current"), ("poisson", ",encoding=poisson"),
                                              ("rate", ""), ("spikes", "")])
def test_normalize_fits_the_layers_to_the_input_encoding(encoding, fitted):
    """--convert encoding=X reaches normalize too (a spike train is fitted as a rate code)."""
    ann = nmc.load(MODEL)
    text = default_pipeline(ann, resolve_target("cpu"), 2, 4, convert=f"encoding={encoding}")
    assert text.startswith(f"canonicalize,calibrate,normalize{{timesteps=4{fitted}}},convert-to-spiking{{timesteps=4,"
                           f"encoding={encoding}}}")


def test_measure_rates_records_what_the_reference_run_spikes(digits):
    graph = converted(digits, T=8, quantize=True)
    x = digits[0][:12]
    run_pipeline(graph, "measure-rates{samples=12}", PassContext(calibration=x))
    pops = graph.walk("snn.population")
    ref = nmc.semantics.run_snn(graph, [x], record=pops)
    for pop in pops:
        assert pop.extra["calib.rate"] == round(float(ref.spikes[pop].mean()), 6)
    enc = graph.walk("snn.encode")[0]
    events = np.clip(x, 0, 1).sum() * 8  # rate encoding: about x spikes per step for T steps
    assert enc.extra["calib.rate"] * x.shape[0] * ref.steps * enc.result.type.size == pytest.approx(events, abs=x.size)
    with pytest.raises(NmcError, match="measure-rates needs calibration data"):
        run_pipeline(graph, "measure-rates", PassContext())


def test_api_compile_sizes_the_board(digits):
    """nmc.compile(..., board="auto") is nmc compile --board auto: the image's target is the
    fitted board (the option was once taken for a load option and dropped)."""
    img = nmc.compile(MODEL, target="mesh-tiny", calibration=digits[0][:40], timesteps=8, board="auto")
    x, y = map(int, img.target.removeprefix("mesh-tiny-auto-").split("x"))
    assert img.manifest["resources"]["chips"] <= x * y
    # the mapping steps that are not passes are timed beside them (benchmarks/zoo.py reads them)
    assert set(img.stats["phases"]) == {"fit-board", "emit", "resource-summary"}
    assert all(s >= 0 for s in img.stats["phases"].values())


def test_user_chip_file_as_target(tmp_path):
    from nmc.targets.chip import chips_dir

    text = (chips_dir() / "mesh-tiny.toml").read_text().replace('name = "mesh-tiny"', 'name = "my-chip"')
    path = tmp_path / "my_chip.toml"
    path.write_text(text)
    target = resolve_target(str(path))
    assert (target.name, target.chip_class) == ("my-chip", "mesh")
    assert target.chip_text == text.encode() and target.chip.digest == hashlib.sha256(text.encode()).hexdigest()


def test_spiking_inputs_skip_conversion_and_integer_ones_skip_quantize(digits):
    cpu, tiny = resolve_target("cpu"), resolve_target("mesh-tiny")
    float_snn, int_snn = converted(digits), converted(digits, quantize=True)
    assert default_pipeline(float_snn, cpu) == ""
    assert default_pipeline(float_snn, tiny).startswith("quantize{weight-bits=8},partition,place{seed=0")
    assert default_pipeline(int_snn, tiny).startswith("partition,place{seed=0")


def test_print_pipeline_cli(capsys, tmp_path, digits):
    assert main(["compile", MODEL, "--target", "cpu", "--timesteps", "12", "--print-pipeline"]) == 0
    assert capsys.readouterr().out.strip() == "canonicalize,calibrate,normalize{timesteps=12},convert-to-spiking{timesteps=12}"
    snn = tmp_path / "snn.nmir"
    write_ir(converted(digits, T=8), str(snn))
    assert main(["compile", str(snn), "--target", "mesh-tiny", "--print-pipeline", "-O0", "--seed", "5"]) == 0
    out = capsys.readouterr().out.strip()
    assert out.startswith("quantize{weight-bits=8},partition,place{seed=5") and out.endswith("route")


# ------------------------------------------------------------------------------- cpu images


def test_cpu_image_runs_like_the_converted_graph(tmp_path, digits):
    x, _ = digits
    img = nmc.compile(MODEL, target="cpu", calibration=x[:40], timesteps=8)
    assert img.target == "cpu" and img.chip_sha256 == ""
    assert set(img.sections) == {"graph", "manifest"}
    path = str(tmp_path / "d.nmb")
    img.save(path)
    from_image = nmc.run(path, x)
    direct = nmc.run(converted(digits, T=8), x)
    np.testing.assert_array_equal(from_image.outputs[0], direct.outputs[0])
    assert from_image.spikes == direct.spikes and from_image.steps == direct.steps == 9
    m = read_image(path).manifest
    assert m["target"] == "cpu" and m["timesteps"] == 8 and m["latency_steps"] == 9
    assert m["pipeline"] == "canonicalize,calibrate,normalize{timesteps=8},convert-to-spiking{timesteps=8}"
    assert m["compiler"] == f"nmc {nmc.__version__}"
    assert len(m["source_sha256"]) == 64


def test_same_inputs_same_bytes(tmp_path, calib):
    outs = []
    for name in ("a.nmb", "b.nmb"):
        out = tmp_path / name
        assert main(["compile", MODEL, "--target", "cpu", "--calib", calib, "--timesteps", "8", "-o", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert main(["compile", MODEL, "--target", "cpu", "--calib", calib, "--timesteps", "9", "-o", str(tmp_path / "c.nmb")]) == 0
    assert (tmp_path / "c.nmb").read_bytes() != outs[0]


def test_spiking_model_compiles_without_calibration(tmp_path, digits, capsys):
    snn = tmp_path / "snn.nmir"
    write_ir(converted(digits, T=8), str(snn))
    out = tmp_path / "snn.nmb"
    assert main(["compile", str(snn), "--target", "cpu", "-o", str(out), "--timesteps", "5"]) == 0
    img = read_image(str(out))
    assert img.manifest["pipeline"] == "" and img.manifest["timesteps"] == 5
    assert img.graph.meta["timesteps"] == 5
    result = nmc.run(str(out), digits[0])
    assert result.timesteps == 5 and result.steps == 6


def test_source_hash_covers_the_blob_sidecar(tmp_path, digits):
    graph = converted(digits, T=8)
    path = tmp_path / "m.nmir"
    write_ir(graph, str(path))
    first = nmc.compile(str(path), target="cpu").manifest["source_sha256"]
    w = next(op for op in graph.walk("snn.project") if op.weight.size > 16)
    sidecar = dict(np.load(str(path) + ".npz"))
    sidecar[w.weight.name] = sidecar[w.weight.name] * 2
    np.savez(str(path) + ".npz", **sidecar)
    assert nmc.compile(str(path), target="cpu").manifest["source_sha256"] != first


def test_graph_section_is_self_contained(tmp_path, digits):
    img = nmc.compile(MODEL, target="cpu", calibration=digits[0][:40], timesteps=8)
    text = img.sections["graph"].decode()
    assert "base64<" in text
    again = decode_image(_bytes(img)).graph  # no sidecar anywhere
    assert [op.KIND for op in again.ops] == [op.KIND for op in converted(digits).ops]


def _bytes(img) -> bytes:
    from nmc.targets.image import encode_image

    return encode_image(img)


def test_compile_report_and_time_passes(tmp_path, calib, capsys):
    out, rep = tmp_path / "d.nmb", tmp_path / "r.json"
    argv = ["compile", MODEL, "--target", "cpu", "--calib", calib, "-o", str(out), "--report", str(rep), "--time-passes"]
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Pass execution timing report" in captured.err
    assert captured.err.count("Total Execution Time") == 1
    report = json.loads(rep.read_text())
    assert REPORT_KEYS <= set(report)
    assert report["target"] == "cpu" and report["cores"] is None
    assert set(report["passes"]) == {"canonicalize", "calibrate", "normalize", "convert-to-spiking"}
    assert all(s >= 0 for s in report["passes"].values())


def test_inspect_cpu_image(tmp_path, calib, capsys):
    out = tmp_path / "d.nmb"
    assert main(["compile", MODEL, "--target", "cpu", "--calib", calib, "-o", str(out)]) == 0
    capsys.readouterr()
    assert main(["inspect", str(out)]) == 0
    text = capsys.readouterr().out
    assert "target cpu, format version 1" in text and "convert-to-spiking{timesteps=32}" in text
    assert "graph" in text and "manifest" in text
    assert main(["inspect", str(out), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert {s["name"] for s in info["sections"]} == {"graph", "manifest"}
    assert info["cores"] is None
    assert main(["inspect", str(out), "--plot", str(tmp_path / "m.png")]) == 1
    assert "has no mapping to plot" in capsys.readouterr().err
    assert not (tmp_path / "m.png").exists()


# ----------------------------------------------------------------------------------- errors


def test_ann_without_calibration_is_a_user_error(tmp_path, capsys):
    assert main(["compile", MODEL, "--target", "cpu", "-o", str(tmp_path / "x.nmb")]) == 1
    err = capsys.readouterr().err
    assert "needs calibration data" in err and "--calib" in err and "Traceback" not in err
    assert not (tmp_path / "x.nmb").exists()


def test_usage_errors(tmp_path, calib, capsys):
    assert main(["compile", MODEL, "--target", "cpu", "--calib", calib]) == 2
    assert "-o OUT.nmb" in capsys.readouterr().err
    bad = ["compile", MODEL, "--target", "cpu", "--calib", calib, "-o", str(tmp_path / "x.nmb")]
    assert main(bad + ["--pipeline", "canonicalize,partition"]) == 2
    assert main(bad + ["--pipeline", "canonicalize,frobnicate"]) == 2
    assert "unknown pass 'frobnicate'" in capsys.readouterr().err
    assert main(bad + ["--timesteps", "0"]) == 2
    assert not (tmp_path / "x.nmb").exists()


def test_unknown_target_and_pipeline_that_stays_ann(tmp_path, calib, capsys):
    out = str(tmp_path / "x.nmb")
    assert main(["compile", MODEL, "--target", "nosuchchip", "--calib", calib, "-o", out]) == 1
    assert "unknown target 'nosuchchip'" in capsys.readouterr().err
    assert main(["compile", MODEL, "--target", "cpu", "--pipeline", "canonicalize", "-o", out]) == 1
    assert "left @digits_mlp an ANN" in capsys.readouterr().err


def test_run_refuses_model_options_on_images(tmp_path, calib, digits):
    out = tmp_path / "d.nmb"
    assert main(["compile", MODEL, "--target", "cpu", "--calib", calib, "-o", str(out)]) == 0
    with pytest.raises(UsageError, match="dt"):
        nmc.run(str(out), digits[0], dt=1e-3)


def test_wrong_target_through_the_api(tmp_path, digits):
    img = nmc.compile(MODEL, target="cpu", calibration=digits[0][:40])
    path = str(tmp_path / "d.nmb")
    img.save(path)
    with pytest.raises(NmcError, match="for target 'cpu', asked for 'mesh'"):
        read_image(path, expect_target="mesh")


# ------------------------------------------------------------------------------ mesh images


@pytest.fixture(scope="module")
def mesh_image(tmp_path_factory, digits):
    tmp = tmp_path_factory.mktemp("mesh")
    np.savez(tmp / "calib.npz", x=digits[0][:40])
    out, rep = tmp / "m.nmb", tmp / "r.json"
    code = main(["compile", MODEL, "--target", "mesh-tiny", "--calib", str(tmp / "calib.npz"), "--timesteps", "8",
                 "-o", str(out), "--report", str(rep)])
    assert code == 0
    return out, json.loads(rep.read_text()), tmp


def test_mesh_image_sections_and_report(mesh_image, digits):
    out, report, _ = mesh_image
    img = read_image(str(out), expect_target="mesh-tiny")
    chip = load_chip("mesh-tiny")
    assert img.chip_sha256 == chip.digest and img.chip() == dataclasses_replace_path(chip, img.chip().path)
    assert {"graph", "manifest", "chip"} < set(img.sections)
    assert REPORT_KEYS <= set(report)
    assert report["target"] == "mesh-tiny" and report["cores"] >= report["cores_lower_bound"] >= 1
    assert {"partition", "place", "route", "quantize"} <= set(report["passes"])
    assert img.manifest["resources"]["cores"] == report["cores"]
    assert all(p.bits for p in img.graph.walk("snn.population")), "the graph section is the integer graph"
    assert not any(op.dialect == "hw" for op in img.graph.ops), "snapshot is taken before partition"


def dataclasses_replace_path(chip, path):
    import dataclasses

    return dataclasses.replace(chip, path=path)


def test_mesh_image_reference_run_matches_the_quantised_graph(mesh_image, digits):
    out, _, _ = mesh_image
    x = digits[0]
    a = nmc.run(str(out), x)
    b = nmc.run(converted(digits, T=8, quantize=True), x)
    np.testing.assert_array_equal(a.outputs[0], b.outputs[0])
    assert a.spikes == b.spikes


def test_mesh_image_emulator_is_bit_identical(mesh_image, digits):
    out, _, _ = mesh_image
    x = digits[0][:20]
    emu, ref = nmc.run(str(out), x, backend="emulator"), nmc.run(str(out), x)
    np.testing.assert_array_equal(emu.outputs[0], ref.outputs[0])


def test_nmc_run_writes_the_same_bytes_on_every_backend(mesh_image, capsys):
    out, _, tmp = mesh_image
    files = {}
    for backend in ("reference", "cpu", "emulator"):
        files[backend] = tmp / f"out-{backend}.npy"
        assert main(["run", str(out), "--backend", backend, "--input", DATA, "-o", str(files[backend])]) == 0
    summary = capsys.readouterr().out
    assert "energy/inference" in summary and "busiest link" in summary
    assert files["cpu"].read_bytes() == files["reference"].read_bytes() == files["emulator"].read_bytes()


@pytest.mark.slow
def test_mesh_image_is_deterministic_and_inspectable(mesh_image, capsys):
    out, _, tmp = mesh_image
    again = tmp / "again.nmb"
    assert main(["compile", MODEL, "--target", "mesh-tiny", "--calib", str(tmp / "calib.npz"), "--timesteps", "8",
                 "-o", str(again)]) == 0
    assert again.read_bytes() == out.read_bytes()
    capsys.readouterr()
    assert main(["inspect", str(out), "--plot", str(tmp / "map.png")]) == 0
    text = capsys.readouterr().out
    assert "target mesh-tiny" in text and "resources:" in text
    assert "relu1:32" in text and "fc2:10" in text  # the populations each core holds
    assert (tmp / "map.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

"""Chip classes as plug-ins: a class from outside nmc compiles and runs through the command
line, the default pipeline follows the chip file, and nmc/ and passes/ name no class."""

from __future__ import annotations

import ast
import io
import json
import re
import sys
import tokenize
from pathlib import Path

import numpy as np
import pytest

from nmc.cli import main
from nmc.compiler import DEFAULT_BURST
from nmc.diagnostics import NmcError
from nmc.targets.chip import chips_dir, load_chip
from nmc.targets.classes import chip_class, known_classes, register_chip_class, unregister_chip_class

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
TOY = Path(__file__).parent / "toyclass"


@pytest.fixture
def toy_class():
    sys.path.insert(0, str(Path(__file__).parent))
    try:
        from toyclass import CHIP_CLASS

        yield register_chip_class(CHIP_CLASS)
    finally:
        unregister_chip_class("toy")
        sys.path.remove(str(Path(__file__).parent))


def test_a_class_from_a_test_folder_compiles_and_runs_through_the_command_line(toy_class, tmp_path, capsys):
    image, out, ref = tmp_path / "d.nmb", tmp_path / "emu.npy", tmp_path / "cpu.npy"
    assert main(["compile", str(EXAMPLES / "digits_mlp.nmir"), "--target", str(TOY / "toy.toml"),
                 "--calib", str(EXAMPLES / "digits_calib.npz"), "--print-pipeline"]) == 0
    pipeline = capsys.readouterr().out
    assert "quantize{weight-bits=6}" in pipeline and pipeline.strip().endswith("toy-fit")
    assert main(["compile", str(EXAMPLES / "digits_mlp.nmir"), "--target", str(TOY / "toy.toml"),
                 "--calib", str(EXAMPLES / "digits_calib.npz"), "-o", str(image)]) == 0
    test = str(EXAMPLES / "digits_test.npz")
    assert main(["run", str(image), "--backend", "emulator", "--input", test, "-o", str(out)]) == 0
    assert main(["run", str(image), "--backend", "cpu", "--input", test, "-o", str(ref)]) == 0
    np.testing.assert_array_equal(np.load(out), np.load(ref))
    capsys.readouterr()
    assert main(["inspect", str(image), "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["cores"] == [{"core": 0, "neurons": 42}] and "toy.program" in {s["name"] for s in info["sections"]}
    assert info["resources"]["fabric_use"] == round(42 / 256, 6)


def test_the_class_refuses_what_does_not_fit_and_unknown_classes_are_named(toy_class, tmp_path, capsys):
    small = tmp_path / "small.toml"
    small.write_text((TOY / "toy.toml").read_text().replace("neurons = 256", "neurons = 16"))
    assert main(["compile", str(EXAMPLES / "digits_mlp.nmir"), "--target", str(small),
                 "--calib", str(EXAMPLES / "digits_calib.npz"), "-o", str(tmp_path / "x.nmb")]) == 1
    assert "the network has 42 neurons; fabric 'toy-1' has 16" in capsys.readouterr().err
    assert not (tmp_path / "x.nmb").exists()
    odd = tmp_path / "odd.toml"
    odd.write_text((TOY / "toy.toml").read_text().replace('class = "toy"', 'class = "nonesuch"'))
    with pytest.raises(NmcError, match="unknown chip class 'nonesuch'") as info:
        load_chip(str(odd))
    assert "toy" in info.value.hint and "mesh" in info.value.hint and info.value.loc.line == 3


def test_a_chip_with_narrow_weights_compiles_by_default(tmp_path, capsys):
    """The default pipeline quantises to the chip's widest weights when they are under 8 bits
    (it used to ask for 8 and fail on 'weight-bits=8 is outside the target's weights')."""
    chip = tmp_path / "narrow.toml"
    chip.write_text((chips_dir() / "mesh-tiny.toml").read_text()
                    .replace('name = "mesh-tiny"', 'name = "narrow"').replace("weight_bits_max = 8", "weight_bits_max = 4"))
    image = tmp_path / "n.nmb"
    assert main(["compile", str(EXAMPLES / "digits_mlp.nmir"), "--target", str(chip),
                 "--calib", str(EXAMPLES / "digits_calib.npz"), "-o", str(image)]) == 0
    from nmc.targets.image import read_image

    graph = read_image(str(image)).graph
    weights = [p.weight.data for p in graph.walk("snn.project")]
    assert weights and all(w.min() >= -8 and w.max() <= 7 for w in weights)
    assert "quantize{weight-bits=4}" in read_image(str(image)).manifest["pipeline"]


def test_a_chip_that_cannot_subtract_converts_with_reset_to_zero(tmp_path, capsys):
    chip = tmp_path / "zero.toml"
    chip.write_text((chips_dir() / "mesh-tiny.toml").read_text()
                    .replace('reset_modes = ["subtract", "zero"]', 'reset_modes = ["zero"]'))
    assert main(["compile", str(EXAMPLES / "digits_mlp.nmir"), "--target", str(chip), "--print-pipeline"]) == 0
    assert "convert-to-spiking{timesteps=32,maxpool=tree,reset=zero}" in capsys.readouterr().out


def test_convert_and_quantize_options_reach_the_default_pipeline(capsys):
    args = ["compile", str(EXAMPLES / "mnist_cnn.onnx"), "--target", "mesh", "--print-pipeline"]
    assert main(args + ["--convert", "fuse-pooling=false,v0=0", "--quantize", "weight-bits=6"]) == 0
    pipeline = capsys.readouterr().out.strip()
    burst = min(DEFAULT_BURST, load_chip("mesh").formats.max_spikes)  # graded spikes: burst neurons by default
    assert f"convert-to-spiking{{timesteps=32,maxpool=tree,fuse-pooling=false,v0=0,burst={burst}}}" in pipeline
    assert "quantize{weight-bits=6}" in pipeline
    assert main(args + ["--convert", "maxpool=or"]) == 0  # overrides the class's default
    assert "convert-to-spiking{timesteps=32,maxpool=or}" in capsys.readouterr().out
    assert main(args + ["--convert", "fuse-pooling"]) == 2
    assert "not KEY=VALUE" in capsys.readouterr().err
    assert main(args + ["--convert", "no-such-option=1"]) == 2
    assert "no-such-option" in capsys.readouterr().err


def test_every_shipped_chip_names_a_known_class():
    for path in sorted(chips_dir().iterdir()):
        if path.name.endswith(".toml"):
            chip = load_chip(path.name[:-5])
            assert chip.chip_class in known_classes()
            assert chip_class(chip.chip_class).summary(chip)["cores"] >= 1


def test_the_core_names_no_chip_class():
    """nmc/ and passes/ hold no code that names a chip class: no identifier or string outside
    docstrings and comments (the help texts' examples are docstrings)."""
    word = re.compile(r"\b(" + "|".join(c for c in known_classes() if c != "toy") + r")\b")
    hits = []
    for path in sorted([*(ROOT / "nmc").rglob("*.py"), *(ROOT / "passes").rglob("*.py")]):
        text = path.read_text(encoding="utf-8")
        docstrings = set()
        for node in ast.walk(ast.parse(text)):
            body = getattr(node, "body", None)
            if isinstance(body, list) and body and isinstance(body[0], ast.Expr) \
                    and isinstance(body[0].value, ast.Constant) and isinstance(body[0].value.value, str):
                docstrings.add((body[0].lineno, body[0].col_offset))
        for tok in tokenize.generate_tokens(io.StringIO(text).readline):
            if tok.type != tokenize.COMMENT and tok.start not in docstrings and word.search(tok.string):
                hits.append(f"{path.relative_to(ROOT)}:{tok.start[0]}: {tok.string}")
    assert not hits, "\n".join(hits)

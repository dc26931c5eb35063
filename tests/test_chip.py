"""Chip descriptions: the shipped mesh chip and the loader's diagnostics for broken files."""

from __future__ import annotations

import pytest

from nmc.diagnostics import NmcError
from nmc.targets.chip import chips_dir, load_chip, shipped_chips


def mesh_text() -> str:
    return (chips_dir() / "mesh.toml").read_text(encoding="utf-8")


def test_shipped_mesh_has_loihi_figures():
    chip = load_chip("mesh")
    assert "mesh" in shipped_chips()
    assert chip.name == "mesh" and chip.chip_class == "mesh"
    assert chip.mesh.cores_x * chip.mesh.cores_y == 128
    assert (chip.core.neurons, chip.core.input_axons, chip.core.output_axons) == (1024, 4096, 4096)
    assert chip.core.synapse_memory_bits == 2**20
    assert (chip.core.weight_bits_min, chip.core.weight_bits_max) == (1, 8)
    assert chip.state.voltage_bits == chip.state.current_bits == 24
    assert chip.state.decay_bits == 12
    assert set(chip.state.reset_modes) == {"subtract", "zero"}
    assert chip.energy.synaptic_op_j == pytest.approx(23.6e-12)
    assert chip.formats.state_limit() == 2**23 - 1
    assert chip.formats.weight_range(8) == (-128, 127)
    assert len(chip.digest) == 64


def test_user_file_by_path(tmp_path):
    path = tmp_path / "mine.toml"
    path.write_text(mesh_text().replace('name = "mesh"', 'name = "mine"').replace("neurons = 1024", "neurons = 256"))
    chip = load_chip(str(path))
    assert chip.name == "mine" and chip.core.neurons == 256


def _error(tmp_path, text: str) -> NmcError:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(NmcError) as info:
        load_chip(str(path))
    return info.value


def _line_of(text: str, needle: str) -> int:
    return next(i for i, line in enumerate(text.splitlines(), 1) if line.strip().startswith(needle))


def test_unknown_key_names_file_key_and_line(tmp_path):
    text = mesh_text().replace("neurons = 1024", "neurons = 1024\nneuronz = 12")
    err = _error(tmp_path, text)
    assert "unknown key 'neuronz' in [core]" in err.message
    assert err.loc.file.endswith("bad.toml") and err.loc.line == _line_of(text, "neuronz")
    assert "neurons" in err.hint
    assert "bad.toml:" in err.render()


def test_unknown_section(tmp_path):
    text = mesh_text() + "\n[cache]\nsize = 1\n"
    err = _error(tmp_path, text)
    assert "unknown key 'cache'" in err.message and err.loc.line == _line_of(text, "[cache]")


def test_missing_field(tmp_path):
    text = mesh_text().replace("decay_bits = 12", "")
    err = _error(tmp_path, text)
    assert "[state] is missing the field 'decay_bits'" in err.message
    assert err.loc.line == _line_of(text, "[state]")


def test_missing_section(tmp_path):
    text = mesh_text().split("[energy]")[0]
    err = _error(tmp_path, text)
    assert "missing 'energy'" in err.message


@pytest.mark.parametrize("old, new, words", [
    ("neurons = 1024", "neurons = 0", "'[core] neurons' = 0 is impossible"),
    ("voltage_bits = 24", "voltage_bits = 99", "'[state] voltage_bits' = 99 is impossible"),
    ("weight_bits_min = 1", "weight_bits_min = 9", "weight_bits_min' = 9 exceeds weight_bits_max = 8"),
    ('reset_modes = ["subtract", "zero"]', 'reset_modes = ["subtract", "hold"]', "unknown value(s) ['hold']"),
    ("cores_x = 8", 'cores_x = "eight"', "'[mesh] cores_x' must be an integer"),
    ("shared_weights = true", "shared_weights = 1", "must be true or false"),
])
def test_impossible_values(tmp_path, old, new, words):
    text = mesh_text().replace(old, new)
    err = _error(tmp_path, text)
    assert words in err.message
    assert err.loc.line == _line_of(text, new.split(" =")[0])


def test_toml_syntax_error_has_position(tmp_path):
    text = mesh_text().replace("neurons = 1024", "neurons = = 1024")
    err = _error(tmp_path, text)
    assert "not valid TOML" in err.message and err.loc.line == _line_of(text, "neurons = =")


def test_unknown_shipped_name():
    with pytest.raises(NmcError) as info:
        load_chip("no-such-chip")
    assert "unknown target 'no-such-chip'" in info.value.message and "mesh" in info.value.hint

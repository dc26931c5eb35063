"""The shipped chip descriptions, the board fields, `nmc targets` and the chip-description doc."""

from __future__ import annotations

import dataclasses
import json
import re
from pathlib import Path

import pytest

from nmc.cli import main
from nmc.diagnostics import NmcError
from nmc.targets.chip import TOP, chips_dir, load_chip, shipped_chips
from nmc.targets.mesh.chip import SECTIONS

DOCS = Path(__file__).resolve().parent.parent / "docs"


@pytest.mark.parametrize("name", shipped_chips())
def test_every_shipped_chip_loads(name):
    chip = load_chip(name)
    assert chip.name == name, "a shipped file's name key must equal its file name"
    assert chip.chip_class in ("mesh", "xylo", "multicast")
    if chip.chip_class == "mesh":
        assert chip.noc.chip_link_capacity >= 1 and chip.energy.chip_hop_j >= 0


def test_expected_chips_ship():
    assert {"mesh", "mesh-tiny", "mesh-board-4"} <= set(shipped_chips())


def test_mesh_tiny_is_small_multi_chip_and_expands_convolutions():
    chip = load_chip("mesh-tiny")
    assert (chip.mesh.cores_x, chip.mesh.cores_y, chip.mesh.chips_x, chip.mesh.chips_y) == (4, 4, 2, 2)
    assert chip.core.neurons == 64 and chip.core.input_axons == 256
    assert chip.core.shared_weights is False
    assert chip.core.synapse_memory_bits < load_chip("mesh").core.synapse_memory_bits


def test_board_links_between_chips_are_slower_and_dearer():
    board, single = load_chip("mesh-board-4"), load_chip("mesh")
    assert board.mesh.chips_x * board.mesh.chips_y == 4
    assert (board.mesh.cores_x, board.mesh.cores_y) == (single.mesh.cores_x, single.mesh.cores_y)
    assert board.core == single.core and board.state == single.state
    assert board.noc.chip_link_capacity < board.noc.link_capacity
    assert board.noc.chip_hop_latency_ns > board.noc.hop_latency_ns
    assert board.energy.chip_hop_j > board.energy.spike_hop_j


def test_inter_chip_fields_default_to_the_on_chip_figures():
    chip = load_chip("mesh")
    assert "chip_link_capacity" not in (chips_dir() / "mesh.toml").read_text()
    assert chip.noc.chip_link_capacity == chip.noc.link_capacity
    assert chip.noc.chip_hop_latency_ns == chip.noc.hop_latency_ns
    assert chip.energy.chip_hop_j == chip.energy.spike_hop_j


def test_inter_chip_field_is_range_checked(tmp_path):
    text = (chips_dir() / "mesh-tiny.toml").read_text().replace("chip_link_capacity = 64", "chip_link_capacity = 0")
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(NmcError) as info:
        load_chip(str(path))
    assert "'[noc] chip_link_capacity' = 0 is impossible" in info.value.message
    assert info.value.loc.line == next(i for i, line in enumerate(text.splitlines(), 1) if "chip_link_capacity" in line)


@pytest.mark.parametrize("name", ["mesh-tiny", "mesh-board-4"])
def test_every_figure_names_its_source_or_says_assumption(name):
    for line in (chips_dir() / f"{name}.toml").read_text().splitlines():
        if re.match(r"^\s*[a-z_]+\s*=", line) and line.split("=")[0].strip() not in TOP:
            comment = line.partition("#")[2]
            assert re.search(r"\[(D18|LAVA)|assumption", comment), f"{name}: no source for: {line}"


def test_nmc_targets_lists_every_chip(capsys):
    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0].split()[:2] == ["name", "class"]
    listed = {line.split()[0] for line in lines[1:]}
    assert listed == set(shipped_chips()) | {"cpu"}
    tiny = next(line for line in lines if line.startswith("mesh-tiny "))
    assert tiny.split()[1:5] == ["mesh", "16", "4", "64"]


def test_nmc_targets_json(capsys):
    assert main(["targets", "--json"]) == 0
    rows = {r["name"]: r for r in json.loads(capsys.readouterr().out)}
    assert rows["mesh-board-4"]["chips"] == 4
    assert rows["mesh-board-4"]["chip"]["noc"]["chip_link_capacity"] == load_chip("mesh-board-4").noc.chip_link_capacity
    assert rows["mesh"]["sha256"] == load_chip("mesh").digest
    assert rows["cpu"]["cores"] is None


def test_doc_describes_every_key():
    text = (DOCS / "chip-description.md").read_text(encoding="utf-8")
    for key in TOP:
        assert f"`{key}`" in text, key
    for section, cls in SECTIONS.items():
        assert f"[{section}]" in text, section
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text, f"{section}.{f.name} is not documented"

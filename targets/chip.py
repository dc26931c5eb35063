"""Chip descriptions (DESIGN §6): ``targets/chips/<name>.toml`` loaded into a :class:`Chip`.

A description has top-level ``name``, ``class`` and ``description`` and the sections
``[mesh]``, ``[core]``, ``[state]``, ``[noc]`` and ``[energy]``; the fields of each section are
the fields of the dataclass of the same name below, with the value range in its metadata.

Contract of :func:`load_chip`: it returns a validated :class:`Chip` or raises
:class:`~nmc.diagnostics.NmcError` naming the file, the key and its line for a TOML syntax
error, an unknown key, a missing field, a value of the wrong type or an impossible value.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import tomllib
import typing
from dataclasses import dataclass, field
from importlib import resources

from nmc.diagnostics import Loc, NmcError, source_line_at

RESET_MODES = ("subtract", "zero")


def _spec(lo=None, hi=None, doc: str = "", choices: tuple = (), same_as: str | None = None):
    """Range and choices of a field; ``same_as``: an optional key that defaults to that key's value."""
    meta = {"lo": lo, "hi": hi, "doc": doc, "choices": choices, "same_as": same_as}
    return field(default=None, metadata=meta) if same_as else field(metadata=meta)


@dataclass(frozen=True)
class Mesh:
    """Cores of one chip on a ``cores_x × cores_y`` mesh; chips on a ``chips_x × chips_y`` board."""

    cores_x: int = _spec(1, 4096)
    cores_y: int = _spec(1, 4096)
    chips_x: int = _spec(1, 4096)
    chips_y: int = _spec(1, 4096)


@dataclass(frozen=True)
class Core:
    """Per-core limits."""

    neurons: int = _spec(1, 1 << 24)
    input_axons: int = _spec(1, 1 << 24)
    output_axons: int = _spec(1, 1 << 24)
    synapse_memory_bits: int = _spec(1, 1 << 40)
    weight_bits_min: int = _spec(1, 32)
    weight_bits_max: int = _spec(1, 32)
    weight_exponent_max: int = _spec(0, 30)
    shared_weights: bool = _spec()


@dataclass(frozen=True)
class State:
    """Neuron state widths (bits) and the reset modes the neurons support."""

    current_bits: int = _spec(2, 32)
    voltage_bits: int = _spec(2, 32)
    decay_bits: int = _spec(1, 12)
    reset_modes: tuple = _spec(choices=RESET_MODES)


@dataclass(frozen=True)
class Noc:
    """The network-on-chip."""

    routing: str = _spec(choices=("dimension-order",))
    link_capacity: int = _spec(1, 1 << 32)
    hop_latency_ns: float = _spec(0.0, 1e9)
    chip_link_capacity: int = _spec(1, 1 << 32, same_as="link_capacity")  # a link between two chips
    chip_hop_latency_ns: float = _spec(0.0, 1e9, same_as="hop_latency_ns")


@dataclass(frozen=True)
class Energy:
    """Energy per event, in joules."""

    synaptic_op_j: float = _spec(0.0, 1.0)
    neuron_update_j: float = _spec(0.0, 1.0)
    spike_hop_j: float = _spec(0.0, 1.0)
    chip_hop_j: float = _spec(0.0, 1.0, same_as="spike_hop_j")  # a hop between two chips


SECTIONS = {"mesh": Mesh, "core": Core, "state": State, "noc": Noc, "energy": Energy}
TOP = {"name": str, "class": str, "description": str}


@dataclass(frozen=True)
class Chip:
    """A validated chip description.  ``digest``: SHA-256 of the file's bytes (images record it)."""

    name: str
    chip_class: str
    description: str
    mesh: Mesh
    core: Core
    state: State
    noc: Noc
    energy: Energy
    path: str
    digest: str

    @property
    def cores(self) -> int:
        """Cores per chip."""
        return self.mesh.cores_x * self.mesh.cores_y

    def weight_range(self, bits: int) -> tuple[int, int]:
        """The signed integer range of a ``bits``-bit weight."""
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def state_limit(self) -> int:
        """The largest value the voltage (and current) state holds."""
        return (1 << (min(self.state.voltage_bits, self.state.current_bits) - 1)) - 1


# ---------------------------------------------------------------------------------- loading


def chips_dir():
    return resources.files("nmc.targets") / "chips"


def shipped_chips() -> list[str]:
    """Names of the chip descriptions that ship with nmc."""
    return sorted(p.name[:-5] for p in chips_dir().iterdir() if p.name.endswith(".toml"))


def _key_line(text: str, section: str | None, key: str | None) -> int:
    """1-based line of ``key`` in ``[section]`` (or of the section header when ``key`` is None;
    top-level keys have ``section`` None); 0 when not found.  tomllib reports no positions."""
    current = None
    for i, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        header = re.match(r"^\[\s*([A-Za-z0-9_.-]+)\s*\]", stripped)
        if header:
            current = header.group(1)
            if key is None and current == section:
                return i
            continue
        if key is not None and current == section and re.match(rf'^"?{re.escape(key)}"?\s*=', stripped):
            return i
    return 0


class _Checker:
    def __init__(self, path: str, text: str):
        self.path, self.text = path, text

    def error(self, message: str, section: str | None, key: str | None, hint: str | None = None) -> NmcError:
        line = _key_line(self.text, section, key)
        if line == 0 and section is not None:
            line = _key_line(self.text, section, None)
        loc = Loc(self.path, line, 1) if line else Loc(self.path)
        return NmcError(message, loc, hint=hint, source_line=source_line_at(self.path, line) if line else None)

    def value(self, section: str | None, key: str, value, typ, meta: dict):
        where = f"[{section}] {key}" if section else key
        origin = typing.get_origin(typ)
        if typ is bool:
            ok = isinstance(value, bool)
        elif typ is int:
            ok = isinstance(value, int) and not isinstance(value, bool)
        elif typ is float:
            ok = isinstance(value, int | float) and not isinstance(value, bool)
        elif typ is tuple or origin is tuple:
            ok = isinstance(value, list) and all(isinstance(v, str) for v in value)
        else:
            ok = isinstance(value, str)
        if not ok:
            want = {bool: "true or false", int: "an integer", float: "a number", str: "a string"}.get(typ, "a list of strings")
            raise self.error(f"'{where}' must be {want}, got {value!r}", section, key)
        lo, hi, choices = meta.get("lo"), meta.get("hi"), meta.get("choices") or ()
        if lo is not None and not (lo <= value <= hi):
            raise self.error(f"'{where}' = {value} is impossible: it must lie in [{lo}, {hi}]", section, key)
        if choices:
            items = value if isinstance(value, list) else [value]
            bad = [v for v in items if v not in choices]
            if bad or not items:
                raise self.error(f"'{where}' has unknown value(s) {bad or '(empty)'}", section, key,
                                 hint=f"valid: {', '.join(choices)}")
            return tuple(value) if isinstance(value, list) else value
        return float(value) if typ is float else value

    def section(self, name: str, cls, data) -> object:
        if not isinstance(data, dict):
            raise self.error(f"'{name}' must be a table [{name}]", None, name)
        hints = typing.get_type_hints(cls)
        fields = {f.name: f for f in dataclasses.fields(cls)}
        for key in data:
            if key not in fields:
                raise self.error(f"unknown key '{key}' in [{name}]", name, key,
                                 hint=f"[{name}] takes: {', '.join(fields)}")
        for key in fields:
            if key not in data and not fields[key].metadata.get("same_as"):
                raise self.error(f"[{name}] is missing the field '{key}'", name, None,
                                 hint=f"[{name}] needs: {', '.join(k for k in fields if not fields[k].metadata.get('same_as'))}")
        given = {k: data[k] if k in data else data[fields[k].metadata["same_as"]] for k in fields}
        values = {k: self.value(name, k, given[k], hints[k], dict(fields[k].metadata)) for k in fields}
        return cls(**values)


def parse_chip(text: str, path: str) -> Chip:
    """Validate the text of a chip description (``path`` names it in diagnostics)."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
        loc = Loc(path, int(m.group(1)), int(m.group(2))) if m else Loc(path)
        raise NmcError(f"not valid TOML: {str(err).split(' (at line')[0]}", loc,
                       source_line=source_line_at(path, loc.line) if loc.line else None) from None
    check = _Checker(path, text)
    for key in data:
        if key not in TOP and key not in SECTIONS:
            table = isinstance(data[key], dict)
            raise check.error(f"unknown key '{key}'", key if table else None, None if table else key,
                              hint=f"a chip description holds {', '.join(TOP)} and the sections "
                                   + ", ".join(f"[{s}]" for s in SECTIONS))
    for key in list(TOP) + list(SECTIONS):
        if key not in data:
            raise NmcError(f"the chip description is missing '{key}'", Loc(path),
                           hint="see targets/chips/mesh.toml for a complete description")
    top = {k: check.value(None, k, data[k], str, {}) for k in TOP}
    sections = {s: check.section(s, cls, data[s]) for s, cls in SECTIONS.items()}
    core = sections["core"]
    if core.weight_bits_min > core.weight_bits_max:
        raise check.error(f"'[core] weight_bits_min' = {core.weight_bits_min} exceeds weight_bits_max = "
                          f"{core.weight_bits_max}", "core", "weight_bits_min")
    return Chip(name=top["name"], chip_class=top["class"], description=top["description"], path=path,
                digest=hashlib.sha256(text.encode()).hexdigest(), **sections)


def load_chip(name_or_path: str) -> Chip:
    """A shipped chip by name (``"mesh"``) or a user's description by path (``my_chip.toml``)."""
    if os.sep in name_or_path or name_or_path.endswith(".toml") or os.path.exists(name_or_path):
        if not os.path.isfile(name_or_path):
            raise NmcError(f"chip description {name_or_path} does not exist")
        with open(name_or_path, encoding="utf-8") as f:
            return parse_chip(f.read(), name_or_path)
    shipped = chips_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise NmcError(f"unknown target '{name_or_path}'",
                       hint=f"shipped chips: {', '.join(shipped_chips())}; or pass the path of a .toml description")
    with resources.as_file(shipped) as p:
        return parse_chip(p.read_text(encoding="utf-8"), str(p))

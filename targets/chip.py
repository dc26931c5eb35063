"""Chip descriptions (docs/chip-description.md): ``targets/chips/<name>.toml`` loaded into a :class:`Chip`.

A description has top-level ``name``, ``class`` and ``description``; the ``class`` names a
registered chip class (:mod:`nmc.targets.classes`), which declares the description's sections:
each a frozen dataclass whose fields are the section's keys, with the value range in their
metadata (:func:`spec`).  The class also derives the chip's numeric :class:`Formats`, which
the class-neutral passes (conversion, quantisation) read.

Contract of :func:`load_chip`: it returns a validated :class:`Chip` or raises
:class:`~nmc.diagnostics.NmcError` naming the file, the key and its line for a TOML syntax
error, an unknown class or key, a missing field, a value of the wrong type or an impossible value.
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


def spec(lo=None, hi=None, doc: str = "", choices: tuple = (), same_as: str | None = None):
    """Range and choices of a field; ``same_as``: an optional key that defaults to that key's value."""
    meta = {"lo": lo, "hi": hi, "doc": doc, "choices": choices, "same_as": same_as}
    return field(default=None, metadata=meta) if same_as else field(metadata=meta)


TOP = {"name": str, "class": str, "description": str}


@dataclass(frozen=True)
class State:
    """The ``[state]`` section every chip class shares: neuron state widths (bits) and the
    reset modes the neurons support."""

    current_bits: int = spec(2, 32)
    voltage_bits: int = spec(2, 32)
    decay_bits: int = spec(1, 12)
    reset_modes: tuple = spec(choices=RESET_MODES)


@dataclass(frozen=True)
class Formats:
    """The numbers a chip's neurons and synapses hold, as the class-neutral passes need them:
    weights of ``weight_bits_min..weight_bits_max`` signed bits scaled by ``2**e`` with
    ``0 <= e <= weight_exponent_max``; current and voltage state of ``current_bits`` and
    ``voltage_bits``; decays of ``decay_bits`` (of the IR's 12); the reset modes the neurons
    support; ``stateful_synapses``: whether a synapse can keep state between deliveries (the
    max-pool gate needs it); ``leaks``: the population decay arithmetics its neurons have
    (``snn.population``'s ``leak``); ``max_spikes``: the most spikes a linear-leak neuron
    sends in one step, as one graded message carrying the count (1: binary spikes only; a
    burst population's ``max_spikes`` above it is refused)."""

    weight_bits_min: int
    weight_bits_max: int
    weight_exponent_max: int
    current_bits: int
    voltage_bits: int
    decay_bits: int
    reset_modes: tuple
    stateful_synapses: bool = False
    leaks: tuple = ("linear",)
    max_spikes: int = 1

    def require_spikes(self, pop, name: str, chip_name: str) -> None:
        """Refuse population ``pop`` (``%name``) if its neurons emit more spikes per step than
        this chip's messages carry (``max_spikes``)."""
        if pop.leak == "linear" and pop.max_spikes > self.max_spikes:
            graded = (f"sends at most {self.max_spikes} spikes per neuron and step" if self.max_spikes > 1
                      else "sends binary spikes only (no graded messages)")
            raise NmcError(f"population %{name} is a burst population of up to {pop.max_spikes} spikes per step; "
                           f"chip '{chip_name}' {graded}", pop.loc,
                           hint="convert with a smaller burst (--convert burst=B), or compile for a chip whose "
                                "description declares graded spikes ([spikes] max_per_step, docs/chip-description.md)")

    def weight_range(self, bits: int) -> tuple[int, int]:
        """The signed integer range of a ``bits``-bit weight."""
        return -(1 << (bits - 1)), (1 << (bits - 1)) - 1

    def state_limit(self) -> int:
        """The largest value the voltage (and current) state holds."""
        return (1 << (min(self.voltage_bits, self.current_bits) - 1)) - 1


@dataclass(frozen=True)
class Chip:
    """A validated chip description.  ``sections``: the class's section dataclasses by name
    (also reachable as attributes, ``chip.core``); ``digest``: SHA-256 of the file's bytes
    (images record it)."""

    name: str
    chip_class: str
    description: str
    sections: dict
    formats: Formats
    path: str
    digest: str

    def with_sections(self, **changes) -> Chip:
        """This chip with some sections replaced (``chip.with_sections(core=...)``), its formats
        derived again; for experiments and tests (the digest still names the file)."""
        from nmc.targets.classes import chip_class

        unknown = set(changes) - set(self.sections)
        if unknown:
            raise ValueError(f"chip '{self.name}' has no section(s) {sorted(unknown)}")
        sections = {**self.sections, **changes}
        return dataclasses.replace(self, sections=sections, formats=chip_class(self.chip_class).formats(sections))

    def __getattr__(self, name: str):
        sections = self.__dict__.get("sections") or {}
        if name in sections:
            return sections[name]
        raise AttributeError(f"chip '{self.__dict__.get('name')}' has no section or attribute '{name}'")


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


class Checker:
    """Checks the values of one description and makes diagnostics that point at their line."""

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
    from nmc.targets.classes import chip_class, known_classes

    try:
        data = tomllib.loads(text)
    except RecursionError:
        raise NmcError("not valid TOML: it nests arrays or tables too deeply", Loc(path)) from None
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column (\d+)\)", str(err))
        loc = Loc(path, int(m.group(1)), int(m.group(2))) if m else Loc(path)
        raise NmcError(f"not valid TOML: {str(err).split(' (at line')[0]}", loc,
                       source_line=source_line_at(path, loc.line) if loc.line else None) from None
    check = Checker(path, text)
    for key in TOP:
        if key not in data:
            raise NmcError(f"the chip description is missing '{key}'", Loc(path),
                           hint="see targets/chips/*.toml for complete descriptions")
    top = {k: check.value(None, k, data[k], str, {}) for k in TOP}
    if not CHIP_NAME.fullmatch(top["name"]):
        raise check.error(f"'name' = {top['name']!r} is not a chip name", None, "name",
                          hint="a chip name is 1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit")
    if top["class"] not in known_classes():
        raise check.error(f"unknown chip class '{top['class']}'", None, "class",
                          hint=f"chip classes: {', '.join(known_classes())}")
    cls = chip_class(top["class"])
    schema = cls.sections
    for key in data:
        if key not in TOP and key not in schema:
            table = isinstance(data[key], dict)
            raise check.error(f"unknown key '{key}'", key if table else None, None if table else key,
                              hint=f"a {top['class']}-class chip description holds {', '.join(TOP)} and the sections "
                                   + ", ".join(f"[{s}]" for s in schema))
    for key in schema:
        if key not in data and hasattr(schema[key], "ABSENT"):  # an optional section: its values when left out
            data[key] = dict(schema[key].ABSENT)
        if key not in data:
            raise NmcError(f"the chip description is missing '{key}'", Loc(path),
                           hint=f"a {top['class']}-class chip description needs the sections "
                                + ", ".join(f"[{s}]" for s in schema))
    sections = {s: check.section(s, section_cls, data[s]) for s, section_cls in schema.items()}
    cls.check(sections, check)
    return Chip(name=top["name"], chip_class=top["class"], description=top["description"], sections=sections,
                formats=cls.formats(sections), path=path, digest=hashlib.sha256(text.encode()).hexdigest())


CHIP_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")


def load_chip(name_or_path: str) -> Chip:
    """A shipped chip by name (``"mesh"``) or a user's description by path (``my_chip.toml``)."""
    if os.sep in name_or_path or name_or_path.endswith(".toml") or os.path.exists(name_or_path):
        if not os.path.isfile(name_or_path):
            raise NmcError(f"chip description {name_or_path} does not exist")
        try:
            with open(name_or_path, encoding="utf-8") as f:
                text = f.read()
        except UnicodeDecodeError as err:
            raise NmcError(f"the chip description is not UTF-8 text (byte {err.start})", Loc(name_or_path)) from None
        except OSError as err:
            raise NmcError(f"cannot read chip description {name_or_path}: {err.strerror}") from None
        return parse_chip(text, name_or_path)
    shipped = chips_dir() / f"{name_or_path}.toml"
    if not shipped.is_file():
        raise NmcError(f"unknown target '{name_or_path}'",
                       hint=f"shipped chips: {', '.join(shipped_chips())}; or pass the path of a .toml description")
    with resources.as_file(shipped) as p:
        return parse_chip(p.read_text(encoding="utf-8"), str(p))

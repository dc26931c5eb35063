"""Chip classes as plug-ins: what a class of chip supplies, and the registry that finds it.

A chip description names its class (``class = "..."`` in the TOML file); everything that
depends on the class comes from the registered :class:`ChipClass` of that name: the sections
of its chip descriptions and the numeric formats they imply, its default pipeline (mapping
passes included), the hardware sections of its images, the resource summary, its emulator and
its views for ``nmc inspect``.  The compiler, the runner and the commands only talk to this
interface, so a new class is one folder under ``targets/`` (or an installed package) and a
registration.

Classes are found, in order:

* registered in-process with :func:`register_chip_class` (tests, notebooks);
* installed packages' entry points in the group ``nmc.chip_classes`` (``name = "module:object"``);
* the classes that ship with nmc (:data:`SHIPPED`).
"""

from __future__ import annotations

import importlib
from typing import Any

from nmc.diagnostics import NmcError

#: the classes that ship with nmc: name -> module holding ``CHIP_CLASS``
SHIPPED = {"mesh": "nmc.targets.mesh.chipclass", "xylo": "nmc.targets.edge.chipclass",
           "multicast": "nmc.targets.multicast.chipclass"}
ENTRY_POINT_GROUP = "nmc.chip_classes"

_REGISTERED: dict[str, ChipClass] = {}


class ChipClass:
    """The contract of a chip class.  Subclasses set :attr:`name` and :attr:`sections` and
    implement the methods that raise :class:`NotImplementedError`; the others have defaults
    that suit a class mapping integer ``snn`` graphs.

    ``chip`` arguments are :class:`~nmc.targets.chip.Chip` objects of this class; ``sections``
    arguments of the image methods are the image's sections by name (bytes)."""

    #: the ``class`` value of its chip descriptions
    name: str = ""
    #: the description's sections: name -> frozen dataclass (fields with :func:`~nmc.targets.chip.spec`)
    sections: dict[str, type] = {}
    #: the names of its mapping passes: the image's graph is the snapshot taken before the first
    mapping_passes: tuple[str, ...] = ()
    #: its passes: name -> the module whose import registers it (imported when a pipeline names it)
    pass_modules: dict[str, str] = {}

    # ----------------------------------------------------------------- descriptions

    def check(self, sections: dict, checker) -> None:
        """Cross-field checks of a parsed description; raise ``checker.error(...)`` on a problem."""

    def formats(self, sections: dict):
        """The :class:`~nmc.targets.chip.Formats` of a description with these sections."""
        raise NotImplementedError

    def summary(self, chip) -> dict:
        """One row for ``nmc targets``: at least ``cores`` (per chip), ``chips``,
        ``neurons_per_core`` (None where it does not apply)."""
        raise NotImplementedError

    # ----------------------------------------------------------------- compiling

    def conversion_options(self, chip) -> str:
        """Options ``convert-to-spiking`` gets in the default pipeline (``key=value,...``): max
        pooling as a tournament of IF neurons when the synapses keep no state (the max-pool
        gate needs state), and reset to zero when the neurons cannot subtract."""
        f = chip.formats
        options = [] if f.stateful_synapses else ["maxpool=tree"]
        if "subtract" not in f.reset_modes:
            options.append("reset=zero")
        return ",".join(options)

    def pipeline(self, chip, *, integer: bool, calibrated: bool, opt_level: int, seed: int, quantize: str = "") -> str:
        """The default pipeline after conversion: quantisation to the chip's formats (unless the
        graph is ``integer`` already; ``quantize``: options that override the defaults), rate
        measurement when ``calibrated``, then the mapping."""
        from nmc.diagnostics import UsageError
        from nmc.passmanager import merge_options

        if integer and quantize:
            raise UsageError("--quantize applies to a float graph; this one is integer already")
        options = merge_options(f"weight-bits={self.weight_bits(chip)}", quantize)
        parts = [] if integer else [f"quantize{{{options}}}"]
        if calibrated:
            parts.append("measure-rates")
        parts.append(self.mapping_pipeline(chip, opt_level=opt_level, seed=seed))
        return ",".join(p for p in parts if p)

    def weight_bits(self, chip) -> int:
        """The weight width the default pipeline quantises to: 8 bits, or the chip's widest
        weights when narrower."""
        return min(8, chip.formats.weight_bits_max)

    def mapping_pipeline(self, chip, *, opt_level: int, seed: int) -> str:
        """The mapping passes of the default pipeline (names in :attr:`mapping_passes`)."""
        raise NotImplementedError

    def emit_sections(self, graph, chip) -> dict[str, bytes]:
        """The hardware sections of a mapped graph (names prefixed ``<class>.``)."""
        raise NotImplementedError

    def resource_summary(self, graph, chip) -> dict:
        """What the mapping uses; at least ``cores``, ``cores_lower_bound`` and ``chips``."""
        raise NotImplementedError

    def fit_board(self, graph, chip, text: bytes) -> bytes | None:
        """For ``--board auto``: the description's text (TOML bytes) of the smallest board of this
        chip that the integer ``graph`` fits, or None when the class cannot size boards."""
        return None

    # ----------------------------------------------------------------- running and viewing

    def prepare(self, image) -> Any:
        """The emulator: ``execute(inputs, timesteps=None, record=None) -> RunResult``, reading
        only the image's sections."""
        raise NotImplementedError

    def core_table(self, sections: dict) -> list[dict] | None:
        """Rows for ``nmc inspect``'s per-core table (None: the class has none)."""
        return None

    def link_table(self, sections: dict) -> list[dict] | None:
        """Rows for ``nmc inspect``'s busiest links, each with a ``load`` (None: no links)."""
        return None

    def more_tables(self, sections: dict) -> dict[str, list[dict]] | None:
        """More tables for ``nmc inspect``, by title (None: none), e.g. router tables."""
        return None

    def layer_table(self, sections: dict) -> list[dict] | None:
        """Rows for the compile report's per-layer table (``nmc compile/inspect --html``): ``name``,
        ``neurons``, ``synapses``, ``cores``, ``weight_bits``, ``max_fan_in`` and the limit the
        class puts on it (``input_axons_limit``); more keys may follow (None: no table)."""
        return None

    def board_view(self, sections: dict) -> dict | None:
        """JSON-ready data of the report's board drawing, with a ``cores`` list (None: none)."""
        return None

    def board_svg(self, board: dict) -> str | None:
        """The drawing of :meth:`board_view`'s data as inline SVG (and its legend), one element
        with a ``data-core`` attribute per core in use (None: no drawing)."""
        return None

    def energy_estimate(self, image) -> float | None:
        """Joules per inference estimated at compile time (None: the class has no energy model)."""
        return None

    def plot(self, image, cores: list[dict] | None, links: list[dict] | None, path: str) -> None:
        """Draw the mapping as a PNG at ``path`` (``nmc inspect --plot``)."""
        raise NmcError(f"chip class '{self.name}' has no mapping plot")


def forward(module: str, name: str):
    """A :class:`ChipClass` method that calls function ``name`` of ``module`` with the method's
    arguments, importing the module only when first called (a class's emulator and views stay
    out of nmc's start-up); e.g. ``prepare = forward("nmc.targets.mesh.emulator", "prepare")``."""

    def method(self, *args, **kwargs):
        return getattr(importlib.import_module(module), name)(*args, **kwargs)

    method.__doc__ = f"``{module}.{name}`` (imported when first called)."
    return method


def register_chip_class(cls: ChipClass) -> ChipClass:
    """Make ``cls`` the class of its name (replacing an earlier registration of that name)."""
    if not cls.name:
        raise ValueError("a chip class needs a name")
    _REGISTERED[cls.name] = cls
    return cls


def unregister_chip_class(name: str) -> None:
    """Forget an in-process registration (the shipped and installed classes stay findable)."""
    _REGISTERED.pop(name, None)


def _entry_points() -> dict:
    from importlib import metadata

    return {ep.name: ep for ep in metadata.entry_points(group=ENTRY_POINT_GROUP)}


def known_classes() -> list[str]:
    """Every class name nmc can find (module docstring)."""
    return sorted(set(_REGISTERED) | set(_entry_points()) | set(SHIPPED))


def chip_class(name: str) -> ChipClass:
    """The registered class ``name`` (module docstring); NmcError when there is none."""
    if name in _REGISTERED:
        return _REGISTERED[name]
    points = _entry_points()
    if name in points:
        cls = points[name].load()
    elif name in SHIPPED:
        cls = importlib.import_module(SHIPPED[name]).CHIP_CLASS
    else:
        raise NmcError(f"unknown chip class '{name}'", hint=f"chip classes: {', '.join(known_classes())}")
    return register_chip_class(cls() if isinstance(cls, type) else cls)


def class_pass_modules() -> dict[str, str]:
    """Every chip class's passes: name -> module (:attr:`ChipClass.pass_modules`)."""
    index: dict[str, str] = {}
    for name in known_classes():
        index.update(chip_class(name).pass_modules)
    return index


def class_target(ctx, name: str, class_name: str, example: str):
    """The target chip of the pass ``name`` (``ctx.target``), required to be of class
    ``class_name``; NmcError when there is none (hint: ``--target example``) or it is of
    another class."""
    chip = ctx.target
    if chip is None:
        raise NmcError(f"the '{name}' pass needs a target chip", hint=f"pass --target {example} (or a chip .toml)")
    if getattr(chip, "chip_class", None) != class_name:
        raise NmcError(f"the '{name}' pass maps onto {class_name}-class chips; target '{chip.name}' is of class "
                       f"'{chip.chip_class}'")
    return chip


def prepare_emulator(artifact) -> Any:
    """The emulator of the image's chip class (the ``emulator`` backend)."""
    from nmc.diagnostics import UsageError

    sections = getattr(artifact, "sections", None)
    if not isinstance(sections, dict) or "chip" not in sections:
        raise UsageError("the emulator runs an image (.nmb) compiled for a chip",
                         hint="compile the model with nmc compile --target CHIP (nmc targets lists them)")
    return class_of_image(artifact).prepare(artifact)


def class_of_image(image) -> ChipClass:
    """The class of the chip an image was compiled for (from its ``chip`` section)."""
    from nmc.targets.chip import parse_chip

    try:
        text = image.sections["chip"].decode("utf-8")
    except UnicodeDecodeError:
        raise NmcError("the image's 'chip' section is not UTF-8 text") from None
    name = getattr(image, "filename", "<image>")
    return chip_class(parse_chip(text, f"{name}[chip]").chip_class)

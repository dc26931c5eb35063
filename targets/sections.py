"""Checks every chip class makes when it loads an image's hardware sections.

An image holds a class's hardware sections as array containers (name -> numpy array); a
class's loader reads them with :func:`read_arrays` against its schema (array name -> number
of dimensions per section), reads the chip of the image's ``chip`` section with
:func:`section_chip` (:func:`class_chip` when the chip must be of its class), and
cross-checks the arrays with :func:`check`, :func:`check_offsets` and :func:`check_within`;
:class:`CoreCounts` gives the loaded program its core and neuron counts.

Contract: every fault raises :class:`SectionError` (an :class:`~nmc.diagnostics.NmcError`,
exit 1) naming the section and what is wrong, with a hint to compile again; nothing here
changes its inputs.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from nmc.diagnostics import NmcError

HINT = "the image is damaged or was not written by this nmc; compile it again"


class SectionError(NmcError):
    """A malformed or inconsistent hardware section of an image."""


class CoreCounts:
    """Mixin for a loaded program whose ``cores`` arrays hold ``start``, the offset table of
    each core's neurons: the number of cores and of neurons it describes."""

    cores: dict

    @property
    def n_cores(self) -> int:
        return len(self.cores["start"]) - 1

    @property
    def n_neurons(self) -> int:
        return int(self.cores["start"][-1])


def inconsistent(section: str, msg: str) -> SectionError:
    """The error for section ``section`` disagreeing with itself or another section."""
    return SectionError(f"image section '{section}' is inconsistent: {msg}", hint=HINT)


def check(ok: bool, section: str, msg: str) -> None:
    """:func:`inconsistent` unless ``ok``."""
    if not ok:
        raise inconsistent(section, msg)


def check_offsets(start: np.ndarray, n_rows: int, n_items: int, section: str, name: str) -> None:
    """``start`` is an offset table of ``n_rows`` rows over ``n_items`` items: ``n_rows + 1``
    non-decreasing entries from 0 to ``n_items``."""
    check(len(start) == n_rows + 1 and (n_rows + 1 == 0 or (start[0] == 0 and start[-1] == n_items))
          and bool(np.all(np.diff(start) >= 0)), section, f"'{name}' is not a valid offset table")


def check_within(a: np.ndarray, lo: int, hi: int, section: str, name: str) -> None:
    """Every value of ``a`` lies in ``[lo, hi)``."""
    check(a.size == 0 or (int(a.min()) >= lo and int(a.max()) < hi), section, f"'{name}' has values outside [{lo}, {hi})")


def read_arrays(sections: dict, schema: dict[str, dict[str, int]], unpack: Callable[[bytes, str], dict],
                hint: str) -> dict[str, dict]:
    """The arrays of each section named in ``schema`` (in its order), unpacked by ``unpack``,
    each array present with the number of dimensions the schema gives; a missing section
    raises SectionError with ``hint`` (which target compiles such an image)."""
    parsed = {}
    for name, arrays_schema in schema.items():
        if name not in sections:
            raise SectionError(f"the image has no '{name}' section", hint=hint)
        arrays = unpack(sections[name], name)
        for key, ndim in arrays_schema.items():
            check(key in arrays, name, f"array '{key}' is missing")
            check(arrays[key].ndim == ndim, name, f"array '{key}' has {arrays[key].ndim} dimensions, expected {ndim}")
        parsed[name] = arrays
    return parsed


def section_chip(raw: bytes):
    """The validated chip of an image's ``chip`` section (SectionError when it is not UTF-8,
    NmcError when it is not a valid chip description)."""
    from nmc.targets.chip import parse_chip

    try:
        text = bytes(raw).decode("utf-8")
    except UnicodeDecodeError:
        raise SectionError("the image's 'chip' section is not UTF-8 text") from None
    return parse_chip(text, "<image chip section>")


def class_chip(sections: dict, class_name: str):
    """The chip of an image's ``chip`` section, required to be of class ``class_name`` (an
    emulator runs only its class's images); NmcError when the section is missing, is not a
    chip description or describes a chip of another class."""
    if "chip" not in sections:
        raise NmcError("the image has no 'chip' section; the emulator needs the chip description",
                       hint="compile the model for a chip target")
    chip = section_chip(sections["chip"])
    if chip.chip_class != class_name:
        raise NmcError(f"the emulator runs {class_name}-class chips; the image's chip '{chip.name}' is '{chip.chip_class}'")
    return chip

"""Checking the arrays a run is given against the inputs a network takes, and its length.

Shared by the reference semantics (which reads the inputs off the graph) and the chip
emulators (which read them off the image), so both accept and refuse the same arrays with the
same words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from nmc.diagnostics import NmcError


@dataclass(frozen=True)
class InputSpec:
    """One input: its shape per sample and step, whether it carries a time axis (a spike
    train, ``[samples, steps, *shape]``), and how diagnostics name it (``""``: by index only)."""

    shape: tuple
    train: bool = False
    name: str = ""


def bind_arrays(inputs, specs: list[InputSpec], owner: str) -> tuple[list[np.ndarray], int]:
    """The input arrays, checked against ``specs``; returns (arrays, batch size).  ``owner``
    names what takes them in diagnostics (``graph @net``, ``the image``)."""
    arrays = [np.asarray(a) for a in inputs]
    if len(arrays) != len(specs):
        raise NmcError(f"{owner} takes {len(specs)} input(s), {len(arrays)} array(s) were given")
    batch = None
    for i, (a, spec) in enumerate(zip(arrays, specs)):
        lead = 2 if spec.train else 1
        if a.ndim != len(spec.shape) + lead or tuple(a.shape[lead:]) != tuple(spec.shape):
            what = "[samples, steps, " if lead == 2 else "[samples, "
            label = f"input {i} (%{spec.name})" if spec.name else f"input {i}"
            raise NmcError(f"{label} has shape {list(a.shape)}, expected {what}{', '.join(map(str, spec.shape))}]",
                           hint="the first axis of an input file holds the samples")
        if batch is not None and len(a) != batch:
            raise NmcError(f"inputs disagree on the number of samples ({batch} and {len(a)})")
        batch = len(a)
    return arrays, batch or 0


def resolve_timesteps(trains: list[int], timesteps: int | None, default: int | None, owner: str) -> int:
    """The number of presentation steps: ``timesteps`` when given, else the spike trains'
    length, else ``default``; every train must have that length."""
    if timesteps is None:
        timesteps = trains[0] if trains else default
    if timesteps is None:
        raise NmcError(f"spiking {owner} needs a number of timesteps",
                       hint="pass --timesteps N (or timesteps=N), or record it in the graph's meta")
    for n in trains:
        if n != timesteps:
            raise NmcError(f"the input spike train has {n} steps, but the run presents input for {timesteps}",
                           hint="drop --timesteps to use the train's length")
    if timesteps < 1:
        raise NmcError(f"timesteps must be at least 1, got {timesteps}")
    from nmc.limits import check_timesteps

    check_timesteps(timesteps)  # before any state of T steps is made (issue 22)
    return int(timesteps)

"""Projection kernels of the CPU lowering, registered by projection kind (DESIGN §6).

Each module of this package emits the kernels of one family of projection kinds and
registers, with the :func:`kernel` decorator, one emission function per kind::

    @kernel("conv2d")
    def project_conv2d(lw: Lowering, p: Op, pop: Op, acc) -> None: ...

The driver (:class:`..emit.Lowering`) calls ``REGISTRY[p.kind].project(lw, p, pop, acc)`` for
each current of a population at each step: ``p`` is the projection, ``pop`` the population it
feeds and ``acc`` the pointer to that population's accumulator for the step; the function
emits code that adds the step's synaptic currents of ``p`` into it (through
:meth:`..emit.Lowering.events`, :meth:`..emit.Lowering.accumulate` and the other helpers of
the driver) and counts the synaptic operations.  A kind that keeps state across steps
registers a ``sample_start`` function too, called with ``(lw, p)`` where every sample's run
begins (the max-pool gate's running counts).

Every module here is imported when the package is, so adding a projection kind means adding
a module (and its planning rules in :mod:`..plan`, if it needs scratch areas or choices);
no dispatcher is edited.  ``common`` holds helpers shared by several kinds and registers
nothing.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class Kernel:
    """The emission functions of one projection kind."""

    kind: str
    project: Callable
    sample_start: Callable | None = None


#: Projection kind → its :class:`Kernel`, filled by :func:`kernel` as the modules load.
REGISTRY: dict[str, Kernel] = {}


def kernel(kind: str, sample_start: Callable | None = None):
    """Register the decorated function as the kernel emitting projections of ``kind``
    (``sample_start``: also called at the start of every sample); one per kind."""

    def register(project: Callable) -> Callable:
        if kind in REGISTRY:
            raise ValueError(f"projection kind {kind!r} has two kernels: "
                             f"{REGISTRY[kind].project.__module__} and {project.__module__}")
        REGISTRY[kind] = Kernel(kind, project, sample_start)
        return project

    return register


for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f"{__name__}.{_module}")

"""NIR import: read NIR graphs into the ``snn`` dialect (the frontend for ``.nir`` files).

:func:`load_nir` and :func:`from_nir`; writing NIR is :mod:`nmc.exporters.nir`.  The mapping
and the discretisation of every continuous-time node are specified in docs/nir.md; in short:

* Weight nodes between two spiking sources (Affine, Linear, Scale, Conv1d, Conv2d, SumPool2d,
  AvgPool2d, with Flatten and Delay) become one ``snn.project`` per path; a chain of linear
  nodes with no neuron between is composed into one projection.  Flatten is no op at all
  (currents meet neurons by flat index).
* Neuron nodes become ``snn.population`` with forward-Euler decays ``du = 4096·dt/τ_syn``,
  ``dv = 4096·dt/τ_mem``; the input gain (``R``, ``dt/τ``, ``w_in``) is folded into the
  weights of every projection into the population, ``v_leak`` into its bias.
* Time is aligned exactly with NIR's discrete simulators: a population at feed-forward depth
  ``d`` runs ``d − 1`` steps behind NIR time, so each projection's delay is the depth
  difference (plus one round a recurrent loop, plus any Delay node).  Affine biases arrive
  through a projection, delayed the same way, from a constant always-on source.
* The graph input is an ``snn.encode{encoding = spikes}``; each Output an ``snn.decode``
  (``count`` for spiking nodes, ``membrane`` for I, LI and CubaLI).

Every op carries ``Loc(file, node=<NIR node>, op_type=<NIR class>)``.  Files nir cannot read and
nodes nmc cannot map raise :class:`NmcError` naming the node.

Modules: :mod:`.graph` reads the file and inlines nested graphs; :mod:`.importer` builds the IR;
:mod:`.timing` aligns time with NIR's (shared with the exporter).
"""

from __future__ import annotations

from nmc.frontends.nir.graph import read_nir
from nmc.frontends.nir.importer import Importer
from nmc.ir.core import Graph

__all__ = ["from_nir", "load_nir"]


def load_nir(path: str, dt: float | None = None, reset: str | None = None, convention: str | None = None) -> Graph:
    """Read a NIR file into an ``snn`` graph (docs/nir.md).

    ``dt`` (seconds) is required when a node has time constants or delays; ``reset`` is
    ``"zero"`` (NIR's definition, the default), ``"subtract"``, ``"subtract_delayed"`` or
    ``"zero_delayed"`` (reset one step after the spike, as snnTorch's default ``reset_delay``;
    under ``convention="snntorch"``, ``zero`` and ``subtract`` name snnTorch's
    ``reset_mechanism``, docs/nir.md).  The graph records ``dt`` in its meta.
    ``convention`` names the library whose reading of the parameters the file follows
    (``snntorch``, ``norse``, ``sinabs``, ``rockpool``; default ``nir``, NIR's equations).  Raises
    :class:`NmcError` naming the node for anything nmc cannot map."""
    return Importer(path, dt, reset, convention).load(read_nir(path))


def from_nir(nir_graph, dt: float | None = None, reset: str | None = None, name: str = "nir",
             convention: str | None = None) -> Graph:
    """:func:`load_nir` for an in-memory ``nir.NIRGraph``."""
    return Importer(name, dt, reset, convention).load(nir_graph)

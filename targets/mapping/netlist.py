"""The flat view of an integer ``snn`` graph that mapping and emission share.

* :func:`synapses` expands one projection into its structural synapses ``(src, tgt, w)``
  (flat source and target indices; zero weights kept, since a synapse costs memory and a
  synaptic operation whatever its weight — exactly the fan-out :mod:`nmc.semantics` counts).
* :class:`Netlist` numbers every *source* (encoder elements, then population neurons, in
  graph order) and every population neuron, and gathers each population's incoming synapses
  sorted by target.

Shared by every chip class that maps synapses explicitly.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass, field

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Blob, Graph, Op
from nmc.windows import window_cells


def _weights(p: Op) -> np.ndarray:
    w = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    return np.asarray(w).astype(np.int64)


def _window(p: Op, src_shape, weight_of):
    """Synapses of a conv2d/pool projection, in any order.  ``weight_of(k, tgt)`` gives the
    weights of kernel cell ``k`` (row-major) for targets ``tgt`` [out channels, in channels
    per group, positions]."""
    c_in, h, w = src_shape
    if p.kind == "conv2d":
        kernel = p.weight.shape[2:]
        n_out, groups, dil = p.weight.shape[0], p.groups, p.dilations
    else:
        kernel = p.kernel
        n_out, groups, dil = c_in, c_in, (1, 1)
    oh, ow = p.result.type.shape[1:]
    k, cell, out = window_cells((h, w), kernel, p.strides, p.pads, dil, (oh, ow))
    c_group, o_group = c_in // groups, n_out // groups
    o = np.arange(n_out, dtype=np.int64)[:, None, None]
    channel = (o // o_group) * c_group + np.arange(c_group, dtype=np.int64)[None, :, None]
    srcs, tgts, ws = [], [], []
    for kk in np.unique(k):
        sel = k == kk
        src = channel * (h * w) + cell[sel][None, None, :]
        tgt = np.broadcast_to(o * (oh * ow) + out[sel][None, None, :], src.shape)
        srcs.append(src.reshape(-1))
        tgts.append(tgt.reshape(-1))
        ws.append(np.broadcast_to(weight_of(int(kk), tgt), src.shape).reshape(-1))
    if not srcs:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(srcs), np.concatenate(tgts), np.concatenate(ws)


#: How to convert max pooling for a chip whose synapses keep no state.
STATELESS_HINT = "convert with --convert maxpool=tree (a tournament of IF neurons, which stateless synapses can run)"


def require_stateless(p: Op, chip_name: str | None = None) -> None:
    """Refuse a stateful projection (``maxgate``: running spike counts per window), which the
    synapses of a chip whose synapses are a weight table and an accumulator cannot hold."""
    if p.kind == "maxgate":
        name = p.result.name if p.result is not None and p.result.name else "?"
        raise NmcError(f"projection %{name} is a max-pool gate (kind maxgate), which keeps running spike counts; "
                       f"the synapses of {f'chip {chip_name!r}' if chip_name else 'the target chip'} are stateless",
                       p.loc, hint=STATELESS_HINT)


def synapses(p: Op) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Structural synapses of projection ``p``: int64 ``(src, tgt, weight)`` sorted by
    (tgt, src), flat C-order indices; the delivered current is ``Σ weight·s << exponent``."""
    require_stateless(p)
    src_shape = tuple(p.src.type.shape)
    n_src, n_tgt = int(np.prod(src_shape)), int(np.prod(p.result.type.shape))
    w = _weights(p)
    if p.kind == "dense":
        tgt, src = np.divmod(np.arange(n_tgt * n_src, dtype=np.int64), n_src)
        weight = w.reshape(-1)
    elif p.kind == "one_to_one":
        src = tgt = np.arange(n_src, dtype=np.int64)
        weight = np.broadcast_to(w, src_shape).reshape(-1)
    elif p.kind == "sparse":
        src = np.repeat(np.arange(n_src, dtype=np.int64), np.diff(p.indptr.data))
        tgt = p.indices.data.astype(np.int64)
        weight = w.reshape(-1)
    elif p.kind == "conv2d":
        src, tgt, weight = _window(p, src_shape, lambda k, t: w.reshape(*w.shape[:2], -1)[:, :, k][:, :, None])
    else:  # pool: the weight broadcasts over the output
        flat = np.broadcast_to(w, p.result.type.shape).reshape(-1)
        src, tgt, weight = _window(p, src_shape, lambda k, t: flat[t])
    order = np.lexsort((src, tgt))
    return src[order].astype(np.int64), tgt[order].astype(np.int64), np.asarray(weight, np.int64)[order]


def distinct(a: np.ndarray) -> np.ndarray:
    """The sorted distinct values of a 1-D array, as ``np.unique`` gives them, by sorting
    (numpy 2's hash-based ``np.unique`` is tens of times slower on large integer arrays)."""
    s = np.sort(a)
    return s[np.concatenate([[True], s[1:] != s[:-1]])] if len(s) else s


_WEIGHT_BITS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # projection -> (its weight, bits)


def weight_bits(p: Op) -> int:
    """Signed bits the weights of ``p`` need (at least 1); remembered per projection and
    weight object (the partitioner asks once per box)."""
    known = _WEIGHT_BITS.get(p)
    if known is not None and known[0] is p.weight:
        return known[1]
    w = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
    bits = 1
    if w.size:
        lo, hi = int(w.min()), int(w.max())
        while not (-(1 << (bits - 1)) <= lo and hi <= (1 << (bits - 1)) - 1):
            bits += 1
    _WEIGHT_BITS[p] = (p.weight, bits)
    return bits


def pop_name(pop: Op, i: int) -> str:
    """A population's name as the runner records it (``%name``, else ``population<i>``)."""
    return pop.result.name or f"population{i}"


@dataclass
class Incoming:
    """A population's incoming synapses, sorted by target: global source ids, per-synapse
    weight, exponent, delay, weight bits and the projection index (into ``projections``)."""

    ptr: np.ndarray  # [size + 1] offsets by target neuron
    src: np.ndarray
    weight: np.ndarray
    exponent: np.ndarray
    delay: np.ndarray
    bits: np.ndarray
    proj: np.ndarray
    projections: list[Op] = field(default_factory=list)


class Netlist:
    """Global numbering of an integer snn graph's sources and neurons (module docstring).

    ``source_offset[op]``: first global source id of an encoder or population; encoders come
    first.  ``neuron_offset[pop]``: first global neuron id of a population."""

    def __init__(self, graph: Graph):
        self.graph = graph
        self.encoders = graph.walk("snn.encode")
        self.populations = graph.walk("snn.population")
        if not self.populations:
            raise NmcError(f"graph @{graph.name} has no populations to map")
        self.source_offset: dict[Op, int] = {}
        n = 0
        for op in self.encoders + self.populations:
            self.source_offset[op] = n
            n += op.result.type.size
        self.n_sources = n
        self.n_ports = sum(e.result.type.size for e in self.encoders)
        self.neuron_offset: dict[Op, int] = {}
        m = 0
        for pop in self.populations:
            self.neuron_offset[pop] = m
            m += pop.result.type.size
        self.n_neurons = m
        self._incoming: dict[Op, Incoming] = {}

    def source_of_neuron(self, gid: np.ndarray) -> np.ndarray:
        """Global source ids of global neuron ids."""
        return np.asarray(gid) + self.n_ports

    def incoming(self, pop: Op) -> Incoming:
        if pop not in self._incoming:
            parts = []
            projections = [c.owner for c in pop.currents]
            for k, p in enumerate(projections):
                s, t, w = synapses(p)
                n = len(s)
                parts.append((t, s + self.source_offset[p.src.owner], w, np.full(n, p.exponent), np.full(n, p.delay),
                              np.full(n, weight_bits(p)), np.full(n, k)))
            size = pop.result.type.size
            if parts:
                cols = [np.concatenate([part[i] for part in parts]).astype(np.int64) for i in range(7)]
            else:
                cols = [np.zeros(0, np.int64) for _ in range(7)]
            order = np.lexsort((cols[6], cols[1], cols[0]))
            cols = [c[order] for c in cols]
            ptr = np.zeros(size + 1, np.int64)
            np.add.at(ptr, cols[0] + 1, 1)
            self._incoming[pop] = Incoming(np.cumsum(ptr), *cols[1:], projections=projections)
        return self._incoming[pop]

    def rates(self, default: float) -> np.ndarray:
        """Mean spikes per step of every source: a population's ``calib.rate`` (or ``calib.p``,
        its normalised activation) clipped to [0, 1] when the graph carries it, else ``default``."""
        r = np.full(self.n_sources, float(default))
        for op in self.encoders + self.populations:
            given = op.extra.get("calib.rate", op.extra.get("calib.p"))
            if isinstance(given, int | float):
                a = self.source_offset[op]
                r[a:a + op.result.type.size] = min(max(float(given), 0.0), 1.0)
        return r

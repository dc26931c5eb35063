"""The ``mesh.fanin`` section: split neurons' dendrite cores, emitted, checked and run.

Fan-in splitting (:mod:`nmc.targets.mapping.fanin`, docs/mesh-target.md) gives a neuron's
inputs to several *dendrite* cores, each computing a partial sum of one *part* every step and
sending it, one graded message, to the neuron's *soma* core.  The section exists only in
images with split neurons.  Arrays (all integers):

* ``partial_bits`` [1]: the signed width of a partial-sum message (the chip's ``[fanin]``);
* ``part_kernel``, ``part_lo``, ``part_hi`` [Q]: each *piece*, a ``mesh.kernels`` row restricted
  to units ``[lo, hi)`` of its split axis (a one-group convolution's input channels, a dense
  projection's flat sources; ``[0, 1)`` the whole row);
* ``dendrite_core``, ``dendrite_soma`` [D]: each dendrite core and its soma core;
* ``piece_start`` [D+1], ``pieces``: the pieces whose sum a dendrite core computes;
* ``comp_start`` [D+1], ``comp_target``: its compartments, one per target graph neuron (the
  numbering of ``mesh.kernels``' targets), all on the soma core;
* ``path_start`` [D+1], ``path_links``: the links (ids into ``mesh.routes``' ``links``) its
  messages cross.

A split kernel row drives no current by itself: every target neuron gets, for each unit of the
row's split axis, exactly one piece covering it, from dendrite cores (the loader checks).
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp

from nmc.targets.mapping import fanin
from nmc.targets.mapping.netlist import distinct
from nmc.targets.mapping.shapes import Geometry, field_ids, runs_to_boxes
from nmc.targets.mesh.kernels import index_runs

ARRAYS = ("partial_bits", "part_kernel", "part_lo", "part_hi", "dendrite_core", "dendrite_soma", "piece_start",
          "pieces", "comp_start", "comp_target", "path_start", "path_links")


def emit_fanin(m, routes, kernel_row: dict) -> dict[str, np.ndarray] | None:
    """The section's arrays for Mapping ``m`` (None without dendrite cores); ``kernel_row``:
    ``(population, current operand index) → mesh.kernels row``."""
    if not m.dendrites:
        return None
    net = m.net
    part_ids: dict = {}
    rows = {"dendrite_core": [], "dendrite_soma": [], "pieces": [], "piece_start": [0], "comp_target": [],
            "comp_start": [0], "path_links": [], "path_start": [0]}
    paths = {d: links for d, _, links in routes.partial}
    for c in m.dendrites:
        soma, part = fanin.parse_partial(c.partial)
        pop = c.pops[0].owner
        rows["dendrite_core"].append(c.id)
        rows["dendrite_soma"].append(soma)
        for i, lo, hi in part:
            rows["pieces"].append(part_ids.setdefault((kernel_row[(pop, i)], lo, hi), len(part_ids)))
        rows["piece_start"].append(len(rows["pieces"]))
        off = net.neuron_offset[pop]
        rows["comp_target"] += [off + t for a, b in zip(c.slices[::2], c.slices[1::2]) for t in range(a, b)]
        rows["comp_start"].append(len(rows["comp_target"]))
        rows["path_links"] += paths[c.id]
        rows["path_start"].append(len(rows["path_links"]))
    parts = np.array(list(part_ids), np.int64).reshape(-1, 3)
    out = {"partial_bits": np.array([m.chip.fanin.partial_bits], np.int64), "part_kernel": parts[:, 0],
           "part_lo": parts[:, 1], "part_hi": parts[:, 2]}
    out.update({k: np.asarray(v, np.int64) for k, v in rows.items()})
    return {k: out[k] for k in ARRAYS}


def split_axis_of(kind: str, g: Geometry) -> int:
    """Units of a kernel row's split axis (1: only whole)."""
    if kind == "conv2d" and g.c_group == g.src[0]:
        return g.src[0]
    return int(np.prod(g.src)) if kind == "dense" else 1


def check_fanin(f: dict, kr: dict, geometries: list, kinds: list, core_start: np.ndarray, core_of_graph: np.ndarray,
                n_links: int, error) -> set:
    """Every field of ``mesh.fanin`` against the kernels and cores; returns the split kernel
    rows.  ``error(msg)`` raises."""
    for name in ARRAYS:
        if name not in f or f[name].ndim != 1:
            error(f"array '{name}' is missing or not 1-D")
    K, C, N = len(geometries), len(core_start) - 1, len(core_of_graph)
    Q, D = len(f["part_kernel"]), len(f["dendrite_core"])
    if not (len(f["partial_bits"]) == 1 and 2 <= int(f["partial_bits"][0]) <= 64):
        error("'partial_bits' must be one width in 2..64")
    if len(f["part_lo"]) != Q or len(f["part_hi"]) != Q or len(f["dendrite_soma"]) != D:
        error("piece or dendrite tables disagree on their lengths")
    for start, items, hi in (("piece_start", "pieces", Q), ("comp_start", "comp_target", N),
                             ("path_start", "path_links", n_links)):
        s, v = f[start], f[items]
        if len(s) != D + 1 or s[0] != 0 or s[-1] != len(v) or np.any(np.diff(s) < 0):
            error(f"'{start}' is not a valid offset table")
        if len(v) and (v.min() < 0 or v.max() >= hi):
            error(f"'{items}' has values outside [0, {hi})")
    if Q and (f["part_kernel"].min() < 0 or f["part_kernel"].max() >= K):
        error("'part_kernel' names no kernel row")
    axes = np.array([split_axis_of(kinds[k], geometries[k]) for k in f["part_kernel"]], np.int64)
    if np.any(f["part_lo"] < 0) or np.any(f["part_lo"] >= f["part_hi"]) or np.any(f["part_hi"] > axes):
        error("a piece lies outside its kernel's split axis")
    dc, ds = f["dendrite_core"], f["dendrite_soma"]
    if D and (dc.min() < 0 or dc.max() >= C or ds.min() < 0 or ds.max() >= C or len(distinct(dc)) != D):
        error("dendrite cores must be distinct cores, their somas cores")
    held = np.diff(core_start)
    if np.any(held[dc] != 0) or np.any(np.isin(ds, dc)):
        error("a dendrite core holds neurons, or a soma is a dendrite core")
    comp_d = np.repeat(np.arange(D), np.diff(f["comp_start"]))
    if np.any(core_of_graph[f["comp_target"]] != ds[comp_d]):
        error("a compartment's neuron is not on its dendrite's soma core")
    # every target of a split row: its pieces tile the row's split axis exactly once
    per_d = np.diff(f["piece_start"])
    piece_d = np.repeat(np.arange(D), per_d)
    split = set(int(k) for k in f["part_kernel"])
    for k in split:
        g = geometries[k]
        t0, n_tgt = int(kr["target"][k]), int(np.prod(g.tgt))
        sel = f["part_kernel"][f["pieces"]] == k
        t, lo, hi = [], [], []
        for d, q in zip(piece_d[sel], f["pieces"][sel]):
            comps = f["comp_target"][f["comp_start"][d]:f["comp_start"][d + 1]]
            t.append(comps)
            lo.append(np.full(len(comps), f["part_lo"][q]))
            hi.append(np.full(len(comps), f["part_hi"][q]))
        t, lo, hi = (np.concatenate(a) for a in (t, lo, hi))
        if np.any(t < t0) or np.any(t >= t0 + n_tgt):
            error(f"a piece of kernel {k} reaches a neuron the kernel does not drive")
        order = np.lexsort((lo, t))
        t, lo, hi = t[order], lo[order], hi[order]
        first = np.r_[True, t[1:] != t[:-1]]
        last = np.r_[t[1:] != t[:-1], True]
        axis = split_axis_of(kinds[k], g)
        if (len(distinct(t)) != n_tgt or np.any(lo[first] != 0) or np.any(hi[last] != axis)
                or np.any(hi[:-1][~last[:-1]] != lo[1:][~first[1:]])):
            error(f"the pieces of kernel {k} do not cover each of its neurons' inputs exactly once")
    return split


def dendrite_reads(f: dict, kr: dict, geometries: list, kinds: list):
    """Per dendrite core, the ``(global sources, cores)`` it reads (two arrays of one length,
    the core repeated), as :func:`~nmc.targets.mesh.kernels.kernel_reads` gives a kernel's."""
    for d in range(len(f["dendrite_core"])):
        comps = f["comp_target"][f["comp_start"][d]:f["comp_start"][d + 1]]
        sources = []
        for q in f["pieces"][f["piece_start"][d]:f["piece_start"][d + 1]]:
            k = int(f["part_kernel"][q])
            g = geometries[k]
            sub, first = _piece(kinds[k], g, int(f["part_lo"][q]), int(f["part_hi"][q]))
            local = comps - int(kr["target"][k])
            runs = index_runs(local) if len(local) else []
            ids = np.concatenate([field_ids(sub.field(box), sub.src) for box in runs_to_boxes(runs, g.tgt)])
            sources.append(ids + first + int(kr["source"][k]))
        if sources:
            sources = np.concatenate(sources)
            yield sources, np.full(len(sources), f["dendrite_core"][d], np.int64)


def _piece(kind: str, g: Geometry, lo: int, hi: int) -> tuple[Geometry, int]:
    return fanin.piece_geometry(g, kind, lo, hi, split_axis_of(kind, g))


def piece_rows(f: dict, kr: dict, geometries: list, kinds: list) -> tuple[dict, list, list]:
    """The pieces as kernel rows of their own (a ``mesh.kernels``-like dict, their geometries
    and first sources), so :class:`~nmc.targets.mesh.kernels.KernelRunner` runs them."""
    kind, weights, geos, firsts = [], [], [], []
    for q in range(len(f["part_kernel"])):
        k, lo, hi = int(f["part_kernel"][q]), int(f["part_lo"][q]), int(f["part_hi"][q])
        g = geometries[k]
        w = kr["weights"][kr["weight_start"][k]:kr["weight_start"][k + 1]]
        sub, first = _piece(kinds[k], g, lo, hi)
        if sub is not g and kinds[k] == "conv2d":
            w = w.reshape(g.tgt[0], g.c_group, -1)[:, lo:hi].reshape(-1)
        elif sub is not g:
            w = w.reshape(int(np.prod(g.tgt)), -1)[:, lo:hi].reshape(-1)
        kind.append(kr["kind"][k])
        weights.append(w)
        geos.append(sub)
        firsts.append(int(kr["source"][k]) + first)
    rows = {"kind": np.asarray(kind, np.uint8), "weights": np.concatenate(weights) if weights else np.zeros(0, np.int64),
            "weight_start": np.cumsum([0] + [len(w) for w in weights]).astype(np.int64),
            "exponent": kr["exponent"][f["part_kernel"]], "delay": kr["delay"][f["part_kernel"]],
            "target": kr["target"][f["part_kernel"]]}
    return rows, geos, firsts


class PartialSums:
    """The dendrite cores of an image, run each step: per piece one product over the row's
    targets (the sum every dendrite core holding that piece computes for its compartments),
    gathered per compartment, saturated to ``partial_bits`` (never reached: the mapping bounds
    every partial sum), sent along the dendrite's path and added on the soma."""

    def __init__(self, f: dict, rows: dict, geos: list, firsts: list, internal_source, n_neurons: int):
        from nmc.targets.mesh.kernels import KernelRunner

        self.runner = KernelRunner(rows, geos)
        bits = int(f["partial_bits"][0])
        self.lo, self.hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
        D = len(f["dendrite_core"])
        self.M = len(f["comp_target"])
        comp_d = np.repeat(np.arange(D), np.diff(f["comp_start"]))
        self.by_delay: dict = {}  # delay -> [(piece, source slice, compartments, local targets)]
        piece_d = np.repeat(np.arange(D), np.diff(f["piece_start"]))
        for q in range(len(geos)):
            ds = piece_d[f["pieces"] == q]
            comps = np.concatenate([np.arange(f["comp_start"][d], f["comp_start"][d + 1]) for d in ds])
            a = internal_source(firsts[q])
            local = f["comp_target"][comps] - int(rows["target"][q])
            self.by_delay.setdefault(int(rows["delay"][q]), []).append(
                (q, slice(a, a + int(np.prod(geos[q].src))), comps, local))
        self.comp_dendrite = comp_d
        self.to_soma = sp.csr_matrix((np.ones(self.M, np.int64), (np.arange(self.M), f["comp_target"])),
                                     shape=(self.M, n_neurons))
        self.D = D

    def start(self, batch: int) -> np.ndarray:
        return np.zeros((batch, self.M), np.int64)

    def add(self, values: np.ndarray, delay: int, source) -> None:
        """Partial sums of the pieces of this delay from the source values: ``source(a, n)``
        gives those of internal sources ``[a, a + n)`` [B, n] (a piece reads all neurons or all ports)."""
        for q, src, comps, local in self.by_delay.get(delay, ()):
            values[:, comps] += self.runner.current(q, source(src.start, src.stop - src.start))[:, local]

    def deliver(self, values: np.ndarray, current: np.ndarray) -> np.ndarray:
        """Add the saturated messages to the somas' currents; returns messages per dendrite."""
        np.clip(values, self.lo, self.hi, out=values)
        current += np.asarray(values @ self.to_soma)
        return np.bincount(self.comp_dendrite, weights=np.count_nonzero(values, axis=0), minlength=self.D).astype(np.int64)

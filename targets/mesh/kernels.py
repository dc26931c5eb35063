"""The ``mesh.kernels`` section: shaped projections stored by their geometry, not as synapses.

A convolution, pooling, dense or one-to-one projection (:mod:`nmc.targets.mapping.shapes`)
is one *kernel* row: its kind, the global source range it reads (ports first, then graph
neurons: the netlist numbering), the graph neurons it drives, both shapes as ``(C, H, W)``, its
window geometry, exponent, delay and weights (a convolution's ``[O, C/groups, kh, kw]``, a
pooling's per target neuron, a dense matrix ``[targets, sources]``, a one-to-one's per
neuron).  The cores whose neurons a kernel drives hold its weights (shared when the chip
shares them) and receive the receptive fields of their boxes; the emulator runs a kernel as
one convolution (or product) over its whole target population, which gives every neuron the
same integer sum as its core would (:class:`KernelRunner`).

Arrays (docs/mesh-target.md): ``kind`` [K] u8 (:data:`KINDS`), ``source``, ``target`` [K]
(first global source / graph neuron), ``shapes`` [K, 6] (source C, H, W, target C, H, W),
``geometry`` [K, 10] (kh, kw, stride y, x, pad top, left, dilation y, x, input channels per
group, output channels per group), ``exponent``, ``delay`` [K], ``weight_start`` [K+1],
``weights``.
"""

from __future__ import annotations

import numpy as np

from nmc.ir.core import Blob
from nmc.targets.mapping.netlist import distinct
from nmc.targets.mapping.shapes import Geometry, field_ids, runs_to_boxes
from nmc.windows import window_views

KINDS = ("conv2d", "pool", "dense", "one_to_one")
ARRAYS = {"kind": 1, "source": 1, "target": 1, "shapes": 2, "geometry": 2, "exponent": 1, "delay": 1,
          "weight_start": 1, "weights": 1}


def emit_kernels(projections, net) -> dict[str, np.ndarray]:
    """The section's arrays for shaped projections ``[(projection, Geometry)]`` of netlist ``net``."""
    rows, weights = [], []
    target_of = {id(c): pop for pop in net.populations for c in pop.currents}
    for p, g in projections:
        w = p.weight.data if isinstance(p.weight, Blob) else np.asarray(p.weight)
        w = np.asarray(w).astype(np.int64)
        if p.kind in ("pool", "one_to_one"):
            w = np.broadcast_to(w, p.result.type.shape)
        weights.append(w.reshape(-1))
        rows.append((KINDS.index(p.kind), net.source_offset[p.src.owner], net.neuron_offset[target_of[id(p.result)]],
                     [*g.src, *g.tgt],
                     [*g.kernel, *g.strides, *g.pads, *g.dilations, g.c_group, g.o_group], p.exponent, p.delay))
    ints = lambda xs: np.asarray(xs, np.int64)  # noqa: E731
    return {"kind": np.asarray([r[0] for r in rows], np.uint8), "source": ints([r[1] for r in rows]),
            "target": ints([r[2] for r in rows]), "shapes": ints([r[3] for r in rows]).reshape(-1, 6),
            "geometry": ints([r[4] for r in rows]).reshape(-1, 10), "exponent": ints([r[5] for r in rows]),
            "delay": ints([r[6] for r in rows]),
            "weight_start": np.cumsum([0] + [len(w) for w in weights]).astype(np.int64),
            "weights": np.concatenate(weights) if weights else np.zeros(0, np.int64)}


def geometry_of(kr: dict, k: int) -> Geometry:
    """The :class:`Geometry` of kernel row ``k``."""
    kind = KINDS[int(kr["kind"][k])]
    s = tuple(int(v) for v in kr["shapes"][k])
    gm = [int(v) for v in kr["geometry"][k]]
    if kind in ("dense", "one_to_one"):
        return Geometry(kind, s[:3], s[3:])
    return Geometry("window", s[:3], s[3:], tuple(gm[0:2]), tuple(gm[2:4]), tuple(gm[4:6]), tuple(gm[6:8]),
                    gm[8], gm[9])


def weight_count(kind: str, g: Geometry) -> int:
    """Weights a kernel of ``kind`` and geometry ``g`` stores."""
    n_src, n_tgt = int(np.prod(g.src)), int(np.prod(g.tgt))
    if kind == "conv2d":
        return g.tgt[0] * g.c_group * g.kernel[0] * g.kernel[1]
    return n_tgt * n_src if kind == "dense" else n_tgt


def check_kernels(kr: dict, N: int, P: int, chip, error) -> list[Geometry]:
    """Every field of the kernel rows: kinds, ranges, geometry against the shapes, weight
    counts, and (with ``chip``) weights and exponents within its formats; ``error(msg)`` raises."""
    K = len(kr["kind"])
    if not (kr["shapes"].shape == (K, 6) and kr["geometry"].shape == (K, 10)
            and all(len(kr[a]) == K for a in ("source", "target", "exponent", "delay"))
            and len(kr["weight_start"]) == K + 1):
        error("kernel tables disagree on the number of kernels")
    ws = kr["weight_start"]
    if K + 1 and (ws[0] != 0 or ws[-1] != len(kr["weights"]) or np.any(np.diff(ws) < 0)):
        error("'weight_start' is not a valid offset table")
    if kr["weights"].dtype.kind == "f":
        error("'weights' must hold integers")
    out = []
    for k in range(K):
        if int(kr["kind"][k]) >= len(KINDS):
            error(f"kernel {k} has unknown kind {int(kr['kind'][k])}")
        kind = KINDS[int(kr["kind"][k])]
        s = [int(v) for v in kr["shapes"][k]]
        gm = [int(v) for v in kr["geometry"][k]]
        if min(s) < 1 or max(s) > 1 << 31 or np.prod(s[:3], dtype=object) > 1 << 31 or np.prod(s[3:], dtype=object) > 1 << 31:
            error(f"kernel {k} has bad shapes {s}")
        n_src, n_tgt = int(np.prod(s[:3])), int(np.prod(s[3:]))
        src, tgt = int(kr["source"][k]), int(kr["target"][k])
        if not ((0 <= src and src + n_src <= P or P <= src and src + n_src <= N + P) and 0 <= tgt and tgt + n_tgt <= N):
            error(f"kernel {k} reads sources [{src}, {src + n_src}) or drives neurons [{tgt}, {tgt + n_tgt}) "
                  f"outside the {P} ports, the {N} neurons after them, or the {N} neurons")
        if kind in ("conv2d", "pool"):
            kh, kw, sh, sw, pt, pl, dh, dw, cg, og = gm
            ok = min(kh, kw, sh, sw, dh, dw, cg, og) >= 1 and max(kh, kw, sh, sw, dh, dw) <= 1 << 16
            ok = ok and 0 <= pt <= (s[4] - 1) * sh + (kh - 1) * dh and 0 <= pl <= (s[5] - 1) * sw + (kw - 1) * dw
            ok = ok and s[3] % og == 0 and (s[3] // og) * cg == s[0]
            # rows/columns of padding below and right follow from the shapes, as in run(): an
            # IR convolution may pad past its kernel (a 1x1 kernel with pads gives bias-only borders)
            pb = max(0, (s[4] - 1) * sh + (kh - 1) * dh + 1 - (s[1] + pt))
            pr = max(0, (s[5] - 1) * sw + (kw - 1) * dw + 1 - (s[2] + pl))
            ok = ok and pb <= (s[4] - 1) * sh + (kh - 1) * dh and pr <= (s[5] - 1) * sw + (kw - 1) * dw
            ok = ok and s[0] * (s[1] + pt + pb) * (s[2] + pl + pr) <= 1 << 31
            ok = ok and (kind == "conv2d" or (cg == 1 and og == 1))
            if not ok:
                error(f"kernel {k} ({kind}) has a bad geometry {gm} for shapes {s}")
        elif kind == "one_to_one" and s[:3] != s[3:]:
            error(f"kernel {k} is one-to-one between shapes {s[:3]} and {s[3:]}")
        g = geometry_of(kr, k)
        if ws[k + 1] - ws[k] != weight_count(kind, g):
            error(f"kernel {k} has {int(ws[k + 1] - ws[k])} weights, its geometry needs {weight_count(kind, g)}")
        if not 1 <= int(kr["delay"][k]) < 1 << 16:
            error(f"kernel {k} has delay {int(kr['delay'][k])} outside [1, 65535]")
        out.append(g)
    e_max, (lo, hi) = (chip.formats.weight_exponent_max, chip.formats.weight_range(chip.formats.weight_bits_max)) \
        if chip is not None else (30, (-(1 << 31), (1 << 31) - 1))
    if K and (int(kr["exponent"].min()) < 0 or int(kr["exponent"].max()) > e_max):
        error(f"'exponent' has values outside [0, {e_max}]")
    if len(kr["weights"]) and (int(kr["weights"].min()) < lo or int(kr["weights"].max()) > hi):
        error(f"'weights' has values outside [{lo}, {hi}]")
    return out


def kernel_pairs(kr: dict, geometries: list[Geometry], core_of_graph: np.ndarray, skip=frozenset()) -> np.ndarray:
    """Distinct ``(global source, core)`` pairs the kernels need routed: each core receives
    the receptive fields of the boxes of target neurons it holds (rows in ``skip``, split
    across dendrite cores, are read there instead: :mod:`nmc.targets.mesh.fanin`)."""
    keys = []
    C = int(core_of_graph.max()) + 1 if len(core_of_graph) else 1
    for k, g in enumerate(geometries):
        if k in skip:
            continue
        n_tgt = int(np.prod(g.tgt))
        t0, s0 = int(kr["target"][k]), int(kr["source"][k])
        cores = core_of_graph[t0:t0 + n_tgt]
        order = np.argsort(cores, kind="stable")
        bounds = np.flatnonzero(np.diff(cores[order])) + 1
        for idx in np.split(order, bounds):
            if not len(idx):
                continue
            breaks = np.flatnonzero(np.diff(idx) != 1) + 1
            runs = [(int(r[0]), int(r[-1]) + 1) for r in np.split(idx, breaks)]
            ids = np.concatenate([field_ids(g.field(box), g.src) for box in runs_to_boxes(runs, g.tgt)])
            keys.append((ids + s0) * C + int(cores[idx[0]]))
    if not keys:
        return np.zeros((0, 2), np.int64)
    keys = distinct(np.concatenate(keys))
    return np.stack([keys // C, keys % C], axis=1)


class KernelRunner:
    """Runs kernel rows on source values in graph order: exact integer currents through float
    BLAS products when every partial sum is an integer below 2**24 (float32) or 2**53
    (float64), else in int64."""

    def __init__(self, kr: dict, geometries: list[Geometry]):
        self.rows = []
        for k, g in enumerate(geometries):
            kind = KINDS[int(kr["kind"][k])]
            w = kr["weights"][kr["weight_start"][k]:kr["weight_start"][k + 1]].astype(np.int64)
            if kind == "conv2d":
                G = g.tgt[0] // g.o_group
                w = w.reshape(G, g.o_group, g.c_group * g.kernel[0] * g.kernel[1])
                fan = g.c_group * g.kernel[0] * g.kernel[1]
            elif kind == "pool":
                w = w.reshape(g.tgt)
                fan = g.kernel[0] * g.kernel[1]
            elif kind == "dense":
                w = w.reshape(int(np.prod(g.tgt)), int(np.prod(g.src)))
                fan = w.shape[1]
            else:
                fan = 1
            wmax = int(np.abs(w).max()) if w.size else 0
            self.rows.append((kind, g, w, {}, fan * max(wmax, 1), int(kr["exponent"][k])))

    def current(self, k: int, x: np.ndarray) -> np.ndarray:
        """Current of kernel ``k`` for source values ``x`` [B, source size] (int64), [B, targets]."""
        kind, g, w, cache, bound, e = self.rows[k]
        xmax = int(np.abs(x).max()) if x.size else 0
        if xmax == 0:
            return np.zeros((len(x), int(np.prod(g.tgt))), np.int64)
        reach = bound * xmax
        dtype = np.float32 if reach < 1 << 24 else np.float64 if reach < 1 << 53 else np.int64
        if dtype not in cache:
            cache[dtype] = w.astype(dtype)
        wd = cache[dtype]
        B = len(x)
        xs = x.astype(dtype, copy=False)
        if kind == "dense":
            y = xs @ wd.T
        elif kind == "one_to_one":
            y = xs * wd.reshape(1, -1)
        else:
            (C, H, W), (n_out, OH, OW) = g.src, g.tgt
            kh, kw = g.kernel
            (sh, sw), (dh, dw), (pt, pl) = g.strides, g.dilations, g.pads
            pb = max(0, (OH - 1) * sh + (kh - 1) * dh + 1 - (H + pt))
            pr = max(0, (OW - 1) * sw + (kw - 1) * dw + 1 - (W + pl))
            padded = np.pad(xs.reshape(B, C, H, W), ((0, 0), (0, 0), (pt, pb), (pl, pr)))
            views = [v for _, v in window_views(padded, g.kernel, g.strides, g.dilations, (OH, OW))]
            if kind == "pool":
                y = np.add.reduce(views) * wd[None]
            else:
                G, L = n_out // g.o_group, OH * OW
                # columns [G, c_group·kh·kw, B·L]: one matrix product per group (BLAS)
                cols = np.stack(views, axis=0).reshape(kh * kw, B, G, g.c_group, L)
                cols = np.ascontiguousarray(cols.transpose(2, 3, 0, 1, 4)).reshape(G, g.c_group * kh * kw, B * L)
                if G == 1:
                    y = (wd[0] @ cols[0]).reshape(1, g.o_group, B, L)
                else:
                    y = np.einsum("gok,gkn->gon", wd, cols).reshape(G, g.o_group, B, L)
                y = y.transpose(2, 0, 1, 3)  # [B, G, o_group, L]
        y = y.reshape(B, -1)
        y = y.astype(np.int64) if dtype is not np.int64 else y
        return y << e if e else y

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
from nmc.targets.mapping.shapes import Geometry, field_ids, runs_to_boxes
from nmc.targets.mesh import jit
from nmc.windows import window_views

KINDS = ("conv2d", "pool", "dense", "one_to_one")
ARRAYS = {"kind": 1, "source": 1, "target": 1, "shapes": 2, "geometry": 2, "exponent": 1, "delay": 1,
          "weight_start": 1, "weights": 1}


def window_table(g: Geometry) -> np.ndarray:
    """``[H·W, kh·kw]``: for each source position and kernel cell, the flat target position the
    cell reaches (``oy·OW + ox`` with ``oy·sh − pad_top + i·dh = y`` and likewise along x), or −1
    where no target position lies there."""
    (_, H, W), (_, OH, OW) = g.src, g.tgt

    def axis(n, out, k, s, p, d):
        num = np.arange(n)[:, None] + p - np.arange(k)[None, :] * d  # [n, k]: o·s for the cell
        o = num // s
        return np.where((num >= 0) & (num % s == 0) & (o < out), o, -1)

    oy = axis(H, OH, g.kernel[0], g.strides[0], g.pads[0], g.dilations[0])  # [H, kh]
    ox = axis(W, OW, g.kernel[1], g.strides[1], g.pads[1], g.dilations[1])  # [W, kw]
    ok = (oy[:, None, :, None] >= 0) & (ox[None, :, None, :] >= 0)  # [H, W, kh, kw]
    flat = oy[:, None, :, None] * OW + ox[None, :, None, :]
    return np.where(ok, flat, -1).reshape(H * W, -1).astype(np.int64)



def emit_kernels(projections, net) -> dict[str, np.ndarray]:
    """The section's arrays for shaped projections ``[(projection, Geometry)]`` of netlist ``net``.
    ``weights`` comes in the narrowest integer type that holds them (written once, a pooling's
    or one-to-one's broadcast in place: ResNet-50's are over a hundred million), the rest int64."""
    rows, parts = [], []
    target_of = {id(c): pop for pop in net.populations for c in pop.currents}
    for p, g in projections:
        w = np.asarray(p.weight.data if isinstance(p.weight, Blob) else p.weight)
        shape = p.result.type.shape if p.kind in ("pool", "one_to_one") else w.shape
        parts.append((w, tuple(shape), int(np.prod(shape, dtype=np.int64))))
        rows.append((KINDS.index(p.kind), net.source_offset[p.src.owner], net.neuron_offset[target_of[id(p.result)]],
                     [*g.src, *g.tgt],
                     [*g.kernel, *g.strides, *g.pads, *g.dilations, g.c_group, g.o_group], p.exponent, p.delay))
    start = np.cumsum([0] + [n for _, _, n in parts]).astype(np.int64)
    # as astype(int64) would give them (floats truncated), in a type that holds them all
    values = [w if w.dtype.kind in "iub" else w.astype(np.int64) for w, _, _ in parts]
    lo = min((int(w.min()) for w in values if w.size), default=0)
    hi = max((int(w.max()) for w in values if w.size), default=0)
    dtype = next(dt for dt in (np.int8, np.int16, np.int32, np.int64) if np.iinfo(dt).min <= lo and hi <= np.iinfo(dt).max)
    weights = np.empty(int(start[-1]), dtype)
    for w, (_, shape, _), a, b in zip(values, parts, start[:-1], start[1:]):
        weights[a:b].reshape(shape)[...] = w  # a broadcast (pool, one-to-one) written in place
    ints = lambda xs: np.asarray(xs, np.int64)  # noqa: E731
    return {"kind": np.asarray([r[0] for r in rows], np.uint8), "source": ints([r[1] for r in rows]),
            "target": ints([r[2] for r in rows]), "shapes": ints([r[3] for r in rows]).reshape(-1, 6),
            "geometry": ints([r[4] for r in rows]).reshape(-1, 10), "exponent": ints([r[5] for r in rows]),
            "delay": ints([r[6] for r in rows]), "weight_start": start, "weights": weights}


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


def index_runs(idx: np.ndarray) -> list[tuple[int, int]]:
    """The maximal runs of consecutive values of ``idx`` (non-empty), as ``[(first, last + 1)]``."""
    breaks = np.flatnonzero(np.diff(idx) != 1) + 1
    firsts, lasts = idx[np.r_[0, breaks]], idx[np.r_[breaks - 1, len(idx) - 1]]
    return list(zip(firsts.tolist(), (lasts + 1).tolist()))


def kernel_reads(kr: dict, geometries: list[Geometry], core_of_graph: np.ndarray, skip=frozenset()):
    """Per kernel row (rows in ``skip``, split across dendrite cores, are read there instead:
    :mod:`nmc.targets.mesh.fanin`), the ``(global sources, cores)`` it needs routed, two
    arrays of one length: each core receives the receptive fields of the boxes of target
    neurons it holds.  A generator, so that a check holds one row's pairs at a time."""
    for k, g in enumerate(geometries):
        if k in skip:
            continue
        n_tgt = int(np.prod(g.tgt))
        t0, s0 = int(kr["target"][k]), int(kr["source"][k])
        cores = core_of_graph[t0:t0 + n_tgt]
        order = np.argsort(cores, kind="stable")
        bounds = np.flatnonzero(np.diff(cores[order])) + 1
        sources, at = [], []
        for idx in np.split(order, bounds):
            if not len(idx):
                continue
            runs = index_runs(idx)
            ids = np.concatenate([field_ids(g.field(box), g.src) for box in runs_to_boxes(runs, g.tgt)])
            sources.append(ids + s0)
            at.append(np.full(len(ids), cores[idx[0]], np.int64))
        if sources:
            yield np.concatenate(sources), np.concatenate(at)


def exact_dtype(reach: int):
    """The cheapest type whose sums are exact integers when no partial sum exceeds ``reach``
    in magnitude: float32 below 2**24, float64 below 2**53, else int64."""
    return np.float32 if reach < 1 << 24 else np.float64 if reach < 1 << 53 else np.int64


#: Seconds per unit of :meth:`KernelRunner.features` of the compiled weight runs (per
#: multiply-add, per (event, kernel cell) entry, per accumulator cell cleared and added into
#: the current, per call) and of the dense path (per multiply-add, im2col cell, call): a
#: least-squares fit (relative error) by ``benchmarks/emulator_speed.py --fit`` over the
#: kernels of VGG-11 x0.5, mnist-8 and the CNN at densities 0.5-40% and batches 8 and 32 on
#: this 2-core host (one BLAS thread, other jobs running), 2026-12-03: the prediction chose
#: the faster path in 86% of the 168 cases; their total time 0.243 s chosen, 0.217 s best,
#: 0.777 s always dense, 0.223 s always events.
EVENT_COST = (8.80e-11, 1.64e-09, 8.95e-10, 1.15e-05)
DENSE_COST = (4.24e-11, 1.36e-10, 2.25e-06)
#: Output channels per group from which a convolution's events run as weight runs
#: (:class:`.jit.RunTable`) rather than through a fan table of single synapses.  Measured on
#: this host, 2026-12-03 (CPU seconds of a run, medians): VGG-11 x0.5's one-output
#: convolutions (a max-pool's tournament) take 0.40 s through fan tables against 0.56 s as
#: weight runs; the size series' 10^6-neuron graph (3x3 convolutions of 2 channels, 61% of
#: the neurons firing each step) 2.0-2.8 s through fan tables, 1.7-1.9 s as weight runs.
RUN_MIN_OUTPUTS = 2
#: Largest fan table (pairs) a kernel row gets; a convolution above it runs as weight runs, a
#: pool above it on the dense path.
FAN_MAX = 1 << 24


class EventPlan:
    """How a kernel row's events run compiled (:mod:`.jit`): through a fan table (``fan``:
    one ``(target, weight << exponent)`` list per source, :class:`.jit.FanTable`) or, for
    convolutions with :data:`RUN_MIN_OUTPUTS` or more outputs per group (or a fan table over
    :data:`FAN_MAX`) and dense kernels, as weight runs (``weight`` ``[C, cells, o_group]``,
    :class:`.jit.RunTable`) into a channel-last accumulator; ``fan`` and ``weight`` are both
    None when the row has neither (a pool over :data:`FAN_MAX`: it runs dense)."""

    def __init__(self, kind: str, g: Geometry, w: np.ndarray, exponent: int):
        self.e, self.n_tgt, self.fan = exponent, int(np.prod(g.tgt)), None
        self.weight, self._runs = None, {}
        n_src = int(np.prod(g.src))
        if kind == "one_to_one":
            self.fan = jit.FanTable(np.arange(n_src + 1), np.arange(n_src), np.left_shift(w.reshape(-1).astype(np.int64), exponent))
            self.per_event = 1.0
            return
        if kind == "dense":  # one position, one cell, one group of n_tgt outputs
            self.table, self.c_group, self.G, self.L, self.og = np.zeros((1, 1), np.int64), n_src, 1, 1, self.n_tgt
            self.weight = np.ascontiguousarray(w.T).reshape(n_src, 1, self.n_tgt)
            self.per_event = 1.0
            return
        (C, H, W), (n_out, OH, OW) = g.src, g.tgt
        table, T = window_table(g), g.kernel[0] * g.kernel[1]
        self.per_event = float((table >= 0).sum()) / (H * W)  # cells an event reaches, on average
        og, cg = (g.o_group, g.c_group) if kind == "conv2d" else (1, 1)
        G, L = n_out // og, OH * OW
        pairs = int((table >= 0).sum()) * C * og
        if kind == "conv2d" and (og >= RUN_MIN_OUTPUTS or pairs > FAN_MAX):
            self.table, self.c_group, self.G, self.L, self.og = table, cg, G, L, og
            # w [G, o_group, c_group·kh·kw] -> [c, cell, o_group] (c = group · c_group + channel in group)
            self.weight = np.ascontiguousarray(w.reshape(G, og, cg, T).transpose(0, 2, 3, 1)).reshape(C, T, og)
            return
        if pairs > FAN_MAX:
            return
        # the fan table: source c·H·W + q reaches target (group·og + o)·L + table[q, t] for every
        # cell t that lands inside and every output o of its group, in source order
        q, t = np.nonzero(table >= 0)
        pos = table[q, t]
        c = np.arange(C, dtype=np.int64)[:, None, None]
        o = np.arange(og, dtype=np.int64)[None, None, :]
        target = ((c // cg) * og + o) * L + pos[None, :, None]  # [C, entries, og]
        weight = w.reshape(-1)[target] if kind == "pool" else w[c // cg, o, (c % cg) * T + t[None, :, None]]
        per_q = np.bincount(q, minlength=H * W) * og
        self.fan = jit.FanTable(np.concatenate([[0], np.cumsum(np.tile(per_q, C))]), target.reshape(-1),
                                np.left_shift(weight.reshape(-1).astype(np.int64), exponent))
        self.per_event *= og

    @property
    def runs_events(self) -> bool:
        """Whether the row has a compiled event path (a fan table or weight runs)."""
        return self.fan is not None or self.weight is not None

    def features(self, n_events: int, B: int) -> np.ndarray:
        """The weight runs' work for ``n_events`` events in a batch of ``B``: multiply-adds,
        (event, cell) entries, accumulator cells, 1."""
        entries = n_events * self.per_event
        return np.array([entries * self.og, entries, B * self.n_tgt, 1.0])

    def add(self, out: np.ndarray, b, j, v, B: int, reach: int, scratch: dict | None = None) -> None:
        """Add the events' current, ``<< exponent``, to ``out`` [B, targets] int64; ``reach``
        bounds every partial sum before the shift (int32 accumulators below 2**31 after it);
        ``scratch``: a dict that keeps the accumulators, left cleared, from call to call."""
        if self.fan is not None:
            self.fan.add(out, b, j, v)
            return
        dtype = np.int32 if (reach << self.e) < 1 << 31 else np.int64
        if dtype not in self._runs:  # the exponent folded in: exact in int32 (|w| << e <= reach << e
            # < 2**31), modulo 2**64 in int64; widened from the stored type once, in place
            weight = self.weight.astype(dtype)
            weight <<= self.e
            self._runs[dtype] = jit.RunTable(self.table, self.c_group, weight)
        shape = (B, self.G, self.L, self.og)
        acc = np.zeros(shape, dtype) if scratch is None else scratch.get((self, dtype))
        if acc is None or acc.shape != shape:
            acc = scratch[self, dtype] = np.zeros(shape, dtype)
        self._runs[dtype].add(acc, b, j, v)
        jit.unpack(acc, out)


class KernelRunner:
    """Runs kernel rows on source values in graph order: the dense path (exact integer
    currents through float BLAS products when every partial sum is an integer below 2**24
    (float32) or 2**53 (float64), else in int64) or the compiled event path (:class:`EventPlan`)."""

    def __init__(self, kr: dict, geometries: list[Geometry], mode: str = "auto"):
        if mode not in ("auto", "dense", "event"):
            raise ValueError(f"mode must be auto, dense or event, not {mode!r}")
        self.rows, self.plans, self.mode = [], [], mode
        for k, g in enumerate(geometries):
            kind = KINDS[int(kr["kind"][k])]
            w = kr["weights"][kr["weight_start"][k]:kr["weight_start"][k + 1]]  # int64 or narrower
            n_src, n_tgt = int(np.prod(g.src)), int(np.prod(g.tgt))
            if kind == "conv2d":
                G = g.tgt[0] // g.o_group
                w = w.reshape(G, g.o_group, g.c_group * g.kernel[0] * g.kernel[1])
                fan = g.c_group * g.kernel[0] * g.kernel[1]
                macs, cells = n_tgt * fan, n_tgt // g.o_group * fan  # im2col: (group, c, cell, position)
            elif kind == "pool":
                w = w.reshape(g.tgt)
                fan = g.kernel[0] * g.kernel[1]
                macs = cells = n_tgt * fan
            elif kind == "dense":
                w = w.reshape(n_tgt, n_src)
                fan = w.shape[1]
                macs, cells = n_src * n_tgt, n_src
            else:
                fan, macs, cells = 1, n_tgt, n_tgt
            wmax = max(int(w.max()), -int(w.min())) if w.size else 0  # np.abs(int8 -128) is -128
            self.rows.append((kind, g, w, {}, fan * max(wmax, 1), int(kr["exponent"][k]), (macs, cells)))
            self.plans.append(None)  # built on first use

    def plan(self, k: int) -> EventPlan:
        """The compiled event path of row ``k`` (built once)."""
        if self.plans[k] is None:
            kind, g, w, _, _, e, _ = self.rows[k]
            self.plans[k] = EventPlan(kind, g, w, e)
        return self.plans[k]

    def fan(self, k: int, keep: bool = True):
        """Row ``k``'s fan table (:class:`.jit.FanTable`, targets local to the row) when its
        events run through one (:class:`EventPlan`; never in ``dense`` mode), else None.
        ``keep=False``: a plan built here for a fan table is not kept (a caller that merges
        the table into its own runs the row from there; :meth:`plan` would build it again)."""
        if self.mode == "dense":
            return None
        if keep or self.plans[k] is not None:
            return self.plan(k).fan
        kind, g, w, _, _, e, _ = self.rows[k]
        plan = EventPlan(kind, g, w, e)
        if plan.fan is None:
            self.plans[k] = plan
        return plan.fan

    def features(self, k: int, n_events: int, B: int) -> tuple[np.ndarray, np.ndarray]:
        """Work of row ``k``'s two paths for ``n_events`` events in a batch of ``B``: the
        weight runs' (:meth:`EventPlan.features`) and the dense product's (multiply-adds,
        im2col cells, 1)."""
        macs, cells = self.rows[k][6]
        return self.plan(k).features(n_events, B), np.array([B * macs, B * cells, 1.0])

    def cheaper(self, k: int, n_events: int, B: int) -> bool:
        """Whether the compiled event path is predicted faster than the dense product for
        ``n_events`` events in a batch of ``B`` (:data:`EVENT_COST`, :data:`DENSE_COST`); a
        fan table always is (a few pairs per event against the whole population)."""
        if self.plan(k).fan is not None:
            return True
        event, dense = self.features(k, n_events, B)
        return float(event @ EVENT_COST) < float(dense @ DENSE_COST)

    def add(self, k: int, out: np.ndarray, x: np.ndarray, events, count: int | None = None,
            xmax: int | None = None, scratch: dict | None = None) -> None:
        """Add the current of kernel ``k`` for source values ``x`` [B, source size] (integers) to
        ``out`` [B, targets] (int64, contiguous rows); ``events()`` gives their non-zero values
        as (sample, index, value), ``count`` their number and ``xmax`` the largest ``|value|``
        when the caller knows them without materialising the events; ``scratch``, a dict the
        event path keeps its accumulators in from call to call.  The current comes from
        the compiled event path when that is predicted faster than the dense product
        (:meth:`cheaper`, or as ``mode`` forces: ``dense``, ``event``); the integers are the same."""
        if self.mode == "dense" or not self.plan(k).runs_events:
            self.dense(k, out, x, xmax)
            return
        if count == 0:
            return
        if self.mode == "auto" and count is not None and not self.cheaper(k, count, len(x)):
            self.dense(k, out, x, xmax)
            return
        b, j, v = events()
        if not len(b):
            return
        if self.mode == "auto" and count is None and not self.cheaper(k, len(b), len(x)):
            self.dense(k, out, x, xmax)
            return
        xmax = int(np.abs(v).max()) if xmax is None else xmax
        self.plan(k).add(out, b, j, v, len(x), self.rows[k][4] * xmax, scratch)

    def current(self, k: int, x: np.ndarray, xmax: int | None = None) -> np.ndarray:
        """Current of kernel ``k`` for source values ``x`` [B, source size] (integers), [B, targets],
        by the dense product (``xmax``: the largest ``|x|``, when known)."""
        out = np.zeros((len(x), int(np.prod(self.rows[k][1].tgt))), np.int64)
        self.dense(k, out, x, xmax)
        return out

    def dense(self, k: int, out: np.ndarray, x: np.ndarray, xmax: int | None = None) -> None:
        """Add the current of kernel ``k`` for source values ``x`` to ``out`` by the dense
        product: pools, depthwise convolutions and one-to-one kernels in int64 straight into
        ``out`` (a few multiply-adds per target, the exponent folded into the weights: the
        same sums modulo 2**64), the others through a float BLAS product where exact."""
        kind, g, w, cache, bound, e, _ = self.rows[k]
        if xmax is None:
            xmax = int(np.abs(x).max()) if x.size else 0
        if xmax == 0:
            return
        depthwise = kind == "conv2d" and g.c_group == 1 and g.o_group == 1
        direct = depthwise or kind in ("pool", "one_to_one")
        dtype = np.int64 if direct else exact_dtype(bound * xmax)
        if dtype not in cache:
            cache[dtype] = w.astype(np.int64) << e if direct else w.astype(dtype)
        wd = cache[dtype]
        B = len(x)
        if kind == "one_to_one":
            out += x * wd.reshape(1, -1)
            return
        if kind == "dense":
            y = x.astype(dtype, copy=False) @ wd.T
            out += y.astype(np.int64) << e if e else y.astype(np.int64, copy=False)
            return
        (C, H, W), (n_out, OH, OW) = g.src, g.tgt
        kh, kw = g.kernel
        (sh, sw), (dh, dw), (pt, pl) = g.strides, g.dilations, g.pads
        pb = max(0, (OH - 1) * sh + (kh - 1) * dh + 1 - (H + pt))
        pr = max(0, (OW - 1) * sw + (kw - 1) * dw + 1 - (W + pl))
        # the windows over the sources in their own type (spikes: int8); padded only if needed
        padded = x.reshape(B, C, H, W)
        if pt or pb or pl or pr:
            padded = np.zeros((B, C, H + pt + pb, W + pl + pr), x.dtype)
            padded[:, :, pt:pt + H, pl:pl + W] = x.reshape(B, C, H, W)
        views = [v for _, v in window_views(padded, g.kernel, g.strides, g.dilations, (OH, OW))]
        if direct:
            target = np.reshape(out, (B, n_out, OH, OW), copy=False)  # a view: out's rows are contiguous
            if kind == "pool":  # per channel the sum of the window, times each target's weight
                total = np.zeros((B, C, OH, OW), np.int64)
                for view in views:
                    total += view
                target += total * wd[None]
            else:  # depthwise: per channel, a weighted sum of the kernel cells' views
                wc = wd.reshape(C, kh * kw)
                for t, view in enumerate(views):
                    target += view * wc[None, :, t, None, None]
            return
        G, L = n_out // g.o_group, OH * OW
        # columns [G, c_group·kh·kw, B·L]: one matrix product per group (BLAS)
        cols = np.stack(views, axis=0).reshape(kh * kw, B, G, g.c_group, L)
        cols = np.ascontiguousarray(cols.transpose(2, 3, 0, 1, 4), dtype=dtype).reshape(G, g.c_group * kh * kw, B * L)
        if G == 1:
            y = (wd[0] @ cols[0]).reshape(1, g.o_group, B, L)
        else:
            y = np.einsum("gok,gkn->gon", wd, cols).reshape(G, g.o_group, B, L)
        y = y.transpose(2, 0, 1, 3).astype(np.int64)  # [B, G, o_group, L]
        if e:
            y <<= e
        np.reshape(out, (B, G, g.o_group, L), copy=False)[...] += y

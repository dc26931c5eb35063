"""Quantisation of a float ``snn`` graph to a chip's integer formats (docs/design.md §5, integer graphs).

Per population a state scale ``S`` (integer units per float unit of voltage) is chosen; every
projection into it gets integer weights of ``weight-bits`` bits and an exponent ``e`` with
``w_int · 2**e ≈ W · S`` (``e`` the smallest that fits, which keeps the most mantissa bits);
threshold, bias and initial voltage become ``round(x · S)`` in the state width; decays are
rounded to whole units of 1/4096.

Choice of ``S``: rounding errors of threshold, bias and ``v0`` shrink as ``S`` grows, and the
weights keep ``weight-bits`` of relative precision whatever ``S`` is, so ``S`` is the largest
value that (a) lets the largest weight fit with the chip's largest exponent and (b) keeps the
voltage within the state width: a spiking population's voltage stays below
``θ + |v0| + HEADROOM · (c + |b|)`` (``c`` the largest current one step can deliver:
:func:`max_step_current`, burst sources sending up to their ``max_spikes`` each), a
non-spiking output population's below ``|v0| + steps · (c + |b|)``.

Inputs below the resolution of the population's input: a population's input current is
represented by ``weight-bits``-bit weights, so its largest input current ``c · S`` (state units
per step) is resolved to about ``c · S / 2**(weight-bits − 1)`` units — one LSB of the total
input (:func:`input_lsb`, never finer than one state unit).  A projection whose weights lose
half their value or more (they round to zero) is judged by what it can deliver, not by its own
weights: if its largest current to any neuron in one step (its sources at their largest
activation: one spike, or the encoder's unit) is below that LSB, the integer graph could not
tell it from rounding, so it is dropped with a remark (its weights, its current in state units,
its share of the population's input) and the ops only it read are removed; if it can deliver
one LSB or more, it carries signal the integer graph would lose, and quantize refuses.
"""

from __future__ import annotations

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.core import Blob, Graph, Op, param_array
from nmc.ir.snn import DECAY_ONE
from nmc.passes.canonicalize import dead_ops
from nmc.passmanager import Pass, PassContext, register_pass
from nmc.semantics import latency_steps

HEADROOM = 8  # steps of worst-case input a spiking population's voltage may accumulate
CURRENT_ENCODER_SCALE = 256  # a 'current' encoder presents round(x * 256) for x in [0, 1]
LOSS_LIMIT = 0.5  # a projection whose weights lose this much (relative RMS) is dropped or refused


CHUNK = 1 << 20  # weights converted to float64 at a time (8 MiB): VGG-19's fc6 alone has 102 M


def _raw(p: Op) -> np.ndarray:
    """``p``'s weights as stored (a blob's array, or the one number)."""
    w = p.weight
    return w.data if isinstance(w, Blob) else np.asarray(w)


def _row_chunks(a: np.ndarray):
    """Consecutive slices of ``a``'s first axis (targets, for dense and conv weights), each of
    about :data:`CHUNK` elements; a 0-d array whole."""
    if a.ndim == 0 or a.size == 0:
        yield a
        return
    rows = max(1, CHUNK // max(1, a.size // a.shape[0]))
    for i in range(0, a.shape[0], rows):
        yield a[i:i + rows]


def _flat_chunks(n: int):
    for i in range(0, n, CHUNK):
        yield slice(i, min(n, i + CHUNK))


def _peak(p: Op) -> float:
    """Largest |weight| of ``p`` (the stored values: exact whatever their float type)."""
    return max((float(np.max(np.abs(c))) for c in _row_chunks(_raw(p)) if c.size), default=0.0)


def _step_sums(p: Op, w: np.ndarray) -> np.ndarray:
    """Per target of projection ``p``, the sum of the non-negative weights ``w`` that reach it."""
    if p.kind == "dense":
        return w.sum(axis=1)
    if p.kind == "conv2d":
        return w.reshape(w.shape[0], -1).sum(axis=1)
    if p.kind == "pool":
        return w * float(np.prod(p.kernel))
    if p.kind in ("one_to_one", "maxgate"):  # a maxgate passes one source per target
        return w
    return np.bincount(p.indices.data, weights=w.reshape(-1), minlength=int(np.prod(p.shape)))


def max_step_current(p: Op, unit: float) -> float:
    """Largest |current| projection ``p`` can deliver to any neuron in one step, sources in
    ``[0, unit]`` (populations' spikes, rate and poisson codes) or, for ``current`` and
    ``spikes`` encoders, whose values may be negative, in ``[-unit, unit]``.  With
    non-negative sources a neuron's current lies between minus the sum of its negative
    weights and the sum of its positive ones."""
    src = p.src.owner
    signed = src.KIND == "snn.encode" and src.encoding in ("current", "spikes")
    raw = _raw(p)
    chunks = _row_chunks(raw) if p.kind in ("dense", "conv2d") else [raw]  # per-target sums: by rows
    best = None
    for chunk in chunks:
        w = chunk.astype(np.float64)
        if signed:
            per = _step_sums(p, np.abs(w))
        else:
            per = np.maximum(_step_sums(p, np.clip(w, 0, None)), _step_sums(p, np.clip(-w, 0, None)))
        if np.size(per):
            best = max(best or 0.0, float(np.max(per)))
    return best * unit if best is not None else 0.0


def source_payload(p: Op) -> float:
    """The largest value one source of ``p`` emits in a step, per unit of :func:`max_step_current`:
    a burst population's ``max_spikes`` (a spike count), else 1."""
    src = p.src.owner
    return float(src.max_spikes) if src.KIND == "snn.population" else 1.0


def source_unit(p: Op) -> float:
    """What one unit of the source delivers in the integer graph (spikes: 1)."""
    src = p.src.owner
    if src.KIND == "snn.encode" and src.encoding == "current":
        return float(src.scale)
    return 1.0


def quantize_projection(p: Op, scale: float, bits: int, e_max: int, ctx: PassContext) -> tuple[Op, float, int]:
    """``p`` with integer weights for state scale ``scale``; returns (new op, relative RMS error,
    weights clipped).  Works through the weights :data:`CHUNK` at a time in one float64 buffer
    (their scaled values, then their errors), so its peak is one float64 copy of the weights
    beside the integer result; every number is the one a whole-array computation gives."""
    raw = _raw(p)
    unit = source_unit(p)
    lo, hi = -(1 << (bits - 1)), (1 << (bits - 1)) - 1
    w = np.empty(raw.shape, np.float64)
    flat, flat_raw = w.reshape(-1), raw.reshape(-1)
    peak = 0.0
    for s in _flat_chunks(flat.size):
        flat[s] = flat_raw[s].astype(np.float64) * scale / unit
        peak = max(peak, float(np.max(np.abs(flat[s]))))
    e = 0
    while e < e_max and np.round(peak / 2**e) > hi:
        e += 1
    norm = float(np.linalg.norm(w))
    dtype = np.int8 if bits <= 8 else np.int16 if bits <= 16 else np.int32
    q_all = np.empty(raw.shape, dtype)
    flat_q, clipped = q_all.reshape(-1), 0
    for s in _flat_chunks(flat.size):
        q = np.round(flat[s] / 2**e)
        clipped += int(np.sum((q < lo) | (q > hi)))
        q = np.clip(q, lo, hi).astype(np.int64)
        flat_q[s] = q
        flat[s] = q * 2**e - flat[s]  # the buffer now holds the errors
    err = float(np.linalg.norm(w) / max(norm, 1e-300))
    weight = Blob(q_all, p.weight.name) if isinstance(p.weight, Blob) else int(q_all)
    return p.with_changes(weight=weight, exponent=e), err, clipped


@register_pass("quantize")
class Quantize(Pass):
    """Quantise a float ``snn`` graph to the target chip's integer formats.

    Requires: ``ctx.target`` a chip (``load_chip``); a float snn graph (convert-to-spiking);
    ``weight-bits`` within the chip's weight widths; reset modes the chip supports.
    Ensures: every projection has integer weights of ``weight-bits`` bits and an exponent
    ``0 <= e <= weight_exponent_max``; every population has ``bits`` = the chip's state width
    and integer threshold, bias, v0, du, dv; ``current`` encoders present ``round(x · 256)``.
    Statistics per run: ``weights-saturated``, ``params-saturated``; a remark per population
    gives its scale, exponents and relative weight error, which also stay on the population as
    ``quant.error`` (largest relative RMS weight error of its projections) and
    ``quant.saturated`` (weights and parameters clipped to their widths) and ``quant.scale``
    (integer state units per float unit)."""

    weight_bits: int = 8

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        chip = ctx.target
        if chip is None or not hasattr(chip, "formats"):
            raise NmcError("quantize needs a target chip to know its integer formats",
                           hint="pass --target CHIP (nmc targets lists them; or PassContext(target=load_chip(...)))")
        f = chip.formats
        if not f.weight_bits_min <= self.weight_bits <= f.weight_bits_max:
            raise NmcError(f"quantize: weight-bits={self.weight_bits} is outside the target's weights "
                           f"({f.weight_bits_min} to {f.weight_bits_max} bits)",
                           hint=f"--quantize weight-bits=N with N from {f.weight_bits_min} to {f.weight_bits_max}")
        populations = [p for p in graph.walk("snn.population") if p.bits == 0]
        if not populations:
            ctx.remark("no float populations: nothing to quantise")
            return False
        bits = min(f.voltage_bits, f.current_bits)
        limit = (1 << (bits - 1)) - 1
        steps = latency_steps(graph, int(graph.meta.get("timesteps", 1)))
        for enc in graph.walk("snn.encode"):
            if enc.encoding == "current" and enc.scale == 1.0:
                graph.replace(enc, enc.with_changes(scale=float(CURRENT_ENCODER_SCALE)))
        replacements: dict[Op, Op] = {}  # applied in one sweep (Graph.replace_ops): linear in depth
        for pop in graph.walk("snn.population"):
            if pop.bits == 0:
                self.quantize_population(replacements, pop, ctx, chip, bits, limit, steps)
        graph.replace_ops(replacements)
        dead = dead_ops(graph)
        if dead:
            dead_ids = {id(op) for op in dead}
            graph.ops = [op for op in graph.ops if id(op) not in dead_ids]
            named = [f"%{op.result.name}" for op in dead if op.KIND == "snn.population" and op.result.name]
            ctx.stat("ops-removed", len(dead))
            ctx.remark(f"removed {len(dead)} ops that only dropped inputs read"
                       + (f" (populations {', '.join(named)})" if named else ""))
        return True

    def quantize_population(self, replacements, pop, ctx, chip, bits, limit, steps) -> None:
        f = chip.formats
        f.require_spikes(pop, pop.result.name or "?", getattr(chip, "name", "?"))
        if pop.reset not in f.reset_modes:
            late = ("; they reset in the step a neuron fires, this population one step later (snnTorch's "
                    "reset_delay, which --convention snntorch reads)") if pop.reset.endswith("_delayed") else ""
            raise NmcError(f"the target's neurons do not support reset '{pop.reset}'", pop.loc,
                           hint=f"supported: {', '.join(f.reset_modes)}{late}")
        shape = pop.result.type.shape
        arr = {n: param_array(getattr(pop, n), shape) for n in pop.PARAMS}
        spiking = bool(np.all(np.isfinite(arr["threshold"])))
        projections = [c.owner for c in pop.currents]
        wmax = (1 << (self.weight_bits - 1)) - 1
        c = sum(max_step_current(p, source_payload(p)) for p in projections)
        drive = c + float(np.max(np.abs(arr["bias"]), initial=0.0))
        v0 = float(np.max(np.abs(arr["v0"]), initial=0.0))
        if spiking:
            bound = float(np.max(arr["threshold"])) + v0 + HEADROOM * drive
        else:
            bound = v0 + steps * drive
        candidates = [limit / bound] if bound > 0 else []
        for p in projections:
            peak = _peak(p) / source_unit(p)
            if peak > 0:
                candidates.append(wmax * 2**f.weight_exponent_max / peak)
        scale = min(candidates) if candidates else 1.0
        name = pop.result.name or "?"
        errors, exps, clipped_weights, kept = [], [], 0, []
        for p in projections:
            new, err, clipped = quantize_projection(p, scale, self.weight_bits, f.weight_exponent_max, ctx)
            if err >= LOSS_LIMIT:
                units = max_step_current(p, 1.0) * scale
                lsb = input_lsb(c * scale, self.weight_bits)
                share = units / (c * scale) if c > 0 else 0.0
                src = f"%{p.src.name}" if p.src.name else f"a {p.src.owner.KIND}"
                what = f"its input from {src} ({np.size(_raw(p)):,} weights)"
                if units >= lsb:
                    raise NmcError(f"population %{name} cannot be represented: {what} loses "
                                   f"{100 * err:.0f}% (RMS) at the state scale {scale:.4g}, yet carries up to "
                                   f"{units:.3g} state units per step ({100 * share:.2g}% of its largest input "
                                   f"current; one LSB of that input is {lsb:.3g} units)", pop.loc,
                                   hint="its weights are below half a state unit at the scale the population's "
                                        f"largest weights set ({self.weight_bits}-bit weights, exponents 0 to "
                                        f"{f.weight_exponent_max}); use more weight bits if the chip has them, or "
                                        "a network whose inputs to this population are of comparable size")
                ctx.stat("projections-dropped")
                ctx.remark(f"%{name}: dropped {what}, whose weights lose {100 * err:.0f}% (RMS) at the state "
                           f"scale {scale:.4g}: at most {units:.3g} state units per step, {100 * share:.2g}% of the "
                           f"population's largest input current, below one LSB of it ({lsb:.3g} units)")
                continue
            replacements[p] = new
            kept.append(p.result)
            errors.append(err)
            exps.append(new.exponent)
            clipped_weights += clipped
            ctx.stat("weights-saturated", clipped)
            ctx.stat("projections-quantized")
        ints, saturated = {}, 0
        for n in ("threshold", "bias", "v0"):
            x = arr[n] * scale if n != "threshold" or spiking else np.full(shape, float(limit))
            q = np.round(x)
            saturated += int(np.sum(np.abs(q) > limit))
            ints[n] = np.clip(q, -limit - 1, limit)
        if spiking and np.any(ints["threshold"] < 1):
            raise NmcError(f"population %{name} cannot be represented: its threshold rounds to "
                           f"{int(ints['threshold'].min())} at the state scale {scale:.4g} the weights allow",
                           pop.loc, hint="its weights are too large relative to its threshold for "
                                         f"{self.weight_bits}-bit weights with exponents up to "
                                         f"{f.weight_exponent_max}; renormalise the network")
        for n in ("du", "dv"):
            ints[n] = np.clip(np.round(arr[n]), 0, DECAY_ONE)
        changes = {n: _int_param(ints[n], shape, getattr(pop, n)) for n in pop.PARAMS}
        if len(kept) < len(projections):
            changes["currents"] = kept
        new = pop.with_changes(bits=bits, **changes)
        new.extra.update(pop.extra)
        new.extra["quant.error"] = max(errors, default=0.0)
        new.extra["quant.saturated"] = saturated + clipped_weights
        new.extra["quant.scale"] = scale
        replacements[pop] = new
        ctx.stat("params-saturated", saturated)
        ctx.stat("populations-quantized")
        ctx.remark(f"%{name}: scale {scale:.6g}, exponents {exps}, weight error (RMS) "
                   + ", ".join(f"{100 * e:.2f}%" for e in errors) + f", saturated parameters {saturated}")


def input_lsb(total_units: float, weight_bits: int) -> float:
    """One LSB of a population's input, in state units: its largest input current
    ``total_units`` (all projections, state units per step) at the precision of a
    ``weight_bits``-bit weight at full range, and never finer than one state unit (the
    smallest change of voltage the integer population can hold)."""
    return max(1.0, total_units / 2 ** (weight_bits - 1))


def _int_param(values: np.ndarray, shape: tuple, old):
    flat = values.reshape(-1).astype(np.int64)
    if flat.size and np.all(flat == flat[0]):
        return int(flat[0])
    return Blob(flat.reshape(shape).astype(np.int32), old.name if isinstance(old, Blob) else None)

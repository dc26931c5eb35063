"""The neuron model of the ``snn`` dialect: encoders, decay, saturation, threshold and reset.

One implementation of the arithmetic (docs/design.md, "Semantics"), called by the reference
semantics (:mod:`nmc.semantics`), every chip emulator and ``measure-rates``; the CPU runtime's
generated code is tested against it.  Arrays are batched: ``[N, neurons]``.

Integer neurons (``bits > 0``), one step with input current ``I``::

    u = sat(decay(u, du) + I)            sat: clip to the signed range of ``bits`` bits
    v = sat(decay(v, dv) + u + bias)     decay(x, d) = sign(x) · ((|x| · (4096 − d)) >> 12)
    spike where v > threshold; then v -= threshold (reset subtract) or v = 0 (reset zero)

Burst neurons (``max_spikes = B > 1``, docs/design.md §5) emit ``k = min(B, ⌈v/θ⌉ − 1)``
spikes where ``v > θ`` — the whole thresholds strictly under ``v``; ``(v − 1) // θ`` for
integers — as one event of value ``k``, and lose ``k·θ`` (reset subtract; zero: ``v = 0``).

The delayed resets (snnTorch's neurons with their default ``reset_delay=True``) keep ``v`` as
it is when the neuron fires and reset in the next step, after the integration: where
``v_before > threshold``, ``subtract_delayed`` takes the threshold off and ``zero_delayed``
sets ``v`` to 0 (that step's input is lost)::

    v = sat(decay(v, dv) + u + bias − threshold · [v_before > threshold])     subtract_delayed
    v = 0 if v_before > threshold else sat(decay(v, dv) + u + bias)          zero_delayed

``subtract_delayed`` keeps ``(dv/4096)·threshold`` more than ``subtract``; a membrane
read-out sees the voltage before the reset, as snnTorch's ``mem`` does.

Float neurons follow the same equations with ``decay(x, d) = x · (4096 − d) / 4096`` and no
saturation.  Bit-shift neurons (``leak = shift``): :class:`ShiftNeuronState` and
:func:`deliver_in_order`.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from nmc.hashrng import hash3
from nmc.ir.snn import DECAY_ONE

RATE_ONE = 256  # rate encoder: x = 1 is 256 quanta, one spike per step
POISSON_ONE = 65536  # poisson encoder: probabilities in units of 2**-16
ENCODINGS = ("rate", "poisson", "current", "spikes")


# ------------------------------------------------------------------------------ arithmetic


def saturate(x: np.ndarray, bits) -> np.ndarray:
    """``x`` clipped to the signed range of ``bits`` bits (a number, or one per neuron)."""
    limit = np.left_shift(np.int64(1), np.asarray(bits, dtype=np.int64) - 1)
    return np.clip(x, -limit, limit - 1)


def decay(x: np.ndarray, d: np.ndarray, integer: bool) -> np.ndarray:
    """``x`` after one step of decay ``d`` (units of 1/4096); integers round toward zero."""
    if not np.any(d):
        return x
    if integer:
        return np.sign(x) * ((np.abs(x) * (DECAY_ONE - d)) >> 12)
    return x * (DECAY_ONE - d) / DECAY_ONE


@dataclass
class NeuronParams:
    """Per-neuron parameters, flat ``[neurons]``: ``threshold``, ``bias``, ``du``, ``dv``,
    ``v0``; ``reset_zero`` (True: reset to zero, else subtract the threshold);
    ``reset_delayed`` (True: reset one step late, ``subtract_delayed``/``zero_delayed``); ``bits``
    (0: float neurons; a number or one per neuron); ``max_spikes`` (the most spikes a neuron
    emits in one step, :func:`burst_counts`; a number or one per neuron)."""

    threshold: np.ndarray
    bias: np.ndarray
    du: np.ndarray
    dv: np.ndarray
    v0: np.ndarray
    reset_zero: np.ndarray | bool
    bits: np.ndarray | int
    reset_delayed: np.ndarray | bool = False
    max_spikes: np.ndarray | int = 1

    @property
    def burst(self) -> bool:
        """Whether any neuron may emit more than one spike per step."""
        return bool(np.any(np.asarray(self.max_spikes) > 1))

    @property
    def integer(self) -> bool:
        return bool(np.all(np.asarray(self.bits) > 0))

    @cached_property
    def uniform(self) -> dict:
        """The parameters of integer neurons for :meth:`NeuronState.step`: each one a scalar
        when every neuron has the same value (``reset_zero``: ``True``/``False``), else the
        array; ``du_one``: every ``du`` is :data:`DECAY_ONE`; ``limits``: the saturation bounds."""
        def one(a):
            a = np.asarray(a)
            return a.reshape(-1)[0].item() if a.size and np.all(a == a.reshape(-1)[0]) else a

        limit = np.left_shift(np.int64(1), np.asarray(one(self.bits), dtype=np.int64) - 1)
        du = one(self.du)
        return {"du": du, "du_one": isinstance(du, int) and du == DECAY_ONE, "dv": one(self.dv),
                "bias": one(self.bias), "threshold": one(self.threshold), "reset_zero": one(self.reset_zero),
                "limits": (-limit, limit - 1)}


@dataclass
class NeuronState:
    """The state of a batch of neurons; :meth:`step` advances it by one step."""

    params: NeuronParams
    u: np.ndarray
    v: np.ndarray

    @classmethod
    def initial(cls, params: NeuronParams, batch: int, narrow: bool = False) -> NeuronState:
        """The state at step 0; ``narrow``: int32 ``u`` and ``v`` where that is exact
        (:meth:`narrowable`; half the memory traffic of a step), else int64 (floats: float64)."""
        dtype = np.int64 if params.integer else np.float64
        if narrow and cls.narrowable(params):
            dtype = np.int32
        shape = (batch, len(params.v0))
        return cls(params, np.zeros(shape, dtype=dtype), np.ascontiguousarray(np.broadcast_to(params.v0, shape), dtype=dtype))

    def _narrow_params(self) -> dict:
        if getattr(self, "_narrow", None) is None:
            q = dict(self.params.uniform)
            for k in ("bias", "threshold"):
                q[k] = q[k].astype(np.int32) if isinstance(q[k], np.ndarray) else q[k]
            q["limits"] = tuple(int(x) for x in q["limits"])
            self._narrow = q
        return self._narrow

    @staticmethod
    def narrowable(params: NeuronParams) -> bool:
        """Whether a step's arithmetic fits int32: integer neurons of at most 30 bits without
        decay (``du`` = 4096: ``u`` is the saturated current; ``dv`` = 0), with bias, threshold
        and initial voltage below 2**30 in magnitude, so ``v + u + bias`` stays below 2**31."""
        if not params.integer or int(np.max(params.bits)) > 30 or np.any(params.reset_delayed) or params.burst:
            return False
        q = params.uniform
        small = all(int(np.max(np.abs(np.asarray(a, dtype=np.int64)), initial=0)) < 1 << 30
                    for a in (params.bias, params.threshold, params.v0))
        return bool(q["du_one"] and not np.any(q["dv"]) and small)

    def step(self, current: np.ndarray, dtype=np.int64) -> np.ndarray:
        """Integrate ``current`` ([N, neurons], int64 for integer neurons; it may be overwritten);
        returns this step's spikes (0/1 in ``dtype``, burst neurons their count; int8 costs no
        copy), and sets ``fired_at``: the flat indices of the neurons that fired, ascending.
        ``u`` and ``v`` are updated in place where the arithmetic allows."""
        p = self.params
        if p.burst:
            return self._burst_step(current, dtype)
        if not p.integer or np.any(p.reset_delayed):  # floats, or a reset of last step's spike
            integer = p.integer
            u = decay(self.u, p.du, integer) + current
            if integer:
                u = saturate(u, p.bits)
            v = decay(self.v, p.dv, integer) + u + p.bias
            if np.any(p.reset_delayed):
                before = p.reset_delayed & (self.v > p.threshold)
                v = np.where(before, np.where(p.reset_zero, 0, v - p.threshold), v)
            if integer:
                v = saturate(v, p.bits)
            fired = v > p.threshold
            self.fired_at = np.flatnonzero(fired)
            reset = fired & ~np.asarray(p.reset_delayed)
            self.v = np.where(reset, np.where(p.reset_zero, 0, v - p.threshold), v).astype(self.v.dtype)
            self.u = u.astype(self.u.dtype)
            return fired.view(np.int8) if dtype == np.int8 else fired.astype(dtype)
        # the same arithmetic on fresh arrays updated in place, with parameters that are the
        # same for every neuron as scalars (a step of a large population is memory-bound)
        q = p.uniform
        if self.v.dtype == np.int32:  # narrow (initial()): the parameters in int32 too
            q = self._narrow_params()
        lo, hi = q["limits"]
        # du = 4096 decays the current to 0 in one step: u is the saturated input alone
        if q["du_one"] and self.u.dtype == np.int32:  # narrow: the saturated current into u
            u = self.u  # (clipping in place, then a copy, is 3x faster than clipping into int32)
            np.copyto(u, np.clip(current, lo, hi, out=current), casting="unsafe")
        elif q["du_one"]:
            u = np.clip(current, lo, hi, out=current)
        else:
            u = np.clip(decay(self.u, q["du"], True) + current, lo, hi)
        v = decay(self.v, q["dv"], True)
        if v is self.v and v.flags.c_contiguous and v.flags.writeable:  # no decay: integrate in place
            v += u
        else:
            v = v + u
        if np.any(q["bias"]):
            v += q["bias"]
        np.clip(v, lo, hi, out=v)
        fired = v > q["threshold"]
        self.fired_at = at = np.flatnonzero(fired)
        flat, neuron = v.reshape(-1), at % v.shape[1]
        if q["reset_zero"] is True:
            flat[at] = 0
        elif q["reset_zero"] is False:
            flat[at] -= p.threshold[neuron] if np.ndim(p.threshold) else p.threshold
        else:
            flat[at] = np.where(p.reset_zero[neuron], 0, flat[at] - (p.threshold[neuron] if np.ndim(p.threshold) else p.threshold))
        self.v, self.u = v, u
        return fired.view(np.int8) if dtype == np.int8 else fired.astype(dtype)

    def _burst_step(self, current: np.ndarray, dtype) -> np.ndarray:
        """:meth:`step` for a batch with burst neurons (no delayed resets: the verifier refuses
        them): the same integration, then :func:`burst_counts` and a reset by ``k·θ``."""
        p = self.params
        integer = p.integer
        u = decay(self.u, p.du, integer) + current
        if integer:
            u = saturate(u, p.bits)
        v = decay(self.v, p.dv, integer) + u + p.bias
        if integer:
            v = saturate(v, p.bits)
        k = burst_counts(v, p.threshold, p.max_spikes, integer)
        self.fired_at = np.flatnonzero(k)
        self.v = np.where(k > 0, np.where(p.reset_zero, 0, v - k * p.threshold), v).astype(self.v.dtype)
        self.u = u.astype(self.u.dtype)
        return k.astype(dtype)


def burst_counts(v: np.ndarray, threshold, max_spikes, integer: bool) -> np.ndarray:
    """The spikes each neuron emits for voltage ``v``: ``min(B, ⌈v/θ⌉ − 1)``, at least 0 —
    the number of whole thresholds strictly under ``v`` (``v > θ`` fires one, as a neuron of
    ``B = 1`` does).  Integers: ``(v − 1) // θ`` (θ ≥ 1), exact; floats: ``ceil(v / θ) − 1``.
    int64 counts."""
    if integer:
        k = (v - 1) // threshold
    else:
        with np.errstate(invalid="ignore", divide="ignore"):
            k = np.ceil(v / threshold) - 1
        k = np.where(np.isfinite(k), k, 0)
    return np.clip(k, 0, max_spikes).astype(np.int64)


def shift_decay(x: np.ndarray, d) -> np.ndarray:
    """What a bit-shift leak takes from ``x`` in one step: ``x >> d`` (arithmetic, rounding
    toward −∞), or one unit toward zero when that is 0 and ``x`` is not (XyloSim's ``decay``)."""
    dx = x >> np.asarray(d, dtype=np.int64)
    return np.where(dx == 0, np.sign(x), dx)


def deliver_in_order(u: np.ndarray, events: np.ndarray, weights: np.ndarray, bits: int) -> np.ndarray:
    """``u`` ([N, targets]) after the events of each source ([N, sources], counts) arrive one
    by one, sources in ascending order, each event adding the source's column of ``weights``
    ([targets, sources], already shifted) and saturating to ``bits`` bits at once (as the
    hardware's ``safe_add`` does per event).  ``n`` equal events of one source add ``n · w``
    and saturate once: the same thing, as they all push the same way.  When nothing can
    reach the bounds the order does not matter and one sum is taken."""
    limit = (1 << (bits - 1)) - 1
    reach = np.abs(u).max(initial=0) + (np.abs(events) @ np.abs(weights).T).max(initial=0)
    if reach <= limit:
        return u + events @ weights.T
    for j in np.flatnonzero(np.any(events != 0, axis=0)):
        u = saturate(u + events[:, j:j + 1] * weights[None, :, j], bits)
    return u


@dataclass
class ShiftNeuronState:
    """A batch of bit-shift neurons (``snn.population`` with ``leak = shift``) and their
    state: two synaptic currents ``u[k]`` and the voltage ``v``, all ``[N, neurons]`` int64
    holding ``bits``-bit values.  A step is :meth:`deliver` for every input, in order, then
    :meth:`advance` (the order of XyloSim's ``XyloLayer::evolve`` and
    ``XyloIAFNeuron::evolve``)::

        u[k] = deliver_in_order(u[k], events, W << shift)    per input, in order
        u[k] = u[k] − shift_decay(u[k], du[k])                synaptic leak
        dv   = sat(wrap(−shift_decay(v, dv)) + Σ_k u[k])
        dv   = sat(dv + bias)
        v    = sat(v + dv)
        n    = min(max_spikes, ⌊(v − θ) / θ⌋ + 1) where v ≥ θ, else 0;  v −= n·θ  (reset zero: v = 0)

    ``wrap`` keeps the negated leak in ``bits`` bits, as the hardware's 16-bit arithmetic does
    (it matters only for ``v = −2^(bits−1)`` with a shift of 0).  ``advance`` returns the
    events ``n`` of each neuron (0..max_spikes)."""

    du: np.ndarray  # [2, neurons]
    dv: np.ndarray
    threshold: np.ndarray
    bias: np.ndarray
    bits: int
    max_spikes: int
    reset_zero: bool
    u: np.ndarray  # [2, N, neurons]
    v: np.ndarray

    @classmethod
    def initial(cls, *, du, dv, threshold, bias, v0, bits: int, max_spikes: int, reset_zero: bool,
                batch: int) -> ShiftNeuronState:
        n = len(threshold)
        v = np.broadcast_to(np.asarray(v0, dtype=np.int64), (batch, n)).copy()
        return cls(np.asarray(du, dtype=np.int64), np.asarray(dv, dtype=np.int64), np.asarray(threshold, dtype=np.int64),
                   np.asarray(bias, dtype=np.int64), bits, max_spikes, reset_zero,
                   np.zeros((len(du), batch, n), dtype=np.int64), v)

    def deliver(self, k: int, events: np.ndarray, weights: np.ndarray) -> None:
        """Synaptic current ``k`` receives ``events`` ([N, sources]) through ``weights``
        ([neurons, sources], shifted): :func:`deliver_in_order`."""
        self.u[k] = deliver_in_order(self.u[k], events, weights, self.bits)

    def advance(self) -> np.ndarray:
        """Leak, integrate, fire (class docstring); the events per neuron ([N, neurons])."""
        bits = self.bits
        u = self.u - shift_decay(self.u, self.du[:, None, :])
        self.u = u
        top = np.int64(1) << (bits - 1)
        leak = -shift_decay(self.v, self.dv)
        leak = np.where(leak == top, -top, leak)
        dv = saturate(leak + u.sum(axis=0), bits)
        dv = saturate(dv + self.bias, bits)
        v = saturate(self.v + dv, bits)
        th = self.threshold
        n = np.where(v >= th, np.minimum(self.max_spikes, (v - th) // th + 1), 0)
        self.v = np.where(n > 0, 0, v) if self.reset_zero else v - n * th
        return n.astype(np.int64)


# ------------------------------------------------------------------------------ encoders


def rate_quanta(x: np.ndarray) -> np.ndarray:
    """What a rate encoder adds to its accumulator per step: ``x`` in 1/256 spikes, in [0, 256]."""
    return np.clip(np.floor(x.astype(np.float64) * RATE_ONE + 0.5), 0, RATE_ONE).astype(np.int64)


def encode(encoding: str, x: np.ndarray, t: int, timesteps: int, size: int, *, state: dict, key,
           phase: int = 0, seed: int = 0, scale: float = 1.0, integer: bool = True) -> np.ndarray:
    """What an encoder of ``size`` elements emits for presentation step ``t`` ([N, size]; zero
    once ``t >= timesteps``).

    ``x``: the encoder's input, ``[N, *shape]`` (``[N, T, *shape]`` for ``spikes``).
    ``rate``: an accumulator per element, starting at ``phase`` quanta, gains
    :func:`rate_quanta` each step and spikes (losing 256) when it reaches 256; kept in
    ``state[key]`` between calls.  ``poisson``: a spike where a counter-based hash of (seed, t,
    element) falls under ``x`` in units of 2**-16.  ``current``: ``x · scale``, rounded half up
    for integer graphs.  ``spikes``: the input's step ``t``."""
    shape = (len(x), size)
    if t >= timesteps:
        return np.zeros(shape, dtype=np.int64 if integer or encoding != "current" else np.float64)
    if encoding == "rate":
        acc = state.get(key, np.full(shape, phase, dtype=np.int64)) + rate_quanta(x.reshape(shape))
        fired = acc >= RATE_ONE
        state[key] = acc - RATE_ONE * fired
        return fired.astype(np.int64)
    if encoding == "poisson":
        p = np.floor(np.clip(x.reshape(shape).astype(np.float64), 0.0, 1.0) * POISSON_ONE + 0.5).astype(np.uint64)
        draw = hash3(seed, t, np.arange(shape[1], dtype=np.uint64)) >> np.uint64(48)
        return (draw[None, :] < p).astype(np.int64)
    if encoding == "current":
        c = x.reshape(shape).astype(np.float64) * scale
        return np.floor(c + 0.5).astype(np.int64) if integer else c
    return x[:, t].reshape(shape).astype(np.int64)  # spikes

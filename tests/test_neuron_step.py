"""NeuronState.step (in place, uniform parameters as scalars) against the equations of
nmc.neuron's docstring written out plainly, on random parameters, uniform or per neuron."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from nmc.neuron import NeuronParams, NeuronState


def plain_step(p: dict, u, v, current):
    """One step by the docstring's equations, on fresh arrays."""
    def sat(x):
        limit = np.left_shift(np.int64(1), p["bits"] - 1)
        return np.clip(x, -limit, limit - 1)

    def decay(x, d):
        return np.sign(x) * ((np.abs(x) * (4096 - d)) >> 12)

    u = sat(decay(u, p["du"]) + current)
    v = sat(decay(v, p["dv"]) + u + p["bias"])
    fired = v > p["threshold"]
    v = np.where(fired, np.where(p["reset_zero"], 0, v - p["threshold"]), v)
    return u, v, fired.astype(np.int64)


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 2**31 - 1), st.lists(st.booleans(), min_size=6, max_size=6), st.integers(1, 40))
def test_step_equals_the_equations(seed, uniform, n):
    rng = np.random.default_rng(seed)
    bits = 12

    def draw(values, k):
        return np.full(n, rng.choice(values)) if uniform[k] else rng.choice(values, n)

    p = {"du": draw([0, 1, 700, 4095, 4096], 0), "dv": draw([0, 3, 2048, 4096], 1),
         "bias": draw([0, -3, 5, 2000], 2), "threshold": draw([1, 40, 900], 3),
         "reset_zero": draw([False, True], 4).astype(bool), "bits": draw([bits, 8, 5], 5).astype(np.int64)}
    params = NeuronParams(threshold=p["threshold"], bias=p["bias"], du=p["du"], dv=p["dv"], v0=rng.integers(-9, 9, n),
                          reset_zero=p["reset_zero"], bits=p["bits"])
    state = NeuronState.initial(params, 3)
    u, v = state.u.copy(), state.v.copy()
    for _ in range(6):
        current = rng.integers(-3000, 3000, (3, n)) * rng.integers(0, 2, (3, n))
        u, v, fired = plain_step(p, u, v, current)
        got = state.step(current.copy())
        np.testing.assert_array_equal(got, fired)
        np.testing.assert_array_equal(state.u, u)
        np.testing.assert_array_equal(state.v, v)
        np.testing.assert_array_equal(state.fired_at, np.flatnonzero(fired))


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 2**31 - 1), st.booleans(), st.integers(1, 40), st.sampled_from([5, 24, 30]))
def test_narrow_step_equals_the_equations(seed, uniform, n, bits):
    """int32 state (``initial(narrow=True)``) where it is exact: the same spikes and voltages,
    currents far outside the range included."""
    rng = np.random.default_rng(seed)
    limit = 1 << (bits - 1)
    p = {"du": np.full(n, 4096), "dv": np.zeros(n, np.int64),
         "bias": rng.integers(-limit, limit, n) if not uniform else np.full(n, int(rng.integers(-limit, limit))),
         "threshold": rng.integers(1, limit, n), "reset_zero": rng.random(n) < 0.5, "bits": np.full(n, bits)}
    params = NeuronParams(threshold=p["threshold"], bias=p["bias"], du=p["du"], dv=p["dv"],
                          v0=rng.integers(-limit, limit, n), reset_zero=p["reset_zero"], bits=p["bits"])
    assert NeuronState.narrowable(params)
    state = NeuronState.initial(params, 3, narrow=True)
    assert state.v.dtype == np.int32
    u, v = state.u.astype(np.int64), state.v.astype(np.int64)
    for _ in range(6):
        current = rng.integers(-4 * limit, 4 * limit, (3, n)) * rng.integers(0, 2, (3, n))
        u, v, fired = plain_step(p, u, v, current)
        got = state.step(current.copy(), np.int8)
        np.testing.assert_array_equal(got, fired)
        np.testing.assert_array_equal(state.v, v)
        np.testing.assert_array_equal(state.fired_at, np.flatnonzero(fired))


def test_narrow_only_where_exact():
    """Decay, 31-bit or delayed-reset neurons keep int64 state."""
    base = {"threshold": np.array([5]), "bias": np.array([0]), "v0": np.array([0]), "reset_zero": False}
    assert NeuronState.initial(NeuronParams(**base, du=np.array([4096]), dv=np.array([0]), bits=24), 1, True).v.dtype == np.int32
    assert NeuronState.initial(NeuronParams(**base, du=np.array([4096]), dv=np.array([3]), bits=24), 1, True).v.dtype == np.int64
    assert NeuronState.initial(NeuronParams(**base, du=np.array([100]), dv=np.array([0]), bits=24), 1, True).v.dtype == np.int64
    assert NeuronState.initial(NeuronParams(**base, du=np.array([4096]), dv=np.array([0]), bits=31), 1, True).v.dtype == np.int64
    delayed = NeuronParams(**base, du=np.array([4096]), dv=np.array([0]), bits=24, reset_delayed=True)
    assert NeuronState.initial(delayed, 1, True).v.dtype == np.int64


@pytest.mark.parametrize("reset_zero", [False, True])
def test_delayed_reset_takes_the_threshold_off_one_step_late(reset_zero):
    """``reset_delayed``: a neuron over threshold spikes, keeps its voltage for that step, and
    is reset (to 0, or by the threshold) at the start of the next step's integration."""
    params = NeuronParams(threshold=np.array([10]), bias=np.array([0]), du=np.array([4096]), dv=np.array([0]),
                          v0=np.array([0]), reset_zero=reset_zero, bits=24, reset_delayed=True)
    state = NeuronState.initial(params, 1, narrow=True)
    spikes, volts = [], []
    for i in [14, 0, 3, 0]:
        spikes.append(int(state.step(np.array([[i]]))[0, 0]))
        volts.append(int(state.v[0, 0]))
    assert spikes == [1, 0, 0, 0]
    assert volts == ([14, 0, 3, 3] if reset_zero else [14, 4, 7, 7])

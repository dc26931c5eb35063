"""A counter-based hash that every platform and every backend computes identically.

``mix`` is SplitMix64's finaliser (Steele, Lea, Flood 2014).  Random numbers are pure
functions of integer keys — no generator state, no library whose stream may change between
versions — so the Poisson encoder (keyed by seed, step and neuron index) and the seeded blob
initialisers of the textual IR give the same bits on the reference semantics, the CPU runtime,
the emulator and any machine.
"""

from __future__ import annotations

import numpy as np

_GOLDEN = np.uint64(0x9E3779B97F4A7C15)
_M1 = np.uint64(0xBF58476D1CE4E5B9)
_M2 = np.uint64(0x94D049BB133111EB)


def mix(x) -> np.ndarray:
    """SplitMix64 of each element of ``x`` (uint64 arithmetic, wrapping)."""
    z = np.asarray(x, dtype=np.uint64) + _GOLDEN
    z = (z ^ (z >> np.uint64(30))) * _M1
    z = (z ^ (z >> np.uint64(27))) * _M2
    return z ^ (z >> np.uint64(31))


def hash3(a, b, c) -> np.ndarray:
    """``mix(mix(mix(a) ^ b) ^ c)``: the hash of a key triple (broadcast, uint64)."""
    u = lambda v: np.asarray(v, dtype=np.uint64)  # noqa: E731
    with np.errstate(over="ignore"):
        return mix(mix(mix(u(a)) ^ u(b)) ^ u(c))


def uniform(seed: int, stream: int, index) -> np.ndarray:
    """Floats in [0, 1) with 53 random bits: ``(hash3(seed, stream, index) >> 11) · 2**-53``."""
    return (hash3(seed, stream, index) >> np.uint64(11)).astype(np.float64) * 2.0**-53


def random_array(dist: str, seed: int, scale: float, shape: tuple[int, ...], dtype) -> np.ndarray:
    """The contents of a ``random<dist, seed, scale>`` initialiser.

    * ``uniform``: ``scale · (2u − 1)``, in [−scale, scale); for integer dtypes the integers
      in [−scale, scale], equally likely.
    * ``normal``: ``scale · (u_1 + … + u_12 − 6)`` — the Irwin–Hall approximation of a
      standard normal (mean 0, variance 1, bounded by ±6), built from additions only so that
      it is bit-identical everywhere; rounded to the nearest integer for integer dtypes.

    Element ``i`` (C order) uses uniforms of streams ``12·i … 12·i + 11`` (normal) or ``i``."""
    dtype = np.dtype(dtype)
    n = int(np.prod(shape))
    index = np.arange(n, dtype=np.uint64)
    if dist == "uniform":
        u = uniform(seed, 0, index)
        if np.issubdtype(dtype, np.integer):
            k = int(scale)
            values = np.floor(u * (2 * k + 1)) - k
        else:
            values = scale * (2.0 * u - 1.0)
    elif dist == "normal":
        streams = index[:, None] * np.uint64(12) + np.arange(12, dtype=np.uint64)[None, :]
        u = uniform(seed, 1, streams)
        total = np.zeros(n)
        for k in range(12):  # fixed summation order: identical rounding everywhere
            total = total + u[:, k]
        values = scale * (total - 6.0)
        if np.issubdtype(dtype, np.integer):
            values = np.round(values)
    else:
        raise ValueError(f"unknown distribution '{dist}' (expected uniform or normal)")
    return values.astype(dtype).reshape(shape)

"""Calibration: activation statistics of an ``ann`` graph on sample data.

The statistics travel with the IR as discardable attributes (docs/ir.md), so a calibrated
graph can be printed, stored and normalised later without the data.
"""

from __future__ import annotations

import numpy as np

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.core import Graph, Op
from nmc.ir.types import TensorType
from nmc.passmanager import Pass, PassContext, register_pass

CALIB_KEYS = ("calib.max", "calib.p", "calib.percentile")


def activation_stats(values: np.ndarray, percentile: float) -> tuple[float, float]:
    """(max, p): the largest value, and the ``percentile`` of the positive values (0 when none).

    Only positive values count for ``p`` (as in Rueckauer et al. 2017 / snntoolbox): after a
    ReLU most activations are zero and would drag the percentile to zero."""
    flat = np.asarray(values, dtype=np.float64).reshape(-1)
    if flat.size == 0:
        return 0.0, 0.0
    positive = flat[flat > 0]
    p = float(np.percentile(positive, percentile)) if positive.size else 0.0
    return float(flat.max()), p


def calibration_batch(ctx: PassContext, graph: Graph, samples: int, pass_name: str) -> np.ndarray:
    """The first ``samples`` of ``ctx.calibration``, checked against the graph's one input."""
    if ctx.calibration is None:
        raise NmcError(f"{pass_name} needs calibration data, and none was given",
                       hint="pass --calib DATA.npz (or calibration=... in Python)")
    if len(graph.inputs) != 1:
        raise NmcError(f"{pass_name} supports graphs with one input, @{graph.name} has {len(graph.inputs)}")
    x = np.asarray(ctx.calibration)
    return x[:samples] if samples > 0 else x


def calibrate(graph: Graph, x: np.ndarray, percentile: float) -> int:
    """Run the ANN on ``x`` and attach ``calib.*`` to every op with a tensor result; returns
    how many ops were annotated."""
    n = 0
    for op, value in semantics.stream_ann(graph, [x]):  # one op's values at a time, not all at once
        if not isinstance(op.result.type, TensorType):
            continue
        hi, p = activation_stats(value, percentile)
        op.extra["calib.max"] = hi
        op.extra["calib.p"] = p
        op.extra["calib.percentile"] = float(percentile)
        n += 1
    return n


def is_calibrated(op: Op) -> bool:
    return all(k in op.extra for k in CALIB_KEYS)


@register_pass("calibrate")
class Calibrate(Pass):
    """Record activation statistics of an ``ann`` graph on ``ctx.calibration``.

    Requires: an ``ann`` graph with one input; ``ctx.calibration`` an array ``[N, *input]``.
    Ensures: every op with a tensor result carries ``calib.max`` (largest value),
    ``calib.p`` (the ``percentile`` of its positive values) and ``calib.percentile``,
    measured on the first ``samples`` samples (0: all).  Computation is unchanged."""

    samples: int = 512
    percentile: float = 99.9

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        if not 0.0 < self.percentile <= 100.0:
            raise NmcError(f"calibrate: percentile must lie in (0, 100], got {self.percentile}")
        x = calibration_batch(ctx, graph, self.samples, "calibrate")
        n = calibrate(graph, x, self.percentile)
        ctx.stat("ops-calibrated", n)
        ctx.stat("samples", len(x))
        return n > 0

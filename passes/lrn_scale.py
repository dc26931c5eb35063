"""``lrn-to-scale``: replace local response normalisation by one gain fitted on data — an
approximation, reported.

LRN (AlexNet, ZFNet, Inception v1) divides each activation by a power of the squares of its
neighbouring channels.  Rate-coded IF neurons compute weighted sums followed by ``max(0, ·)``;
they cannot divide by their neighbours, so ``convert-to-spiking`` refuses ``ann.lrn``.  This
pass is the explicit alternative: each ``ann.lrn`` becomes ``ann.mul`` by the one constant
``g`` that best maps its input ``x`` to its output ``y`` on the calibration data (least squares,
``g = Σ x·y / Σ x²``).  What that costs is measured, not assumed: every replaced op reports (a
remark, and ``lrn.gain``/``lrn.error`` on the new ``ann.mul``) the relative error
``‖y − g·x‖ / ‖y‖`` on those samples, and the pass reports the fraction of calibration samples
whose top class (arg-max of the first output) is the same before and after.

The light zoo's LRNs (``alpha = 1e-4``, ``bias = 1``) divide by nearly 1 unless activations are
in the hundreds, so the gain is close to 1; a network trained to rely on LRN's contrast can
lose accuracy, which the reported agreement shows.
"""

from __future__ import annotations

import numpy as np

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir import ann
from nmc.ir.core import Blob, Graph
from nmc.passes.calibrate import calibration_batch
from nmc.passmanager import Pass, PassContext, register_pass


def fitted_gain(x: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(g, relative error): the least-squares ``g`` with ``y ≈ g·x``, and ``‖y − g·x‖ / ‖y‖``
    (0 when ``y`` is all zero)."""
    x = np.asarray(x, np.float64).reshape(-1)
    y = np.asarray(y, np.float64).reshape(-1)
    xx = float(x @ x)
    g = float(x @ y) / xx if xx > 0 else 1.0
    norm = float(np.linalg.norm(y))
    return g, float(np.linalg.norm(y - g * x)) / norm if norm > 0 else 0.0


@register_pass("lrn-to-scale")
class LrnToScale(Pass):
    """Replace every ``ann.lrn`` by ``ann.mul`` by a fitted constant (module docstring).

    Requires: an ``ann`` graph with one input and ``ctx.calibration`` (the first ``samples``
    samples are used; 0: all).  Ensures: no ``ann.lrn`` is left; each became ``ann.mul(x,
    ann.constant g)`` carrying ``lrn.gain`` and ``lrn.error``; a remark per op and one with the
    top-1 agreement of the graph before and after on those samples.  A graph without LRN is
    unchanged (and needs no data)."""

    samples: int = 64

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        lrns = graph.walk("ann.lrn")
        if not lrns:
            return False
        x = calibration_batch(ctx, graph, self.samples, "lrn-to-scale")
        wanted = {id(op.x) for op in lrns} | {id(graph.outputs[0])}
        kept, fits = {}, {}
        for op, value in semantics.stream_ann(graph, [x]):
            if id(op.result) in wanted:
                kept[id(op.result)] = value
            if op.KIND == "ann.lrn":
                fits[op] = fitted_gain(kept[id(op.x)], value)
        out = kept[id(graph.outputs[0])]
        for op, (g, err) in fits.items():
            c = ann.Constant(value=Blob(np.array(g, dtype=op.result.type.np_dtype)), loc=op.loc)
            graph.insert_before(op, c)
            c.result.name = f"{op.result.name}.gain" if op.result.name else None
            mul = ann.Mul(a=op.x, b=c.result, loc=op.loc)
            mul.extra.update({"lrn.gain": g, "lrn.error": round(err, 6)})
            name = op.result.name
            graph.replace(op, mul)
            mul.result.name = name
            ctx.remark(f"%{name}: LRN replaced by × {g:.6g}; relative error {err:.3g} on {len(x)} calibration "
                       f"samples (an approximation; {op.loc})")
        after = semantics.run_ann(graph, [x]).outputs[0]
        if out.ndim >= 2 and out.shape[1] > 1:
            same = float(np.mean(np.argmax(out.reshape(len(x), -1), 1) == np.argmax(after.reshape(len(x), -1), 1)))
            ctx.remark(f"top-1 agreement with the LRN network on {len(x)} calibration samples: {same:.3f}")
            ctx.stat("agreement-permille", round(1000 * same))
        ctx.stat("lrn-replaced", len(lrns))
        if any(not np.isfinite(g) for g, _ in fits.values()):
            raise NmcError("lrn-to-scale: a fitted gain is not finite", lrns[0].loc)
        return True

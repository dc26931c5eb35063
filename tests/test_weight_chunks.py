"""Weights processed in chunks give the numbers of the whole-array computation: quantize
(passes/quantize.py: CHUNK) — integer weights, exponent, relative error, clipped count and the
largest step current — and normalize's weight scaling (passes/normalize.py: ROWS), for dense
and conv weights and chunk sizes that split rows."""

from __future__ import annotations

import numpy as np
import pytest

from nmc.ir.core import Blob
from nmc.ir.parser import parse_ir
from nmc.passes import normalize, quantize
from nmc.passmanager import PassContext

GRAPH = """graph @q {timesteps = 4}
%x = ann.input : tensor<3x6x6xf32>
%e = snn.encode(%x) : spikes<3x6x6>
%c = snn.project(%e) {kind = conv2d, pads = [1, 1, 1, 1], weight = splat<0.0> : tensor<5x3x3x3xf32>} : current<5x6x6>
%h = snn.population(%c) : spikes<5x6x6>
%d = snn.project(%h) {kind = dense, weight = splat<0.0> : tensor<7x180xf32>} : current<7>
%y = snn.population(%d) : spikes<7>
%o = snn.decode(%y) : tensor<7xf32>
ann.output(%o)
"""


@pytest.mark.parametrize("chunk", [1, 7, 100, 1 << 20])
def test_chunks_give_the_whole_array_numbers(monkeypatch, chunk):
    g = parse_ir(GRAPH)
    rng = np.random.default_rng(5)
    projections = []
    for p in g.walk("snn.project"):
        w = (rng.standard_normal(p.weight.shape) * 0.3).astype(np.float32)
        w.reshape(-1)[::11] *= 40  # some weights that clip at the chosen exponent
        projections.append(p.with_changes(weight=Blob(w, p.weight.name)))
    whole = [(quantize.quantize_projection(p, 900.0, 8, 3, PassContext()), quantize.max_step_current(p, 1.0),
              quantize._peak(p)) for p in projections]
    monkeypatch.setattr(quantize, "CHUNK", chunk)
    for p, ((new, err, clipped), current, peak) in zip(projections, whole):
        new2, err2, clipped2 = quantize.quantize_projection(p, 900.0, 8, 3, PassContext())
        assert np.array_equal(new2.weight.data, new.weight.data) and new2.weight.data.dtype == np.int8
        assert (new2.exponent, err2, clipped2) == (new.exponent, err, clipped) and clipped > 0
        assert quantize.max_step_current(p, 1.0) == current and quantize._peak(p) == peak
        w = p.weight.data.astype(np.float64) * 900.0  # the definition, on the whole array
        q = np.clip(np.round(w / 2**new.exponent), -128, 127)
        assert np.array_equal(q, new.weight.data)
        assert err == pytest.approx(np.linalg.norm(q * 2**new.exponent - w) / np.linalg.norm(w), rel=1e-12)


@pytest.mark.parametrize("rows", [1, 7, 100, 1 << 20])
@pytest.mark.parametrize("shape, factor", [((9, 30), np.linspace(0.5, 2.0, 30).reshape(1, -1)),
                                           ((6, 4, 3, 3), np.linspace(0.5, 2.0, 4).reshape(1, -1, 1, 1)),
                                           ((6, 4, 3, 3), 1.7)])
def test_normalize_scales_weights_by_rows(monkeypatch, rows, shape, factor):
    w = np.random.default_rng(6).standard_normal(shape).astype(np.float32)
    for lam in (0.37, np.linspace(0.2, 3.0, shape[0])):
        whole = (w.astype(np.float64) * factor / np.reshape(lam, (-1,) + (1,) * (w.ndim - 1))).astype(w.dtype)
        monkeypatch.setattr(normalize, "ROWS", rows)
        got = normalize._scaled(w, factor, lam)
        assert got.dtype == w.dtype and np.array_equal(got, whole)

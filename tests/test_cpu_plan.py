"""Planning the CPU lowering (targets/cpu/plan.py) and its tables (targets/cpu/tables.py),
without LLVM: which kernel, schedule, accumulator and lane types small graphs get.

The bit-identity of what is emitted from these plans is tested in tests/test_cpu_runtime.py;
this module imports neither llvmlite nor the emitter, and every plan is made for explicit
CPU features, so that it runs the same on any host.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from nmc.ir import ann, snn
from nmc.ir.ann import pooled_size
from nmc.ir.core import Blob, Graph
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.targets.cpu import plan, tables
from nmc.targets.cpu.plan import Network

AVX2 = frozenset({"avx2"})
NONE = frozenset()


def _chain(encoding: str, layers, rate: float | None = None, enc_rate: float | None = None,
           bits: int = 24, recurrent: bool = False) -> Graph:
    """encoder (``layers[0]`` values) → dense → population → dense → …, weights given per
    layer as arrays ``[out, in]``; ``rate``: the hidden populations' ``calib.rate``;
    ``recurrent``: the first population also feeds itself."""
    g = Graph("chain")
    x = g.add(ann.Input(declared_type=TensorType((layers[0].shape[1],))), "x")
    src = g.add(snn.Encode(x=x, encoding=encoding), "s")
    if enc_rate is not None:
        src.owner.extra["calib.rate"] = enc_rate
    first = None
    for i, w in enumerate(layers):
        c = g.add(snn.Project(src=src, kind="dense", weight=Blob(w)))
        pop = snn.Population(currents=[c], declared_type=SpikeType((w.shape[0],)), bits=bits, threshold=50)
        g.add(pop, f"h{i}")
        if rate is not None:
            pop.extra["calib.rate"] = rate
        first = first or pop
        src = pop.result
    if recurrent:
        n = first.result.type.size
        r = g.add(snn.Project(src=first.result, kind="dense", weight=Blob(np.ones((n, n), np.int8))))
        first.currents.append(r)
    g.add(ann.Output(values=[g.add(snn.Decode(x=src))]))
    verify(g)
    return g


def _int8(rng, out: int, inp: int, lo: int = -20, hi: int = 30) -> np.ndarray:
    return rng.integers(lo, hi, (out, inp)).astype(np.int8)


def _conv(weight: np.ndarray, encoding: str = "rate", hw=(8, 8), **attrs) -> Graph:
    """encoder ``[C, H, W]`` → conv2d (``weight``, ``attrs``) → population (bits 24)."""
    g = Graph("conv")
    C = weight.shape[1] * attrs.get("groups", 1)
    x = g.add(ann.Input(declared_type=TensorType((C, *hw))), "x")
    s = g.add(snn.Encode(x=x, encoding=encoding), "s")
    c = g.add(snn.Project(src=s, kind="conv2d", weight=Blob(weight), **attrs))
    oh, ow = plan.conv_out(c.owner)
    pop = snn.Population(currents=[c], declared_type=SpikeType((weight.shape[0], oh, ow)), bits=24, threshold=9)
    g.add(pop, "h")
    g.add(ann.Output(values=[g.add(snn.Decode(x=pop.result))]))
    verify(g)
    return g


def _pooled(kernel, strides, pads=(0, 0, 0, 0), integer: bool = True) -> Graph:
    """encoder → one_to_one → population ``[2, 12, 12]`` → pool → population."""
    g = Graph("pool")
    x = g.add(ann.Input(declared_type=TensorType((2, 12, 12))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    c = g.add(snn.Project(src=s, kind="one_to_one", weight=3 if integer else 0.5))
    bits = {"bits": 24} if integer else {}
    h = snn.Population(currents=[c], declared_type=SpikeType((2, 12, 12)), threshold=2 if integer else 1.0, **bits)
    g.add(h, "h")
    p = g.add(snn.Project(src=h.result, kind="pool", kernel=kernel, strides=strides, pads=pads,
                          weight=5 if integer else 0.25))
    oh, ow = plan.pool_out(p.owner)
    h2 = snn.Population(currents=[p], declared_type=SpikeType((2, oh, ow)), threshold=7 if integer else 1.0, **bits)
    g.add(h2, "h2")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h2.result))]))
    verify(g)
    return g


def test_planning_imports_no_llvm():
    """plan and tables are plain numpy: importing them, and planning with given features,
    loads no llvmlite (the emitter and the JIT do)."""
    code = textwrap.dedent("""
        import sys
        import numpy as np
        from nmc.ir import ann, snn
        from nmc.ir.core import Blob, Graph
        from nmc.ir.types import SpikeType, TensorType
        from nmc.targets.cpu import plan, tables
        g = Graph("g")
        x = g.add(ann.Input(declared_type=TensorType((40,))), "x")
        s = g.add(snn.Encode(x=x, encoding="current"), "s")
        c = g.add(snn.Project(src=s, kind="dense", weight=Blob(np.ones((8, 40), np.int8))))
        h = g.add(snn.Population(currents=[c], declared_type=SpikeType((8,)), bits=16, threshold=3), "h")
        g.add(ann.Output(values=[g.add(snn.Decode(x=h))]))
        lay = plan.plan(plan.Network.of(g), features={"avx2"})
        assert lay.dense and lay.schedule == "step", lay
        tables.window_table((5, 5), (3, 3), (1, 1), (1, 1, 1, 1), (1, 1), (5, 5))
        assert "llvmlite" not in sys.modules, sorted(m for m in sys.modules if "llvm" in m)
    """)
    subprocess.run([sys.executable, "-c", code], check=True)


def test_dense_kernel_follows_rate_weights_and_features():
    """The dense kernel from DENSE_RATE on with int8 weights on AVX2; else only at rate 1
    (current encoders); never without a known rate, for float weights, or when forced off."""
    rng = np.random.default_rng(1)
    g = _chain("rate", [_int8(rng, 40, 64), _int8(rng, 10, 40)], rate=0.5)
    first, second = g.walk("snn.project")
    net = Network.of(g)
    assert plan.plan(net, features=AVX2).dense == {second}  # the encoder has no calibration
    assert plan.plan(net, features=NONE).dense == set()  # generic kernel: rate 1 only
    assert plan.plan(net, "event", features=AVX2).dense == set()
    assert plan.plan(net, "dense", features=NONE).dense == {first, second}
    assert plan.dense_kernel(second, features=AVX2) and not plan.dense_kernel(second, features=NONE)
    for pop in g.walk("snn.population"):
        pop.extra["calib.rate"] = plan.DENSE_RATE - 0.01
    assert plan.plan(Network.of(g), features=AVX2).dense == set()
    # the byte kernel needs int8 weights and at least 32 sources
    wide = _chain("rate", [rng.integers(-300, 300, (40, 64)).astype(np.int16), _int8(rng, 10, 40)], rate=0.5)
    assert not plan.byte_kernel(wide.walk("snn.project")[0], AVX2)
    assert not plan.byte_kernel(_chain("rate", [_int8(rng, 8, 16)]).walk("snn.project")[0], AVX2)
    # current encoders: rate 1, dense on any host; float weights stay event driven
    cur = _chain("current", [rng.integers(-300, 300, (40, 64)).astype(np.int16)])
    assert len(plan.plan(Network.of(cur), features=NONE).dense) == 1
    flt = _chain("current", [rng.random((40, 64)).astype(np.float32)], bits=0)
    assert plan.plan(Network.of(flt), features=AVX2).dense == set()


def test_schedule_follows_recurrence_and_the_tiled_share():
    rng = np.random.default_rng(2)
    layers = [_int8(rng, 50, 70), _int8(rng, 30, 50), _int8(rng, 5, 30)]
    g = _chain("rate", layers)
    net = Network.of(g)
    assert plan.feed_forward_order(net) == g.walk("snn.population")
    lay = plan.plan(net, features=NONE)
    assert lay.schedule == "layer" and set(lay.tiled) == set(g.walk("snn.population"))
    assert lay.whole_run == set(g.walk("snn.population")[:2]) and lay.listed == set(g.walk("snn.encode"))
    assert not plan.needs_step_rerun(lay)  # rate: every event is 1
    spikes = plan.plan(Network.of(_chain("spikes", layers)), features=NONE)
    assert spikes.schedule == "layer" and plan.needs_step_rerun(spikes)
    # the first layer (70·50 of 5,150 synapses) on the dense kernel: too little left to tile
    dense_first = plan.plan(Network.of(_chain("current", layers)), features=NONE)
    assert dense_first.schedule == "step" and not dense_first.tiled
    rec = _chain("rate", layers, recurrent=True)
    assert plan.feed_forward_order(Network.of(rec)) is None
    assert plan.plan(Network.of(rec), features=NONE).schedule == "step"
    with pytest.raises(ValueError, match="recurrence"):
        plan.plan(Network.of(rec), schedule="layer", features=NONE)
    # scratch areas sized by the run grow with it; the fixed ones do not
    assert lay.scratch_size(10) - lay.scratch_size(0) == 10 * lay.run_bytes > 0
    assert plan.plan(net, schedule="step", features=NONE).run_bytes == 0
    assert [plan.tile_columns(n) for n in (3, 8, 10, 64, 65, 500)] == [8, 8, 16, 64, 128, 512]


@pytest.mark.parametrize("w, encoding, private, narrow, halo", [
    (1, "rate", np.int16, True, True),  # Σ|w| = 18 per output: i16, 16 channels fill a vector
    (2000, "rate", np.int32, True, True),  # 18 · 2000 >= 2**15: i32
    (1, "spikes", np.int64, False, False),  # counts: unbounded, no i32 population accumulator
])
def test_conv_accumulators_and_halo(w, encoding, private, narrow, halo):
    weight = np.full((16, 2, 3, 3), w, np.int16)
    g = _conv(weight, encoding)
    (c,) = g.walk("snn.project")
    (pop,) = g.walk("snn.population")
    lay = plan.plan(Network.of(g), features=NONE)
    assert plan.unit_bound(c) == 18 * w
    assert lay.private[c] == np.dtype(private)
    assert (pop in lay.narrow) == narrow and pop in lay.overwritten  # the conv's flush writes it all
    assert (pop in lay.short) == (private == np.int16)  # i16 sums flushed as they are
    got = plan.conv_halo(c, lay.private[c])
    assert (got is not None) == halo
    if halo:
        assert got == (2, 2, 2 + 8, 2 + 8)  # (kh-1)·dy each side of the 6×6 outputs
        assert plan.conv_weights_dtype(c, lay.private[c]) == np.dtype(private)
    # stride 2, or 8 channels per group in i16 (half a vector): no halo
    assert plan.conv_halo(g.walk("snn.project")[0], np.dtype(np.int16)) is not None
    strided = _conv(weight, strides=(2, 2))
    assert plan.conv_halo(strided.walk("snn.project")[0], np.dtype(np.int16)) is None
    grouped = _conv(np.ones((16, 1, 3, 3), np.int8), groups=2)
    assert plan.conv_halo(grouped.walk("snn.project")[0], np.dtype(np.int16)) is None
    assert plan.conv_halo(grouped.walk("snn.project")[0], np.dtype(np.int32)) is not None


def test_conv_weights_widened_only_while_small():
    small = _conv(np.ones((16, 2, 3, 3), np.int8), strides=(2, 2)).walk("snn.project")[0]
    big = _conv(np.ones((128, 16, 3, 3), np.int8), strides=(2, 2)).walk("snn.project")[0]  # 73 KB as i32
    assert plan.conv_weights_dtype(small, np.dtype(np.int32)) == np.dtype(np.int32)
    assert plan.conv_weights_dtype(big, np.dtype(np.int32)) is None
    assert plan.conv_weights_dtype(small, np.dtype(np.int64)) is None


@pytest.mark.parametrize("bits, threshold, lanes, narrow", [
    (24, 100, True, True), (30, 2**29 - 1, True, True), (31, 100, False, False), (32, 100, False, False),
    (16, -2**15, True, True)])
def test_neuron_lanes_and_accumulator_width(bits, threshold, lanes, narrow):
    rng = np.random.default_rng(3)
    g = _chain("rate", [_int8(rng, 12, 20)], bits=bits)
    (pop,) = g.walk("snn.population")
    pop.threshold = threshold
    assert plan.lanes32(pop) == lanes
    assert plan.narrow_accumulator(pop) == narrow
    assert plan.state_dtype(pop) == np.dtype(np.int32 if bits <= 31 else np.int64)
    # events that can sum past i32 need an i64 accumulator
    huge = _chain("rate", [np.full((4, 200), 2**24, np.int32)], bits=24)
    assert not plan.narrow_accumulator(huge.walk("snn.population")[0])
    assert plan.state_dtype(_chain("rate", [rng.random((4, 20))], bits=0).walk("snn.population")[0]) == np.float64


@pytest.mark.parametrize("kernel, strides, pads, integer, rows", [
    ((2, 2), (2, 2), (0, 0, 0, 0), True, True),
    ((2, 1), (3, 2), (0, 0, 0, 0), True, True),  # windows narrower than their stride
    ((3, 3), (2, 2), (0, 0, 0, 0), True, False),  # overlapping windows
    ((2, 2), (2, 2), (1, 0, 1, 0), True, False),  # pads
    ((2, 2), (2, 2), (0, 0, 0, 0), False, False),  # float
])
def test_pools_from_byte_vectors(kernel, strides, pads, integer, rows):
    g = _pooled(kernel, strides, pads, integer)
    p = g.walk("snn.project")[1]
    h = g.walk("snn.population")[0]
    lay = plan.plan(Network.of(g), features=NONE)
    assert plan.dense_pool(p) == rows and (p in lay.dense) == rows and (h in lay.spike_rows) == rows
    assert not plan.dense_pool(p, "event")
    # a source read only from its byte vectors keeps no spike lists; nor does a population
    # that feeds nothing (h2)
    h2 = g.walk("snn.population")[1]
    assert lay.unlisted == ({h, h2} if rows else {h2})
    assert (("ring_idx", h) in lay.scratch) != rows and ("ring_idx", h2) not in lay.scratch
    assert lay.short == set()  # a pool may add into an accumulator: not i16


def test_window_table_is_the_window_cells_grouped_by_source():
    """CSR by source position, pairs by kernel cell: the same cells as nmc.windows.window_cells
    for random geometries (strides, dilations, uneven pads, scales), each covering pair once."""
    from nmc.windows import window_cells

    rng = np.random.default_rng(4)
    for _ in range(300):
        H, W = (int(v) for v in rng.integers(1, 11, 2))
        k, s, d = (tuple(int(v) for v in rng.integers(1, 4, 2)) for _ in range(3))
        pads = tuple(int(v) for v in rng.integers(0, 3, 4))
        out = tuple(pooled_size((H, W)[i], k[i], s[i], pads[i], pads[2 + i], d[i], False) for i in range(2))
        if min(out) <= 0:
            continue
        scale = tuple(int(v) for v in rng.integers(1, 20, 2))
        starts, pairs = tables.window_table((H, W), k, s, pads, d, out, scale)
        kc, src, oc = window_cells((H, W), k, s, pads, d, out)
        assert starts.dtype == pairs.dtype == np.int32 and starts[-1] == src.size
        for pos in range(H * W):
            want = sorted((int(a) * scale[0], int(b) * scale[1]) for a, b in zip(kc[src == pos], oc[src == pos]))
            assert [tuple(p) for p in pairs[starts[pos]:starts[pos + 1]]] == want


def test_single_window_table_and_spike_lut():
    starts, pairs = tables.window_table((4, 4), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (2, 2), (1, 1))
    single = tables.single_window_table(starts, pairs)
    assert single.shape == (16, 2) and (single >= 0).all()
    starts, pairs = tables.window_table((5, 5), (2, 2), (2, 2), (0, 0, 0, 0), (1, 1), (2, 2), (1, 1))
    single = tables.single_window_table(starts, pairs)
    assert (single[4::5] == -1).all() and (single[20:] == -1).all()  # the last row and column: no window
    for m in range(256):
        bits = [i for i in range(8) if m >> i & 1]
        assert list(tables.SPIKE_LUT[m][:len(bits)]) == bits


@pytest.mark.parametrize("weights, exponent, dtype", [
    (np.array([3, -4, 100], np.int16), 0, np.int8), (np.array([3, -4, 100], np.int16), 1, np.int16),
    (np.array([2**20], np.int32), 12, np.int64), (np.array([0.5, 0.25], np.float64), 0, np.float32),
    (np.array([0.1], np.float64), 0, np.float64)])
def test_weights_as_narrow_as_they_stay_exact(weights, exponent, dtype):
    integer = weights.dtype.kind == "i"
    g = _chain("rate", [weights.reshape(1, -1)], bits=24 if integer else 0)
    p = g.walk("snn.project")[0]
    p.exponent = exponent
    table = tables.weight_table(p, weights)
    assert table.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(table.astype(np.float64), weights.astype(np.float64) * 2.0 ** exponent)

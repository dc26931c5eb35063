"""The direct convolution of the CPU runtime (targets/cpu/kernels/conv_direct.py): stride-1
int8 conv2d projections of 0/1 events summed with ``vpdpbusd`` on AVX-512 VNNI hosts, chosen
per step from the source's spike count (plan.direct_conv).  Every run is compared bit for
bit with the reference (nmc.semantics): outputs, voltages, recorded spikes, spike and
synaptic-operation counts."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nmc import semantics
from nmc.ir import ann, snn
from nmc.ir.core import Blob, Graph
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.targets import cpu
from nmc.targets.cpu import emit, jit, plan
from nmc.targets.cpu.plan import Network

VNNI = {"avx512vnni", "avx512bw"} <= jit.host_features()
needs_vnni = pytest.mark.skipif(not VNNI, reason="the direct convolution needs an AVX-512 VNNI host")


def _out(size: int, k: int, dil: int, lo: int, hi: int) -> int:
    return size + lo + hi - dil * (k - 1)


def conv_net(c_in: int = 3, out: int = 16, groups: int = 1, kernel=(3, 3), pads=(0, 0, 0, 0), dil=(1, 1),
             wmax: int = 40, bits: int = 24, second: bool = False, size=(9, 10), seed: int = 0, delay: int = 1,
             exponent: int = 0, third: bool = False) -> Graph:
    """A rate-encoded ``[c_in, H, W]`` input → conv2d (from the encoder) → population ``h1``
    ``[16, …]`` → the conv under test (from ``h1``: ``out`` channels, ``groups``, ``kernel``,
    ``pads``, ``dil``, int8 weights in ``[-wmax, wmax]``, all of channel 0 at 127 when ``wmax`` is)
    → population ``h2`` of ``bits`` bits
    (``second``: the conv is ``h2``'s second current, after a 1×1 pool of ``h1``; ``delay``
    and ``exponent``: the conv's; ``third``: then a conv of the same shape from ``h2`` with other
    weights → population ``h3``, the output)."""
    rng = np.random.default_rng(seed)
    g = Graph("direct")
    H, W = size
    x = g.add(ann.Input(declared_type=TensorType((c_in, H, W))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    c1 = g.add(snn.Project(src=s, kind="conv2d", pads=(1, 1, 1, 1),
                           weight=Blob(rng.integers(-20, 40, (16, c_in, 3, 3)).astype(np.int8))))
    h1 = snn.Population(currents=[c1], declared_type=SpikeType((16, H, W)), bits=24, threshold=60)
    g.add(h1, "h1")
    kh, kw = kernel
    oh, ow = _out(H, kh, dil[0], pads[0], pads[2]), _out(W, kw, dil[1], pads[1], pads[3])
    w = rng.integers(-wmax, wmax + 1, (out, 16 // groups, kh, kw)).astype(np.int8)
    if wmax == 127:  # one channel's step sums reach beyond i16: an i32 event accumulator
        w[0] = 127
    c2 = g.add(snn.Project(src=h1.result, kind="conv2d", weight=Blob(w), groups=groups, pads=pads, dilations=dil,
                           delay=delay, exponent=exponent))
    currents = [c2]
    if second:  # the conv is not the population's first current: its sums are added
        side = g.add(snn.Project(src=h1.result, kind="pool", kernel=(1, 1), strides=(1, 1), weight=3))
        assert (oh, ow) == (H, W)
        currents = [side, c2] if out == 16 else [c2]
    h2 = snn.Population(currents=currents, declared_type=SpikeType((out, oh, ow)), bits=bits,
                        threshold=(wmax << exponent) * min(6, 16 // groups * kh * kw // 3), dv=3000)
    g.add(h2, "h2")
    if third:
        c3 = g.add(snn.Project(src=h2.result, kind="conv2d", weight=Blob(rng.integers(-wmax, wmax + 1, w.shape)
                                                                          .astype(np.int8)), pads=pads))
        h2 = snn.Population(currents=[c3], declared_type=SpikeType((out, oh, ow)), bits=bits,
                            threshold=h2.threshold, dv=3000)
        g.add(h2, "h3")
    g.add(ann.Output(values=[g.add(snn.Decode(x=h2.result))]))
    verify(g)
    return g


def run_both(g: Graph, kernels: str = "auto", steps: int = 10, batch: int = 3, seed: int = 1, schedule="auto"):
    """Run ``g`` on the CPU runtime and the reference; assert that they agree exactly."""
    x = np.random.default_rng(seed).random((batch, *g.inputs[0].type.shape)).astype(np.float32)
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=steps, record=pops)
    got = cpu.prepare(g, cache=False, kernels=kernels, schedule=schedule)([x], timesteps=steps, record="all")
    for a, b in zip(got.outputs, ref.outputs):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(got.voltages, ref.voltages):
        np.testing.assert_array_equal(a, b)
    for pop in pops:
        np.testing.assert_array_equal(got.recorded[pop.result.name], ref.spikes[pop])
    assert got.spikes == ref.spike_count and got.synaptic_ops == ref.synaptic_ops
    return ref


def _conv(g: Graph, k: int):
    return [op for op in g.ops if op.KIND == "snn.project" and op.kind == "conv2d"][k]


@needs_vnni
@pytest.mark.parametrize("case", [
    dict(),                                                              # 3 → 16 channels, 3×3, 7×8 outputs
    pytest.param(dict(pads=(1, 1, 1, 1), out=32), marks=pytest.mark.slow),  # two 16-channel blocks together
    pytest.param(dict(pads=(2, 0, 1, 3), dil=(2, 1), kernel=(3, 2)), marks=pytest.mark.slow),  # uneven pads, dilation
    dict(groups=2, out=32, pads=(1, 1, 1, 1)),                           # 8 input channels per group (2 quads each)
    pytest.param(dict(groups=4, out=64, kernel=(1, 1)), marks=pytest.mark.slow),  # 4 channels per group, 1×1
    pytest.param(dict(out=48, kernel=(5, 5), pads=(2, 2, 2, 2)), marks=pytest.mark.slow),  # three blocks, one at a time
    dict(pads=(1, 1, 1, 1), second=True),                                # its sums added to a pool's
    dict(pads=(1, 1, 1, 1), delay=3, exponent=2, wmax=20),                # a delay, weights · 4 (int8 still)
    pytest.param(dict(pads=(1, 1, 1, 1), bits=31), marks=pytest.mark.slow),  # an i64 population accumulator
    dict(wmax=127, out=32, kernel=(5, 5), size=(7, 12)),                 # sums beyond i16 (16·25·127)
])
def test_direct_convolution_matches_the_reference(case):
    g = conv_net(**case)
    conv = _conv(g, 1)
    lay = plan.plan(Network.of(g), kernels="dense")
    assert lay.direct.get(conv) == 0  # forced: every step
    assert "llvm.x86.avx512.vpdpbusd.512" in str(emit.lower(Network.of(g), kernels="dense")[0])
    ref = run_both(g, "dense")
    h2 = g.walk("snn.population")[1]
    assert ref.spikes[h2].any() and not ref.spikes[h2].all()  # not vacuous


@needs_vnni
@pytest.mark.parametrize("wmax, private", [(40, np.int16), pytest.param(127, np.int32, marks=pytest.mark.slow)])
def test_the_kernel_is_chosen_per_step_from_the_spike_count(monkeypatch, wmax, private):
    """Under ``auto`` the plan gives a population-fed conv the least spike count from which it
    runs directly; steps below it run the event kernel (its private accumulator i16 or i32, by
    plan.unit_bound).  With the threshold at the median count of the source's steps both
    kernels run in one sample; at 1 every step with a spike runs directly; beyond every count,
    none does."""
    g = conv_net(c_in=2, out=32, wmax=wmax, kernel=(5, 5) if wmax > 100 else (3, 3), pads=(2, 2, 2, 2),
                 size=(8, 8), delay=2)
    conv = _conv(g, 1)
    net = Network.of(g)
    assert plan.plan(net).private[conv] == np.dtype(private)
    ref = run_both(g, "event")
    trains = ref.spikes[g.walk("snn.population")[0]]
    counts = trains.reshape(*trains.shape[:2], -1).sum(axis=2)  # [batch, steps]
    assert counts.min() < np.median(counts) < counts.max()
    least, cost = plan.plan(net).direct[conv], plan.DIRECT_COST  # the crossover scales with the cost
    for target in (float(np.median(counts)), 1.0, float(counts.max() + 1)):
        monkeypatch.setattr(plan, "DIRECT_COST", cost * target / least)
        got = plan.plan(net).direct[conv]
        assert abs(got - target) <= 1 + target * 0.01, (got, target)
        run_both(g, "auto")


@pytest.mark.slow
@needs_vnni
def test_layer_schedule_and_encoder_sources():
    """A conv fed by a rate encoder runs directly only when forced or when the encoder's
    calibrated rate reaches the crossover (its events are not counted per step); both
    schedules agree with the reference."""
    g = conv_net(pads=(1, 1, 1, 1))
    g.walk("snn.encode")[0].extra["calib.rate"] = 1.0
    assert plan.plan(Network.of(g)).direct.get(_conv(g, 0)) == 0
    for schedule in ("step", "layer"):
        run_both(g, "dense", schedule=schedule)
        run_both(g, "auto", schedule=schedule)


def test_only_integer_stride_1_int8_convs_of_spikes_run_directly():
    """plan.direct_conv refuses what the kernel cannot sum exactly or fast: no VNNI, output
    channels per group not a multiple of 16, stride 2, int16 weights, spike-count sources,
    float graphs; and ``kernels="event"``.  Under ``auto`` an encoder's calibrated rate decides
    once (none: events), a population's spike count at each step."""
    vnni = frozenset({"avx2", "avx512bw", "avx512vnni"})

    def choice(g, k=1, features=vnni, kernels="dense"):
        return plan.plan(Network.of(g), kernels=kernels, features=features).direct.get(_conv(g, k))

    g = conv_net()
    assert choice(g) == 0 and choice(g, kernels="event") is None
    assert choice(g, 0, kernels="auto") is None  # an encoder without a calibrated rate: events
    encoder = g.walk("snn.encode")[0]
    encoder.extra["calib.rate"] = 1.0
    assert choice(g, 0, kernels="auto") == 0
    encoder.extra["calib.rate"] = 0.0
    assert choice(g, 0, kernels="auto") is None
    assert choice(g, kernels="auto") >= 1  # a population: its spike count decides at each step
    assert choice(g, features=frozenset({"avx2", "avx512bw"})) is None
    assert choice(conv_net(out=8)) is None
    strided = conv_net()
    _conv(strided, 1).strides = (2, 2)
    assert choice(strided) is None
    wide = conv_net()
    wide_conv = _conv(wide, 1)
    wide_conv.weight = Blob(wide_conv.weight.data.astype(np.int16) * 200)
    assert choice(wide) is None
    counts = conv_net()
    counts.walk("snn.encode")[0].encoding = "spikes"
    assert choice(counts, 0) is None
    fl = _conv(conv_net(), 1)
    fl.weight = Blob(fl.weight.data.astype(np.float32))
    assert plan.direct_conv(fl, plan.Layout(features=vnni), "dense") is None


@needs_vnni
def test_convolutions_of_one_shape_share_one_direct_function():
    """The direct sums and the flush depend only on shapes and types (conv_direct.direct_sums,
    common.flush; emit.Lowering.shared_function): two 16 → 16 convs of one signature,
    different weights, call one direct and one flush function; the 3 → 16 conv, of its own
    signature, keeps both inline (conv2d.repeated).  The run is bit-identical to the reference."""
    g = conv_net(pads=(1, 1, 1, 1), size=(8, 8), third=True)
    text = str(emit.lower(Network.of(g), kernels="dense")[0])
    defined = re.findall(r'^define internal void @"([a-z_]+_\d+)"', text, re.M)
    called = re.findall(r'call void @"([a-z_]+_\d+)"', text)
    name = plan.FUNCTION_NAME
    assert [f for f in defined if "_step_" not in f] == [f"{name}_direct_0", f"{name}_flush_0"]
    assert [f for f in called if "_step_" not in f] == [f"{name}_direct_0", f"{name}_flush_0"] * 2
    first = re.search(rf'^define internal void @"{name}_step_0".*?^}}', text, re.M | re.S).group(0)
    assert "vpdpbusd" in first  # the first conv's sums, inline
    ref = run_both(g, "dense")
    h3 = g.walk("snn.population")[2]
    assert ref.spikes[h3].any() and not ref.spikes[h3].all()  # not vacuous


@needs_vnni
def test_a_crossover_no_step_reaches_emits_only_the_event_kernel(monkeypatch):
    """A population-fed conv gets the direct kernel (chosen per step) unless the crossover is
    above the population's size or its calibrated rate puts the mean count RATE_MARGIN times
    below it: then only the event kernel is emitted.  Each choice runs bit-identical to the
    reference."""
    g = conv_net(c_in=2, out=32, pads=(1, 1, 1, 1), size=(8, 8))
    conv, h1 = _conv(g, 1), g.walk("snn.population")[0]
    least = plan.plan(Network.of(g)).direct[conv]
    size = h1.result.type.size
    assert 1 <= least <= size

    def emitted():
        return "llvm.x86.avx512.vpdpbusd.512" in str(emit.lower(Network.of(g))[0])

    assert emitted()
    h1.extra["calib.rate"] = least / size / plan.RATE_MARGIN * 1.01  # the mean just above the margin
    assert plan.plan(Network.of(g)).direct[conv] == least and emitted()
    h1.extra["calib.rate"] = least / size / plan.RATE_MARGIN * 0.99
    assert conv not in plan.plan(Network.of(g)).direct and not emitted()
    run_both(g, "auto")
    del h1.extra["calib.rate"]
    monkeypatch.setattr(plan, "DIRECT_COST", plan.DIRECT_COST * 2 * size / least)  # beyond every count
    assert conv not in plan.plan(Network.of(g)).direct and not emitted()
    ref = run_both(g, "auto")
    assert ref.spikes[g.walk("snn.population")[1]].any()  # not vacuous

"""Sparse networks split into parts (:func:`nmc.targets.cpu.plan.split_parts`) and the sparse
kernel's table layouts (split rows, fixed rows with an overflow table, packed words and
side-by-side records) against the reference semantics.

A split network runs one sample on several threads, each taking its parts of every
population and waiting for the others' previous step before it reads their spikes; samples
that no threads share run the unsplit version (a thread alone, or whole samples per thread),
or without it every part in turn.  Random
recurrent graphs of sparse projections (delays 1–3, every encoding, integer and float) must
give the reference's outputs, voltages, spike trains and counts bit for bit in each of these
ways.  The planning and table functions are checked without LLVM.
"""

from __future__ import annotations

from unittest import mock

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmc import semantics
from nmc.ir import ann, snn
from nmc.ir.core import Blob, Graph
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.targets import cpu
from nmc.targets.cpu import plan, tables
from nmc.targets.cpu.execute import LockstepChoice
from nmc.targets.cpu.kernels.sparse import owned
from tests.test_cpu_runtime import PROPERTY, _agree, _Kind


def _sparse(draw, kind_of: _Kind, src, size: int, fan: int):
    n = src.type.size
    counts = draw(st.lists(st.integers(0, fan), min_size=n, max_size=n))
    if draw(st.booleans()):  # one long row: an overflow when the rows are many
        counts[0] += 9
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int32)
    nnz = int(indptr[-1])
    indices = np.asarray(draw(st.lists(st.integers(0, size - 1), min_size=nnz, max_size=nnz)), np.int32)
    return snn.Project(src=src, kind="sparse", weight=kind_of.weights(draw, (nnz,)), indptr=Blob(indptr),
                       indices=Blob(indices), shape=(size,), delay=draw(st.integers(1, 3)),
                       exponent=draw(st.sampled_from([0, 0, 1, 2])))


@st.composite
def sparse_networks(draw, integer: bool) -> Graph:
    """input → encode → 1–2 populations of 1–40 neurons, every current a sparse projection
    (from the encoder, an earlier population, or recurrent), rows of 0–3, 0–12 or 0–40
    synapses, sometimes one row 9 longer (fixed rows with and without overflow, and plain
    CSR rows, all occur) → decode → output."""
    kind_of = _Kind(draw, integer)
    g = Graph("sparse")
    n_in = draw(st.integers(1, 12))
    x = g.add(ann.Input(declared_type=TensorType((n_in,))), "x")
    enc = g.add(snn.Encode(x=x, encoding=draw(st.sampled_from(snn.ENCODINGS)),
                           seed=draw(st.integers(0, 2**31 - 1))), "s")
    sources, pops = [enc], []
    for layer in range(draw(st.integers(1, 2))):
        size = draw(st.integers(1, 40))
        currents = [g.add(_sparse(draw, kind_of, draw(st.sampled_from(sources)), size,
                                  draw(st.sampled_from([3, 12, 40]))))]
        params = {name: kind_of.param(draw, name, (size,)) for name in snn.Population.PARAMS}
        pop = snn.Population(currents=currents, declared_type=SpikeType((size,)),
                             reset=draw(st.sampled_from(snn.RESETS)), bits=kind_of.bits,
                             **{k: v for k, v in params.items() if v is not None})
        g.add(pop, f"h{layer}")
        pops.append(pop)
        sources.append(pop.result)
    for _ in range(draw(st.integers(1, 2))):  # recurrent (or backward) projections
        i = draw(st.integers(0, len(pops) - 1))
        target = pops[i]
        src = pops[draw(st.integers(i, len(pops) - 1))].result
        target.currents.append(g.add(_sparse(draw, kind_of, src, target.result.type.size,
                                             draw(st.sampled_from([3, 12, 40])))))
    g.add(ann.Output(values=[g.add(snn.Decode(x=pops[-1].result, mode=draw(st.sampled_from(["count", "membrane"]))))]))
    verify(g)
    return g


def _inputs(graph: Graph, timesteps: int, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    (x,) = graph.inputs
    if any(u.KIND == "snn.encode" and u.encoding == "spikes" for u in graph.users(x)):
        return [rng.integers(0, 3, size=(batch, timesteps, *x.type.shape)).astype(np.float32)]
    return [(rng.integers(0, 17, size=(batch, *x.type.shape)) / 16).astype(np.float32)]


def _check_split(graph: Graph, timesteps: int, exact: bool):
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
        run = cpu.prepare(graph, cache=False)
    assert run.layout.parts, "the graph was not split"
    pops = graph.walk("snn.population")
    for batch in (1, 3):
        inputs = _inputs(graph, timesteps, batch, seed=batch)
        ref = semantics.run_snn(graph, inputs, timesteps=timesteps, record=pops)
        for threads in (1, 2):  # the unsplit version; the parts of one sample on two threads (batch 1)
            _agree(run(inputs, timesteps=timesteps, record="all", threads=threads), ref, pops, exact)
        with mock.patch.object(run, "_unsplit_version", None):  # one thread, every part in turn
            _agree(run(inputs, timesteps=timesteps, record="all", threads=1), ref, pops, exact)


FEW = settings(PROPERTY, max_examples=8)


@pytest.mark.slow
@PROPERTY
@given(sparse_networks(integer=True), st.integers(1, 7))
def test_split_integer_networks_are_bit_identical_to_the_reference(graph, timesteps):
    _check_split(graph, timesteps, exact=True)


@FEW
@given(sparse_networks(integer=True), st.integers(1, 7))
def test_a_few_split_integer_networks_are_bit_identical_to_the_reference(graph, timesteps):
    _check_split(graph, timesteps, exact=True)


@pytest.mark.slow
@PROPERTY
@given(sparse_networks(integer=False), st.integers(1, 5))
def test_split_float_networks_agree_with_the_reference(graph, timesteps):
    _check_split(graph, timesteps, exact=False)


@FEW
@given(sparse_networks(integer=True), st.integers(1, 5))
def test_unsplit_sparse_networks_with_fixed_rows_are_bit_identical(graph, timesteps):
    """The same graphs, not split: fixed rows (and their overflow) over whole populations."""
    run = cpu.prepare(graph, cache=False)
    assert not run.layout.parts
    pops = graph.walk("snn.population")
    inputs = _inputs(graph, timesteps, 2, seed=4)
    ref = semantics.run_snn(graph, inputs, timesteps=timesteps, record=pops)
    _agree(run(inputs, timesteps=timesteps, record="all"), ref, pops, True)


def _rows(p, bounds=None) -> str:
    """How the sparse kernel walks ``p``'s rows: ``fixed``, ``fixed+overflow`` or ``csr``."""
    table, bits, _ = tables.synapse_table(p)
    indptr = p.indptr.data if bounds is None else tables.split_synapse_table(p, table, bounds)[1]
    own = owned(p, bounds, indptr.size - 1)
    fixed = tables.fixed_rows(table, bits, indptr, own) if own is not None else None
    if fixed is None:
        return "csr"
    return "fixed+overflow" if fixed[3][-1] else "fixed"


@pytest.mark.slow
def test_the_random_sparse_graphs_reach_every_row_layout():
    """The properties above mean something only if their graphs walk rows every way, split
    and not."""
    seen: set[str] = set()

    @settings(max_examples=150, derandomize=True, database=None, deadline=None,
              suppress_health_check=list(HealthCheck))
    @given(sparse_networks(integer=True))
    def collect(graph):
        net = plan.Network.of(graph)
        with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
            lay = plan.plan(net)
        target = {c.owner: pop for pop in net.populations for c in pop.currents}
        for p in net.projections:
            seen.add(_rows(p))
            seen.add("split-" + _rows(p, lay.parts[target[p]]))

    collect()
    wanted = {"fixed", "fixed+overflow", "csr"}
    assert wanted | {"split-" + w for w in wanted} <= seen, sorted(seen)


# ------------------------------------------------------------------------ plans and tables


def _recurrent(size: int, fan: int, seed: int = 0, weights=(-30, 30), encoder_kind="sparse", inputs: int = 50,
               encoding: str = "spikes") -> Graph:
    rng = np.random.default_rng(seed)
    g = Graph("rec")
    x = g.add(ann.Input(declared_type=TensorType((inputs,))), "x")
    s = g.add(snn.Encode(x=x, encoding=encoding), "s")
    if encoder_kind == "sparse":
        ip = np.arange(inputs + 1, dtype=np.int32) * fan
        c = g.add(snn.Project(src=s, kind="sparse", weight=Blob(rng.integers(*weights, inputs * fan).astype(np.int32)),
                              indptr=Blob(ip), indices=Blob(rng.integers(0, size, inputs * fan).astype(np.int32)),
                              shape=(size,)))
    else:
        c = g.add(snn.Project(src=s, kind="dense", weight=Blob(rng.integers(-3, 3, (size, inputs)).astype(np.int8))))
    pop = snn.Population(currents=[c], declared_type=SpikeType((size,)), bits=24, threshold=100, du=1024)
    g.add(pop, "h")
    ip = np.arange(size + 1, dtype=np.int32) * fan
    r = g.add(snn.Project(src=pop.result, kind="sparse", weight=Blob(rng.integers(*weights, size * fan).astype(np.int32)),
                          indptr=Blob(ip), indices=Blob(rng.integers(0, size, size * fan).astype(np.int32)),
                          shape=(size,)))
    pop.currents.append(r)
    g.add(ann.Output(values=[g.add(snn.Decode(x=pop.result))]))
    verify(g)
    return g


def _edge_words(size: int, weights: tuple[int, int], exponent: int, fan: int) -> Graph:
    """6 inputs → sparse (``fan`` synapses each, targets ``size - 1`` and 0 among them, the
    weights' extremes ``weights`` among theirs) → a population of ``size`` → sparse, one
    synapse per neuron, back into it."""
    rng = np.random.default_rng(4)
    g = Graph("edges")
    x = g.add(ann.Input(declared_type=TensorType((6,))), "x")
    s = g.add(snn.Encode(x=x, encoding="spikes"), "s")
    targets = rng.integers(0, size, 6 * fan).astype(np.int32)
    targets[:2] = size - 1, 0
    w = rng.integers(weights[0], weights[1] + 1, 6 * fan)
    w[:2] = weights
    wt = np.int16 if -2**15 <= weights[0] and weights[1] < 2**15 else np.int32
    c = g.add(snn.Project(src=s, kind="sparse", weight=Blob(w.astype(wt)), indptr=Blob(np.arange(7, dtype=np.int32) * fan),
                          indices=Blob(targets), shape=(size,), exponent=exponent))
    pop = snn.Population(currents=[c], declared_type=SpikeType((size,)), bits=24, threshold=50, du=1024)
    g.add(pop, "h")
    r = g.add(snn.Project(src=pop.result, kind="sparse", weight=Blob(rng.integers(-9, 9, size).astype(np.int8)),
                          indptr=Blob(np.arange(size + 1, dtype=np.int32)),
                          indices=Blob(rng.integers(0, size, size).astype(np.int32)), shape=(size,)))
    pop.currents.append(r)
    g.add(ann.Output(values=[g.add(snn.Decode(x=pop.result))]))
    verify(g)
    return g


@pytest.mark.parametrize("size, weights, exponent, fan, bits", [
    (65536, (-2**15, 2**15 - 1), 0, 3, 16),  # halves: target 65535, weights -32768 and 32767, fixed rows
    (65536, (-100, 100), 0, 80, 16),  # halves in long CSR rows, an i16 accumulator
    (65536, (-2**14, 2**14), 1, 3, 0),  # 2**14 << 1 = 2**15 fits no half: records
    (65537, (-5, 5), 0, 3, 17),  # a 17-bit target: packed words
    (300, (-2**15, 2**15 - 1), 0, 3, 16),
    (300, (-2**15, 2**15), 0, 3, 9),  # one weight past i16: packed words of 9 target bits
])
def test_synapse_words_at_the_edges_of_16_bit_halves_match(size, weights, exponent, fan, bits):
    """A synapse word's halves (16-bit target, 16-bit weight, :data:`tables.HALVES`) at their
    edges, and the layouts one step past them; spike counts 2 and -1 multiply the weights."""
    g = _edge_words(size, weights, exponent, fan)
    assert tables.synapse_table(g.walk("snn.project")[0])[1] == bits
    x = np.random.default_rng(6).choice(np.array([0, 0, 0, 1, 1, 2, -1], np.float32), (1, 12, 6))
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=12, record=pops)
    assert ref.spike_count > 0
    _agree(cpu.prepare(g, cache=False)([x], timesteps=12, record="all"), ref, pops, True)


@pytest.mark.parametrize("size, unit", [(1001, plan.CUT), (40, 8)])
def test_split_parts_cut_at_whole_cache_lines_and_balance_the_synapses(size, unit):
    """Cuts at multiples of CUT neurons (no cache line of an accumulator holds two parts'
    neurons), or of 8 in a population too small for that."""
    g = _recurrent(size, 20)
    net = plan.Network.of(g)
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
        lay = plan.plan(net)
    pop = net.populations[0]
    bounds = lay.parts[pop]
    assert len(bounds) == plan.PARTS + 1 and bounds[0] == 0 and bounds[-1] == size
    assert all(c % unit == 0 for c in bounds[1:-1]) and bounds == sorted(bounds) and 0 < bounds[1] < size
    into = np.bincount(np.concatenate([c.owner.indices.data for c in pop.currents]), minlength=size) + 1
    shares = [into[a:z].sum() / into.sum() for a, z in zip(bounds, bounds[1:])]
    assert max(shares) - min(shares) < (0.05 if size > 100 else 0.25)
    assert lay.slots[-1] == ("barrier", None)


def test_only_large_all_sparse_step_networks_are_split():
    net = plan.Network.of(_recurrent(64, 4))
    assert not plan.plan(net).parts  # 456 synapses: below SPLIT_SYNAPSES
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
        assert plan.plan(net).parts
        assert not plan.plan(plan.Network.of(_recurrent(64, 4, encoder_kind="dense"))).parts


def test_split_synapse_table_keeps_each_rows_synapses_in_order():
    g = _recurrent(40, 9, seed=3)
    p = g.walk("snn.project")[1]
    bounds = [0, 16, 40]
    whole, bits, _ = tables.synapse_table(p)
    table, starts = tables.split_synapse_table(p, whole, bounds)
    ip, ix = p.indptr.data, p.indices.data
    for j in range(40):
        for k in range(2):
            row = table[starts[k * 40 + j]:starts[k * 40 + j + 1]]  # part-major
            keep = (ix[ip[j]:ip[j + 1]] >= bounds[k]) & (ix[ip[j]:ip[j + 1]] < bounds[k + 1])
            np.testing.assert_array_equal(row, whole[ip[j]:ip[j + 1]][keep])


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.integers(0, 40), min_size=1, max_size=60), st.integers(0, 2**31 - 1))
def test_fixed_rows_hold_every_synapse_once_and_pad_with_zero_weights(counts, seed):
    rng = np.random.default_rng(seed)
    bits = 6
    starts = np.concatenate([[0], np.cumsum(counts)])
    table = (rng.integers(-100, 100, int(starts[-1])) << bits | rng.integers(0, 64, int(starts[-1]))).astype(np.int32)
    first = rng.integers(0, 32, len(counts))
    count = rng.integers(1, 33, len(counts))
    fixed = tables.fixed_rows(table, bits, starts, (first, count))
    c = np.asarray(counts)
    if fixed is None:  # no slot count suits these rows
        assert all(np.mean(c > k) > tables.FIXED_OVERFLOW or c.mean() * 3 < k for k in tables.FIXED_SLOTS)
        return
    slots, rows, lens, over_starts, over = fixed
    assert np.mean(c > slots) <= tables.FIXED_OVERFLOW
    np.testing.assert_array_equal(lens.view(lens.dtype.str.replace("i", "u")), c)
    for r, n in enumerate(counts):
        kept = rows[r, :min(n, slots)]
        rest = over[over_starts[r]:over_starts[r + 1]] if n > slots else over[:0]
        np.testing.assert_array_equal(np.concatenate([kept, rest]), table[starts[r]:starts[r + 1]])
        pad = rows[r, min(n, slots):]
        assert np.all(pad >> bits == 0)  # weight 0
        assert np.all((pad >= first[r]) & (pad < first[r] + count[r]))  # a target the row's thread owns


def test_fixed_rows_spread_their_padding():
    """Unused slots of one row add to different targets (none waits on another's add), and
    rows of 16-bit halves pad up to target 65,535."""
    starts = np.arange(0, 2001, 2)  # 1,000 rows of 2 synapses in 4 slots: 2 unused each
    table = np.zeros(2000, np.int32)
    own = np.full(1000, 65536 - 4096), np.full(1000, 4096)
    slots, rows, *_ = tables.fixed_rows(table, tables.HALVES, starts, own)
    pad = rows[:, 2:slots]
    assert pad.min() >= 65536 - 4096 and pad.max() <= 65535
    assert np.mean(pad[:, 0] != pad[:, 1]) > 0.99
    assert len(np.unique(pad)) > 1000


def test_an_i16_accumulator_only_when_the_sums_of_spikes_fit():
    """plan.short_accumulator: Σ unit_bound below 2**15 and every projection sparse."""
    small, large = _recurrent(64, 4, weights=(-30, 30)), _recurrent(64, 4, weights=(2**13, 2**14))
    assert plan.short_accumulator(small.walk("snn.population")[0])
    assert sum(plan.unit_bound(c.owner) for c in large.walk("snn.population")[0].currents) >= 2**15
    assert not plan.short_accumulator(large.walk("snn.population")[0])
    assert not plan.short_accumulator(_recurrent(64, 4, encoder_kind="dense").walk("snn.population")[0])
    x = np.random.default_rng(1).integers(0, 2, (1, 12, 50)).astype(np.float32)
    pops = large.walk("snn.population")
    _agree(cpu.prepare(large, cache=False)([x], timesteps=12, record="all"),
           semantics.run_snn(large, [x], timesteps=12, record=pops), pops, True)


def test_owned_targets_lie_in_the_rows_part():
    p = _recurrent(40, 4).walk("snn.project")[1]
    first, count = owned(p, [0, 16, 40], 80)
    assert np.all((first[:40] == 0) & (count[:40] == 16)) and np.all((first[40:] == 16) & (count[40:] == 24))  # part-major rows
    assert owned(p, [0, 0, 40], 80) is None  # an empty part owns no target
    first, count = owned(p, None, 40)
    assert np.all((first == 0) & (count == 40))


def test_w3_like_network_split_on_two_threads_matches_one_thread():
    """A larger recurrent network (fixed rows, spike counts above 1 through the side
    accumulator) split into parts: two threads on one sample, one thread, and the reference."""
    g = _recurrent(300, 12, seed=11, weights=(-40, 90))
    x = np.random.default_rng(2).integers(0, 2, (1, 40, 50)).astype(np.float32)
    x[0, 5, :3] = 3  # spike counts: events of value 3
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
        run = cpu.prepare(g, cache=False)
    pops = g.walk("snn.population")
    assert run.layout.short == set(pops) == run.layout.wide  # i16 sums, folded with the counts' in i32
    ref = semantics.run_snn(g, [x], timesteps=40, record=pops)
    assert ref.spike_count > 100
    for threads in (2, 1):
        _agree(run([x], timesteps=40, record="all", threads=threads), ref, pops, True)


def _as_float(g):
    """Make ``g`` (a ``_recurrent`` network) a float network: weights / 4 as float32, threshold 10."""
    for p in g.walk("snn.project"):
        p.weight = Blob(p.weight.data.astype(np.float32) / 4)
    pop = g.walk("snn.population")[0]
    pop.bits, pop.threshold = 0, 10.0
    verify(g)


@pytest.mark.parametrize("weights, integer", [((-2**29, 2**29), True), ((-8, 8), False)])
def test_split_records_and_float_networks_on_two_threads_match(weights, integer):
    """Weights too wide for packed words ((target, weight) records) and a float network (f32
    records, no fixed rows), split, on one and on two threads."""
    g = _recurrent(100, 6, seed=5, weights=weights)
    if not integer:
        _as_float(g)
    assert tables.synapse_table(g.walk("snn.project")[1])[1] == 0  # records, not words
    x = np.random.default_rng(2).integers(0, 2, (1, 30, 50)).astype(np.float32)
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
        run = cpu.prepare(g, cache=False)
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=30, record=pops)
    assert ref.spike_count > 0
    for threads in (2, 1):
        _agree(run([x], timesteps=30, record="all", threads=threads), ref, pops, integer)


@pytest.mark.parametrize("integer", [True, False])
def test_encoder_values_scanned_in_words_deliver_every_event(integer):
    """An encoder of 141 values (two words of 64, one of 8, five single values; emit.Lowering.events)
    with events at the edges of each, of value 1 and others, into a network split or not, on
    one and two threads: every event is delivered, with its value, as the reference does."""
    g = _recurrent(64, 5, seed=9, weights=(-40, 90), inputs=141, encoding="spikes" if integer else "current")
    if not integer:
        _as_float(g)
    rng = np.random.default_rng(3)
    if integer:  # spike counts 0, 1 and 3; the edges of every word fire at step 0
        x = (rng.random((2, 20, 141)) < 0.1) * rng.choice([1, 1, 3], (2, 20, 141))
        x[:, 0, [0, 63, 64, 127, 128, 135, 136, 140]] = 1
    else:  # currents, some 0, some 1, others fractions
        x = (rng.random((2, 141)) < 0.5) * rng.choice([1.0, 0.25, 2.5], (2, 141))
        x[:, [0, 63, 64, 127, 128, 135, 136, 140]] = 1.0
    x = x.astype(np.float32)
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=20, record=pops)
    assert ref.spike_count > 0
    for split in (0, 10**9):
        with mock.patch.object(plan, "SPLIT_SYNAPSES", split):
            run = cpu.prepare(g, cache=False)
        assert bool(run.layout.parts) == (split == 0)
        for threads in (1, 2):
            _agree(run([x], timesteps=20, record="all", threads=threads), ref, pops, integer)


@pytest.mark.parametrize("weights, counts", [((-40, 90), 2), ((-2**29, 2**29), 2), ((-40, 90), 4)])
def test_long_rows_walked_with_prefetch_stay_exact(weights, counts):
    """Rows of 80 synapses (kernels.sparse.LONG_ROWS: prefetched ahead as they are walked,
    and from the encoder a step ahead, kernels.sparse.NEXT, up to the run's last step),
    packed words and (target, weight) records, spikes and counts up to 3, split and not,
    against the reference."""
    from nmc.targets.cpu.kernels import sparse

    g = _recurrent(160, 80, seed=4, weights=weights)
    assert all(p.indptr.data[-1] >= sparse.LONG_ROWS * (p.indptr.data.size - 1) for p in g.walk("snn.project"))
    assert sparse.NEXT
    x = np.random.default_rng(6).integers(0, counts, (1, 15, 50)).astype(np.float32)
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=15, record=pops)
    for split in (0, 10**9):
        with mock.patch.object(plan, "SPLIT_SYNAPSES", split):
            run = cpu.prepare(g, cache=False)
        for threads in (1, 2):
            _agree(run([x], timesteps=15, record="all", threads=threads), ref, pops, True)


def test_several_samples_in_lockstep_count_their_steps_on():
    """With 4 parts, 3 samples run in lockstep on 4 threads (batch < threads): each thread's
    count of finished steps runs on over the samples (emit.Lowering.parted_steps), so a wait
    in a later sample is for that sample's step."""
    from nmc.targets.cpu import emit, execute
    from nmc.targets.cpu.kernels import sparse

    g = _recurrent(96, 8, seed=12, weights=(-40, 90))
    x = np.random.default_rng(8).integers(0, 2, (3, 20, 50)).astype(np.float32)
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=20, record=pops)
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0), mock.patch.object(plan, "PARTS", 4), \
            mock.patch.object(emit, "PARTS", 4), mock.patch.object(execute, "PARTS", 4), \
            mock.patch.object(sparse, "PARTS", 4), mock.patch.object(execute, "BARRIER_WORDS", 40):
        run = cpu.prepare(g, cache=False)
        assert all(len(b) == 5 for b in run.layout.parts.values())
        _agree(run([x], timesteps=20, record="all", threads=4), ref, pops, True)


def test_lockstep_choice_tries_both_ways_then_keeps_the_faster():
    choice = LockstepChoice()
    ways = []
    for call in range(1, 18):
        way = choice.use()
        ways.append(way)
        choice.took(way, 1.0 if way else 0.5)  # one thread faster
    assert ways[:2] == [True, False]
    assert [c for c, w in enumerate(ways, 1) if w][1:] == [8, 16]  # lockstep again only to explore


def test_an_executor_choosing_its_threads_stays_exact():
    """Calls without a thread count of their own: lockstep or one thread as measured, the same
    results every call."""
    g = _recurrent(120, 10, seed=7, weights=(-40, 90))
    x = np.random.default_rng(4).integers(0, 2, (1, 25, 50)).astype(np.float32)
    with mock.patch.object(plan, "SPLIT_SYNAPSES", 0):
        run = cpu.prepare(g, cache=False, threads=2)
    pops = g.walk("snn.population")
    ref = semantics.run_snn(g, [x], timesteps=25, record=pops)
    for _ in range(4):
        _agree(run([x], timesteps=25, record="all"), ref, pops, True)
    assert None not in run._lockstep.seconds.values()  # both ways were run
    assert run._unsplit is not None and not run._unsplit[1].parts  # one thread: the unsplit version

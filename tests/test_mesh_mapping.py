"""Mapping onto a mesh chip: synapse expansion, partition invariants (checked independently of
the partitioner's own bookkeeping), placement and routing."""

from __future__ import annotations

import networkx as nx
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_emulator import CHIP, random_graph, seeded_graph

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.verifier import verify
from nmc.passmanager import PassContext, PassManager, parse_pipeline
from nmc.targets.mesh.chipclass import CHIP_CLASS
from nmc.targets.mesh.mapping import Mapping, placement_cost
from nmc.targets.mapping.netlist import Netlist, synapses
from nmc.targets.mesh.board import Board


def mapped(graph, pipeline="partition,place{seed=0,iterations=500},route", chip=CHIP):
    g = graph.clone()
    ctx = PassContext(target=chip)
    PassManager(parse_pipeline(pipeline), ctx).run(g)
    return g, ctx


@pytest.mark.parametrize("seed", range(6))
def test_synapses_equal_reference_projection_and_fanout(seed):
    graph, _ = random_graph(seed)
    rng = np.random.default_rng(seed)
    for p in graph.walk("snn.project"):
        src, tgt, w = synapses(p)
        x = rng.integers(-3, 4, size=(2, *p.src.type.shape))
        want = semantics.project(p, x, True)
        got = np.zeros_like(want)
        np.add.at(got, (slice(None), tgt), x.reshape(2, -1)[:, src] * w)
        np.testing.assert_array_equal(got << p.exponent, want)
        np.testing.assert_array_equal(np.bincount(src, minlength=p.src.type.size), semantics.fanout(p))


def test_board_distance_is_the_networkx_shortest_path():
    board = Board(CHIP)
    g = board.graph()
    lengths = dict(nx.all_pairs_dijkstra_path_length(g, weight="weight"))
    slots = np.arange(board.slots)
    D = board.distance(slots[:, None], slots[None, :])
    for a in slots:
        ax, ay = board.xy(a)
        for b in slots:
            bx, by = board.xy(b)
            assert D[a, b] == lengths[(int(ax), int(ay))][(int(bx), int(by))]


def test_xy_path_goes_x_first():
    board = Board(CHIP)
    path = board.xy_path((1, 5), (6, 2))
    assert path[0][0] == (1, 5) and path[-1][1] == (6, 2) and len(path) == 5 + 3
    assert all(a[1] == b[1] for a, b in path[:5]) and all(a[0] == b[0] == 6 for a, b in path[5:])


def _brute_force_usage(graph, chip):
    """Per core: (neurons, distinct sources, synapse bits, output entries), from scratch."""
    net = Netlist(graph)
    m = Mapping(graph, chip, net)
    per_core = {c.id: [0, set(), 0] for c in m.cores}
    dests = {}
    for pop in net.populations:
        for p in (c.owner for c in pop.currents):
            src, tgt, w = synapses(p)
            lo, hi = (int(w.min()), int(w.max())) if len(w) else (0, 0)
            bits = next(b for b in range(1, 33) if -(1 << (b - 1)) <= lo and hi < (1 << (b - 1)))
            for s, t in zip(src.tolist(), tgt.tolist()):
                core = int(m.core_of[net.neuron_offset[pop] + t])
                key = (p.src.owner.result.name, s)
                per_core[core][1].add(key)
                per_core[core][2] += bits
                dests.setdefault(key, set()).add(core)
    for c in m.cores:
        per_core[c.id][0] = c.neurons
    outputs = {c.id: 0 for c in m.cores}
    for (name, s), cores in dests.items():
        pop = next((p for p in net.populations if p.result.name == name), None)
        if pop is not None:
            outputs[int(m.core_of[net.neuron_offset[pop] + s])] += len(cores)
    return m, {k: (v[0], len(v[1]), v[2], outputs[k]) for k, v in per_core.items()}


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1))
def test_partition_respects_every_core_limit(seed):
    graph, _ = seeded_graph(seed)
    g, ctx = mapped(graph, "partition")
    verify(g)  # every neuron on exactly one core
    m, usage = _brute_force_usage(g, CHIP)
    c = CHIP.core
    for core in m.cores:
        n, axons, bits, outs = usage[core.id]
        assert (core.neurons, core.axons, core.synapse_bits, core.outputs) == (n, axons, bits, outs)
        assert n <= c.neurons and axons <= c.input_axons and bits <= c.synapse_memory_bits and outs <= c.output_axons
    assert ctx.stats["partition"]["cores-lower-bound"] <= len(m.cores)
    sizes = sum(p.result.type.size for p in g.walk("snn.population"))
    assert ctx.stats["partition"]["cores-lower-bound"] >= -(-sizes // c.neurons)


def test_shared_weights_charge_the_kernel_once_per_channel():
    from dataclasses import replace

    graph, _ = random_graph(11)
    shared = CHIP.with_sections(core=replace(CHIP.core, shared_weights=True))
    g_plain, _ = mapped(graph, "partition")
    g_shared, _ = mapped(graph, "partition", shared)
    conv_pop = graph.walk("snn.population")[0]
    bits = lambda g: sum(c.synapse_bits for c in g.walk("hw.core") if c.pops[0].name == conv_pop.result.name)  # noqa: E731
    conv = graph.walk("snn.project")[0]
    from nmc.targets.mapping.netlist import weight_bits

    per_channel = int(np.prod(conv.weight.shape[1:])) * weight_bits(conv)
    cores = [c for c in g_shared.walk("hw.core") if c.pops[0].name == conv_pop.result.name]
    hw = int(np.prod(conv.result.type.shape[1:]))
    channels = lambda c: {i // hw for a, b in zip(c.slices[::2], c.slices[1::2]) for i in range(a, b)}  # noqa: E731
    expected = sum(len(channels(c)) * per_channel for c in cores)
    assert bits(g_shared) == expected
    assert bits(g_plain) == len(synapses(conv)[0]) * weight_bits(conv)


def test_place_is_deterministic_and_beats_naive():
    graph, _ = random_graph(21)
    a, _ = mapped(graph, "partition,place{seed=5,iterations=3000}")
    b, _ = mapped(graph, "partition,place{seed=5,iterations=3000}")
    pos = lambda g: [(c.chip, c.xy) for c in g.walk("hw.core")]  # noqa: E731
    assert pos(a) == pos(b)
    assert a.meta["hw.placement_cost"] <= a.meta["hw.placement_cost_naive"]
    slots = {(*c.chip, *c.xy) for c in a.walk("hw.core")}
    assert len(slots) == len(a.walk("hw.core"))
    # the recorded cost is the cost of the recorded placement
    m = Mapping(a, CHIP)
    src, dst, load = m.traffic(m.net.rates(0.25))
    assert placement_cost(m.board, src, dst, load, m.slots) == pytest.approx(a.meta["hw.placement_cost"])
    start, _ = mapped(graph, "partition,place{iterations=0}")
    assert a.meta["hw.placement_cost"] <= start.meta["hw.placement_cost"]


def test_route_loads_equal_per_neuron_paths():
    graph, _ = random_graph(4)
    g, _ = mapped(graph)
    m = Mapping(g, CHIP)
    rate = 0.25
    expected = {}
    for s, cores in _dest_sets(m).items():
        core = -1 if s < m.net.n_ports else int(m.core_of[s - m.net.n_ports])
        tree = set()
        for d in cores:
            tree.update(m.board.xy_path(m.position(core), m.position(d)))
        for link in tree:
            expected[link] = expected.get(link, 0.0) + rate
    r = m.routes(m.net.rates(rate))
    got = {link: load for link, load in zip(r.links, r.load)}
    assert set(got) == set(expected)
    for link in got:
        assert got[link] == pytest.approx(expected[link])
    assert g.meta["hw.max_link_load"] == pytest.approx(max(expected.values()))
    routes = g.walk("hw.route")
    assert sum(len(op.dests) for op in routes) >= len(g.walk("hw.core")) - 1


def test_route_loads_add_in_tree_order_a_range_at_a_time(monkeypatch):
    """Loads summed a range of trees at a time equal one sum over every tree link in order (the
    same float64 bits), at uneven rates, with dendrite paths (fan-in splitting)."""
    import nmc.targets.mesh.mapping as mapping
    from test_fanin import chip_text, net

    from nmc.targets.chip import parse_chip

    fanin_chip = parse_chip(chip_text(), "fanin-test.toml")
    for graph, chip in ((random_graph(4)[0], CHIP), (net(0)[0], fanin_chip)):
        g, _ = mapped(graph, chip=chip)
        rates = np.random.default_rng(1).random(Netlist(g).n_sources)
        whole = Mapping(g, chip).routes(rates)
        # the trees again, in three ranges (each holding several trees that share links)
        monkeypatch.setattr(mapping, "LINKS_PER_RANGE", len(whole.group_links) // 3 + 1)
        m = Mapping(g, chip)
        m._known.routes = {}
        r = m.routes(rates)
        monkeypatch.undo()
        group_rate = np.bincount(r.group_of[r.group_of >= 0], weights=rates[r.group_of >= 0], minlength=len(r.group_core))
        paths = [links for _, _, links in r.partial]
        stream = [rate for _, _, rate in m.partial_streams(rates)]
        weights = np.concatenate([np.repeat(group_rate, np.diff(r.link_start)),
                                  np.repeat(stream, [len(p) for p in paths])])
        links = np.concatenate([r.group_links, np.array([k for p in paths for k in p], np.int64)])
        expected = np.bincount(links, weights=weights, minlength=len(r.ends))
        assert r.load.tobytes() == expected.tobytes() == whole.load.tobytes()
        assert np.array_equal(r.group_links, whole.group_links) and r.partial == whole.partial
        assert len(paths) > 0 or chip is CHIP


def _dest_sets(m: Mapping) -> dict[int, set[int]]:
    out: dict[int, set[int]] = {}
    for s, d in m.source_dests().tolist():
        out.setdefault(s, set()).add(d)
    return out


def test_route_needs_placement_and_checks_capacity():
    from dataclasses import replace

    graph, _ = random_graph(4)
    with pytest.raises(NmcError, match="has cores but no placement"):
        mapped(graph, "partition,route")
    narrow = CHIP.with_sections(noc=replace(CHIP.noc, link_capacity=1, chip_link_capacity=1))
    with pytest.raises(NmcError, match=r"link .* carries .* spikes per step; its capacity is 1 \(over by"):
        mapped(graph, "partition,place{iterations=0},route", narrow)


def test_resource_summary():
    graph, _ = random_graph(9)
    g, ctx = mapped(graph)
    s = CHIP_CLASS.resource_summary(g, CHIP)
    assert s["cores"] == len(g.walk("hw.core")) == ctx.stats["partition"]["cores"]
    assert s["cores_lower_bound"] == ctx.stats["partition"]["cores-lower-bound"] <= s["cores"]
    assert s["placement_cost"] == g.meta["hw.placement_cost"] <= s["placement_cost_naive"]
    assert s["max_link_load"] == g.meta["hw.max_link_load"]
    chips = {tuple(c.chip) for c in g.walk("hw.core")}
    assert s["chips"] == len(chips)


def test_xy_trees_are_the_unions_of_xy_paths():
    board = Board(CHIP)
    rng = np.random.default_rng(0)
    sources, dests = [], []
    for _ in range(200):
        a = (int(rng.integers(-1, board.width)), int(rng.integers(0, board.height)))
        sources.append((-1, 0) if a[0] < 0 else a)
        dests.append([(int(rng.integers(0, board.width)), int(rng.integers(0, board.height)))
                      for _ in range(int(rng.integers(0, 6)))])
    start = np.cumsum([0] + [len(d) for d in dests])
    flat = np.array([d for ds in dests for d in ds], np.int64)
    link_start, key = board.xy_trees([a[0] for a in sources], [a[1] for a in sources], start, flat[:, 0], flat[:, 1],
                                     chunk=50)  # many ranges of trees, some a single tree larger than a range
    tree = np.repeat(np.arange(len(sources)), np.diff(link_start))
    ends = board.link_ends(key)
    assert np.all(np.diff(tree * 10**9 + key) > 0)  # sorted, each link once per tree
    for t, (a, ds) in enumerate(zip(sources, dests)):
        union = set()
        for d in ds:
            union.update(board.xy_path(a, d))
        got = [((x0, y0), (x1, y1)) for x0, y0, x1, y1 in ends[tree == t].tolist()]
        assert got == sorted(union)  # link keys sort as the links do


def test_partition_refuses_a_delayed_reset():
    from nmc.ir.parser import parse_ir

    text = """graph @g
%x = ann.input : tensor<4xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<4>
%c = snn.project(%s) {kind = one_to_one, weight = 1} : current<4>
%h = snn.population(%c) {bits = 8, dv = 100, reset = subtract_delayed, threshold = 3} : spikes<4>
%y = snn.decode(%h) : tensor<4xf32>
ann.output(%y)
"""
    with pytest.raises(NmcError, match="population %h resets by 'subtract_delayed'; chip .* supports subtract, zero") as info:
        mapped(parse_ir(text, "g.nmir"))
    assert "in the step they fire" in info.value.hint


def test_partition_refuses_a_maxpool_gate():
    from nmc.ir.parser import parse_ir

    text = """graph @g
%x = ann.input : tensor<1x4x4xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<1x4x4>
%m = snn.project(%s) {kernel = [2, 2], kind = maxgate, strides = [2, 2], weight = 1} : current<1x2x2>
%h = snn.population(%m) {bits = 8, reset = zero, threshold = 0} : spikes<1x2x2>
%y = snn.decode(%h) : tensor<1x2x2xf32>
ann.output(%y)
"""
    graph = parse_ir(text, "g.nmir")
    with pytest.raises(NmcError, match="projection %m is a max-pool gate .*the synapses of chip .* are stateless") as info:
        mapped(graph)
    assert info.value.loc.line == 4
    assert info.value.hint == "convert with --convert maxpool=tree (a tournament of IF neurons, which stateless synapses can run)"
    with pytest.raises(NmcError, match="max-pool gate"):  # the netlist refuses it too
        synapses(graph.walk("snn.project")[0])


@pytest.mark.parametrize("seed", range(8))
def test_geometry_fields_and_counts_equal_the_expanded_synapses(seed):
    """Receptive fields (as products of per-axis index sets), synapse counts and fan-outs of
    random boxes equal what the explicit synapse lists give."""
    from nmc.targets.mapping.shapes import box_ids, field_ids, geometry, view3

    graph, _ = random_graph(seed)
    rng = np.random.default_rng(seed)
    for p in graph.walk("snn.project"):
        g = geometry(p)
        if g is None:
            continue
        src, tgt, _ = synapses(p)
        np.testing.assert_array_equal(g.fanout(), semantics.fanout(p))
        np.testing.assert_array_equal(g.fanin(), np.bincount(tgt, minlength=p.result.type.size))
        C, H, W = view3(p.result.type.shape)
        for _ in range(5):
            c0, y0, x0 = (int(rng.integers(0, n)) for n in (C, H, W))
            box = (c0, int(rng.integers(c0 + 1, C + 1)), y0, int(rng.integers(y0 + 1, H + 1)),
                   x0, int(rng.integers(x0 + 1, W + 1)))
            inside = np.isin(tgt, box_ids(box, (C, H, W)))
            assert g.synapses(box) == int(inside.sum())
            np.testing.assert_array_equal(np.unique(field_ids(g.field(box), g.src)), np.unique(src[inside]))


def test_kernel_runner_is_exact_beyond_float_precision():
    """Currents too large for float32 (and float64) partial sums take the wider exact paths."""
    from nmc.targets.mesh.kernels import KernelRunner, emit_kernels

    graph, _ = random_graph(2)
    net = Netlist(graph)
    from nmc.targets.mapping.shapes import geometry

    shaped = [(p, geometry(p)) for p in graph.walk("snn.project") if geometry(p) is not None]
    kr = emit_kernels(shaped, net)
    runner = KernelRunner(kr, [g for _, g in shaped])
    rng = np.random.default_rng(0)
    for k, (p, g) in enumerate(shaped):
        for scale in (1, 1 << 20, 1 << 40):
            x = rng.integers(-3, 4, size=(2, p.src.type.size)) * scale
            want = semantics.project(p, x.reshape(2, *p.src.type.shape), True).reshape(2, -1)
            np.testing.assert_array_equal(runner.current(k, x), want)


def test_board_auto_is_the_smallest_board_that_fits():
    from test_emulator import TEST_CHIP

    from nmc.targets.chip import parse_chip
    from nmc.targets.mapping.partition import partition
    from nmc.targets.mesh.passes import core_limits

    graph, _ = random_graph(5)
    cores = len(partition(graph, CHIP.formats, core_limits(CHIP), CHIP.name)["cores"])
    chip = parse_chip(CHIP_CLASS.fit_board(graph, CHIP, TEST_CHIP.encode()).decode(), "auto.toml")
    per_chip = CHIP.mesh.cores_x * CHIP.mesh.cores_y
    need = -(-cores // per_chip)
    n = chip.mesh.chips_x * chip.mesh.chips_y
    assert n >= need and chip.mesh.chips_x * (chip.mesh.chips_y - 1) < need and chip.name.endswith(
        f"-auto-{chip.mesh.chips_x}x{chip.mesh.chips_y}")
    mapped(graph, chip=chip)  # it maps onto that board


def _conv_layers(shapes, seed=0):
    """Layers of 3x3 convolutions (padding 1), an encoder of ``shapes[0]`` then a population per shape."""
    from nmc.ir.ann import Input, Output
    from nmc.ir.core import Blob, Graph
    from nmc.ir.snn import Decode, Encode, Population, Project
    from nmc.ir.types import SpikeType, TensorType

    rng = np.random.default_rng(seed)
    g = Graph("filled", {"timesteps": 4})
    x = g.add(Input(declared_type=TensorType(shapes[0], "f32")), "x")
    prev, c_in = g.add(Encode(x=x), "e"), shapes[0][0]
    for i, shape in enumerate(shapes[1:]):
        w = rng.integers(-20, 40, size=(shape[0], c_in, 3, 3)).astype(np.int8)
        cur = g.add(Project(src=prev, kind="conv2d", weight=Blob(w), pads=(1, 1, 1, 1)), f"c{i}")
        prev = g.add(Population(currents=[cur], declared_type=SpikeType(shape), bits=16, threshold=30), f"h{i}")
        c_in = shape[0]
    g.add(Output(values=[g.add(Decode(x=prev, mode="membrane"), "o")]))
    return g, [rng.random((2, *shapes[0])).astype(np.float32)]


@pytest.mark.parametrize("shapes", [[(1, 9, 9), (3, 9, 9), (3, 9, 9)], [(1, 10, 10), (3, 10, 10), (5, 10, 10)]])
def test_small_graphs_fill_their_cores(shapes, monkeypatch):
    """When boxes of one size leave cores partly empty (here 64-neuron cores), mixing layers
    (each layer put back into the room the others' cores leave) reaches the lower bound, and
    the image still runs bit-identically."""
    import re
    import types

    import nmc.targets.mapping.partition as partition
    from nmc.targets.chip import parse_chip
    from nmc.targets.mesh.sections import emit_sections
    from test_emulator import MAPPING, TEST_CHIP, assert_identical

    text = re.sub(r"(?m)^neurons = \d+", "neurons = 64", TEST_CHIP)
    chip = parse_chip(text, "fill.toml")
    graph, inputs = _conv_layers(shapes)
    g, _ = mapped(graph, MAPPING, chip)
    lower = g.meta["hw.cores_lower_bound"]
    assert len(g.walk("hw.core")) == lower
    sections = emit_sections(g, chip)
    sections["chip"] = text.encode()
    assert_identical(graph, inputs, types.SimpleNamespace(sections=sections))
    monkeypatch.setattr(partition, "MIX_MAX_CORES", 0)  # boxes alone, not mixed, take more cores
    assert len(mapped(graph, "partition", chip)[0].walk("hw.core")) > lower


@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from([0.5, 0.7, 0.85]))
def test_cores_recut_for_output_entries_count_them_exactly(seed, fraction):
    """With fewer output routing entries per core than the first cut needs, the partitioner
    re-cuts over several rounds (updating its per-source reader counts by the cores that
    changed); every core's usage still equals the count from scratch."""
    from dataclasses import replace

    graph, _ = random_graph(seed)
    first, _ = mapped(graph, "partition")
    most = max(c.outputs for c in first.walk("hw.core"))
    chip = CHIP.with_sections(core=replace(CHIP.core, output_axons=max(1, int(most * fraction))))
    try:
        g, _ = mapped(graph, "partition", chip)
    except NmcError as err:  # a neuron alone reaches more cores than that, or the board is too small
        assert "output routing entries" in str(err) or "too many" in str(err)
        return
    m, usage = _brute_force_usage(g, chip)
    for core in m.cores:
        assert (core.neurons, core.axons, core.synapse_bits, core.outputs) == usage[core.id]
        assert core.outputs <= chip.core.output_axons


@pytest.mark.parametrize("width", [1, 7, 1 << 16, (1 << 16) + 1])
def test_traffic_grouping_equals_distinct_and_search(width):
    """The traffic's (source core, destination) grouping by two radix sorts gives what sorting
    and searching every key gives."""
    from nmc.targets.mesh.mapping import _group

    rng = np.random.default_rng(width)
    key = rng.integers(0, width, 5000) * width + rng.integers(0, width, 5000)
    uniq, index = _group(key, width)
    np.testing.assert_array_equal(uniq, np.unique(key))
    np.testing.assert_array_equal(index, np.searchsorted(np.unique(key), key))

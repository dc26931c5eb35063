"""The multicast chip class: chip files, keys, trees, tables, image sections, the hop-by-hop
emulator against the reference semantics and the CPU runtime (docs/multicast-target.md)."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.ann import Input, Output
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.passmanager import PassContext, PassManager, parse_pipeline
from nmc.targets.chip import load_chip, parse_chip
from nmc.targets.mesh.sections import pack, unpack
from nmc.targets.multicast.emulator import Emulator, load_program, prepare
from nmc.targets.multicast.mapping import McMapping, router_tables
from nmc.targets.multicast.sections import emit_sections
from nmc.targets.multicast.table import LINKS, RoutingEntry, core_bit, link_bit
from reference import assert_matches_reference
from test_emulator import random_graph

MAPPING = "mc-partition,mc-place{seed=0,iterations=300},mc-route"


def chip_text(layout="rectangle", chips_x=4, chips_y=4, wrap=True, app=4, neurons=4, entries=1024, clock=200e6,
              rows_in="sdram"):
    """A test machine of the multicast class (every figure a test's choice)."""
    if layout == "spinn5":
        chips_x = chips_y = 8
        wrap = False
    return f"""
name = "mc-test"
class = "multicast"
description = "multicast tests"
[board]
layout = "{layout}"
chips_x = {chips_x}
chips_y = {chips_y}
wrap = {str(wrap).lower()}
[core]
processors = {app + 1}
app_processors = {app}
neurons = {neurons}
local_memory_bytes = 65536
rows_in = "{rows_in}"
row_memory_bytes = 1048576
neuron_bytes = 64
master_entry_bytes = 12
row_header_bytes = 12
synapse_bytes = 4
weight_bits_max = 16
weight_exponent_max = 15
max_delay = 15
clock_hz = {clock}
cycles_per_synaptic_event = 20
cycles_per_neuron = 100
cycles_per_packet = 100
step_s = 1e-3
[state]
current_bits = 24
voltage_bits = 24
decay_bits = 12
reset_modes = ["subtract", "zero"]
[router]
entries = {entries}
key_bits = 32
default_routing = true
[links]
packets_per_s = 6.25e9
[energy]
synaptic_event_j = 43e-9
neuron_update_j = 100e-9
packet_hop_j = 1e-9
"""


TEXT = chip_text()
CHIP = parse_chip(TEXT, "mc-test.toml")


def mapped(graph: Graph, chip=CHIP, pipeline: str = MAPPING) -> Graph:
    g = graph.clone()
    PassManager(parse_pipeline(pipeline), PassContext(target=chip)).run(g)
    return g


def image_of(graph: Graph, chip=CHIP, text: str = TEXT, pipeline: str = MAPPING):
    g = mapped(graph, chip, pipeline)
    sections = emit_sections(g, chip)
    sections["chip"] = text.encode()
    return types.SimpleNamespace(sections=sections), g


def assert_identical(graph: Graph, inputs, image):
    """The emulator's run of ``image`` equals the reference semantics and the CPU runtime on ``graph``."""
    from nmc.runner import run

    got = prepare(image)(inputs, record="all")
    assert_matches_reference(graph, inputs, got)
    cpu = run(graph, inputs, backend="cpu")
    for a, c in zip(got.outputs, cpu.outputs, strict=True):
        np.testing.assert_array_equal(a, c)
    assert got.spikes == cpu.spikes and got.synaptic_ops == cpu.synaptic_ops
    assert got.stats["dropped_packets"] == 0
    return got


# ----------------------------------------------------------------------------- chip files


@pytest.mark.parametrize("name", ["spinnaker1", "spinnaker1-board", "spinnaker2", "spinnaker2-board", "multicast-tiny"])
def test_shipped_chips_load(name):
    chip = load_chip(name)
    assert chip.chip_class == "multicast"
    from nmc.targets.multicast.board import Board

    board = Board(chip)
    assert len(board.chips) == {"spinnaker1": 1, "spinnaker2": 1, "multicast-tiny": 9}.get(name, 48)


def test_published_figures():
    s1, s2 = load_chip("spinnaker1"), load_chip("spinnaker2")
    assert (s1.core.processors, s1.core.app_processors, s1.core.local_memory_bytes) == (18, 16, 65536)
    assert (s1.router.entries, s1.core.step_s) == (1024, 1e-3)
    assert s1.core.row_memory_bytes * 16 == 128 << 20
    assert (s2.core.processors, s2.core.local_memory_bytes, s2.router.entries) == (152, 128 << 10, 16384)


def test_spinn5_board_is_the_48_chip_hexagon():
    from nmc.targets.multicast.board import Board

    board = Board(load_chip("spinnaker1-board"))
    rows = [sorted(x for x, y in board.chips if y == r) for r in range(8)]
    assert [len(r) for r in rows] == [5, 6, 7, 8, 7, 6, 5, 4]
    assert board.neighbour((0, 0), LINKS.index("SW")) is None and board.neighbour((0, 0), LINKS.index("NE")) == (1, 1)
    assert board.graph.number_of_edges() % 2 == 0  # every link has its opposite
    assert all(board.graph.has_edge(b, a) for a, b in board.graph.edges)


def test_bad_descriptions_are_refused():
    with pytest.raises(NmcError, match="exceeds processors"):
        parse_chip(chip_text(app=2).replace("processors = 3", "processors = 1"), "bad.toml")
    with pytest.raises(NmcError, match="spinn5 board is 8 x 8"):
        parse_chip(chip_text().replace('layout = "rectangle"', 'layout = "spinn5"'), "bad.toml")


def test_nmc_targets_lists_the_chips(capsys):
    from nmc.cli import main

    assert main(["targets"]) == 0
    out = capsys.readouterr().out
    for name in ("spinnaker1", "spinnaker1-board", "spinnaker2", "spinnaker2-board"):
        assert f"\n{name} " in out
    assert "multicast" in out


# ----------------------------------------------------------------- keys, trees and tables


def test_keys_are_aligned_disjoint_ranges_covering_every_source():
    graph, _ = random_graph(5)
    m = McMapping(mapped(graph), CHIP)
    seen = set()
    for v in m.vertices():
        width = 1 << v.bits
        assert v.base % width == 0 and len(v.sources) <= width
        assert not seen & set(range(v.base, v.base + width))
        seen |= set(range(v.base, v.base + width))
    keys = m.source_keys()
    assert len(set(keys.tolist())) == m.net.n_sources


def test_every_key_reaches_exactly_its_destination_cores():
    """Walk every allocated key through the compressed tables hop by hop: the cores it is
    delivered to are the cores of its vertex's targets, once each, and nothing is dropped
    (a vertex without destinations, an output layer, sends nothing)."""
    graph, _ = random_graph(11)
    image, g = image_of(graph)
    program, chip = load_program(image)
    m = McMapping(g, CHIP)
    em = Emulator(program, chip)
    sending = 0
    for v, dests in zip(m.vertices(), m.destinations()):
        if not dests:  # sends no packets (the image says so)
            continue
        sending += 1
        j = em.router.walk(v.base + np.arange(len(v.sources), dtype=np.int64), v.chip)
        got = sorted(core for group, core in j["deliveries"] for _ in group)
        assert got == sorted(d for d in dests for _ in v.sources)
        assert not j["dropped"].any()
    assert sending >= 3


def _tables_as_entries(m: McMapping) -> dict:
    """Each chip's table built entry by entry from the trees, as the mapper did before it built
    columns: ``{(x, y): (entries in key order, defaultable flags)}`` (the reference)."""
    rows: dict = {}
    for v, tree in zip(m.vertices(), m.trees()):
        parent = {ch: c for c, (children, _) in tree.items() for ch in children}
        for c, (children, procs) in tree.items():
            if c == v.chip and not children and not procs:
                continue
            route = sum(link_bit(m.board.link_between(c, ch)) for ch in children) + sum(core_bit(p) for p in procs)
            defaultable = (c in parent and len(children) == 1 and not procs
                           and route == link_bit(m.board.link_between(parent[c], c)))
            rows.setdefault(c, []).append((RoutingEntry(v.base, v.mask(CHIP.router.key_bits), route), defaultable))
    return {c: ([e for e, _ in sorted(r)], [d for _, d in sorted(r)]) for c, r in sorted(rows.items())}


@pytest.mark.parametrize("seed", [0, 4])  # graphs whose tables have defaultable entries
def test_router_tables_as_columns_equal_the_entries(seed):
    graph, _ = random_graph(seed)
    g = mapped(graph)
    tables = router_tables(g, CHIP)
    expected = _tables_as_entries(McMapping(g, CHIP))
    assert len(tables) >= 2 and list(tables.chips) == list(expected)
    assert [(tables.entries(t), tables.flags(t)) for t in range(len(tables))] == list(expected.values())
    assert any(any(flags) for _, flags in expected.values())
    assert list(tables.routes) == sorted({e.route for entries, _ in expected.values() for e in entries})


def _line_graph() -> Graph:
    """Eight inputs into eight neurons into eight: three vertices."""
    g = Graph("line", {"timesteps": 4})
    x = g.add(Input(declared_type=TensorType((8,), "f32")), "x")
    e = g.add(Encode(x=x), "e")
    c1 = g.add(Project(src=e, kind="one_to_one", weight=2), "c1")
    h1 = g.add(Population(currents=[c1], declared_type=SpikeType((8,)), bits=24, threshold=1), "h1")
    c2 = g.add(Project(src=h1, kind="dense", weight=Blob(np.ones((8, 8), np.int8))), "c2")
    h2 = g.add(Population(currents=[c2], declared_type=SpikeType((8,)), bits=24, threshold=3), "h2")
    o = g.add(Decode(x=h2), "o")
    g.add(Output(values=[o]))
    verify(g)
    return g


def _placed_on(graph: Graph, chip, where: dict) -> Graph:
    """Partition, then put core k on chip ``where[k]`` (processor 0) by hand, then route."""
    g = graph.clone()
    PassManager(parse_pipeline("mc-partition"), PassContext(target=chip)).run(g)
    g.ops = [op.with_changes(chip=where[op.id], xy=(0, 0)) if op.KIND == "hw.core" else op for op in g.ops]
    PassManager(parse_pipeline("mc-route"), PassContext(target=chip)).run(g)
    return g


def test_straight_paths_are_defaultable_and_default_routing_delivers():
    """Cores at the two ends of a 6-chip row: the four chips between forward the keys
    straight on, so their entries are defaultable, compression drops them, and the emulator's
    default routing still delivers every packet: outputs equal the reference semantics."""
    text = chip_text(chips_x=6, chips_y=1, wrap=False, app=1, neurons=8)
    chip = parse_chip(text, "line.toml")
    graph = _line_graph()
    g = _placed_on(graph, chip, {0: (0, 0), 1: (5, 0)})
    tables = McMapping(g, chip).tables()
    assert tables.chips == tuple((x, 0) for x in range(6))
    for x in range(1, 5):
        assert tables.flags(x) == [True] and tables.entries(x)[0].route == link_bit(LINKS.index("E"))
    assert not any(tables.flags(0)) and tables.flags(5) == [False]
    sections = emit_sections(g, chip)
    t = unpack(sections["multicast.tables"], "multicast.tables")
    assert list(np.diff(t["table_start"])) == [2, 0, 0, 0, 0, 1]  # host + h1 leave (0,0); h1 arrives at (5,0)
    sections["chip"] = text.encode()
    x = np.random.default_rng(0).random((4, 8)).astype(np.float32)
    got = assert_identical(graph, [x], types.SimpleNamespace(sections=sections))
    assert got.stats["hops"] > 0 and got.stats["lookups"] > got.stats["packets"]


def _with(image, name, arrays):
    sections = dict(image.sections)
    sections[name] = pack(arrays)
    return types.SimpleNamespace(sections=sections)


def test_a_wrong_table_gives_wrong_spikes():
    """Send one vertex's packets to the wrong processor: the emulator follows the table, the
    rows are not applied, and the outputs differ from the reference."""
    graph = _line_graph()
    text = chip_text(chips_x=2, chips_y=1, wrap=False, app=1, neurons=8)
    chip = parse_chip(text, "two.toml")
    g = _placed_on(graph, chip, {0: (0, 0), 1: (1, 0)})
    sections = emit_sections(g, chip)
    sections["chip"] = text.encode()
    image = types.SimpleNamespace(sections=sections)
    x = np.ones((2, 8), np.float32)
    ref = semantics.run_snn(graph, [x])
    assert np.array_equal(prepare(image)([x]).outputs[0], ref.outputs[0])
    t = unpack(sections["multicast.tables"], "multicast.tables")
    links = t["links"].copy()
    links[t["table_start"][0]:t["table_start"][1]] = 0  # chip (0,0) no longer forwards east
    bad = _with(image, "multicast.tables", dict(t, links=links))
    got = prepare(bad)([x])
    assert not np.array_equal(got.outputs[0], ref.outputs[0])
    assert got.synaptic_ops < ref.synaptic_ops


def test_an_unallocated_key_reaching_a_router_is_caught():
    graph, _ = random_graph(2)
    image, _ = image_of(graph)
    em = Emulator(*load_program(image))
    top = int(max(b + (1 << w) for b, w in zip(em.p.keys["vertex_base"], em.p.keys["vertex_bits"])))
    with pytest.raises(NmcError, match=f"unallocated key {top:#x} reached the router of chip"):
        em.router.walk(np.array([top], np.int64), (0, 0))


def test_a_table_over_capacity_is_an_error_naming_the_chip():
    graph, _ = random_graph(6)
    chip = parse_chip(chip_text(entries=1), "small.toml")
    with pytest.raises(NmcError, match=r"chip mc-test \(\d, \d\): its routing table needs \d+ entries after compression "
                                       r"\(from \d+\) but the router has 1"):
        mapped(graph, chip)


# ------------------------------------------------------------------------------ emulator


@pytest.mark.parametrize("seed", [0, 1])
def test_emulator_bit_identical_to_reference_samples(seed):
    graph, inputs = random_graph(seed)
    image, g = image_of(graph)
    assert len({tuple(c.chip) for c in g.walk("hw.core")}) >= 2  # the graph spans chips
    assert 1 <= g.meta["hw.cores_lower_bound"] <= len(g.walk("hw.core"))
    assert_identical(graph, inputs, image)


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from(["rectangle", "spinn5"]), st.integers(1, 5), st.integers(1, 5),
       st.booleans(), st.integers(2, 5), st.integers(3, 16), st.sampled_from(["sdram", "local"]))
def test_emulator_bit_identical_on_random_graphs_and_boards(seed, layout, cx, cy, wrap, app, neurons, rows_in):
    text = chip_text(layout=layout, chips_x=cx, chips_y=cy, wrap=wrap, app=app, neurons=neurons, rows_in=rows_in)
    chip = parse_chip(text, "random.toml")
    graph, inputs = random_graph(seed)
    try:
        image, g = image_of(graph, chip, text)
    except NmcError as err:  # a board too small for the graph is refused, with the numbers
        assert "cores" in err.message or "does not fit" in err.message
        event("board too small")
        return
    assert 1 <= g.meta["hw.cores_lower_bound"] <= len(g.walk("hw.core"))
    assert_identical(graph, inputs, image)
    event("compared")


def test_lower_bound_counts_the_row_headers_of_each_layers_fan_in():
    """docs/multicast-target.md, "Lower bound": a layer whose neurons each read 1,600 sources
    leaves 1,600 row headers' less memory per core for its synapses."""
    from nmc.targets.multicast.passes import cores_lower_bound

    core = types.SimpleNamespace(neurons=255, rows_in="local", local_memory_bytes=131072, row_memory_bytes=0,
                                 neuron_bytes=64, synapse_bytes=4, row_header_bytes=12, master_entry_bytes=12)
    chip = types.SimpleNamespace(core=core)
    conv = (2048, 2048 * 1600, 1600)
    assert cores_lower_bound(chip, [conv]) == 119  # ⌈2048 · (1600 · 4 + 64) / (131072 − 1600 · 12)⌉
    assert cores_lower_bound(chip, [(2048, 2048 * 1600, 0)]) == 101  # without headers
    assert cores_lower_bound(chip, [conv, (9216, 9216 * 25, 9)]) == 130  # shares add; the neurons need only 45
    assert cores_lower_bound(chip, [(9216, 0, 0)]) == 37  # ⌈9216 / 255⌉
    per_neuron = (2048, np.full(2048, 1600), np.full(2048, 1600))  # as layer_costs gives a shaped layer
    assert cores_lower_bound(chip, [per_neuron]) == 119
    corners = (2048, np.full(2048, 1600), np.r_[np.full(1024, 1600), np.zeros(1024, np.int64)])
    assert cores_lower_bound(chip, [corners]) == 110  # ⌈1024 · 6464 / 111872 + 1024 · 6464 / 131072⌉
    sdram = types.SimpleNamespace(core=types.SimpleNamespace(**{**vars(core), "rows_in": "sdram",
                                                                  "row_memory_bytes": 1 << 20}))
    assert cores_lower_bound(sdram, [conv]) == 13  # ⌈2048 · 1600 · 4 / (2^20 − 1600 · 12)⌉
    # master-table entries: each neuron needs 100 at least, 1,200 bytes less for its synapses
    assert cores_lower_bound(chip, [(*per_neuron, np.full(2048, 100))]) == 120  # ⌈2048 · 6464 / (111872 − 1200)⌉
    big = types.SimpleNamespace(core=types.SimpleNamespace(**{**vars(sdram.core), "neuron_bytes": 1024}))
    assert cores_lower_bound(big, [(8000, 0, 0, 0)]) == 63  # ⌈8000 · 1024 / 131072⌉: neuron state in local memory
    assert cores_lower_bound(big, [(8000, 0, 0, 1000)]) == 69  # ⌈8000 · 1024 / (131072 − 12000)⌉: beside the entries


def test_a_compile_maps_the_placed_graph_once(monkeypatch):
    """mc-route, the emitter and the resource summary share one mapping of the placed graph
    (its trees, tables and their compression computed once); mc-place's, made before
    placement, is the only other."""
    import nmc
    from nmc.targets.multicast import mapping

    calls = {"init": 0, "pairs": 0, "compress": 0}

    def counted(name, f):
        def call(*args, **kwargs):
            calls[name] += 1
            return f(*args, **kwargs)
        return call

    monkeypatch.setattr(mapping.McMapping, "__init__", counted("init", mapping.McMapping.__init__))
    monkeypatch.setattr(mapping, "source_core_pairs", counted("pairs", mapping.source_core_pairs))
    monkeypatch.setattr(mapping, "compressed_tables", counted("compress", mapping.compressed_tables))
    nmc.compile(_line_graph(), target="multicast-tiny")
    assert calls == {"init": 2, "pairs": 2, "compress": 1}


def test_the_shared_mapping_follows_every_change_of_the_graph():
    """mapping_of gives the same mapping while the graph's ops print the same (hw.route ops
    aside), and a new one after any change, in place or not, or for another graph object."""
    from nmc.ir.hw import Route
    from nmc.targets.mapping.hw import hw_insert
    from nmc.targets.multicast.board import Board
    from nmc.targets.multicast.mapping import mapping_of

    g = mapped(random_graph(5)[0])
    m = mapping_of(g, CHIP)
    assert mapping_of(g, CHIP) is m
    g.ops = [op for op in g.ops if op.KIND != "hw.route"]
    hw_insert(g, [Route(src=0, dests=(0,), load=0.0, links=0)])
    assert mapping_of(g, CHIP) is m
    core = g.walk("hw.core")[0]
    moved = next(c for c in Board(CHIP).chips if c != tuple(core.chip))
    core.chip = moved  # in place: the same op objects
    m2 = mapping_of(g, CHIP)
    assert m2 is not m and m2.core_chip[core.id] == moved
    assert mapping_of(g.clone(), CHIP) is not m2


def test_statistics_add_up():
    graph, inputs = random_graph(7)
    image, _ = image_of(graph)
    got = prepare(image)(inputs)
    s, e = got.stats, CHIP.energy
    B = len(inputs[0])
    n = sum(p.result.type.size for p in graph.walk("snn.population"))
    assert s["neuron_updates"] == B * got.steps * n
    assert s["hops"] == round(sum(link["spikes_per_step"] for link in s["links"]) * B * got.steps)
    expected = (s["synaptic_events"] * e.synaptic_event_j + s["neuron_updates"] * e.neuron_update_j
                + s["hops"] * e.packet_hop_j) / B
    assert s["energy_per_inference_j"] == pytest.approx(expected)
    assert s["lookups"] >= s["packets"] > 0 and s["kept_real_time"] and s["time_per_step_s"] > 0


def test_a_slow_clock_misses_real_time():
    graph, inputs = random_graph(7)
    text = chip_text(clock=1e5)
    chip = parse_chip(text, "slow.toml")
    ctx = PassContext(target=chip)
    g = graph.clone()
    PassManager(parse_pipeline(MAPPING), ctx).run(g)
    assert any("cannot keep real time" in r for r in ctx.remarks)
    sections = emit_sections(g, chip)
    sections["chip"] = text.encode()
    got = prepare(types.SimpleNamespace(sections=sections))(inputs)
    assert not got.stats["kept_real_time"] and got.stats["late_steps"] > 0


def test_sections_are_deterministic():
    graph, _ = random_graph(12)
    assert image_of(graph)[0].sections == image_of(graph)[0].sections


# ------------------------------------------------------------------------ malformed images


@pytest.fixture(scope="module")
def good_image():
    return image_of(random_graph(3)[0])[0]


@pytest.mark.parametrize("name,array,change,message", [
    ("multicast.keys", "vertex_base", lambda a: a + 1, "not aligned"),
    ("multicast.keys", "vertex_sources", lambda a: np.zeros_like(a), "every neuron and port exactly once"),
    ("multicast.tables", "procs", lambda a: a + 100, "'procs' has values outside"),
    ("multicast.tables", "mask", lambda a: a & 0, "bits outside its mask"),
    ("multicast.rows", "syn_target", lambda a: a + 1000, "outside its core"),
    ("multicast.rows", "mpt_count", lambda a: a + 10 ** 6, "leave the row table"),
    ("multicast.rows", "syn_delay", lambda a: a + 100, "'syn_delay' has values outside"),
    ("multicast.cores", "proc", lambda a: a * 0, "share processor"),
])
def test_bad_content_is_refused(good_image, name, array, change, message):
    arrays = unpack(good_image.sections[name], name)
    arrays[array] = change(arrays[array])
    with pytest.raises(NmcError, match=message):
        prepare(_with(good_image, name, arrays))


def test_loader_counts_each_cores_memory_against_the_chip(good_image):
    from nmc.targets.multicast.sections import load_sections

    load_sections(good_image.sections)  # within the chip it was compiled for
    for key, small, what in (("local_memory_bytes = 65536", "local_memory_bytes = 200", "local memory"),
                             ("row_memory_bytes = 1048576", "row_memory_bytes = 10", "SDRAM rows")):
        chip = parse_chip(TEXT.replace(key, small), "small.toml")
        limit = small.split("= ")[1]
        with pytest.raises(NmcError, match=rf"core \d+ needs \d+ bytes of {what}; the chip gives a core {limit}"):
            load_sections(good_image.sections, chip)


def test_random_bytes_never_crash(good_image):
    rng = np.random.default_rng(0)
    inputs = random_graph(3)[1]
    for name in ("multicast.keys", "multicast.tables", "multicast.rows", "multicast.cores"):
        data = bytes(good_image.sections[name])
        for _ in range(25):
            flipped = bytearray(data)
            flipped[int(rng.integers(0, len(flipped)))] ^= 0xFF
            sections = dict(good_image.sections, **{name: bytes(flipped)})
            try:
                prepare(types.SimpleNamespace(sections=sections))(inputs)
            except NmcError:
                pass


# --------------------------------------------------------------------------- end to end


@pytest.mark.parametrize("target", ["spinnaker2", "spinnaker1"])
def test_readme_example_runs_on_the_emulator_as_on_the_cpu(tmp_path, target):
    """The README's digits MLP compiles for the chip, and the emulator's outputs equal the
    CPU runtime's on the image's graph."""
    import nmc
    from nmc.runner import run

    data = np.load("examples/digits_test.npz")
    calib = np.load("examples/digits_calib.npz")["x"]
    img = nmc.compile(nmc.load("examples/digits_mlp.nmir"), target=target, calibration=calib)
    path = tmp_path / "d.nmb"
    img.save(str(path))
    x = data["x"][:60]
    emu, cpu = run(str(path), x, backend="emulator"), run(str(path), x, backend="cpu")
    np.testing.assert_array_equal(emu.outputs[0], cpu.outputs[0])
    assert emu.spikes == cpu.spikes and emu.synaptic_ops == cpu.synaptic_ops
    assert emu.stats["kept_real_time"] and emu.stats["dropped_packets"] == 0


def test_readme_spinnaker2_section_runs_as_written(tmp_path, monkeypatch, capsys):
    """The README's "On a SpiNNaker2 chip" commands, run as written (nmc in-process, from a
    folder holding the examples): the image compiles for spinnaker2, the emulator keeps real
    time and drops no packet, and its outputs are the CPU runtime's, byte for byte."""
    import re
    import shlex
    import shutil
    from pathlib import Path

    from nmc.cli import main

    root = Path(__file__).resolve().parent.parent
    text = (root / "README.md").read_text(encoding="utf-8")
    block = re.search(r"## On a SpiNNaker2 chip\n\n```sh\n(.*?)```", text, re.S)
    assert block, "README.md has no 'On a SpiNNaker2 chip' section with a sh block"
    shutil.copytree(root / "examples", tmp_path / "examples")
    monkeypatch.chdir(tmp_path)
    lines = block.group(1).strip().splitlines()
    assert [line.split()[0] for line in lines] == ["nmc", "nmc", "nmc", "cmp"]
    for line in lines[:3]:
        assert main(shlex.split(line)[1:]) == 0, line
    out = capsys.readouterr().out
    assert "target spinnaker2" in out and "kept real time (1 ms step)" in out and "dropped packets/sample 0.0" in out
    a, b = shlex.split(lines[3].split("&&")[0])[1:]
    assert (tmp_path / a).read_bytes() == (tmp_path / b).read_bytes()


def test_valid_crc_image_with_bad_content_exits_1(tmp_path, capsys):
    from nmc.cli import main
    from nmc.targets.image import read_image

    import nmc

    img = nmc.compile(_line_graph(), target="multicast-tiny")
    good = tmp_path / "good.nmb"
    img.save(str(good))
    loaded = read_image(str(good))
    keys = unpack(loaded.sections["multicast.keys"], "multicast.keys")
    keys["vertex_base"] = keys["vertex_base"] + 1
    loaded.sections["multicast.keys"] = pack(keys)
    bad = tmp_path / "bad.nmb"
    loaded.save(str(bad))
    np.save(tmp_path / "x.npy", np.ones((1, 8), np.float32))
    assert main(["run", str(bad), "--backend", "emulator", "--input", str(tmp_path / "x.npy")]) == 1
    assert "multicast.keys" in capsys.readouterr().err
    assert main(["inspect", str(bad)]) == 1


@pytest.mark.parametrize("name", ["spinnaker1", "spinnaker1-board", "spinnaker2", "spinnaker2-board"])
def test_every_figure_names_its_source_or_says_assumption(name):
    import re

    from nmc.targets.chip import TOP, chips_dir

    for line in (chips_dir() / f"{name}.toml").read_text().splitlines():
        if re.match(r"^\s*[a-z_]+\s*=", line) and line.split("=")[0].strip() not in TOP:
            comment = line.partition("#")[2]
            assert re.search(r"\[(F14|GB|SN|S12|DS|H21|SM)\]|assumption|derived", comment), f"{name}: no source for: {line}"


def test_doc_describes_every_key_and_section():
    import dataclasses
    from pathlib import Path

    from nmc.targets.multicast.chip import SECTIONS
    from nmc.targets.multicast.sections import SECTIONS as IMAGE_SECTIONS

    text = (Path(__file__).resolve().parent.parent / "docs" / "multicast-target.md").read_text(encoding="utf-8")
    for section, cls in SECTIONS.items():
        assert f"`[{section}]`" in text, section
        for f in dataclasses.fields(cls):
            assert f"`{f.name}`" in text, f"[{section}] {f.name} is not in docs/multicast-target.md"
    for name in IMAGE_SECTIONS:
        assert f"`{name}`" in text, name


def test_inspect_lists_chips_cores_and_router_tables_before_and_after(tmp_path, capsys):
    import nmc
    from nmc.cli import main

    path = tmp_path / "line.nmb"
    nmc.compile(_line_graph(), target="multicast-tiny").save(str(path))
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "chips (" in out and "cores (" in out
    assert "router (0, 0) before compression" in out and "router (0, 0) after compression" in out
    assert main(["inspect", str(path), "--json"]) == 0
    import json

    info = json.loads(capsys.readouterr().out)
    assert info["tables"]["chips"][0]["capacity"] == 64
    pytest.importorskip("matplotlib")
    assert main(["inspect", str(path), "--plot", str(tmp_path / "board.png")]) == 0
    assert (tmp_path / "board.png").read_bytes()[:4] == b"\x89PNG"

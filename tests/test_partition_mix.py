"""The class-neutral partitioner's mixing of layers on cores (docs/mesh-target.md,
"Partitioning"): block order, cores mixed by every resource at once and still within every
limit, images that run bit-identically, and the multicast lower bound holding for any core."""

from __future__ import annotations

import re
import types

import numpy as np
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from test_emulator import TEST_CHIP, random_graph
from test_emulator import assert_identical as assert_mesh_identical
from test_mesh_mapping import _brute_force_usage, mapped

import nmc.targets.mapping.partition as partition
from nmc.ir.ann import Input, Output
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.targets.chip import parse_chip
from nmc.targets.mapping.netlist import Netlist, synapses
from nmc.targets.mapping.shapes import block_run_boxes, box_ids
from nmc.targets.mesh.sections import emit_sections


@pytest.mark.parametrize("shape,block", [((3, 4, 5), (2, 3, 2)), ((1, 1, 7), (1, 1, 3)), ((4, 3, 3), (4, 3, 3)),
                                         ((5, 6, 2), (3, 4, 1))])
def test_block_order_covers_every_cell_once_and_runs_are_its_slices(shape, block):
    n = int(np.prod(shape))
    order = []
    for k in range(n):  # cell k of the order: one box of one cell
        (box,) = block_run_boxes(k, k + 1, shape, block)
        order += box_ids(box, shape).tolist()
    assert sorted(order) == list(range(n))
    rng = np.random.default_rng(0)
    for _ in range(50):
        a = int(rng.integers(0, n))
        b = int(rng.integers(a + 1, n + 1))
        boxes = block_run_boxes(a, b, shape, block)
        cells = np.concatenate([box_ids(x, shape) for x in boxes])
        assert sorted(cells.tolist()) == sorted(order[a:b])
        blocks = -(-shape[0] // block[0]) * -(-shape[1] // block[1]) * -(-shape[2] // block[2])
        assert len(boxes) <= 5 * blocks


def _cnn(seed: int = 0) -> tuple[Graph, list[np.ndarray]]:
    """The project's CNN at a quarter of its channels: a 5x5 convolution (many neurons, few
    inputs each), a 10x10 stride-2 one (each neuron reads 4 x 100 sources), a dense layer."""
    rng = np.random.default_rng(seed)
    g = Graph("cnn", {"timesteps": 4})
    x = g.add(Input(declared_type=TensorType((1, 28, 28), "f32")), "x")
    e = g.add(Encode(x=x), "e")
    c1 = g.add(Project(src=e, kind="conv2d", weight=Blob(rng.integers(-20, 40, (4, 1, 5, 5)).astype(np.int8)),
                       exponent=1), "c1")
    h1 = g.add(Population(currents=[c1], declared_type=SpikeType((4, 24, 24)), bits=16, threshold=60), "h1")
    c2 = g.add(Project(src=h1, kind="conv2d", weight=Blob(rng.integers(-20, 40, (8, 4, 10, 10)).astype(np.int8)),
                       strides=(2, 2)), "c2")
    h2 = g.add(Population(currents=[c2], declared_type=SpikeType((8, 8, 8)), bits=16, threshold=200), "h2")
    c3 = g.add(Project(src=h2, kind="dense", weight=Blob(rng.integers(-20, 40, (10, 512)).astype(np.int8))), "c3")
    h3 = g.add(Population(currents=[c3], declared_type=SpikeType((10,)), bits=16, threshold=300), "h3")
    g.add(Output(values=[g.add(Decode(x=h3, mode="membrane"), "o")]))
    return g, [rng.random((2, 1, 28, 28)).astype(np.float32)]


def test_mixing_puts_an_axon_bound_layer_beside_a_neuron_bound_one(monkeypatch):
    """The second convolution's boxes fill a core's input axons long before its neurons, the
    first's fill its neurons: unmixed they take separate cores; mixed (smaller boxes of the
    second, runs of the first in the room they leave) the graph reaches its lower bound, every
    core within every limit (counted from the expanded synapses), bit-identical."""
    text = TEST_CHIP
    for key, value in (("neurons", 256), ("input_axons", 1024), ("output_axons", 4096)):
        text = re.sub(rf"(?m)^{key} = \d+", f"{key} = {value}", text)
    chip = parse_chip(text, "mix.toml")
    graph, inputs = _cnn()
    g, ctx = mapped(graph, "partition,place{seed=0,iterations=200},route", chip)
    verify(g)
    cores, lower = len(g.walk("hw.core")), g.meta["hw.cores_lower_bound"]
    assert lower == 12 and cores == 13  # ⌈(2304 + 512 + 10) / 256⌉; within 1.1 x
    assert any(len({v.name for v in c.pops}) > 1 for c in g.walk("hw.core"))  # layers share cores
    m, usage = _brute_force_usage(g, chip)
    for core in m.cores:
        n, axons, bits, outs = usage[core.id]
        assert (core.neurons, core.axons, core.synapse_bits, core.outputs) == (n, axons, bits, outs)
        assert n <= 256 and axons <= 1024 and outs <= 4096
    sections = emit_sections(g, chip)
    sections["chip"] = text.encode()
    assert_mesh_identical(graph, inputs, types.SimpleNamespace(sections=sections))
    monkeypatch.setattr(partition, "MIX_MAX_CORES", 0)
    assert len(mapped(graph, "partition", chip)[0].walk("hw.core")) == 14  # 9 + 4 + 1, unmixed


def test_multicast_mixing_fills_memory_bound_cores_with_neuron_bound_layers(monkeypatch):
    """On a multicast core (rows in local memory) the second convolution is bound by memory,
    the first by neurons: mixed, fewer cores, every core's exact bytes within its memory (the
    loader checks them), bit-identical to the reference and the CPU runtime."""
    from test_multicast import assert_identical, chip_text, image_of

    text = chip_text(app=16, neurons=255, rows_in="local")
    chip = parse_chip(text, "mc-mix.toml")
    graph, inputs = _cnn()
    image, g = image_of(graph, chip, text)
    mixed = len(g.walk("hw.core"))
    assert g.meta["hw.cores_lower_bound"] == 21 and mixed == 23
    assert any(len({v.name for v in c.pops}) > 1 for c in g.walk("hw.core"))
    assert_identical(graph, inputs, image)
    monkeypatch.setattr(partition, "MIX_MAX_CORES", 0)
    assert len(image_of(graph, chip, text)[1].walk("hw.core")) == 27


def test_multicast_mixing_by_the_binding_resource_reaches_the_bound(monkeypatch):
    """The reserve trial (partition._reserve): with 128 neurons per core, the memory-bound
    second convolution placed first on cores left room for the neuron-bound first one takes the
    CNN to its bound of 23 cores, one fewer than the refill alone; bit-identical to the reference
    and the CPU runtime, every core's bytes within its memory (the loader checks them)."""
    from test_multicast import assert_identical, chip_text, image_of

    text = chip_text(app=16, neurons=128, rows_in="local")
    chip = parse_chip(text, "mc-reserve.toml")
    graph, inputs = _cnn()
    image, g = image_of(graph, chip, text)
    assert g.meta["hw.cores_lower_bound"] == len(g.walk("hw.core")) == 23
    assert_identical(graph, inputs, image)
    monkeypatch.setattr(partition, "RESERVE_SHARES", ())
    assert len(image_of(graph, chip, text)[1].walk("hw.core")) == 24


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 2**31 - 1), st.sampled_from(["local", "sdram"]))
def test_multicast_lower_bound_charges_any_core_that_fits_at_most_one(seed, rows_in):
    """docs/multicast-target.md, "Lower bound": for any set of neurons whose rows fit one core
    (row headers for its distinct sources, a word per synapse, neuron state with rows in local
    memory), the neurons' charges (words over the memory their own fan-in's headers leave)
    add up to at most 1 — so no partition, whichever, has fewer cores than the bound."""
    from test_multicast import chip_text

    from nmc.targets.multicast.passes import cores_lower_bound, layer_costs

    chip = parse_chip(chip_text(neurons=64, rows_in=rows_in), "bound.toml")
    c = chip.core
    graph, _ = random_graph(seed % 1000)
    net = Netlist(graph)
    memory = c.local_memory_bytes if rows_in == "local" else c.row_memory_bytes
    # every neuron: its (global source, synapse) pairs, from the expanded synapse lists
    sources: dict = {}
    reads: dict = {}  # every neuron: the source ops it reads (a master-table entry each, at least)
    for pop in net.populations:
        for p in (cur.owner for cur in pop.currents):
            src, tgt, _ = synapses(p)
            base = net.source_offset[p.src.owner]
            for s, t in zip(src.tolist(), tgt.tolist()):
                sources.setdefault((pop, t), []).append(base + s)
                reads.setdefault((pop, t), set()).add(p.src.owner)
    rng = np.random.default_rng(seed)
    neurons = [(pop, i) for pop in net.populations for i in range(pop.result.type.size)]
    costs = {pop: layer_costs(pop) for pop in net.populations}
    checked = 0
    for _ in range(30):
        pick = rng.choice(len(neurons), size=int(rng.integers(1, min(len(neurons), 24) + 1)), replace=False)
        chosen = [neurons[k] for k in pick]
        rows = {s for key in chosen for s in sources.get(key, [])}
        words = sum(len(sources.get(key, [])) for key in chosen)
        entries = len(set().union(*(reads.get(key, set()) for key in chosen))) * c.master_entry_bytes
        used = len(rows) * c.row_header_bytes + words * c.synapse_bytes + (len(chosen) * c.neuron_bytes
                                                                           if rows_in == "local" else 0)
        local = (entries + len(chosen) * c.neuron_bytes) if rows_in == "sdram" else 0
        if used + (entries if rows_in == "local" else 0) > memory or local > c.local_memory_bytes:
            continue
        checked += 1
        # the bound of exactly these neurons, as layers of one neuron each, is at most one core
        single = []
        for pop, i in chosen:
            n, syn, fan, ent = costs[pop]
            if np.ndim(syn):
                single.append((1, syn[i:i + 1], fan[i:i + 1], ent[i:i + 1]))
            else:  # an irregular layer: the same F and E for all, its words counted per neuron
                single.append((1, len(sources.get((pop, i), [])), fan, ent))
        assert cores_lower_bound(chip, single) <= 1
    event(f"checked {min(checked, 1)}+ sets")


@pytest.mark.parametrize("rows_in", ["local", "sdram"])
def test_lower_bound_entries_are_no_more_than_any_core_needs(rows_in):
    """docs/multicast-target.md, "Lower bound": the master-table entries the bound charges a
    neuron (its sources over the most neurons one vertex of their population holds) are no more
    than those of any core holding it, on the quarter-width CNN cut for 64- and 128-neuron cores;
    and they are not all zero (the second convolution's neurons read 400 sources)."""
    from test_multicast import chip_text
    from test_multicast import mapped as mc_mapped

    from nmc.targets.multicast.passes import lower_bound_costs, master_entries

    graph, _ = _cnn()
    charged = 0
    for neurons in (64, 128):
        chip = parse_chip(chip_text(app=16, neurons=neurons, rows_in=rows_in), "mc-entries.toml")
        g = mc_mapped(graph, chip, "mc-partition")
        net = Netlist(g)
        costs = lower_bound_costs(chip, net)
        cores = sorted(g.walk("hw.core"), key=lambda c: c.id)
        runs = [[(v.owner, a, b) for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2])] for c in cores]
        entries, _ = master_entries(net, runs, [partition.core_pieces(net, c.pops, c.slices) for c in cores])
        for k, core in enumerate(runs):
            for pop, a, b in core:
                least = int(np.max(costs[pop][3][a:b]))
                assert least <= entries[k], (neurons, k, pop.result.name)
                charged = max(charged, least)
    assert charged > 1

"""Fan-in splitting (docs/mesh-target.md, "Fan-in splitting"): neurons with more inputs than one
core receives are split into dendrite cores that forward partial sums to the soma core; the
emulator runs the split and stays bit-identical to the reference semantics and the CPU runtime;
the ``mesh.fanin`` section is checked on load; a chip without the mechanism refuses with a hint."""

from __future__ import annotations

import types

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.ir.ann import Input, Output
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.passmanager import PassContext, PassManager, parse_pipeline
from nmc.runner import run
from nmc.targets.chip import parse_chip
from nmc.targets.mesh.emulator import prepare
from nmc.targets.mesh.sections import emit_sections, pack, unpack

from mesh_chip_text import mesh_chip_text

FANIN = '[fanin]\nmechanism = "partial-sums"\npartial_bits = BITS\n'
MAPPING = "partition,place{seed=0,iterations=200},route"


def chip_text(fanin: bool = True, bits: int = 24, shared: bool = False) -> str:
    text = mesh_chip_text("fanin-test", "fan-in tests: cores of 8 neurons and 24 input axons", (16, 16, 2, 1),
                          neurons=8, input_axons=24, shared_weights=shared)
    return text + FANIN.replace("BITS", str(bits)) if fanin else text


def image_of(graph: Graph, text: str):
    chip = parse_chip(text, "fanin-test.toml")
    g = graph.clone()
    PassManager(parse_pipeline(MAPPING), PassContext(target=chip)).run(g)
    sections = emit_sections(g, chip)
    sections["chip"] = text.encode()
    return types.SimpleNamespace(sections=sections), g


def _pop(g, currents, shape, rng, bits=16):
    return g.add(Population(currents=currents, declared_type=SpikeType(shape), bits=bits,
                            threshold=int(rng.integers(5, 40)), bias=int(rng.integers(-2, 3)),
                            du=int(rng.choice([0, 1024, 4096])), dv=int(rng.choice([0, 512])), v0=0,
                            reset=str(rng.choice(["subtract", "zero"]))), f"p{len(g.ops)}")


def net(seed: int = 0, encoding: str = "rate", C: int = 4, H: int = 4, out_c: int = 6, n_out: int = 5,
        wmax: int = 20, residual: bool = True) -> tuple[Graph, list[np.ndarray]]:
    """A conv layer (3x3 over C channels: 9C inputs per neuron), a second conv joined by a
    delayed one-to-one branch (two projections into one population), and a dense classifier
    over everything: with 24 input axons per core, the convolutions and the dense layer split."""
    rng = np.random.default_rng(seed)
    g = Graph("fanin", {"timesteps": 5})
    x = g.add(Input(declared_type=TensorType((C, H, H), "f32")), "x")
    e = g.add(Encode(x=x, encoding=encoding, seed=3), "e")

    def w(shape):
        return Blob(rng.integers(-wmax, wmax + 1, size=shape).astype(np.int8))

    c1 = g.add(Project(src=e, kind="conv2d", weight=w((out_c, C, 3, 3)), pads=(1, 1, 1, 1), exponent=1), "c1")
    h1 = _pop(g, [c1], (out_c, H, H), rng)
    c2 = g.add(Project(src=h1, kind="conv2d", weight=w((out_c, out_c, 3, 3)), pads=(1, 1, 1, 1)), "c2")
    currents = [c2]
    if residual:
        currents.append(g.add(Project(src=h1, kind="one_to_one", weight=w((out_c, H, H)), delay=2), "sc"))
    h2 = _pop(g, currents, (out_c, H, H), rng)
    d = g.add(Project(src=h2, kind="dense", weight=w((n_out, out_c * H * H))), "d")
    y = _pop(g, [d], (n_out,), rng)
    g.add(Output(values=[g.add(Decode(x=y, mode="count"), "o"), g.add(Decode(x=h2, mode="membrane"), "m")]))
    verify(g)
    return g, [rng.random((3, C, H, H)).astype(np.float32)]


def assert_identical(graph, inputs, image):
    pops = graph.walk("snn.population")
    ref = semantics.run_snn(graph, inputs, record=pops)
    got = prepare(image)(inputs, record="all")
    for a, b in zip(got.outputs, ref.outputs):
        np.testing.assert_array_equal(a, b)
    for pop in pops:
        np.testing.assert_array_equal(got.recorded[pop.result.name], ref.spikes[pop])
    assert (got.spikes, got.synaptic_ops, got.steps) == (ref.spike_count, ref.synaptic_ops, ref.steps)
    cpu = run(graph, inputs[0], backend="cpu")
    for a, b in zip(cpu.outputs, ref.outputs):
        np.testing.assert_array_equal(a, b)
    return got


def dendrites(mapped: Graph) -> list:
    return [c for c in mapped.walk("hw.core") if c.partial]


@pytest.mark.parametrize("shared", [False, True])
def test_split_neurons_run_bit_identically(shared):
    graph, inputs = net(0)
    image, mapped = image_of(graph, chip_text(shared=shared))
    split = {c.pops[0].owner.result.name for c in dendrites(mapped)}
    assert split == {"p3", "p6", "p8"}  # both convolutions (36 and 54 inputs) and the dense layer (96)
    for c in mapped.walk("hw.core"):  # every core within its limits, the somas' partial axons included
        assert c.neurons <= 8 and c.axons <= 24
    got = assert_identical(graph, inputs, image)
    assert got.stats["partial_sums"] > 0
    # the partial sums cross links: hops count them beside the spikes' packets
    assert got.stats["hops"] == round(sum(link["spikes_per_step"] for link in got.stats["links"]) * 3 * got.steps)


def test_the_soma_adds_each_part_exactly_once():
    """Every neuron of a split population has one compartment per part, on dendrite cores
    naming the core that holds the neuron."""
    graph, _ = net(1)
    _, mapped = image_of(graph, chip_text())
    holder = {}
    for c in mapped.walk("hw.core"):
        if not c.partial:
            for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2]):
                holder.update({(v.owner, j): c.id for j in range(a, b)})
    seen: dict = {}
    for c in dendrites(mapped):
        pop = c.pops[0].owner
        pieces = tuple(c.partial[1:])
        for v, a, b in zip(c.pops, c.slices[::2], c.slices[1::2]):
            for j in range(a, b):
                assert holder[(pop, j)] == c.partial[0]
                seen.setdefault((pop, j), []).append(pieces)
    by_pop: dict = {}
    for (pop, j), parts in seen.items():
        by_pop.setdefault(pop, set()).add(tuple(sorted(parts)))
    assert all(len(v) == 1 for v in by_pop.values())  # the same parts for every neuron of a population
    assert all(len(parts) >= 2 for parts in seen.values())


def test_narrower_partial_sums_split_finer_and_stay_exact():
    graph, inputs = net(2, wmax=60)
    wider = {"input_axons = 24": "input_axons = 40"}  # parts as large as 40 inputs: the width binds
    wide = dendrites(image_of(graph, chip_text(bits=24).replace(*wider.popitem()))[1])
    image, mapped = image_of(graph, chip_text(bits=11).replace("input_axons = 24", "input_axons = 40"))
    narrow = dendrites(mapped)
    assert len(narrow) > len(wide)
    assert_identical(graph, inputs, image)
    # every dendrite core's partial sum is bounded by Σ|w|·2^e within 11 signed bits
    for c in narrow:
        pop = c.pops[0].owner
        bound = 0
        for i, lo, hi in zip(c.partial[1::3], c.partial[2::3], c.partial[3::3]):
            p = pop.currents[i].owner
            wabs = np.abs(p.weight.data.astype(np.int64))
            if p.kind == "conv2d":
                bound += int(wabs[:, lo:hi].sum(axis=(2, 3)).max(axis=0).sum()) << p.exponent
            elif p.kind == "dense":
                bound += int(wabs[:, lo:hi].max(axis=0).sum()) << p.exponent
            else:
                bound += int(wabs.max()) << p.exponent
        assert bound <= (1 << 10) - 1


def test_a_chip_without_the_mechanism_refuses_with_a_hint():
    graph, _ = net(0)
    with pytest.raises(NmcError, match=r"receives 36 distinct inputs; a core has 24 input axons") as err:
        image_of(graph, chip_text(fanin=False))
    assert 'mechanism = "partial-sums"' in err.value.hint


def test_a_part_that_cannot_fit_is_refused():
    graph, _ = net(0, wmax=100)  # one input channel's 9 weights of up to 100 << 1 exceed 8 bits
    with pytest.raises(NmcError, match="even with fan-in splitting"):
        image_of(graph, chip_text(bits=8))


def test_unbounded_inputs_are_not_split():
    graph, _ = net(0, encoding="current")
    with pytest.raises(NmcError, match="bounded only for spike inputs"):
        image_of(graph, chip_text())


def test_a_graph_that_fits_has_no_fanin_section():
    graph, inputs = net(0, C=1, H=3, out_c=2, n_out=2, residual=False)
    image, mapped = image_of(graph, chip_text())
    assert not dendrites(mapped) and "mesh.fanin" not in image.sections
    assert_identical(graph, inputs, image)


def test_the_textual_ir_round_trips_dendrite_cores():
    from nmc.ir.parser import parse_ir
    from nmc.ir.printer import print_graph

    graph, _ = net(0)
    _, mapped = image_of(graph, chip_text())
    text = print_graph(mapped, print_blobs=True)
    assert "partial = [" in text
    assert print_graph(parse_ir(text), print_blobs=True) == text


# ------------------------------------------------------------------------------ the loader


@pytest.fixture(scope="module")
def split_image():
    graph, inputs = net(4)
    return image_of(graph, chip_text())[0], inputs


def _edit(image, change):
    arrays = unpack(image.sections["mesh.fanin"], "mesh.fanin")
    arrays = {k: v.copy() for k, v in arrays.items()}
    change(arrays)
    return types.SimpleNamespace(sections={**image.sections, "mesh.fanin": pack(arrays)})


@pytest.mark.parametrize("change, message", [
    (lambda a: a.update(partial_bits=np.array([1])), "partial_bits"),
    (lambda a: a.update(part_hi=a["part_hi"] + 1000), "outside its kernel's split axis"),
    (lambda a: a.update(part_kernel=a["part_kernel"] + 1000), "names no kernel row"),
    (lambda a: a.update(dendrite_soma=a["dendrite_core"]), "soma is a dendrite core|not on its dendrite's soma"),
    (lambda a: a.update(comp_target=np.roll(a["comp_target"], 1)), "not on its dendrite's soma|do not cover"),
    (lambda a: a.update(path_links=a["path_links"] + 100000), "path_links"),
    (lambda a: a.update(pieces=a["pieces"][:-1], piece_start=np.minimum(a["piece_start"], len(a["pieces"]) - 1)),
     "do not cover|offset table"),
    (lambda a: a.pop("comp_start"), "comp_start"),
])
def test_a_bad_fanin_section_is_refused(split_image, change, message):
    image, _ = split_image
    with pytest.raises(NmcError, match=message):
        prepare(_edit(image, change))


def test_dropping_the_fanin_section_is_refused(split_image):
    """Without the section the split kernels' inputs route to the dendrites, not the somas."""
    image, _ = split_image
    sections = dict(image.sections)
    del sections["mesh.fanin"]
    with pytest.raises(NmcError, match="mesh.routes"):
        prepare(types.SimpleNamespace(sections=sections))


def test_the_loaded_section_runs(split_image):
    image, inputs = split_image
    assert prepare(image)(inputs).stats["partial_sums"] > 0


# -------------------------------------------------------------------------- property test


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 2**31 - 1), C=st.integers(1, 5), H=st.integers(2, 5), out_c=st.integers(1, 7),
       n_out=st.integers(1, 9), bits=st.sampled_from([10, 12, 24]), shared=st.booleans(),
       encoding=st.sampled_from(["rate", "poisson"]), residual=st.booleans())
def test_random_split_graphs_are_bit_identical(seed, C, H, out_c, n_out, bits, shared, encoding, residual):
    graph, inputs = net(seed, encoding, C, H, out_c, n_out, wmax=int(np.random.default_rng(seed).integers(1, 40)),
                        residual=residual)
    try:
        image, _ = image_of(graph, chip_text(bits=bits, shared=shared))
    except NmcError as err:  # only a piece too large for the partial-sum width may be refused
        assert "even with fan-in splitting" in str(err)
        return
    assert_identical(graph, inputs, image)


def test_the_emulator_sends_partial_sums_through_their_width(split_image):
    """The split really runs as messages: narrowing ``partial_bits`` in the section (which the
    mapping would never choose for these weights) clips them and changes the outputs."""
    image, inputs = split_image
    exact = prepare(image)(inputs)
    clipped = prepare(_edit(image, lambda a: a.update(partial_bits=np.array([3]))))(inputs)
    assert clipped.stats["partial_sums"] > 0
    assert any(not np.array_equal(a, b) for a, b in zip(exact.outputs, clipped.outputs))

"""The textual IR's round trip (docs/design.md §3, contract): ``print(parse(print(g))) == print(g)``,
float32 values included, on random graphs of every op kind — and the parsed graph means
exactly the same: the reference semantics gives bitwise identical outputs.

Also: named blobs through the ``.npz`` sidecar (``write_ir``/``read_ir``), the ``--print-blobs``
(base64) form, ``--print-debuginfo`` locations, and ``// -----`` split files."""

from __future__ import annotations

import math
import os
import tempfile

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, find, given, settings
from hypothesis import strategies as st
from strategies import (
    ANN_BUILDERS,
    FEATURES,
    SPECIAL_F32,
    TIMESTEPS,
    ann_graphs,
    features_of,
    graphs,
    inputs_for,
    snn_graphs,
)

from nmc import semantics
from nmc.diagnostics import Loc, NmcError
from nmc.ir import ann
from nmc.ir.core import OPS, Blob, Graph, Random, Splat
from nmc.ir.io import format_ir, read_ir, sidecar_path, write_ir
from nmc.ir.parser import parse_ir, parse_ir_cases, split_cases
from nmc.ir.printer import Printer, print_graph
from nmc.ir.types import TensorType

FILE = "roundtrip.nmir"
QUICK = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def same_bits(a: np.ndarray, b: np.ndarray, what: str) -> None:
    """``a`` and ``b`` are the same array, bit for bit (NaNs and signed zeros included)."""
    a, b = np.asarray(a), np.asarray(b)
    assert (a.dtype, a.shape) == (b.dtype, b.shape), what
    np.testing.assert_array_equal(a, b, err_msg=what)
    assert a.tobytes() == b.tobytes(), what


def assert_same_graph(g, g2) -> None:
    """Same op kinds, result types and blob contents (bitwise), op by op."""
    assert [op.KIND for op in g.ops] == [op.KIND for op in g2.ops]
    for op, op2 in zip(g.ops, g2.ops):
        if op.result is not None:
            assert op.result.type == op2.result.type
        pairs = list(zip(op.blobs(), op2.blobs(), strict=True))
        for (f, b), (f2, b2) in pairs:
            assert f == f2
            same_bits(b.data, b2.data, f"{op.KIND} blob {f}")


def assert_same_meaning(g, g2) -> None:
    """The reference semantics gives bitwise identical outputs on ``g`` and ``g2``."""
    inputs = inputs_for(g)
    with np.errstate(all="ignore"):
        r1 = semantics.run(g, inputs, timesteps=TIMESTEPS)
        r2 = semantics.run(g2, inputs, timesteps=TIMESTEPS)
    assert len(r1.outputs) == len(r2.outputs) == len(g.outputs)
    for i, (a, b) in enumerate(zip(r1.outputs, r2.outputs)):
        same_bits(a, b, f"output {i}")
    if isinstance(r1, semantics.SnnResult):
        assert (r1.steps, r1.spike_count, r1.synaptic_ops) == (r2.steps, r2.spike_count, r2.synaptic_ops)


def roundtrip(g, **options):
    """(text, parsed graph) of ``g`` printed with ``options``, its sidecar served from memory."""
    p = Printer(g, **options)
    text = p.text()
    g2 = parse_ir(text, FILE, sidecar=p.sidecar.get)
    return text, g2


# ------------------------------------------------------------------------- the property


@pytest.mark.slow
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs())
def test_print_parse_print_is_exact_and_keeps_meaning(g):
    text, g2 = roundtrip(g)
    assert print_graph(g2) == text
    assert_same_graph(g, g2)
    assert_same_meaning(g, g2)


@QUICK
@given(ann_graphs())
def test_parsed_graph_equals_a_clone(g):
    # clone() is what passes start from: it must print as the original does
    assert print_graph(g.clone()) == print_graph(g)


# ------------------------------------------------------------------------------ coverage


def test_ann_builders_cover_every_ann_op_kind():
    ann_kinds = {k for k in OPS if k.startswith("ann.")}
    assert set(ANN_BUILDERS) | {"ann.output"} == ann_kinds


def test_features_name_every_op_kind_and_enum_choice():
    kinds = {f for f in FEATURES if ":" not in f}
    assert set(OPS) <= kinds
    for choice in ("rate", "poisson", "current", "spikes"):
        assert f"snn.encode:encoding={choice}" in FEATURES
    for choice in ("dense", "conv2d", "pool", "one_to_one", "sparse"):
        assert f"snn.project:kind={choice}" in FEATURES
    assert {"snn.population:reset=zero", "snn.decode:mode=membrane"} <= FEATURES


@pytest.mark.slow
def test_strategies_draw_every_feature():
    """Every op kind, enum choice and structural variant is actually drawn: a fixed-seed
    stream of graphs reaches all of :data:`FEATURES`."""
    seen: set[str] = set()

    @settings(max_examples=300, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.data())
    def collect(data):
        seen.update(features_of(data.draw(graphs())))

    collect()
    for feature in sorted(FEATURES - seen):  # rare ones: search on until found (or fail);
        find(graphs(), lambda g, f=feature: f in features_of(g),  # a found graph needs no shrinking
             settings=settings(max_examples=3000, deadline=None, database=None,
                               phases=[Phase.generate], suppress_health_check=list(HealthCheck)))


# --------------------------------------------------------------------------- blob forms


@QUICK
@given(graphs())
def test_sidecar_through_write_ir_and_read_ir(g):
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "g.nmir")
        write_ir(g, path)
        text = open(path, encoding="utf-8").read()
        named = Printer(g).sidecar
        assert os.path.exists(sidecar_path(path)) == bool(named)
        if named:
            with np.load(sidecar_path(path)) as npz:
                assert sorted(npz.files) == sorted(named)
        (g2,) = read_ir(path)
        assert print_graph(g2) == text
        assert_same_graph(g, g2)
        write_ir(g2, path)  # rewriting a file that has a sidecar
        assert open(path, encoding="utf-8").read() == text


@QUICK
@given(graphs())
def test_print_blobs_base64_needs_no_sidecar(g):
    p = Printer(g, print_blobs=True)
    assert p.sidecar == {}
    text = p.text()
    g2 = parse_ir(text, FILE)  # no sidecar at all
    assert print_graph(g2, print_blobs=True) == text
    assert print_graph(g2) == print_graph(g)
    assert_same_graph(g, g2)


def big_blob_graph(data: np.ndarray, name: str | None = "w") -> Graph:
    g = Graph("g")
    c = g.add(ann.Constant(value=Blob(data, name=name)), "c")
    g.add(ann.Output(values=[c]))
    return g


def test_blob_forms_print_as_documented():
    small = np.arange(16, dtype=np.float32).reshape(4, 4)
    text = print_graph(big_blob_graph(small))
    assert "dense<[[0.0, 1.0, 2.0, 3.0], [4.0, 5.0, 6.0, 7.0]," in text and "blob @" not in text

    big = np.arange(17, dtype=np.int16)
    p = Printer(big_blob_graph(big))
    assert p.text().splitlines()[1] == "blob @w : tensor<17xi16>"
    assert "{value = @w}" in p.text()
    same_bits(p.sidecar["w"], big, "sidecar")

    b64 = print_graph(big_blob_graph(big), print_blobs=True).splitlines()[1]
    assert b64.startswith('blob @w = base64<"AAABAAIA') and b64.endswith('"> : tensor<17xi16>')

    same = np.full((3, 7), -0.0, dtype=np.float32)
    assert "{value = splat<-0.0> : tensor<3x7xf32>}" in print_graph(big_blob_graph(same))

    splat = Blob(np.full((2, 2), 0.5, np.float32), init=Splat(0.5))
    g = Graph("g")
    c = g.add(ann.Constant(value=splat), "c")
    g.add(ann.Output(values=[c]))
    assert "splat<0.5> : tensor<2x2xf32>" in print_graph(g)


def test_random_initialiser_prints_as_written_and_rematerialises():
    text = """graph @g
%c = ann.constant {value = random<normal, seed = 7, scale = 0.25> : tensor<40x3xf32>} : tensor<40x3xf32>
ann.output(%c)
"""
    g = parse_ir(text, FILE)
    b = g.ops[0].value
    assert b.init == Random("normal", 7, 0.25) and b.data.shape == (40, 3)
    assert print_graph(g) == text
    again = parse_ir(print_graph(g), FILE).ops[0].value
    same_bits(b.data, again.data, "random blob")


@pytest.mark.parametrize("name", sorted(SPECIAL_F32))
def test_special_float32_values_keep_their_bits(name):
    value = SPECIAL_F32[name]
    for shape in ((3,), (20,)):  # inline and named
        data = np.zeros(shape, np.float32)
        data[1] = value
        text, g2 = roundtrip(big_blob_graph(data))
        same_bits(g2.ops[0].value.data, data, name)
        assert print_graph(g2) == text


def test_float_attributes_keep_their_bits():
    for alpha in (-0.0, 5e-324, 1e308, 0.1, 1 / 3, math.inf, -math.inf, math.nan, -math.nan):
        g = Graph("g")
        x = g.add(ann.Input(declared_type=TensorType((2,))), "x")
        y = g.add(ann.LeakyRelu(x=x, alpha=alpha), "y")
        g.add(ann.Output(values=[y]))
        text, g2 = roundtrip(g)
        same_bits(np.float64(g2.ops[1].alpha), np.float64(alpha), repr(alpha))
        assert print_graph(g2) == text


def test_string_metadata_round_trips():
    g = Graph("g", {"mode": "abc", "kind": "dense", "note": 'say "hi"\n', "dt": 0.001, "flags": [True, "x"]})
    x = g.add(ann.Input(declared_type=TensorType((2,))), "x")
    g.add(ann.Output(values=[x]))
    text, g2 = roundtrip(g)
    assert g2.meta == g.meta
    assert print_graph(g2) == text


# ------------------------------------------------------------------------------ locations

LOCS = st.one_of(
    st.builds(Loc, st.text(max_size=8), st.integers(0, 10**6), st.integers(0, 999)),
    st.builds(Loc, st.text(max_size=8), node=st.text(max_size=8), op_type=st.none() | st.text(min_size=1, max_size=6)),
)


@QUICK
@given(graphs(), st.data())
def test_debuginfo_locations_round_trip(g, data):
    for op in g.ops:
        op.loc = data.draw(LOCS)
    text, g2 = roundtrip(g, debuginfo=True)
    assert print_graph(g2, debuginfo=True) == text
    assert [op.loc for op in g2.ops] == [op.loc for op in g.ops]
    assert print_graph(g2) == print_graph(g)  # without debuginfo, no trace of them


def test_ops_without_location_get_their_line():
    text = "graph @g\n\n%x = ann.input : tensor<2xf32>\n  %y = ann.relu(%x) : tensor<2xf32>\nann.output(%y)\n"
    g = parse_ir(text, "f.nmir")
    assert [op.loc for op in g.ops] == [Loc("f.nmir", 3, 1), Loc("f.nmir", 4, 3), Loc("f.nmir", 5, 1)]
    assert 'loc("f.nmir":4:3)' in print_graph(g, debuginfo=True)


# ---------------------------------------------------------------------------- split files


@QUICK
@given(st.lists(graphs(), min_size=1, max_size=3))
def test_split_file_cases_round_trip_and_keep_line_numbers(gs):
    text, sidecar = format_ir(gs, print_blobs=True)
    assert sidecar == {}
    parsed = parse_ir_cases(text, FILE)
    assert len(parsed) == len(gs) == len(split_cases(text))
    for g, g2 in zip(gs, parsed):
        assert print_graph(g2, print_blobs=True) == print_graph(g, print_blobs=True)
    lines = text.split("\n")
    for g2 in parsed:
        p = Printer(g2, print_blobs=True)
        for op in g2.ops:  # each op's location is its line in the whole file
            assert (op.loc.file, op.loc.col) == (FILE, 1)
            assert lines[op.loc.line - 1] == p.op_text(op)
    assert format_ir(parsed, print_blobs=True)[0] == text


def test_split_file_error_reports_the_line_in_the_whole_file():
    text = "\n".join([
        "graph @a",
        "%x = ann.input : tensor<2xf32>",
        "ann.output(%x)",
        "// -----",
        "graph @b",
        "%x = ann.input : tensor<2xf32>",
        "%y = ann.relu(%z) : tensor<2xf32>",
        "ann.output(%y)",
    ])
    with pytest.raises(NmcError) as err:
        parse_ir_cases(text, "s.nmir")
    assert err.value.render().splitlines() == [
        "s.nmir:7:15: error: use of undefined value %z",
        "  %y = ann.relu(%z) : tensor<2xf32>",
        "                ^",
        "  hint: values must be defined before use (only a population may name a later projection)",
    ]
    g1 = parse_ir_cases(text.replace("%z", "%x"), "s.nmir")[1]
    assert [op.loc.line for op in g1.ops] == [6, 7, 8]


def test_snn_graphs_run_for_latency_steps():
    # the semantic comparison above is only as good as the runs it compares: spiking runs
    # must actually step and produce spikes on some drawn graphs
    spikes = []

    @settings(max_examples=40, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(snn_graphs())
    def run(g):
        res = semantics.run_snn(g, inputs_for(g), timesteps=TIMESTEPS)
        assert res.steps == semantics.latency_steps(g, TIMESTEPS) >= TIMESTEPS
        spikes.append(res.spike_count)

    run()
    assert sum(s > 0 for s in spikes) >= 10

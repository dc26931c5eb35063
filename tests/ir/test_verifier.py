"""The verifier (docs/design.md §3): each rule of nmc/ir/verifier.py and of the ops' ``infer_type`` /
``verify`` methods, broken once, with the message (and location) checked exactly."""

from __future__ import annotations

import numpy as np
import pytest

from nmc.diagnostics import NmcError
from nmc.ir import ann, snn, verifier
from nmc.ir.core import Blob, Graph, Value, VerifyError
from nmc.ir.parser import parse_ir
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify

# inputs every case may use: %x (4 floats), %i (2x5x5), and their encoders %s, %t
PRELUDE = """graph @g\n%x = ann.input : tensor<4xf32>\n%i = ann.input : tensor<2x5x5xf32>\n%s = snn.encode(%x) : spikes<4>\n%t = snn.encode(%i) : spikes<2x5x5>\n"""

# (the offending line(s), "line:col" of the diagnostic, the message)
OP_RULES = [
    ('%y = ann.dense(%x) {weight = splat<1.0> : tensor<3x5xf32>} : tensor<3xf32>',
     '6:1', "'ann.dense' op weight [3, 5] does not match input tensor<4xf32>"),
    ('%y = ann.dense(%x) {weight = splat<1.0> : tensor<3x4xf32>, bias = splat<0.0> : tensor<2xf32>} : tensor<3xf32>',
     '6:1', "'ann.dense' op bias [2] must be [3]"),
    ('%y = ann.dense(%i) {weight = splat<1.0> : tensor<3x4xf32>} : tensor<3xf32>',
     '6:1', "'ann.dense' op expects a rank-1 tensor as its operand (per sample), got tensor<2x5x5xf32>"),
    ('%y = ann.conv(%i) {groups = 2, weight = splat<1.0> : tensor<3x1x3x3xf32>} : tensor<3x3x3xf32>',
     '6:1', "'ann.conv' op groups=2 must divide input channels 2 and output channels 3"),
    ('%y = ann.conv(%i) {weight = splat<1.0> : tensor<2x2x6x6xf32>} : tensor<2x1x1xf32>',
     '6:1', "'ann.conv' op window does not fit the input tensor<2x5x5xf32> (output spatial shape [0, 0])"),
    ('%y = ann.conv(%i) {strides = [0, 1], weight = splat<1.0> : tensor<2x2x3x3xf32>} : tensor<2x3x3xf32>',
     '6:1', "'ann.conv' op needs 2 strides >= 1, got [0, 1]"),
    ('%y = ann.maxpool(%i) {kernel = [0, 2]} : tensor<2x3x3xf32>',
     '6:1', "'ann.maxpool' op bad kernel [0, 2]"),
    ('%y = ann.maxpool(%i) {kernel = [2, 2], pads = [1, 1]} : tensor<2x3x3xf32>',
     '6:1', "'ann.maxpool' op needs 4 pads >= 0, got [1, 1]"),
    ('%y = ann.batchnorm(%i) {bias = splat<0.0> : tensor<2xf32>, mean = splat<0.0> : tensor<2xf32>, scale = splat<1.0> : tensor<3xf32>, var = splat<1.0> : tensor<2xf32>} : tensor<2x5x5xf32>',
     '6:1', "'ann.batchnorm' op scale [3] must be [2]"),
    ('%y = ann.clip(%x) {max = 0.0, min = 1.0} : tensor<4xf32>',
     '6:1', "'ann.clip' op min 1.0 exceeds max 0.0"),
    ('%y = ann.prelu(%x) {slope = splat<1.0> : tensor<3xf32>} : tensor<4xf32>',
     '6:1', "'ann.prelu' op slope [3] does not broadcast to tensor<4xf32>"),
    ('%y = ann.softmax(%x) {axis = 1} : tensor<4xf32>',
     '6:1', "'ann.softmax' op axis 1 out of range for tensor<4xf32>"),
    ('%y = ann.add(%x, %i) : tensor<4xf32>',
     '6:1', "'ann.add' op operands tensor<4xf32> and tensor<2x5x5xf32> do not broadcast"),
    ('%c = ann.constant {value = splat<1> : tensor<4xi32>} : tensor<4xi32>\n%y = ann.add(%x, %c) : tensor<4xf32>',
     '7:1', "'ann.add' op operands differ in element type: tensor<4xf32> and tensor<4xi32>"),
    ('%y = ann.concat(%x, %i) : tensor<4xf32>',
     '6:1', "'ann.concat' op inputs tensor<4xf32> and tensor<2x5x5xf32> cannot be joined along axis 0"),
    ('%y = ann.concat(%x) {axis = 1} : tensor<4xf32>',
     '6:1', "'ann.concat' op axis 1 out of range for tensor<4xf32>"),
    ('%y = ann.reshape(%x) {shape = [3]} : tensor<3xf32>',
     '6:1', "'ann.reshape' op cannot reshape tensor<4xf32> (4 elements) to [3]"),
    ('%y = ann.transpose(%i) {perm = [0, 0, 1]} : tensor<2x5x5xf32>',
     '6:1', "'ann.transpose' op perm [0, 0, 1] is not a permutation of 3 axes"),
    ('%y = ann.global_avgpool(%x) : tensor<4xf32>',
     '6:1', "'ann.global_avgpool' op expects a rank-2 or 3 tensor as its operand (per sample), got tensor<4xf32>"),
    ('%y = ann.relu(%s) : spikes<4>',
     '6:1', "'ann.relu' op expects a tensor as its operand, got spikes<4>"),
    ('%y = snn.encode(%s) : spikes<4>',
     '6:1', "'snn.encode' op expects a tensor input, got spikes<4>"),
    ('%y = snn.encode(%x) {encoding = poisson, phase = 128} : spikes<4>',
     '6:1', "'snn.encode' op encoding 'poisson' takes no phase"),
    ('%y = snn.encode(%x) {phase = 256} : spikes<4>',
     '6:1', "'snn.encode' op phase must lie in [0, 256) quanta of 1/256, got 256"),
    ('%y = snn.project(%x) {kind = dense, weight = splat<1.0> : tensor<4x4xf32>} : current<4>',
     '6:1', "'snn.project' op expects spikes as its source, got tensor<4xf32>"),
    ('%y = snn.project(%s) {delay = 0, kind = dense, weight = splat<1.0> : tensor<4x4xf32>} : current<4>',
     '6:1', "'snn.project' op delay must lie in 1..65535 steps, got 0"),
    ('%y = snn.project(%s) {exponent = -1, kind = dense, weight = splat<1.0> : tensor<4x4xf32>} : current<4>',
     '6:1', "'snn.project' op exponent must lie in 0..30 (a chip's weight_exponent_max is at most that), got -1"),
    ('%y = snn.project(%s) {kind = dense, weight = 1.0} : current<4>',
     '6:1', "'snn.project' op kind 'dense' needs a weight blob [out, in]"),
    ('%y = snn.project(%s) {kind = dense, weight = splat<1.0> : tensor<4x5xf32>} : current<4>',
     '6:1', "'snn.project' op weight [4, 5] does not match a source of 4 neurons (spikes<4>)"),
    ('%y = snn.project(%s) {kernel = [2, 2], kind = dense, weight = splat<1.0> : tensor<4x4xf32>} : current<4>',
     '6:1', "'snn.project' op kind 'dense' takes no 'kernel'"),
    ('%y = snn.project(%s) {kind = conv2d, weight = splat<1.0> : tensor<1x1x1x1xf32>} : current<4>',
     '6:1', "'snn.project' op kind 'conv2d' needs a [C, H, W] source, got spikes<4>"),
    ('%y = snn.project(%t) {groups = 2, kind = conv2d, weight = splat<1.0> : tensor<3x1x1x1xf32>} : current<3x5x5>',
     '6:1', "'snn.project' op weight [3, 1, 1, 1] with groups=2 does not match source spikes<2x5x5>"),
    ('%y = snn.project(%t) {kernel = [2], kind = pool, weight = 1.0} : current<2x4>',
     '6:1', "'snn.project' op needs a 2-D kernel, got [2]"),
    ('%y = snn.project(%t) {kernel = [2, 2], kind = pool, weight = splat<1.0> : tensor<3xf32>} : current<2x4x4>',
     '6:1', "'snn.project' op weight [3] does not broadcast to the output [2, 4, 4]"),
    ('%y = snn.project(%s) {kind = one_to_one, shape = [5], weight = 1.0} : current<5>',
     '6:1', "'snn.project' op shape [5] does not hold 4 neurons"),
    ('%y = snn.project(%s) {indices = dense<[0]> : tensor<1xi32>, indptr = dense<[0, 1, 1, 1, 1]> : tensor<5xi32>, kind = sparse, weight = dense<[1.0]> : tensor<1xf32>} : current<2>',
     '6:1', "'snn.project' op kind 'sparse' needs the target 'shape'"),
    ('%y = snn.project(%s) {indices = dense<[0]> : tensor<1xi32>, indptr = dense<[0, 1, 1, 1]> : tensor<4xi32>, kind = sparse, shape = [2], weight = dense<[1.0]> : tensor<1xf32>} : current<2>',
     '6:1', "'snn.project' op indptr must be 5 integers (source size + 1), got tensor<4xi32>"),
    ('%y = snn.project(%s) {indices = dense<[0]> : tensor<1xi32>, indptr = dense<[0, 1, 0, 1, 1]> : tensor<5xi32>, kind = sparse, shape = [2], weight = dense<[1.0]> : tensor<1xf32>} : current<2>',
     '6:1', "'snn.project' op indptr must start at 0 and never decrease"),
    ('%y = snn.project(%s) {indices = dense<[0, 1]> : tensor<2xi32>, indptr = dense<[0, 1, 1, 1, 1]> : tensor<5xi32>, kind = sparse, shape = [2], weight = dense<[1.0]> : tensor<1xf32>} : current<2>',
     '6:1', "'snn.project' op indices must be 1 integers (indptr[-1]), got tensor<2xi32>"),
    ('%y = snn.project(%s) {indices = dense<[2]> : tensor<1xi32>, indptr = dense<[0, 1, 1, 1, 1]> : tensor<5xi32>, kind = sparse, shape = [2], weight = dense<[1.0]> : tensor<1xf32>} : current<2>',
     '6:1', "'snn.project' op indices must lie in [0, 2)"),
    ('%y = snn.project(%s) {indices = dense<[0]> : tensor<1xi32>, indptr = dense<[0, 1, 1, 1, 1]> : tensor<5xi32>, kind = sparse, shape = [2], weight = dense<[1.0, 2.0]> : tensor<2xf32>} : current<2>',
     '6:1', "'snn.project' op weight must hold 1 synapse weights, got [2]"),
    ('%y = snn.population(%s) : spikes<4>',
     '6:1', "'snn.population' op input 0 delivers spikes<4>, expected current for 4 neurons (spikes<4>)"),
    ('%c = snn.project(%s) {kind = dense, weight = splat<1.0> : tensor<3x4xf32>} : current<3>\n%y = snn.population(%c) : spikes<4>',
     '7:1', "'snn.population' op input 0 delivers current<3>, expected current for 4 neurons (spikes<4>)"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<4>\n%y = snn.population(%c) : tensor<4xf32>',
     '7:1', "'snn.population' op must have a spikes type, got tensor<4xf32>"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<4>\n%y = snn.population(%c) {bits = 40} : spikes<4>',
     '7:1', "'snn.population' op bits must be 0 (float) or 2..32, got 40"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<4>\n%y = snn.population(%c) {du = 4097} : spikes<4>',
     '7:1', "'snn.population' op du must lie in [0, 4096]"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<4>\n%y = snn.population(%c) {dv = -1} : spikes<4>',
     '7:1', "'snn.population' op dv must lie in [0, 4096]"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<4>\n%y = snn.population(%c) {threshold = nan} : spikes<4>',
     '7:1', "'snn.population' op threshold contains NaN"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1.0} : current<4>\n%y = snn.population(%c) {bias = splat<0.0> : tensor<3xf32>} : spikes<4>',
     '7:1', "'snn.population' op bias [3] does not broadcast to spikes<4>"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1} : current<4>\n%y = snn.population(%c) {bits = 8, threshold = 2.5} : spikes<4>',
     '7:1', "'snn.population' op threshold must be integers in an integer (8-bit) population"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1} : current<4>\n%y = snn.population(%c) {bits = 8, du = dense<[1.0, 2.0, 3.5, 4.0]> : tensor<4xf32>} : spikes<4>',
     '7:1', "'snn.population' op du must be integers in an integer (8-bit) population"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1} : current<4>\n%y = snn.population(%c) {bits = 8, threshold = 128} : spikes<4>',
     '7:1', "'snn.population' op threshold does not fit the 8-bit state"),
    ('%c = snn.project(%s) {kind = one_to_one, weight = 1} : current<4>\n%y = snn.population(%c) {bits = 8, v0 = -129} : spikes<4>',
     '7:1', "'snn.population' op v0 does not fit the 8-bit state"),
    ('%y = snn.decode(%x) : tensor<4xf32>',
     '6:1', "'snn.decode' op expects a population's spikes, got tensor<4xf32>"),
    ('%y = snn.decode(%s) : tensor<4xf32>',
     '6:1', "'snn.decode' op must read a population"),
]


@pytest.mark.parametrize("body,where,message", OP_RULES, ids=[r[2][:60] for r in OP_RULES])
def test_op_rule(body, where, message):
    text = PRELUDE + body + "\nann.output(%y)\n"
    with pytest.raises(NmcError) as err:
        parse_ir(text, "t.nmir")
    e = err.value
    assert e.message == message
    assert f"{e.loc.line}:{e.loc.col}" == where
    line = text.split("\n")[e.loc.line - 1]
    assert e.render().splitlines()[:3] == [f"t.nmir:{where}: error: {message}", "  " + line, "  ^"]


def test_every_op_kind_has_a_broken_rule_above():
    kinds = {b.split("= ")[1].split("(")[0].split(" ")[0] for b, _, _ in OP_RULES}
    expected = {"ann.dense", "ann.conv", "ann.maxpool", "ann.batchnorm", "ann.clip", "ann.prelu",
                "ann.softmax", "ann.add", "ann.concat", "ann.reshape", "ann.transpose",
                "ann.global_avgpool", "ann.relu", "snn.encode", "snn.project", "snn.population",
                "snn.decode", "ann.constant"}
    assert expected <= kinds


# ---------------------------------------------------------------- graph rules (verifier.py)


def small_graph():
    g = Graph("g")
    x = g.add(ann.Input(declared_type=TensorType((4,))), "x")
    y = g.add(ann.Relu(x=x), "y")
    g.add(ann.Output(values=[y]))
    return g


def test_a_valid_graph_passes():
    verify(small_graph())


def test_use_before_definition():
    g = small_graph()
    g.ops[0], g.ops[1] = g.ops[1], g.ops[0]
    with pytest.raises(VerifyError) as err:
        verify(g)
    assert err.value.message == "'ann.relu' op uses %x before its definition"
    assert err.value.hint == "only a population may name a later projection (to close a recurrent loop)"


def test_use_of_a_value_no_op_defines():
    g = small_graph()
    g.ops[1].x = Value(TensorType((4,)), name="ghost")
    with pytest.raises(VerifyError, match="^error: 'ann.relu' op uses %ghost, which no op of the graph defines$"):
        verify(g)
    g.ops[1].x = ann.Input(declared_type=TensorType((4,))).result  # defined by an op outside
    with pytest.raises(VerifyError, match="which no op of the graph defines"):
        verify(g)


def test_op_twice_and_inconsistent_result():
    g = small_graph()
    g.ops.insert(2, g.ops[1])
    with pytest.raises(VerifyError, match="^error: 'ann.relu' op appears twice in the graph$"):
        verify(g)
    g = small_graph()
    g.ops[1].result = Value(TensorType((4,)))
    with pytest.raises(VerifyError, match="^error: 'ann.relu' op has an inconsistent result value$"):
        verify(g)


def test_type_mismatch_along_an_edge():
    g = small_graph()
    g.ops[0].result.type = TensorType((5,))  # the producer changed; the user still says 4
    with pytest.raises(VerifyError) as err:
        verify(g)
    assert err.value.message == "'ann.relu' op result type tensor<4xf32> does not match the inferred type tensor<5xf32>"


def test_input_must_have_a_tensor_type():
    g = small_graph()
    g.ops[0].result.type = SpikeType((4,))
    with pytest.raises(VerifyError, match="^error: 'ann.input' op must have a tensor type$"):
        verify(g)


def test_type_mismatch_raised_by_infer_type():
    g = parse_ir(recurrent_text(), "r.nmir")
    relu = ann.Relu(x=g.walk("ann.input")[0].result)
    g.ops.insert(3, relu)
    relu.x = g.walk("snn.encode")[0].result  # spikes along an edge that needs a tensor
    with pytest.raises(VerifyError, match="'ann.relu' op expects a tensor as its operand, got spikes<4>$"):
        verify(g)


def test_missing_output():
    g = small_graph()
    del g.ops[-1]
    with pytest.raises(VerifyError) as err:
        verify(g)
    assert err.value.message == "graph @g must end with exactly one 'ann.output' op, found 0"


def test_extra_output():
    g = small_graph()
    extra = ann.Output(values=[g.ops[0].result])
    g.ops.append(extra)
    with pytest.raises(VerifyError) as err:
        verify(g)
    assert err.value.message == "graph @g must end with exactly one 'ann.output' op, found 2"


def test_output_not_last():
    g = small_graph()
    g.ops.append(ann.Sigmoid(x=g.ops[1].result))
    with pytest.raises(VerifyError, match="^error: 'ann.output' op must be the last op of the graph$"):
        verify(g)


def test_output_needs_a_value_and_a_tensor():
    g = small_graph()
    g.ops[-1].values = []
    with pytest.raises(VerifyError, match="^error: 'ann.output' op needs at least one value$"):
        verify(g)


def recurrent_text(bits="", weight="1.0"):
    w = f"splat<{weight}> : tensor<4x4x{'i8' if bits else 'f32'}>"
    return f"""graph @r
%x = ann.input : tensor<4xf32>
%s = snn.encode(%x) : spikes<4>
%c = snn.project(%s) {{kind = one_to_one, weight = {weight}}} : current<4>
%h = snn.population(%c, %r) {{{bits}}} : spikes<4>
%r = snn.project(%h) {{kind = dense, weight = {w}}} : current<4>
%y = snn.decode(%h) : tensor<4xf32>
ann.output(%y)
"""


def test_recurrent_forward_reference_through_a_projection_is_legal():
    g = parse_ir(recurrent_text(), "r.nmir")
    pop = g.walk("snn.population")[0]
    assert pop.currents[1].owner is g.walk("snn.project")[1]
    verify(g)


def test_forward_reference_only_for_populations():
    g = parse_ir(recurrent_text(), "r.nmir")
    dec = g.walk("snn.decode")[0]
    g.ops.remove(dec)
    g.ops.insert(2, dec)  # the decode now reads %h before it is defined
    with pytest.raises(VerifyError, match="r.nmir:7:1: error: 'snn.decode' op uses %h before its definition\n"):
        verify(g)


def test_cycle_that_avoids_a_projection():
    # SSA order hides such a cycle from verify() (only projections may be named early), so the
    # rule is checked on its own: two ann ops feeding each other
    g = Graph("c")
    x = g.add(ann.Input(declared_type=TensorType((4,))), "x")
    a = ann.Relu(x=x)
    b = ann.Sigmoid(x=a.result)
    a.x = b.result
    g.add(a, "a")
    g.add(b, "b")
    with pytest.raises(VerifyError, match="is on a cycle that passes through no delayed projection"):
        verifier._verify_cycles(g)
    verifier._verify_cycles(parse_ir(recurrent_text(), "r.nmir"))  # through a projection: fine


def test_float_and_integer_populations_do_not_mix():
    g = parse_ir(recurrent_text(bits="bits = 8", weight="1"), "r.nmir")
    verify(g)
    pop = g.walk("snn.population")[0]
    c2 = snn.Project(src=pop.result, kind="one_to_one", weight=1)
    float_pop = snn.Population(currents=[c2.result], declared_type=SpikeType((4,)))
    g.ops[-1:-1] = [c2, float_pop]
    with pytest.raises(VerifyError) as err:
        verify(g)
    assert err.value.message == "'snn.population' op is a float population in a graph with integer populations"
    assert err.value.hint == "quantize converts every population at once"


def test_integer_graph_needs_integer_weights():
    g = parse_ir(recurrent_text(bits="bits = 8", weight="1"), "r.nmir")
    proj = g.walk("snn.project")[0]
    proj.weight = 1.5
    with pytest.raises(VerifyError, match="r.nmir:4:1: error: 'snn.project' op must have integer weights, like the populations of the graph$"):
        verify(g)


def test_float_graph_needs_float_weights():
    g = parse_ir(recurrent_text(), "r.nmir")
    g.walk("snn.project")[1].weight = Blob(np.ones((4, 4), np.int8))
    with pytest.raises(VerifyError, match="r.nmir:6:1: error: 'snn.project' op must have float weights, like the populations of the graph$"):
        verify(g)


def test_population_current_must_come_from_a_projection():
    g = parse_ir(recurrent_text(), "r.nmir")
    pop = g.walk("snn.population")[0]
    pop.currents[0] = Value(snn.Project(src=g.walk("snn.encode")[0].result, kind="one_to_one", weight=1.0).result.type)
    pop.currents[0].owner = g.ops[0]  # an ann.input pretending to deliver current
    with pytest.raises(VerifyError, match="'snn.population' op input 0 must be a projection's current$"):
        verify(g)


def test_verifier_error_from_parse_points_at_the_line():
    text = recurrent_text().replace("%h = snn.population(%c, %r) {}", "%h = snn.population(%c, %r) {du = 5000}")
    with pytest.raises(VerifyError) as err:
        parse_ir(text, "r.nmir")
    assert err.value.render().splitlines() == [
        "r.nmir:5:1: error: 'snn.population' op du must lie in [0, 4096]",
        "  %h = snn.population(%c, %r) {du = 5000} : spikes<4>",
        "  ^",
    ]


def test_mapped_graph_coverage_errors():
    """Every population neuron on exactly one core: a gap and a neuron held twice are found
    and named (the verifier reads all slices at once)."""
    from test_emulator import CHIP, random_graph

    from nmc.passmanager import PassContext, PassManager

    graph, _ = random_graph(1)
    PassManager("partition", PassContext(target=CHIP)).run(graph)
    verify(graph)
    cores = [op for op in graph.ops if op.KIND == "hw.core" and not op.partial]
    c = next(c for c in cores if c.slices[1] - c.slices[0] >= 2)
    name = c.pops[0].name
    at = graph.ops.index(c)
    graph.ops[at] = c.with_changes(slices=(c.slices[0] + 1, *c.slices[1:]), neurons=c.neurons - 1)
    with pytest.raises(VerifyError, match=rf"slices of %{name} leave neurons \[{c.slices[0]}, {c.slices[0] + 1}\) on no core"):
        verify(graph)
    other = next(o for o in cores if o is not c)
    graph.ops[at] = c
    graph.ops[graph.ops.index(other)] = other.with_changes(pops=[*other.pops, c.pops[0]],
                                                           slices=(*other.slices, *c.slices[:2]),
                                                           neurons=other.neurons + c.slices[1] - c.slices[0])
    with pytest.raises(VerifyError, match=f"neurons of %{name} from {c.slices[0]} that another core holds too"):
        verify(graph)

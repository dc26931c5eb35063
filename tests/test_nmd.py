"""The .nmd network description language (nmc/frontends/nmd/, docs/language.md)."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from nmc.diagnostics import NmcError
from nmc.frontends.nmd import load_nmd, parse_nmd
from nmc.ir import SpikeType, TensorType, parse_ir, print_graph
from nmc.ir.io import format_ir
from nmc.semantics import classify, run_ann, run_snn

EXAMPLES = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "examples")


def build(text: str, base_dir: str = ".", filename: str = "net.nmd"):
    return parse_nmd(text, filename, base_dir)


def error_of(text: str, base_dir: str = ".") -> NmcError:
    with pytest.raises(NmcError) as info:
        build(text, base_dir)
    return info.value


def kinds(g) -> list[str]:
    return [op.KIND for op in g.ops]


def op_named(g, name: str):
    return next(op for op in g.ops if op.result is not None and op.result.name == name)


# ------------------------------------------------------------------------------- ANN constructs


def test_every_ann_layer_builds_with_inferred_shapes():
    g = build("""
network every(timesteps = 4)
input x: [2, 8, 8]
c = x -> conv(4, kernel = 3, pad = same) -> batchnorm(eps = 0.001) -> relu
m = c -> maxpool(2)                       // [4, 4, 4]
a = c -> avgpool(kernel = 2, stride = 2, count_include_pad = true)
j = concat(m, a, axis = 0)               // [8, 4, 4]
s = j -> add(j) -> mul(j) -> sigmoid -> tanh -> clip(min = 0, max = 6) -> leaky_relu(alpha = 0.2)
g = s -> global_avgpool -> flatten       // [8]
r = s -> reshape(8, 16) -> flatten -> dense(5) -> dropout(ratio = 0.1) -> identity
y = g -> dense(3, bias = zeros) -> softmax
z = r -> log_softmax(axis = 0)
output y, z
""")
    assert g.name == "every" and g.meta == {"timesteps": 4}
    assert kinds(g) == ["ann.input", "ann.conv", "ann.batchnorm", "ann.relu", "ann.maxpool", "ann.avgpool",
                        "ann.concat", "ann.add", "ann.mul", "ann.sigmoid", "ann.tanh", "ann.clip",
                        "ann.leaky_relu", "ann.global_avgpool", "ann.flatten", "ann.reshape", "ann.flatten",
                        "ann.dense", "ann.dropout", "ann.identity", "ann.dense", "ann.softmax", "ann.log_softmax",
                        "ann.output"]
    assert op_named(g, "c").result.type == TensorType((4, 8, 8))
    assert op_named(g, "m").result.type == TensorType((8 // 2, 4, 4)) and op_named(g, "j").result.type.shape == (8, 4, 4)
    conv = g.walk("ann.conv")[0]
    assert conv.pads == (1, 1, 1, 1) and conv.weight.shape == (4, 2, 3, 3)
    assert op_named(g, "a").count_include_pad is True
    assert op_named(g, "s").alpha == 0.2 and g.walk("ann.clip")[0].max == 6.0
    assert [v.type.shape for v in g.outputs] == [(3,), (5,)]
    out = run_ann(g, [np.random.default_rng(0).random((2, 2, 8, 8), dtype=np.float32)]).outputs
    np.testing.assert_allclose(out[0].sum(axis=1), 1.0, rtol=1e-5)


def test_every_op_has_a_location_in_the_source():
    g = build("input x: [3]\nh = x -> dense(2)\n  -> relu\noutput h\n")
    locs = {op.KIND: (op.loc.file, op.loc.line, op.loc.col) for op in g.ops}
    assert locs == {"ann.input": ("net.nmd", 1, 1), "ann.dense": ("net.nmd", 2, 10),
                    "ann.relu": ("net.nmd", 3, 6), "ann.output": ("net.nmd", 4, 1)}


def test_dense_weights_from_files_evaluate_like_numpy(tmp_path):
    rng = np.random.default_rng(1)
    w1, b1, w2 = rng.normal(size=(5, 4)), rng.normal(size=5), rng.normal(size=(2, 5))
    np.savez(tmp_path / "w.npz", w1=w1, b1=b1)
    np.save(tmp_path / "w2.npy", w2)
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "net.nmd").write_text(
        'input x: [4]\nh = x -> dense(5, weight = "../w.npz:w1", bias = "../w.npz:b1") -> relu\n'
        'y = h -> dense(weight = "../w2.npy")\noutput y\n')
    g = load_nmd(str(tmp_path / "sub" / "net.nmd"))
    x = rng.random((3, 4)).astype(np.float32)
    f32 = lambda a: a.astype(np.float32).astype(np.float64)  # noqa: E731  weights are stored as f32
    want = np.maximum(x @ f32(w1).T + f32(b1), 0) @ f32(w2).T
    np.testing.assert_allclose(run_ann(g, [x]).outputs[0], want, rtol=1e-5)
    assert g.walk("ann.dense")[1].weight.shape == (2, 5)  # units taken from the file


def test_initialisers_print_back_compactly():
    g = build("""
input x: [20]
y = x -> dense(20, weight = random(uniform, seed = 4, scale = 0.5), bias = splat(0.25))
       -> dense(20, weight = random(normal, seed = 9), bias = ones) -> dense(2, weight = zeros, bias = [1, -2])
output y
""")
    text = print_graph(g)
    assert "weight = random<uniform, seed = 4, scale = 0.5> : tensor<20x20xf32>" in text
    assert "bias = splat<0.25> : tensor<20xf32>" in text
    assert "weight = random<normal, seed = 9, scale = 1.0>" in text
    assert "weight = splat<0.0> : tensor<2x20xf32>" in text and "bias = dense<[1.0, -2.0]> : tensor<2xf32>" in text


def test_default_weights_are_seeded_he_normal_in_program_order():
    g = build("input x: [8]\ny = x -> dense(4) -> dense(2)\noutput y\n")
    inits = [d.weight.init for d in g.walk("ann.dense")]
    assert [(i.dist, i.seed) for i in inits] == [("normal", 1), ("normal", 2)]
    assert inits[0].scale == math.sqrt(2 / 8) and inits[1].scale == math.sqrt(2 / 4)


def test_let_constants_and_arithmetic():
    g = build("let k = 5\nlet c = 2 * 3 - 2\ninput x: [1, 9, 9]\ny = x -> conv(c, kernel = k, pad = (k - 1) / 2, stride = [1, 2])\noutput y\n")
    conv = g.walk("ann.conv")[0]
    assert conv.weight.shape == (4, 1, 5, 5) and conv.pads == (2, 2, 2, 2) and conv.strides == (1, 2)
    assert conv.result.type.shape == (4, 9, 5)


def test_conv_1d_and_explicit_pads():
    g = build("input x: [2, 10]\ny = x -> conv(3, kernel = 3, pad = [1, 0], dilation = 2) -> maxpool(kernel = 2, stride = 1)\noutput y\n")
    conv = g.walk("ann.conv")[0]
    assert conv.pads == (1, 0) and conv.dilations == (2,) and conv.result.type.shape == (3, 7)


# ------------------------------------------------------------------------------------- blocks


def test_blocks_with_defaults_nesting_and_residuals():
    g = build("""
block conv_bn_relu(c, k = 3) {
  in -> conv(c, kernel = k, pad = (k - 1) / 2) -> batchnorm -> relu
}
block residual(c) {
  a = in -> conv_bn_relu(c)
  b = a -> conv(c, kernel = 1)
  add(in, b) -> relu
}
input x: [4, 6, 6]
y = x -> conv_bn_relu(c = 8, k = 5) -> conv_bn_relu(4) -> residual(4) -> residual(c = 4)
output y
""")
    convs = g.walk("ann.conv")
    assert [c.weight.shape for c in convs] == [(8, 4, 5, 5), (4, 8, 3, 3), (4, 4, 3, 3), (4, 4, 1, 1),
                                               (4, 4, 3, 3), (4, 4, 1, 1)]
    assert len(g.walk("ann.add")) == 2 and op_named(g, "y").KIND == "ann.relu"
    # the residual's add reads the block's input: the previous block's result
    add = g.walk("ann.add")[0]
    assert add.a.owner.KIND == "ann.relu" and add.b.owner is convs[3]
    assert convs[2].loc.line == 3  # an op made by a block points into the block's body


def test_block_errors_name_the_block_and_its_use():
    err = error_of("block b(c) {\n  in -> dense(c) -> relu\n}\ninput x: [1, 4, 4]\ny = x -> b(3)\noutput y\n")
    assert str(err).splitlines()[0] == "net.nmd:2:9: error: dense needs a rank 1 input per sample, got [1, 4, 4]"
    assert "note: in block 'b' used at net.nmd:5:10" in str(err)
    err = error_of("block b(c, k = 3) { in -> relu }\ninput x: [4]\ny = x -> b(k = 1)\noutput y\n")
    assert (err.message, err.loc.line, err.loc.col) == ("block b needs argument 'c'", 3, 10)
    err = error_of("block b(c) { in -> relu }\ninput x: [4]\ny = x -> b(1, d = 2)\noutput y\n")
    assert err.message == "b has no argument 'd'" and (err.loc.line, err.loc.col) == (3, 15)
    err = error_of("block b(c) { in -> b(c) }\ninput x: [4]\ny = x -> b(1)\noutput y\n")
    assert err.message == "block b expands itself without end"


# ------------------------------------------------------------------------------ spiking networks


RSNN = """
network rsnn(dt = 1ms, timesteps = 5)
input x: [3] encode poisson(seed = 4)
pop h: [6] cuba(tau_syn = 5ms, tau_mem = 20ms, threshold = 0.8, reset = zero)
pop o lif(tau = 10ms, threshold = inf)
connect x -> h dense(weight = random(normal, seed = 1, scale = 1.0))
connect h -> h dense(weight = random(normal, seed = 2, scale = 0.2), delay = 3ms)
connect h -> o dense(2)
connect o -> h dense(weight = splat(-0.5), delay = 2)
output o decode membrane
"""


def test_recurrent_spiking_network():
    g = build(RSNN)
    assert g.meta == {"dt": 0.001, "timesteps": 5}
    assert kinds(g) == ["ann.input", "snn.encode", "snn.project", "snn.population", "snn.project", "snn.project",
                        "snn.population", "snn.project", "snn.decode", "ann.output"]
    h, o = g.walk("snn.population")
    # h's currents: from x (before it), then its own and o's (defined after it: forward references)
    assert [c.owner.src.owner.KIND for c in h.currents] == ["snn.encode", "snn.population", "snn.population"]
    assert [c.owner.delay for c in h.currents] == [1, 3, 2]
    assert g.index(h.currents[1].owner) > g.index(h) and h.currents[2].owner.src.owner is o
    assert h.du == pytest.approx(4096 * (1 - math.exp(-1 / 5))) and h.dv == pytest.approx(4096 * (1 - math.exp(-1 / 20)))
    assert (o.du, o.dv) == (4096, pytest.approx(4096 * (1 - math.exp(-0.1))))
    assert h.reset == "zero" and h.threshold == 0.8 and o.result.type == SpikeType((2,))
    assert g.walk("snn.encode")[0].encoding == "poisson" and g.walk("snn.decode")[0].mode == "membrane"
    result = run_snn(g, [np.full((2, 3), 0.7, dtype=np.float32)])
    assert result.timesteps == 5 and result.outputs[0].shape == (2, 2) and result.spike_count > 0


def test_integer_populations_round_their_decays():
    g = build("""
network q(dt = 1ms)
input x: [2] encode spikes
pop h: [2] cuba(tau_syn = 3ms, tau_mem = 7ms, threshold = 64, bits = 16)
connect x -> h one_to_one(weight = [3, 5])
output h
""".replace("[3, 5]", "2"))
    h = g.walk("snn.population")[0]
    assert (h.du, h.dv) == (round(4096 * (1 - math.exp(-1 / 3))), round(4096 * (1 - math.exp(-1 / 7))))
    assert isinstance(h.du, int) and h.bits == 16 and h.threshold == 64


def test_every_projection_kind_and_encoding(tmp_path):
    np.savez(tmp_path / "conn.npz", indptr=np.array([0, 2, 3, 3, 5]), indices=np.array([0, 5, 2, 7, 1]),
             weight=np.arange(1, 6, dtype=np.float32))
    (tmp_path / "net.nmd").write_text("""
network kinds(dt = 0.5ms, timesteps = 4)
input img: [1, 6, 6] encode rate
input cur: [4] encode current(scale = 2.0)
pop c if(threshold = 0.5)
pop p if(reset = zero)
pop o: [2, 4] lif(tau = 2ms, v0 = [0.1, 0.2, 0.3, 0.4])
pop q: [2, 4] if(bias = [1, 2, 3, 4])
connect img -> c conv2d(2, kernel = 3, pad = same, weight = random(normal, seed = 5))
connect c -> p pool(kernel = 2, weight = 0.25)
connect p -> o dense
connect cur -> o sparse(file = "conn.npz", delay = 3)
connect o -> q one_to_one(weight = 2)
output o, p decode membrane
""")
    g = load_nmd(str(tmp_path / "net.nmd"))
    projections = {p.result.name: p for p in g.walk("snn.project")}
    assert {n: p.kind for n, p in projections.items()} == {
        "c.from_img": "conv2d", "p.from_c": "pool", "o.from_p": "dense", "o.from_cur": "sparse", "q.from_o": "one_to_one"}
    assert op_named(g, "c").result.type == SpikeType((2, 6, 6)) and op_named(g, "p").result.type == SpikeType((2, 3, 3))
    assert projections["o.from_cur"].delay == 3 and projections["o.from_cur"].shape == (2, 4)
    assert projections["o.from_p"].weight.shape == (8, 18)
    assert [e.encoding for e in g.walk("snn.encode")] == ["rate", "current"] and g.walk("snn.encode")[1].scale == 2.0
    assert op_named(g, "o").dv == pytest.approx(4096 * (1 - math.exp(-0.25)))
    assert [d.mode for d in g.walk("snn.decode")] == ["count", "membrane"]
    result = run_snn(g, [np.ones((2, 1, 6, 6), np.float32), np.ones((2, 4), np.float32)])
    assert [o.shape for o in result.outputs] == [(2, 2, 4), (2, 2, 3, 3)]


# ------------------------------------------------------------------------------------ errors


@pytest.mark.parametrize("text, where, message", [
    # syntax: a token missing at the end of a line is reported where it is missing
    ("input x: [4]\nh = x -> dense(10\noutput h\n", (2, 18), "expected ')' or ',' after '10'"),
    ("input x: [4\n", (1, 12), "expected ']' or ',' after '4'"),
    ("input x: [4]\nh = x -> dense(10 relu)\n", (2, 19), "unexpected 'relu'; expected ')' or ','"),
    ("input x: [4]\nh = x -> dense(10, weight = )\n", (2, 29),
     "unexpected ')'; expected one of: '(', '[', a name, a number, a quoted string"),
    ("input x: [4] $\n", (1, 14), "unexpected character '$'"),
    ("input x: [4]\nh = x -> dense(units = 1, units = 2)\n", (2, 27), "argument 'units' of dense given twice"),
    # names
    ("input x: [4]\nh = y -> relu\noutput h\n", (2, 5), "unknown value 'y'"),
    ("input x: [4]\nh = x -> desne(10)\noutput h\n", (2, 10), "unknown layer 'desne'"),
    ("input x: [4]\nh = relu -> dense(2)\noutput h\n", (2, 5), "'relu' is a layer, not a value; a chain starts from a value: x -> relu"),
    ("input x: [4]\nh = x -> dense(units = 3, wieght = 1)\noutput h\n", (2, 27), "dense has no argument 'wieght'"),
    ("input x: [4]\nh = x -> dense(3, weight = random(gaussian))\noutput h\n", (2, 35),
     "'dist' of random must be one of normal, uniform, got 'gaussian'"),
    ("input x: [4]\nh = x -> dense(k)\noutput h\n", (2, 16), "unknown name 'k' where 'units' of dense (a number) is expected"),
    ("input x: [4]\nx = x -> relu\noutput x\n", (2, 1), "'x' is already defined"),
    ("input x: [4]\nh = x -> relu\n", (0, 0), "the network has no 'output' statement"),
    ("input x: [4]\nh = x -> relu\noutput q\n", (3, 8), "unknown value 'q'"),
    # shapes
    ("input x: [1, 4, 4]\nh = x -> dense(3)\noutput h\n", (2, 10), "dense needs a rank 1 input per sample, got [1, 4, 4]"),
    ("input x: [4]\na = x -> dense(3)\nb = x -> dense(5)\nc = add(a, b)\noutput c\n", (4, 5),
     "add: shapes [3] and [5] do not match (nor broadcast)"),
    ("input x: [4]\nh = x -> dense(2, weight = [[1, 2], [3, 4]])\noutput h\n", (2, 28),
     "'weight' of dense from the literal has shape [2, 2], expected [2, 4] (dense(2) on an input of [4])"),
    ("input x: [4]\nh = x -> reshape(3, 2)\noutput h\n", (2, 10), "cannot reshape [4] (4 elements) to [3, 2]"),
    ("input x: [2, 3, 3]\nh = x -> conv(2, kernel = 5)\noutput h\n", (2, 10),
     "conv: window does not fit the input tensor<2x3x3xf32> (output spatial shape [0, 0])"),
    ("input x: [2, 4]\nh = x -> concat(x, axis = 2)\noutput h\n", (2, 27), "axis 2 is out of range for inputs of rank 2"),
    # units and time
    ("network n(dt = 1)\n", (1, 16), "'dt' of network is a time constant: give it a unit, like 20ms"),
    ("network n(dt = 1ms)\ninput x: [2]\npop h: [2] lif(tau = 20xs)\n", (3, 22), "unknown unit 'xs' in '20xs'"),
    ("network n(dt = 1ms)\ninput x: [2]\npop h: [2] lif(tau = 20)\n", (3, 22),
     "'tau' of lif is a time constant: give it a unit, like 20ms"),
    ("input x: [2]\npop h: [2] lif(tau = 20ms)\nconnect x -> h dense\noutput h\n", (2, 22),
     "'tau' is a time constant: converting it needs the time step"),
    ("input x: [4]\nh = x -> dense(3ms)\noutput h\n", (2, 16), "'units' of dense is a plain number, not a time (3ms)"),
    ("network n(dt = 1ms)\ninput x: [2]\npop h: [2] if\nconnect x -> h dense(delay = 1.5ms)\noutput h\n", (4, 30),
     "a delay of 1.5ms is not a whole number of steps of dt = 0.001 s"),
    # spiking structure
    ("input x: [2]\npop h: [2] if\nconnect x -> h dense(delay = 0)\noutput h\n", (3, 30), "delay must be at least 1 step, got 0"),
    ("input x: [2]\npop h: [2] if\nconnect x -> g dense\noutput h\n", (3, 14), "unknown population 'g'"),
    ("input x: [2]\npop h: [2] if\nconnect h -> x dense\noutput h\n", (3, 14), "an input cannot receive a projection"),
    ("input x: [2]\npop h if\noutput h\n", (2, 5), "the shape of population 'h' cannot be inferred"),
    ("input x: [2]\npop h: [3] lif2\noutput h\n", (2, 12), "unknown neuron model 'lif2'"),
    ("input x: [2]\npop h: [3] if\nconnect x -> h one_to_one\noutput h\n", (3, 16),
     "one_to_one from 'x' [2] into 'h' delivers current for [2] (2 neurons), but 'h' is [3] (3 neurons)"),
    ("input x: [2]\npop h: [2] if\nh2 = x -> relu\noutput h\n", (3, 1),
     "layer chains describe ANNs; this file is a spiking network (it has pop or connect)"),
    ("input x: [2]\npop h: [2] if\nconnect x -> h dense\noutput h decode voltage\n", (4, 17), "unknown decoding 'voltage'"),
    ("input x: [2] encode rate\nh = x -> relu\noutput h\n", (1, 21),
     "'encode' applies to spiking networks (written with pop and connect)"),
])
def test_error_messages_and_locations(text, where, message):
    err = error_of(text)
    assert err.message == message
    line, col = where
    if line:
        assert (err.loc.file, err.loc.line, err.loc.col) == ("net.nmd", line, col)
        rendered = str(err).splitlines()
        assert rendered[0] == f"net.nmd:{line}:{col}: error: {message}"
        assert rendered[1] == "  " + text.split("\n")[line - 1] and rendered[2] == "  " + " " * (col - 1) + "^"
    else:
        assert err.loc.file == "net.nmd" and err.hint == "end the file with: output NAME"
    assert "Token" not in str(err) and "RPAR" not in str(err) and "__ANON" not in str(err)


def test_error_hints():
    assert error_of("input x: [4]\nh = x -> desne(10)\noutput h\n").hint == "did you mean 'dense'?"
    assert error_of("input x: [1, 4]\nh = x -> dense(3)\noutput h\n").hint == "insert flatten before dense"
    assert "units: s, ms, us, ns" in error_of("network n(dt = 1)\n").hint


def test_weight_file_errors(tmp_path):
    np.savez(tmp_path / "w.npz", w1=np.zeros((2, 4)), w2=np.zeros((2, 2)))
    np.save(tmp_path / "one.npy", np.zeros((2, 4)))
    base = str(tmp_path)
    cases = [
        ('"missing.npy"', "weight file 'missing.npy' does not exist", f"paths are relative to the folder of net.nmd ({base})"),
        ('"w.npz:w11"', "'w.npz' has no array 'w11'", "did you mean 'w1'? it holds: w1, w2"),
        ('"w.npz"', "'w.npz' holds 2 arrays; name one as \"w.npz:KEY\"", "it holds: w1, w2"),
        ('"w.npz:w2"', "'weight' of dense from 'w.npz:w2' has shape [2, 2], expected [2, 4] (dense(2) on an input of [4])", None),
        ('"one.npy:k"', "'one.npy' is a single array (.npy); it has no key 'k'", None),
    ]
    for ref, message, hint in cases:
        err = error_of(f"input x: [4]\nh = x -> dense(2, weight = {ref})\noutput h\n", base)
        assert (err.message, err.hint, err.loc.line, err.loc.col) == (message, hint, 2, 28)
    (tmp_path / "bad.npy").write_bytes(b"not numpy")
    err = error_of('input x: [4]\nh = x -> dense(2, weight = "bad.npy")\noutput h\n', base)
    assert err.message.startswith("cannot read weight file 'bad.npy'")


def test_cli_reports_errors_without_traceback(tmp_path):
    path = tmp_path / "bad.nmd"
    path.write_text("input x: [4]\nh = x -> dense(10\noutput h\n")
    proc = subprocess.run([sys.executable, "-m", "nmc", "import", str(path)], capture_output=True, text=True)
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert f"{path}:2:18: error: expected ')' or ',' after '10'" in proc.stderr
    out = tmp_path / "out.nmir"
    assert not out.exists()


# -------------------------------------------------------------------------- round-trip property


def _ann_program(draw) -> str:
    c = draw(st.integers(1, 3))
    h = draw(st.integers(3, 6))
    lines = [f"input x: [{c}, {h}, {h}]"]
    shape = [c, h, h]
    layers = []
    seed = draw(st.integers(0, 50))
    for i in range(draw(st.integers(1, 4))):
        choice = draw(st.sampled_from(["conv", "relu", "pool", "bn", "act"]))
        if choice == "conv":
            k = draw(st.integers(1, min(3, shape[1])))
            out = draw(st.integers(1, 4))
            init = draw(st.sampled_from(["", f", weight = random(uniform, seed = {seed + i}, scale = 0.5)", ", weight = splat(0.1)"]))
            pad = draw(st.sampled_from(["", ", pad = same"])) if k % 2 else ""
            bias = draw(st.sampled_from(["", ", bias = zeros", ", bias = random(normal, seed = 3)"]))
            layers.append(f"conv({out}, kernel = {k}{pad}{init}{bias})")
            shape = [out, shape[1] if pad else shape[1] - k + 1, shape[2] if pad else shape[2] - k + 1]
        elif choice == "pool" and shape[1] >= 2:
            layers.append(draw(st.sampled_from(["maxpool(2)", "avgpool(kernel = 2, stride = 1)"])))
            shape = [shape[0], shape[1] // 2, shape[2] // 2] if layers[-1] == "maxpool(2)" else [shape[0], shape[1] - 1, shape[2] - 1]
        elif choice == "bn":
            layers.append(f"batchnorm(scale = splat({draw(st.floats(0.5, 2.0, width=32))}), eps = 0.001)")
        elif choice == "act":
            layers.append(draw(st.sampled_from(["sigmoid", "tanh", "leaky_relu(alpha = 0.125)", "clip(min = 0, max = 6)"])))
        else:
            layers.append("relu")
    lines.append("f = x -> " + " -> ".join(layers) + " -> flatten")
    units = draw(st.integers(1, 20))
    lines.append(f"y = f -> dense({units}, bias = splat(0.5)) -> softmax")
    lines.append("output y")
    return "\n".join(lines) + "\n"


def _snn_program(draw) -> str:
    n = draw(st.integers(1, 3))
    lines = [f"network s(dt = {draw(st.sampled_from(['1ms', '0.5ms', '100us']))}, timesteps = {draw(st.integers(1, 40))})",
             f"input x: [{draw(st.integers(1, 30))}] encode {draw(st.sampled_from(['rate', 'poisson(seed = 3)', 'current(scale = 0.5)']))}"]
    for i in range(n):
        model = draw(st.sampled_from(["if", "lif(tau = 20ms)", "cuba(tau_syn = 3ms, tau_mem = 7ms, threshold = 0.75)",
                                      "if(reset = zero, v0 = 0.25)"]))
        lines.append(f"pop p{i}: [{draw(st.integers(1, 25))}] {model}")
    for i in range(n):
        src = "x" if i == 0 else f"p{i - 1}"
        lines.append(f"connect {src} -> p{i} dense(weight = random(normal, seed = {i}, scale = 0.5))")
        if draw(st.booleans()):
            back = f"p{draw(st.integers(i, n - 1))}"
            lines.append(f"connect {back} -> p{i} dense(weight = splat(-0.25), delay = {draw(st.integers(1, 4))})")
    lines.append(f"output p{n - 1} decode {draw(st.sampled_from(['count', 'membrane']))}")
    return "\n".join(lines) + "\n"


@st.composite
def programs(draw):
    return _snn_program(draw) if draw(st.booleans()) else _ann_program(draw)


@pytest.mark.slow
@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(programs())
def test_nmd_to_ir_to_text_round_trip_is_stable(text):
    g = build(text)
    first, sidecar = format_ir([g], debuginfo=True)
    again = parse_ir(first, "roundtrip.nmir", sidecar=sidecar.get)
    second, _ = format_ir([again], debuginfo=True)
    assert second == first
    assert all(op.loc is not None and op.loc.file == "net.nmd" and op.loc.line >= 1 for op in g.ops)


# ------------------------------------------------------------------------------------ examples


def test_mlp_example_matches_its_training_accuracy():
    g = load_nmd(os.path.join(EXAMPLES, "mlp.nmd"))
    data = np.load(os.path.join(EXAMPLES, "digits_test.npz"))
    out = run_ann(g, [data["x"]]).outputs[0]
    accuracy = float(np.mean(classify(out) == data["y"]))
    assert accuracy > 0.95  # scikit-learn reports 97.33 % for these weights


def test_cnn_example_uses_blocks_and_evaluates():
    g = load_nmd(os.path.join(EXAMPLES, "cnn.nmd"))
    assert len(g.walk("ann.conv")) == 5 and len(g.walk("ann.batchnorm")) == 5
    assert g.walk("ann.concat")[0].result.type.shape == (16 + 4 * 7 * 7,)
    out = run_ann(g, [np.random.default_rng(0).random((2, 1, 28, 28), dtype=np.float32)]).outputs[0]
    assert out.shape == (2, 10) and np.all(np.isfinite(out))


@pytest.mark.slow
def test_recurrent_example_runs_from_the_command_line(tmp_path):
    path = os.path.join(EXAMPLES, "recurrent_snn.nmd")
    g = load_nmd(path)
    exc = op_named(g, "exc")
    assert any(g.index(c.owner) > g.index(exc) for c in exc.currents)  # recurrent: forward reference
    x = np.load(os.path.join(EXAMPLES, "digits_test.npz"))["x"][:4]
    np.save(tmp_path / "x.npy", x)
    out = tmp_path / "out.npy"
    proc = subprocess.run([sys.executable, "-m", "nmc", "run", path, "--input", str(tmp_path / "x.npy"),
                           "--timesteps", "10", "-o", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    np.testing.assert_array_equal(np.load(out), run_snn(g, [x], timesteps=10).outputs[0])
    imported = subprocess.run([sys.executable, "-m", "nmc", "import", path], capture_output=True, text=True)
    assert imported.returncode == 0 and "snn.population" in imported.stdout


# ---------------------------------------------------------------------------------------- docs

DOCS = os.path.join(os.path.dirname(EXAMPLES), "docs", "language.md")


def _doc_programs() -> list[str]:
    text = open(DOCS, encoding="utf-8").read()
    return [block.split("```", 1)[0] for block in text.split("```nmd\n")[1:]]


def test_docs_show_a_complete_program_for_every_construct():
    graphs = [build(program, filename=f"doc{i}.nmd") for i, program in enumerate(_doc_programs())]
    ops = [op for g in graphs for op in g.ops]
    assert {op.KIND for op in ops} >= {f"ann.{name}" for name in ANN_LAYER_NAMES if name != "dense"} | {
        "ann.dense", "snn.encode", "snn.project", "snn.population", "snn.decode"}
    assert {op.kind for op in ops if op.KIND == "snn.project"} == {"dense", "conv2d", "pool", "one_to_one", "sparse"}
    assert {op.encoding for op in ops if op.KIND == "snn.encode"} == {"rate", "poisson", "current", "spikes"}
    assert {op.mode for op in ops if op.KIND == "snn.decode"} == {"count", "membrane"}
    pops = [op for op in ops if op.KIND == "snn.population"]
    assert {op.reset for op in pops} == {"subtract", "zero"} and any(op.bits for op in pops)
    assert any(op.du == 4096 and op.dv == 0 for op in pops) and any(op.du != 4096 for op in pops)
    assert any(g.index(c.owner) > g.index(op) for g in graphs for op in g.walk("snn.population") for c in op.currents)


ANN_LAYER_NAMES = ["dense", "conv", "maxpool", "avgpool", "global_avgpool", "batchnorm", "relu", "sigmoid",
                   "tanh", "clip", "leaky_relu", "softmax", "log_softmax", "dropout", "identity", "flatten",
                   "reshape", "add", "mul", "concat"]


def test_docs_grammar_is_the_grammar():
    text = open(DOCS, encoding="utf-8").read()
    shown = text.split("<!-- grammar:begin -->\n```\n", 1)[1].split("```\n<!-- grammar:end -->", 1)[0]
    source = open(os.path.join(os.path.dirname(EXAMPLES), "nmc", "frontends", "nmd", "nmd.lark"), encoding="utf-8").read()
    rules = "\n".join(line for line in source.splitlines() if not line.startswith("//")).strip()
    assert shown.strip() == rules


def test_layer_table_in_docs_lists_every_layer():
    from nmc.frontends.nmd.ann import ANN_LAYERS

    assert sorted(ANN_LAYERS) == sorted(ANN_LAYER_NAMES)


_TOKENS = ["x", "h", "->", "(", ")", ",", "=", "[", "]", "1", "0", "-1", "-3", "2.5", "3ms", "dense", "conv", "pool",
           "pop", "connect", "if", "lif", "cuba", "tau", "weight", "random(normal)", "splat(1)", "inf", "same", "pad",
           "kernel", "stride", "groups", "add", "concat", "block", "{", "}", "in", "output", "input", "let", "/", "*",
           "flatten", "reshape", "sparse", "one_to_one", "delay", "encode", "decode", "bits", '"w.npy"', "$", "//"]


@pytest.mark.slow
@settings(max_examples=300, deadline=None)
@given(st.integers(0, 1000), st.lists(st.tuples(st.integers(0, 10**6), st.sampled_from(["replace", "insert", "delete"]),
                                                st.sampled_from(_TOKENS)), min_size=1, max_size=3))
def test_mutated_programs_give_diagnostics_never_crashes(tmp_path_factory, pick, edits):
    base = tmp_path_factory.getbasetemp()
    np.save(base / "w.npy", np.zeros(3))
    programs = _doc_programs()
    tokens = programs[pick % len(programs)].split()
    for where, action, token in edits:
        i = where % (len(tokens) + 1)
        if action == "insert" or not tokens:
            tokens.insert(i, token)
        elif action == "replace":
            tokens[min(i, len(tokens) - 1)] = token
        else:
            del tokens[min(i, len(tokens) - 1)]
    try:
        build(" ".join(tokens), str(base))
    except NmcError as err:
        assert err.loc is None or err.loc.file == "net.nmd"

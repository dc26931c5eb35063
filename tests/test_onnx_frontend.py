"""The ONNX frontend against onnxruntime: single-op models for every supported operator and
its attribute combinations, whole models written the way each exporter writes them, and the
errors a user can meet (through the CLI)."""

from __future__ import annotations

import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from nmc.cli import main
from nmc.diagnostics import NmcError
from nmc.frontends.onnx import load_onnx
from nmc.ir.io import format_ir
from nmc.ir.parser import parse_ir
from nmc.ir.verifier import verify
from nmc.passmanager import run_pipeline
from nmc.semantics import run_ann

F = TensorProto.FLOAT
RNG = np.random.default_rng(1234)


def w(*shape, scale=0.5):
    """A deterministic random float32 array."""
    return (RNG.standard_normal(shape) * scale).astype(np.float32)


def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def model(nodes, inputs, outputs, inits=(), opset=13, batch="N", name="g", ir_version=None):
    """A model from nodes; ``inputs``/``outputs`` are (name, per-sample shape) pairs (output
    shapes may be None: shape inference fills them)."""
    ins = [helper.make_tensor_value_info(n, F, [batch, *s]) for n, s in inputs]
    outs = [helper.make_tensor_value_info(n, F, None if s is None else [batch, *s]) for n, s in outputs]
    g = helper.make_graph(nodes, name, ins, outs, list(inits))
    kw = {"ir_version": ir_version} if ir_version else {}
    if opset <= 8 and not ir_version:
        kw["ir_version"] = 4
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], producer_name="nmc-tests", **kw)
    return m


def check(tmp_path, m, batch=2, seed=0, positive=False, rtol=1e-5, atol=1e-5):
    """Save ``m``, import it, compare ``run_ann`` with onnxruntime on random inputs; returns the graph."""
    path = tmp_path / "model.onnx"
    onnx.save(m, str(path))
    g = load_onnx(str(path))
    verify(g)
    text, sidecar = format_ir([g], debuginfo=True)
    assert format_ir([parse_ir(text, "roundtrip.nmir", sidecar.get)], debuginfo=True)[0] == text
    rng = np.random.default_rng(seed)
    feeds = {}
    for vi in m.graph.input:
        if vi.name in {t.name for t in m.graph.initializer}:
            continue
        dims = [d.dim_value for d in vi.type.tensor_type.shape.dim[1:]]
        x = rng.standard_normal([batch, *dims]).astype(np.float32)
        feeds[vi.name] = np.abs(x) if positive else x
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    fixed = m.graph.input[0].type.tensor_type.shape.dim[0].HasField("dim_value")
    if fixed:  # batch-1 models: one sample at a time
        per = [sess.run(None, {k: v[i:i + 1] for k, v in feeds.items()}) for i in range(batch)]
        expected = [np.concatenate([p[j] for p in per]) for j in range(len(per[0]))]
    else:
        expected = sess.run(None, feeds)
    got = run_ann(g, list(feeds.values())).outputs
    assert len(got) == len(expected)
    for e, a in zip(expected, got):
        assert a.shape == e.shape
        np.testing.assert_allclose(a, e, rtol=rtol, atol=atol)
    return g


def kinds(g):
    return [op.KIND for op in g.ops]


def one(op_type, in_shape, out_shape=None, inits=(), extra_inputs=(), opset=13, **attrs):
    """A single-node model ``y = op_type(x, *extra_inputs)``."""
    node = helper.make_node(op_type, ["x", *extra_inputs], ["y"], name=f"{op_type.lower()}_0", **attrs)
    return model([node], [("x", in_shape)], [("y", out_shape)], inits, opset=opset)


# ---------------------------------------------------------------------------- single ops

CONV_CASES = {
    "basic": dict(w=(4, 3, 3, 3), x=(3, 8, 8), attrs={}),
    "pads": dict(w=(4, 3, 3, 3), x=(3, 8, 8), attrs={"pads": [1, 2, 0, 1]}),
    "strides": dict(w=(4, 3, 3, 3), x=(3, 9, 8), attrs={"strides": [2, 3], "pads": [1, 1, 1, 1]}),
    "dilations": dict(w=(2, 3, 3, 3), x=(3, 9, 9), attrs={"dilations": [2, 1]}),
    "groups": dict(w=(4, 2, 3, 3), x=(4, 6, 6), attrs={"group": 2, "pads": [1, 1, 1, 1]}),
    "depthwise": dict(w=(6, 1, 3, 3), x=(6, 7, 7), attrs={"group": 6, "pads": [1, 1, 1, 1]}),
    "same_upper": dict(w=(3, 2, 4, 3), x=(2, 7, 8), attrs={"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    "same_lower": dict(w=(3, 2, 4, 4), x=(2, 7, 8), attrs={"auto_pad": "SAME_LOWER"}),
    "valid": dict(w=(3, 2, 3, 3), x=(2, 7, 8), attrs={"auto_pad": "VALID", "strides": [2, 2]}),
    "conv1d": dict(w=(5, 3, 3), x=(3, 10), attrs={"pads": [2, 1], "strides": [2]}),
    "conv1d_same": dict(w=(2, 3, 4), x=(3, 9), attrs={"auto_pad": "SAME_LOWER", "strides": [2]}),
}


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("case", sorted(CONV_CASES))
def test_conv(tmp_path, case, bias):
    c = CONV_CASES[case]
    weight = w(*c["w"])
    inits = [init("W", weight)] + ([init("B", w(c["w"][0]))] if bias else [])
    m = one("Conv", c["x"], None, inits, ["W", "B"] if bias else ["W"], **c["attrs"])
    g = check(tmp_path, m)
    assert kinds(g).count("ann.conv") == 1


@pytest.mark.parametrize("attrs,c_shape", [
    ({}, (5,)),
    ({"transB": 1, "alpha": 0.5, "beta": 2.0}, (5,)),
    ({"transB": 1}, (1, 5)),
    ({"alpha": 1.5}, None),
    ({"beta": -1.0}, ()),
])
def test_gemm(tmp_path, attrs, c_shape):
    weight = w(5, 6) if attrs.get("transB") else w(6, 5)
    inits = [init("B", weight)] + ([init("C", w(*c_shape))] if c_shape is not None else [])
    m = one("Gemm", (6,), None, inits, ["B", "C"] if c_shape is not None else ["B"], **attrs)
    assert kinds(check(tmp_path, m)) == ["ann.input", "ann.dense", "ann.output"]


def test_matmul_and_add_become_one_dense(tmp_path):
    nodes = [helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node("Add", ["h", "b"], ["y"], name="bias")]
    m = model(nodes, [("x", (6,))], [("y", None)], [init("W", w(6, 4)), init("b", w(4))])
    g = check(tmp_path, m)
    dense = g.walk("ann.dense")
    assert len(dense) == 1 and dense[0].bias is not None and "ann.add" not in kinds(g)


def test_matmul_alone(tmp_path):
    m = one("MatMul", (6,), None, [init("W", w(6, 3))], ["W"])
    check(tmp_path, m)


@pytest.mark.parametrize("op,const_first", [("Add", False), ("Add", True), ("Sub", False), ("Sub", True),
                                             ("Mul", False), ("Mul", True), ("Div", False)])
@pytest.mark.parametrize("c_shape", [(), (3, 1, 1), (1, 3, 1, 1), (5,)])
def test_binary_with_constant(tmp_path, op, c_shape, const_first):
    c = w(*c_shape) + (np.float32(2.0) if op == "Div" else np.float32(0))
    ins = ["C", "x"] if const_first else ["x", "C"]
    node = helper.make_node(op, ins, ["y"], name="bin")
    m = model([node], [("x", (3, 4, 5))], [("y", None)], [init("C", c)])
    g = check(tmp_path, m)
    assert set(kinds(g)) <= {"ann.input", "ann.constant", "ann.add", "ann.mul", "ann.output"}


@pytest.mark.parametrize("op", ["Add", "Sub", "Mul"])
def test_binary_of_two_tensors(tmp_path, op):
    node = helper.make_node(op, ["x", "z"], ["y"], name="bin")
    m = model([node], [("x", (3, 4)), ("z", (3, 4))], [("y", None)])
    check(tmp_path, m)


def test_sum_of_three(tmp_path):
    node = helper.make_node("Sum", ["x", "z", "u"], ["y"], name="sum")
    check(tmp_path, model([node], [("x", (2, 3)), ("z", (2, 3)), ("u", (2, 3))], [("y", None)]))


@pytest.mark.parametrize("op,attrs", [
    ("Relu", {}), ("Sigmoid", {}), ("Tanh", {}), ("LeakyRelu", {"alpha": 0.2}), ("LeakyRelu", {}),
    ("Identity", {}), ("Dropout", {}), ("GlobalAveragePool", {}), ("Flatten", {}), ("Flatten", {"axis": -3}),
    ("Softmax", {"axis": 1}), ("Softmax", {}), ("LogSoftmax", {"axis": -2}), ("Cast", {"to": TensorProto.FLOAT}),
])
def test_unary(tmp_path, op, attrs):
    check(tmp_path, one(op, (3, 4, 5), None, **attrs))


@pytest.mark.parametrize("attrs", [
    {"size": 5, "alpha": 1e-4, "beta": 0.75, "bias": 1.0},  # AlexNet's
    {"size": 3, "alpha": 0.5, "beta": 0.5, "bias": 2.0},
    {"size": 9},  # wider than the 7 channels: the window is cut at both ends
    {"size": 1, "alpha": 2.0, "beta": 1.0},
])
def test_lrn(tmp_path, attrs):
    g = check(tmp_path, one("LRN", (7, 4, 5), None, **attrs), rtol=1e-5, atol=1e-6)
    assert kinds(g) == ["ann.input", "ann.lrn", "ann.output"]


@pytest.mark.parametrize("size", [2, 4])
def test_lrn_even_window(tmp_path, size):
    """onnxruntime refuses an even ``size`` (and onnx's reference evaluator loops over the
    batch axis instead of the channels), so the oracle is the spec's formula, channel by
    channel: the window is ``[c - floor((size-1)/2), c + ceil((size-1)/2)]``."""
    m = one("LRN", (6, 3, 2), None, size=size, alpha=0.5, beta=0.6, bias=1.5)
    path = tmp_path / "model.onnx"
    onnx.save(m, str(path))
    x = np.random.default_rng(3).standard_normal((2, 6, 3, 2))
    expected = np.empty_like(x)
    for c in range(6):
        lo, hi = max(0, c - (size - 1) // 2), min(5, c + size // 2)
        expected[:, c] = x[:, c] / (1.5 + 0.5 / size * (x[:, lo:hi + 1] ** 2).sum(axis=1)) ** 0.6
    got = run_ann(load_onnx(str(path)), [x.astype(np.float32)]).outputs[0]
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("slope_shape", [(3, 1, 1), (1,), (5,)], ids=["per-channel", "scalar", "last-axis"])
def test_prelu(tmp_path, slope_shape):
    check(tmp_path, one("PRelu", (3, 4, 5), None, [init("s", w(*slope_shape))], ["s"]))


def test_global_avgpool_1d(tmp_path):
    check(tmp_path, one("GlobalAveragePool", (3, 7), None))


@pytest.mark.parametrize("opset,lo,hi", [(13, 0.0, 6.0), (13, None, 0.3), (13, -0.2, None), (6, 0.0, 6.0), (11, -1.0, 1.0)])
def test_clip(tmp_path, opset, lo, hi):
    if opset < 11:
        attrs = {k: v for k, v in (("min", lo), ("max", hi)) if v is not None}
        m = one("Clip", (4, 3), None, opset=opset, **attrs)
    else:
        inits = [init("lo", np.float32(lo if lo is not None else 0)), init("hi", np.float32(hi if hi is not None else 0))]
        ins = ["lo" if lo is not None else "", "hi" if hi is not None else ""]
        while ins and ins[-1] == "":
            ins.pop()
        m = one("Clip", (4, 3), None, [t for t, n in zip(inits, ["lo", "hi"]) if n in ins], ins, opset=opset)
    g = check(tmp_path, m)
    assert "ann.clip" in kinds(g)


def test_batchnorm(tmp_path):
    inits = [init("s", w(3)), init("b", w(3)), init("m", w(3)), init("v", np.abs(w(3)) + 0.5)]
    g = check(tmp_path, one("BatchNormalization", (3, 4, 4), None, inits, ["s", "b", "m", "v"], epsilon=1e-3))
    assert g.walk("ann.batchnorm")[0].epsilon == pytest.approx(1e-3)


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "strides": [2, 2]},
    {"kernel_shape": [3, 2], "ceil_mode": 1, "strides": [2, 2]},
    {"kernel_shape": [2, 2], "dilations": [2, 2]},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "auto_pad": "SAME_LOWER"},
    {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "strides": [2, 2]},
    {"kernel_shape": [2, 3], "dilations": [2, 1], "ceil_mode": 1, "strides": [2, 2], "pads": [0, 1, 0, 1]},
])
def test_maxpool(tmp_path, attrs):
    check(tmp_path, one("MaxPool", (2, 7, 8), None, **attrs))


def test_maxpool_1d(tmp_path):
    check(tmp_path, one("MaxPool", (2, 9), None, kernel_shape=[3], strides=[2], pads=[1, 1]))


@pytest.mark.parametrize("attrs", [
    {"kernel_shape": [2, 2], "strides": [2, 2]},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 0},
    {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1, "strides": [2, 2]},
    {"kernel_shape": [3, 2], "ceil_mode": 1, "strides": [2, 2]},
    {"kernel_shape": [3, 3], "auto_pad": "SAME_UPPER", "strides": [2, 2]},
    {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 1, "strides": [2, 2]},
    {"kernel_shape": [2, 2], "pads": [1, 1, 1, 1], "ceil_mode": 1, "count_include_pad": 0, "strides": [2, 2]},
    {"kernel_shape": [3, 3], "pads": [0, 1, 2, 0], "ceil_mode": 1, "count_include_pad": 1, "strides": [2, 3]},
])
def test_avgpool(tmp_path, attrs):
    check(tmp_path, one("AveragePool", (2, 7, 8), None, **attrs))


@pytest.mark.parametrize("target", [[-1, 12, 5], [0, 60], [0, 3, -1], [-1, 60]])
def test_reshape_constant(tmp_path, target):
    m = one("Reshape", (3, 4, 5), None, [init("s", np.array(target, dtype=np.int64))], ["s"])
    check(tmp_path, m)


def test_transpose(tmp_path):
    g = check(tmp_path, one("Transpose", (3, 4, 5), None, perm=[0, 2, 3, 1]))
    assert g.walk("ann.transpose")[0].perm == (1, 2, 0)


def test_concat(tmp_path):
    node = helper.make_node("Concat", ["x", "z", "C"], ["y"], name="cat", axis=-2)
    m = model([node], [("x", (2, 4)), ("z", (2, 4))], [("y", None)], [init("C", w(1, 3, 4))], batch=1)
    check(tmp_path, m)  # a constant joins samples of one model batch only: batch 1


@pytest.mark.parametrize("opset", [11, 13, 21])
def test_squeeze_unsqueeze(tmp_path, opset):
    if opset < 13:
        nodes = [helper.make_node("Unsqueeze", ["x"], ["u"], axes=[1, -1]),
                 helper.make_node("Squeeze", ["u"], ["y"], axes=[1])]
        inits = []
    else:
        nodes = [helper.make_node("Unsqueeze", ["x", "a1"], ["u"]), helper.make_node("Squeeze", ["u", "a2"], ["y"])]
        inits = [init("a1", np.array([1, -1], dtype=np.int64)), init("a2", np.array([1], dtype=np.int64))]
    g = check(tmp_path, model(nodes, [("x", (3, 4))], [("y", None)], inits, opset=opset))
    assert g.outputs[0].type.shape == (3, 4, 1)


def test_constant_of_shape(tmp_path):
    nodes = [helper.make_node("ConstantOfShape", ["s"], ["c"], value=numpy_helper.from_array(np.array([2.5], np.float32))),
             helper.make_node("Mul", ["x", "c"], ["y"])]
    check(tmp_path, model(nodes, [("x", (3, 2))], [("y", None)], [init("s", np.array([1, 3, 1], np.int64))]))


@pytest.mark.parametrize("consumer,attrs,positive", [
    ("Conv", {}, False),
    ("AveragePool", {"kernel_shape": [3, 3], "count_include_pad": 0}, False),
    ("AveragePool", {"kernel_shape": [3, 3], "count_include_pad": 1, "pads": [1, 0, 1, 0]}, False),
    ("MaxPool", {"kernel_shape": [3, 3]}, True),
])
@pytest.mark.parametrize("opset", [11, 18])
def test_pad_folds_into_next(tmp_path, consumer, attrs, positive, opset):
    pads = [0, 0, 1, 2, 0, 0, 2, 1]
    inits, ins = [init("p", np.array(pads, np.int64))], ["r", "p"]
    if opset >= 18:  # the axes input: pads of the spatial axes only
        inits = [init("p", np.array([1, 2, 2, 1], np.int64)), init("ax", np.array([2, -1], np.int64))]
        ins = ["r", "p", "", "ax"]
    nodes = [helper.make_node("Relu", ["x"], ["r"]), helper.make_node("Pad", ins, ["pd"], name="pad")]
    if consumer == "Conv":
        inits.append(init("W", w(2, 3, 3, 3)))
        nodes.append(helper.make_node("Conv", ["pd", "W"], ["y"], pads=[1, 1, 0, 0]))
    else:
        nodes.append(helper.make_node(consumer, ["pd"], ["y"], **attrs))
    g = check(tmp_path, model(nodes, [("x", (3, 6, 5))], [("y", None)], inits, opset=opset))
    assert len(g.ops) == 4  # input, relu, the padded op, output


# ------------------------------------------------------------------- exporter-style models


def _conv_block(x, out, cin, cout, inits, prefix):
    inits += [init(f"{prefix}.w", w(cout, cin, 3, 3)), init(f"{prefix}.b", w(cout))]
    return [helper.make_node("Conv", [x, f"{prefix}.w", f"{prefix}.b"], [f"{prefix}.c"], name=f"/{prefix}/Conv",
                             pads=[1, 1, 1, 1], kernel_shape=[3, 3]),
            helper.make_node("Relu", [f"{prefix}.c"], [out], name=f"/{prefix}/Relu")]


def test_ceil_mode_pool_whose_last_window_onnx_shape_inference_keeps(tmp_path):
    """ONNX shape inference says 5 rows for this pool, onnxruntime (and PyTorch) compute 4: a
    window starting in the end padding is dropped. nmc follows onnxruntime, also after the pool."""
    nodes = [helper.make_node("MaxPool", ["x"], ["p"], name="/pool/MaxPool", kernel_shape=[2, 2],
                              strides=[2, 2], pads=[1, 1, 1, 1], ceil_mode=1),
             helper.make_node("Relu", ["p"], ["y"], name="/Relu")]
    g = check(tmp_path, model(nodes, [("x", (2, 7, 8))], [("y", None)]))
    assert g.walk("ann.relu")[0].result.type.shape == (2, 4, 5)


def test_pytorch_style_flatten_chain(tmp_path):
    """TorchScript writes x.view(x.size(0), -1) as Shape→Gather→Unsqueeze→Concat→Reshape."""
    inits = []
    nodes = _conv_block("input", "r", 1, 4, inits, "conv1")
    nodes += [
        helper.make_node("MaxPool", ["r"], ["p"], name="/pool/MaxPool", kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Shape", ["p"], ["s"], name="/Shape"),
        helper.make_node("Constant", [], ["zero"], name="/Constant", value=numpy_helper.from_array(np.array(0, np.int64))),
        helper.make_node("Gather", ["s", "zero"], ["n"], name="/Gather", axis=0),
        helper.make_node("Constant", [], ["ax"], name="/Constant_1", value=numpy_helper.from_array(np.array([0], np.int64))),
        helper.make_node("Unsqueeze", ["n", "ax"], ["n1"], name="/Unsqueeze"),
        helper.make_node("Constant", [], ["m1"], name="/Constant_2", value=numpy_helper.from_array(np.array([-1], np.int64))),
        helper.make_node("Concat", ["n1", "m1"], ["shape"], name="/Concat", axis=0),
        helper.make_node("Reshape", ["p", "shape"], ["flat"], name="/Reshape"),
        helper.make_node("Gemm", ["flat", "fc.w", "fc.b"], ["logits"], name="/fc/Gemm", transB=1),
    ]
    inits += [init("fc.w", w(10, 4 * 4 * 4)), init("fc.b", w(10))]
    m = model(nodes, [("input", (1, 8, 8))], [("logits", None)], inits, batch="batch_size", name="torch_jit")
    g = check(tmp_path, m, batch=3)
    assert g.name == "torch_jit" and g.meta["source"] == "onnx"
    assert kinds(g) == ["ann.input", "ann.conv", "ann.relu", "ann.maxpool", "ann.reshape", "ann.dense", "ann.output"]
    for op in g.ops[1:-1]:
        assert op.loc.file.endswith("model.onnx") and op.loc.node.startswith("/") and op.loc.op_type


def test_tf2onnx_style_nhwc_with_transpose_pairs(tmp_path):
    """tf2onnx/keras2onnx: NHWC input, Transpose to NCHW around each conv, pairs that cancel."""
    inits = [init("k1", w(4, 1, 3, 3)), init("k2", w(4, 4, 3, 3)), init("dw", w(4 * 7 * 7, 5)), init("db", w(5)),
             init("sh", np.array([-1, 4 * 7 * 7], np.int64))]
    t = lambda i, o, perm, n: helper.make_node("Transpose", [i], [o], name=n, perm=perm)  # noqa: E731
    nodes = [
        t("input_1", "t0", [0, 3, 1, 2], "conv2d/Conv2D__6"),
        helper.make_node("Conv", ["t0", "k1"], ["c1"], name="conv2d/Conv2D", auto_pad="SAME_UPPER"),
        helper.make_node("Relu", ["c1"], ["r1"], name="conv2d/Relu"),
        t("r1", "t1", [0, 2, 3, 1], "conv2d/Relu__8"),
        t("t1", "t2", [0, 3, 1, 2], "conv2d_1/Conv2D__10"),
        helper.make_node("Conv", ["t2", "k2"], ["c2"], name="conv2d_1/Conv2D", pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"], name="conv2d_1/Relu"),
        t("r2", "t3", [0, 2, 3, 1], "conv2d_1/Relu__12"),
        helper.make_node("Reshape", ["t3", "sh"], ["f"], name="flatten/Reshape"),
        helper.make_node("MatMul", ["f", "dw"], ["mm"], name="dense/MatMul"),
        helper.make_node("Add", ["mm", "db"], ["logits"], name="dense/BiasAdd"),
        helper.make_node("Softmax", ["logits"], ["probs"], name="dense/Softmax"),
    ]
    m = model(nodes, [("input_1", (14, 14, 1))], [("probs", None)], inits, batch="unk__12", name="tf2onnx")
    g = check(tmp_path, m)
    assert kinds(g).count("ann.transpose") == 2  # the input's and the one before the flatten
    assert kinds(g).count("ann.dense") == 1 and "ann.add" not in kinds(g)


def _cntk_model(opset=8):
    inits = [init("Parameter5", w(4, 1, 5, 5)), init("Parameter6", w(4, 1, 1)),
             init("Parameter193", w(4, 2, 2, 10)), init("shape0", np.array([1, 16], np.int64)),
             init("shape1", np.array([16, 10], np.int64)), init("Parameter194", w(1, 10))]
    nodes = [
        helper.make_node("Reshape", ["Parameter193", "shape1"], ["W"], name="Times212_reshape1"),
        helper.make_node("Conv", ["Input3", "Parameter5"], ["c"], name="Convolution28", kernel_shape=[5, 5],
                         auto_pad="SAME_UPPER", strides=[1, 1], group=1, dilations=[1, 1]),
        helper.make_node("Add", ["c", "Parameter6"], ["a"], name="Plus30"),
        helper.make_node("Relu", ["a"], ["r"], name="ReLU32"),
        helper.make_node("MaxPool", ["r"], ["p"], name="Pooling66", kernel_shape=[4, 4], strides=[4, 4], pads=[0, 0, 0, 0]),
        helper.make_node("Reshape", ["p", "shape0"], ["f"], name="Times212_reshape0"),
        helper.make_node("MatMul", ["f", "W"], ["mm"], name="Times212"),
        helper.make_node("Add", ["mm", "Parameter194"], ["Plus214_Output_0"], name="Plus214"),
    ]
    return model(nodes, [("Input3", (1, 8, 8))], [("Plus214_Output_0", None)], inits, opset=opset, batch=1,
                 name="CNTKGraph")


def test_cntk_style_fixed_batch(tmp_path):
    g = check(tmp_path, _cntk_model(), batch=3)
    assert g.meta["opset"] == 8
    assert g.inputs[0].type.shape == (1, 8, 8)
    assert g.walk("ann.dense")[0].bias is not None


def test_fold_affine_on_imported_model(tmp_path):
    g = check(tmp_path, _cntk_model())
    x = RNG.standard_normal((4, 1, 8, 8)).astype(np.float32)
    before = run_ann(g, [x]).outputs[0]
    folded = run_pipeline(g.clone(), "fold-affine")
    assert "ann.add" not in kinds(folded) and "ann.constant" not in kinds(folded)
    np.testing.assert_allclose(run_ann(folded, [x]).outputs[0], before, rtol=1e-5, atol=1e-6)


def test_nodes_out_of_order(tmp_path):
    m = _cntk_model(opset=13)
    nodes = list(m.graph.node)[::-1]
    del m.graph.node[:]
    m.graph.node.extend(nodes)
    with pytest.raises(onnx.checker.ValidationError):
        onnx.checker.check_model(m)
    check(tmp_path, m)


def test_weights_as_constant_nodes(tmp_path):
    nodes = [helper.make_node("Constant", [], ["W"], name="w", value=numpy_helper.from_array(w(6, 4))),
             helper.make_node("Constant", [], ["b"], name="b", value=numpy_helper.from_array(w(4))),
             helper.make_node("Constant", [], ["s"], name="s", value_float=0.5),
             helper.make_node("MatMul", ["x", "W"], ["h"], name="mm"),
             helper.make_node("Add", ["h", "b"], ["z"], name="add"),
             helper.make_node("Mul", ["z", "s"], ["y"], name="scale")]
    check(tmp_path, model(nodes, [("x", (6,))], [("y", None)]))


def test_opset_7(tmp_path):
    inits = [init("W", w(4, 2, 3, 3)), init("s", w(4)), init("b", w(4)), init("m", w(4)), init("v", np.abs(w(4)) + 0.5),
             init("sh", np.array([1, 4 * 3 * 3], np.int64)), init("fw", w(4 * 3 * 3, 3)), init("fb", w(1, 3))]
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="conv", pads=[1, 1, 1, 1]),
             helper.make_node("BatchNormalization", ["c", "s", "b", "m", "v"], ["bn"], name="bn"),
             helper.make_node("Clip", ["bn"], ["r"], name="relu6", min=0.0, max=6.0),
             helper.make_node("AveragePool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("Dropout", ["p"], ["d"], name="drop", ratio=0.3),
             helper.make_node("Reshape", ["d", "sh"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y0"], name="fc", beta=0.5),
             helper.make_node("Softmax", ["y0"], ["y"], name="softmax", axis=1)]
    m = model(nodes, [("x", (2, 6, 6))], [("y", None)], inits, opset=7, batch=1)
    g = check(tmp_path, m)
    assert g.meta["opset"] == 7


def test_opset_21(tmp_path):
    inits = [init("W", w(4, 2, 3, 3)), init("p", np.array([1, 1, 1, 1], np.int64)),
             init("ax", np.array([2, 3], np.int64)), init("u", np.array([1], np.int64)),
             init("sh", np.array([-1, 4 * 6 * 6], np.int64)), init("fw", w(4 * 6 * 6, 3))]
    nodes = [helper.make_node("Pad", ["x", "p", "", "ax"], ["xp"], name="pad"),
             helper.make_node("Conv", ["xp", "W"], ["c"], name="conv"),
             helper.make_node("LeakyRelu", ["c"], ["r"], name="lrelu", alpha=0.1),
             helper.make_node("Reshape", ["r", "sh"], ["f"], name="flat"),
             helper.make_node("Gemm", ["f", "fw"], ["y0"], name="fc"),
             helper.make_node("Unsqueeze", ["y0", "u"], ["y1"], name="unsq"),
             helper.make_node("LogSoftmax", ["y1"], ["y"], name="lsm", axis=-1)]
    m = model(nodes, [("x", (2, 6, 6))], [("y", None)], inits, opset=21, ir_version=10)
    g = check(tmp_path, m)
    assert g.meta["opset"] == 21


_FIXTURES = os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data")
_PYTORCH_CONVERTED = [
    "test_AvgPool1d_stride", "test_AvgPool2d", "test_BatchNorm1d_3d_input_eval", "test_BatchNorm2d_eval",
    "test_Conv1d_dilated", "test_Conv1d_groups", "test_Conv1d_pad2", "test_Conv2d", "test_Conv2d_depthwise_padded",
    "test_Conv2d_depthwise_with_multiplier", "test_Conv2d_groups", "test_Conv2d_no_bias", "test_Conv2d_strided",
    "test_LeakyReLU_with_negval", "test_Linear", "test_LogSoftmax", "test_MaxPool1d_stride_padding_dilation",
    "test_MaxPool2d_stride_padding_dilation", "test_PReLU_2d_multiparam", "test_PixelShuffle", "test_Sigmoid",
    "test_Softmax", "test_log_softmax_dim3",
]


def _fixture(folder):
    path = os.path.join(_FIXTURES, folder, "model.onnx")
    if not os.path.exists(path):
        pytest.skip(f"the onnx wheel does not ship {folder}")
    data = os.path.join(os.path.dirname(path), "test_data_set_0")
    load = lambda kind: [numpy_helper.to_array(onnx.load_tensor(os.path.join(data, f)))  # noqa: E731
                         for f in sorted(os.listdir(data)) if f.startswith(kind)]
    return path, load("input_"), load("output_")


@pytest.mark.parametrize("name", _PYTORCH_CONVERTED)
def test_pytorch_converted_fixtures(name):
    """Real PyTorch exports (opsets 6-12) shipped with the onnx wheel, against their stored outputs."""
    path, inputs, outputs = _fixture(f"pytorch-converted/{name}")
    got = run_ann(load_onnx(path), inputs).outputs
    for e, a in zip(outputs, got, strict=True):
        np.testing.assert_allclose(a, e, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name,message", [
    ("pytorch-converted/test_Conv3d", "(Conv): error: 3-D convolution"),
    ("pytorch-converted/test_MaxPool3d", "(MaxPool): error: 3-D pooling"),
    ("pytorch-converted/test_ConvTranspose2d", "(ConvTranspose): error: transposed convolution"),
    ("pytorch-converted/test_ReflectionPad2d", "(Pad): error: Pad mode 'reflect'"),
    ("pytorch-converted/test_SELU", "(Selu): error: unsupported operator"),
])
def test_pytorch_fixtures_refused(name, message):
    path, _, _ = _fixture(name)
    with pytest.raises(NmcError) as info:
        load_onnx(path)
    assert message in info.value.render() and info.value.hint


# --------------------------------------------------------------------------------- errors


def _import(tmp_path, m_or_bytes, capsys):
    path = tmp_path / "model.onnx"
    if isinstance(m_or_bytes, bytes):
        path.write_bytes(m_or_bytes)
    else:
        onnx.save(m_or_bytes, str(path))
    out = tmp_path / "out.nmir"
    rc = main(["import", str(path), "-o", str(out)])
    err = capsys.readouterr().err
    assert rc == 1, err
    assert not out.exists()
    assert "Traceback" not in err
    return err


def test_unsupported_operators_all_kinds_at_once(tmp_path, capsys):
    nodes = [helper.make_node("Relu", ["x"], ["a"], name="relu_0"),
             helper.make_node("Erf", ["a"], ["b"], name="erf_1"),
             helper.make_node("Erf", ["b"], ["c"], name="erf_2"),
             helper.make_node("Floor", ["c"], ["y"], name="floor_1")]
    err = _import(tmp_path, model(nodes, [("x", (4,))], [("y", None)]), capsys)
    assert "model.onnx: node 'erf_1' (Erf): error: unsupported operator" in err
    assert "node 'floor_1' (Floor)" in err and "erf_2" not in err
    assert "hint: supported operators:" in err and "Conv" in err


def test_conv_transpose_is_out_of_scope(tmp_path, capsys):
    node = helper.make_node("ConvTranspose", ["x", "W"], ["y"], name="deconv")
    err = _import(tmp_path, model([node], [("x", (2, 4, 4))], [("y", None)], [init("W", w(2, 3, 3, 3))]), capsys)
    assert "node 'deconv' (ConvTranspose): error:" in err and "out of scope" in err


def test_truncated_file(tmp_path, capsys):
    data = _cntk_model().SerializeToString()
    err = _import(tmp_path, data[: len(data) // 2], capsys)
    assert "model.onnx" in err and "error:" in err and "truncated" in err


def test_not_onnx(tmp_path, capsys):
    err = _import(tmp_path, b"this is a text file, not a model\n" * 3, capsys)
    assert "not" in err and "ONNX" in err


def test_missing_external_data(tmp_path, capsys):
    m = _cntk_model()
    path = tmp_path / "model.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    (tmp_path / "weights.bin").unlink()
    out = tmp_path / "out.nmir"
    assert main(["import", str(path), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "weights.bin" in err and "missing" in err and not out.exists()


def test_external_data_present(tmp_path):
    m = _cntk_model()
    path = tmp_path / "model.onnx"
    onnx.save_model(m, str(path), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="weights.bin", size_threshold=0)
    g = load_onnx(str(path))
    assert g.walk("ann.dense")


def test_shapes_cannot_be_inferred(tmp_path, capsys):
    node = helper.make_node("Add", ["x", "z"], ["y"], name="add")
    err = _import(tmp_path, model([node], [("x", (3,)), ("z", (4,))], [("y", None)]), capsys)
    assert "shapes of the graph cannot be inferred" in err


def _int_cast():
    m = one("Cast", (3,), None, to=TensorProto.INT32)
    m.graph.output[0].type.tensor_type.elem_type = TensorProto.INT32
    return m


@pytest.mark.parametrize("make,message", [
    (lambda: one("Flatten", (3, 4), None, axis=2), "Flatten with axis=2"),
    (lambda: one("Transpose", (3, 4), None, perm=[1, 0, 2]), "moves the batch axis"),
    (lambda: _int_cast(), "Cast of a tensor to INT32"),
    (lambda: one("Pad", (3, 4, 4), None, [init("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))], ["p"]),
     "Pad is supported only when it feeds"),
    (lambda: model([helper.make_node("Pad", ["x", "p"], ["q"], name="pad"),
                    helper.make_node("MaxPool", ["q"], ["y"], kernel_shape=[2, 2])],
                   [("x", (1, 4, 4))], [("y", None)], [init("p", np.array([0, 0, 1, 1, 0, 0, 1, 1], np.int64))]),
     "non-negative"),
    (lambda: one("Reshape", (3, 4), None, [init("s", np.array([-1, 4], np.int64))], ["s"]),
     "changes the per-sample size"),
    (lambda: model([helper.make_node("Shape", ["x"], ["s"]), helper.make_node("ConstantOfShape", ["s"], ["c"],
                    value=numpy_helper.from_array(np.array([1.0], np.float32))),
                    helper.make_node("Add", ["x", "c"], ["y"], name="add")], [("x", (3,))], [("y", None)]),
     "depends on the batch size"),
    (lambda: model([helper.make_node("Div", ["C", "x"], ["y"], name="div")], [("x", (3,))], [("y", None)], [init("C", w(3))]),
     "division of a constant by a tensor"),
])
def test_refused_with_location(tmp_path, capsys, make, message):
    err = _import(tmp_path, make(), capsys)
    assert "model.onnx: node '" in err and message in err and "hint:" in err


def test_recognised_by_content_whatever_the_extension(tmp_path):
    import nmc.frontends as fe
    path = tmp_path / "weights.bin"
    onnx.save(_cntk_model(), str(path))
    assert fe.choose_frontend(str(path)).name == "onnx"
    assert fe.load(str(path)).walk("ann.conv")
    text = tmp_path / "notes.onnx"
    text.write_text("graph @g\n")
    assert fe.choose_frontend(str(text)).name == "nmir"


def test_dynamo_style_local_functions(tmp_path):
    """torch.onnx dynamo exports (opset 18) may wrap modules in model-local functions."""
    fn = helper.make_function(
        "pkg.torch", "Linear_Relu", ["inp", "wt", "bs"], ["out"],
        [helper.make_node("MatMul", ["inp", "wt"], ["mm"]), helper.make_node("Add", ["mm", "bs"], ["z"]),
         helper.make_node("Relu", ["z"], ["out"])],
        [helper.make_opsetid("", 18)])
    nodes = [helper.make_node("Linear_Relu", ["x", "fc.w", "fc.b"], ["y"], name="fc_1", domain="pkg.torch")]
    m = model(nodes, [("x", (6,))], [("y", None)], [init("fc.w", w(6, 4)), init("fc.b", w(4))], opset=18,
              batch="s0")
    m.opset_import.append(helper.make_opsetid("pkg.torch", 1))
    m.functions.append(fn)
    g = check(tmp_path, m)
    assert kinds(g) == ["ann.input", "ann.dense", "ann.relu", "ann.output"]


@pytest.mark.parametrize("convert_fails", [False, True])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_old_softmax_takes_all_axes_from_axis(tmp_path, monkeypatch, op, convert_fails):
    """Before opset 13 a softmax over axis 1 of [N, C, H, W] normalises over C*H*W, whether
    the version converter lifts the node or (when it fails) nmc reads the old form itself."""
    if convert_fails:
        def refuse(model, version):
            raise RuntimeError("no adapter")
        monkeypatch.setattr(onnx.version_converter, "convert_version", refuse)
    check(tmp_path, one(op, (3, 4, 5), None, opset=11, axis=1))


def test_dropout_with_ratio_input(tmp_path):
    node = helper.make_node("Dropout", ["x", "r"], ["y", "mask"], name="drop")
    g = check(tmp_path, model([node], [("x", (4,))], [("y", None)], [init("r", np.float32(0.25))]))
    assert g.walk("ann.dropout")[0].ratio == 0.25


def test_resnet_style_residual_block(tmp_path):
    """Conv-BN-Relu-Conv-BN, plus the block's input, Relu, GlobalAveragePool, Flatten, Gemm."""
    inits = []
    bn = lambda p: [init(f"{p}.s", w(4)), init(f"{p}.b", w(4)), init(f"{p}.m", w(4)),  # noqa: E731
                    init(f"{p}.v", np.abs(w(4)) + 0.5)]
    inits += [init("c1.w", w(4, 4, 3, 3)), init("c2.w", w(4, 4, 3, 3)), init("fc.w", w(3, 4)), init("fc.b", w(3))]
    inits += bn("bn1") + bn("bn2")
    nodes = [
        helper.make_node("Conv", ["x", "c1.w"], ["a"], name="/layer1/conv1/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["a", "bn1.s", "bn1.b", "bn1.m", "bn1.v"], ["b"], name="/layer1/bn1/BN"),
        helper.make_node("Relu", ["b"], ["c"], name="/layer1/relu/Relu"),
        helper.make_node("Conv", ["c", "c2.w"], ["d"], name="/layer1/conv2/Conv", pads=[1, 1, 1, 1]),
        helper.make_node("BatchNormalization", ["d", "bn2.s", "bn2.b", "bn2.m", "bn2.v"], ["e"], name="/layer1/bn2/BN"),
        helper.make_node("Add", ["e", "x"], ["f"], name="/layer1/Add"),
        helper.make_node("Relu", ["f"], ["g"], name="/layer1/relu_1/Relu"),
        helper.make_node("GlobalAveragePool", ["g"], ["h"], name="/avgpool/GlobalAveragePool"),
        helper.make_node("Flatten", ["h"], ["i"], name="/Flatten"),
        helper.make_node("Gemm", ["i", "fc.w", "fc.b"], ["y"], name="/fc/Gemm", transB=1),
    ]
    g = check(tmp_path, model(nodes, [("x", (4, 6, 6))], [("y", None)], inits, opset=17, batch="batch"))
    assert kinds(g).count("ann.add") == 1 and kinds(g).count("ann.batchnorm") == 2

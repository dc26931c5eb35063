"""The channel rewrites (passes/channels.py, and fold-affine's compositions) on small ONNX models
built with onnx.helper, onnxruntime the oracle: ShuffleNet's channel shuffle with groups, and a
DenseNet dense block (raw conv outputs concatenated, batch norm → ReLU → 1×1 conv per reader)
with a transition (batch norm after an average pool)."""

from __future__ import annotations

import numpy as np
import pytest

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper, numpy_helper  # noqa: E402

from nmc import semantics  # noqa: E402
from nmc.frontends.onnx import load_onnx  # noqa: E402
from nmc.passmanager import PassContext, PassManager  # noqa: E402


class Builder:
    """Nodes and initialisers of one ONNX graph, seeded random weights."""

    def __init__(self, seed: int):
        self.rng = np.random.default_rng(seed)
        self.nodes, self.inits, self.n = [], [], 0

    def name(self, kind: str) -> str:
        self.n += 1
        return f"{kind}{self.n}"

    def const(self, array) -> str:
        name = self.name("w")
        self.inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(self, op: str, inputs: list[str], **attrs) -> str:
        out = self.name(op.lower())
        self.nodes.append(helper.make_node(op, inputs, [out], name=out, **attrs))
        return out

    def conv(self, x, cin, cout, k=1, groups=1, stride=1, pad=0, bias=True):
        w = self.const(self.rng.normal(0, 0.4, (cout, cin // groups, k, k)).astype(np.float32))
        ins = [x, w] + ([self.const(self.rng.normal(0, 0.1, cout).astype(np.float32))] if bias else [])
        return self.node("Conv", ins, kernel_shape=[k, k], group=groups, strides=[stride, stride], pads=[pad] * 4)

    def bn(self, x, c):
        r = self.rng
        params = [r.uniform(0.5, 1.5, c), r.normal(0, 0.2, c), r.normal(0, 0.2, c), r.uniform(0.5, 2.0, c)]
        return self.node("BatchNormalization", [x] + [self.const(p.astype(np.float32)) for p in params], epsilon=1e-5)

    def shuffle(self, x, groups, c, h):
        a = self.node("Reshape", [x, self.const(np.array([1, groups, c // groups, h, h], np.int64))])
        t = self.node("Transpose", [a], perm=[0, 2, 1, 3, 4])
        return self.node("Reshape", [t, self.const(np.array([1, c, h, h], np.int64))])

    def model(self, x_shape, y, classes) -> bytes:
        graph = helper.make_graph(self.nodes, "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x_shape)],
                                  [helper.make_tensor_value_info(y, TensorProto.FLOAT, [1, classes])], self.inits)
        return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]).SerializeToString()

    def head(self, x, c, classes):
        g = self.node("GlobalAveragePool", [x])
        f = self.node("Flatten", [g])
        w = self.const(self.rng.normal(0, 0.4, (classes, c)).astype(np.float32))
        return self.node("Gemm", [f, w, self.const(np.zeros(classes, np.float32))], transB=1)


def shufflenet_units() -> bytes:
    """A ShuffleNet v1 downsampling unit (grouped 1×1 → shuffle → depthwise 3×3, stride 2 →
    grouped 1×1, concatenated with an average pool of the input, ReLU) and a residual unit
    (the same at stride 1, added to its input)."""
    b = Builder(0)
    r0 = b.node("Relu", [b.conv("x", 3, 8, k=3, pad=1)])
    g1 = b.node("Relu", [b.conv(r0, 8, 8, groups=2)])
    d1 = b.conv(b.shuffle(g1, 2, 8, 8), 8, 8, k=3, groups=8, stride=2, pad=1)
    g2 = b.conv(d1, 8, 6, groups=2)
    pool = b.node("AveragePool", [r0], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1])
    u1 = b.node("Relu", [b.node("Concat", [g2, pool], axis=1)])
    g3 = b.node("Relu", [b.conv(u1, 14, 14, groups=2)])
    d3 = b.conv(b.shuffle(g3, 2, 14, 4), 14, 14, k=3, groups=14, pad=1)
    u2 = b.node("Relu", [b.node("Add", [b.conv(d3, 14, 14, groups=2), u1])])
    return b.model([1, 3, 8, 8], b.head(u2, 14, 5), 5)


def densenet_block() -> bytes:
    """A DenseNet dense block of three layers (each: batch norm → ReLU → 1×1 conv → ReLU → 3×3
    conv, pads 1, no bias, its output concatenated to the block's input), a transition (batch
    norm → ReLU → 1×1 conv → 2×2 average pool) and the next block's first layer, whose batch norm
    follows the pool; the stem's max pool starts the first concatenation."""
    b = Builder(1)
    stem = b.node("MaxPool", [b.node("Relu", [b.conv("x", 3, 6, k=3, pad=1)])], kernel_shape=[2, 2], strides=[2, 2])
    cat, c = stem, 6
    for _ in range(3):
        h = b.node("Relu", [b.conv(b.node("Relu", [b.bn(cat, c)]), c, 8)])
        new = b.conv(h, 8, 4, k=3, pad=1, bias=False)
        cat, c = b.node("Concat", [cat, new], axis=1), c + 4
    t = b.node("AveragePool", [b.conv(b.node("Relu", [b.bn(cat, c)]), c, 8, bias=False)],
               kernel_shape=[2, 2], strides=[2, 2])
    h = b.node("Relu", [b.conv(b.node("Relu", [b.bn(t, 8)]), 8, 8)])
    cat = b.node("Concat", [t, b.conv(h, 8, 4, k=3, pad=1, bias=False)], axis=1)
    return b.model([1, 3, 8, 8], b.head(b.node("Relu", [b.bn(cat, 12)]), 12, 5), 5)


def canonical(model: bytes, tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(model)
    graph = load_onnx(str(path))
    ctx = PassContext()
    return PassManager("canonicalize", ctx).run(graph), ctx


def stats(ctx) -> dict:
    return dict(ctx.stats.get("canonicalize", {}))


def onnxruntime(model: bytes, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    return np.concatenate([sess.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])


def images(n: int = 6) -> np.ndarray:
    return np.random.default_rng(7).random((n, 3, 8, 8), dtype=np.float32)


def test_channel_shuffles_fold_and_the_graph_computes_what_onnxruntime_does(tmp_path):
    model = shufflenet_units()
    graph, ctx = canonical(model, tmp_path)
    kinds = [op.KIND for op in graph.ops]
    assert "ann.transpose" not in kinds and "ann.reshape" not in kinds
    s = stats(ctx)
    assert s["channel-shuffles-folded"] == 2 and s["convs-composed"] == 2 and s["relus-into-concat"] == 1
    # the shuffle crosses the groups: its producer loses them; the composed depthwise + grouped
    # 1×1 keeps the grouped conv's two groups
    groups = sorted(op.groups for op in graph.walk("ann.conv"))
    assert groups == [1, 1, 1, 2, 2]
    x = images()
    got = semantics.run_ann(graph, [x]).outputs[0]
    np.testing.assert_allclose(got, onnxruntime(model, x), rtol=1e-4, atol=1e-5)


def test_dense_block_batchnorms_split_per_reader_and_compute_what_onnxruntime_does(tmp_path):
    model = densenet_block()
    graph, ctx = canonical(model, tmp_path)
    kinds = [op.KIND for op in graph.ops]
    assert "ann.batchnorm" not in kinds and "ann.avgpool" not in kinds
    s = stats(ctx)
    assert s["affines-into-concat"] >= 4 and s["pools-folded-into-conv"] == 1 and s["signs-split"] >= 2
    # no ReLU or per-channel map reads a concatenation: convs read them, and the head's pool
    for op in graph.walk("ann.concat"):
        assert all((u.KIND == "ann.conv" and u.groups == 1) or u.KIND == "ann.global_avgpool"
                   for u in graph.users(op.result))
    x = images()
    got = semantics.run_ann(graph, [x]).outputs[0]
    np.testing.assert_allclose(got, onnxruntime(model, x), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("build", [shufflenet_units, densenet_block])
def test_both_convert_to_spiking_and_the_snn_follows_the_ann(build, tmp_path):
    """After canonicalize nothing is refused; the float SNN at T = 64 (the image as a current)
    ranks the classes as the ANN does on most samples (usual rate-coding semantics)."""
    graph, _ = canonical(build(), tmp_path)
    x = np.random.default_rng(3).random((40, 3, 8, 8), dtype=np.float32)
    ctx = PassContext(calibration=x)
    snn = PassManager("calibrate,normalize,convert-to-spiking{timesteps=64,encoding=current}", ctx).run(graph.clone())
    ann_out = semantics.run_ann(graph, [x]).outputs[0]
    r = semantics.run_snn(snn, [x])
    snn_out = r.outputs[0]
    corr = np.corrcoef(ann_out.reshape(-1), snn_out.reshape(-1))[0, 1]
    assert corr > 0.9


def test_a_transpose_that_moves_positions_is_still_refused(tmp_path):
    b = Builder(2)
    r = b.node("Relu", [b.conv("x", 3, 4, k=3, pad=1)])
    t = b.node("Transpose", [r], perm=[0, 1, 3, 2])  # swaps rows and columns: not a channel permutation
    model = b.model([1, 3, 8, 8], b.head(b.conv(t, 4, 4), 4, 3), 3)
    graph, ctx = canonical(model, tmp_path)
    assert "channel-shuffles-folded" not in stats(ctx)
    with pytest.raises(Exception, match="transpose"):
        PassManager("convert-to-spiking", PassContext()).run(graph)

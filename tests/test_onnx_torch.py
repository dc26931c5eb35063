"""ONNX files as torch.onnx.export writes them (tests/data/onnx-torch/, made by
examples/export_torch_onnx.py with the dynamo exporter at opsets 18-20 and the TorchScript
exporter): every file imports, and nmc's ANN reference semantics matches onnxruntime on the
recorded inputs.  Plus ReduceMean, the operator the dynamo exporter writes for every global or
adaptive average pool, in each of its forms against onnxruntime."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper

from nmc.cli import main
from nmc.diagnostics import NmcError
from nmc.frontends import load
from nmc.ir.io import format_ir
from nmc.ir.parser import parse_ir
from nmc.semantics import run_ann
from tests.test_onnx_frontend import check, init, model, w

DATA = pathlib.Path(__file__).parent / "data" / "onnx-torch"
MANIFEST = json.loads((DATA / "manifest.json").read_text())
EXPORTED = [r for r in MANIFEST["exports"] if r["file"]]
REFUSED_BY_NMC = {"vgg11-32px-dynamo18.onnx": ("GatherND", "unsupported operator")}
IMPORTED = [r for r in EXPORTED if r["file"] not in REFUSED_BY_NMC]
RTOL, ATOL = 1e-4, 1e-5


def _inputs(row) -> np.ndarray:
    return np.load(DATA / f"{row['model']}.inputs.npz")["x"]


def _onnxruntime(path: pathlib.Path, x: np.ndarray) -> np.ndarray:
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    i = sess.get_inputs()[0]
    if isinstance(i.shape[0], int):  # a fixed batch of 1
        return np.concatenate([sess.run(None, {i.name: x[k:k + 1]})[0] for k in range(len(x))])
    return sess.run(None, {i.name: x})[0]


def test_manifest_covers_every_model_and_exporter():
    """ResNet-18, MobileNet-v2, VGG-11, LeNets and an MLP, each from dynamo 18-20 and legacy."""
    for name in ("resnet18", "mobilenet-v2", "vgg11", "lenet-gap", "lenet5", "cnn-mix", "mlp"):
        got = {(r["exporter"], r["opset"]) for r in EXPORTED if r["model"] == name}
        assert got >= {("dynamo", 18), ("dynamo", 19), ("dynamo", 20), ("legacy", 17)}, name
    for r in EXPORTED:
        assert (DATA / r["file"]).stat().st_size < 2_000_000


@pytest.mark.parametrize("row", IMPORTED, ids=[r["file"] for r in IMPORTED])
def test_imports_and_matches_onnxruntime(row):
    path = DATA / row["file"]
    g = load(str(path))
    text, sidecar = format_ir([g], debuginfo=True)
    assert format_ir([parse_ir(text, "roundtrip.nmir", sidecar.get)], debuginfo=True)[0] == text
    x = _inputs(row)
    recorded = np.load(DATA / row["file"].replace(".onnx", ".npz"))["y"]
    live = _onnxruntime(path, x)
    np.testing.assert_allclose(live, recorded, rtol=1e-6, atol=1e-7)  # the data is what this onnxruntime computes
    got = run_ann(g, [x]).outputs[0]
    assert got.shape == recorded.shape
    np.testing.assert_allclose(got, recorded, rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("name", ["resnet18", "mobilenet-v2", "lenet-gap"])
@pytest.mark.parametrize("opset", [18, 19, 20])
def test_dynamo_global_pool_is_one_global_avgpool(name, opset):
    """The dynamo exporter's ReduceMean(axes=[-1, -2], keepdims=1) is an adaptive pool to 1×1."""
    m = onnx.load(str(DATA / f"{name}-dynamo{opset}.onnx"))
    assert "ReduceMean" in {n.op_type for n in m.graph.node} and "GlobalAveragePool" not in {
        n.op_type for n in m.graph.node}
    g = load(str(DATA / f"{name}-dynamo{opset}.onnx"))
    assert [op.KIND for op in g.ops if op.loc is not None and op.loc.op_type == "ReduceMean"] == ["ann.global_avgpool"]


def test_mean_without_keepdim_from_both_exporters():
    """cnn-mix ends in x.mean((2, 3)): ReduceMean with keepdims=0, axes as an input (dynamo) or an
    attribute (TorchScript, opset 17); both become a global pool and a reshape to [C]."""
    for f in ("cnn-mix-dynamo18.onnx", "cnn-mix-legacy17.onnx"):
        g = load(str(DATA / f))
        pool = [op for op in g.ops if op.loc is not None and op.loc.op_type == "ReduceMean"]
        assert [op.KIND for op in pool] == ["ann.global_avgpool", "ann.reshape"]
        assert pool[-1].result.type.shape == (16,)


def test_dynamic_batch_reshape_chain():
    """With a symbolic batch axis the Reshape targets are computed; they fold to constants."""
    for name in ("mlp", "lenet-gap", "resnet18"):
        g = load(str(DATA / f"{name}-dynamo18-dynbatch.onnx"))
        assert g.inputs[0].type.shape == tuple(MANIFEST["models"][name]["input"])


def test_upsampling_adaptive_pool_refused_with_the_node(tmp_path, capsys):
    """VGG's AdaptiveAvgPool2d((7, 7)) on a 1×1 map: the dynamo exporter writes GatherND of a
    tensor transposed so that the batch axis moves; nmc names the node and refuses, exit 1."""
    out = tmp_path / "vgg.nmir"
    assert main(["import", str(DATA / "vgg11-32px-dynamo18.onnx"), "-o", str(out)]) == 1
    err = capsys.readouterr().err
    assert "(GatherND): error: unsupported operator" in err and "node '" in err
    assert "Traceback" not in err and not out.exists()
    legacy = [r for r in MANIFEST["exports"] if r["model"] == "vgg11-32px" and r["exporter"] == "legacy"]
    assert legacy and legacy[0]["file"] is None and "adaptive_avg_pool2d" in legacy[0]["export_error"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["lenet-gap", "resnet18"])
def test_compile_for_cpu_and_run(tmp_path, capsys, name):
    """A LeNet with a global average pool and the ResNet-18, from the dynamo exporter, through
    `nmc compile --target cpu` (the inputs are N(0, 1), so current encoding) and `nmc run`: the
    CPU runtime and the reference semantics agree bit for bit, and pick the class onnxruntime
    picks."""
    x = _inputs({"model": name})
    data = tmp_path / "x.npz"
    np.savez(data, x=x)
    image = tmp_path / "model.nmb"
    assert main(["compile", str(DATA / f"{name}-dynamo18.onnx"), "--target", "cpu", "--calib", str(data),
                 "--timesteps", "16", "--convert", "encoding=current", "-o", str(image)]) == 0
    outs = {}
    for backend in ("reference", "cpu"):
        out = tmp_path / f"{backend}.npy"
        assert main(["run", str(image), "--input", str(data), "--backend", backend, "-o", str(out)]) == 0
        outs[backend] = np.load(out)
    capsys.readouterr()
    assert outs["cpu"].shape == (len(x), 10)
    np.testing.assert_array_equal(outs["cpu"], outs["reference"])
    ann = np.load(DATA / f"{name}-dynamo18.npz")["y"]
    assert (outs["cpu"].argmax(1) == ann.argmax(1)).all()  # the spiking network picks onnxruntime's class


# ------------------------------------------------------------------------- ReduceMean forms


def _reduce(shape, axes, keepdims, opset, noop=None):
    attrs = {"keepdims": keepdims}
    if noop is not None:
        attrs["noop_with_empty_axes"] = noop
    inits, ins = [], ["x"]
    if axes is not None and opset >= 18:
        inits, ins = [init("axes", np.array(axes, np.int64))], ["x", "axes"]
    elif axes is not None:
        attrs["axes"] = axes
    node = helper.make_node("ReduceMean", ins, ["y"], name="/pool/ReduceMean", **attrs)
    return model([node], [("x", shape)], [("y", None)], inits, opset=opset)


@pytest.mark.parametrize("opset", [13, 18, 20])
@pytest.mark.parametrize("shape,axes,keepdims,kinds", [
    ((3, 5, 6), [2, 3], 1, ["ann.global_avgpool"]),
    ((3, 5, 6), [-1, -2], 0, ["ann.global_avgpool", "ann.reshape"]),
    ((3, 5, 6), [3], 1, ["ann.avgpool"]),
    ((3, 5, 6), [2], 0, ["ann.avgpool", "ann.reshape"]),
    ((3, 5, 6), [1], 1, ["ann.conv"]),
    ((3, 5, 6), [1, 2, 3], 1, ["ann.conv", "ann.global_avgpool"]),
    ((3, 5, 6), [1, 3], 0, ["ann.conv", "ann.avgpool", "ann.reshape"]),
    ((4, 7), [-1], 1, ["ann.global_avgpool"]),
    ((4, 7), [1], 0, ["ann.conv", "ann.reshape"]),
    ((6,), [1], 1, ["ann.dense"]),
])
def test_reduce_mean(tmp_path, opset, shape, axes, keepdims, kinds):
    g = check(tmp_path, _reduce(shape, axes, keepdims, opset), rtol=1e-5, atol=1e-6)
    assert [op.KIND for op in g.ops[1:-1]] == kinds
    assert all(op.loc.node == "/pool/ReduceMean" for op in g.ops[1:-1])


def test_reduce_mean_noop_with_empty_axes(tmp_path):
    g = check(tmp_path, _reduce((3, 4), None, 1, 18, noop=1))
    assert [op.KIND for op in g.ops] == ["ann.input", "ann.output"]


@pytest.mark.parametrize("shape,axes,keepdims,opset,message", [
    ((3, 4), None, 1, 18, "averages over the batch axis"),
    ((3, 4), [0, 2], 1, 18, "reduced axis 0 is the batch axis"),
    ((3, 4), [-3], 1, 13, "reduced axis -3 is the batch axis"),
    ((6,), [1], 0, 18, "to a scalar (keepdims=0)"),
    ((2, 3, 4, 5), [2], 1, 18, "ReduceMean of a rank-5 tensor"),
])
def test_reduce_mean_refused(tmp_path, capsys, shape, axes, keepdims, opset, message):
    path = tmp_path / "model.onnx"
    onnx.save(_reduce(shape, axes, keepdims, opset), str(path))
    with pytest.raises(NmcError) as info:
        load(str(path))
    text = info.value.render()
    assert "node '/pool/ReduceMean' (ReduceMean): error:" in text and message in text and info.value.hint
    assert main(["import", str(path), "-o", str(tmp_path / "out.nmir")]) == 1
    assert "Traceback" not in capsys.readouterr().err


def test_reduce_mean_of_a_weighted_model(tmp_path):
    """A conv, then the dynamo exporter's pool-and-flatten: ReduceMean(keepdims=1), Reshape(allowzero=1)."""
    nodes = [helper.make_node("Conv", ["x", "W"], ["c"], name="node_conv2d", pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"], name="node_relu"),
             helper.make_node("ReduceMean", ["r", "ax"], ["m"], name="node_mean", keepdims=1, noop_with_empty_axes=0),
             helper.make_node("Reshape", ["m", "sh"], ["f"], name="node_view", allowzero=1),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["y"], name="node_linear", transB=1)]
    inits = [init("W", w(4, 2, 3, 3)), init("ax", np.array([-1, -2], np.int64)),
             init("sh", np.array([1, 4], np.int64)), init("fw", w(3, 4)), init("fb", w(3))]
    g = check(tmp_path, model(nodes, [("x", (2, 6, 6))], [("y", None)], inits, opset=18, batch=1), batch=3)
    assert [op.KIND for op in g.ops] == ["ann.input", "ann.conv", "ann.relu", "ann.global_avgpool", "ann.reshape",
                                         "ann.dense", "ann.output"]


def test_doc_table_lists_every_export():
    """docs/onnx-torch.md is regenerated (examples/export_torch_onnx.py --table) with the data."""
    doc = (DATA.parent.parent.parent / "docs" / "onnx-torch.md").read_text()
    rows = [ln for ln in doc.splitlines() if ln.startswith("| ") and (" | dynamo | " in ln or " | legacy | " in ln)]
    assert len(rows) == len(MANIFEST["exports"])
    for row, line in zip(MANIFEST["exports"], rows):
        assert line.startswith(f"| {row['model']} | {row['exporter']} | {row['opset']} | ")
        assert ("| yes |" in line) == (row["file"] in {r["file"] for r in IMPORTED})

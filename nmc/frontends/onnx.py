"""The ONNX frontend: ``load_onnx(path) -> Graph`` in the ``ann`` dialect.

Contract:

* Accepts models as exporters write them (PyTorch's TorchScript and dynamo exporters, tf2onnx,
  keras2onnx, CNTK, Chainer), opsets 7–21 (docs/onnx-torch.md: what torch writes).  Old
  opsets are lifted to 13 with onnx's version converter; if that fails the original is used
  (the converters read both the attribute and the input forms of each operator).
* Nodes are sorted topologically; ONNX shape inference runs in strict mode before and after
  constant subgraphs (initializers, Constant nodes, Shape/Gather/Concat chains...) are folded
  by evaluating them with onnx's numpy reference evaluator.
* The IR describes one sample: the batch axis (fixed or symbolic) of every tensor is stripped;
  a constant that depends on the batch size may only be a Reshape target's first entry.
* Every op carries ``Loc(file=path, node=<node name>, op_type=<ONNX op type>)``.
* Problems in the model raise one :class:`NmcError` (unsupported operators: all kinds at once).
"""

from __future__ import annotations

import os
import re

import networkx as nx
import numpy as np
import onnx
import onnx.inliner
import onnx.version_converter
from onnx import numpy_helper

from nmc.diagnostics import Loc, NmcError
from nmc.frontends import onnx_ops
from nmc.ir.core import Graph

TARGET_OPSET = 13
BATCH_PLACEHOLDER = 7919
# Folded constants of more elements than this enter the second shape inference as typed graph
# inputs rather than as data: inference needs only their shapes (a Reshape target or a Slice
# bound, whose values it reads, is far smaller), and serialising AlexNet's 61 M folded weights
# for it took most of the import.  The converter reads every constant from the folded dict.
INFER_AS_INPUT = 1 << 12
"""Stands for a symbolic batch size while shape chains are folded (a prime no layer uses)."""

_NONDETERMINISTIC = {"RandomNormal", "RandomUniform", "RandomNormalLike", "RandomUniformLike",
                     "Multinomial", "Bernoulli"}


def load_onnx(path: str) -> Graph:
    """Read the ONNX model at ``path`` into an ``ann`` graph (see the module contract)."""
    model = _read(path)
    from nmc.frontends.onnx_check import check_model

    check_model(model, path)  # initializers, outputs, kernel shapes (issue 22)
    opset = _default_opset(model)
    if model.functions:  # exporters (dynamo) may wrap modules in model-local functions
        try:
            model = onnx.inliner.inline_local_functions(model)
        except Exception as err:  # noqa: BLE001
            raise NmcError(f"cannot inline the model's local functions: {err}", Loc(path)) from None
    _sort_nodes(model, path)
    if opset < TARGET_OPSET:
        try:
            model = onnx.version_converter.convert_version(model, TARGET_OPSET)
        except Exception:  # noqa: BLE001 - the converters also read the old operator forms
            pass
    model = _infer(model, path)
    batch = _batch_info(model, path)
    consts, tainted = _fold_constants(model, path, batch)
    model = _rebuild(model, consts, tainted, batch, path)
    converter = onnx_ops.Converter(path, model, consts, tainted, batch, _default_opset(model), opset)
    graph = converter.convert(_graph_name(model), {
        "source": "onnx", "opset": opset, "producer": f"{model.producer_name} {model.producer_version}".strip(),
    })
    return graph


# ---------------------------------------------------------------------------- reading


def _read(path: str) -> onnx.ModelProto:
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as err:  # noqa: BLE001 - protobuf raises several kinds
        raise NmcError(f"not a readable ONNX model ({type(err).__name__}: {err})",
                       Loc(path), hint="the file may be truncated or not an ONNX model at all") from None
    if model.ir_version <= 0 or not model.HasField("graph") or not model.opset_import:
        raise NmcError("not an ONNX model (no IR version, graph or opset)", Loc(path),
                       hint="the file may be truncated or not an ONNX model at all")
    _load_external(model, path)
    return model


def _load_external(model: onnx.ModelProto, path: str) -> None:
    base = os.path.dirname(os.path.abspath(path))
    for t in model.graph.initializer:
        if t.data_location != onnx.TensorProto.EXTERNAL:
            continue
        info = {e.key: e.value for e in t.external_data}
        where = os.path.join(base, info.get("location", ""))
        if not info.get("location") or not os.path.isfile(where):
            raise NmcError(f"the external data file '{info.get('location', '')}' of initializer "
                           f"'{t.name}' is missing", Loc(path),
                           hint="keep the weight files next to the model, under the names it records")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, base)
    except Exception as err:  # noqa: BLE001
        raise NmcError(f"cannot read external data ({err})", Loc(path),
                       hint="the weight file may be truncated") from None


def _default_opset(model: onnx.ModelProto) -> int:
    for o in model.opset_import:
        if o.domain in ("", "ai.onnx"):
            return int(o.version)
    return 1  # no default-domain import: only custom ops, reported as unsupported


def _graph_name(model: onnx.ModelProto) -> str:
    name = re.sub(r"[^A-Za-z0-9_.$-]", "_", model.graph.name or "")
    return name or "main"


def _sort_nodes(model: onnx.ModelProto, path: str) -> None:
    """Put the nodes in topological order (stable: ties keep the file's order)."""
    nodes = list(model.graph.node)
    producer = {out: i for i, n in enumerate(nodes) for out in n.output if out}
    g = nx.DiGraph()
    g.add_nodes_from(range(len(nodes)))
    for i, n in enumerate(nodes):
        for name in n.input:
            if name in producer:
                g.add_edge(producer[name], i)
    try:
        order = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = nx.find_cycle(g)
        n = nodes[cycle[0][0]]
        raise NmcError("the graph has a cycle through this node", Loc(path, node=n.name or n.output[0],
                       op_type=n.op_type), hint="nmc reads feed-forward ONNX graphs") from None
    if order != list(range(len(nodes))):
        del model.graph.node[:]
        model.graph.node.extend(nodes[i] for i in order)


def _infer(model: onnx.ModelProto, path: str) -> onnx.ModelProto:
    try:
        return onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as err:  # noqa: BLE001 - InferenceError, ValidationError
        text = str(err).strip().splitlines()
        raise NmcError(f"the shapes of the graph cannot be inferred: {text[0] if text else err}",
                       Loc(path), notes=text[1:4],
                       hint="ONNX shape inference rejects the model; check it with onnx.checker") from None


# ------------------------------------------------------------------------------- batch


class BatchInfo:
    """The graph inputs' batch axis: ``fixed`` size or None when symbolic."""

    def __init__(self, fixed: int | None):
        self.fixed = fixed
        self.placeholder = fixed if fixed is not None else BATCH_PLACEHOLDER


def _batch_info(model: onnx.ModelProto, path: str) -> BatchInfo:
    fixed = None
    init = {t.name for t in model.graph.initializer}
    for vi in model.graph.input:
        if vi.name in init:
            continue
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value"):
            fixed = dims[0].dim_value
    return BatchInfo(fixed)


# ------------------------------------------------------------------------- constant folding


def _shape_of(model_vi: dict, name: str) -> list | None:
    vi = model_vi.get(name)
    if vi is None or not vi.type.tensor_type.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else None for d in vi.type.tensor_type.shape.dim]


def value_infos(model: onnx.ModelProto) -> dict:
    g = model.graph
    return {vi.name: vi for vi in list(g.input) + list(g.value_info) + list(g.output)}


def _fold_constants(model: onnx.ModelProto, path: str, batch: BatchInfo):
    """Evaluate every node whose inputs are all known constants.  Returns (name → array,
    names of constants that depend on the batch size)."""
    from onnx.reference import ReferenceEvaluator

    consts: dict[str, np.ndarray] = {t.name: numpy_helper.to_array(t) for t in model.graph.initializer}
    tainted: set[str] = set()
    vis = value_infos(model)
    opsets = list(model.opset_import)
    for node in model.graph.node:
        loc = Loc(path, node=onnx_ops.node_name(node), op_type=node.op_type)
        ins = [n for n in node.input if n]
        if node.op_type in ("Shape", "Size") and ins and ins[0] not in consts:
            shape = _shape_of(vis, ins[0])
            if shape is None or not shape or any(d is None for d in shape[1:]):
                continue
            full = np.array([batch.placeholder] + shape[1:], dtype=np.int64)
            if node.op_type == "Size":
                value = np.array(np.prod(full), dtype=np.int64)
            else:
                start = onnx_ops.attr(node, "start", 0)
                end = onnx_ops.attr(node, "end", None)
                value = full[start:end]
            consts[node.output[0]] = value
            tainted.add(node.output[0])
            continue
        if node.op_type in _NONDETERMINISTIC or not all(n in consts for n in ins):
            continue
        if node.domain not in ("", "ai.onnx"):
            continue
        graph = onnx.helper.make_graph(
            [node], "fold", [onnx.helper.make_value_info(n, onnx.TypeProto()) for n in dict.fromkeys(ins)],
            [onnx.helper.make_value_info(n, onnx.TypeProto()) for n in node.output if n])
        sub = onnx.helper.make_model(graph, opset_imports=opsets, ir_version=model.ir_version)
        try:
            results = ReferenceEvaluator(sub).run(None, {n: consts[n] for n in dict.fromkeys(ins)})
        except Exception as err:  # noqa: BLE001 - the reference evaluator raises many kinds
            raise NmcError(f"cannot evaluate this constant subgraph: {err}", loc,
                           hint="nmc folds nodes whose inputs are all constants with onnx.reference") from None
        outs = [n for n in node.output if n]
        for name, value in zip(outs, results):
            consts[name] = np.asarray(value)
            if any(n in tainted for n in ins):
                tainted.add(name)
    return consts, tainted


def _rebuild(model: onnx.ModelProto, consts: dict, tainted: set, batch: BatchInfo, path: str) -> onnx.ModelProto:
    """The model with folded nodes removed and the constants they made as initializers; shape
    inference runs again.  A batch-size placeholder at the start of a Reshape target becomes 0
    (copy the batch axis) so that inference sees the real batch."""
    g = model.graph
    kept = [n for n in g.node if not all(o in consts for o in n.output if o)]
    needed = {n for node in kept for n in node.input if n} | {o.name for o in g.output}
    inits, typed = [], []
    order = {name: i for i, name in enumerate(consts)}
    for name in sorted(needed & set(consts), key=order.__getitem__):
        arr = consts[name]
        if arr.size > INFER_AS_INPUT and name not in tainted:
            typed.append(onnx.helper.make_tensor_value_info(
                name, onnx.helper.np_dtype_to_tensor_dtype(arr.dtype), arr.shape))
            continue
        if name in tainted:
            arr = np.array(arr)
            users = [n for n in kept if name in n.input]
            reshape_targets = all(u.op_type == "Reshape" and list(u.input).index(name) == 1
                                  and not onnx_ops.attr(u, "allowzero", 0) for u in users)
            if arr.ndim == 1 and arr.size and arr[0] == batch.placeholder and reshape_targets:
                arr[0] = 0
        inits.append(numpy_helper.from_array(arr, name))
    inputs = [i for i in g.input if i.name not in consts] + typed
    new_graph = onnx.helper.make_graph(kept, g.name, inputs, list(g.output), inits)
    new = onnx.helper.make_model(new_graph, opset_imports=list(model.opset_import),
                                 ir_version=model.ir_version, producer_name=model.producer_name,
                                 producer_version=model.producer_version)
    return _infer(new, path)

"""Checks of an ONNX model at the boundary, before anything is evaluated (issue 22).

Every initializer must decode to a numeric array of its declared shape (``raw_data`` as long as
the shape says, no strings) and of a size under the memory limit; every graph output must be
produced by a node, an input or an initializer; a Conv's ``kernel_shape`` must agree with its
weights."""

from __future__ import annotations

import numpy as np
import onnx
from onnx import numpy_helper

from nmc.diagnostics import Loc, NmcError
from nmc.limits import check_bytes

_NUMERIC = "biuf"


def _bad_string(msg, depth: int = 0) -> str | None:
    """The first string field of ``msg`` that is not valid UTF-8 (protobuf keeps such text as
    surrogates), or None."""
    from google.protobuf.descriptor import FieldDescriptor

    if depth > 64:
        return None
    for field, value in msg.ListFields():
        repeated = field.is_repeated if hasattr(field, "is_repeated") else field.label == FieldDescriptor.LABEL_REPEATED
        items = value if repeated else [value]
        if field.type == FieldDescriptor.TYPE_STRING:
            for v in items:
                if not isinstance(v, str):  # upb hands back invalid UTF-8 as bytes
                    return field.name
                try:
                    v.encode("utf-8")
                except UnicodeEncodeError:
                    return field.name
        elif field.type == FieldDescriptor.TYPE_MESSAGE:
            for v in items:
                found = _bad_string(v, depth + 1)
                if found:
                    return found
    return None


def check_model(model: onnx.ModelProto, path: str) -> None:
    g = model.graph
    bad = _bad_string(model)
    if bad:
        raise NmcError(f"a '{bad}' field of the model is not valid UTF-8 text", Loc(path),
                       hint="the file is damaged; export the model again")
    for n in g.node:
        for a in n.attribute:
            if a.type == onnx.AttributeProto.UNDEFINED:
                raise NmcError(f"attribute '{a.name}' has no type", Loc(path, node=n.name or (n.output[0] if n.output
                               else "?"), op_type=n.op_type), hint="the file is damaged; export the model again")
    arrays = {}
    for t in g.initializer:
        loc = Loc(path, node=t.name, op_type="initializer")
        dims = [int(d) for d in t.dims]
        if any(d < 0 for d in dims):
            raise NmcError(f"initializer '{t.name}' has a negative dimension {dims}", loc)
        if t.data_type == onnx.TensorProto.STRING:
            raise NmcError(f"initializer '{t.name}' holds strings; nmc reads numeric tensors", loc)
        try:
            itemsize = onnx.helper.tensor_dtype_to_np_dtype(t.data_type).itemsize
        except Exception:  # noqa: BLE001 - unknown or undefined data type
            raise NmcError(f"initializer '{t.name}' has an unknown data type {t.data_type}", loc) from None
        check_bytes(int(np.prod(dims, dtype=object)) * itemsize, f"initializer '{t.name}' {dims}", loc)
        try:
            arr = numpy_helper.to_array(t)
        except Exception as err:  # noqa: BLE001 - ValueError, TypeError from a short raw_data
            raise NmcError(f"initializer '{t.name}' cannot be read as a tensor of shape {dims}: "
                           f"{str(err).splitlines()[0] if str(err) else type(err).__name__}", loc,
                           hint="its data is shorter or longer than its shape says; export the model again") from None
        if arr.dtype.kind not in _NUMERIC:
            raise NmcError(f"initializer '{t.name}' has dtype {arr.dtype}; nmc reads numeric tensors", loc)
        arrays[t.name] = arr
    produced = {o for n in g.node for o in n.output if o} | {i.name for i in g.input} | set(arrays)
    for o in g.output:
        if o.name not in produced:
            raise NmcError(f"graph output '{o.name}' is produced by no node, input or initializer", Loc(path),
                           hint="the model is damaged; export it again")
    for n in g.node:
        if n.op_type != "Conv" or len(n.input) < 2 or n.input[1] not in arrays:
            continue
        w = arrays[n.input[1]]
        for a in n.attribute:
            if a.name == "kernel_shape" and list(a.ints) != list(w.shape[2:]):
                raise NmcError(f"kernel_shape {list(a.ints)} disagrees with the weights {list(w.shape)}",
                               Loc(path, node=n.name or n.output[0], op_type=n.op_type),
                               hint="the spatial dimensions of the weights must equal kernel_shape")

"""The IR's textual form (docs/design.md §3, contract), generated from the op declarations.

::

    graph @name {meta}
    blob @w1 : tensor<100x784xf32>
    %x = ann.input : tensor<1x28x28xf32>
    %0 = ann.dense(%f) {bias = dense<[...]> : tensor<10xf32>, weight = @w1} : tensor<10xf32>
    ann.output(%0)

Attributes print sorted by name and are left out when they equal their default.  A blob prints
as its compact initialiser (``splat<...>``, ``random<...>``) when it has one, inline as
``dense<...>`` up to 16 elements, otherwise as ``@name`` with a ``blob @name : type``
declaration whose contents go to the sidecar ``.npz`` (or inline as ``base64<"...">``).
Floats print as the shortest text that reads back to the same bits.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import math
import re
from typing import Any

from nmc.diagnostics import Loc
from nmc.ir.core import Blob, Graph, Op, Random, Splat
from nmc.lazy import lazy_import

np = lazy_import("numpy")

INLINE_LIMIT = 16
_NAME_OK = re.compile(r"[^A-Za-z0-9_.$-]")


def format_float(x: float) -> str:
    """Shortest text that reads back to the same float64 (always has '.', 'e', inf or nan).

    A NaN keeps its sign (``-nan``); its payload does not print (it reads back as the
    canonical quiet NaN)."""
    x = float(x)
    return "-nan" if math.isnan(x) and math.copysign(1.0, x) < 0 else repr(x)


def format_element(x: Any, dtype: np.dtype) -> str:
    if dtype == np.bool_:
        return "true" if x else "false"
    if np.issubdtype(dtype, np.integer):
        return str(int(x))
    if dtype == np.float32:
        if np.isnan(x):
            return format_float(x)
        text = str(np.float32(x))
        return text if any(c in text for c in ".en") else text + ".0"
    return format_float(x)


def format_dense(data: np.ndarray) -> str:
    if data.ndim == 0:
        return format_element(data.item(), data.dtype)
    return "[" + ", ".join(format_dense(row) for row in data) + "]"


def format_loc(loc: Loc) -> str:
    if loc.node is not None:
        op_type = f":{json.dumps(loc.op_type)}" if loc.op_type else ""
        return f"loc({json.dumps(loc.file)}:{json.dumps(loc.node)}{op_type})"
    return f"loc({json.dumps(loc.file)}:{loc.line}:{loc.col})"


def _unique(hint: str, taken: set[str]) -> str:
    name, i = hint, 1
    while name in taken:
        name = f"{hint}_{i}"
        i += 1
    taken.add(name)
    return name


class Printer:
    """Prints one graph; ``sidecar`` maps blob names to the arrays the text refers to by name
    without carrying their contents (empty with ``print_blobs``)."""

    def __init__(self, graph: Graph, *, debuginfo: bool = False, print_blobs: bool = False):
        self.graph = graph
        self.debuginfo = debuginfo
        self.print_blobs = print_blobs
        self.sidecar: dict[str, np.ndarray] = {}
        self._value_names = self._name_values()
        self._blob_names: dict[int, str] = {}
        self._blob_decls: list[str] = []
        self._name_blobs()

    # -- names -----------------------------------------------------------------------------

    def _name_values(self) -> dict[int, str]:
        taken: set[str] = set()
        names: dict[int, str] = {}
        results = [op.result for op in self.graph.ops if op.result is not None]
        for v in results:
            if v.name:
                names[id(v)] = _unique(_NAME_OK.sub("_", v.name), taken)
        counter = 0
        for v in results:
            if id(v) not in names:
                while str(counter) in taken:
                    counter += 1
                names[id(v)] = _unique(str(counter), taken)
        return names

    def value_name(self, v) -> str:
        return "%" + self._value_names.get(id(v), "<<undefined>>")

    def _name_blobs(self) -> None:
        taken: set[str] = set()
        for op in self.graph.ops:
            for field, b in op.blobs():
                if id(b) in self._blob_names or self._prints_inline(b):
                    continue
                owner = self._value_names.get(id(op.result), op.KIND.split(".")[-1]) if op.result else op.KIND
                hint = _NAME_OK.sub("_", b.name) if b.name else f"{owner}.{field}"
                name = _unique(hint, taken)
                self._blob_names[id(b)] = name
                if self.print_blobs:
                    raw = base64.b64encode(b.data.astype(b.data.dtype.newbyteorder("<")).tobytes()).decode()
                    self._blob_decls.append(f'blob @{name} = base64<"{raw}"> : {b.type}')
                else:
                    self._blob_decls.append(f"blob @{name} : {b.type}")
                    self.sidecar[name] = b.data

    @staticmethod
    def _prints_inline(b: Blob) -> bool:
        return b.init is not None or b.size <= INLINE_LIMIT or _splat_value(b) is not None

    # -- values ----------------------------------------------------------------------------

    def blob_text(self, b: Blob) -> str:
        if id(b) in self._blob_names:
            return "@" + self._blob_names[id(b)]
        if isinstance(b.init, Random):
            body = f"{b.init.dist}, seed = {b.init.seed}, scale = {format_float(b.init.scale)}"
            return f"random<{body}> : {b.type}"
        if isinstance(b.init, Splat) or (b.size > INLINE_LIMIT and _splat_value(b) is not None):
            value = b.data.flat[0] if b.size else b.init.value
            return f"splat<{format_element(value, b.data.dtype)}> : {b.type}"
        return f"dense<{format_dense(b.data)}> : {b.type}"

    def attr_text(self, value: Any) -> str:
        if isinstance(value, Blob):
            return self.blob_text(value)
        if isinstance(value, bool | np.bool_):
            return "true" if value else "false"
        if isinstance(value, int | np.integer):
            return str(int(value))
        if isinstance(value, float | np.floating):
            return format_float(value)
        if isinstance(value, str):
            return value if re.fullmatch(r"[a-z_][a-z0-9_]*", value) else json.dumps(value)
        if isinstance(value, tuple | list):
            return "[" + ", ".join(json.dumps(x) if isinstance(x, str) else self.attr_text(x) for x in value) + "]"
        raise TypeError(f"cannot print attribute value {value!r}")

    def attr_dict(self, op: Op) -> str:
        items = []
        for name, spec in op.attr_specs():
            value = getattr(op, name)
            default = spec.default_fn(op) if spec.default_fn else _declared_default(op, name)
            if default is not _NO_DEFAULT and _same(value, default):
                continue
            if spec.kind == "str":
                items.append((name, json.dumps(value)))
            else:
                items.append((name, self.attr_text(value)))
        for key, value in op.extra.items():
            items.append((key, json.dumps(value) if isinstance(value, str) else self.attr_text(value)))
        if not items:
            return ""
        return " {" + ", ".join(f"{k} = {v}" for k, v in sorted(items)) + "}"

    # -- lines -----------------------------------------------------------------------------

    def op_text(self, op: Op) -> str:
        head = f"{self.value_name(op.result)} = " if op.result is not None else ""
        args = ", ".join(self.value_name(v) for v in op.operands)
        text = f"{head}{op.KIND}" + (f"({args})" if op.operand_specs() else "")
        text += self.attr_dict(op)
        if op.result is not None:
            text += f" : {op.result.type}"
        if self.debuginfo and op.loc is not None:
            text += " " + format_loc(op.loc)
        return text

    def header(self) -> str:
        meta = ""
        if self.graph.meta:
            # strings always quoted: a bare word would lex as a keyword, not a value
            body = ", ".join(f"{k} = {json.dumps(v) if isinstance(v, str) else self.attr_text(v)}"
                             for k, v in sorted(self.graph.meta.items()))
            meta = " {" + body + "}"
        return f"graph @{_NAME_OK.sub('_', self.graph.name)}{meta}"

    def text(self) -> str:
        lines = [self.header(), *self._blob_decls, *(self.op_text(op) for op in self.graph.ops)]
        return "\n".join(lines) + "\n"


_NO_DEFAULT = object()


def _declared_default(op: Op, name: str):
    for f in dataclasses.fields(op):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    return _NO_DEFAULT


def _same(a: Any, b: Any) -> bool:
    """Does attribute value ``a`` equal default ``b`` (so that it need not print)?"""
    if isinstance(a, Blob) or isinstance(b, Blob):
        return a is b
    if isinstance(a, bool) != isinstance(b, bool):
        return False
    if isinstance(a, float) and isinstance(b, float) and np.isnan(a) and np.isnan(b):
        return True
    return a == b


def _splat_value(b: Blob):
    """The common value of a blob whose elements are all equal (bitwise), else None."""
    if b.size <= 1:
        return None
    flat = b.data.reshape(-1)
    first = flat[:1]
    if flat.dtype.kind == "f":
        same = np.array_equal(flat.view(np.dtype(f"u{flat.itemsize}")), np.broadcast_to(first.view(np.dtype(f"u{flat.itemsize}")), flat.shape))
    else:
        same = bool(np.all(flat == first))
    return first[0] if same else None


def print_graph(graph: Graph, *, debuginfo: bool = False, print_blobs: bool = False) -> str:
    """The text of ``graph``.  Large blobs print as ``@name`` references without contents
    unless ``print_blobs``; use :func:`nmc.ir.io.write_ir` to keep them in a sidecar."""
    return Printer(graph, debuginfo=debuginfo, print_blobs=print_blobs).text()

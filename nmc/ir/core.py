"""The IR's building blocks: values, blobs, op declarations and the graph.

A :class:`Graph` is an ordered list of :class:`Op` in SSA form.  Each op kind is declared once as
a dataclass whose fields are made with the helpers below (:func:`operand`, :func:`ints`,
:func:`blob`, ...).  The field declarations are all the printer, the parser and the verifier
need: adding an op means writing its dataclass.

Contracts:

* Equality of ops, values and blobs is identity.
* An op with a result owns exactly one :class:`Value`, created when the op is constructed, with
  the type its ``infer_type`` computes (or ``declared_type`` for ops whose type is not implied
  by their operands, such as ``ann.input``).
* Blobs are immutable (their arrays are read-only); a pass that changes weights makes a new blob.
* Use-def information is derived from the operand fields: ``users`` and the networkx view
  compute it on demand, except inside :meth:`Graph.tracked_uses` (rewrite patterns), where an
  index that the graph's own edits keep current answers ``users`` without a scan of every op.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from nmc.diagnostics import Loc, NmcError
from nmc.ir.types import TensorType, Type, dtype_name
from nmc.lazy import lazy_import

np = lazy_import("numpy")

if TYPE_CHECKING:
    import networkx as nx


class VerifyError(NmcError):
    """An op or graph breaks an IR rule."""


# ---------------------------------------------------------------------------------- values


@dataclass(eq=False)
class Value:
    """An SSA value: the result of one op.  ``name`` is only a hint for the printer."""

    type: Type | None
    owner: Op | None = None
    name: str | None = None

    def __repr__(self) -> str:
        return f"<Value %{self.name or '?'}: {self.type}>"


@dataclass(frozen=True)
class Splat:
    """Compact initialiser: every element equals ``value``."""

    value: float


@dataclass(frozen=True)
class Random:
    """Compact initialiser drawn from the platform-independent counter hash (nmc.hashrng)."""

    dist: str  # "uniform" in [-scale, scale) or "normal" with standard deviation ``scale``
    seed: int = 0
    scale: float = 1.0


@dataclass(eq=False)
class Blob:
    """A named constant tensor (weights, per-neuron parameters).

    ``init`` remembers a compact initialiser (splat, random) so that test files print back as
    written; it is dropped whenever the data is not exactly what the initialiser makes.
    """

    data: np.ndarray
    name: str | None = None
    init: Splat | Random | None = None

    def __post_init__(self):
        arr = np.array(self.data, copy=True, order="C")
        dtype_name(arr.dtype)  # rejects dtypes the IR cannot spell
        arr.flags.writeable = False
        self.data = arr

    @property
    def type(self) -> TensorType:
        return TensorType(tuple(self.data.shape), dtype_name(self.data.dtype))

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(self.data.shape)

    @property
    def size(self) -> int:
        return int(self.data.size)

    def __repr__(self) -> str:
        return f"<Blob @{self.name or '?'}: {self.type}>"


Param = float | int | Blob
"""A per-neuron parameter: one number for all neurons, or a blob broadcast to the shape."""


def param_array(p: Param, shape: tuple[int, ...], dtype="float64") -> np.ndarray:
    """``p`` broadcast to ``shape`` as a fresh array of ``dtype``."""
    arr = p.data if isinstance(p, Blob) else np.asarray(p)
    return np.broadcast_to(arr, shape).astype(dtype)


# ------------------------------------------------------------------------- field declarations


@dataclass(frozen=True)
class FieldSpec:
    """How one op field prints, parses and verifies.

    kind: operand | operands | int | float | bool | str | enum | ints | floats | blob | param.
    ``default_fn`` computes the default of a field from the rest of the op (e.g. strides of 1
    for as many spatial axes as the kernel has); such a field is omitted from the text when it
    equals that default.
    """

    kind: str
    choices: tuple[str, ...] = ()
    optional: bool = False
    default_fn: Any = None
    doc: str = ""


def _field(spec: FieldSpec, default: Any = dataclasses.MISSING, factory: Any = dataclasses.MISSING):
    return field(default=default, default_factory=factory, metadata={"nmc": spec})


def operand(doc: str = ""):
    """A single input value."""
    return _field(FieldSpec("operand", doc=doc))


def operands(doc: str = ""):
    """A variadic list of input values."""
    return _field(FieldSpec("operands", doc=doc), factory=list)


def integer(default: Any = dataclasses.MISSING, doc: str = ""):
    return _field(FieldSpec("int", doc=doc), default)


def real(default: Any = dataclasses.MISSING, doc: str = ""):
    return _field(FieldSpec("float", doc=doc), default)


def flag(default: bool = False, doc: str = ""):
    return _field(FieldSpec("bool", doc=doc), default)


def enum(*choices: str, default: Any = dataclasses.MISSING, doc: str = ""):
    return _field(FieldSpec("enum", choices=choices, doc=doc), default)


def ints(default_fn=None, doc: str = ""):
    """A tuple of ints; ``default_fn(op)`` fills it when it is not given."""
    return _field(FieldSpec("ints", default_fn=default_fn, doc=doc), None if default_fn else ())


def blob(optional: bool = False, doc: str = ""):
    spec = FieldSpec("blob", optional=optional, doc=doc)
    return _field(spec, None) if optional else _field(spec)


def param(default: Any = dataclasses.MISSING, doc: str = ""):
    """A per-neuron parameter (:data:`Param`)."""
    return _field(FieldSpec("param", doc=doc), default)


# ------------------------------------------------------------------------------------- ops

OPS: dict[str, type[Op]] = {}
"""Every registered op kind, by its dialect-qualified name."""


def register(kind: str):
    """Class decorator: make ``cls`` a keyword-only dataclass op of kind ``kind``."""

    def wrap(cls):
        cls.KIND = kind
        cls = dataclass(eq=False, kw_only=True, repr=False)(cls)
        if kind in OPS:
            raise ValueError(f"op kind {kind} registered twice")
        OPS[kind] = cls
        return cls

    return wrap


def op_base(cls):
    """Class decorator for an abstract op base that declares fields shared by several kinds."""
    return dataclass(eq=False, kw_only=True, repr=False)(cls)


@dataclass(eq=False, kw_only=True, repr=False)
class Op:
    """Base of every op.  Subclasses are made with :func:`register`."""

    KIND: ClassVar[str] = "?"
    HAS_RESULT: ClassVar[bool] = True
    FORWARD_REFS: ClassVar[bool] = False  # may operands be defined later (recurrent loops)?

    declared_type: Type | None = None
    loc: Loc | None = None
    extra: dict[str, Any] = field(default_factory=dict)
    result: Value | None = field(default=None, init=False)

    def __post_init__(self):
        for name, spec in self.field_specs():
            if spec.default_fn is not None and getattr(self, name) is None:
                setattr(self, name, tuple(spec.default_fn(self)))
            elif spec.kind in ("ints",):
                setattr(self, name, tuple(int(v) for v in getattr(self, name)))
            elif spec.kind == "operands":
                setattr(self, name, list(getattr(self, name)))
        if self.HAS_RESULT:
            inferred = None if self.declared_type is not None else self.infer_type()
            rtype = self.declared_type if self.declared_type is not None else inferred
            if rtype is None:
                raise self.error("the result type must be given")
            self.result = Value(rtype, owner=self)

    # -- declaration introspection ------------------------------------------------------

    @classmethod
    def field_specs(cls) -> list[tuple[str, FieldSpec]]:
        """(name, spec) of every declared field, in declaration order."""
        cached = cls.__dict__.get("_field_specs")
        if cached is None:
            cached = [
                (f.name, f.metadata["nmc"]) for f in dataclasses.fields(cls) if "nmc" in f.metadata
            ]
            cls._field_specs = cached
        return cached

    @classmethod
    def operand_specs(cls) -> list[tuple[str, FieldSpec]]:
        cached = cls.__dict__.get("_operand_specs")  # Graph.users asks for every op: cached as field_specs
        if cached is None:
            cached = [(n, s) for n, s in cls.field_specs() if s.kind in ("operand", "operands")]
            cls._operand_specs = cached
        return cached

    @classmethod
    def attr_specs(cls) -> list[tuple[str, FieldSpec]]:
        return [(n, s) for n, s in cls.field_specs() if s.kind not in ("operand", "operands")]

    @property
    def dialect(self) -> str:
        return self.KIND.split(".", 1)[0]

    @property
    def operands(self) -> list[Value]:
        """Every operand value, flattened, in declaration order."""
        out: list[Value] = []
        for name, spec in self.operand_specs():
            v = getattr(self, name)
            out.extend(v if spec.kind == "operands" else [v])
        return out

    def replace_operand(self, old: Value, new: Value) -> int:
        """Point every use of ``old`` in this op at ``new``; returns how many were replaced."""
        _UNTRACKED[0] += 1  # a graph's use index cannot see this edit: it rebuilds on next use
        return self._swap_operand(old, new)

    def _swap_operand(self, old: Value, new: Value) -> int:
        n = 0
        for name, spec in self.operand_specs():
            v = getattr(self, name)
            if spec.kind == "operands":
                for i, x in enumerate(v):
                    if x is old:
                        v[i] = new
                        n += 1
            elif v is old:
                setattr(self, name, new)
                n += 1
        return n

    def attrs(self) -> dict[str, Any]:
        return {name: getattr(self, name) for name, _ in self.attr_specs()}

    def blobs(self) -> Iterator[tuple[str, Blob]]:
        """(field name, blob) for every blob this op refers to, declaration order."""
        for name, _ in self.attr_specs():
            v = getattr(self, name)
            if isinstance(v, Blob):
                yield name, v
        for key in sorted(self.extra):
            if isinstance(self.extra[key], Blob):
                yield key, self.extra[key]

    def with_changes(self, **changes) -> Op:
        """A new op of the same kind with some fields changed (and a fresh result value)."""
        new = dataclasses.replace(self, **changes)
        new.extra = dict(self.extra)
        if new.result is not None and self.result is not None:
            new.result.name = self.result.name
        return new

    # -- rules ------------------------------------------------------------------------------

    def infer_type(self) -> Type | None:
        """The result type implied by the operands and attributes; raise via :meth:`error` when
        they are inconsistent.  None: the type is declared, not inferred."""
        return None

    def verify(self) -> None:
        """Rules beyond those :meth:`infer_type` checks (override to add)."""

    def error(self, message: str, hint: str | None = None) -> VerifyError:
        return VerifyError(f"'{self.KIND}' op {message}", self.loc, hint=hint)

    def __repr__(self) -> str:
        name = self.result.name if self.result is not None else ""
        return f"<{self.KIND} %{name}>" if name else f"<{self.KIND}>"


# -------------------------------------------------------------------- small rule helpers


def tensor_operand(op: Op, value: Value, what: str = "operand", rank: tuple[int, ...] = ()) -> TensorType:
    """``value``'s type, required to be a tensor (of one of the ranks in ``rank``, if given)."""
    t = value.type
    if not isinstance(t, TensorType):
        raise op.error(f"expects a tensor as its {what}, got {t}")
    if rank and t.rank not in rank:
        want = " or ".join(str(r) for r in rank)
        raise op.error(f"expects a rank-{want} tensor as its {what} (per sample), got {t}")
    return t


def require(op: Op, condition: bool, message: str, hint: str | None = None) -> None:
    if not condition:
        raise op.error(message, hint)


# ------------------------------------------------------------------------------------ graph

_UNTRACKED = [0]  # count of operand edits made outside Graph's methods (Op.replace_operand)


class Graph:
    """An ordered list of ops in SSA form, with graph-level metadata (``dt``, ``timesteps``...).

    ``meta`` values are ints, floats, bools, strings or lists of numbers; they print in the
    graph header and travel with the text.
    """

    _uses: dict[int, tuple[Value, dict[int, Op]]] | None = None  # id(value) -> users, while tracked_uses
    _uses_seen = 0  # _UNTRACKED[0] when the index was built or last kept current
    _members: set[int] = frozenset()  # id of every op, while tracked_uses

    def __init__(self, name: str = "main", meta: dict[str, Any] | None = None):
        self.name = name
        self.ops: list[Op] = []
        self.meta: dict[str, Any] = dict(meta or {})

    # -- use index ------------------------------------------------------------------------

    @contextmanager
    def tracked_uses(self):
        """Within this block :meth:`users` answers from an index of each value's users, which
        :meth:`add`, :meth:`insert_before`, :meth:`insert_after`, :meth:`erase`,
        :meth:`replace`, :meth:`replace_all_uses`, :meth:`redirect` and :meth:`replace_ops` keep current (an edit
        by :meth:`Op.replace_operand` makes it rebuild on the next query): a rewrite that asks for
        users and edits locally costs its own size, not the graph's.  Inside the block, operand
        fields must not be assigned directly nor ``ops`` changed in place."""
        outer = self._uses
        if outer is None:
            self._index_uses()
        try:
            yield self
        finally:
            if outer is None:
                self._uses = None

    def _index_uses(self) -> None:
        self._uses, self._members = {}, {id(op) for op in self.ops}
        self._uses_seen = _UNTRACKED[0]
        for op in self.ops:
            self._note_uses(op, +1)

    def holds(self, op: Op) -> bool:
        """Whether ``op`` is one of the graph's ops."""
        if self._uses is None:
            return op in self.ops  # ops compare by identity
        return id(op) in self._members

    def _note_uses(self, op: Op, sign: int) -> None:
        """Add (``sign`` +1) or remove (-1) ``op``'s operands' uses in the index, if it is kept."""
        if self._uses is None:
            return
        if self._uses_seen != _UNTRACKED[0]:
            self._uses = None
            self._index_uses()  # includes ``op`` if it is in ``ops`` already
            return
        if sign > 0:
            self._members.add(id(op))
        else:
            self._members.discard(id(op))
        for v in op.operands:
            if sign > 0:
                self._uses.setdefault(id(v), (v, {}))[1][id(op)] = op
            elif id(v) in self._uses:
                self._uses[id(v)][1].pop(id(op), None)

    # -- building -------------------------------------------------------------------------

    def add(self, op: Op, name: str | None = None) -> Value | None:
        """Append ``op``; returns its result (named ``name`` if given)."""
        self.ops.append(op)
        self._note_uses(op, +1)
        if name is not None and op.result is not None:
            op.result.name = name
        return op.result

    def insert_before(self, anchor: Op, op: Op) -> Value | None:
        self.ops.insert(self.index(anchor), op)
        self._note_uses(op, +1)
        return op.result

    def insert_after(self, anchor: Op, op: Op) -> Value | None:
        self.ops.insert(self.index(anchor) + 1, op)
        self._note_uses(op, +1)
        return op.result

    def index(self, op: Op) -> int:
        try:
            return self.ops.index(op)  # ops compare by identity
        except ValueError:
            raise ValueError(f"{op!r} is not in graph @{self.name}") from None

    def erase(self, op: Op) -> None:
        """Remove ``op``, which must have no users left."""
        if op.result is not None and self.users(op.result):
            raise ValueError(f"cannot erase {op!r}: its result still has users")
        del self.ops[self.index(op)]
        self._note_uses(op, -1)
        if self._uses is not None and op.result is not None:
            self._uses.pop(id(op.result), None)

    def replace_all_uses(self, old: Value, new: Value) -> int:
        if self._uses is None:
            return sum(user._swap_operand(old, new) for user in self.ops)
        if self._uses_seen != _UNTRACKED[0]:
            self._index_uses()
        _, users = self._uses.pop(id(old), (old, {}))
        n = sum(user._swap_operand(old, new) for user in users.values())
        if users and new is not old:
            self._uses.setdefault(id(new), (new, {}))[1].update(users)
        return n

    def redirect(self, op: Op, old: Value, new: Value) -> int:
        """:meth:`Op.replace_operand` on ``op``, one of the graph's ops, keeping the use index."""
        n = op._swap_operand(old, new)
        if n and self._uses is not None and self._uses_seen == _UNTRACKED[0]:
            if id(old) in self._uses:
                self._uses[id(old)][1].pop(id(op), None)
            self._uses.setdefault(id(new), (new, {}))[1][id(op)] = op
        return n

    def replace(self, op: Op, new: Op | Value) -> None:
        """Replace ``op``: its uses go to ``new`` (a value, or a new op put in ``op``'s place),
        then ``op`` is erased."""
        if isinstance(new, Op):
            self.ops.insert(self.index(op), new)
            self._note_uses(new, +1)
            value = new.result
        else:
            value = new
        if op.result is not None:
            if value is None:
                raise ValueError(f"{op!r} has a result and its replacement has none")
            if value.name is None:
                value.name = op.result.name
            self.replace_all_uses(op.result, value)
        self.erase(op)

    def replace_ops(self, replacements: dict[Op, Op]) -> None:
        """:meth:`replace` for many ops in one sweep: each new op takes its old op's place and
        every use of an old result goes to the new op's result (a loop of :meth:`replace` scans
        the graph once per op: quadratic on a deep graph)."""
        values: dict[int, Value] = {}
        for old, new in replacements.items():
            if old.result is not None:
                if new.result is None:
                    raise ValueError(f"{old!r} has a result and its replacement has none")
                if new.result.name is None:
                    new.result.name = old.result.name
                values[id(old.result)] = new.result
        self.ops = [replacements.get(op, op) for op in self.ops]
        for op in self.ops:
            for name, spec in op.operand_specs():
                v = getattr(op, name)
                if spec.kind == "operands":
                    for i, x in enumerate(v):
                        if id(x) in values:
                            v[i] = values[id(x)]
                elif id(v) in values:
                    setattr(op, name, values[id(v)])
        if self._uses is not None:
            self._index_uses()

    # -- queries -----------------------------------------------------------------------------

    def users(self, value: Value) -> list[Op]:
        """The ops that read ``value``, each once, in program order."""
        if self._uses is None:
            return [op for op in self.ops if any(v is value for v in op.operands)]
        if self._uses_seen != _UNTRACKED[0]:
            self._index_uses()
        users = list(self._uses.get(id(value), (value, {}))[1].values())
        return sorted(users, key=self.ops.index) if len(users) > 1 else users

    def walk(self, kind: str | type | tuple = Op) -> list[Op]:
        """Ops of a kind (``"ann.conv"``, a class, or a tuple of classes), in program order.

        Returns a list, so the graph may be changed while iterating."""
        if isinstance(kind, str):
            return [op for op in self.ops if op.KIND == kind]
        return [op for op in self.ops if isinstance(op, kind)]

    @property
    def inputs(self) -> list[Value]:
        return [op.result for op in self.ops if op.KIND == "ann.input"]

    @property
    def outputs(self) -> list[Value]:
        outs = self.walk("ann.output")
        return list(outs[-1].operands) if outs else []

    def blob_table(self) -> dict[int, Blob]:
        """Every blob the ops refer to, keyed by id, in order of first use."""
        table: dict[int, Blob] = {}
        for op in self.ops:
            for _, b in op.blobs():
                table.setdefault(id(b), b)
        return table

    def nx(self) -> nx.MultiDiGraph:
        """A fresh networkx view: ops as nodes (attribute ``kind``), one edge per use from the
        producing op to the user, keyed by operand position (attribute ``port``)."""
        import networkx as nx  # imported on use: networkx is slow to import

        g = nx.MultiDiGraph()
        for op in self.ops:
            g.add_node(op, kind=op.KIND)
        producers = {id(op.result): op for op in self.ops if op.result is not None}
        for op in self.ops:
            for port, v in enumerate(op.operands):
                src = producers.get(id(v))
                if src is not None:
                    g.add_edge(src, op, key=port, port=port)
        return g

    def clone(self) -> Graph:
        """A copy with new ops and values (blobs are immutable and shared)."""
        g = Graph(self.name, dict(self.meta))
        mapping: dict[int, Value] = {}
        new_ops = []
        for op in self.ops:
            new = dataclasses.replace(op, **{n: getattr(op, n) for n, _ in op.operand_specs()})
            new.extra = dict(op.extra)
            if op.result is not None:
                new.result.name = op.result.name
                new.result.type = op.result.type
                mapping[id(op.result)] = new.result
            new_ops.append(new)
        for new in new_ops:
            for name, spec in new.operand_specs():
                v = getattr(new, name)
                if spec.kind == "operands":
                    setattr(new, name, [mapping.get(id(x), x) for x in v])
                else:
                    setattr(new, name, mapping.get(id(v), v))
        g.ops = new_ops
        return g

    def __len__(self) -> int:
        return len(self.ops)

    def __repr__(self) -> str:
        return f"<Graph @{self.name}: {len(self.ops)} ops>"

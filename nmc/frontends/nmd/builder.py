"""The builder: one ``.nmd`` file's tree to a graph.  It holds what ANN and spiking networks
share — diagnostics at a position, expressions, call binding, weight sources (files,
initialisers, literals), op creation, the ``network`` header, names and scopes — and hands the
statements to :func:`~nmc.frontends.nmd.ann.build_ann` or :func:`~nmc.frontends.nmd.snn.build_snn`."""

from __future__ import annotations

import math
import os
import re
from decimal import Decimal
from typing import Any

import lark
import numpy as np

from nmc.diagnostics import Loc, NmcError
from nmc.frontends.nmd.ann import ANN_LAYERS, build_ann
from nmc.frontends.nmd.snn import build_snn
from nmc.frontends.nmd.values import CONSTANTS, TIME_UNITS, Arg, Bound, LayerSpec, Scope, Sym, Time, show, suggest
from nmc.hashrng import random_array
from nmc.ir.core import Blob, Graph, Random, Splat, Value, VerifyError
from nmc.ir.parser import Source

_NUMBER_RE = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([A-Za-z]*)")


class Builder:
    """The state of building one file: its graph, blocks, constants, loaded weight files, the
    default-initialiser seed, ``dt``; the helpers every statement uses."""

    def __init__(self, src: Source, base_dir: str):
        self.src = src
        self.base_dir = base_dir
        self.graph = Graph(os.path.splitext(os.path.basename(src.filename))[0] or "main")
        self.blocks: dict[str, lark.Tree] = {}
        self.consts: dict[str, Any] = {}
        self.files: dict[str, Any] = {}
        self.seed = 0  # default initialisers use seeds 1, 2, ... in program order
        self.dt: Decimal | None = None
        self.weight_dtype = np.float32
        self.depth = 0
        self.instances: dict[str, int] = {}  # uses of each block under each name prefix

    # -- diagnostics -----------------------------------------------------------------------

    def err(self, node, message: str, hint: str | None = None) -> NmcError:
        meta = node.meta if isinstance(node, lark.Tree) else node
        if isinstance(node, lark.Tree) and getattr(meta, "empty", False):
            return NmcError(message, Loc(self.src.filename), hint=hint)
        return self.src.at(meta, message, hint)

    def loc(self, node) -> Loc:
        meta = node.meta if isinstance(node, lark.Tree) else node
        return Loc(self.src.filename, meta.line, meta.column)

    # -- expressions -----------------------------------------------------------------------

    def eval(self, node, scope: Scope) -> Any:
        kind = node.data if isinstance(node, lark.Tree) else None
        if kind == "number":
            return self.number_literal(node.children[0])
        if kind == "string":
            return str(node.children[0])[1:-1].encode().decode("unicode_escape")
        if kind == "list":
            return [self.eval(c, scope) for c in node.children if c is not None]
        if kind == "name":
            name = str(node.children[0])
            if name in scope.consts:
                return scope.consts[name]
            if name in self.consts:
                return self.consts[name]
            return CONSTANTS.get(name, Sym(name))
        if kind == "neg":
            return self.arith("-", None, self.eval(node.children[0], scope), node)
        if kind in ("add", "sub", "mul", "div"):
            a, b = (self.eval(c, scope) for c in node.children)
            return self.arith({"add": "+", "sub": "-", "mul": "*", "div": "/"}[kind], a, b, node)
        if kind == "call":
            return self.initialiser(node, scope)
        raise self.err(node, "unsupported expression")

    def number_literal(self, tok: lark.Token) -> Any:
        text = str(tok)
        digits, unit = _NUMBER_RE.fullmatch(text).groups()
        if unit:
            if unit not in TIME_UNITS:
                raise self.src.at(tok, f"unknown unit '{unit}' in '{text}'", hint="time units: s, ms, us, ns")
            return Time(Decimal(digits) * TIME_UNITS[unit], text)
        return int(digits) if digits.isdigit() else float(digits)

    def arith(self, op: str, a: Any, b: Any, node) -> Any:
        """Arithmetic on numbers and times (``a`` None: negation of ``b``)."""
        operands = [v for v in (a, b) if v is not None]
        for v in operands:
            if isinstance(v, Sym):
                raise self.err(node, f"unknown name '{v.name}' in an expression",
                               hint="expressions combine numbers, times, 'let' constants and block parameters")
            if isinstance(v, bool) or not isinstance(v, int | float | Time):
                raise self.err(node, f"'{op}' needs numbers or times, got {show(v)}")
        if a is None:
            return Time(-b.seconds, f"-{b.text}") if isinstance(b, Time) else -b
        ta, tb = isinstance(a, Time), isinstance(b, Time)
        if ta or tb:
            x = a.seconds if ta else Decimal(repr(a))
            y = b.seconds if tb else Decimal(repr(b))
            if op in "+-" and ta != tb:
                raise self.err(node, f"cannot '{op}' a time and a plain number")
            if op == "*" and ta and tb:
                raise self.err(node, "cannot multiply two times")
            if op == "/" and tb and not ta:
                raise self.err(node, "cannot divide a number by a time")
            if op == "/" and y == 0:
                raise self.err(node, "division by zero")
            r = {"+": x + y, "-": x - y, "*": x * y}.get(op) if op != "/" else x / y
            return float(r) if (op == "/" and ta and tb) else Time(r, f"{r.normalize()}s")
        if op == "/":
            if b == 0:
                raise self.err(node, "division by zero")
            if isinstance(a, int) and isinstance(b, int) and a % b == 0:
                return a // b
            return a / b
        return {"+": a + b, "-": a - b, "*": a * b}[op]

    def initialiser(self, node: lark.Tree, scope: Scope) -> Any:
        """``random(...)``, ``splat(v)``, ``zeros``/``ones`` (bare) as blob initialisers."""
        name = str(node.children[0])
        args = self.bind(node, scope, _INITIALISERS, "initialiser")
        return _INITIALISERS[name].fn(self, args)

    def as_number(self, arg: Arg, what: str, integer: bool = False) -> Any:
        v = arg.value
        if isinstance(v, Sym):
            raise self.err(arg.node, f"unknown name '{v.name}' where {what} (a number) is expected")
        if isinstance(v, Time):
            raise self.err(arg.node, f"{what} is a plain number, not a time ({v.text})",
                           hint="only time constants (tau, dt, delays) take units")
        if isinstance(v, bool) or not isinstance(v, int | float):
            raise self.err(arg.node, f"{what} must be a number, got {show(v)}")
        if integer:
            if isinstance(v, float) and not v.is_integer():
                raise self.err(arg.node, f"{what} must be an integer, got {v}")
            if not -(1 << 64) < v < (1 << 64):  # sizes, seeds, shapes: bounded before anything is made (issue 22)
                raise self.err(arg.node, f"{what} = {_approx(int(v))} is too large an integer (at most 2**64 - 1)")
            return int(v)
        if isinstance(v, float) and not math.isfinite(v):
            raise self.err(arg.node, f"{what} must be a finite number, got {v}")
        if isinstance(v, int) and not -(1 << 1000) < v < (1 << 1000):
            raise self.err(arg.node, f"{what} is too large a number")
        return v

    # -- calls -------------------------------------------------------------------------------

    def bind(self, call: lark.Tree, scope: Scope, table: dict[str, LayerSpec], what: str) -> Bound:
        """Evaluate a call's arguments and bind them to the parameters of ``table[name]``."""
        name_tok = call.children[0]
        name = str(name_tok)
        spec = table.get(name)
        if spec is None:
            hint = suggest(name, table) or f"{what}s: {', '.join(sorted(table))}"
            raise self.err(name_tok, f"unknown {what} '{name}'", hint=hint)
        bound: dict[str, Arg] = {}
        positional = [p for p in spec.params if not p.startswith("*")]
        variadic = next((p[1:] for p in spec.params if p.startswith("*")), None)
        pos_index = 0
        rest: list[Arg] = []
        for a in call.children[1:] if call.data in ("call", "network") else []:
            if a is None:
                continue
            if a.data == "kwarg":
                key_tok, expr = a.children
                key = str(key_tok)
                if key not in positional:
                    listed = ", ".join(positional) or "no named arguments"
                    raise self.err(key_tok, f"{name} has no argument '{key}'",
                                   hint=" ".join(filter(None, [suggest(key, positional), f"it takes: {listed}"])))
                if key in bound:
                    raise self.err(key_tok, f"argument '{key}' of {name} given twice")
                bound[key] = Arg(self.eval(expr, scope), expr)
            else:
                if any(x.data == "kwarg" for x in call.children[1:call.children.index(a)] if x is not None):
                    raise self.err(a, "a positional argument cannot follow a named one")
                value = Arg(self.eval(a.children[0], scope), a.children[0])
                if variadic is not None:
                    rest.append(value)
                    continue
                if pos_index >= len(positional):
                    raise self.err(a, f"{name} takes at most {len(positional)} positional argument"
                                      f"{'s' if len(positional) != 1 else ''}",
                                   hint=f"it takes: {', '.join(positional) or 'no arguments'}")
                key = positional[pos_index]
                pos_index += 1
                if key in bound:
                    raise self.err(a, f"argument '{key}' of {name} given twice")
                bound[key] = value
        if variadic is not None:
            bound[variadic] = Arg(rest, call)  # the value is the list of Args, each with its place
        return Bound(self, name, call, bound)

    # -- blobs -------------------------------------------------------------------------------

    def blob(self, args: Bound, name: str, shape: tuple[int, ...] | None, default: Any = None,
             dtype=np.float32, context: str = "") -> Blob | None:
        """A blob from a weight source: a file path, an initialiser, a literal list or a number.

        ``shape`` None: take the file's or literal's shape.  ``default``: an initialiser used
        when the argument is missing (None: the blob is absent)."""
        if not args.has(name):
            if default is None:
                return None
            arg = Arg(default, args.node)
        else:
            arg = args.args[name]
        what = f"'{name}' of {args.what}"
        v = arg.value
        if isinstance(v, bool):
            raise self.err(arg.node, f"{what} must be weights, got {show(v)}")
        if isinstance(v, int | float):
            v = Splat(float(v))
        if isinstance(v, Sym) and v.name in ("zeros", "ones"):
            v = Splat(0.0 if v.name == "zeros" else 1.0)
        if isinstance(v, Splat | Random):
            if shape is None:
                raise self.err(arg.node, f"the shape of {what} is unknown, so an initialiser cannot fill it",
                               hint="give the layer's size, or load the weights from a file")
            from nmc.limits import max_memory

            # the counter hash works on 12 uint64 words per element while drawing
            need = math.prod(int(d) for d in shape) * (np.dtype(dtype).itemsize + (96 if isinstance(v, Random) else 0))
            if need > max_memory():
                raise self.err(arg.node, f"{what} {list(shape)[:8]} would need {_approx(need)} bytes, over the limit of "
                               f"{max_memory():.3g}", hint="a smaller layer, or raise the limit with --max-memory (NMC_MAX_MEMORY)")
            if isinstance(v, Splat):
                if np.issubdtype(dtype, np.integer) and not float(v.value).is_integer():
                    raise self.err(arg.node, f"{what} must be an integer in an integer network, got {v.value}")
                with np.errstate(over="ignore"):  # a value past f32's range becomes inf, refused as not finite
                    return Blob(np.full(shape, v.value, dtype=dtype), init=v)
            return Blob(random_array(v.dist, v.seed, v.scale, shape, dtype), init=v)
        if isinstance(v, list):
            try:
                data = np.array(v, dtype=np.float64)
            except (ValueError, TypeError):
                raise self.err(arg.node, f"{what} must be a rectangular list of numbers") from None
            data = data.astype(dtype) if np.issubdtype(dtype, np.floating) or np.all(data == np.round(data)) else None
            if data is None:
                raise self.err(arg.node, f"{what} must hold integers")
            blob_name = None
        elif isinstance(v, str):
            data, blob_name = self.load_array(v, arg.node)
            if np.issubdtype(dtype, np.floating):
                if not (np.issubdtype(data.dtype, np.floating) or np.issubdtype(data.dtype, np.integer)):
                    raise self.err(arg.node, f"'{v}' holds {data.dtype} values; {what} needs numbers")
                data = data.astype(dtype)
            elif not np.issubdtype(data.dtype, np.integer):
                raise self.err(arg.node, f"'{v}' holds {data.dtype} values; {what} needs integers")
            else:
                data = data.astype(dtype)
        else:
            raise self.err(arg.node, f"{what} must be a weight file (\"w.npy\", \"w.npz:key\"), an initialiser "
                                     f"(zeros, splat(v), random(normal, seed = 1, scale = 0.1)) or a list; got {show(v)}")
        if shape is not None and tuple(data.shape) != tuple(shape):
            source = f"'{v}'" if isinstance(v, str) else "the literal"
            raise self.err(arg.node, f"{what} from {source} has shape {list(data.shape)}, expected {list(shape)}"
                                     + (f" ({context})" if context else ""))
        return Blob(data, name=blob_name)

    def load_array(self, ref: str, node) -> tuple[np.ndarray, str]:
        """``file.npy`` or ``file.npz:key`` (relative to the source's folder)."""
        path, _, key = ref.partition(":") if ref.count(":") == 1 or ".npz:" in ref else (ref, "", "")
        full = path if os.path.isabs(path) else os.path.join(self.base_dir, path)
        if full not in self.files:
            if not os.path.exists(full):
                raise self.err(node, f"weight file '{path}' does not exist",
                               hint=f"paths are relative to the folder of {self.src.filename} ({self.base_dir})")
            try:
                loaded = np.load(full, allow_pickle=False)
                if isinstance(loaded, np.lib.npyio.NpzFile):
                    with loaded:
                        loaded = {k: loaded[k] for k in loaded.files}
            except (OSError, ValueError) as err:
                raise self.err(node, f"cannot read weight file '{path}': {err}", hint="expected a numpy .npy or .npz file") from None
            self.files[full] = loaded
        loaded = self.files[full]
        stem = os.path.splitext(os.path.basename(path))[0]
        if isinstance(loaded, dict):
            if not key:
                if len(loaded) == 1:
                    key = next(iter(loaded))
                else:
                    raise self.err(node, f"'{path}' holds {len(loaded)} arrays; name one as \"{path}:KEY\"",
                                   hint=f"it holds: {', '.join(sorted(loaded))}")
            if key not in loaded:
                raise self.err(node, f"'{path}' has no array '{key}'",
                               hint=" ".join(filter(None, [suggest(key, loaded), f"it holds: {', '.join(sorted(loaded)) or 'nothing'}"])))
            return np.asarray(loaded[key]), key
        if key:
            raise self.err(node, f"'{path}' is a single array (.npy); it has no key '{key}'")
        return np.asarray(loaded), stem

    def default_init(self, fan_in: int) -> Random:
        """He initialisation with the next seed: ``random(normal, seed = n, scale = sqrt(2 / fan_in))``."""
        self.seed += 1
        return Random("normal", self.seed, math.sqrt(2.0 / max(fan_in, 1)))

    # -- ops -----------------------------------------------------------------------------------

    def add(self, cls, node, name: str | None, **fields) -> Value:
        """Create and append an op at ``node``'s position; IR rule violations become errors there."""
        try:
            op = cls(loc=self.loc(node), **fields)
        except VerifyError as err:
            message = err.message.split(" op ", 1)[-1]
            layer = str(node.children[0]) if isinstance(node, lark.Tree) and node.children else cls.KIND
            raise self.err(node, f"{layer}: {message}", hint=err.hint) from None
        return self.graph.add(op, name)

    # -- the program -----------------------------------------------------------------------------

    def build(self, tree: lark.Tree) -> Graph:
        stmts = [s for s in tree.children if s is not None]
        for i, s in enumerate(stmts):
            if s.data == "network":
                if i != 0:
                    raise self.err(s, "'network' must be the first statement")
                self.network(s)
            elif s.data == "block":
                name_tok = s.children[0]
                if str(name_tok) in self.blocks:
                    raise self.err(name_tok, f"block '{name_tok}' is defined twice")
                if str(name_tok) in ANN_LAYERS:
                    raise self.err(name_tok, f"block '{name_tok}' would hide the layer of that name")
                self.blocks[str(name_tok)] = s
        spiking = any(s.data in ("pop", "connect") for s in stmts)
        body = [s for s in stmts if s.data not in ("network", "block")]
        return build_snn(self, body) if spiking else build_ann(self, body)

    def network(self, s: lark.Tree) -> None:
        name_tok = s.children[0]
        self.graph.name = str(name_tok)
        args = self.bind(s, Scope({}, {}), {str(name_tok): LayerSpec(("dt", "timesteps"), None)}, "network setting")
        args.what = "network"
        if args.has("dt"):
            self.dt = args.time("dt")
            self.graph.meta["dt"] = float(self.dt)
        if args.has("timesteps"):
            t = args.number("timesteps", integer=True)
            if t < 1:
                raise self.err(args.node_of("timesteps"), f"timesteps must be at least 1, got {t}")
            self.graph.meta["timesteps"] = t

    # -- names and shapes -------------------------------------------------------------------------

    def define(self, scope: Scope, name_tok, value: Value) -> None:
        name = str(name_tok)
        if name in scope.values or name in scope.consts or name in self.consts:
            raise self.err(name_tok, f"'{name}' is already defined")
        scope.values[name] = value

    def let(self, s: lark.Tree, scope: Scope) -> None:
        name_tok, expr = s.children
        name = str(name_tok)
        if name in scope.values or name in scope.consts or (scope.prefix == "" and name in self.consts):
            raise self.err(name_tok, f"'{name}' is already defined")
        (scope.consts if scope.prefix else self.consts)[name] = self.eval(expr, scope)

    def lookup(self, scope: Scope, tok) -> Value:
        name = str(tok)
        if name in scope.values:
            return scope.values[name]
        if name in ANN_LAYERS or name in self.blocks:
            raise self.err(tok, f"'{name}' is a layer, not a value; a chain starts from a value: x -> {name}")
        hint = suggest(name, scope.values) or (f"values defined here: {', '.join(scope.values)}" if scope.values else None)
        raise self.err(tok, f"unknown value '{name}'", hint=hint)

    def shape(self, node: lark.Tree, scope: Scope) -> tuple[int, ...]:
        dims = []
        for c in node.children:
            if c is None:
                continue
            d = self.as_number(Arg(self.eval(c, scope), c), "a dimension", integer=True)
            if d < 1:
                raise self.err(c, f"dimensions must be positive, got {d}")
            if d > (1 << 31):
                raise self.err(c, f"a dimension of {d} is over the limit of 2**31")
            dims.append(d)
        if not dims:
            raise self.err(node, "a shape needs at least one dimension")
        return tuple(dims)


# ---------------------------------------------------------------------------- initialisers


def _approx(n: int) -> str:
    """``n`` to 3 digits, however large (an int too large for a float has many digits)."""
    digits = str(n)
    return f"{n:.3g}" if len(digits) < 300 else f"{digits[0]}.{digits[1:3]}e+{len(digits) - 1}"


def _random(b: Builder, args: Bound) -> Random:
    dist = args.word("dist", ("normal", "uniform"), "normal") if args.has("dist") else None
    if dist is None:
        raise b.err(args.node, "random needs a distribution: random(normal, seed = 1, scale = 0.1)")
    seed = args.number("seed", 0, integer=True)
    if not 0 <= seed < (1 << 64):
        raise b.err(args.node_of("seed"), f"seed must lie in 0..2**64-1, got {seed}")
    return Random(dist, seed, float(args.number("scale", 1.0)))


_INITIALISERS: dict[str, LayerSpec] = {
    "random": LayerSpec(("dist", "seed", "scale"), _random),
    "splat": LayerSpec(("value",), lambda b, args: Splat(float(args.number("value")))),
    "zeros": LayerSpec((), lambda b, args: Splat(0.0)),
    "ones": LayerSpec((), lambda b, args: Splat(1.0)),
}

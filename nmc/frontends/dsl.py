"""The ``.nmd`` network description language: networks written by hand (docs/language.md).

Two kinds of network, one language:

* an ANN is a stack of layers, ``h = x -> conv(16, kernel = 3) -> relu -> flatten``, with
  reusable parameterised ``block``\\ s; shapes are inferred layer to layer; it becomes ``ann.*`` IR.
* a spiking network is populations (``pop h: [64] lif(tau = 20ms)``) joined by projections
  (``connect x -> h dense(weight = "w.npz:w1", delay = 2)``); it becomes ``snn.*`` IR.  A
  projection into the population itself or an earlier one closes a recurrent loop.

Contracts: :func:`load_nmd` and :func:`parse_nmd` return a verified :class:`~nmc.ir.core.Graph`
whose every op has a ``Loc(file, line, col)`` of the text it came from; ``meta`` holds ``dt``
(seconds) and ``timesteps`` when the file declares them.  Every problem in the text is an
:class:`~nmc.diagnostics.NmcError` at the offending position, in words, with a hint.
Time constants become the IR's 12-bit decays as ``decay = 4096 * (1 - exp(-dt / tau))``
(DESIGN §5), rounded to an integer for integer (``bits > 0``) populations.
"""

from __future__ import annotations

import difflib
import math
import os
import re
from dataclasses import dataclass
from decimal import Decimal
from functools import cache
from typing import Any

import lark
import numpy as np

from nmc.diagnostics import Loc, NmcError
from nmc.hashrng import random_array
from nmc.ir import ann, snn
from nmc.ir.core import Blob, Graph, Op, Random, Splat, Value, VerifyError
from nmc.ir.parser import _describe, _join_words, _Source
from nmc.ir.snn import DECAY_ONE
from nmc.ir.types import SpikeType, TensorType

TIME_UNITS = {"s": Decimal(1), "ms": Decimal("1e-3"), "us": Decimal("1e-6"), "ns": Decimal("1e-9")}
CONSTANTS = {"inf": math.inf, "true": True, "false": False}
_ARITHMETIC = {"+", "-", "*", "/"}
_CLOSERS = ("')'", "']'", "'}'")
_NUMBER_RE = re.compile(r"((?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)([A-Za-z]*)")


@cache
def _parser() -> lark.Lark:
    path = os.path.join(os.path.dirname(__file__), "nmd.lark")
    with open(path, encoding="utf-8") as f:
        return lark.Lark(f.read(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


# ------------------------------------------------------------------------------- values


@dataclass(frozen=True)
class Time:
    """A quantity with a time unit (``20ms``), in seconds."""

    seconds: Decimal
    text: str


@dataclass(frozen=True)
class Sym:
    """A bare word that names no constant: a value, an enum word (``normal``, ``zero``) or a
    mistake; whoever consumes it decides."""

    name: str


@dataclass
class Arg:
    value: Any
    node: Any  # lark Tree or Token: where the argument was written


# --------------------------------------------------------------------------- entry points


def load_nmd(path: str) -> Graph:
    """Read an ``.nmd`` file; weight files are found relative to its folder."""
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except (OSError, UnicodeDecodeError) as err:
        raise NmcError(f"cannot read {path}: {getattr(err, 'strerror', None) or err}") from None
    return parse_nmd(text, path, os.path.dirname(os.path.abspath(path)))


def parse_nmd(text: str, filename: str = "<string>", base_dir: str = ".") -> Graph:
    """Parse and build one network from ``text``; relative weight paths start at ``base_dir``."""
    src = _Source(text, filename)
    parser = _parser()
    try:
        tree = parser.parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise _syntax_error(e, src, parser, text) from None
    graph = _Builder(src, base_dir).build(tree)
    from nmc.ir.verifier import verify

    try:
        verify(graph)
    except VerifyError as err:
        if err.loc is not None and err.loc.file == filename:
            err.source_line = src.line(err.loc.line)
        raise
    return graph


def _syntax_error(e: lark.exceptions.UnexpectedInput, src: _Source, parser: lark.Lark, text: str) -> NmcError:
    """A syntax error in words: what was found and what could have come instead.  A token
    missing at the end of a line is reported where it is missing, not at the next token."""

    def expected(names) -> str:
        names = set(names)
        plain = {n for n in names if not _is_arithmetic(parser, n)}
        words = _describe(parser, plain or names)
        return _join_words(sorted(words, key=lambda w: (w not in _CLOSERS, words.index(w))))

    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        char = (src.line(e.line) or " ")[e.column - 1 : e.column] or " "
        return src.error(f"unexpected character '{char}'", e.line, e.column,
                         hint="names, numbers, \"strings\", ( ) [ ] { } , = : -> + - * / and // comments")
    if isinstance(e, lark.exceptions.UnexpectedToken):
        tok = e.token
        start = len(text) if tok.type == "$END" else tok.start_pos
        prev = _previous_token(parser, text, start)
        if prev is not None and (tok.type == "$END" or tok.line > prev.end_line):
            return src.error(f"expected {expected(e.expected)} after '{prev}'", prev.end_line, prev.end_column)
        if tok.type == "$END":
            return src.error(f"unexpected end of input; expected {expected(e.expected)}", 1, 1)
        return src.error(f"unexpected '{tok}'; expected {expected(e.expected)}", tok.line, tok.column)
    return src.error(str(e), getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1)


def _previous_token(parser: lark.Lark, text: str, pos: int) -> lark.Token | None:
    """The last token that ends at or before ``pos`` (lark's LALR errors carry no history)."""
    prev = None
    try:
        for tok in parser.lex(text):
            if tok.end_pos > pos:
                break
            prev = tok
    except lark.exceptions.LarkError:
        pass
    return prev


def _is_arithmetic(parser: lark.Lark, name: str) -> bool:
    try:
        pattern = parser.get_terminal(name).pattern
    except KeyError:
        return False
    return isinstance(pattern, lark.lexer.PatternStr) and pattern.value in _ARITHMETIC


# ---------------------------------------------------------------------------- layer tables


@dataclass(frozen=True)
class LayerSpec:
    """A layer (or model, projection kind, encoding): its parameters in positional order.

    A parameter starting with ``*`` takes every remaining positional argument."""

    params: tuple[str, ...]
    fn: Any


class Bound:
    """The arguments of one call, bound to a :class:`LayerSpec`'s parameters."""

    def __init__(self, b: _Builder, what: str, node, args: dict[str, Arg]):
        self.b, self.what, self.node, self.args = b, what, node, args

    def has(self, name: str) -> bool:
        return name in self.args

    def node_of(self, name: str):
        return self.args[name].node if name in self.args else self.node

    def raw(self, name: str, default: Any = None) -> Any:
        return self.args[name].value if name in self.args else default

    def number(self, name: str, default: Any = None, integer: bool = False) -> Any:
        if name not in self.args:
            if default is None:
                raise self.b.err(self.node, f"{self.what} needs '{name}'")
            return default
        return self.b.as_number(self.args[name], f"'{name}' of {self.what}", integer)

    def ints(self, name: str, n: int, default: Any = None, minimum: int = 1) -> tuple[int, ...]:
        """An int (>= ``minimum``) for every one of ``n`` axes (one int means the same for all)."""
        if name not in self.args:
            if default is None:
                raise self.b.err(self.node, f"{self.what} needs '{name}'")
            return tuple(default)
        arg = self.args[name]
        items = arg.value if isinstance(arg.value, list) else [arg.value] * n
        if len(items) != n:
            raise self.b.err(arg.node, f"'{name}' of {self.what} needs {n} values (one per spatial axis), got {len(items)}")
        values = tuple(self.b.as_number(Arg(v, arg.node), f"'{name}' of {self.what}", True) for v in items)
        if any(v < minimum for v in values):
            raise self.b.err(arg.node, f"'{name}' of {self.what} must be at least {minimum}, got {_show(arg.value)}")
        return values

    def size(self, name: str) -> int:
        """A positive count (units, channels)."""
        n = self.number(name, integer=True)
        if n < 1:
            raise self.b.err(self.node_of(name), f"'{name}' of {self.what} must be at least 1, got {n}")
        return n

    def word(self, name: str, choices: tuple[str, ...], default: str) -> str:
        if name not in self.args:
            return default
        arg = self.args[name]
        word = arg.value.name if isinstance(arg.value, Sym) else arg.value
        if word not in choices:
            raise self.b.err(arg.node, f"'{name}' of {self.what} must be one of {', '.join(choices)}, got {_show(arg.value)}")
        return word

    def string(self, name: str) -> str:
        v = self.raw(name)
        if not isinstance(v, str):
            raise self.b.err(self.node_of(name), f"'{name}' of {self.what} must be a quoted file name, got {_show(v)}")
        return v

    def flag(self, name: str) -> bool:
        v = self.raw(name, False)
        if v not in (True, False, 0, 1) or isinstance(v, float):
            raise self.b.err(self.node_of(name), f"'{name}' of {self.what} must be true or false, got {_show(v)}")
        return bool(v)

    def time(self, name: str) -> Decimal:
        arg = self.args[name]
        if not isinstance(arg.value, Time):
            raise self.b.err(arg.node, f"'{name}' of {self.what} is a time constant: give it a unit, like 20ms",
                             hint="units: s, ms, us, ns")
        if arg.value.seconds <= 0:
            raise self.b.err(arg.node, f"'{name}' of {self.what} must be positive, got {arg.value.text}")
        return arg.value.seconds


def _show(v: Any) -> str:
    if isinstance(v, Sym):
        return f"'{v.name}'"
    if isinstance(v, Time):
        return v.text
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def _suggest(word: str, known) -> str | None:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean '{close[0]}'?" if close else None


# --------------------------------------------------------------------------------- builder


class _Scope:
    """Names visible to a statement: constants (``let``, block parameters) and values."""

    def __init__(self, consts: dict[str, Any], values: dict[str, Value], prefix: str = ""):
        self.consts = consts
        self.values = values
        self.prefix = prefix


class _Builder:
    def __init__(self, src: _Source, base_dir: str):
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

    def eval(self, node, scope: _Scope) -> Any:
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
                raise self.err(node, f"'{op}' needs numbers or times, got {_show(v)}")
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

    def initialiser(self, node: lark.Tree, scope: _Scope) -> Any:
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
            raise self.err(arg.node, f"{what} must be a number, got {_show(v)}")
        if integer:
            if isinstance(v, float) and not v.is_integer():
                raise self.err(arg.node, f"{what} must be an integer, got {v}")
            return int(v)
        return v

    # -- calls -------------------------------------------------------------------------------

    def bind(self, call: lark.Tree, scope: _Scope, table: dict[str, LayerSpec], what: str) -> Bound:
        """Evaluate a call's arguments and bind them to the parameters of ``table[name]``."""
        name_tok = call.children[0]
        name = str(name_tok)
        spec = table.get(name)
        if spec is None:
            hint = _suggest(name, table) or f"{what}s: {', '.join(sorted(table))}"
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
                                   hint=" ".join(filter(None, [_suggest(key, positional), f"it takes: {listed}"])))
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
            raise self.err(arg.node, f"{what} must be weights, got {_show(v)}")
        if isinstance(v, int | float):
            v = Splat(float(v))
        if isinstance(v, Sym) and v.name in ("zeros", "ones"):
            v = Splat(0.0 if v.name == "zeros" else 1.0)
        if isinstance(v, Splat | Random):
            if shape is None:
                raise self.err(arg.node, f"the shape of {what} is unknown, so an initialiser cannot fill it",
                               hint="give the layer's size, or load the weights from a file")
            if isinstance(v, Splat):
                if np.issubdtype(dtype, np.integer) and not float(v.value).is_integer():
                    raise self.err(arg.node, f"{what} must be an integer in an integer network, got {v.value}")
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
                                     f"(zeros, splat(v), random(normal, seed = 1, scale = 0.1)) or a list; got {_show(v)}")
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
                               hint=" ".join(filter(None, [_suggest(key, loaded), f"it holds: {', '.join(sorted(loaded)) or 'nothing'}"])))
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
        return _build_snn(self, body) if spiking else self.build_ann(body)

    def network(self, s: lark.Tree) -> None:
        name_tok = s.children[0]
        self.graph.name = str(name_tok)
        args = self.bind(s, _Scope({}, {}), {str(name_tok): LayerSpec(("dt", "timesteps"), None)}, "network setting")
        args.what = "network"
        if args.has("dt"):
            self.dt = args.time("dt")
            self.graph.meta["dt"] = float(self.dt)
        if args.has("timesteps"):
            t = args.number("timesteps", integer=True)
            if t < 1:
                raise self.err(args.node_of("timesteps"), f"timesteps must be at least 1, got {t}")
            self.graph.meta["timesteps"] = t

    # -- ANN ---------------------------------------------------------------------------------

    def build_ann(self, body: list[lark.Tree]) -> Graph:
        scope = _Scope({}, {})
        outputs = None
        for s in body:
            if s.data == "input":
                name_tok, shape_node, encode = s.children
                if encode is not None:
                    raise self.err(encode, "'encode' applies to spiking networks (written with pop and connect)",
                                   hint="an ANN takes its input as a tensor")
                self.define(scope, name_tok, self.add(ann.Input, s, str(name_tok), declared_type=TensorType(self.shape(shape_node, scope))))
            elif s.data == "let":
                self.let(s, scope)
            elif s.data == "assign":
                name_tok, chain = s.children
                self.define(scope, name_tok, self.chain(chain, scope, str(name_tok)))
            elif s.data == "chain_stmt":
                raise self.err(s, "the result of this chain is not used; name it: NAME = ...")
            elif s.data == "output":
                if outputs is not None:
                    raise self.err(s, "a second 'output' statement", hint="list every output in one: output a, b")
                outputs = s
            else:
                raise self.err(s, f"'{s.data}' is not allowed here")
        if outputs is None:
            raise NmcError("the network has no 'output' statement", Loc(self.src.filename),
                           hint="end the file with: output NAME")
        values = []
        for item in outputs.children:
            name_tok, decode = item.children
            if decode is not None:
                raise self.err(decode, "'decode' applies to spiking networks (written with pop and connect)")
            values.append(self.lookup(scope, name_tok))
        self.add(ann.Output, outputs, None, values=values)
        return self.graph

    def define(self, scope: _Scope, name_tok, value: Value) -> None:
        name = str(name_tok)
        if name in scope.values or name in scope.consts or name in self.consts:
            raise self.err(name_tok, f"'{name}' is already defined")
        scope.values[name] = value

    def let(self, s: lark.Tree, scope: _Scope) -> None:
        name_tok, expr = s.children
        name = str(name_tok)
        if name in scope.values or name in scope.consts or (scope.prefix == "" and name in self.consts):
            raise self.err(name_tok, f"'{name}' is already defined")
        (scope.consts if scope.prefix else self.consts)[name] = self.eval(expr, scope)

    def lookup(self, scope: _Scope, tok) -> Value:
        name = str(tok)
        if name in scope.values:
            return scope.values[name]
        if name in ANN_LAYERS or name in self.blocks:
            raise self.err(tok, f"'{name}' is a layer, not a value; a chain starts from a value: x -> {name}")
        hint = _suggest(name, scope.values) or (f"values defined here: {', '.join(scope.values)}" if scope.values else None)
        raise self.err(tok, f"unknown value '{name}'", hint=hint)

    def shape(self, node: lark.Tree, scope: _Scope) -> tuple[int, ...]:
        dims = []
        for c in node.children:
            if c is None:
                continue
            d = self.as_number(Arg(self.eval(c, scope), c), "a dimension", integer=True)
            if d < 1:
                raise self.err(c, f"dimensions must be positive, got {d}")
            dims.append(d)
        if not dims:
            raise self.err(node, "a shape needs at least one dimension")
        return tuple(dims)

    def chain(self, chain: lark.Tree, scope: _Scope, target: str | None) -> Value:
        """Apply a chain's layers in turn; the last op created gets the name ``target``."""
        layers = [c for c in chain.children if c is not None]
        prefix = scope.prefix + target if target else scope.prefix.rstrip(".")
        first = layers[0]
        start = len(self.graph.ops)
        if first.data == "bare" and str(first.children[0]) not in _MULTI_INPUT:
            x = self.lookup(scope, first.children[0])
        else:
            x = self.layer(None, first, scope, prefix)
        for node in layers[1:]:
            x = self.layer(x, node, scope, prefix)
        if target is not None and len(self.graph.ops) > start and x.owner is self.graph.ops[-1]:
            x.name = scope.prefix + target
        return x

    def layer(self, x: Value | None, node: lark.Tree, scope: _Scope, prefix: str) -> Value:
        name = str(node.children[0])
        if name in self.blocks:
            return self.instantiate(x, node, scope, prefix)
        args = self.bind(node, scope, ANN_LAYERS, "layer")
        if x is None and name not in _MULTI_INPUT:
            raise self.err(node, f"{name} needs an input: x -> {name}(...)")
        if x is not None and not isinstance(x.type, TensorType):
            raise self.err(node, f"{name} needs a tensor input, got {x.type}")
        return ANN_LAYERS[name].fn(self, x, args, scope, f"{prefix}.{name}" if prefix else name)

    def instantiate(self, x: Value | None, node: lark.Tree, scope: _Scope, prefix: str) -> Value:
        """Expand a block: its parameters become constants, ``in`` is the input value."""
        block = self.blocks[str(node.children[0])]
        name = str(block.children[0])
        params = [p for p in block.children[1:] if isinstance(p, lark.Tree) and p.data == "param"]
        stmts = [s for s in block.children[1:] if isinstance(s, lark.Tree) and s.data != "param"]
        if x is None:
            raise self.err(node, f"block {name} needs an input: x -> {name}(...)")
        if self.depth > 32:
            raise self.err(node, f"block {name} expands itself without end", hint="a block may not use itself")
        spec = LayerSpec(tuple(str(p.children[0]) for p in params), None)
        args = self.bind(node, scope, {name: spec}, "block")
        consts = {}
        for p in params:
            pname, default = str(p.children[0]), p.children[1]
            if args.has(pname):
                consts[pname] = args.raw(pname)
            elif default is not None:
                consts[pname] = self.eval(default, _Scope(consts, {}))
            else:
                raise self.err(node, f"block {name} needs argument '{pname}'",
                               hint=f"it takes: {', '.join(spec.params)}")
        base = f"{prefix}.{name}" if prefix else name
        uses = self.instances[base] = self.instances.get(base, -1) + 1
        inner = _Scope(consts, {"in": x}, (f"{base}_{uses}" if uses else base) + ".")
        self.depth += 1
        try:
            result = x
            for s in stmts:
                if s.data == "let":
                    self.let(s, inner)
                elif s.data == "assign":
                    name_tok, chain = s.children
                    result = self.chain(chain, inner, str(name_tok))
                    self.define(inner, name_tok, result)
                elif s.data == "chain_stmt":
                    result = self.chain(s.children[0], inner, None)
                else:
                    raise self.err(s, f"'{s.data}' is not allowed inside a block",
                                   hint="a block holds let statements and layer chains")
        except NmcError as err:
            err.notes.append(f"in block '{name}' used at {self.loc(node)}")
            raise
        finally:
            self.depth -= 1
        return result


# ----------------------------------------------------------------------------- ANN layers


def _need_rank(b: _Builder, args: Bound, x: Value, ranks: tuple[int, ...], hint: str | None = None) -> TensorType:
    t = x.type
    if t.rank not in ranks:
        want = " or ".join(f"rank {r}" for r in ranks)
        raise b.err(args.node, f"{args.what} needs a {want} input per sample, got {list(t.shape)}", hint=hint)
    return t


def _window(args: Bound, n: int, kernel: tuple[int, ...], dilations=None, allow_same: bool = True) -> tuple[tuple, tuple]:
    """(strides, ONNX pads) from ``stride`` and ``pad`` (an int, one per axis, begin+end per
    axis, or ``same``)."""
    b = args.b
    strides = args.ints("stride", n, (1,) * n) if args.what.startswith("conv") else args.ints("stride", n, kernel)
    pad = args.raw("pad", 0)
    dil = dilations or (1,) * n
    if isinstance(pad, Sym) and pad.name == "same" and allow_same:
        if any(s != 1 for s in strides):
            raise b.err(args.node_of("pad"), "pad = same needs stride 1")
        total = [d * (k - 1) for d, k in zip(dil, kernel)]
        return strides, tuple(t // 2 for t in total) + tuple(t - t // 2 for t in total)
    items = pad if isinstance(pad, list) else [pad] * n
    if len(items) not in (n, 2 * n):
        raise b.err(args.node_of("pad"), f"'pad' of {args.what} needs {n} values (one per axis) or {2 * n} (begins, then ends), got {len(items)}")
    values = tuple(b.as_number(Arg(v, args.node_of("pad")), f"'pad' of {args.what}", True) for v in items)
    if any(v < 0 for v in values):
        raise b.err(args.node_of("pad"), f"'pad' of {args.what} must not be negative, got {_show(pad)}")
    return strides, values * 2 if len(values) == n else values


def _dense(b: _Builder, x, args: Bound, scope, name):
    t = _need_rank(b, args, x, (1,), hint="insert flatten before dense")
    fan_in = t.shape[0]
    units = args.size("units") if args.has("units") else None
    if units is None:
        if not isinstance(args.raw("weight"), str):
            raise b.err(args.node, "dense needs the number of units: dense(10)")
        w = b.blob(args, "weight", None)
        if w.data.ndim != 2:
            raise b.err(args.node_of("weight"), f"'weight' of dense must be [units, {fan_in}], got {list(w.shape)}")
        units = w.shape[0]
    shape = (units, fan_in)
    ctx = f"dense({units}) on an input of {list(t.shape)}"
    w = b.blob(args, "weight", shape, b.default_init(fan_in) if not args.has("weight") else None, context=ctx)
    bias = b.blob(args, "bias", (units,), context=ctx)
    return b.add(ann.Dense, args.node, name, x=x, weight=w, bias=bias)


def _conv(b: _Builder, x, args: Bound, scope, name):
    t = _need_rank(b, args, x, (2, 3))
    n = t.rank - 1
    channels = args.size("channels") if args.has("channels") else None
    file_w = b.blob(args, "weight", None) if isinstance(args.raw("weight"), str) else None
    if channels is None:
        if file_w is None:
            raise b.err(args.node, "conv needs the number of output channels: conv(16, kernel = 3)")
        if file_w.data.ndim != n + 2:
            raise b.err(args.node_of("weight"), f"'weight' of conv must be [channels, {t.shape[0]}/groups, kernel...], got {list(file_w.shape)}")
        channels = file_w.shape[0]
    if args.has("kernel"):
        kernel = args.ints("kernel", n)
    elif file_w is not None and file_w.data.ndim == n + 2:
        kernel = file_w.shape[2:]
    else:
        raise b.err(args.node, "conv needs a 'kernel' size")
    groups = args.number("groups", 1, integer=True)
    if groups < 1 or t.shape[0] % groups:
        raise b.err(args.node_of("groups"), f"groups = {groups} does not divide the {t.shape[0]} input channels")
    dil = args.ints("dilation", n, (1,) * n)
    strides, pads = _window(args, n, kernel, dil)
    shape = (channels, t.shape[0] // groups, *kernel)
    ctx = f"conv({channels}, kernel = {list(kernel)}) on an input of {list(t.shape)}"
    fan_in = int(np.prod(shape[1:]))
    w = b.blob(args, "weight", shape, b.default_init(fan_in) if not args.has("weight") else None, context=ctx)
    bias = b.blob(args, "bias", (channels,), context=ctx)
    return b.add(ann.Conv, args.node, name, x=x, weight=w, bias=bias, strides=strides, pads=pads,
                 dilations=dil, groups=groups)


def _pool(cls):
    def build(b: _Builder, x, args: Bound, scope, name):
        t = _need_rank(b, args, x, (2, 3))
        n = t.rank - 1
        kernel = args.ints("kernel", n)
        strides, pads = _window(args, n, kernel, allow_same=False)
        fields = dict(kernel=kernel, strides=strides, pads=pads, ceil_mode=args.flag("ceil_mode"))
        if cls is ann.AvgPool:
            fields["count_include_pad"] = args.flag("count_include_pad")
        return b.add(cls, args.node, name, x=x, **fields)

    return build


def _batchnorm(b: _Builder, x, args: Bound, scope, name):
    t = _need_rank(b, args, x, (1, 2, 3))
    c = (t.shape[0],)
    fields = {}
    for key, default in (("scale", Splat(1.0)), ("bias", Splat(0.0)), ("mean", Splat(0.0)), ("var", Splat(1.0))):
        if args.has("file") and not args.has(key):
            path = args.string("file")
            args.args[key] = Arg(f"{path}:{key}", args.node_of("file"))
        fields[key] = b.blob(args, key, c, default, context=f"batchnorm over {c[0]} channels")
    return b.add(ann.BatchNorm, args.node, name, x=x, epsilon=float(args.number("eps", 1e-5)), **fields)


def _unary(cls, **params):
    def build(b: _Builder, x, args: Bound, scope, name):
        fields = {k: args.number(k, d, integer=k == "axis") for k, d in params.items()}
        return b.add(cls, args.node, name, x=x, **{k: v if k == "axis" else float(v) for k, v in fields.items()})

    return build


def _flatten(b: _Builder, x, args: Bound, scope, name):
    return b.add(ann.Flatten, args.node, name, x=x)


def _reshape(b: _Builder, x, args: Bound, scope, name):
    items = args.raw("shape")
    if len(items) == 1 and isinstance(items[0].value, list):
        items = [Arg(v, items[0].node) for v in items[0].value]
    if not items:
        raise b.err(args.node, "reshape needs the new shape: reshape(16, 7, 7)")
    shape = tuple(b.as_number(item, "a dimension of reshape", True) for item in items)
    if int(np.prod(shape)) != x.type.size or any(d < 1 for d in shape):
        raise b.err(args.node, f"cannot reshape {list(x.type.shape)} ({x.type.size} elements) to {list(shape)}")
    return b.add(ann.Reshape, args.node, name, x=x, shape=shape)


def _inputs(b: _Builder, x, args: Bound, scope) -> list[Value]:
    values = [x] if x is not None else []
    for item in args.raw("inputs"):
        if not isinstance(item.value, Sym):
            raise b.err(item.node, f"{args.what} takes values (names), got {_show(item.value)}")
        values.append(b.lookup(scope, item.node.children[0]))
    if len(values) < 2:
        raise b.err(args.node, f"{args.what} needs at least two inputs: {args.what}(a, b)")
    return values


def _elementwise(cls):
    def build(b: _Builder, x, args: Bound, scope, name):
        values = _inputs(b, x, args, scope)
        acc = values[0]
        for i, v in enumerate(values[1:]):
            a_t, v_t = acc.type.shape, v.type.shape
            try:
                np.broadcast_shapes(a_t, v_t)
            except ValueError:
                raise b.err(args.node, f"{args.what}: shapes {list(a_t)} and {list(v_t)} do not match (nor broadcast)") from None
            last = i == len(values) - 2
            acc = b.add(cls, args.node, name if last else f"{name}.{i}", a=acc, b=v)
        return acc

    return build


def _concat(b: _Builder, x, args: Bound, scope, name):
    values = _inputs(b, x, args, scope)
    axis = args.number("axis", 0, integer=True)
    rank = values[0].type.rank
    if not -rank <= axis < rank:
        raise b.err(args.node_of("axis"), f"axis {axis} is out of range for inputs of rank {rank}")
    axis %= rank
    first = values[0].type.shape
    for v in values[1:]:
        s = v.type.shape
        if len(s) != rank or any(s[i] != first[i] for i in range(rank) if i != axis):
            raise b.err(args.node, f"concat along axis {axis}: shapes {list(first)} and {list(s)} differ on another axis")
    return b.add(ann.Concat, args.node, name, inputs=values, axis=axis)

_MULTI_INPUT = {"add", "mul", "concat"}

ANN_LAYERS: dict[str, LayerSpec] = {
    "dense": LayerSpec(("units", "weight", "bias"), _dense),
    "conv": LayerSpec(("channels", "kernel", "stride", "pad", "dilation", "groups", "weight", "bias"), _conv),
    "maxpool": LayerSpec(("kernel", "stride", "pad", "ceil_mode"), _pool(ann.MaxPool)),
    "avgpool": LayerSpec(("kernel", "stride", "pad", "ceil_mode", "count_include_pad"), _pool(ann.AvgPool)),
    "global_avgpool": LayerSpec((), lambda b, x, args, scope, name: b.add(ann.GlobalAvgPool, args.node, name, x=x)),
    "batchnorm": LayerSpec(("file", "scale", "bias", "mean", "var", "eps"), _batchnorm),
    "relu": LayerSpec((), _unary(ann.Relu)),
    "sigmoid": LayerSpec((), _unary(ann.Sigmoid)),
    "tanh": LayerSpec((), _unary(ann.Tanh)),
    "clip": LayerSpec(("min", "max"), _unary(ann.Clip, min=-math.inf, max=math.inf)),
    "leaky_relu": LayerSpec(("alpha",), _unary(ann.LeakyRelu, alpha=0.01)),
    "softmax": LayerSpec(("axis",), _unary(ann.Softmax, axis=-1)),
    "log_softmax": LayerSpec(("axis",), _unary(ann.LogSoftmax, axis=-1)),
    "dropout": LayerSpec(("ratio",), _unary(ann.Dropout, ratio=0.5)),
    "identity": LayerSpec((), _unary(ann.Identity)),
    "flatten": LayerSpec((), _flatten),
    "reshape": LayerSpec(("*shape",), _reshape),
    "add": LayerSpec(("*inputs",), _elementwise(ann.Add)),
    "mul": LayerSpec(("*inputs",), _elementwise(ann.Mul)),
    "concat": LayerSpec(("*inputs", "axis"), _concat),
}


# ---------------------------------------------------------------------------- initialisers


def _random(b: _Builder, args: Bound) -> Random:
    dist = args.word("dist", ("normal", "uniform"), "normal") if args.has("dist") else None
    if dist is None:
        raise b.err(args.node, "random needs a distribution: random(normal, seed = 1, scale = 0.1)")
    seed = args.number("seed", 0, integer=True)
    if seed < 0:
        raise b.err(args.node_of("seed"), f"seed must be >= 0, got {seed}")
    return Random(dist, seed, float(args.number("scale", 1.0)))


_INITIALISERS: dict[str, LayerSpec] = {
    "random": LayerSpec(("dist", "seed", "scale"), _random),
    "splat": LayerSpec(("value",), lambda b, args: Splat(float(args.number("value")))),
    "zeros": LayerSpec((), lambda b, args: Splat(0.0)),
    "ones": LayerSpec((), lambda b, args: Splat(1.0)),
}


# ----------------------------------------------------------------------------- spiking networks


@dataclass
class _Connect:
    stmt: lark.Tree
    src: str
    dst: str


def _build_snn(b: _Builder, body: list[lark.Tree]) -> Graph:
    """Inputs (with encoders) first, then populations in declaration order, each preceded by
    the projections from inputs and earlier populations; a projection from the population
    itself or a later one follows its source and closes a loop (a forward reference)."""
    scope = _Scope({}, {})
    pops: list[lark.Tree] = []
    connects: list[_Connect] = []
    encoders: dict[str, Value] = {}
    outputs = None
    for s in body:
        if s.data == "input":
            name_tok, shape_node, encode = s.children
            b.define(scope, name_tok, b.add(ann.Input, s, str(name_tok),
                                                  declared_type=TensorType(b.shape(shape_node, scope))))
            encoders[str(name_tok)] = _encoder(b, scope.values[str(name_tok)], encode, scope, s)
        elif s.data == "let":
            b.let(s, scope)
        elif s.data == "pop":
            name_tok = s.children[0]
            if str(name_tok) in encoders or any(str(p.children[0]) == str(name_tok) for p in pops):
                raise b.err(name_tok, f"'{name_tok}' is already defined")
            pops.append(s)
        elif s.data == "connect":
            connects.append(_Connect(s, str(s.children[0]), str(s.children[1])))
        elif s.data == "output":
            if outputs is not None:
                raise b.err(s, "a second 'output' statement", hint="list every output in one: output a, b")
            outputs = s
        elif s.data in ("assign", "chain_stmt"):
            raise b.err(s, "layer chains describe ANNs; this file is a spiking network (it has pop or connect)",
                           hint="write a spiking network with pop and connect, an ANN with layer chains, not both")
        else:
            raise b.err(s, f"'{s.data}' is not allowed here")
    index = {str(p.children[0]): i for i, p in enumerate(pops)}
    for c in connects:
        src_tok, dst_tok = c.stmt.children[0], c.stmt.children[1]
        if c.src not in index and c.src not in encoders:
            raise b.err(src_tok, f"unknown source '{c.src}'; a projection starts at an input or a population",
                           hint=_suggest(c.src, list(index) + list(encoders)))
        if c.dst not in index:
            what = "an input cannot receive a projection" if c.dst in encoders else f"unknown population '{c.dst}'"
            raise b.err(dst_tok, what, hint=_suggest(c.dst, index) if c.dst not in encoders else None)
    # an integer network (any population with bits > 0) has integer weights throughout
    integer = any(b.bind(p.children[2], scope, _MODELS, "neuron model").raw("bits", 0) for p in pops)
    b.weight_dtype = np.int32 if integer else np.float32
    populations: dict[str, Op] = {}
    for i, p in enumerate(pops):
        name_tok, shape_node, model = p.children
        name = str(name_tok)
        shape = b.shape(shape_node, scope) if shape_node is not None else None
        currents = []
        for c in connects:
            if c.dst == name and (c.src in encoders or index[c.src] < i):
                v = _projection(b, c, encoders.get(c.src) or populations[c.src].result, shape, scope)
                shape = shape or v.type.shape
                currents.append(v)
        if shape is None:
            raise b.err(name_tok, f"the shape of population '{name}' cannot be inferred",
                           hint=f"give it one (pop {name}: [64] ...), or a projection into it from an earlier population or input")
        args = b.bind(model, scope, _MODELS, "neuron model")
        populations[name] = _MODELS[str(model.children[0])].fn(b, args, shape, currents, name)
        for c in connects:
            if c.src == name and index[c.dst] <= i:
                target = populations[c.dst]
                target.currents.append(_projection(b, c, populations[name].result, target.result.type.shape, scope))
    if outputs is None:
        raise NmcError("the network has no 'output' statement", Loc(b.src.filename),
                       hint="end the file with: output NAME decode count")
    values = []
    for item in outputs.children:
        name_tok, decode = item.children
        if str(name_tok) not in populations:
            what = "an input cannot be an output" if str(name_tok) in encoders else f"unknown population '{name_tok}'"
            raise b.err(name_tok, what, hint=_suggest(str(name_tok), populations))
        mode = "count"
        if decode is not None:
            mode = str(decode)
            if mode not in ("count", "membrane"):
                raise b.err(decode, f"unknown decoding '{mode}'", hint="decodings: count, membrane")
        values.append(b.add(snn.Decode, item, f"{name_tok}.out", x=populations[str(name_tok)].result, mode=mode))
    b.add(ann.Output, outputs, None, values=values)
    return b.graph


def _encoder(b: _Builder, x: Value, encode, scope: _Scope, stmt) -> Value:
    name = f"{x.name}.enc"
    if encode is None:
        return b.add(snn.Encode, stmt, name, x=x)
    args = b.bind(encode, scope, _ENCODINGS, "encoding")
    fields = {"encoding": args.what}
    if args.has("seed"):
        fields["seed"] = args.number("seed", integer=True)
    if args.has("scale"):
        fields["scale"] = float(args.number("scale"))
    return b.add(snn.Encode, encode, name, x=x, **fields)


def _delay(b: _Builder, args: Bound) -> int:
    if not args.has("delay"):
        return 1
    v = args.raw("delay")
    node = args.node_of("delay")
    if isinstance(v, Time):
        if b.dt is None:
            raise b.err(node, f"a delay of {v.text} needs the time step", hint="declare it: network NAME(dt = 1ms)")
        steps = v.seconds / b.dt
        if steps != steps.to_integral_value():
            raise b.err(node, f"a delay of {v.text} is not a whole number of steps of dt = {float(b.dt)} s")
        d = int(steps)
    else:
        d = args.number("delay", integer=True)
    if d < 1:
        raise b.err(node, f"delay must be at least 1 step, got {d}", hint="every projection delays spikes by >= 1 step")
    return d


def _projection(b: _Builder, c: _Connect, src: Value, target: tuple[int, ...] | None, scope: _Scope) -> Value:
    """Build the projection of ``connect`` from ``src``; its current must fit ``target``."""
    kind_node = c.stmt.children[2]
    args = b.bind(kind_node, scope, _PROJECTIONS, "projection")
    s = src.type
    fields: dict[str, Any] = {"kind": args.what, "delay": _delay(b, args)}
    ctx = f"{args.what} from '{c.src}' {list(s.shape)} into '{c.dst}'"
    if args.what == "dense":
        units = args.size("units") if args.has("units") else (math.prod(target) if target else None)
        if units is None and isinstance(args.raw("weight"), str):
            w = b.blob(args, "weight", None, dtype=b.weight_dtype)
            if w.data.ndim != 2:
                raise b.err(args.node_of("weight"), f"'weight' of dense must be [units, {s.size}], got {list(w.shape)}")
            units = w.shape[0]
        if units is None:
            raise b.err(kind_node, f"the size of '{c.dst}' is unknown", hint=f"give dense the number of units, or '{c.dst}' a shape")
        default = b.default_init(s.size) if not args.has("weight") else None
        fields["weight"] = b.blob(args, "weight", (units, s.size), default, dtype=b.weight_dtype, context=ctx)
    elif args.what == "conv2d":
        if s.rank != 3:
            raise b.err(kind_node, f"conv2d needs a [channels, height, width] source, '{c.src}' is {list(s.shape)}")
        channels = args.size("channels") if args.has("channels") else (target[0] if target and len(target) == 3 else None)
        if channels is None:
            raise b.err(kind_node, "conv2d needs the number of output channels: conv2d(16, kernel = 3)")
        kernel = args.ints("kernel", 2)
        groups = args.number("groups", 1, integer=True)
        if groups < 1 or s.shape[0] % groups:
            raise b.err(args.node_of("groups"), f"groups = {groups} does not divide the {s.shape[0]} source channels")
        dil = args.ints("dilation", 2, (1, 1))
        fields["strides"], fields["pads"] = _window(args, 2, kernel, dil)
        fields["dilations"], fields["groups"] = dil, groups
        shape = (channels, s.shape[0] // groups, *kernel)
        default = b.default_init(int(np.prod(shape[1:]))) if not args.has("weight") else None
        fields["weight"] = b.blob(args, "weight", shape, default, dtype=b.weight_dtype, context=ctx)
    elif args.what == "pool":
        if s.rank != 3:
            raise b.err(kind_node, f"pool needs a [channels, height, width] source, '{c.src}' is {list(s.shape)}")
        fields["kernel"] = args.ints("kernel", 2)
        fields["strides"], fields["pads"] = _window(args, 2, fields["kernel"], allow_same=False)
        fields["weight"] = _param(b, args, "weight", 1.0, b.weight_dtype)
    elif args.what == "one_to_one":
        fields["weight"] = _param(b, args, "weight", 1.0, b.weight_dtype)
    else:  # sparse
        if target is None:
            raise b.err(kind_node, f"a sparse projection needs the shape of '{c.dst}'", hint=f"give it one: pop {c.dst}: [64] ...")
        if args.has("file"):
            path = args.string("file")
            for key in ("indptr", "indices", "weight"):
                args.args.setdefault(key, Arg(f"{path}:{key}", args.node_of("file")))
        for key in ("indptr", "indices", "weight"):
            if not args.has(key):
                raise b.err(kind_node, f"sparse needs '{key}' (or file = \"conn.npz\" holding indptr, indices, weight)")
        fields["indptr"] = b.blob(args, "indptr", (s.size + 1,), dtype=np.int64, context=f"{ctx}: source size + 1")
        fields["indices"] = b.blob(args, "indices", None, dtype=np.int64)
        fields["weight"] = b.blob(args, "weight", None, dtype=b.weight_dtype)
        fields["shape"] = tuple(target)
    v = b.add(snn.Project, kind_node, f"{c.dst}.from_{c.src}", src=src, **fields)
    if target is not None and v.type.size != math.prod(target):
        raise b.err(kind_node, f"{ctx} delivers current for {list(v.type.shape)} ({v.type.size} neurons), "
                                  f"but '{c.dst}' is {list(target)} ({math.prod(target)} neurons)")
    return v


def _param(b: _Builder, args: Bound, key: str, default: float, dtype=np.float32) -> Any:
    """A per-neuron parameter or weight: a number, or an array from a weight source."""
    v = args.raw(key, default)
    if isinstance(v, bool):
        raise b.err(args.node_of(key), f"'{key}' of {args.what} must be a number, got {_show(v)}")
    if isinstance(v, int | float):
        if np.issubdtype(dtype, np.integer):
            if not float(v).is_integer():
                raise b.err(args.node_of(key), f"'{key}' of {args.what} must be an integer in an integer network, got {v}")
            return int(v)
        return float(v)
    if isinstance(v, Time):
        raise b.err(args.node_of(key), f"'{key}' of {args.what} is a plain number, not a time ({v.text})")
    return b.blob(args, key, None, dtype=dtype)


def _decay(b: _Builder, args: Bound, key: str, integer: bool) -> float | int:
    tau = args.time(key)
    if b.dt is None:
        raise b.err(args.node_of(key), f"'{key}' is a time constant: converting it needs the time step",
                       hint="declare it: network NAME(dt = 1ms)")
    d = DECAY_ONE * (1.0 - math.exp(-float(b.dt) / float(tau)))
    return int(round(d)) if integer else d


def _model(kind: str):
    def build(b: _Builder, args: Bound, shape, currents, name):
        bits = args.number("bits", 0, integer=True)
        if bits and not 2 <= bits <= 32:
            raise b.err(args.node_of("bits"), f"bits must be 0 (float) or 2..32, got {bits}")
        fields: dict[str, Any] = {"bits": bits, "reset": args.word("reset", ("subtract", "zero"), "subtract")}
        for key, default in (("threshold", 1.0), ("bias", 0.0), ("v0", 0.0)):
            value = _param(b, args, key, default)
            if isinstance(value, Blob):
                try:
                    ok = np.broadcast_shapes(value.shape, tuple(shape)) == tuple(shape)
                except ValueError:
                    ok = False
                if not ok:
                    raise b.err(args.node_of(key), f"'{key}' of shape {list(value.shape)} does not fit population '{name}' of {list(shape)}")
                if bits:
                    value = Blob(value.data.astype(np.int64), name=value.name)
            elif bits:
                if value != round(value) and not math.isinf(value):
                    raise b.err(args.node_of(key), f"'{key}' must be an integer in an integer (bits = {bits}) population, got {value}")
                value = int(value) if not math.isinf(value) else value
            fields[key] = value
        if kind == "if":
            fields["du"], fields["dv"] = DECAY_ONE, 0
        elif kind == "lif":
            fields["du"], fields["dv"] = DECAY_ONE, _decay(b, args, "tau", bool(bits)) if args.has("tau") else None
            if fields["dv"] is None:
                raise b.err(args.node, "lif needs its membrane time constant: lif(tau = 20ms)")
        else:
            for key, field in (("tau_syn", "du"), ("tau_mem", "dv")):
                if not args.has(key):
                    raise b.err(args.node, f"cuba needs '{key}': cuba(tau_syn = 5ms, tau_mem = 20ms)")
                fields[field] = _decay(b, args, key, bool(bits))
        for k in ("du", "dv"):
            if isinstance(fields[k], float) and fields[k].is_integer():
                fields[k] = int(fields[k])
        v = b.add(snn.Population, args.node, name, currents=list(currents), declared_type=SpikeType(tuple(shape)), **fields)
        return v.owner

    return build


_COMMON = ("threshold", "bias", "v0", "reset", "bits")
_MODELS: dict[str, LayerSpec] = {
    "if": LayerSpec(_COMMON, _model("if")),
    "lif": LayerSpec(("tau",) + _COMMON, _model("lif")),
    "cuba": LayerSpec(("tau_syn", "tau_mem") + _COMMON, _model("cuba")),
}
_PROJECTIONS: dict[str, LayerSpec] = {
    "dense": LayerSpec(("units", "weight", "delay"), None),
    "conv2d": LayerSpec(("channels", "kernel", "stride", "pad", "dilation", "groups", "weight", "delay"), None),
    "pool": LayerSpec(("kernel", "stride", "pad", "weight", "delay"), None),
    "one_to_one": LayerSpec(("weight", "delay"), None),
    "sparse": LayerSpec(("file", "indptr", "indices", "weight", "delay"), None),
}
_ENCODINGS: dict[str, LayerSpec] = {
    "rate": LayerSpec((), None),
    "poisson": LayerSpec(("seed",), None),
    "current": LayerSpec(("scale",), None),
    "spikes": LayerSpec((), None),
}

"""What ``.nmd`` expressions evaluate to (times, bare words, arguments) and the binding of a
call's arguments to a layer's parameters (:class:`LayerSpec`, :class:`Bound`)."""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from nmc.ir.core import Value

if TYPE_CHECKING:
    from nmc.frontends.nmd.builder import Builder

TIME_UNITS = {"s": Decimal(1), "ms": Decimal("1e-3"), "us": Decimal("1e-6"), "ns": Decimal("1e-9")}
CONSTANTS = {"inf": math.inf, "true": True, "false": False}


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



class Scope:
    """Names visible to a statement: constants (``let``, block parameters) and values."""

    def __init__(self, consts: dict[str, Any], values: dict[str, Value], prefix: str = ""):
        self.consts = consts
        self.values = values
        self.prefix = prefix


# ---------------------------------------------------------------------------- calls


@dataclass(frozen=True)
class LayerSpec:
    """A layer (or model, projection kind, encoding): its parameters in positional order.

    A parameter starting with ``*`` takes every remaining positional argument."""

    params: tuple[str, ...]
    fn: Any


class Bound:
    """The arguments of one call, bound to a :class:`LayerSpec`'s parameters."""

    def __init__(self, b: Builder, what: str, node, args: dict[str, Arg]):
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
            raise self.b.err(arg.node, f"'{name}' of {self.what} must be at least {minimum}, got {show(arg.value)}")
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
            raise self.b.err(arg.node, f"'{name}' of {self.what} must be one of {', '.join(choices)}, got {show(arg.value)}")
        return word

    def string(self, name: str) -> str:
        v = self.raw(name)
        if not isinstance(v, str):
            raise self.b.err(self.node_of(name), f"'{name}' of {self.what} must be a quoted file name, got {show(v)}")
        return v

    def flag(self, name: str) -> bool:
        v = self.raw(name, False)
        if v not in (True, False, 0, 1) or isinstance(v, float):
            raise self.b.err(self.node_of(name), f"'{name}' of {self.what} must be true or false, got {show(v)}")
        return bool(v)

    def time(self, name: str) -> Decimal:
        arg = self.args[name]
        if not isinstance(arg.value, Time):
            raise self.b.err(arg.node, f"'{name}' of {self.what} is a time constant: give it a unit, like 20ms",
                             hint="units: s, ms, us, ns")
        if arg.value.seconds <= 0:
            raise self.b.err(arg.node, f"'{name}' of {self.what} must be positive, got {arg.value.text}")
        return arg.value.seconds


def show(v: Any) -> str:
    if isinstance(v, Sym):
        return f"'{v.name}'"
    if isinstance(v, Time):
        return v.text
    if isinstance(v, str):
        return f'"{v}"'
    return repr(v)


def suggest(word: str, known) -> str | None:
    close = difflib.get_close_matches(word, list(known), n=1)
    return f"did you mean '{close[0]}'?" if close else None


def window(args: Bound, n: int, kernel: tuple[int, ...], dilations=None, allow_same: bool = True) -> tuple[tuple, tuple]:
    """(strides, ONNX pads) from ``stride`` and ``pad`` (an int, one per axis, begin+end per
    axis, or ``same``) of a convolution or pooling layer or projection."""
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
        raise b.err(args.node_of("pad"), f"'pad' of {args.what} must not be negative, got {show(pad)}")
    return strides, values * 2 if len(values) == n else values

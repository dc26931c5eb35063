"""Passes, pipelines and the pass manager (docs/design.md §4).

A pass is a frozen dataclass registered under a kebab-case name; its fields are its options
(``weight_bits`` is spelled ``weight-bits`` in a pipeline).  Its docstring states what it
requires and what it ensures.  ``run(graph, ctx)`` changes the graph in place and returns
whether it changed anything.

A pipeline is a string: ``fold-batchnorm,normalize{percentile=99.9},quantize{weight-bits=8}``.
The same string works on the command line, in Python, in tests and in image manifests; the
canonical spelling of a parsed pipeline (:func:`format_pipeline`) lists only options that
differ from their defaults.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
import os
import sys
import tempfile
import time
import types
import typing
from collections import Counter
from dataclasses import dataclass, field
from functools import cache
from typing import Any, ClassVar, Literal

import lark

from nmc.diagnostics import NmcError, UsageError
from nmc.ir.core import Graph, Value, VerifyError
from nmc.ir.printer import print_graph
from nmc.ir.verifier import verify

PASSES: dict[str, type[Pass]] = {}

# The pass library's index: each pass's name and the module whose import registers it.  A
# pipeline imports only the modules of the passes it names (the library pulls in numpy-heavy
# and networkx-heavy code); tests/test_passmanager.py checks the index against the registry.
# Chip classes index their own passes (ChipClass.pass_modules); pass_index() joins the two.
PASS_MODULES: dict[str, str] = {
    "batchnorm-to-conv": "nmc.passes.channels",
    "calibrate": "nmc.passes.calibrate",
    "canonicalize": "nmc.passes.canonicalize",
    "convert-to-spiking": "nmc.passes.convert",
    "dce": "nmc.passes.canonicalize",
    "drop-dropout": "nmc.passes.canonicalize",
    "drop-identity": "nmc.passes.canonicalize",
    "fold-affine": "nmc.passes.fold_affine",
    "fold-batchnorm": "nmc.passes.canonicalize",
    "fold-channel-shuffle": "nmc.passes.channels",
    "fold-constants": "nmc.passes.canonicalize",
    "lrn-to-scale": "nmc.passes.lrn_scale",
    "measure-rates": "nmc.passes.measure_rates",
    "normalize": "nmc.passes.normalize",
    "quantize": "nmc.passes.quantize",
    "split-concat": "nmc.passes.channels",
    "split-sign": "nmc.passes.channels",
    "strip-output-softmax": "nmc.passes.canonicalize",
}


class Pass:
    """Base of every pass; subclasses are made with :func:`register_pass`."""

    NAME: ClassVar[str] = "?"

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        raise NotImplementedError(f"pass {self.NAME} does not implement run()")

    def __str__(self) -> str:
        return format_pass(self)


def register_pass(name: str):
    """Class decorator: make ``cls`` a frozen dataclass pass registered as ``name``."""

    def wrap(cls):
        if not (cls.__doc__ or "").strip():
            raise TypeError(f"pass {name} needs a docstring stating what it requires and ensures")
        cls.NAME = name
        cls = dataclass(frozen=True)(cls)
        if name in PASSES:
            raise ValueError(f"pass {name} registered twice")
        PASSES[name] = cls
        return cls

    return wrap


def pass_index() -> dict[str, str]:
    """Every indexed pass and its module: the library's and every chip class's."""
    from nmc.targets.classes import class_pass_modules

    return {**class_pass_modules(), **PASS_MODULES}


def load_passes() -> dict[str, type[Pass]]:
    """The registry, after importing the whole pass library and every chip class's passes."""
    for module in sorted(set(pass_index().values())):
        importlib.import_module(module)
    return PASSES


def pass_names() -> list[str]:
    """Every pass a pipeline may name (indexed, and any registered since), sorted, without
    importing the passes."""
    return sorted(set(pass_index()) | set(PASSES))


def lookup_pass(name: str) -> type[Pass] | None:
    """The class of pass ``name``, importing its module on first use (None: no such pass)."""
    if name not in PASSES:
        module = PASS_MODULES.get(name) or pass_index().get(name)
        if module is not None:
            importlib.import_module(module)
    return PASSES.get(name)


# ------------------------------------------------------------------------------- pipelines

_PIPELINE_GRAMMAR = r"""
pipeline: [entry ("," entry)*]
entry: NAME [options]
options: "{" [option ("," option)*] "}"
option: NAME "=" value
?value: WORD | list
list: "[" [WORD ("," WORD)*] "]"
NAME: /[a-z][a-z0-9]*(-[a-z0-9]+)*/
WORD: /[^,{}\[\]=\s]+/
%import common.WS
%ignore WS
"""


@cache
def _pipeline_parser() -> lark.Lark:
    return lark.Lark(_PIPELINE_GRAMMAR, start="pipeline", parser="lalr", cache=True)  # as the IR parser


def option_name(field_name: str) -> str:
    return field_name.replace("_", "-")


def pass_options(cls: type[Pass]) -> dict[str, tuple[str, Any, dataclasses.Field]]:
    """Option spelling → (field name, type, field) of a pass class."""
    hints = typing.get_type_hints(cls)
    return {option_name(f.name): (f.name, hints[f.name], f) for f in dataclasses.fields(cls)}


def describe_type(t: Any) -> str:
    if typing.get_origin(t) is Literal:
        return "|".join(str(a) for a in typing.get_args(t))
    if typing.get_origin(t) is tuple:
        return f"list of {describe_type(typing.get_args(t)[0])}"
    return getattr(t, "__name__", str(t))


def _convert(text: Any, t: Any, where: str) -> Any:
    """Convert an option's text to its declared type (UsageError on failure)."""
    origin = typing.get_origin(t)
    if origin is tuple:
        items = text if isinstance(text, list) else [text]
        return tuple(_convert(x, typing.get_args(t)[0], where) for x in items)
    if isinstance(text, list):
        raise UsageError(f"{where} takes one {describe_type(t)}, not a list")
    if origin is Literal:
        choices = [str(a) for a in typing.get_args(t)]
        if text not in choices:
            raise UsageError(f"{where} must be one of {', '.join(choices)}, got '{text}'")
        return text
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(t) if a is not type(None)]
        if text in ("none", "None"):
            return None
        return _convert(text, args[0], where)
    try:
        if t is bool:
            if text.lower() in ("true", "1", "yes", "on"):
                return True
            if text.lower() in ("false", "0", "no", "off"):
                return False
            raise ValueError
        return t(text)
    except ValueError:
        raise UsageError(f"{where} expects {describe_type(t)}, got '{text}'") from None


def _valid_passes_hint() -> str:
    return "valid passes: " + ", ".join(pass_names())


def parse_pipeline(text: str) -> list[Pass]:
    """Parse a pipeline string; unknown passes, options or bad values are :class:`UsageError`
    with the valid choices listed."""
    try:
        tree = _pipeline_parser().parse(text)
    except lark.exceptions.UnexpectedInput as e:
        col = getattr(e, "column", 0) or 0
        raise UsageError(f"malformed pipeline at column {col}: {text!r}\n  {text}\n  {' ' * max(col - 1, 0)}^",
                         hint="write name{option=value,...},name,...") from None
    passes = []
    for entry in tree.children:
        if entry is None:
            continue
        name_tok, options = entry.children
        name = str(name_tok)
        cls = lookup_pass(name)
        if cls is None:
            raise UsageError(f"unknown pass '{name}'", hint=_valid_passes_hint())
        known = pass_options(cls)
        kwargs = {}
        for opt in (options.children if options is not None else []):
            if opt is None:
                continue
            key, value = opt.children
            key = str(key)
            if key not in known:
                valid = ", ".join(f"{k}=<{describe_type(t)}>" for k, (_, t, _) in known.items()) or "none"
                raise UsageError(f"unknown option '{key}' for pass '{name}'", hint=f"options of {name}: {valid}")
            fname, ftype, _ = known[key]
            raw = [str(c) for c in value.children if c is not None] if isinstance(value, lark.Tree) else str(value)
            kwargs[fname] = _convert(raw, ftype, f"option '{key}' of pass '{name}'")
        try:
            passes.append(cls(**kwargs))
        except (ValueError, TypeError) as err:
            raise UsageError(f"pass '{name}': {err}") from None
    return passes


def _format_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, tuple):
        return "[" + ",".join(_format_value(x) for x in v) + "]"
    return str(v)


def merge_options(defaults: str, given: str) -> str:
    """``key=value,...`` options: ``given`` overrides ``defaults`` key by key, order kept."""
    merged: dict[str, str] = {}
    for text in (defaults, given):
        for item in filter(None, (t.strip() for t in text.split(","))):
            key, eq, value = item.partition("=")
            if not eq or not key.strip():
                raise UsageError(f"pass option '{item}' is not KEY=VALUE")
            merged[key.strip()] = value.strip()
    return ",".join(f"{k}={v}" for k, v in merged.items())


def format_pass(p: Pass) -> str:
    opts = []
    for f in dataclasses.fields(p):
        value = getattr(p, f.name)
        default = f.default if f.default is not dataclasses.MISSING else (
            f.default_factory() if f.default_factory is not dataclasses.MISSING else dataclasses.MISSING)
        if value != default:
            opts.append(f"{option_name(f.name)}={_format_value(value)}")
    return p.NAME + ("{" + ",".join(opts) + "}" if opts else "")


def format_pipeline(passes: list[Pass]) -> str:
    return ",".join(format_pass(p) for p in passes)


# ------------------------------------------------------------------------------- context


@dataclass
class Instruments:
    """What to report while a pipeline runs (the ``--print-ir-*``, ``--time-passes``... flags).

    ``print_ir_before``/``print_ir_after`` hold pass names or ``"all"``."""

    print_ir_before: set[str] = field(default_factory=set)
    print_ir_after: set[str] = field(default_factory=set)
    time_passes: bool = False
    pass_statistics: bool = False
    debug_only: set[str] = field(default_factory=set)
    remarks: bool = False  # print the remarks passes leave ("remark: pass: ...")
    reproducer: str | None = None  # path for a crash reproducer (default: a temporary file)
    stream: Any = None  # where dumps and tables go (default sys.stderr)

    def wants(self, which: set[str], name: str) -> bool:
        return "all" in which or name in which


@dataclass
class PassContext:
    """The options of one pipeline run, shared by every pass in it.

    ``stats[pass][name]`` accumulates per-pass statistics; ``remarks`` collects notes passes
    leave for the user (what they removed, what they approximated)."""

    target: Any = None
    calibration: Any = None
    seed: int = 0
    opt_level: int = 2
    verify: bool = True
    instruments: Instruments = field(default_factory=Instruments)
    stats: dict[str, Counter] = field(default_factory=dict)
    timings: list[tuple[str, float]] = field(default_factory=list)
    remarks: list[str] = field(default_factory=list)
    current: str | None = None

    def stat(self, name: str, n: int = 1) -> None:
        """Add ``n`` to statistic ``name`` of the running pass."""
        self.stats.setdefault(self.current or "?", Counter())[name] += n

    def remark(self, message: str) -> None:
        self.remarks.append(f"{self.current}: {message}" if self.current else message)

    @property
    def log(self) -> logging.Logger:
        """The running pass's logger (``--debug-only=NAME`` shows its debug messages)."""
        return logging.getLogger(f"nmc.pass.{self.current}")


class PassFailure(Exception):
    """A pass crashed or left invalid IR: a bug in nmc.  Carries the reproducer's path."""

    def __init__(self, pass_name: str, cause: BaseException, reproducer: str | None):
        self.pass_name = pass_name
        self.cause = cause
        self.reproducer = reproducer
        where = f"; reproducer written to {reproducer} (replay: nmc opt --run-reproducer {reproducer})" if reproducer else ""
        super().__init__(f"pass '{pass_name}' failed: {type(cause).__name__}: {cause}{where}")


REPRODUCER_TAG = "// nmc-reproducer: pipeline="


def write_reproducer(graph_text: str, pipeline: str, path: str | None) -> str | None:
    """Write the IR before the failing pass and that pass, as a file ``nmc opt`` replays."""
    try:
        if path is None:
            fd, path = tempfile.mkstemp(prefix="nmc-reproducer-", suffix=".nmir")
            os.close(fd)
        with open(path, "w", encoding="utf-8") as f:
            f.write(f"{REPRODUCER_TAG}{pipeline}\n{graph_text}")
        return path
    except OSError:
        return None


def read_reproducer_pipeline(text: str) -> str | None:
    first = text.split("\n", 1)[0]
    return first[len(REPRODUCER_TAG):] if first.startswith(REPRODUCER_TAG) else None


class Snapshot:
    """A graph as it was before a pass, for the reproducer, taken in time linear in the ops'
    fields without re-running their constructors (:meth:`Graph.clone` does: a mapped graph's
    ``hw.core`` slices made every clone cost seconds at ResNet-50's size): the op list, the
    meta, each op's fields (lists and dicts copied one level, as ``clone`` copies them) and
    each result's name and type.  :meth:`text` rebuilds a detached copy and prints it, blobs
    inline — only when the pass failed.  Passes replace ops or set their fields; a pass that
    mutated a field's tuple, Blob or nested object in place would show here (as in a clone)."""

    def __init__(self, graph: Graph):
        self.name, self.meta = graph.name, dict(graph.meta)
        self.ops = [(op, {k: list(v) if type(v) is list else dict(v) if type(v) is dict else v
                          for k, v in vars(op).items()},
                     None if op.result is None else (op.result.name, op.result.type)) for op in graph.ops]

    def graph(self) -> Graph:
        """A new graph equal to the one the snapshot was taken of (as ``clone`` would copy it)."""
        g = Graph(self.name, dict(self.meta))
        mapping: dict[int, Value] = {}
        for op, fields, result in self.ops:
            new = object.__new__(type(op))
            new.__dict__.update(fields)
            if result is not None:
                new.result = mapping[id(fields["result"])] = Value(result[1], owner=new, name=result[0])
            g.ops.append(new)
        for new in g.ops:
            for name, spec in new.operand_specs():
                v = getattr(new, name)
                setattr(new, name, [mapping.get(id(x), x) for x in v] if spec.kind == "operands" else mapping.get(id(v), v))
        return g

    def text(self) -> str:
        return print_graph(self.graph(), print_blobs=True)


# ---------------------------------------------------------------------------- pass manager


class _DebugOnly(logging.Filter):
    def __init__(self, names: set[str]):
        super().__init__()
        self.names = names

    def filter(self, record: logging.LogRecord) -> bool:
        return record.name.removeprefix("nmc.pass.") in self.names


class PassManager:
    """Runs a pipeline over a graph with the context's instruments and the verifier."""

    def __init__(self, pipeline: str | list[Pass], ctx: PassContext | None = None):
        self.passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else list(pipeline)
        self.ctx = ctx or PassContext()

    @property
    def pipeline(self) -> str:
        return format_pipeline(self.passes)

    def run(self, graph: Graph) -> Graph:
        """Run every pass in order, in place; returns ``graph``.

        A user-level problem a pass finds (:class:`NmcError`) propagates with the pass named
        in a note; anything else, or IR that fails verification after a pass, raises
        :class:`PassFailure` after writing a reproducer."""
        ctx, ins = self.ctx, self.ctx.instruments
        out = ins.stream or sys.stderr
        handler = self._install_debug_logging(ins.debug_only, out)
        try:
            for p in self.passes:
                self._run_one(p, graph, ctx, ins, out)
        finally:
            if handler is not None:
                logging.getLogger("nmc.pass").removeHandler(handler)
            ctx.current = None
        if ins.remarks:
            out.writelines(f"remark: {r}\n" for r in ctx.remarks)
        if ins.time_passes:
            out.write(self.timing_report())
        if ins.pass_statistics:
            out.write(self.statistics_report())
        return graph

    def _run_one(self, p: Pass, graph: Graph, ctx: PassContext, ins: Instruments, out) -> None:
        name = p.NAME
        if ins.wants(ins.print_ir_before, name):
            out.write(f"// -----// IR Dump Before {format_pass(p)} //----- //\n{print_graph(graph)}\n")
        before = Snapshot(graph)  # printed only if the pass fails, for the reproducer
        ctx.current = name
        start = time.perf_counter()
        try:
            p.run(graph, ctx)
        except VerifyError as err:  # the pass built an invalid op: a bug, not the user's input
            raise PassFailure(name, err, write_reproducer(before.text(), format_pass(p), ins.reproducer)) from err
        except NmcError as err:
            err.notes.append(f"while running pass '{name}'")
            raise
        except Exception as err:
            raise PassFailure(name, err, write_reproducer(before.text(), format_pass(p), ins.reproducer)) from err
        finally:
            ctx.timings.append((name, time.perf_counter() - start))
        if ctx.verify:
            try:
                verify(graph)
            except VerifyError as err:
                raise PassFailure(name, err, write_reproducer(before.text(), format_pass(p), ins.reproducer)) from err
        if ins.wants(ins.print_ir_after, name):
            out.write(f"// -----// IR Dump After {format_pass(p)} //----- //\n{print_graph(graph)}\n")

    @staticmethod
    def _install_debug_logging(names: set[str], out) -> logging.Handler | None:
        if not names:
            return None
        handler = logging.StreamHandler(out)
        handler.setFormatter(logging.Formatter("[%(name)s] %(message)s"))
        handler.addFilter(_DebugOnly(names))
        logger = logging.getLogger("nmc.pass")
        logger.addHandler(handler)
        logger.setLevel(logging.DEBUG)
        return handler

    def timing_report(self) -> str:
        """An MLIR-style table of wall time per pass."""
        timings = self.ctx.timings
        total = sum(t for _, t in timings) or 1e-12
        rule = "===" + "-" * 72 + "==="
        lines = [rule, "Pass execution timing report".center(78), rule,
                 f"  Total Execution Time: {total:.4f} seconds", "",
                 "  ----Wall Time----  ----Name----"]
        for name, t in timings:
            lines.append(f"  {t:8.4f} ({100 * t / total:5.1f}%)  {name}")
        lines.append(f"  {total:8.4f} (100.0%)  Total")
        return "\n".join(lines) + "\n"

    def statistics_report(self) -> str:
        lines = ["===" + "-" * 72 + "===", "Pass statistics report".center(78), "===" + "-" * 72 + "==="]
        for name, counter in self.ctx.stats.items():
            lines.append(f"'{name}'")
            for stat, n in sorted(counter.items()):
                lines.append(f"  ({stat}) {n}")
        return "\n".join(lines) + "\n"


def run_pipeline(graph: Graph, pipeline: str | list[Pass], ctx: PassContext | None = None) -> Graph:
    """Convenience: ``PassManager(pipeline, ctx).run(graph)``."""
    return PassManager(pipeline, ctx).run(graph)

"""Parse the textual IR (docs/design.md §3).  The lark grammar is generated from the op declarations:
one keyword per op kind, and one rule per op shape (with or without operands, with or without a
result).  Attributes are ``NAME = value`` in the grammar; which names an op takes and what kind of
value each holds is checked against the op's declaration, and a syntax error in an attribute list
is told in those terms ("expected one of: 'alpha', ..."), so the messages are as precise as a
grammar with a rule per attribute while the parser tables stay small (start-up time, issue 17).

Errors are :class:`~nmc.diagnostics.NmcError` rendered as ``file:line:col: error: ...`` with the
source line and a caret.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from functools import cache
from typing import Any

import lark

from nmc.diagnostics import Loc, NmcError
from nmc.ir.core import OPS, Blob, Graph, Op, Random, Splat, Value, VerifyError
from nmc.ir.types import TensorType, parse_type
from nmc.lazy import lazy_import

np = lazy_import("numpy")

CASE_SEPARATOR = "// -----"

_BASE_GRAMMAR = r"""
start: [header] item*
header: KW_GRAPH BLOB_NAME [meta]
meta: "{" [meta_entry ("," meta_entry)*] "}"
meta_entry: (NAME | EXTRA_KEY) "=" value
?item: blob_decl | op_stmt
blob_decl: KW_BLOB BLOB_NAME "=" blob_init     -> blob_def
         | KW_BLOB BLOB_NAME ":" TYPE           -> blob_decl
op_stmt: [VALUE_NAME "="] op [location]
location: KW_LOC "(" STRING ":" NUMBER ":" NUMBER ")"       -> loc_pos
        | KW_LOC "(" STRING ":" STRING [":" STRING] ")"     -> loc_node
args: [VALUE_NAME ("," VALUE_NAME)*]
attrs: "{" [attr ("," attr)*] "}"
attr: NAME "=" attr_value
    | EXTRA_KEY "=" value
?attr_value: NUMBER | KW_TRUE | KW_FALSE | STRING | number_list | blob_value | word  // not scalar: its states are shared with lists
// an enum choice; the blob keywords are words too when no '<' follows ('kind = dense')
?word: NAME | KW_DENSE | KW_SPLAT | KW_RANDOM | KW_BASE64

?blob_value: BLOB_NAME | blob_init
blob_init: KW_DENSE "<" dense_body ">" ":" TYPE                       -> init_dense
         | KW_SPLAT "<" scalar ">" ":" TYPE                           -> init_splat
         | KW_RANDOM "<" (KW_UNIFORM | KW_NORMAL) ["," KW_SEED "=" NUMBER] ["," KW_SCALE "=" NUMBER] ">" ":" TYPE -> init_random
         | KW_BASE64 "<" STRING ">" ":" TYPE                          -> init_base64
?dense_body: scalar | dense_list
dense_list: "[" [dense_body ("," dense_body)*] "]"
?scalar: NUMBER | KW_TRUE | KW_FALSE
number_list: "[" [NUMBER ("," NUMBER)*] "]"
?value: scalar | STRING | value_list | blob_value
value_list: "[" [value ("," value)*] "]"

VALUE_NAME: /%[A-Za-z0-9_.$-]+/
BLOB_NAME: /@[A-Za-z0-9_.$-]+/
EXTRA_KEY: /[a-z_][a-z0-9_]*(\.[a-z0-9_]+)+/
OP_NAME: /[a-z_][a-z0-9_]*(\.[a-z0-9_]+)+/  // an op kind's keyword (lark retypes it), else unknown
NAME: /[a-z_][a-z0-9_]*(?![A-Za-z0-9_.])/
NUMBER: /[+-]?((inf|nan)(?![A-Za-z0-9_])|(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?)/
TYPE: /(tensor|spikes|current)<[^>\n]*>/
STRING: /"[^"\\\n]*(?:\\.[^"\\\n]*)*"/  // unrolled: one class scan per run of plain characters (a 3.4 MB base64 blob: 0.03 s, not 0.8 s)
COMMENT: /\/\/[^\n]*/
%import common.WS
%ignore WS
%ignore COMMENT
"""
_BASE_KEYWORDS = ("graph", "blob", "loc", "dense", "splat", "random", "uniform", "normal",
                  "seed", "scale", "base64", "true", "false")

_BLOB_START = {"BLOB_NAME", "KW_DENSE", "KW_SPLAT", "KW_RANDOM", "KW_BASE64"}

# The terminals that may start a value of each field kind (an enum's are its choices' keywords).
_VALUE_START = {
    "int": {"NUMBER"},
    "float": {"NUMBER"},
    "bool": {"KW_TRUE", "KW_FALSE"},
    "str": {"STRING"},
    "ints": {"LSQB"},
    "floats": {"LSQB"},
    "blob": _BLOB_START,
    "param": _BLOB_START | {"NUMBER"},
}

_TERMINAL_WORDS = {
    "VALUE_NAME": "a value name (like %x)",
    "BLOB_NAME": "a blob name (like @w)",
    "EXTRA_KEY": "a namespaced attribute (like calib.max)",
    "NAME": "a name",
    "NUMBER": "a number",
    "TYPE": "a type (like tensor<10xf32>, spikes<10>, current<10>)",
    "STRING": "a quoted string",
    "$END": "end of input",
}


def keyword_terminal(text: str) -> str:
    """The terminal of a keyword: whole words only, so 'ratee' is not 'rate' followed by 'e'."""
    return "KW_" + re.sub(r"\W", "_", text).upper()


# One op rule per shape: (takes operands, has a result) -> the (inlined) rule of its kinds'
# keywords and the body after the keyword.
_SHAPES = {
    (True, True): ("_kind_operands_result", '"(" args ")" [attrs] ":" TYPE'),
    (False, True): ("_kind_result", '[attrs] ":" TYPE'),
    (True, False): ("_kind_operands", '"(" args ")" [attrs]'),
    (False, False): ("_kind_bare", "[attrs]"),
}


def generate_grammar() -> str:
    """The full lark grammar: the base rules, one keyword per registered op kind and one rule per
    op shape.  An op keyword is a string that ``OP_NAME`` matches whole, so the lexer scans for
    ``OP_NAME`` and retypes a known kind (one small regex, not one per op); the others are
    whole-word regexes that outrank ``NAME`` where both match (``true``, ``dense``)."""
    by_shape: dict[tuple[bool, bool], list[str]] = {}
    for kind in sorted(OPS):
        cls = OPS[kind]
        for name, spec in cls.attr_specs():
            for word in (name, *spec.choices):  # lexed as NAME
                if not re.fullmatch(r"[a-z_][a-z0-9_]*", word) or word in ("true", "false"):
                    raise ValueError(f"'{kind}' attribute {name!r}: {word!r} is not a word the IR grammar can spell "
                                     "(lowercase letters, digits, '_'; not true or false)")
        by_shape.setdefault((bool(cls.operand_specs()), cls.HAS_RESULT), []).append(keyword_terminal(kind))
    shapes = [" ".join(_SHAPES[shape]) for shape in by_shape]
    lines = [_BASE_GRAMMAR, "op: " + "\n  | ".join([*shapes, "OP_NAME"])]
    lines += [f"{_SHAPES[shape][0]}: {' | '.join(kws)}" for shape, kws in by_shape.items()]
    terminals = {}
    for text in sorted(set(_BASE_KEYWORDS) | set(OPS)):
        name = keyword_terminal(text)
        if terminals.get(name, text) != text:
            raise ValueError(f"keywords {text!r} and {terminals[name]!r} share terminal {name}")
        terminals[name] = text
        if text in OPS:
            lines.append(f"{name}: {json.dumps(text)}")
        else:
            lines.append(f"{name}.2: /{re.escape(text)}(?![A-Za-z0-9_.])/")
    return "\n".join(lines) + "\n"


class _UnknownOperation(Exception):
    """Raised by the lexer at an ``OP_NAME`` that is no registered op kind."""

    def __init__(self, token: lark.Token):
        super().__init__(str(token))
        self.token = token


def _unknown_operation(token: lark.Token) -> lark.Token:
    raise _UnknownOperation(token)


@cache
def lark_parser() -> lark.Lark:
    """The lark parser of the IR grammar, built once per process (lark caches its tables on disk)."""
    return lark.Lark(generate_grammar(), parser="lalr", propagate_positions=True, maybe_placeholders=True,
                     lexer_callbacks={"OP_NAME": _unknown_operation}, cache=True)


# ---------------------------------------------------------------------------- error rendering


def describe(parser: lark.Lark, names: set[str], keywords: dict[str, str] | None = None) -> list[str]:
    """The terminals ``names`` of ``parser`` in words, for "expected ..." messages; ``keywords``
    spells names that are not the parser's terminals (an op's attribute names, enum choices)."""
    op_keywords = {o for o in OPS}
    words, ops, any_op = [], [], False
    for n in sorted(names):
        if keywords and n in keywords:
            words.append(f"'{keywords[n]}'")
            continue
        if n == "OP_NAME":  # any op kind (the lexer retypes a known kind's name to its keyword)
            any_op = True
            continue
        if n in _TERMINAL_WORDS:
            words.append(_TERMINAL_WORDS[n])
            continue
        try:
            pattern = parser.get_terminal(n).pattern
        except KeyError:
            words.append(n)
            continue
        text = pattern.value
        if n.startswith("KW_"):
            text = re.sub(r"\(\?!.*\)$", "", text).replace("\\", "")
        if isinstance(pattern, lark.lexer.PatternStr) or n.startswith("KW_"):
            (ops if text in op_keywords else words).append(f"'{text}'")
        else:
            words.append(n.lower())
    if any_op or len(ops) > 4:
        words.insert(0, "an operation (like 'ann.conv')")
    else:
        words[:0] = ops
    return sorted(set(words), key=words.index)


def join_words(words: list[str]) -> str:
    """``a or b``, or ``one of: a, b, c``."""
    if len(words) <= 2:
        return " or ".join(words)
    return "one of: " + ", ".join(words)


class Source:
    """Text of a file, for locations and caret lines."""

    def __init__(self, text: str, filename: str):
        self.lines = text.split("\n")
        self.filename = filename

    def line(self, n: int) -> str | None:
        return self.lines[n - 1] if 1 <= n <= len(self.lines) else None

    def error(self, message: str, line: int, col: int, hint: str | None = None) -> NmcError:
        return NmcError(message, Loc(self.filename, line, col), hint=hint, source_line=self.line(line))

    def at(self, meta_or_token, message: str, hint: str | None = None) -> NmcError:
        return self.error(message, meta_or_token.line, meta_or_token.column, hint)


def _unexpected(src: Source, found: str, expected: list[str], line: int, col: int) -> NmcError:
    return src.error(f"unexpected '{found}'; expected {join_words(expected)}", line, col)


def _unknown_operation_error(src: Source, found: str, line: int, col: int) -> NmcError:
    """'unknown operation', with the ops of its dialect (or the known dialects) as the hint."""
    dialect = found.split(".")[0]
    known = sorted(k for k in OPS if k.startswith(dialect + "."))
    hint = (f"operations of dialect '{dialect}': {', '.join(known)}" if known
            else f"known dialects: {', '.join(sorted({k.split('.')[0] for k in OPS}))}")
    return src.error(f"unknown operation '{found}'", line, col, hint)


def _attribute_names(cls, first: bool) -> tuple[set[str], dict[str, str]]:
    """What may stand where an attribute of op class ``cls`` is named (``first``: right after
    '{', where '}' may too), as terminal names and the spellings of those that are not terminals."""
    keywords = {keyword_terminal(n): n for n, _ in cls.attr_specs()}
    return {"EXTRA_KEY", *keywords} | ({"RBRACE"} if first else set()), keywords


def _value_names(spec) -> tuple[set[str], dict[str, str]]:
    """What may start the value of an attribute declared by ``spec`` (like :func:`_attribute_names`)."""
    if spec.kind == "enum":
        keywords = {keyword_terminal(c): c for c in spec.choices}
        return set(keywords), keywords
    return _VALUE_START[spec.kind], {}


def _unknown_attribute(src: Source, cls, key: lark.Token, first: bool) -> NmcError:
    names, keywords = _attribute_names(cls, first)
    return _unexpected(src, str(key), describe(lark_parser(), names, keywords), key.line, key.column)


def _in_op_attributes(e: lark.exceptions.UnexpectedInput, names: set[str], src: Source):
    """Inside an op's attribute list, the grammar's generic ``NAME`` and value terminals in the op's
    own terms: ``(names, keywords)`` for :func:`describe`, or the error of an unknown attribute
    name before '='.  None elsewhere."""
    stack = getattr(getattr(e, "state", None), "value_stack", None) or []
    # the op's keyword, reduced to the (inlined) rule of its shape while its attributes are read
    kind = next((str(t.children[0]) for t in reversed(stack) if isinstance(t, lark.Tree) and t.data.startswith("_kind")), None)
    if kind is None or not isinstance(stack[-1], lark.Token):
        return None
    cls, top = OPS[kind], stack[-1]
    if top.type in ("LBRACE", "COMMA") and "NAME" in names:
        return _attribute_names(cls, first=top.type == "LBRACE")
    key = stack[-2] if len(stack) >= 2 else None
    if top.type == "EQUAL" and isinstance(key, lark.Token) and key.type == "NAME":
        spec = dict(cls.attr_specs()).get(str(key))
        if spec is None:
            return _unknown_attribute(src, cls, key, first=len(stack) >= 3 and getattr(stack[-3], "type", "") == "LBRACE")
        return _value_names(spec)
    return None


def _expected(e: lark.exceptions.UnexpectedInput, names: set[str], src: Source, parser: lark.Lark) -> list[str] | NmcError:
    context = _in_op_attributes(e, names, src)
    if isinstance(context, NmcError):
        return context
    return describe(parser, *context) if context else describe(parser, names)


def _syntax_error(e: lark.exceptions.UnexpectedInput, src: Source, parser: lark.Lark) -> NmcError:
    if isinstance(e, lark.exceptions.UnexpectedCharacters):
        line = src.line(e.line) or ""
        word = re.match(r"[A-Za-z0-9_.%@$<>-]+|.", line[e.column - 1 :])
        found = word.group(0) if word else line[e.column - 1 : e.column]
        expected = _expected(e, set(e.allowed), src, parser)
        if isinstance(expected, NmcError):
            return expected
        return _unexpected(src, found, expected, e.line, e.column)
    if isinstance(e, lark.exceptions.UnexpectedToken):
        expected = _expected(e, set(e.expected), src, parser)
        if isinstance(expected, NmcError):
            return expected
        tok = e.token
        history = getattr(e, "token_history", None) or []
        prev = history[-1] if history else None
        if tok.type == "$END" and prev is None and getattr(tok, "end_line", None):
            # lark gives no history at the end of input, but $END borrows the last token's span
            line = src.line(tok.end_line) or ""
            last = line[tok.column - 1 : tok.end_column - 1] if tok.line == tok.end_line else ""
            return src.error(f"expected {join_words(expected)} after '{last}'", tok.end_line, tok.end_column)
        if tok.type == "$END" or (prev is not None and tok.line is not None and prev.end_line is not None and tok.line > prev.end_line):
            if prev is not None:
                return src.error(f"expected {join_words(expected)} after '{prev}'", prev.end_line, prev.end_column)
            return src.error(f"expected {join_words(expected)}", 1, 1)
        return _unexpected(src, str(tok), expected, tok.line, tok.column)
    return src.error(str(e), getattr(e, "line", 1) or 1, getattr(e, "column", 1) or 1)


# ------------------------------------------------------------------------------ tree → graph


def _number(tok: lark.Token, src: Source, integer: bool = False) -> int | float:
    text = str(tok)
    is_int = re.fullmatch(r"[+-]?\d+", text) is not None
    if integer:
        if not is_int:
            raise src.at(tok, f"expected an integer, got '{text}'")
        return int(text)
    return int(text) if is_int else float(text)


def _string(tok: lark.Token, src: Source) -> str:
    """The value of a quoted string token (JSON escapes)."""
    try:
        return json.loads(str(tok))
    except ValueError as err:
        raise src.at(tok, f"malformed string {tok}: {err.msg}",
                     hint='strings use JSON escapes (\\n, \\", \\\\, \\uXXXX)') from None


def _scalar(node, src: Source):
    if isinstance(node, lark.Token):
        if node.type == "KW_TRUE":
            return True
        if node.type == "KW_FALSE":
            return False
        if node.type == "NUMBER":
            return _number(node, src)
        if node.type == "STRING":
            return _string(node, src)
    raise src.at(node.meta if isinstance(node, lark.Tree) else node, "expected a number")


class _Builder:
    def __init__(self, src: Source, sidecar):
        self.src = src
        self.sidecar = sidecar  # callable: name -> array or None
        self.values: dict[str, Value] = {}
        self.blob_decls: dict[str, lark.Tree] = {}
        self.blobs: dict[str, Blob] = {}
        self.pending: dict[str, tuple[Value, lark.Token]] = {}

    # -- types and blobs -----------------------------------------------------------------

    def type(self, tok: lark.Token):
        try:
            return parse_type(str(tok))
        except ValueError as err:
            raise self.src.at(tok, str(err)) from None

    def tensor_type(self, tok: lark.Token) -> TensorType:
        t = self.type(tok)
        if not isinstance(t, TensorType):
            raise self.src.at(tok, f"a blob needs a tensor type, got {t}")
        return t

    def blob_init(self, node: lark.Tree) -> Blob:
        t = self.tensor_type(node.children[-1])
        dtype = t.np_dtype
        value = node.children[1]  # after the keyword
        if node.data == "init_dense":
            try:
                return Blob(_dense_array(self._dense_value(value), t, dtype))
            except ValueError as err:
                raise self.src.at(node.meta, f"dense literal {err}") from None
        if node.data == "init_splat":
            splat = _scalar(value, self.src)
            return Blob(np.full(t.shape, splat, dtype=dtype), init=Splat(splat))
        if node.data == "init_random":
            dist, seed, scale = value, _after(node, "KW_SEED"), _after(node, "KW_SCALE")
            seed_v = _number(seed, self.src, integer=True) if seed is not None else 0
            scale_v = float(_number(scale, self.src)) if scale is not None else 1.0
            from nmc.hashrng import random_array  # numpy-bound: only for random blobs

            data = random_array(str(dist), seed_v, scale_v, t.shape, dtype)
            return Blob(data, init=Random(str(dist), seed_v, scale_v))
        try:
            raw = base64.b64decode(_string(value, self.src), validate=True)
        except ValueError as err:  # binascii.Error
            raise self.src.at(value, f"base64 blob is not valid base64 ({err})") from None
        want = int(np.prod(t.shape)) * dtype.itemsize
        if len(raw) != want:
            raise self.src.at(node.meta, f"base64 blob holds {len(raw)} bytes, the type {t} needs {want}")
        return Blob(np.frombuffer(raw, dtype=dtype.newbyteorder("<")).astype(dtype).reshape(t.shape))

    def _dense_value(self, node):
        if isinstance(node, lark.Tree) and node.data == "dense_list":
            return [self._dense_value(c) for c in node.children if c is not None]
        return _scalar(node, self.src)

    def blob_ref(self, node) -> Blob:
        if isinstance(node, lark.Tree):
            return self.blob_init(node)
        name = str(node)[1:]
        if name in self.blobs:
            return self.blobs[name]
        if name not in self.blob_decls:
            raise self.src.at(node, f"use of undeclared blob @{name}",
                              hint=f"declare it: blob @{name} : tensor<...>")
        decl = self.blob_decls[name]
        t = self.tensor_type(decl.children[2])
        data = self.sidecar(name)
        if data is None:
            raise self.src.at(decl.meta, f"blob @{name} has no contents",
                              hint=f"its data belongs in the sidecar '{self.src.filename}.npz'; "
                                   "or print the IR with --print-blobs to keep blobs inline")
        if data.shape != t.shape or data.dtype != t.np_dtype:
            raise self.src.at(decl.meta, f"blob @{name} in the sidecar is {data.dtype}{list(data.shape)}, the declaration says {t}")
        b = self.blobs[name] = Blob(data, name=name)
        return b

    # -- attributes ------------------------------------------------------------------------

    def attr_value(self, spec, node, key_tok):
        src = self.src
        if spec.kind == "int":
            return _number(node, src, integer=True)
        if spec.kind == "float":
            return float(_number(node, src))
        if spec.kind == "bool":
            return node.type == "KW_TRUE"
        if spec.kind == "str":
            return _string(node, src)
        if spec.kind == "enum":
            return str(node)
        if spec.kind in ("ints", "floats"):
            items = [c for c in node.children if c is not None]
            return tuple(_number(c, src, integer=spec.kind == "ints") for c in items)
        if spec.kind == "blob":
            return self.blob_ref(node)
        if spec.kind == "param":
            if isinstance(node, lark.Token) and node.type == "NUMBER":
                return _number(node, src)
            return self.blob_ref(node)
        raise src.at(key_tok, f"unsupported field kind {spec.kind}")

    def check_value(self, spec, node) -> None:
        """That ``node`` (an ``attr_value`` of the grammar) is a value of the kind ``spec`` declares,
        or the syntax error a grammar with that kind in place would give."""
        word = isinstance(node, lark.Token) and (node.type == "NAME" or node.type in _BLOB_START - {"BLOB_NAME"})
        if spec.kind == "enum":
            if word and str(node) in spec.choices:
                return
        elif word and node.type in _VALUE_START[spec.kind]:  # a blob keyword without its '<...>'
            raise self.src.error(f"expected '<' after '{node}'", node.end_line, node.end_column)
        elif not word and _value_start(node) in _VALUE_START[spec.kind]:
            return
        names, keywords = _value_names(spec)
        expected = describe(lark_parser(), names, keywords)
        if isinstance(node, lark.Tree):
            found = "[" if node.data == "number_list" else str(node.children[0])
            raise _unexpected(self.src, found, expected, node.meta.line, node.meta.column)
        raise _unexpected(self.src, str(node), expected, node.line, node.column)

    def generic_value(self, node):
        if isinstance(node, lark.Tree):
            if node.data == "value_list":
                return [self.generic_value(c) for c in node.children if c is not None]
            return self.blob_init(node)
        if node.type == "BLOB_NAME":
            return self.blob_ref(node)
        return _scalar(node, self.src)

    # -- ops -------------------------------------------------------------------------------

    def op(self, stmt: lark.Tree, graph: Graph) -> None:
        result_tok, op_node, loc_node = stmt.children
        kind_tok, *rest = op_node.children
        kind = str(kind_tok)
        cls = OPS[kind]
        parts = {c.data if isinstance(c, lark.Tree) else c.type: c for c in rest if c is not None}
        loc = self.loc(loc_node) if loc_node is not None else Loc(self.src.filename, stmt.meta.line, stmt.meta.column)
        here = stmt.meta
        if cls.HAS_RESULT and result_tok is None:
            raise self.src.at(here, f"'{kind}' has a result: write '%name = {kind}...'")
        if not cls.HAS_RESULT and result_tok is not None:
            raise self.src.at(result_tok, f"'{kind}' has no result to name")
        kwargs: dict[str, Any] = {}
        extra: dict[str, Any] = {}
        specs = dict(cls.attr_specs())
        attrs = parts.get("attrs")
        for i, entry in enumerate(attrs.children if attrs is not None else []):
            if entry is None:
                continue
            key_tok, value = entry.children
            key = str(key_tok)
            if key_tok.type == "NAME" and key not in specs:
                raise _unknown_attribute(self.src, cls, key_tok, first=i == 0)
            if key in kwargs or key in extra:
                raise self.src.at(key_tok, f"attribute '{key}' given twice")
            if key_tok.type == "EXTRA_KEY":
                extra[key] = self.generic_value(value)
            else:
                self.check_value(specs[key], value)
                kwargs[key] = self.attr_value(specs[key], value, key_tok)
        missing = [n for n, s in cls.attr_specs() if n not in kwargs and _required(cls, n)]
        if missing:
            raise self.src.at(here, f"'{kind}' op needs attribute{'s' if len(missing) > 1 else ''} "
                                    + ", ".join(f"'{m}'" for m in missing))
        self._bind_operands(cls, parts.get("args"), kwargs, kind, here)
        declared = self.type(parts["TYPE"]) if cls.HAS_RESULT else None
        try:
            op = cls(declared_type=declared, loc=loc, extra=extra, **kwargs)
            inferred = op.infer_type() if not self._has_forward_refs(op) else None
        except VerifyError as err:
            raise self.src.at(here, err.message, hint=err.hint) from None
        if inferred is not None:
            if inferred != declared:
                raise self.src.at(parts["TYPE"], f"result type {declared} does not match the type '{kind}' infers: {inferred}")
            op.declared_type = None
        if result_tok is not None:
            name = str(result_tok)[1:]
            if name in self.values:
                raise self.src.at(result_tok, f"redefinition of %{name}")
            op.result.name = name
            self.values[name] = op.result
        graph.ops.append(op)

    def _has_forward_refs(self, op: Op) -> bool:
        return any(v.owner is None for v in op.operands)

    def _bind_operands(self, cls, args, kwargs, kind, here):
        toks = [t for t in (args.children if args is not None else []) if t is not None]
        values = [self._lookup(t, cls) for t in toks]
        specs = cls.operand_specs()
        fixed = [n for n, s in specs if s.kind == "operand"]
        variadic = [n for n, s in specs if s.kind == "operands"]
        if len(values) < len(fixed) or (not variadic and len(values) != len(fixed)):
            want = f"at least {len(fixed)}" if variadic else str(len(fixed))
            raise self.src.at(here, f"'{kind}' takes {want} operand{'s' if want != '1' else ''}, got {len(values)}")
        for name, v in zip(fixed, values):
            kwargs[name] = v
        if variadic:
            kwargs[variadic[0]] = values[len(fixed) :]

    def _lookup(self, tok: lark.Token, cls) -> Value:
        name = str(tok)[1:]
        if name in self.values:
            return self.values[name]
        if not cls.FORWARD_REFS:
            raise self.src.at(tok, f"use of undefined value %{name}",
                              hint="values must be defined before use (only a population may name a later projection)")
        if name not in self.pending:
            self.pending[name] = (Value(None, name=name), tok)
        return self.pending[name][0]

    def resolve_forward_refs(self, graph: Graph) -> None:
        for name, (placeholder, tok) in self.pending.items():
            if name not in self.values:
                raise self.src.at(tok, f"use of undefined value %{name}")
            graph.replace_all_uses(placeholder, self.values[name])

    def loc(self, node: lark.Tree) -> Loc:
        if node.data == "loc_pos":
            _, f, line, col = node.children
            return Loc(_string(f, self.src), _number(line, self.src, True), _number(col, self.src, True))
        _, f, nodename, op_type = node.children
        return Loc(_string(f, self.src), node=_string(nodename, self.src),
                   op_type=_string(op_type, self.src) if op_type is not None else None)


def _value_start(node) -> str:
    """The terminal an attribute value begins with ('[' of a number list: ``LSQB``)."""
    if isinstance(node, lark.Tree):
        return "LSQB" if node.data == "number_list" else node.children[0].type
    return node.type


def _after(node: lark.Tree, keyword: str):
    """The child that follows the ``keyword`` token in ``node``, or None."""
    kids = node.children
    for i, c in enumerate(kids[:-1]):
        if isinstance(c, lark.Token) and c.type == keyword:
            return kids[i + 1]
    return None


def _required(cls, name: str) -> bool:
    f = cls.__dataclass_fields__[name]
    return f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING


# ------------------------------------------------------------------------------ entry points


def split_cases(text: str) -> list[str]:
    """Split at ``// -----`` lines.  Each case keeps the file's line numbers: the lines of the
    other cases are blanked, not removed."""
    lines = text.split("\n")
    bounds, start = [], 0
    for i, line in enumerate(lines):
        if line.strip() == CASE_SEPARATOR:
            bounds.append((start, i))
            start = i + 1
    bounds.append((start, len(lines)))
    if len(bounds) == 1:
        return [text]
    return ["\n".join(line if a <= i < b else "" for i, line in enumerate(lines)) for a, b in bounds]


def parse_ir(text: str, filename: str = "<string>", sidecar=None, verify: bool = True) -> Graph:
    """Parse one graph.  ``sidecar(name)`` returns the contents of a blob declared without
    them (or None); by default there is no sidecar.  The verifier runs unless ``verify=False``."""
    from nmc.limits import check_nesting

    check_nesting(text, filename)  # the parser recurses: a depth limit, not a RecursionError (issue 22)
    src = Source(text, filename)
    parser = lark_parser()
    try:
        tree = parser.parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise _syntax_error(e, src, parser) from None
    except _UnknownOperation as e:
        raise _unknown_operation_error(src, str(e.token), e.token.line, e.token.column) from None
    builder = _Builder(src, sidecar or (lambda name: None))
    header = tree.children[0]
    graph = Graph()
    if header is not None:
        _, name_tok, meta = header.children
        graph.name = str(name_tok)[1:]
        for entry in (meta.children if meta is not None else []):
            if entry is not None:
                key, value = entry.children
                graph.meta[str(key)] = builder.generic_value(value)
    items = tree.children[1:]
    for item in items:
        if item.data in ("blob_decl", "blob_def"):
            _, name_tok, body = item.children
            name = str(name_tok)[1:]
            if name in builder.blob_decls:
                raise src.at(name_tok, f"redefinition of blob @{name}")
            builder.blob_decls[name] = item
            if item.data == "blob_def":
                b = builder.blob_init(body)
                b.name = name
                builder.blobs[name] = b
    for item in items:
        if item.data == "op_stmt":
            builder.op(item, graph)
    builder.resolve_forward_refs(graph)
    if verify:
        from nmc.ir.verifier import verify as run_verifier

        try:
            run_verifier(graph)
        except VerifyError as err:
            if err.loc is not None and err.loc.file == filename and err.loc.line:
                err.source_line = src.line(err.loc.line)
            raise
    return graph


def parse_ir_cases(text: str, filename: str = "<string>", sidecar=None, verify: bool = True) -> list[Graph]:
    """Parse every ``// -----`` separated case of a file."""
    return [parse_ir(case, filename, sidecar, verify) for case in split_cases(text)]


def _dense_shape(body) -> tuple:
    """The shape of a nested list literal; ValueError naming the first ragged level."""
    if not isinstance(body, list):
        return ()
    shapes = {_dense_shape(b) for b in body}
    if len(shapes) > 1:
        raise ValueError(f"is ragged: its elements have shapes {' and '.join(str(list(x)) for x in sorted(shapes))}")
    return (len(body), *(shapes.pop() if shapes else ()))


def _dense_array(body, t: TensorType, dtype: np.dtype) -> np.ndarray:
    """The array a ``dense<...>`` literal spells for type ``t``; ValueError saying what is wrong
    (ragged, wrong shape, a non-integer or out-of-range value for an integer type)."""
    shape = _dense_shape(body)
    if shape != t.shape:
        raise ValueError(f"has shape {list(shape)}, the type {t} says {list(t.shape)}")
    flat = np.array(body, dtype=object).reshape(-1)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        for v in flat:
            if isinstance(v, str) or not np.isfinite(v) or float(v) != int(v) or not info.min <= int(v) <= info.max:
                raise ValueError(f"value {v} is not an {t.dtype} (integers {info.min}..{info.max})")
        return np.array([int(v) for v in flat], dtype=dtype).reshape(t.shape)
    if any(isinstance(v, str) for v in flat):
        raise ValueError(f"holds a string; a {t.dtype} tensor holds numbers")
    return np.array([float(v) for v in flat], dtype=np.float64).astype(dtype).reshape(t.shape)

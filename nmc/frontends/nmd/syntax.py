"""The ``.nmd`` syntax: the lark parser of ``nmd.lark`` and syntax errors in words."""

from __future__ import annotations

import os
from functools import cache

import lark

from nmc.diagnostics import NmcError
from nmc.ir.parser import Source, describe, join_words

_ARITHMETIC = {"+", "-", "*", "/"}
_CLOSERS = ("')'", "']'", "'}'")


@cache
def nmd_parser() -> lark.Lark:
    path = os.path.join(os.path.dirname(__file__), "nmd.lark")
    with open(path, encoding="utf-8") as f:
        return lark.Lark(f.read(), parser="lalr", propagate_positions=True, maybe_placeholders=True)


def syntax_error(e: lark.exceptions.UnexpectedInput, src: Source, parser: lark.Lark, text: str) -> NmcError:
    """A syntax error in words: what was found and what could have come instead.  A token
    missing at the end of a line is reported where it is missing, not at the next token."""

    def expected(names) -> str:
        names = set(names)
        plain = {n for n in names if not _is_arithmetic(parser, n)}
        words = describe(parser, plain or names)
        return join_words(sorted(words, key=lambda w: (w not in _CLOSERS, words.index(w))))

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

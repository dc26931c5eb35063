"""Locations and user-facing diagnostics.

A problem in the user's input is raised as :class:`NmcError`; the CLI prints it and exits 1
(or 2 for a misused command line).  Anything else that escapes is a bug in nmc (exit 70).

Rendered forms (docs/design.md §4)::

    net.nmd:12:3: error: expected ')' or ',' after argument
      conv(c=32
        ^
    model.onnx: node 'Conv_3' (Conv): error: unsupported auto_pad 'VALID_X'
      hint: ...
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loc:
    """Where an op or a diagnostic comes from: a text position or a named node of a model file.

    ``line``/``col`` are 1-based; ``node``/``op_type`` name a node of a graph file (ONNX, NIR).
    """

    file: str
    line: int = 0
    col: int = 0
    node: str | None = None
    op_type: str | None = None

    def __str__(self) -> str:
        if self.node is not None:
            kind = f" ({self.op_type})" if self.op_type else ""
            return f"{self.file}: node '{self.node}'{kind}"
        if self.line:
            return f"{self.file}:{self.line}:{self.col}"
        return self.file


class NmcError(Exception):
    """A problem with the user's input (exit 1) or command line (``exit_code=2``).

    ``source_line`` (the text of the offending line) is shown with a caret under ``loc.col``.
    """

    def __init__(
        self,
        message: str,
        loc: Loc | None = None,
        *,
        hint: str | None = None,
        notes: list[str] | None = None,
        source_line: str | None = None,
        exit_code: int = 1,
    ):
        super().__init__(message)
        self.message = message
        self.loc = loc
        self.hint = hint
        self.notes = list(notes or [])
        self.source_line = source_line
        self.exit_code = exit_code

    def render(self) -> str:
        head = f"{self.loc}: error: {self.message}" if self.loc else f"error: {self.message}"
        lines = [head]
        if self.source_line is not None and self.loc is not None and self.loc.col:
            text = self.source_line.rstrip("\n").expandtabs(1)
            lines.append(f"  {text}")
            lines.append("  " + " " * (self.loc.col - 1) + "^")
        lines.extend(f"  note: {n}" for n in self.notes)
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def __str__(self) -> str:
        return self.render()


class UsageError(NmcError):
    """A misused command line or API call: unknown pass, bad option (exit 2)."""

    def __init__(self, message: str, *, hint: str | None = None):
        super().__init__(message, hint=hint, exit_code=2)


def source_line_at(path: str, line: int) -> str | None:
    """The text of 1-based ``line`` of ``path``, or None when it cannot be read."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            for i, text in enumerate(f, 1):
                if i == line:
                    return text
    except OSError:
        return None
    return None

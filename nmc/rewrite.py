"""Local rewrites as tables of (pattern, rewrite) rules, applied to a fixed point (docs/design.md §4).

A :class:`Pattern` names the op kind it roots at and a function ``rewrite(op, graph, ctx)``
that either changes the graph around ``op`` and returns True, or leaves it untouched and
returns False.  :func:`apply_patterns` walks the ops in program order, again and again, until
a whole walk changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from nmc.ir.core import Graph, Op
from nmc.passmanager import Pass, PassContext

MAX_ITERATIONS = 64


@dataclass(frozen=True)
class Pattern:
    name: str
    root: str  # op kind, e.g. "ann.batchnorm"; "*" matches every op
    rewrite: Callable[[Op, Graph, PassContext], bool]


def apply_patterns(graph: Graph, patterns: Sequence[Pattern], ctx: PassContext) -> bool:
    """Apply ``patterns`` until none fires; returns whether anything changed.  Each firing
    counts in the running pass's statistics under the pattern's name."""
    by_kind: dict[str, list[Pattern]] = {}
    for p in patterns:
        by_kind.setdefault(p.root, []).append(p)
    changed_any = False
    with graph.tracked_uses():  # the patterns' users() queries cost their answers, not a scan
        for _ in range(MAX_ITERATIONS):
            changed = False
            for op in list(graph.ops):
                for p in by_kind.get(op.KIND, []) + by_kind.get("*", []):
                    if not graph.holds(op):
                        break
                    if p.rewrite(op, graph, ctx):
                        ctx.stat(p.name)
                        changed = True
            if not changed:
                return changed_any
            changed_any = True
    raise RuntimeError(f"rewrite patterns did not reach a fixed point in {MAX_ITERATIONS} walks")


class PatternPass(Pass):
    """A pass made of a table of patterns (subclasses set ``PATTERNS``)."""

    PATTERNS: ClassVar[tuple[Pattern, ...]] = ()

    def run(self, graph: Graph, ctx: PassContext) -> bool:
        return apply_patterns(graph, self.PATTERNS, ctx)

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
(docs/design.md §5), rounded to an integer for integer (``bits > 0``) populations.
"""

from __future__ import annotations

import os

import lark

from nmc.diagnostics import NmcError
from nmc.frontends.nmd.builder import Builder
from nmc.frontends.nmd.syntax import nmd_parser, syntax_error
from nmc.ir.core import Graph, VerifyError
from nmc.ir.parser import Source

__all__ = ["load_nmd", "parse_nmd"]


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
    from nmc.limits import check_nesting

    check_nesting(text, filename)  # the parser recurses: a depth limit, not a RecursionError (issue 22)
    src = Source(text, filename)
    parser = nmd_parser()
    try:
        tree = parser.parse(text)
    except lark.exceptions.UnexpectedInput as e:
        raise syntax_error(e, src, parser, text) from None
    graph = Builder(src, base_dir).build(tree)
    from nmc.ir.verifier import verify

    try:
        verify(graph)
    except VerifyError as err:
        if err.loc is not None and err.loc.file == filename:
            err.source_line = src.line(err.loc.line)
        raise
    return graph


"""The command line starts quickly: ``import nmc.cli`` (every ``nmc`` run, ``--version`` and
``--help`` included) leaves the heavy libraries and the pass library unimported; a command or a
pipeline imports what it uses; the IR grammar's lark tables, loaded by every ``nmc opt``, stay
small.  Checked on ``sys.modules`` in a fresh interpreter and on the grammar, not on the clock
(``benchmarks/startup.py`` measures the time)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

HEAVY = ("networkx", "scipy", "llvmlite", "onnx", "onnxruntime", "nir", "matplotlib", "tqdm", "sklearn")


def imported_after(code: str) -> set[str]:
    probe = f"{code}\nimport json, sys; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    return set(json.loads(out.splitlines()[-1]))


def heavy(modules: set[str]) -> set[str]:
    return {m for m in modules if m.split(".")[0] in HEAVY}


def test_import_nmc_cli_pulls_in_no_heavy_library():
    modules = imported_after("import nmc.cli")
    assert not heavy(modules)
    assert not {m for m in modules if m.startswith("nmc.passes.")}, "the pass library is imported per pipeline"


def loaded(modules: set[str], package: str) -> bool:
    """Whether ``package`` was executed, not merely set up for loading on first use
    (:func:`nmc.lazy.lazy_import` puts the bare name in ``sys.modules``)."""
    return any(m.startswith(package + ".") for m in modules)


def test_nmc_version_imports_neither_numpy_nor_the_ir():
    modules = imported_after("import contextlib, io; from nmc.cli import main\n"
                             "with contextlib.redirect_stdout(io.StringIO()):\n"
                             "    try:\n        main(['--version'])\n    except SystemExit:\n        pass")
    assert not {m for m in modules if m.split(".")[0] in ("numpy", "lark") or m.startswith("nmc.ir")}
    assert "dataclasses" not in modules, "nmc.diagnostics (dataclasses, inspect, ast...) is imported after --version"


def test_nmc_opt_imports_only_the_passes_it_runs():
    dce = Path(__file__).parent / "passes" / "dce.nmir"
    modules = imported_after("import contextlib, io; from nmc.cli import main\n"
                             "with contextlib.redirect_stdout(io.StringIO()):\n"
                             f"    assert main(['opt', {str(dce)!r}, '--split-input-file', '--passes=dce']) == 0")
    assert not heavy(modules)
    assert {m for m in modules if m.startswith("nmc.passes.")} == {"nmc.passes.canonicalize", "nmc.passes.fold_affine",
                                                                   "nmc.passes.channels"}  # canonicalize's patterns


def test_nmc_opt_on_a_graph_without_arrays_never_loads_numpy_nor_imports_other_commands(tmp_path):
    small = tmp_path / "small.nmir"
    small.write_text("graph @g\n%x = ann.input : tensor<4xf32>\n%r = ann.relu(%x) : tensor<4xf32>\n"
                     "%t = ann.tanh(%x) : tensor<4xf32>\nann.output(%r)\n")
    modules = imported_after("from nmc.cli import main\n"
                             f"assert main(['opt', {str(small)!r}, '--passes=dce', '-o', {str(tmp_path / 'out.nmir')!r}]) == 0")
    assert not loaded(modules, "numpy")
    assert not {"nmc.data", "zipfile"} & modules, "input data and blob sidecars are read on use"
    assert {m for m in modules if m.startswith("nmc.commands.")} == {"nmc.commands.opt"}
    assert "ann.tanh" not in (tmp_path / "out.nmir").read_text()


def test_ir_grammar_grows_with_op_kinds_not_with_their_attributes():
    """Lark's tables for the IR are loaded and its scanners compiled on every ``nmc opt``.  With a
    grammar rule and a keyword per attribute they had 1,108 LALR states and 130 terminals; with
    ``NAME = value`` checked against the op's declaration, 250 and 65.  No attribute name or enum
    choice is a terminal, and an op kind is a string that the lexer finds through the one
    ``OP_NAME`` regex (not a regex per kind)."""
    import lark

    from nmc.ir import OPS
    from nmc.ir.parser import lark_parser, keyword_terminal

    parser = lark_parser()
    terminals = {t.name for t in parser.terminals}
    attribute_words = {w for cls in OPS.values() for name, spec in cls.attr_specs() for w in (name, *spec.choices)}
    assert not {keyword_terminal(w) for w in attribute_words} & terminals - {
        "KW_SEED", "KW_SCALE", "KW_DENSE"}  # also keywords of blob literals: random<... seed=, scale=>, dense<...>
    assert all(isinstance(parser.get_terminal(keyword_terminal(k)).pattern, lark.lexer.PatternStr) for k in OPS)
    assert "OP_NAME" in terminals

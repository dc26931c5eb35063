"""The pass manager: pipelines, options, instruments, the verifier between passes, reproducers."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from nmc.cli import main
from nmc.diagnostics import UsageError
from nmc.ir.ann import Relu
from nmc.ir.parser import parse_ir
from nmc.ir.printer import print_graph
from nmc.passmanager import (
    PASSES,
    Instruments,
    Pass,
    PassContext,
    PassFailure,
    PassManager,
    Snapshot,
    format_pipeline,
    load_passes,
    parse_pipeline,
    pass_index,
    register_pass,
)
from nmc.ir.types import TensorType

GRAPH = """graph @g
%x = ann.input : tensor<4xf32>
%d = ann.dropout(%x) : tensor<4xf32>
%r = ann.relu(%d) : tensor<4xf32>
%i = ann.identity(%r) : tensor<4xf32>
ann.output(%i)
"""


@pytest.fixture
def test_passes():
    """Passes that exist only for these tests: one with typed options, two that break the IR."""
    added = []

    def add(name, cls):
        added.append(name)
        return register_pass(name)(cls)

    class Options(Pass):
        """Test pass with options of every type; changes nothing."""

        percentile: float = 99.9
        bits: int = 8
        mode: str = "rate"
        fast: bool = False
        steps: tuple[int, ...] = (4, 8)

        def run(self, graph, ctx):
            ctx.log.debug("running with %s", self)
            ctx.stat("visits")
            return False

    class BreakTypes(Pass):
        """Test pass that changes a relu's result type behind the verifier's back."""

        def run(self, graph, ctx):
            graph.walk("ann.relu")[0].result.type = TensorType((5,))
            return True

    class Crash(Pass):
        """Test pass that raises."""

        def run(self, graph, ctx):
            raise ZeroDivisionError("boom")

    add("test-options", Options)
    add("test-break-types", BreakTypes)
    add("test-crash", Crash)
    yield
    for name in added:
        PASSES.pop(name)


def test_pipeline_options_are_typed_and_print_canonically(test_passes):
    (p,) = parse_pipeline("test-options{percentile=99.5,bits=4,mode=poisson,fast=true,steps=[16,32]}")
    assert dataclasses.astuple(p) == (99.5, 4, "poisson", True, (16, 32))
    assert format_pipeline([p]) == "test-options{percentile=99.5,bits=4,mode=poisson,fast=true,steps=[16,32]}"
    # options equal to their defaults are left out of the canonical spelling
    assert format_pipeline(parse_pipeline("test-options{bits=8},dce")) == "test-options,dce"


@pytest.mark.parametrize("pipeline, message", [
    ("no-such-pass", "unknown pass 'no-such-pass'"),
    ("test-options{depth=3}", "unknown option 'depth' for pass 'test-options'"),
    ("test-options{bits=eight}", "bits"),
    ("dce{", "malformed pipeline"),
])
def test_bad_pipelines_are_usage_errors(test_passes, pipeline, message):
    with pytest.raises(UsageError) as err:
        parse_pipeline(pipeline)
    assert message in err.value.render()


def test_unknown_option_hint_lists_the_options(test_passes):
    with pytest.raises(UsageError) as err:
        parse_pipeline("test-options{depth=3}")
    assert "bits=<int>" in err.value.hint and "percentile=<float>" in err.value.hint


def test_print_ir_after_dumps_each_pass(tmp_path, capsys):
    path = tmp_path / "g.nmir"
    path.write_text(GRAPH)
    assert main(["opt", str(path), "--passes=drop-dropout,drop-identity", "--print-ir-after=all"]) == 0
    err = capsys.readouterr().err
    assert "// -----// IR Dump After drop-dropout //----- //" in err
    assert "// -----// IR Dump After drop-identity //----- //" in err
    first = err.split("// -----// IR Dump After drop-identity")[0]
    assert "ann.dropout" not in first and "ann.identity" in first


def test_print_ir_before_one_pass(tmp_path, capsys):
    path = tmp_path / "g.nmir"
    path.write_text(GRAPH)
    assert main(["opt", str(path), "--passes=drop-dropout,drop-identity", "--print-ir-before=drop-identity"]) == 0
    err = capsys.readouterr().err
    assert err.count("IR Dump Before") == 1 and "IR Dump Before drop-identity" in err


def test_time_passes_prints_a_table(tmp_path, capsys):
    path = tmp_path / "g.nmir"
    path.write_text(GRAPH)
    assert main(["opt", str(path), "--passes=canonicalize", "--time-passes"]) == 0
    out, err = capsys.readouterr()
    assert "Pass execution timing report" in err and "canonicalize" in err and "Total" in err
    assert out.startswith("graph @g")


def test_debug_only_shows_one_pass_log(test_passes, tmp_path, capsys):
    path = tmp_path / "g.nmir"
    path.write_text(GRAPH)
    assert main(["opt", str(path), "--passes=test-options,canonicalize", "--debug-only=test-options"]) == 0
    err = capsys.readouterr().err
    assert "[nmc.pass.test-options] running with test-options" in err
    assert "nmc.pass.canonicalize" not in err


def test_verifier_after_each_pass_catches_a_broken_pass_and_writes_a_reproducer(test_passes, tmp_path, capsys):
    path, repro = tmp_path / "g.nmir", tmp_path / "repro.nmir"
    path.write_text(GRAPH)
    assert main(["opt", str(path), "--passes=drop-dropout,test-break-types", "--reproducer", str(repro)]) == 70
    err = capsys.readouterr().err
    assert "pass 'test-break-types' failed" in err and str(repro) in err
    text = repro.read_text()
    # the reproducer holds the IR before the failing pass (after drop-dropout) and that pass only
    assert text.startswith("// nmc-reproducer: pipeline=test-break-types\n")
    assert "ann.dropout" not in text and "ann.relu" in text
    assert main(["opt", str(repro), "--run-reproducer"]) == 70
    assert "pass 'test-break-types' failed" in capsys.readouterr().err


def test_reproducer_snapshot_prints_the_graph_before_the_pass(test_passes):
    """The pass manager's cheap snapshot prints what a clone taken before the pass prints,
    whatever the pass did to the graph in place (types, fields, op list, meta)."""
    graph = parse_ir(GRAPH)
    graph.meta["timesteps"] = 4
    want = print_graph(graph.clone(), print_blobs=True)
    snapshot = Snapshot(graph)
    PassManager("drop-dropout,test-break-types", PassContext(verify=False)).run(graph)
    graph.ops[0].extra["note"] = "changed"
    graph.walk("ann.relu")[0].operands.clear()
    graph.meta["timesteps"] = 9
    assert print_graph(graph, print_blobs=True) != want
    assert snapshot.text() == want


def test_reproducer_snapshot_of_a_mapped_graph():
    """... and of a mapped graph (hw ops with many slices), after placement changed its cores."""
    from test_emulator import CHIP, random_graph

    graph, _ = random_graph(3)
    PassManager("partition", PassContext(target=CHIP)).run(graph)
    want = print_graph(graph.clone(), print_blobs=True)
    snapshot = Snapshot(graph)
    PassManager("place{seed=0,iterations=50},route", PassContext(target=CHIP)).run(graph)
    assert print_graph(graph, print_blobs=True) != want
    assert snapshot.text() == want


def test_no_verify_skips_the_verifier(test_passes):
    graph = parse_ir(GRAPH)
    PassManager("test-break-types", PassContext(verify=False)).run(graph)
    with pytest.raises(PassFailure, match="test-break-types"):
        PassManager("test-break-types", PassContext(instruments=Instruments(reproducer=None))).run(parse_ir(GRAPH))


def test_a_crashing_pass_is_an_internal_error(test_passes, tmp_path, capsys):
    path = tmp_path / "g.nmir"
    path.write_text(GRAPH)
    assert main(["opt", str(path), "--passes=test-crash", "--reproducer", str(tmp_path / "r.nmir")]) == 70
    err = capsys.readouterr().err
    assert "ZeroDivisionError: boom" in err and "Traceback" not in err


def test_statistics_accumulate_per_pass(test_passes):
    ctx = PassContext()
    PassManager("test-options,test-options,drop-dropout", ctx).run(parse_ir(GRAPH))
    assert ctx.stats["test-options"]["visits"] == 2
    assert ctx.stats["drop-dropout"]["dropouts-removed"] == 1


def test_the_pass_index_names_each_library_pass_and_its_module():
    # The index (PASS_MODULES and the chip classes' pass_modules) lets a pipeline import only the
    # modules it needs; it must match what those modules register (run in a fresh interpreter:
    # this one has test passes too)
    import json
    import subprocess
    import sys

    code = ("import json; from nmc.passmanager import load_passes; "
            "print(json.dumps({n: c.__module__ for n, c in load_passes().items()}))")
    registered = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                                           check=True).stdout)
    assert registered == pass_index()


def test_every_registered_pass_has_a_filecheck_file():
    # tests/passes/<name>.nmir for each pass of the library and of the shipped chip classes (a
    # FileCheck test of its output)
    passes_dir = Path(__file__).parent / "passes"
    missing = [name for name in sorted(load_passes()) if name in pass_index()
               and not (passes_dir / f"{name}.nmir").is_file()]
    assert not missing, f"passes without tests/passes/<name>.nmir: {missing}"


def test_every_pass_has_a_contract_docstring():
    for name, cls in load_passes().items():
        assert len((cls.__doc__ or "").split()) >= 5, name


def test_canonicalize_keeps_the_outputs(tmp_path):
    graph = parse_ir(GRAPH)
    before = print_graph(graph)
    PassManager("canonicalize").run(graph)
    assert [type(op) for op in graph.ops[1:-1]] == [Relu]
    assert before != print_graph(graph)

"""The ``nmc`` command line: exit codes, diagnostics, help, and the files it writes."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from nmc.cli import build_parser, main
from nmc.commands import COMMANDS

GOOD = """graph @mlp
%x = ann.input : tensor<4xf32>
%h = ann.dense(%x) {bias = splat<0.5> : tensor<3xf32>, weight = dense<[[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]]> : tensor<3x4xf32>} : tensor<3xf32>
%r = ann.relu(%h) : tensor<3xf32>
ann.output(%r)
"""


@pytest.fixture
def good(tmp_path):
    path = tmp_path / "good.nmir"
    path.write_text(GOOD)
    return path


def nmc_subprocess(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "nmc", *map(str, args)], capture_output=True, text=True, cwd=cwd)


def test_version():
    proc = nmc_subprocess("--version")
    assert proc.returncode == 0
    assert proc.stdout.startswith("nmc 0.")


@pytest.mark.parametrize("command", list(COMMANDS))
def test_every_subcommand_has_help(command, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main([command, "--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert f"usage: nmc {command}" in out
    assert "examples:" in out


def test_syntax_error_reports_file_line_col_and_exits_1(tmp_path, capsys):
    bad = tmp_path / "bad.nmir"
    bad.write_text("%x = ann.input : tensor<4xf32>\n%y = ann.relu(%x) : tensor<4xf32\nann.output(%y)\n")
    assert main(["opt", str(bad)]) == 1
    err = capsys.readouterr().err
    first = err.splitlines()[0]
    assert first.startswith(f"{bad}:2:")
    assert ": error: " in first
    assert "^" in err.splitlines()[2]
    assert "Traceback" not in err


def test_unknown_pass_exits_2_and_lists_valid_ones(good):
    proc = nmc_subprocess("opt", good, "--passes=fold-everything")
    assert proc.returncode == 2
    assert "unknown pass 'fold-everything'" in proc.stderr
    assert "valid passes:" in proc.stderr and "dce" in proc.stderr


def test_unknown_option_exits_2_and_lists_options(good, capsys):
    assert main(["opt", str(good), "--passes=dce{aggressive=true}"]) == 2
    err = capsys.readouterr().err
    assert "unknown option 'aggressive' for pass 'dce'" in err


def test_misused_command_line_exits_2(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["opt"])
    assert exit_info.value.code == 2


def test_missing_input_file_exits_1(tmp_path, capsys):
    assert main(["opt", str(tmp_path / "nope.nmir")]) == 1
    assert "cannot read" in capsys.readouterr().err


def _crashing_run(args):
    raise ZeroDivisionError("boom")


def test_internal_error_exits_70_without_traceback(monkeypatch, good, capsys):
    monkeypatch.setattr("nmc.commands.opt.run", _crashing_run)
    assert main(["opt", str(good)]) == 70
    err = capsys.readouterr().err
    assert "internal error: ZeroDivisionError: boom" in err
    assert "Traceback" not in err and "report" in err


def test_internal_error_shows_traceback_with_verbose(monkeypatch, good, capsys):
    monkeypatch.setattr("nmc.commands.opt.run", _crashing_run)
    assert main(["opt", str(good), "-v"]) == 70
    assert "Traceback" in capsys.readouterr().err


def test_opt_writes_output_and_sidecar_atomically(tmp_path, good):
    out = tmp_path / "out.nmir"
    big = GOOD.replace("splat<0.5> : tensor<3xf32>", "random<normal, seed = 3, scale = 1.0> : tensor<3xf32>")
    good.write_text(big)
    assert main(["opt", str(good), "-o", str(out)]) == 0
    assert out.read_text().startswith("graph @mlp")
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".nmc-")] == []


def test_failed_run_leaves_no_output(tmp_path, good, capsys):
    out = tmp_path / "out.npy"
    x = tmp_path / "x.npy"
    np.save(x, np.zeros((2, 5), np.float32))  # wrong per-sample shape
    assert main(["run", str(good), "--input", str(x), "-o", str(out)]) == 1
    assert not out.exists()
    assert "expected [samples, 4]" in capsys.readouterr().err


def test_run_reference_writes_outputs_and_report(tmp_path, good):
    x = np.random.default_rng(0).random((5, 4), dtype=np.float32)
    np.savez(tmp_path / "data.npz", x=x, y=np.zeros(5, np.int64))
    out, report = tmp_path / "out.npy", tmp_path / "r.json"
    assert main(["run", str(good), "--input", str(tmp_path / "data.npz"), "-o", str(out), "--report", str(report)]) == 0
    w = np.array([[1.0, -1.0, 0.5, 0.0], [0.0, 2.0, -1.0, 1.0], [1.0, 1.0, 1.0, 1.0]], np.float32)
    np.testing.assert_allclose(np.load(out), np.maximum(x @ w.T + 0.5, 0), rtol=1e-6)
    r = json.loads(report.read_text())
    for key in ("backend", "samples", "timesteps", "compile_s", "run_s", "spikes", "synaptic_ops"):
        assert key in r
    assert r["backend"] == "reference" and r["samples"] == 5


def test_every_command_is_in_the_parser():
    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)

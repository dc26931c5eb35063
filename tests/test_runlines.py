"""The in-process runner of FileCheck RUN lines (tests/runlines.py, used by conftest.py)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
from runlines import Unsupported, parse_run_line, run_lines, run_stages, substitute, tokenize

from nmc import passmanager

TESTS = Path(__file__).parent


def shipped_run_lines():
    for path in sorted(TESTS.rglob("*.nmir")):
        for cmd in run_lines(path.read_text(encoding="utf-8")):
            yield path, cmd


def test_every_shipped_run_line_runs_in_process(tmp_path):
    # the bash fallback is for RUN lines under development: no shipped test may need it
    lines = list(shipped_run_lines())
    assert len(lines) > 40
    for path, cmd in lines:
        try:
            parse_run_line(substitute(cmd, path, tmp_path))
        except Unsupported as why:
            pytest.fail(f"{path.name}: RUN line not understood by tests/runlines.py ({why}): {cmd}")


def test_words_quotes_and_redirections():
    assert tokenize("""nmc opt a.nmir --passes='p{x=1,y=2}' --b="c d" 2>&1|filecheck x<in""") == [
        ("word", "nmc"), ("word", "opt"), ("word", "a.nmir"), ("word", "--passes=p{x=1,y=2}"),
        ("word", "--b=c d"), ("op", "2>&1"), ("op", "|"), ("word", "filecheck"), ("word", "x"),
        ("op", "<"), ("word", "in")]
    first, second = parse_run_line("not nmc opt f 2>/dev/null > o | filecheck f --check-prefix=A < e")
    assert (first.negate, first.argv, first.stdout, first.stderr) == (True, ["nmc", "opt", "f"], "o", "/dev/null")
    assert (second.argv, second.stdin, second.stdout) == (["filecheck", "f", "--check-prefix=A"], "e", "out")
    # left to right, as bash applies them: 2>&1 before > F sends errors to the pipe
    (stage, _) = parse_run_line("nmc x 2>&1 > f | filecheck y")
    assert (stage.stdout, stage.stderr) == ("f", "pipe")


@pytest.mark.parametrize("line", [
    "nmc opt $HOME/x", "nmc opt `x`", "nmc a; nmc b", "nmc a && nmc b", "nmc a || nmc b",
    "nmc opt *.nmir", "nmc opt x >> f", "nmc opt 'x", "sed s/a/b/ x", "python x.py", "cmp a",
    "nmc opt --passes=a{b,c}", "nmc opt x 2>&2", 'nmc opt "$x"', "nmc x | ", ">f",
])
def test_forms_it_does_not_run_are_refused(line):
    with pytest.raises(Unsupported):
        parse_run_line(line)


NMIR = """graph @g
%x = ann.input : tensor<4xf32>
%r = ann.relu(%x) : tensor<4xf32>
ann.output(%r)
"""


def run(line: str, tmp_path: Path):
    return run_stages(parse_run_line(line), str(tmp_path))


def test_exit_statuses_not_and_pipefail(tmp_path):
    (tmp_path / "g.nmir").write_text(NMIR + "// CHECK: ann.relu\n// NO: ann.sigmoid\n// ERR: error: unknown pass\n")
    assert run("nmc opt g.nmir | filecheck g.nmir", tmp_path).returncode == 0
    assert run("nmc opt g.nmir | filecheck g.nmir --check-prefix=NO", tmp_path).returncode == 1
    # `not`: exit 1 or 2 passes; success or a crash (70) fails
    assert run("not nmc opt g.nmir --passes=nope 2>&1 | filecheck g.nmir --check-prefix=ERR", tmp_path).returncode == 0
    assert run("not nmc opt g.nmir 2>&1 | filecheck g.nmir", tmp_path).returncode == 1
    assert run("not nmc opt --no-such-flag", tmp_path).returncode == 0  # argparse: exit 2
    assert run("not python -c 'raise SystemExit(70)'", tmp_path).returncode == 1
    # pipefail: a failing first stage fails the line although the last stage succeeds
    assert run("nmc opt g.nmir --passes=nope | python -c 'pass'", tmp_path).returncode == 2
    assert run("python -c 'import sys; sys.exit(3)' | nmc opt g.nmir | filecheck g.nmir", tmp_path).returncode == 3
    # files: > and 2> write, < reads, cmp compares
    assert run("nmc opt g.nmir --passes=nope 2> e > o", tmp_path).returncode == 2
    assert (tmp_path / "o").read_text() == "" and "unknown pass" in (tmp_path / "e").read_text()
    assert run("filecheck g.nmir --check-prefix=ERR < e", tmp_path).returncode == 0
    assert run("nmc opt g.nmir > a", tmp_path).returncode == 0
    assert run("nmc opt - < g.nmir > b", tmp_path).returncode == 0
    assert run("cmp a b", tmp_path).returncode == 0
    assert run("cmp a e", tmp_path).returncode == 1
    assert run("cmp a missing", tmp_path).returncode == 2
    failed = run("nmc opt g.nmir --passes=nope", tmp_path)
    assert failed.returncode == 2 and "error: unknown pass 'nope'" in failed.stderr


def test_global_state_does_not_leak_between_lines(tmp_path):
    cwd, env = os.getcwd(), dict(os.environ)
    level = logging.getLogger("nmc.pass").level
    code = ("import os, logging; os.environ['NMC_NO_CACHE'] = '1'; os.chdir('/'); "
            "logging.getLogger('nmc.pass').setLevel(logging.CRITICAL); "
            "from nmc.passmanager import Pass, register_pass; "
            "register_pass('leaky')(type('Leaky', (Pass,), {'__doc__': 'a pass that should not outlive its line'}))")
    assert run(f'python -c "{code}"', tmp_path).returncode == 0
    assert os.getcwd() == cwd and dict(os.environ) == env
    assert "leaky" not in passmanager.PASSES
    assert logging.getLogger("nmc.pass").level == level
    # the line ran in the file's folder
    assert run("python -c \"import os; open('here', 'w').write(os.getcwd())\"", tmp_path).returncode == 0
    assert (tmp_path / "here").read_text() == str(tmp_path)

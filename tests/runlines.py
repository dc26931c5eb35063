"""Runs the ``// RUN:`` lines of FileCheck tests in this process (the collector is in conftest.py).

A RUN line is a small shell pipeline.  The forms the tests use are understood here and run
without a shell or a new interpreter:

* commands ``nmc ARGS`` (:func:`nmc.cli.main`), ``filecheck ARGS`` (the ``filecheck`` package's
  ``main``), ``python -c CODE`` and ``cmp A B``;
* ``not CMD`` (succeeds when CMD exits 1 or 2, as ``lit``'s ``not`` does), ``A | B`` with
  ``pipefail`` (the line fails with the last failing stage's status), redirections ``< F``,
  ``> F``, ``2> F`` and ``2>&1`` (left to right, as bash applies them);
* words quoted with ``'...'`` or ``"..."`` (bash's rules, without expansions).

Anything else (``$``, backquotes, ``;``, ``&&``, globs, other commands...) is not understood:
:func:`parse_run_line` raises :class:`Unsupported` and the collector falls back to bash — and
``tests/test_runlines.py`` fails if a shipped test ever needs that fallback.

Each RUN line runs with the process's global state saved and restored around it: the
environment, the working directory, ``sys.argv``/stdin/stdout/stderr, the pass registry (entries
a line registers beyond the pass library's), logging of the ``nmc`` loggers, warning filters and
numpy's global random state.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
import subprocess
import sys
import traceback
import warnings
from dataclasses import dataclass, field

COMMANDS = ("nmc", "filecheck", "python", "cmp")

_RUN = re.compile(r"^\s*//\s*RUN:\s?(.*)$")
_NOT = 'not() { "$@"; local rc=$?; [ $rc -eq 1 ] || [ $rc -eq 2 ]; }'


def run_lines(text: str) -> list[str]:
    """The RUN lines of a test file, continuation lines (ending in ``\\``) joined."""
    lines, pending = [], ""
    for line in text.splitlines():
        m = _RUN.match(line)
        if not m:
            continue
        body = m.group(1)
        if body.rstrip().endswith("\\"):
            pending += body.rstrip()[:-1] + " "
            continue
        lines.append(pending + body)
        pending = ""
    return lines


def substitute(cmd: str, path, tmp) -> str:
    """``%s``: the test file, ``%S``: its folder, ``%t``: a temporary path."""
    return cmd.replace("%s", str(path)).replace("%S", str(path.parent)).replace("%t", str(tmp / "t"))


def run_in_bash(script: str, cwd) -> subprocess.CompletedProcess:
    """The fallback for RUN lines the in-process runner does not understand."""
    env = dict(os.environ)
    env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
    return subprocess.run(["bash", "-c", f"set -o pipefail; {_NOT}; {script}"],
                          capture_output=True, text=True, env=env, cwd=cwd)




class Unsupported(Exception):
    """A RUN line this runner does not understand (the collector runs it in bash instead)."""


# ------------------------------------------------------------------------------- parsing

_OPERATORS = ("2>&1", "2>", "|", "<", ">")
_UNQUOTED_SPECIAL = set("$`;&()*?[]{}~!#\\")
_DQ_SPECIAL = set("$`!")


def tokenize(line: str) -> list[tuple[str, str]]:
    """``("word", text)`` and ``("op", operator)`` tokens of a RUN line."""
    tokens: list[tuple[str, str]] = []
    word: list[str] | None = None  # None: between words
    i, n = 0, len(line)

    def end_word():
        nonlocal word
        if word is not None:
            tokens.append(("word", "".join(word)))
            word = None

    while i < n:
        c = line[i]
        if c in " \t":
            end_word()
            i += 1
        elif c == "'":
            j = line.find("'", i + 1)
            if j < 0:
                raise Unsupported("unterminated single quote")
            word = (word or []) + [line[i + 1:j]]
            i = j + 1
        elif c == '"':
            i += 1
            part = []
            while i < n and line[i] != '"':
                if line[i] in _DQ_SPECIAL:
                    raise Unsupported(f"{line[i]!r} inside double quotes")
                if line[i] == "\\" and i + 1 < n and line[i + 1] in '"\\\n':
                    i += 1
                elif line[i] == "\\":
                    raise Unsupported("backslash inside double quotes")
                part.append(line[i])
                i += 1
            if i >= n:
                raise Unsupported("unterminated double quote")
            word = (word or []) + part
            i += 1
        elif word is None and any(line.startswith(op, i) for op in _OPERATORS):
            op = next(op for op in _OPERATORS if line.startswith(op, i))
            if op == "|" and line.startswith("||", i) or op == ">" and line.startswith(">>", i) \
                    or op in (">", "2>") and line.startswith(op + "&", i) and op != "2>&1" \
                    or op == "2>" and line.startswith("2>>", i):
                raise Unsupported(f"operator at {line[i:i + 3]!r}")
            tokens.append(("op", op))
            i += len(op)
        elif c in "|<>":
            end_word()  # an operator right after a word (`a|b`, `x>f`): same as with a space
        elif c in _UNQUOTED_SPECIAL:
            raise Unsupported(f"unquoted {c!r}")
        else:
            word = (word or []) + [c]
            i += 1
    end_word()
    return tokens


@dataclass
class Stage:
    """One command of a pipeline: its words, whether ``not`` inverts it, and where its streams
    go: ``"pipe"`` (the next stage), ``"out"``/``"err"`` (the line's captured output, shown on
    failure) or a file path."""

    argv: list[str]
    negate: bool = False
    stdin: str | None = None  # a file path; None: the previous stage's output (or nothing)
    stdout: str = "out"
    stderr: str = "err"
    redirects: list[tuple[str, str]] = field(default_factory=list)


def parse_run_line(line: str) -> list[Stage]:
    """The stages of a RUN line (after ``%s``/``%S``/``%t`` substitution); :class:`Unsupported`
    for forms this runner does not run in-process."""
    tokens = tokenize(line)
    if not tokens:
        raise Unsupported("empty RUN line")
    groups: list[list[tuple[str, str]]] = [[]]
    for tok in tokens:
        if tok == ("op", "|"):
            groups.append([])
        else:
            groups[-1].append(tok)
    stages = []
    for k, group in enumerate(groups):
        last = k == len(groups) - 1
        stage = Stage(argv=[], stdout="out" if last else "pipe")
        i = 0
        while i < len(group):
            kind, text = group[i]
            if kind == "word":
                stage.argv.append(text)
                i += 1
                continue
            if text == "2>&1":
                stage.stderr = stage.stdout
                i += 1
                continue
            if i + 1 >= len(group) or group[i + 1][0] != "word":
                raise Unsupported(f"{text} without a file name")
            target = group[i + 1][1]
            if text == "<":
                stage.stdin = target
            elif text == ">":
                stage.stdout = target
            else:  # 2>
                stage.stderr = target
            stage.redirects.append((text, target))
            i += 2
        if stage.argv[:1] == ["not"]:
            stage.negate = True
            stage.argv = stage.argv[1:]
        if not stage.argv:
            raise Unsupported("a pipeline stage without a command")
        if stage.argv[0] not in COMMANDS:
            raise Unsupported(f"command {stage.argv[0]!r}")
        if stage.argv[0] == "python" and stage.argv[1:2] != ["-c"]:
            raise Unsupported("python without -c")
        if stage.argv[0] == "cmp" and len(stage.argv) != 3:
            raise Unsupported("cmp takes exactly two files")
        stages.append(stage)
    return stages


# ------------------------------------------------------------------------------- running


@dataclass
class Result:
    returncode: int
    stdout: str
    stderr: str


def run_stages(stages: list[Stage], cwd: str) -> Result:
    """Run a parsed RUN line in this process; stages run one after another, each reading the
    whole output of the one before (as a pipe would deliver it)."""
    captured = {"out": io.StringIO(), "err": io.StringIO()}
    status = 0
    piped = ""
    with isolated_state(cwd):
        for stage in stages:
            stdin_text = piped
            if stage.stdin is not None:
                try:
                    with open(stage.stdin, encoding="utf-8") as f:
                        stdin_text = f.read()
                except OSError as err:
                    captured["err"].write(f"bash: {stage.stdin}: {err.strerror}\n")
                    piped, status = "", 1
                    continue
            pipe = io.StringIO()
            files: dict[str, io.StringIO] = {}
            for op, target in stage.redirects:  # bash opens (and truncates) these first
                if op in (">", "2>"):
                    files.setdefault(target, io.StringIO())

            def stream(where: str) -> io.StringIO:
                if where == "pipe":
                    return pipe
                return captured[where] if where in captured else files[where]

            rc = run_command(stage.argv, stdin_text, stream(stage.stdout), stream(stage.stderr))
            for target, buf in files.items():
                with open(target, "w", encoding="utf-8") as f:
                    f.write(buf.getvalue())
            if stage.negate:
                rc = 0 if rc in (1, 2) else 1
            if rc != 0:
                status = rc  # pipefail: the last stage that failed decides
            piped = pipe.getvalue()
    return Result(status, captured["out"].getvalue(), captured["err"].getvalue())


def _exit_code(err: SystemExit, stderr) -> int:
    if err.code is None:
        return 0
    if isinstance(err.code, int):
        return err.code & 0xFF
    print(err.code, file=stderr)
    return 1


def run_command(argv: list[str], stdin_text: str, stdout, stderr) -> int:
    """Run one command in-process with the given streams; returns its exit status."""
    saved_stdin, sys.stdin = sys.stdin, io.StringIO(stdin_text)
    try:
        with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
            try:
                return _COMMANDS[argv[0]](argv)
            except SystemExit as err:
                return _exit_code(err, stderr)
            except Exception:  # an uncaught exception: Python prints it and exits with 1
                traceback.print_exc(file=stderr)
                return 1
    finally:
        sys.stdin = saved_stdin


def _nmc(argv: list[str]) -> int:
    from nmc.cli import main

    sys.argv = list(argv)
    return main(list(argv[1:]))


def _filecheck(argv: list[str]) -> int:
    from filecheck.main import main

    sys.argv = list(argv)
    main(list(argv))  # exits through SystemExit with its status
    return 0


def _python(argv: list[str]) -> int:
    code = argv[2]
    sys.argv = ["-c", *argv[3:]]
    exec(compile(code, "<string>", "exec"), {"__name__": "__main__", "__builtins__": __builtins__})
    return 0


def _cmp(argv: list[str]) -> int:
    a, b = argv[1], argv[2]
    try:
        with open(a, "rb") as f:
            da = f.read()
        with open(b, "rb") as f:
            db = f.read()
    except OSError as err:
        print(f"cmp: {err.filename}: {err.strerror}", file=sys.stderr)
        return 2
    if da == db:
        return 0
    common = next((i for i, (x, y) in enumerate(zip(da, db)) if x != y), min(len(da), len(db)))
    if common == min(len(da), len(db)) and len(da) != len(db):
        print(f"cmp: EOF on {a if len(da) < len(db) else b}", file=sys.stderr)
    else:
        line = da[:common].count(b"\n") + 1
        print(f"{a} {b} differ: byte {common + 1}, line {line}")
    return 1


_COMMANDS = {"nmc": _nmc, "filecheck": _filecheck, "python": _python, "cmp": _cmp}


@contextlib.contextmanager
def isolated_state(cwd: str):
    """Save the global state a command may change and restore it afterwards."""
    import numpy as np

    from nmc import passmanager

    environ = dict(os.environ)
    old_cwd = os.getcwd()
    argv = sys.argv[:]
    streams = sys.stdin, sys.stdout, sys.stderr
    passes = dict(passmanager.PASSES)
    loggers = {name: (lg.level, lg.handlers[:], lg.propagate, lg.disabled)
               for name, lg in [("", logging.getLogger())] + [
                   (n, logging.getLogger(n)) for n in list(logging.root.manager.loggerDict) if n.startswith("nmc")]}
    rng = np.random.get_state()
    os.chdir(cwd)
    try:
        with warnings.catch_warnings():
            yield
    finally:
        os.chdir(old_cwd)
        os.environ.clear()
        os.environ.update(environ)
        sys.argv = argv
        sys.stdin, sys.stdout, sys.stderr = streams
        library = set(passmanager.pass_index())
        for name in list(passmanager.PASSES):
            if name not in passes and name not in library:  # a line's own pass; library passes stay loaded
                del passmanager.PASSES[name]
        passmanager.PASSES.update(passes)
        for name in list(logging.root.manager.loggerDict):
            if name.startswith("nmc") and name not in loggers:
                loggers[name] = (logging.NOTSET, [], True, False)
        for name, (level, handlers, propagate, disabled) in loggers.items():
            lg = logging.getLogger(name)
            lg.setLevel(level)
            lg.handlers[:] = handlers
            lg.propagate, lg.disabled = propagate, disabled
        np.random.set_state(rng)

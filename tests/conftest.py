"""Shared test setup: the FileCheck collector for ``tests/**/*.nmir`` (docs/design.md §4).

Every ``.nmir`` file under tests/ with ``// RUN:`` lines is one test.  Each RUN line is a bash
pipeline with ``set -o pipefail``, after substituting ``%s`` (this file), ``%S`` (its folder) and
``%t`` (a temporary path), run in the file's folder; ``nmc`` and ``filecheck`` are this
environment's, and ``not CMD`` succeeds when CMD fails without crashing (exit 1 or 2, as
``lit``'s ``not`` does).  A RUN line ending in ``\\`` continues on the next.

The lines run in this process (``tests/runlines.py``: ``nmc.cli.main`` and filecheck's ``main``
with captured streams, global state restored after each line); a line of a form the in-process
runner does not understand runs in bash, with a warning — and ``tests/test_runlines.py`` fails
if a shipped test has such a line.

The CPU runtime's object cache goes to a temporary folder for the session, never the user's.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings

import pytest

from runlines import Unsupported, parse_run_line, run_in_bash, run_lines, run_stages, substitute


class SubprocessFallbackWarning(UserWarning):
    """A RUN line ran in bash: the in-process runner (tests/runlines.py) does not understand it."""


def pytest_configure(config):
    config._nmc_cache = os.environ["NMC_CACHE_DIR"] = tempfile.mkdtemp(prefix="nmc-test-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_nmc_cache", ""), ignore_errors=True)


class FileCheckItem(pytest.Item):
    def __init__(self, *, commands: list[str], **kwargs):
        super().__init__(**kwargs)
        self.commands = commands

    def runtest(self):
        tmp = self.config._tmp_path_factory.mktemp(self.path.stem)
        for cmd in self.commands:
            script = substitute(cmd, self.path, tmp)
            try:
                stages = parse_run_line(script)
            except Unsupported as why:
                warnings.warn(SubprocessFallbackWarning(f"{self.path.name}: RUN line runs in bash ({why}): {cmd}"))
                proc = run_in_bash(script, self.path.parent)
            else:
                proc = run_stages(stages, str(self.path.parent))
            if proc.returncode != 0:
                raise FileCheckFailure(cmd, proc)

    def repr_failure(self, excinfo):
        if isinstance(excinfo.value, FileCheckFailure):
            e = excinfo.value
            return (f"RUN: {e.cmd}\nexit status {e.proc.returncode}\n"
                    f"--- stdout ---\n{e.proc.stdout}\n--- stderr ---\n{e.proc.stderr}")
        return super().repr_failure(excinfo)

    def reportinfo(self):
        return self.path, 0, f"filecheck: {self.path.name}"


class FileCheckFailure(Exception):
    def __init__(self, cmd, proc):
        super().__init__(cmd)
        self.cmd, self.proc = cmd, proc


class NmirFile(pytest.File):
    def collect(self):
        commands = run_lines(self.path.read_text(encoding="utf-8"))
        if commands:
            yield FileCheckItem.from_parent(self, name=self.path.name, commands=commands)


def pytest_collect_file(parent, file_path):
    if file_path.suffix == ".nmir":
        return NmirFile.from_parent(parent, path=file_path)
    return None

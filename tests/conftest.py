"""Shared test setup: the FileCheck collector for ``tests/**/*.nmir`` (docs/design.md §4).

Every ``.nmir`` file under tests/ with ``// RUN:`` lines is one test.  Each RUN line runs in
bash with ``set -o pipefail`` after substituting ``%s`` (this file), ``%S`` (its folder) and
``%t`` (a temporary path); ``nmc`` and ``filecheck`` are this environment's, and ``not CMD``
succeeds when CMD fails without crashing (exit 1 or 2, as ``lit``'s ``not`` does).  A RUN line
ending in ``\\`` continues on the next.

The CPU runtime's object cache goes to a temporary folder for the session, never the user's.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

def pytest_configure(config):
    config._nmc_cache = os.environ["NMC_CACHE_DIR"] = tempfile.mkdtemp(prefix="nmc-test-cache-")


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_nmc_cache", ""), ignore_errors=True)


_RUN = re.compile(r"^\s*//\s*RUN:\s?(.*)$")
_NOT = 'not() { "$@"; local rc=$?; [ $rc -eq 1 ] || [ $rc -eq 2 ]; }'


def run_lines(text: str) -> list[str]:
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


class FileCheckItem(pytest.Item):
    def __init__(self, *, commands: list[str], **kwargs):
        super().__init__(**kwargs)
        self.commands = commands

    def runtest(self):
        env = dict(os.environ)
        env["PATH"] = os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", "")
        tmp = self.config._tmp_path_factory.mktemp(self.path.stem)
        for cmd in self.commands:
            script = (cmd.replace("%s", str(self.path)).replace("%S", str(self.path.parent))
                      .replace("%t", str(tmp / "t")))
            proc = subprocess.run(["bash", "-c", f"set -o pipefail; {_NOT}; {script}"],
                                  capture_output=True, text=True, env=env, cwd=self.path.parent)
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

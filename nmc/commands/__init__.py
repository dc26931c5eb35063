"""One module per ``nmc`` subcommand, imported only when that subcommand runs (start-up time).

Each module defines a docstring (the subcommand's ``--help`` description),
``add_arguments(parser)`` and ``run(args) -> int``; its name and one-line help live here, so
``nmc --help`` lists every subcommand without importing any of them.
"""

from __future__ import annotations

import importlib
from types import ModuleType

COMMANDS: dict[str, tuple[str, str]] = {  # name: (module in nmc.commands, one-line help)
    "import": ("import_", "read a model and write textual IR"),
    "opt": ("opt", "run passes over textual IR"),
    "compile": ("compile", "compile a model into an image for a target"),
    "run": ("run", "run a model or image on inputs"),
    "eval": ("eval_", "ANN vs float SNN vs integer SNN accuracy"),
    "inspect": ("inspect", "show an image's sections, resources and mapping"),
    "targets": ("targets", "list the shipped chips"),
    "export": ("export", "write a spiking model as NIR"),
}


def command_module(name: str) -> ModuleType:
    """The module of subcommand ``name`` (a key of :data:`COMMANDS`), imported on first use."""
    return importlib.import_module(f"nmc.commands.{COMMANDS[name][0]}")

"""Modules loaded on first use, so that commands which never touch an array (``nmc opt`` on a
small graph, ``nmc --help``) do not pay for importing numpy (start-up time, issue 17)."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType


def lazy_import(name: str) -> ModuleType:
    """The module ``name``, executed on its first attribute access (the standard library's
    :class:`importlib.util.LazyLoader` recipe).  An already imported module is returned as is,
    and a later ``import name`` elsewhere gets this same module object."""
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ModuleNotFoundError(f"No module named {name!r}", name=name)
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module

"""Matplotlib for the commands that draw (``--plot``): headless, and a clear error without it.

Contract: :func:`pyplot` returns ``matplotlib.pyplot`` on the non-interactive Agg backend, or
raises :class:`~nmc.diagnostics.NmcError` naming the extra to install; :func:`save_png` writes
a figure atomically with no timestamp or software tag, so the same data gives the same bytes.
"""

from __future__ import annotations

import io

from nmc.diagnostics import NmcError
from nmc.fileio import atomic_write


def pyplot():
    try:
        import matplotlib
    except ModuleNotFoundError:
        raise NmcError("--plot needs matplotlib, which is not installed",
                       hint="pip install 'nmc[plot]'") from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_png(fig, path: str, dpi: int = 120) -> None:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight", metadata={"Software": None})
    pyplot().close(fig)
    atomic_write(path, buf.getvalue())

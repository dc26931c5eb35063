"""Input data files: ``X.npy`` (a batch, first axis = samples) or ``DATA.npz`` (``x`` and, for
evaluation, integer labels ``y``)."""

from __future__ import annotations

import os

import numpy as np

from nmc.diagnostics import NmcError


def load_inputs(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)`` from a ``.npy`` batch (``y`` None) or a ``.npz`` with ``x`` [and ``y``]."""
    if not os.path.exists(path):
        raise NmcError(f"input file {path} does not exist")
    try:
        loaded = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as err:
        raise NmcError(f"{path}: not a numpy .npy or .npz file ({err})") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded as npz:
        if "x" not in npz.files:
            raise NmcError(f"{path} has no array 'x'", hint=f"it holds: {', '.join(npz.files) or 'nothing'}; "
                                                           "DATA.npz needs x (inputs) and, for eval, y (labels)")
        x = npz["x"]
        y = npz["y"] if "y" in npz.files else None
    if y is not None and (y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer)):
        raise NmcError(f"{path}: 'y' must be one integer label per sample of 'x' ({len(x)}), got {y.dtype}{list(y.shape)}")
    return x, y

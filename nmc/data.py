"""Input data files: ``X.npy`` (a batch, first axis = samples) or ``DATA.npz`` (``x`` and, for
evaluation, integer labels ``y``).

Every array is checked at this boundary (issue 22): a readable numpy file (never unpickled),
a numeric (bool, integer or float) array with at least one sample, and finite values."""

from __future__ import annotations

import os
import zipfile

from nmc.diagnostics import Loc, NmcError
from nmc.lazy import lazy_import

np = lazy_import("numpy")

NUMERIC = "biuf"  # bool, signed, unsigned, float


def _load(path: str):
    try:
        return np.load(path, allow_pickle=False)
    except Exception as err:  # noqa: BLE001 - a damaged header raises ValueError, SyntaxError, TokenError, ...
        raise NmcError(f"{path}: not a numpy .npy or .npz file ({str(err).splitlines()[0] if str(err) else type(err).__name__})",
                       hint="X.npy holds one array; DATA.npz holds x and, for eval, y (numpy.save / numpy.savez)") from None


def _member(npz, path: str, name: str) -> np.ndarray:
    try:
        return npz[name]
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, KeyError, NotImplementedError) as err:
        raise NmcError(f"{path}: array '{name}' cannot be read ({str(err).splitlines()[0] if str(err) else type(err).__name__})",
                       hint="object arrays are never unpickled; save numeric arrays") from None


def check_array(x: np.ndarray, path: str, name: str = "x") -> np.ndarray:
    """``x`` if it is a non-empty batch of finite numbers, else NmcError naming the fault."""
    where = Loc(path)
    if not isinstance(x, np.ndarray):
        raise NmcError(f"'{name}' is not an array", where)
    if x.dtype.kind not in NUMERIC:
        raise NmcError(f"'{name}' has dtype {x.dtype}; inputs must be numbers (bool, integer or float)", where,
                       hint="convert it, e.g. x.astype(numpy.float32)")
    if x.ndim == 0:
        raise NmcError(f"'{name}' is a scalar; inputs are a batch with samples on the first axis", where)
    if x.shape[0] == 0:
        raise NmcError(f"'{name}' is an empty batch (shape {list(x.shape)}): there is nothing to run", where,
                       hint="give at least one sample")
    if x.size == 0:
        raise NmcError(f"'{name}' has no elements (shape {list(x.shape)})", where)
    if x.dtype.kind == "f":
        bad = int(np.count_nonzero(~np.isfinite(x)))
        if bad:
            raise NmcError(f"'{name}' has {bad} non-finite value(s) (NaN or infinity) of {x.size}", where,
                           hint="replace them, e.g. numpy.nan_to_num(x)")
    return x


def load_inputs(path: str) -> tuple[np.ndarray, np.ndarray | None]:
    """``(x, y)`` from a ``.npy`` batch (``y`` None) or a ``.npz`` with ``x`` [and ``y``]."""
    if not os.path.exists(path):
        raise NmcError(f"input file {path} does not exist")
    if not os.path.isfile(path):
        raise NmcError(f"input {path} is not a regular file")
    loaded = _load(path)
    if isinstance(loaded, np.ndarray):
        return check_array(loaded, path), None
    if not hasattr(loaded, "files"):
        raise NmcError(f"{path}: not a numpy .npy or .npz file")
    with loaded as npz:
        if "x" not in npz.files:
            raise NmcError(f"{path} has no array 'x'", hint=f"it holds: {', '.join(npz.files) or 'nothing'}; "
                                                           "DATA.npz needs x (inputs) and, for eval, y (labels)")
        x = check_array(_member(npz, path, "x"), path)
        y = _member(npz, path, "y") if "y" in npz.files else None
    if y is not None and (y.ndim != 1 or len(y) != len(x) or not np.issubdtype(y.dtype, np.integer)):
        raise NmcError(f"{path}: 'y' must be one integer label per sample of 'x' ({len(x)}), got {y.dtype}{list(y.shape)}")
    return x, y

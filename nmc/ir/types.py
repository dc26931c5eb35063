"""Value types of the IR.  Every shape describes one sample: the batch is a runtime matter.

* ``tensor<1x28x28xf32>`` — a host tensor (the ``ann`` dialect, graph inputs and outputs).
* ``spikes<16x26x26>``   — what a spiking population (or an encoder) emits each step.
* ``current<16x26x26>``  — the synaptic input a projection delivers to a population.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass

from nmc.lazy import lazy_import
np = lazy_import("numpy")

DTYPES: dict[str, str] = {  # IR element type: numpy's name for it
    "f32": "float32",
    "f64": "float64",
    "i8": "int8",
    "i16": "int16",
    "i32": "int32",
    "i64": "int64",
    "u8": "uint8",
    "bool": "bool",
}
IR_NAMES: dict[str, str] = {v: k for k, v in DTYPES.items()}


def dtype_name(dtype) -> str:
    """The IR spelling (``f32``) of a numpy dtype; ValueError for dtypes the IR lacks."""
    try:
        return IR_NAMES[np.dtype(dtype).name]
    except KeyError:
        raise ValueError(f"the IR has no element type for numpy dtype {np.dtype(dtype)}") from None


def _shape_text(shape: tuple[int, ...]) -> str:
    return "x".join(str(d) for d in shape)


@dataclass(frozen=True)
class Type:
    shape: tuple[int, ...]

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)


@dataclass(frozen=True)
class TensorType(Type):
    dtype: str = "f32"

    @property
    def np_dtype(self) -> np.dtype:
        """The numpy element type (``f32`` → ``float32``)."""
        return np.dtype(DTYPES[self.dtype])

    def __str__(self) -> str:
        if not self.shape:
            return f"tensor<{self.dtype}>"
        return f"tensor<{_shape_text(self.shape)}x{self.dtype}>"


@dataclass(frozen=True)
class SpikeType(Type):
    def __str__(self) -> str:
        return f"spikes<{_shape_text(self.shape)}>"


@dataclass(frozen=True)
class CurrentType(Type):
    def __str__(self) -> str:
        return f"current<{_shape_text(self.shape)}>"


_TENSOR_RE = re.compile(r"tensor<((?:\d+x)*)(\w+)>")
_SHAPED_RE = re.compile(r"(spikes|current)<(\d+(?:x\d+)*)>")


def parse_type(text: str) -> Type:
    """Parse the spelling of a type; ValueError with a reason when it is malformed."""
    if m := _TENSOR_RE.fullmatch(text):
        dims, dtype = m.groups()
        if dtype not in DTYPES:
            raise ValueError(
                f"unknown element type '{dtype}' (expected one of {', '.join(DTYPES)})"
            )
        shape = tuple(int(d) for d in dims.split("x") if d)
        return TensorType(shape, dtype)
    if m := _SHAPED_RE.fullmatch(text):
        kind, dims = m.groups()
        shape = tuple(int(d) for d in dims.split("x"))
        return SpikeType(shape) if kind == "spikes" else CurrentType(shape)
    raise ValueError(f"malformed type '{text}'")

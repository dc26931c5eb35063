"""The ``ann`` dialect: tensor dataflow, as frontends produce it.

Shapes are per sample (no batch axis); layouts are ONNX's (channels first).  Spatial
attributes follow ONNX: ``pads`` is ``[begin_0, begin_1, ..., end_0, end_1, ...]``.
"""

from __future__ import annotations

import math

from nmc.ir.core import (
    Op,
    blob,
    flag,
    integer,
    ints,
    operand,
    op_base,
    operands,
    real,
    register,
    require,
    tensor_operand,
)
from nmc.ir.types import TensorType
from nmc.lazy import lazy_import

np = lazy_import("numpy")


def pooled_size(
    size: int, kernel: int, stride: int, pad_begin: int, pad_end: int, dilation: int, ceil_mode: bool
) -> int:
    """Output length of a convolution or pooling window along one axis (ONNX rules).

    With ``ceil_mode`` a last window that would start inside the end padding is dropped, as
    onnxruntime and PyTorch do."""
    span = size + pad_begin + pad_end - dilation * (kernel - 1) - 1
    if span < 0:
        return 0
    out = (math.ceil(span / stride) if ceil_mode else span // stride) + 1
    if ceil_mode and (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


def _spatial(op: Op) -> int:
    """Number of spatial axes of a windowed op (from its kernel or weight)."""
    if getattr(op, "weight", None) is not None:
        return op.weight.data.ndim - 2
    return len(op.kernel)


def _ones(op):
    return (1,) * _spatial(op)


def _zeros2(op):
    return (0,) * (2 * _spatial(op))


def check_window(op: Op, x: TensorType, kernel, ceil_mode: bool = False) -> tuple[int, ...]:
    """Validate strides/pads/dilations against ``kernel``; returns the output spatial shape."""
    n = len(kernel)
    require(op, x.rank == n + 1, f"expects a rank-{n + 1} input (channels + {n} spatial axes) per sample, got {x}")
    require(op, len(op.strides) == n and all(s >= 1 for s in op.strides), f"needs {n} strides >= 1, got {list(op.strides)}")
    require(op, len(op.pads) == 2 * n and all(p >= 0 for p in op.pads), f"needs {2 * n} pads >= 0, got {list(op.pads)}")
    dil = getattr(op, "dilations", None) or (1,) * n  # pool projections have none
    require(op, len(dil) == n and all(d >= 1 for d in dil), f"needs {n} dilations >= 1, got {list(dil)}")
    out = tuple(
        pooled_size(x.shape[1 + i], kernel[i], op.strides[i], op.pads[i], op.pads[n + i], dil[i], ceil_mode)
        for i in range(n)
    )
    require(op, all(o >= 1 for o in out), f"window does not fit the input {x} (output spatial shape {list(out)})")
    return out


@register("ann.input")
class Input(Op):
    """A graph input.  Its type is declared: ``%x = ann.input : tensor<1x28x28xf32>``."""

    def verify(self):
        require(self, isinstance(self.result.type, TensorType), "must have a tensor type")


@register("ann.constant")
class Constant(Op):
    """A constant tensor."""

    value: object = blob()

    def infer_type(self):
        return self.value.type


@register("ann.output")
class Output(Op):
    """The graph's outputs; the last op of every graph."""

    HAS_RESULT = False
    values: list = operands()

    def verify(self):
        require(self, len(self.values) >= 1, "needs at least one value")
        for v in self.values:
            tensor_operand(self, v, "output")


@register("ann.dense")
class Dense(Op):
    """``y = W x + b`` with ``W`` of shape ``[out, in]``."""

    x: object = operand()
    weight: object = blob()
    bias: object = blob(optional=True)

    def infer_type(self):
        t = tensor_operand(self, self.x, rank=(1,))
        w = self.weight.shape
        require(self, len(w) == 2, f"weight must be [out, in], got {list(w)}")
        require(self, w[1] == t.shape[0], f"weight {list(w)} does not match input {t}")
        if self.bias is not None:
            require(self, self.bias.shape == (w[0],), f"bias {list(self.bias.shape)} must be [{w[0]}]")
        return TensorType((w[0],), t.dtype)


@register("ann.conv")
class Conv(Op):
    """1-D or 2-D convolution (ONNX Conv); weight ``[out, in/groups, k...]``."""

    x: object = operand()
    weight: object = blob()
    bias: object = blob(optional=True)
    strides: tuple = ints(_ones)
    pads: tuple = ints(_zeros2)
    dilations: tuple = ints(_ones)
    groups: int = integer(1)

    def infer_type(self):
        w = self.weight.shape
        require(self, len(w) in (3, 4), f"weight must be [out, in/groups, k...] for 1-D or 2-D, got {list(w)}")
        x = tensor_operand(self, self.x, rank=(len(w) - 1,))
        g = self.groups
        require(self, g >= 1 and x.shape[0] % g == 0 and w[0] % g == 0,
                f"groups={g} must divide input channels {x.shape[0]} and output channels {w[0]}")
        require(self, w[1] * g == x.shape[0],
                f"weight {list(w)} expects {w[1] * g} input channels, input is {x}")
        if self.bias is not None:
            require(self, self.bias.shape == (w[0],), f"bias {list(self.bias.shape)} must be [{w[0]}]")
        out = check_window(self, x, w[2:])
        return TensorType((w[0], *out), x.dtype)


@register("ann.batchnorm")
class BatchNorm(Op):
    """Inference batch normalisation over the channel axis (axis 0 per sample)."""

    x: object = operand()
    scale: object = blob()
    bias: object = blob()
    mean: object = blob()
    var: object = blob()
    epsilon: float = real(1e-5)

    def infer_type(self):
        x = tensor_operand(self, self.x)
        require(self, x.rank >= 1, "needs a channel axis")
        for name in ("scale", "bias", "mean", "var"):
            b = getattr(self, name)
            require(self, b.shape == (x.shape[0],), f"{name} {list(b.shape)} must be [{x.shape[0]}]")
        return x


@op_base
class _Unary(Op):
    """An element-wise op: the result has the operand's type."""

    x: object = operand()

    def infer_type(self):
        return tensor_operand(self, self.x)


@register("ann.relu")
class Relu(_Unary):
    """``max(x, 0)``."""


@register("ann.sigmoid")
class Sigmoid(_Unary):
    """``1 / (1 + exp(-x))``."""


@register("ann.tanh")
class Tanh(_Unary):
    """Hyperbolic tangent."""


@register("ann.identity")
class Identity(_Unary):
    """The identity."""


@register("ann.dropout")
class Dropout(_Unary):
    """Inference dropout: the identity.  ``ratio`` is kept for the record."""

    ratio: float = real(0.5)


@register("ann.clip")
class Clip(_Unary):
    """``min(max(x, min), max)`` (ReLU6 is ``min = 0, max = 6``)."""

    min: float = real(-math.inf)
    max: float = real(math.inf)

    def verify(self):
        require(self, self.min <= self.max, f"min {self.min} exceeds max {self.max}")


@register("ann.leaky_relu")
class LeakyRelu(_Unary):
    """``x < 0 ? alpha * x : x``."""

    alpha: float = real(0.01)


@register("ann.prelu")
class PRelu(_Unary):
    """``x < 0 ? slope * x : x``; ``slope`` broadcasts to the input (numpy rules)."""

    slope: object = blob()

    def infer_type(self):
        x = tensor_operand(self, self.x)
        try:
            out = np.broadcast_shapes(x.shape, self.slope.shape)
        except ValueError:
            out = None
        require(self, out == x.shape, f"slope {list(self.slope.shape)} does not broadcast to {x}")
        return x


@register("ann.softmax")
class Softmax(_Unary):
    """Softmax along ``axis`` of the per-sample shape."""

    axis: int = integer(-1)

    def verify(self):
        r = self.x.type.rank
        require(self, -r <= self.axis < r, f"axis {self.axis} out of range for {self.x.type}")


@register("ann.log_softmax")
class LogSoftmax(Softmax):
    """Log of the softmax along ``axis``."""


@register("ann.lrn")
class LRN(_Unary):
    """Local response normalisation across channels (ONNX LRN, AlexNet):
    ``y[c] = x[c] / (bias + alpha / size · Σ x[c']²)^beta`` over the ``size`` channels
    ``c' ∈ [c − ⌊(size−1)/2⌋, c + ⌈(size−1)/2⌉]`` that exist.  Axis 0 of the per-sample
    shape is the channel axis."""

    size: int = integer(1)
    alpha: float = real(0.0001)
    beta: float = real(0.75)
    bias: float = real(1.0)

    def verify(self):
        require(self, self.size >= 1, f"size must be at least 1, got {self.size}")
        require(self, self.bias > 0, f"bias must be positive, got {self.bias}")
        require(self, self.x.type.rank >= 1, f"needs a channel axis, got {self.x.type}")


@register("ann.maxpool")
class MaxPool(Op):
    """Max pooling (ONNX MaxPool): padded cells never win."""

    x: object = operand()
    kernel: tuple = ints()
    strides: tuple = ints(_ones)
    pads: tuple = ints(_zeros2)
    dilations: tuple = ints(_ones)
    ceil_mode: bool = flag(False)

    def infer_type(self):
        x = tensor_operand(self, self.x, rank=(2, 3))
        require(self, len(self.kernel) >= 1 and all(k >= 1 for k in self.kernel), f"bad kernel {list(self.kernel)}")
        out = check_window(self, x, self.kernel, self.ceil_mode)
        return TensorType((x.shape[0], *out), x.dtype)


@register("ann.avgpool")
class AvgPool(Op):
    """Average pooling (ONNX AveragePool); ``count_include_pad`` as ONNX defines it."""

    x: object = operand()
    kernel: tuple = ints()
    strides: tuple = ints(_ones)
    pads: tuple = ints(_zeros2)
    ceil_mode: bool = flag(False)
    count_include_pad: bool = flag(False)

    def infer_type(self):
        x = tensor_operand(self, self.x, rank=(2, 3))
        require(self, len(self.kernel) >= 1 and all(k >= 1 for k in self.kernel), f"bad kernel {list(self.kernel)}")
        out = check_window(self, x, self.kernel, self.ceil_mode)
        n = len(self.kernel)
        require(self, self.count_include_pad or all(self.pads[i] < self.kernel[i] and self.pads[n + i] < self.kernel[i]
                                                    for i in range(n)),
                f"pads {list(self.pads)} must be smaller than the kernel {list(self.kernel)} without "
                "count_include_pad (a window of padding alone has no average)")
        return TensorType((x.shape[0], *out), x.dtype)


@register("ann.global_avgpool")
class GlobalAvgPool(Op):
    """Mean over all spatial axes; keeps them with size 1 (ONNX GlobalAveragePool)."""

    x: object = operand()

    def infer_type(self):
        x = tensor_operand(self, self.x, rank=(2, 3))
        return TensorType((x.shape[0],) + (1,) * (x.rank - 1), x.dtype)


@op_base
class _Binary(Op):
    """Element-wise with numpy (ONNX multidirectional) broadcasting."""

    a: object = operand()
    b: object = operand()

    def infer_type(self):
        a = tensor_operand(self, self.a, "first operand")
        b = tensor_operand(self, self.b, "second operand")
        require(self, a.dtype == b.dtype, f"operands differ in element type: {a} and {b}")
        try:
            shape = np.broadcast_shapes(a.shape, b.shape)
        except ValueError:
            raise self.error(f"operands {a} and {b} do not broadcast") from None
        return TensorType(tuple(shape), a.dtype)


@register("ann.add")
class Add(_Binary):
    """``a + b``."""


@register("ann.mul")
class Mul(_Binary):
    """``a * b``."""


@register("ann.concat")
class Concat(Op):
    """Join the inputs along the per-sample ``axis``."""

    inputs: list = operands()
    axis: int = integer(0)

    def infer_type(self):
        require(self, len(self.inputs) >= 1, "needs at least one input")
        ts = [tensor_operand(self, v, f"input {i}") for i, v in enumerate(self.inputs)]
        r = ts[0].rank
        require(self, 0 <= self.axis < r, f"axis {self.axis} out of range for {ts[0]}")
        for t in ts[1:]:
            same = t.rank == r and t.dtype == ts[0].dtype and all(
                t.shape[i] == ts[0].shape[i] for i in range(r) if i != self.axis
            )
            require(self, same, f"inputs {ts[0]} and {t} cannot be joined along axis {self.axis}")
        shape = list(ts[0].shape)
        shape[self.axis] = sum(t.shape[self.axis] for t in ts)
        return TensorType(tuple(shape), ts[0].dtype)


@register("ann.flatten")
class Flatten(Op):
    """All per-sample axes into one."""

    x: object = operand()

    def infer_type(self):
        x = tensor_operand(self, self.x)
        return TensorType((x.size,), x.dtype)


@register("ann.reshape")
class Reshape(Op):
    """The per-sample shape becomes ``shape`` (C order)."""

    x: object = operand()
    shape: tuple = ints()

    def infer_type(self):
        x = tensor_operand(self, self.x)
        require(self, all(d >= 1 for d in self.shape), f"shape {list(self.shape)} must be all positive")
        require(self, math.prod(self.shape) == x.size, f"cannot reshape {x} ({x.size} elements) to {list(self.shape)}")
        return TensorType(tuple(self.shape), x.dtype)


@register("ann.transpose")
class Transpose(Op):
    """Permute the per-sample axes: result axis i is input axis ``perm[i]``."""

    x: object = operand()
    perm: tuple = ints()

    def infer_type(self):
        x = tensor_operand(self, self.x)
        require(self, sorted(self.perm) == list(range(x.rank)), f"perm {list(self.perm)} is not a permutation of {x.rank} axes")
        return TensorType(tuple(x.shape[p] for p in self.perm), x.dtype)

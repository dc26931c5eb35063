"""Window geometry of convolutions and pooling: which output cell sees which input cell.

The one place that expands a 2-D sliding window into its cells.  The reference semantics
count fan-outs with it, the chip targets turn it into synapse lists, and the CPU runtime into
its per-position window tables; each adds its own channels and weights.

A window of ``kernel`` cells slides over a ``[H, W]`` plane padded by ``pads = (top, left,
...)`` with ``strides`` and ``dilations``: output cell ``(oy, ox)`` reads input cell
``y = oy · stride - pad + ky · dilation`` (likewise ``x``) at kernel offset ``(ky, kx)``.
"""

from __future__ import annotations

import itertools

import numpy as np

from nmc.ir.ann import pooled_size


def window_cells(hw, kernel, strides, pads, dilations, out_hw) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every (kernel cell, input cell, output cell) of the window inside the plane, as int64
    arrays ``(k, src, out)`` with ``k = ky · kw + kx``, ``src = y · W + x`` and
    ``out = oy · OW + ox``; ordered by kernel cell, then output cell (row-major).  Cells that
    fall on the padding are left out."""
    H, W = hw
    OH, OW = out_hw
    oy, ox = np.meshgrid(np.arange(OH, dtype=np.int64), np.arange(OW, dtype=np.int64), indexing="ij")
    oy, ox = oy.reshape(-1), ox.reshape(-1)
    ks, srcs, outs = [], [], []
    for ky in range(kernel[0]):
        for kx in range(kernel[1]):
            y = oy * strides[0] - pads[0] + ky * dilations[0]
            x = ox * strides[1] - pads[1] + kx * dilations[1]
            ok = (y >= 0) & (y < H) & (x >= 0) & (x < W)
            ks.append(np.full(int(ok.sum()), ky * kernel[1] + kx, dtype=np.int64))
            srcs.append(y[ok] * W + x[ok])
            outs.append(oy[ok] * OW + ox[ok])
    if not ks:
        z = np.zeros(0, np.int64)
        return z, z, z
    return np.concatenate(ks), np.concatenate(srcs), np.concatenate(outs)


def cover_counts(hw, kernel, strides, pads, dilations, out_hw) -> np.ndarray:
    """How many output cells' windows cover each input cell, ``[H · W]`` int64."""
    _, src, _ = window_cells(hw, kernel, strides, pads, dilations, out_hw)
    return np.bincount(src, minlength=hw[0] * hw[1]).astype(np.int64)


def window_geometry(spatial, kernel, strides, pads, dilations, ceil_mode=False):
    """Output sizes and the end padding each axis needs so every window lies in the array."""
    n = len(kernel)
    out, extra = [], []
    for i in range(n):
        o = pooled_size(spatial[i], kernel[i], strides[i], pads[i], pads[n + i], dilations[i], ceil_mode)
        reach = (o - 1) * strides[i] + dilations[i] * (kernel[i] - 1) + 1
        extra.append(max(0, reach - (spatial[i] + pads[i] + pads[n + i])))
        out.append(o)
    return tuple(out), tuple(extra)


def pad_spatial(x, pads, extra, value):
    """Pad the spatial axes (all after the first two) of ``x``: ONNX pads plus ``extra`` at the end."""
    n = len(extra)
    width = [(0, 0), (0, 0)] + [(pads[i], pads[n + i] + extra[i]) for i in range(n)]
    return np.pad(x, width, constant_values=value)


def window_views(padded, kernel, strides, dilations, out):
    """For each kernel offset, the strided view ``[N, C, *out]`` of the cells it covers."""
    for offset in itertools.product(*(range(k) for k in kernel)):
        index = tuple(
            slice(o * d, o * d + s * (n - 1) + 1, s) for o, d, s, n in zip(offset, dilations, strides, out)
        )
        yield offset, padded[(slice(None), slice(None)) + index]

"""A VGG-11-class CNN for 3x32x32 inputs with seeded random weights, as ``.nmd`` text.

VGG-11 (Simonyan & Zisserman 2015, configuration A) in its CIFAR form: 3x3 convolutions
(pad 1, ReLU) of widths 64, M, 128, M, 256, 256, M, 512, 512, M, 512, 512, M (M: 2x2 max
pool), then one dense layer 512 -> 10 on the 1x1 map.  ``width`` scales every channel count
(at least 1 channel each), for boards or machines too small for the full network.  Weights
are He-normal with explicit seeds ``seed + 1, seed + 2, …`` (nmc.hashrng: the same numbers on
every machine); biases are zero.  No training: the network is for measuring mapping, not
accuracy.

    from benchmarks.vgg import vgg11_graph
    graph = vgg11_graph(width=0.25, seed=0)   # an ann graph; nmc.compile(graph, ...)
"""

from __future__ import annotations

import math

VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def vgg11_nmd(width: float = 1.0, seed: int = 0, classes: int = 10, size: int = 32) -> str:
    """The network as ``.nmd`` text (docs/language.md)."""
    lines = [f"network vgg11_w{width:g}".replace(".", "_"),
             f"// VGG-11 (configuration A) for 3x{size}x{size} inputs, channel widths x{width}, "
             f"random He-normal weights (seeds {seed + 1}...)",
             f"input image: [3, {size}, {size}]"]
    chain, channels, side, k = ["image"], 3, size, 0
    for layer in VGG11:
        if layer == "M":
            chain.append("maxpool(2)")
            side //= 2
            continue
        out = max(1, round(layer * width))
        k += 1
        scale = math.sqrt(2.0 / (channels * 9))
        chain.append(f"conv({out}, kernel = 3, pad = 1, weight = random(normal, seed = {seed + k}, "
                     f"scale = {scale:.6g}), bias = zeros) -> relu")
        channels = out
    k += 1
    chain.append("flatten")
    chain.append(f"dense({classes}, weight = random(normal, seed = {seed + k}, "
                 f"scale = {math.sqrt(2.0 / (channels * side * side)):.6g}), bias = zeros)")
    lines.append("logits = " + "\n    -> ".join(chain))
    lines.append("output logits")
    return "\n".join(lines) + "\n"


def vgg11_graph(width: float = 1.0, seed: int = 0, classes: int = 10, size: int = 32):
    """The network as a verified ``ann`` graph."""
    from nmc.frontends.nmd import parse_nmd

    return parse_nmd(vgg11_nmd(width, seed, classes, size), f"vgg11_w{width:g}.nmd")


def vgg11_counts(width: float = 1.0, size: int = 32) -> tuple[int, int]:
    """(ReLU neurons, conv/dense synapses) of the ANN, pooling excluded: its scale at a glance."""
    neurons = synapses = 0
    channels, side = 3, size
    for layer in VGG11:
        if layer == "M":
            side //= 2
            continue
        out = max(1, round(layer * width))
        neurons += out * side * side
        synapses += out * side * side * channels * 9
        channels = out
    return neurons + 10, synapses + 10 * channels * side * side


if __name__ == "__main__":
    print(vgg11_nmd())

"""The CPU runtime's module keeps each population's code in a function of its own
(:meth:`nmc.targets.cpu.emit.Lowering.outlined`): the entry function holds only the sample
and step loops and the calls, whatever the network's depth, so that LLVM's loop passes see
one layer at a time, and the compile time grows about linearly with the number of layers."""

from __future__ import annotations

import re

import numpy as np
import pytest

from nmc.ir.parser import parse_ir
from nmc.targets.cpu import emit, plan
from tests.test_cpu_runtime import compare


def chain(layers: int) -> str:
    """An integer network: a rate encoder, then ``layers`` dense layers of 16 neurons."""
    lines = ["graph @chain", "%x = ann.input : tensor<16xf32>",
             "%h0 = snn.encode(%x) {encoding = rate} : spikes<16>"]
    for k in range(1, layers + 1):
        lines += [f"%c{k} = snn.project(%h{k - 1}) {{kind = dense, weight = random<uniform, seed = {k}, scale = 40> "
                  f": tensor<16x16xi8>}} : current<16>",
                  f"%h{k} = snn.population(%c{k}) {{bits = 16, threshold = 30}} : spikes<16>"]
    lines += [f"%y = snn.decode(%h{layers}) : tensor<16xf32>", "ann.output(%y)"]
    return "\n".join(lines) + "\n"


def functions(module) -> dict[str, str]:
    """The bodies of the module's defined functions, by name."""
    text = str(module)
    bodies = re.findall(r'^define [^@]*@"?([^"(]+)"?\(.*?^}', text, re.M | re.S)
    return {name: body for name, body in zip(bodies, re.findall(r"^define .*?^}", text, re.M | re.S))}


def loop_heads(body: str) -> list[str]:
    """The loop header labels of a function body (:meth:`.emit.Emitter.loop` names them ``X.head``)."""
    return re.findall(r'^"?([A-Za-z]+)\.head[.\d]*"?:', body, re.M)


@pytest.mark.parametrize("schedule", ["step", "layer"])
def test_each_population_has_its_own_function_and_the_entry_does_not_grow(schedule):
    heads = {}
    for layers in (2, 6):
        module, _, _ = emit.lower(plan.Network.of(parse_ir(chain(layers))), schedule=schedule)
        bodies = functions(module)
        assert len(bodies) == 1 + layers  # the entry function and one per population
        entry = bodies[plan.FUNCTION_NAME]
        assert entry.count("call void") == layers
        heads[layers] = sorted(loop_heads(entry))
        for name, body in bodies.items():
            if name != plan.FUNCTION_NAME:
                assert body.split("\n")[0].endswith("noinline")  # LLVM's inliner must not undo it
                assert loop_heads(body)  # the population's own loops are in its function
    assert heads[2] == heads[6]  # the entry's loops do not depend on the depth


def test_a_deep_chain_is_bit_identical_to_the_reference():
    g = parse_ir(chain(6))
    x = [(np.random.default_rng(0).integers(0, 17, size=(3, 16)) / 16).astype(np.float32)]
    got, ref = compare(g, x, 9, exact=True, schedules=("step", "layer"))
    assert ref.spikes[g.walk("snn.population")[-1]].sum() > 0  # spikes reach the last layer: not vacuous


def dense_block(layers: int, growth: int = 16, size: int = 6) -> str:
    """A DenseNet-like block (as benchmarks/cpu_compile.py's): layer k's bottleneck population
    sums a 1×1 conv from the input and from every earlier layer (convs of one shape into one
    population: a first current, stored, and later ones, added), then a 3×3 conv."""
    cells = f"{size}x{size}"
    lines = ["graph @block", f"%x = ann.input : tensor<{growth}x{cells}xf32>",
             f"%h0 = snn.encode(%x) {{encoding = rate}} : spikes<{growth}x{cells}>"]

    def conv(name, src, out, k, seed):
        return (f"%{name} = snn.project(%{src}) {{kind = conv2d, pads = {[k // 2] * 4}, weight = random<uniform, "
                f"seed = {seed}, scale = 40> : tensor<{out}x{growth}x{k}x{k}xi8>}} : current<{out}x{cells}>")

    for k in range(1, layers + 1):
        lines += [conv(f"p{k}_{j}", f"h{j}", 2 * growth, 1, 10 * k + j) for j in range(k)]
        lines += [f"%b{k} = snn.population({', '.join(f'%p{k}_{j}' for j in range(k))}) {{bits = 16, threshold = 30}} "
                  f": spikes<{2 * growth}x{cells}>",
                  conv(f"c{k}", f"b{k}", growth, 3, k).replace(f"{growth}x3x3", f"{2 * growth}x3x3"),
                  f"%h{k} = snn.population(%c{k}) {{bits = 16, threshold = 30}} : spikes<{growth}x{cells}>"]
    lines += [f"%y = snn.decode(%h{layers}) : tensor<{growth}x{cells}xf32>", "ann.output(%y)"]
    return "\n".join(lines) + "\n"


def test_a_dense_block_shares_its_conv_code_and_is_bit_identical():
    """Convs of one shape share their flush (and, with VNNI, direct sums) functions
    (emit.Lowering.shared_function): the 1×1 convs from the earlier layers into each
    bottleneck are all one shape, the first of each population stored and the others added
    (two flush functions, a third for the 3×3 convs), whatever the depth; the runs equal the
    reference."""
    g = parse_ir(dense_block(3))
    text = str(emit.lower(plan.Network.of(g))[0])
    flushes = set(re.findall(r'call void @"(nmc_run_flush_\d+)"', text))
    assert text.count('call void @"nmc_run_flush_') == 3 * 4 // 2 + 3  # every conv flushes by a call
    assert len(flushes) == 3  # the 1×1 convs stored (each population's first), those added, the 3×3
    x = [np.random.default_rng(1).random((2, 16, 6, 6)).astype(np.float32)]
    got, ref = compare(g, x, 8, exact=True, schedules=("step", "layer"))
    assert ref.spikes[g.walk("snn.population")[-1]].sum() > 0  # spikes reach the last layer: not vacuous

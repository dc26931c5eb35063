"""The CPU runtime's compile time against the network's depth: a chain of ``L`` integer conv2d
layers (32 channels, 8 x 8, 3 x 3, rate-encoded input), lowered under the ``step`` schedule, then
LLVM's O3 pipeline and code generation timed apart (process CPU seconds, so a loaded machine
inflates them less), as :func:`nmc.targets.cpu.jit.compile_module` runs them (:func:`.jit.optimise`)::

    python benchmarks/cpu_compile.py 8 32 64

Time that grows 4x when ``L`` doubles is quadratic in the depth (every layer's loops inside
one function's step loop); 2x, linear (one function per population: :meth:`.emit.Lowering.outlined`).
"""

from __future__ import annotations

import sys
import time

import llvmlite.binding as llvm

from nmc.ir.parser import parse_ir
from nmc.targets.cpu import emit, jit, plan


def chain(layers: int) -> str:
    """The IR text of ``layers`` conv2d layers of 32 x 8 x 8 integer neurons."""
    shape = "32x8x8"
    lines = ["graph @chain", f"%x = ann.input : tensor<{shape}xf32>",
             f"%h0 = snn.encode(%x) {{encoding = rate}} : spikes<{shape}>"]
    for k in range(1, layers + 1):
        lines += [f"%c{k} = snn.project(%h{k - 1}) {{kind = conv2d, pads = [1, 1, 1, 1], weight = random<uniform, "
                  f"seed = {k}, scale = 40> : tensor<32x32x3x3xi8>}} : current<{shape}>",
                  f"%h{k} = snn.population(%c{k}) {{bits = 16, threshold = 30}} : spikes<{shape}>"]
    lines += [f"%y = snn.decode(%h{layers}) : tensor<{shape}xf32>", "ann.output(%y)"]
    return "\n".join(lines) + "\n"


def measure(layers: int) -> dict:
    """IR lines, defined functions, O3 and code generation CPU seconds for ``chain(layers)``."""
    module, _, _ = emit.lower(plan.Network.of(parse_ir(chain(layers))), schedule="step")
    text = str(module)
    tm = jit._target_machine()
    mod = llvm.parse_assembly(text)
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    start = time.process_time()
    jit.optimise(mod, tm)
    optimised = time.process_time()
    tm.emit_object(mod)
    return {"layers": layers, "ir_lines": text.count("\n"), "functions": text.count("\ndefine "),
            "o3_s": round(optimised - start, 2), "codegen_s": round(time.process_time() - optimised, 2)}


if __name__ == "__main__":
    for n in map(int, sys.argv[1:] or ["8", "32", "64"]):
        print(measure(n), flush=True)

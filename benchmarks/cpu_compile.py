"""The CPU runtime's compile time: against the network's depth, and cold per workload.

**Depth.**  A chain of ``L`` integer conv2d layers (32 channels, 8 x 8, 3 x 3, rate-encoded
input), lowered under the ``step`` schedule, then LLVM's O3 pipeline and code generation timed
apart (process CPU seconds, so a loaded machine inflates them less), as
:func:`nmc.targets.cpu.jit.compile_module` runs them (:func:`.jit.optimise`)::

    python benchmarks/cpu_compile.py 8 32 64

Time that grows 4x when ``L`` doubles is quadratic in the depth (every layer's loops inside
one function's step loop); 2x, linear (one function per population: :meth:`.emit.Lowering.outlined`).
``--dense``: DenseNet-like blocks of ``L`` layers instead (:func:`dense_block`; their
projections grow as ``L²``); ``--zoo-block SIZE``: the light zoo's DenseNet-121 cut after its
first dense block, converted, then prepared on the CPU (:func:`densenet_block`)::

    python benchmarks/cpu_compile.py --dense 6 12
    python benchmarks/cpu_compile.py --zoo-block 64

**Cold compile per workload** (``--workloads``).  Each of ``runtime.py``'s workloads is
compiled as its ``compile s`` column does (``cpu.prepare(graph)`` with an empty object cache,
after the process's one-time LLVM set-up), ``--repeat`` times in one process; the median
process CPU time and wall time are printed (and the first compile's, the one ``runtime.py``
times, which also pays the first use of each kernel's code paths), and the CPU time's parts
(the median of each):
building the IR in Python (plan and emit), parsing it, O3, code generation; ``--time-passes``
prints LLVM's own timings of the passes instead (one compile).  With ``--a`` and
``--b`` (two source trees, as ``runtime_ab.py`` takes them) each round runs one fresh process
per tree in turn (A, B, A, B, ...), and the median of the rounds' B/A ratios of the medians is
printed per workload: the comparison to trust on a machine shared with other jobs::

    python benchmarks/cpu_compile.py --workloads W2,W1-64,W1-1,W1c-64,W3 --repeat 7
    python benchmarks/cpu_compile.py --workloads W2 --a ../base-tree --b . --rounds 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import llvmlite.binding as llvm

from nmc.ir.parser import parse_ir
from nmc.targets.cpu import emit, jit, plan

HERE = Path(__file__).resolve().parent


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


def dense_block(layers: int, growth: int = 32, base: int = 64, size: int = 8) -> str:
    """The IR text of a DenseNet-like block of ``layers`` layers on ``size x size`` integer
    neurons: layer ``k``'s bottleneck population (``4 · growth`` channels) sums a 1 x 1 conv
    from the input (``base`` channels, rate encoded) and from every earlier layer's output
    (DenseNet's concatenation, one projection per source), then a 3 x 3 conv makes its output
    (``growth`` channels)."""
    wide, cells = 4 * growth, f"{size}x{size}"
    lines = ["graph @block", f"%x = ann.input : tensor<{base}x{cells}xf32>",
             f"%h0 = snn.encode(%x) {{encoding = rate}} : spikes<{base}x{cells}>"]

    def conv(name, src, out, inp, k, seed):
        pads = [k // 2] * 4
        return (f"%{name} = snn.project(%{src}) {{kind = conv2d, pads = {pads}, weight = random<uniform, "
                f"seed = {seed}, scale = 40> : tensor<{out}x{inp}x{k}x{k}xi8>}} : current<{out}x{cells}>")

    for k in range(1, layers + 1):
        sources = [(f"h{j}", base if j == 0 else growth) for j in range(k)]
        lines += [conv(f"p{k}_{j}", src, wide, inp, 1, 1000 * k + j) for j, (src, inp) in enumerate(sources)]
        currents = ", ".join(f"%p{k}_{j}" for j in range(k))
        lines += [f"%b{k} = snn.population({currents}) {{bits = 16, threshold = 30}} : spikes<{wide}x{cells}>",
                  conv(f"c{k}", f"b{k}", growth, wide, 3, k),
                  f"%h{k} = snn.population(%c{k}) {{bits = 16, threshold = 30}} : spikes<{growth}x{cells}>"]
    lines += [f"%y = snn.decode(%h{layers}) : tensor<{growth}x{cells}xf32>", "ann.output(%y)"]
    return "\n".join(lines) + "\n"


def densenet_block(size: int, layers: int = 6):
    """DenseNet-121 of the ``onnx`` package's light zoo (``benchmarks/zoo.py``) cut after its
    first dense block's ``layers`` layers and the transition's batch norm, ReLU and 1 × 1 conv
    (the nodes these need, in order), its input ``3 × size × size``; converted as ``zoo.py``
    converts (mesh-board-4's conversion pipeline, T = 8, two seeded calibration images, rates
    assumed): the integer spiking graph."""
    import onnx
    from onnx import TensorProto, helper

    sys.path.insert(0, str(HERE))
    import zoo

    import nmc
    from nmc.compiler import default_pipeline, resolve_target
    from nmc.passmanager import PassContext, PassManager

    model = onnx.load(str(zoo.zoo_dir() / "light_densenet121.onnx"))
    nodes = list(model.graph.node)
    users = {}
    for n in nodes:
        for name in n.input:
            users.setdefault(name, []).append(n)
    conv = next(n for n in nodes if n.op_type == "Conv" and n.input[1] == f"conv2_{layers}/x2_w_0")
    cur = next(n for n in users[conv.output[0]] if n.op_type == "Concat").output[0]
    for kind in ("BatchNormalization", "Mul", "Add", "Relu", "Conv"):  # the transition's
        cur = next(n for n in users[cur] if n.op_type == kind).output[0]
    producer = {o: n for n in nodes for o in n.output}
    needed, stack = set(), [cur]
    while stack:
        n = producer.get(stack.pop())
        if n is not None and id(n) not in needed:
            needed.add(id(n))
            stack += list(n.input)
    kept = [n for n in nodes if id(n) in needed]
    x = helper.make_tensor_value_info("data_0", TensorProto.FLOAT, [1, 3, size, size])
    y = helper.make_tensor_value_info(cur, TensorProto.FLOAT, None)
    names = {i for n in kept for i in n.input}
    block = helper.make_model(helper.make_graph(kept, "densenet_block", [x], [y],
                                                [t for t in model.graph.initializer if t.name in names]),
                              opset_imports=model.opset_import)
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "block.onnx")
        onnx.save(block, path)
        graph = nmc.load(path)
    x_cal, _ = zoo.seeded_images(graph.inputs[0].type.shape, 2, 1, 0)
    target = resolve_target("mesh-board-4")
    pipeline = default_pipeline(graph, target, 2, 8, 0, calibrated=True, convert="burst=1")
    front = pipeline[:pipeline.index(zoo.MAPPING_PASSES[0])].rstrip(",").replace(",measure-rates", "")
    return PassManager(front, PassContext(target=target.chip, calibration=x_cal, seed=0)).run(graph)


def zoo_block(size: int) -> dict:
    """Process CPU seconds of ``cpu.prepare(graph, cache=False)`` for :func:`densenet_block`,
    its conv2d projections and the process's peak memory (conversion included)."""
    import resource

    from nmc.targets import cpu

    graph = densenet_block(size)
    start = time.process_time()
    cpu.prepare(graph, cache=False)
    convs = sum(op.kind == "conv2d" for op in graph.walk("snn.project"))
    return {"size": size, "populations": len(graph.walk("snn.population")), "conv2d": convs,
            "prepare_cpu_s": round(time.process_time() - start, 2),
            "peak_gib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def measure(layers: int, network=chain) -> dict:
    """IR lines, defined functions, O3 and code generation CPU seconds for ``network(layers)``."""
    module, _, _ = emit.lower(plan.Network.of(parse_ir(network(layers))), schedule="step")
    text = str(module)
    o3, codegen = optimise_and_generate(text)
    return {"layers": layers, "ir_lines": text.count("\n"), "functions": text.count("\ndefine "),
            "o3_s": round(o3, 2), "codegen_s": round(codegen, 2)}


def optimise_and_generate(text: str) -> tuple[float, float]:
    """Process CPU seconds of O3 and of code generation for the module ``text``."""
    tm = jit._target_machine()
    mod = llvm.parse_assembly(text)
    mod.triple, mod.data_layout = tm.triple, str(tm.target_data)
    start = time.process_time()
    jit.optimise(mod, tm)
    optimised = time.process_time()
    tm.emit_object(mod)
    return optimised - start, time.process_time() - optimised


def cold(name: str, repeat: int) -> dict:
    """Median CPU and wall seconds of ``repeat`` cold compiles of workload ``name`` (module
    docstring) in this process, and the medians of their parts."""
    sys.path.insert(0, str(HERE))
    import runtime as R

    from nmc.targets import cpu

    R.process_setup()
    g, *_ = R.workload(name, argparse.Namespace(data=None, quick=False))
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["NMC_CACHE_DIR"] = tmp
        for k in range(repeat):
            os.environ["NMC_CACHE_DIR"] = str(Path(tmp) / str(k))  # empty each time
            c0, w0 = time.process_time(), time.perf_counter()
            cpu.prepare(g)
            row = {"cpu": time.process_time() - c0, "wall": time.perf_counter() - w0}
            c0 = time.process_time()
            text = str(emit.lower(plan.Network.of(g))[0])
            row["python"] = time.process_time() - c0
            c0 = time.process_time()
            llvm.parse_assembly(text)
            row["parse"] = time.process_time() - c0
            row["o3"], row["codegen"] = optimise_and_generate(text)
            rows.append(row)
    return {**{k: statistics.median(r[k] for r in rows) for k in rows[0]},
            "first_cpu": rows[0]["cpu"], "first_wall": rows[0]["wall"]}


def time_passes(name: str, top: int = 8) -> str:
    """LLVM's own timing of workload ``name``'s O3 and code generation (``llvm.set_time_passes``):
    the ``top`` passes by time, with the report's total."""
    sys.path.insert(0, str(HERE))
    import runtime as R

    g, *_ = R.workload(name, argparse.Namespace(data=None, quick=False))
    text = str(emit.lower(plan.Network.of(g))[0])
    llvm.set_time_passes(True)
    try:
        optimise_and_generate(text)
    finally:
        report = llvm.report_and_reset_timings()
        llvm.set_time_passes(False)
    lines = report.splitlines()
    first = next(i for i, line in enumerate(lines) if "--- Name ---" in line)
    total = next(line.strip() for line in lines if "Total Execution Time" in line)
    return "\n".join([f"{name}: {total}", *lines[first:first + 1 + top]])


def ab(args) -> None:
    """Interleaved rounds of :func:`cold` in fresh processes, tree A then tree B (module docstring)."""
    names = args.workloads.split(",")
    got: dict = {(t, n): [] for t in "AB" for n in names}
    for _ in range(args.rounds):
        for tree, path in (("A", args.a), ("B", args.b)):
            env = {**os.environ, "PYTHONPATH": str(Path(path).resolve())}
            out = subprocess.run([sys.executable, __file__, "--workloads", args.workloads, "--repeat",
                                  str(args.repeat), "--json"], capture_output=True, text=True, env=env, check=True)
            for n, row in json.loads(out.stdout.splitlines()[-1]).items():
                got[tree, n].append(row)
                print(f"{tree} {n:7s} cpu {row['cpu']:.3f} s  wall {row['wall']:.3f} s  first compile: cpu "
                      f"{row['first_cpu']:.3f} s wall {row['first_wall']:.3f} s", flush=True)
    for n in names:
        a, b = got["A", n], got["B", n]
        ratios = [y["cpu"] / x["cpu"] for x, y in zip(a, b)]
        print(f"{n}: median CPU s A {statistics.median(r['cpu'] for r in a):.3f}, B "
              f"{statistics.median(r['cpu'] for r in b):.3f}; median ratio B/A {statistics.median(ratios):.3f} "
              f"over {args.rounds} rounds; first compile's wall s A {statistics.median(r['first_wall'] for r in a):.3f}, "
              f"B {statistics.median(r['first_wall'] for r in b):.3f}")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("layers", nargs="*", type=int, help="chain depths (default 8 32 64)")
    ap.add_argument("--dense", action="store_true", help="DenseNet-like blocks (dense_block) of these depths")
    ap.add_argument("--zoo-block", type=int, metavar="SIZE",
                    help="the light zoo's DenseNet-121, first block, at SIZE x SIZE (densenet_block)")
    ap.add_argument("--workloads", help="runtime.py workloads, comma-separated: their cold compile")
    ap.add_argument("--repeat", type=int, default=7, help="compiles per process")
    ap.add_argument("--a", help="source tree A (the base)")
    ap.add_argument("--b", help="source tree B (the change)")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--time-passes", action="store_true", help="with --workloads: LLVM's pass timings of each")
    ap.add_argument("--json", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.zoo_block:
        print(zoo_block(args.zoo_block))
    elif args.workloads and args.time_passes:
        for n in args.workloads.split(","):
            print(time_passes(n))
    elif args.workloads and args.a and args.b:
        ab(args)
    elif args.workloads:
        rows = {n: cold(n, args.repeat) for n in args.workloads.split(",")}
        if args.json:
            print(json.dumps(rows))
        for n, r in ([] if args.json else rows.items()):
            print(f"{n:7s} cold compile: CPU {r['cpu']:.3f} s, wall {r['wall']:.3f} s (median of {args.repeat}; the "
                  f"first {r['first_cpu']:.3f} / {r['first_wall']:.3f}); python {r['python']:.3f}, parse "
                  f"{r['parse']:.3f}, O3 {r['o3']:.3f}, codegen {r['codegen']:.3f}")
    else:
        for n in args.layers or [8, 32, 64]:
            print(measure(n, dense_block if args.dense else chain), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

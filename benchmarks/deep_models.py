"""Deep models (issue 22): time and peak memory of ``nmc import`` / ``nmc compile`` against depth.

    python benchmarks/deep_models.py [--sizes 2500,5000,10000,20000] [--kinds nmd-ann,nmd-snn,onnx]
                                     [--steps import,compile] [--target mesh-board-4]

Each model is a chain of ``N`` layers of 8 units, written to a temporary folder:

* ``nmd-ann``: ``.nmd`` layer chains, alternately ``dense(8, weight = splat(0.1))`` and ``relu``,
  one statement per layer (``N`` layers, ``N`` ops);
* ``nmd-snn``: ``.nmd`` spiking chain: ``N`` LIF populations of 8, each fed by the one before
  through a dense projection (``2 N`` ops);
* ``onnx``: an ONNX graph of ``N`` nodes, alternately ``MatMul`` (an 8×8 initialiser) and ``Relu``,
  built with ``onnx.helper``.

Every (kind, step, N) runs ``nmc.cli.main`` in a fresh child process, which reports its wall
and CPU seconds and its peak resident memory (``ru_maxrss``, the interpreter included).  The
``cpu/1k`` column is CPU seconds per 1,000 layers: constant when the step is linear in depth.
``compile`` runs the default pipeline for ``--target``; an ANN (``nmd-ann``, ``onnx``) is
calibrated on 16 random samples and converted with binary spikes (``--convert burst=1``, not
the mesh chips' default burst neurons: the figures documented were measured with them).
The machine's load shows in ``wall``; ``cpu`` is the process's own time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def nmd_ann(n: int) -> str:
    lines, prev = ["network deep", "input x: [8]"], "x"
    for i in range(n):
        layer = "dense(8, weight = splat(0.1))" if i % 2 == 0 else "relu"
        lines.append(f"h{i} = {prev} -> {layer}")
        prev = f"h{i}"
    return "\n".join(lines + [f"output {prev}"]) + "\n"


def nmd_snn(n: int) -> str:
    lines = ["network deep(dt = 1ms, timesteps = 8)", "input x: [8] encode poisson(seed = 1)"]
    for i in range(n):
        lines.append(f"pop h{i}: [8] lif(tau = 20ms, threshold = 1.0)")
        lines.append(f"connect {f'h{i - 1}' if i else 'x'} -> h{i} dense(weight = splat(0.5))")
    return "\n".join(lines + [f"output h{n - 1}"]) + "\n"


def onnx_chain(n: int) -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.full((8, 8), 0.1, np.float32), "W")
    nodes, prev = [], "x"
    for i in range(n):
        kind, inputs = ("MatMul", [prev, "W"]) if i % 2 == 0 else ("Relu", [prev])
        nodes.append(helper.make_node(kind, inputs, [f"h{i}"], name=f"n{i}"))
        prev = f"h{i}"
    g = helper.make_graph(nodes, "deep", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 8])],
                          [helper.make_tensor_value_info(prev, TensorProto.FLOAT, [1, 8])], [w])
    return helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)]).SerializeToString()


MAKERS = {"nmd-ann": (".nmd", nmd_ann), "nmd-snn": (".nmd", nmd_snn), "onnx": (".onnx", onnx_chain)}


def child(argv: list[str]) -> None:
    """Run one nmc command in this process; print wall, CPU and peak memory as JSON."""
    from nmc.cli import main

    wall, cpu = time.perf_counter(), time.process_time()
    rc = main(argv)
    print(json.dumps({"rc": rc, "wall": time.perf_counter() - wall, "cpu": time.process_time() - cpu,
                      "peak_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


def measure(kind: str, step: str, n: int, target: str, folder: str) -> dict:
    ext, make = MAKERS[kind]
    path = os.path.join(folder, f"{kind}-{n}{ext}")
    data = make(n)
    with open(path, "wb") as f:
        f.write(data.encode() if isinstance(data, str) else data)
    argv = (["import", path, "-o", path + ".nmir"] if step == "import"
            else ["compile", path, "--target", target, "-o", path + ".nmb"])
    if step == "compile" and kind != "nmd-snn":
        import numpy as np

        calib = os.path.join(folder, "calib.npz")
        np.savez(calib, x=np.random.default_rng(0).random((16, 8), np.float32))
        argv += ["--calib", calib, "--convert", "burst=1"]
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(argv)], capture_output=True, text=True,
                         cwd=ROOT, env={**os.environ, "NMC_NO_CACHE": "1"})
    lines = out.stdout.strip().splitlines()
    if out.returncode != 0 or not lines:
        return {"rc": out.returncode, "error": out.stderr.strip().splitlines()[-1:] or ["?"]}
    return json.loads(lines[-1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--sizes", default="2500,5000,10000,20000", help="layers (comma-separated)")
    p.add_argument("--kinds", default=",".join(MAKERS), help=f"of {', '.join(MAKERS)}")
    p.add_argument("--steps", default="import", help="import, compile (comma-separated)")
    p.add_argument("--target", default="mesh-board-4", help="chip for compile (default mesh-board-4)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(json.loads(args.child))
        return 0
    print("| model | step | layers | rc | wall s | cpu s | cpu/1k layers | peak MiB |")
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.kinds.split(","):
            for step in args.steps.split(","):
                for n in (int(s) for s in args.sizes.split(",")):
                    r = measure(kind, step, n, args.target, folder)
                    if "error" in r:
                        print(f"| {kind} | {step} | {n} | {r['rc']} | {r['error'][0]} | | | |", flush=True)
                        continue
                    print(f"| {kind} | {step} | {n} | {r['rc']} | {r['wall']:.1f} | {r['cpu']:.1f} | "
                          f"{1000 * r['cpu'] / n:.2f} | {r['peak_mib']:.0f} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""ImageNet-class networks of the onnx light zoo mapped onto boards sized for them
(``python benchmarks/zoo.py --models resnet50``).

For each model of ``<onnx>/backend/test/data/light/light_<name>.onnx`` (the ``onnx`` package's
own copy): import, convert (``canonicalize,calibrate,normalize{timesteps=T},
convert-to-spiking{timesteps=T,maxpool=tree},quantize{weight-bits=8}`` on ``--calib`` seeded
uniform-random inputs in [0, 1]; no ``measure-rates``, so placement and link loads use the
route pass's assumed rate), then ``nmc.compile(..., board="auto")`` on the chip ``--chip``
(default ``mesh-board-4``: Loihi-class cores with fan-in splitting, docs/mesh-target.md): the
smallest board of that chip that holds the cores.  Printed per model: neurons, synapses,
cores against the partitioner's lower bound, dendrite cores (fan-in splitting), chips, the
board, convert seconds, mapping seconds (partition, place, route, and the rest of
``nmc.compile``: IR snapshot, emitter, resource summary), and the peak resident memory of the
process (``ru_maxrss``: conversion included).  With ``--run N`` the first N seeded inputs also
run on the emulator and the CPU runtime, and the row says whether the outputs are identical.

    python benchmarks/zoo.py [--models resnet50,vgg19] [--calib 2] [--timesteps 8] [--run 0]
"""

from __future__ import annotations

import argparse
import os
import resource
import time

import numpy as np

import nmc
from nmc.targets.image import read_image


def light_model(name: str) -> str:
    import onnx

    return os.path.join(os.path.dirname(onnx.__file__), "backend", "test", "data", "light", f"light_{name}.onnx")


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def row(name: str, args) -> dict:
    out = {"model": name}
    graph = nmc.load(light_model(name))
    shape = graph.inputs[0].type.shape
    rng = np.random.default_rng(args.seed)
    x = rng.random((max(args.calib, args.run), *shape), dtype=np.float32)
    T = args.timesteps
    start = time.perf_counter()
    snn = nmc.optimize(graph, f"canonicalize,calibrate,normalize{{timesteps={T}}},"
                              f"convert-to-spiking{{timesteps={T},maxpool=tree}},quantize{{weight-bits=8}}",
                       calibration=x[:args.calib], seed=args.seed)
    out["convert_s"] = time.perf_counter() - start
    start = time.perf_counter()
    image = nmc.compile(snn, target=args.chip, timesteps=T, seed=args.seed, board="auto")
    out["map_s"] = time.perf_counter() - start
    passes = image.stats["passes"]
    out.update({f"{p}_s": passes.get(p) for p in ("partition", "place", "route")})
    out["other_s"] = out["map_s"] - sum(passes.get(p, 0.0) for p in ("partition", "place", "route"))
    res = image.manifest["resources"]
    out.update(neurons=res["neurons"], synapses=res["synapses"], cores=res["cores"], lower_bound=res["cores_lower_bound"],
               chips=res["chips"], board=image.target, busiest=res["max_link_load"],
               dendrites=res.get("dendrite_cores", 0))
    out["peak_gib"] = peak_gib()
    if args.run:
        path = f"/tmp/zoo-{name}.nmb"
        image.save(path)
        del image
        emu = nmc.run(path, x[:args.run], backend="emulator")
        cpu = nmc.run(read_image(path), x[:args.run], backend="cpu")
        out["identical"] = all(np.array_equal(a, b) for a, b in zip(emu.outputs, cpu.outputs))
        out["emu_sample_steps_per_s"] = args.run * emu.steps / emu.run_s
        os.unlink(path)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", default="resnet50")
    ap.add_argument("--chip", default="mesh-board-4")
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--run", type=int, default=0)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    for name in args.models.split(","):
        r = row(name, args)
        print(" | ".join(f"{k} = {v:.4g}" if isinstance(v, float) else f"{k} = {v}" for k, v in r.items()), flush=True)


if __name__ == "__main__":
    main()

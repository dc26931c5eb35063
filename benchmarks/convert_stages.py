"""One zoo network's conversion pass by pass (``python benchmarks/convert_stages.py NAME``):
after import and after each pass of the zoo's conversion (benchmarks/zoo.py: ``canonicalize,
calibrate, normalize{timesteps=8}, convert-to-spiking{timesteps=8,maxpool=tree},
quantize{weight-bits=8}`` on its two seeded calibration images), the pass's seconds, the
process's peak resident memory so far (``ru_maxrss``: it only grows, so a stage whose figure
rises is where a new peak was reached), the graph's op count and its blobs' bytes.  Run it
under an address-space limit (``prlimit --as=...``) to see which pass a limit stops: the
error is printed with the stage it came from."""

from __future__ import annotations

import resource
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo import seeded_images, zoo_dir  # noqa: E402

PASSES = ("canonicalize", "calibrate", "normalize{timesteps=8}", "convert-to-spiking{timesteps=8,maxpool=tree}",
          "quantize{weight-bits=8}")


def peak_gib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def main() -> None:
    import nmc
    from nmc.compiler import resolve_target
    from nmc.passmanager import PassContext, PassManager

    name = sys.argv[1]
    start = time.perf_counter()
    graph = nmc.load(str(zoo_dir() / f"light_{name}.onnx"))
    print(f"{name}: import {time.perf_counter() - start:.1f} s, peak {peak_gib():.2f} GiB, {len(graph.ops)} ops", flush=True)
    x_cal, _ = seeded_images(graph.inputs[0].type.shape, 2, 2, 0)
    ctx = PassContext(target=resolve_target("mesh-board-4").chip, calibration=x_cal, seed=0)
    for p in PASSES:
        start = time.perf_counter()
        try:
            graph = PassManager(p, ctx).run(graph)
        except Exception as err:  # noqa: BLE001 — the stage a limit stops is the result
            print(f"{name}: {p} stopped after {time.perf_counter() - start:.1f} s, peak {peak_gib():.2f} GiB: "
                  f"{type(err).__name__}: {str(err).splitlines()[0][:200]}", flush=True)
            return
        size = sum(b.data.nbytes for b in graph.blob_table().values()) / 2**30
        print(f"{name}: {p} {time.perf_counter() - start:.1f} s, peak {peak_gib():.2f} GiB, {len(graph.ops)} ops, "
              f"blobs {size:.2f} GiB", flush=True)


if __name__ == "__main__":
    main()

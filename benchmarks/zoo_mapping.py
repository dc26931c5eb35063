"""One light-zoo network's mapping alone, by stage: time, CPU time, peak memory, image digest.

Mapping (``nmc.compile(..., board="auto")`` of the integer graph, as benchmarks/zoo.py's
*map* stage does it, links unlimited as its ``--links report``) is what this times; import
and conversion are done once and the integer graph kept in a file, so that mapping can be
measured again and again in fresh processes:

    python benchmarks/zoo_mapping.py --convert resnet50 GRAPH.pkl   # import + convert (zoo.py's stages 1-2)
    python benchmarks/zoo_mapping.py GRAPH.pkl [--digest]           # map alone

The second prints, per step of ``nmc.compile`` (``fit-board``, each mapping pass, ``emit``,
``resource-summary`` from ``image.stats``; *rest*: the graph's copy, snapshot, digest and
manifest), its wall seconds, the process's CPU seconds over the step and the peak resident
memory during it (sampled every 20 ms), then the whole mapping's; ``--digest`` adds the
image's SHA-256 (the same graph and commit give the same digest: compare two commits with
it).  A pickled graph is this script's own intermediate file: read only files you wrote.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import pickle
import resource
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from zoo import MAPPING_PASSES, seeded_images, unlimited_links, zoo_dir  # noqa: E402

RECURSION = 100_000  # the graph's values and ops refer to each other: pickle recurses deeply


def convert(network: str, out: str, timesteps: int, calib: int, seed: int) -> None:
    """Import and convert ``network`` as benchmarks/zoo.py does (assumed rates) and pickle the integer graph."""
    import nmc
    from nmc.compiler import default_pipeline, resolve_target
    from nmc.passmanager import PassContext, PassManager

    graph = nmc.load(str(zoo_dir() / f"light_{network}.onnx"))
    x_cal, _ = seeded_images(graph.inputs[0].type.shape, calib, 0, seed)
    target = resolve_target("mesh-board-4")
    convert = "lrn=scale" if graph.walk("ann.lrn") else ""
    pipeline = default_pipeline(graph, target, 2, timesteps, seed, calibrated=True,
                                convert=",".join(o for o in (convert, "burst=1") if o))  # binary, as zoo.py
    front = pipeline[:pipeline.index(MAPPING_PASSES[0])].rstrip(",").replace(",measure-rates", "")
    start = time.perf_counter()
    snn = PassManager(front, PassContext(target=target.chip, calibration=x_cal, seed=seed)).run(graph)
    print(f"converted in {time.perf_counter() - start:.1f} s ({front})")
    sys.setrecursionlimit(RECURSION)
    tmp = out + ".tmp"
    with open(tmp, "wb") as f:
        pickle.dump(snn, f, protocol=5)
    os.replace(tmp, out)


class Sampler:
    """Resident memory sampled every 20 ms in a thread: ``peak(t0, t1)`` over a time span."""

    def __init__(self):
        self.samples: list[tuple[float, float]] = []
        self.page = os.sysconf("SC_PAGE_SIZE")
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while not self.stop:
            with open("/proc/self/statm") as f:
                self.samples.append((time.perf_counter(), int(f.read().split()[1]) * self.page / 2**30))
            time.sleep(0.02)

    def peak(self, a: float, b: float) -> float:
        return max((r for t, r in self.samples if a <= t <= b), default=float("nan"))


def map_alone(path: str, timesteps: int, seed: int, digest: bool) -> None:
    import nmc
    import nmc.compiler as compiler
    from nmc.compiler import resolve_target

    sys.setrecursionlimit(RECURSION)
    with open(path, "rb") as f:
        snn = pickle.load(f)
    sampler = Sampler()
    steps: list[tuple[str, float, float, float, float]] = []  # name, wall start, end, cpu start, end

    def timed(name, fn):
        def run(*a, **k):
            t, c = time.perf_counter(), time.process_time()
            try:
                return fn(*a, **k)
            finally:
                steps.append((name, t, time.perf_counter(), c, time.process_time()))
        return run

    cls = compiler.target_class(resolve_target("mesh-board-4"))
    for name, method in (("fit-board", "fit_board"), ("emit", "emit_sections"), ("resource-summary", "resource_summary")):
        setattr(cls, method, timed(name, getattr(cls, method)))
    run_one = compiler.PassManager._run_one
    compiler.PassManager._run_one = lambda self, p, *a, **k: timed(p.NAME, run_one)(self, p, *a, **k)
    with tempfile.TemporaryDirectory(prefix="nmc-zoo-") as tmp:
        chip = unlimited_links(resolve_target("mesh-board-4"), tmp)
        t0, c0 = time.perf_counter(), time.process_time()
        image = nmc.compile(snn, target=chip, timesteps=timesteps, seed=seed, board="auto")
        t1, c1 = time.perf_counter(), time.process_time()
    sampler.stop = True
    print(f"{'step':18s} {'wall s':>8s} {'cpu s':>8s} {'peak GiB':>9s}")
    for name, a, b, ca, cb in sorted(steps, key=lambda s: s[1]):
        print(f"{name:18s} {b - a:8.1f} {cb - ca:8.1f} {sampler.peak(a, b):9.2f}")
    rest_wall = (t1 - t0) - sum(b - a for _, a, b, _, _ in steps)
    rest_cpu = (c1 - c0) - sum(cb - ca for *_, ca, cb in steps)
    print(f"{'rest':18s} {rest_wall:8.1f} {rest_cpu:8.1f}")
    print(f"{'map':18s} {t1 - t0:8.1f} {c1 - c0:8.1f} {sampler.peak(t0, t1):9.2f}   "
          f"(ru_maxrss {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB; "
          f"load average {os.getloadavg()[0]:.1f}; {image.manifest['resources']['cores']} cores, {image.target})")
    if digest:
        from nmc.targets.image import encode_image

        print("image sha256", hashlib.sha256(encode_image(image)).hexdigest())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("graph", help="the pickled integer graph (written with --convert)")
    ap.add_argument("--convert", metavar="NETWORK", help="import and convert this light-zoo network into GRAPH")
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--calib", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--digest", action="store_true", help="print the image's SHA-256")
    args = ap.parse_args()
    if args.convert:
        convert(args.convert, args.graph, args.timesteps, args.calib, args.seed)
    else:
        map_alone(args.graph, args.timesteps, args.seed, args.digest)


if __name__ == "__main__":
    main()

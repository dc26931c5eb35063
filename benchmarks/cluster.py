"""A single process against a Ray cluster (``nmc run/eval --cluster``, docs/cluster.md), in the same run.

Each workload runs twice through ``nmc.cli.main``, as a user types it: without ``--cluster``
and with ``--cluster auto``, which uses the cluster this script started (a local one of
``--cpus`` CPUs; ``--address`` joins a running one instead), so the cluster's start-up is
timed once, on its own, and not in the rows.  Every row checks identity: the files written
(``-o``, ``--record``) byte for byte and the JSON report but for ``nmc.cluster.HOST_FIELDS``
(``nmc eval``'s report, which has no timings, byte for byte).  Every network is converted with
binary spikes (``--convert burst=1``, not the mesh chip's default burst neurons): the figures
of docs/cluster.md were measured with them.

Workloads:

* ``digits emulator`` / ``digits cpu``: ``examples/digits_mlp.nmir`` compiled for ``mesh``
  (T=32, calibrated on ``examples/digits_calib.npz``), ``nmc run`` on its 450 test samples on
  the chip emulator / the CPU runtime, recording the output spikes.
* ``digits eval``: ``nmc eval examples/digits_mlp.nmir --timesteps 8,16,32`` (mesh: float and
  integer SNN on the CPU runtime) on the same samples.
* ``mnist-8 emulator`` / ``mnist-8 cpu``: the ONNX Model Zoo's mnist-8 (``<data>/models``)
  compiled for ``mesh`` (T=16, calibrated on the first 100 ``train_idx`` images), ``nmc run``
  on the first ``--emulator-samples`` / all ``--cpu-samples`` MNIST test images.
* ``mnist-8 eval``: ``nmc eval`` of mnist-8 (``--timesteps 16``, calibration as above) on the
  first ``--eval-samples`` test images.

Columns: samples, seconds and samples/s of each, the cluster's speed-up (single-process
seconds / cluster seconds) and the identity check.  Speed is never asserted.  On a machine
with fewer cores than ``--cpus`` plus the driver, the cluster competes with itself; the load
average is printed before and after.

    python benchmarks/cluster.py [--data ../shared/data] [--cpus 2] [--address HOST:PORT]
                                 [--only digits,mnist-8] [--emulator-samples 500] [--cpu-samples 10000]
                                 [--eval-samples 2000]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def cli(args: list[str]) -> tuple[float, str]:
    """``nmc ARGS`` in this process: (seconds, what it printed); exits on a failure."""
    from nmc.cli import main

    out = io.StringIO()
    began = time.perf_counter()
    with contextlib.redirect_stdout(out):
        status = main(args)
    if status != 0:
        sys.exit(f"nmc {' '.join(args)} exited {status}:\n{out.getvalue()}")
    return time.perf_counter() - began, out.getvalue()


def compare(files: dict[str, Path], cluster: dict[str, Path]) -> str:
    """'identical' when every file is the same (``nmc run``'s report: but for the host fields),
    else which differ."""
    from nmc.cluster import HOST_FIELDS

    differ = []
    for opt, path in files.items():
        a, b = path.read_bytes(), cluster[opt].read_bytes()
        if path.name.endswith(".run.json"):
            a, b = ({k: v for k, v in json.loads(t).items() if k not in HOST_FIELDS} for t in (a, b))
        if a != b:
            differ.append(opt)
    return "identical" if not differ else "DIFFERENT: " + ", ".join(differ)


def workload(name: str, argv: list[str], outputs: dict[str, str], samples: int, tmp: Path) -> dict:
    """One row: ``nmc ARGV`` with each of ``outputs`` (option -> file suffix) written, single
    process then cluster."""
    runs = {}
    for mode in ("single", "cluster"):
        files = {opt: tmp / f"{name.replace(' ', '-')}-{mode}{suffix}" for opt, suffix in outputs.items()}
        extra = [a for opt, path in files.items() for a in (opt, str(path))]
        seconds, printed = cli([*argv, *extra, *(["--cluster", "auto"] if mode == "cluster" else [])])
        runs[mode] = (seconds, files, printed)
    (s1, f1, _), (s2, f2, printed) = runs["single"], runs["cluster"]
    shards = next((line for line in printed.splitlines() if line.startswith("cluster:")), "")
    return {"workload": name, "samples": samples, "single_s": s1, "cluster_s": s2, "identity": compare(f1, f2),
            "shards": shards.split("; ")[-1] if shards else ""}


def save_npz(path: Path, **arrays) -> str:
    np.savez(path, **arrays)
    return str(path)


def digits_rows(tmp: Path) -> list[dict]:
    import nmc
    from nmc.data import load_inputs

    image = tmp / "digits.nmb"
    nmc.compile(str(EXAMPLES / "digits_mlp.nmir"), target="mesh",
                calibration=load_inputs(str(EXAMPLES / "digits_calib.npz"))[0], timesteps=32,
                convert="burst=1").save(str(image))
    data = str(EXAMPLES / "digits_test.npz")
    n = len(load_inputs(data)[0])
    run_files = {"-o": ".npy", "--record": ".npz", "--report": ".run.json"}
    rows = [workload(f"digits {backend}", ["run", str(image), "--input", data, "--backend", backend], run_files, n, tmp)
            for backend in ("emulator", "cpu")]
    rows.append(workload("digits eval", ["eval", str(EXAMPLES / "digits_mlp.nmir"), "--data", data, "--calib",
                                         str(EXAMPLES / "digits_calib.npz"), "--timesteps", "8,16,32",
                                         "--convert", "burst=1"],
                         {"--report": ".eval.json"}, n, tmp))
    return rows


def mnist_rows(tmp: Path, data_dir: Path, args) -> list[dict]:
    import nmc

    test = np.load(data_dir / "mnist" / "mnist_test.npz")
    split = np.load(data_dir / "mnist" / "mnist_test_split.npz")
    x = test["x"].astype(np.float32)[:, None] / 255.0  # pixels/255, as the data README says
    y = test["y"]
    calib = save_npz(tmp / "mnist-calib.npz", x=x[split["train_idx"][:100]])
    model = str(data_dir / "models" / "mnist-8.onnx")
    image = tmp / "mnist8.nmb"
    nmc.compile(model, target="mesh", calibration=np.load(calib)["x"], timesteps=16, convert="burst=1").save(str(image))
    run_files = {"-o": ".npy", "--record": ".npz", "--report": ".run.json"}
    rows = []
    for backend, n in (("emulator", args.emulator_samples), ("cpu", args.cpu_samples)):
        data = save_npz(tmp / f"mnist-{n}.npz", x=x[:n], y=y[:n])
        rows.append(workload(f"mnist-8 {backend}", ["run", str(image), "--input", data, "--backend", backend],
                             run_files, n, tmp))
    n = args.eval_samples
    data = save_npz(tmp / f"mnist-{n}.npz", x=x[:n], y=y[:n])
    rows.append(workload("mnist-8 eval", ["eval", model, "--data", data, "--calib", calib, "--timesteps", "16",
                                           "--convert", "burst=1"],
                         {"--report": ".eval.json"}, n, tmp))
    return rows


def print_table(rows: list[dict]) -> None:
    print("| workload | samples | single process s | samples/s | cluster s | samples/s | speed-up | shards | identity |")
    print("|---|---:|---:|---:|---:|---:|---:|---|---|")
    for r in rows:
        print(f"| {r['workload']} | {r['samples']} | {r['single_s']:.2f} | {r['samples'] / r['single_s']:.1f} | "
              f"{r['cluster_s']:.2f} | {r['samples'] / r['cluster_s']:.1f} | {r['single_s'] / r['cluster_s']:.2f}x | "
              f"{r['shards']} | {r['identity']} |")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA, help="shared data folder (mnist/, models/mnist-8.onnx)")
    ap.add_argument("--cpus", type=int, default=2, help="CPUs of the local cluster (default 2)")
    ap.add_argument("--address", help="join this running Ray cluster instead of starting a local one")
    ap.add_argument("--only", default="digits,mnist-8", help="comma-separated of digits, mnist-8")
    ap.add_argument("--emulator-samples", type=int, default=500)
    ap.add_argument("--cpu-samples", type=int, default=10000)
    ap.add_argument("--eval-samples", type=int, default=2000)
    args = ap.parse_args()
    only = set(args.only.split(","))
    if "mnist-8" in only and not (args.data / "models" / "mnist-8.onnx").is_file():
        sys.exit(f"error: {args.data} has no models/mnist-8.onnx\nhint: --data is the shared data folder, "
                 "or --only digits")

    import ray

    print(f"load average before: {' '.join(f'{v:.2f}' for v in os.getloadavg())}; {os.cpu_count()} cores; "
          f"ray {ray.__version__}")
    ray_tmp = tempfile.mkdtemp(prefix="nmc-ray-")
    began = time.perf_counter()
    if args.address:
        ray.init(address=args.address, logging_level=logging.ERROR, log_to_driver=False)
    else:
        ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, logging_level=logging.ERROR,
                 log_to_driver=False, _temp_dir=ray_tmp)
    cpus = int(ray.cluster_resources().get("CPU", 0))
    print(f"cluster start-up: {time.perf_counter() - began:.1f} s ({cpus} CPUs"
          f"{', ' + args.address if args.address else ', local'}), not in the rows below")
    rows = []
    with tempfile.TemporaryDirectory(prefix="nmc-cluster-bench-") as tmp:
        try:
            if "digits" in only:
                rows += digits_rows(Path(tmp))
            if "mnist-8" in only:
                rows += mnist_rows(Path(tmp), args.data, args)
        finally:
            ray.shutdown()
            shutil.rmtree(ray_tmp, ignore_errors=True)
    print()
    print_table(rows)
    print()
    print(f"load average after: {' '.join(f'{v:.2f}' for v in os.getloadavg())}")


if __name__ == "__main__":
    main()

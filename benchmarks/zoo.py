"""ImageNet-class networks: the ONNX light zoo through nmc as a user runs it (``python benchmarks/zoo.py``).

The ``onnx`` package ships nine ImageNet networks under ``onnx/backend/test/data/light/``
(AlexNet, VGG-19, ResNet-50, DenseNet-121, Inception v1 and v2, SqueezeNet, ShuffleNet,
ZFNet-512; 3×224×224 inputs, weights as constant fills).  For each, in its own process (its
own peak memory; a crash, out-of-memory or ``--timeout`` is that row's result):

1. **import**: ``nmc.load`` of the ``.onnx`` file (*import s*);
2. **convert**: the conversion part of ``nmc compile``'s default pipeline for the mesh class
   (``canonicalize, calibrate, normalize{timesteps=T}, convert-to-spiking{timesteps=T,
   maxpool=tree,burst=1}, quantize{weight-bits=8}``, and ``measure-rates`` with ``--rates measured``;
   binary spikes, ``--convert burst=1``: the mesh chips' default burst neurons were chosen on
   MNIST models, and docs/zoo.md's figures are those of binary spikes)
   on ``--calib`` seeded uniform [0, 1) images (``numpy.random.default_rng(--seed)``; no
   ImageNet data: the light zoo's weights are constant fills — every channel of a layer alike
   but for its bias —, so accuracy means nothing here, and neither do measured spike rates,
   which is why placement and link loads use the route pass's assumed rate by default,
   ``--rates assumed``); networks with LRN (AlexNet, ZFNet, Inception v1) get ``--convert
   lrn=scale`` unless ``--lrn refuse`` (*convert s*);
3. **map**: ``nmc.compile(..., board="auto")`` of the integer graph onto the smallest board
   of ``--chip`` that fits — the mesh class's ``fit_board`` — with ``partition, place,
   route`` and emission (*map s*); *cores* against the partitioner's lower bound, *dendrite
   cores* (those of them holding partial sums: fan-in splitting), *chips* used, and the board.
   The default chip, ``mesh-board-4`` (targets/chips/mesh-board-4.toml: the Loihi-class core
   with the shipped board's slower links between chips), declares ``[fanin]``, without which
   ResNet-50's and VGG-19's 3×3 convolutions over 512 channels (4608 inputs a neuron) fit no
   core (docs/mesh-target.md);
   Link capacities: with ``--links report`` (the default) the board is mapped with every link's
   capacity raised to the largest a chip description allows, and the row counts the links
   whose expected load (at the assumed or measured rate) exceeds the chip's real capacity —
   on-chip ``noc.link_capacity``, between chips ``noc.chip_link_capacity`` — beside the
   busiest link's load, so that the other columns are filled where routing on the real board
   would stop with *link … over capacity*; ``--links enforce`` maps on the chip as it is;
4. **run**: ``--samples`` more seeded images on the emulator and on the CPU runtime (LLVM JIT,
   compile time excluded), *sample-steps/s* = samples × steps / run seconds, and whether the
   two gave the same outputs bit for bit.

A refusal (an ``NmcError``) prints the stage and the first line of the message in place of
the numbers after it.  *peak GiB* is the row's peak resident memory (``ru_maxrss`` of its
process: conversion, mapping and both runs).  Nothing is hidden: ``NMC_MAX_MEMORY`` (the stage
estimates of nmc/limits.py) is set to ``--max-memory`` and printed under the table.  *peak GiB to map*
is the same figure taken right after mapping (import, conversion and mapping; ``ru_maxrss`` only
grows, so it is the larger of conversion's and mapping's peaks), before the image is saved and
run.  A second table splits each row's time by pass and step (``image.stats``): conversion
passes, then ``--board auto``'s sizing (*fit board*: it partitions the graph, and the
partition pass reuses that plan, so *partition* is then only the pass's own work), the mapping
passes (each with the verifier and the reproducer's snapshot after and before it), the
emitter, the resource summary, and the rest of ``nmc.compile`` (the graph's copy and
printed snapshot, source digest, manifest).

``--cluster auto`` (or a Ray address; Ray is the ``nmc[cluster]`` extra) adds the Ray check
(docs/cluster.md): the image of ``--cluster-network`` (default squeezenet) is kept, and
``nmc run IMAGE --input X --backend B -o OUT --report R`` runs ``--cluster-samples`` seeded
images through ``nmc.cli.main`` twice, in a single process and with ``--cluster``; the output
files are compared byte for byte and the reports but for their host fields (timings), and the
line under the tables says *identical* or which *differ*.

Without ``--markdown`` the tables are aligned text; with it, Markdown (docs/zoo.md).

    python benchmarks/zoo.py [--networks squeezenet,resnet50,...] [--timesteps 8] [--calib 2]
        [--samples 2] [--chip mesh-board-4] [--lrn scale|refuse] [--rates assumed|measured] [--links report|enforce]
        [--timeout 1800] [--max-memory 16G] [--jobs 1]
        [--cluster auto [--cluster-network squeezenet] [--cluster-samples 4] [--cluster-backend cpu]]
        [--markdown] [--json OUT] [--rows-from LOG]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

from mapping import isolated, memory_available_gib, peak_gib  # noqa: E402

NETWORKS = ["squeezenet", "shufflenet", "bvlc_alexnet", "zfnet512", "inception_v1", "inception_v2",
            "densenet121", "resnet50", "vgg19"]
MAPPING_PASSES = ("partition", "place", "route")
MAPPING_PHASES = ("fit-board", "resource-summary")  # nmc.compile's steps beside the passes (and "emit")


def zoo_dir() -> Path:
    import onnx

    return Path(onnx.__file__).resolve().parent / "backend" / "test" / "data" / "light"


def first_line(err: BaseException) -> str:
    """The message's first line, the zoo's folder left out of the model's path."""
    return str(err).strip().splitlines()[0].replace(f"{zoo_dir()}/", "")


def seeded_images(shape, calib: int, samples: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(calibration images, run images): uniform [0, 1) from ``default_rng(seed)``, in that order."""
    rng = np.random.default_rng(seed)
    return rng.random((calib, *shape), dtype=np.float32), rng.random((samples, *shape), dtype=np.float32)


UNLIMITED = 1 << 32  # the largest link capacity a chip description takes (targets/mesh/chip.py)


def unlimited_links(target, folder: str) -> str:
    """A copy of ``target``'s chip description with every link capacity ``UNLIMITED``, written
    into ``folder``; its path."""
    import re

    text = target.chip_text.decode("utf-8")
    for key in ("link_capacity", "chip_link_capacity"):
        text = re.sub(rf"(?m)^(\s*{key}\s*=\s*)\d+", rf"\g<1>{UNLIMITED}", text)
    path = Path(folder) / f"{target.name}.toml"
    path.write_text(text, encoding="utf-8")
    return str(path)


def links_over(image, chip) -> tuple[int, float]:
    """(links whose expected load exceeds ``chip``'s capacity for their kind, the busiest load)."""
    from nmc.targets.mesh.views import link_loads

    capacity = {"on-chip": chip.noc.link_capacity, "inter-chip": chip.noc.chip_link_capacity}
    rows = link_loads(image.sections)
    over = sum(1 for r in rows if r["kind"] in capacity and r["load"] > capacity[r["kind"]])
    return over, max((r["load"] for r in rows), default=0.0)


def network_row(spec: dict) -> dict:
    """Import, convert, map and run one zoo network (module docstring); one table row.
    ``spec["keep"]``: a path to save the image at (the Ray check runs it again), its run
    images beside it (``.x.npy`` for ``.nmb``)."""
    import nmc
    from nmc.compiler import default_pipeline, resolve_target
    from nmc.diagnostics import NmcError
    from nmc.passmanager import PassContext, PassManager

    os.environ["NMC_MAX_MEMORY"] = spec["max_memory"]
    name, T, seed = spec["network"], spec["timesteps"], spec["seed"]
    row: dict = {"network": name}
    start = time.perf_counter()
    try:
        graph = nmc.load(str(zoo_dir() / f"light_{name}.onnx"))
    except NmcError as err:
        return {**row, "error": f"import: {first_line(err)}", "peak_gib": peak_gib()}
    row["import_s"] = time.perf_counter() - start
    x_cal, x_run = seeded_images(graph.inputs[0].type.shape, spec["calib"], spec["samples"], seed)
    convert = "lrn=scale" if spec["lrn"] == "scale" and graph.walk("ann.lrn") else ""
    row["convert_options"] = convert or "-"
    target = resolve_target(spec["chip"])
    pipeline = default_pipeline(graph, target, 2, T, seed, calibrated=True,
                                convert=",".join(o for o in (convert, "burst=1") if o))  # binary (docstring)
    front = pipeline[:pipeline.index(MAPPING_PASSES[0])].rstrip(",")
    if spec["rates"] == "assumed":
        front = front.replace(",measure-rates", "")
    start = time.perf_counter()
    try:
        ctx = PassContext(target=target.chip, calibration=x_cal, seed=seed)
        snn = PassManager(front, ctx).run(graph)
    except NmcError as err:
        return {**row, "error": f"convert: {first_line(err)}", "peak_gib": peak_gib()}
    row["convert_s"] = time.perf_counter() - start
    for pass_name, seconds in ctx.timings:
        row[f"{pass_name}_s"] = row.get(f"{pass_name}_s", 0.0) + seconds
    notes = [r for r in ctx.remarks if "lrn-to-scale" in r and "agreement" in r]
    if notes:
        row["note"] = notes[0]
    del graph
    with tempfile.TemporaryDirectory(prefix="nmc-zoo-") as tmp:
        chip = spec["chip"] if spec["links"] == "enforce" else unlimited_links(target, tmp)
        start = time.perf_counter()
        try:
            image = nmc.compile(snn, target=chip, timesteps=T, seed=seed, board="auto")
        except NmcError as err:
            return {**row, "error": f"map: {first_line(err)}", "map_s": time.perf_counter() - start,
                    "peak_gib": peak_gib()}
    row["map_s"] = time.perf_counter() - start
    row["links_over"], row["busiest_link"] = links_over(image, target.chip)
    row["map_peak_gib"] = peak_gib()  # import, conversion and mapping: before the image is saved and run
    passes, phases = image.stats["passes"], image.stats.get("phases", {})
    row.update({f"{p}_s": passes.get(p) for p in MAPPING_PASSES})
    row.update({f"{p}_s": phases.get(p) for p in MAPPING_PHASES})
    row["emit_s"] = phases.get("emit")
    row["map_other_s"] = row["map_s"] - sum(passes.get(p, 0.0) for p in MAPPING_PASSES) - sum(phases.values())
    res = image.manifest["resources"]
    row.update(neurons=res["neurons"], synapses=res["synapses"], cores=res["cores"],
               lower_bound=res["cores_lower_bound"], dendrites=res.get("dendrite_cores", 0), chips=res["chips"],
               board=image.target + (" (links unlimited)" if spec["links"] == "report" else ""))
    del snn
    with tempfile.TemporaryDirectory(prefix="nmc-zoo-") as tmp:
        path = spec.get("keep") or str(Path(tmp) / "net.nmb")
        image.save(path)
        if spec.get("keep"):
            np.save(str(Path(path).with_suffix(".x.npy")), x_run)
        del image
        try:
            emu = nmc.run(path, x_run, backend="emulator")
            cpu = nmc.run(path, x_run, backend="cpu")
        except NmcError as err:
            return {**row, "error": f"run: {first_line(err)}", "peak_gib": peak_gib()}
        except MemoryError:  # the row keeps what it measured before the runs
            return {**row, "error": f"run: MemoryError: over the {spec['memory_limit_gib']:.1f} GiB address-space "
                                    "limit", "peak_gib": peak_gib()}
    row["emu_sample_steps_per_s"] = len(x_run) * emu.steps / emu.run_s
    row["cpu_sample_steps_per_s"] = len(x_run) * cpu.steps / cpu.run_s
    row["steps"] = emu.steps
    same = all(np.array_equal(a, b) for a, b in zip(emu.outputs, cpu.outputs))
    row["identical"] = "yes" if same else "NO"
    row["peak_gib"] = peak_gib()
    return row


def cluster_check(image: str, x: np.ndarray, backend: str, address: str, tmp: Path) -> str:
    """``nmc run`` of ``image`` on ``x`` in this process and with ``--cluster address``: the
    output files compared byte for byte and the reports but for their host fields
    (benchmarks/cluster.py); 'identical' or what differs, with where the cluster run went."""
    from cluster import cli, compare

    data = tmp / "x.npz"
    np.savez(data, x=x)
    files, seconds, printed = {}, {}, ""
    for mode, extra in (("single", []), ("cluster", ["--cluster", address])):
        files[mode] = {"-o": tmp / f"{mode}.npy", "--report": tmp / f"{mode}.run.json"}
        argv = ["run", image, "--input", str(data), "--backend", backend, *extra,
                *(a for opt, path in files[mode].items() for a in (opt, str(path)))]
        seconds[mode], printed = cli(argv)
    where = next((line for line in printed.splitlines() if line.startswith("cluster:")), "cluster: ?")
    return (f"{compare(files['single'], files['cluster'])} ({where.removeprefix('cluster: ')}; "
            f"{seconds['single']:.1f} s single process, {seconds['cluster']:.1f} s with --cluster)")


COLS = [("network", "network"), ("convert_options", "convert"), ("neurons", "neurons"), ("synapses", "synapses"),
        ("cores", "cores"), ("lower_bound", "lower bound"), ("cores/lb", "cores/lb"),
        ("dendrites", "dendrite cores"), ("chips", "chips"), ("board", "board"),
        ("busiest_link", "busiest link (spikes/step)"), ("links_over", "links over capacity"), ("import_s", "import s"),
        ("convert_s", "convert s"), ("map_s", "map s"), ("map_peak_gib", "peak GiB to map"), ("peak_gib", "peak GiB"),
        ("emu_sample_steps_per_s", "emulator sample-steps/s"), ("cpu_sample_steps_per_s", "CPU sample-steps/s"),
        ("identical", "emulator = CPU")]

PASS_COLS = [("network", "network"), ("canonicalize_s", "canonicalize"), ("lrn-to-scale_s", "lrn-to-scale"),
             ("calibrate_s", "calibrate"), ("normalize_s", "normalize"), ("convert-to-spiking_s", "convert-to-spiking"),
             ("quantize_s", "quantize"), ("measure-rates_s", "measure-rates"),
             ("fit-board_s", "fit board"), ("partition_s", "partition"), ("place_s", "place"), ("route_s", "route"),
             ("emit_s", "emit"), ("resource-summary_s", "resource summary"), ("map_other_s", "map: the rest")]


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}"
    if isinstance(v, int):
        return f"{v:,}"
    return str(v)


def cells(r: dict, cols) -> list[str]:
    """A row's cells; a refused row shows what it reached, then the refusal, in its second cell."""
    values = [_fmt(r["cores"] / r["lower_bound"] if key == "cores/lb" and r.get("lower_bound") else r.get(key))
              for key, _ in cols]
    if "error" not in r:
        return values
    reached = ", ".join(f"{title} {v}" for (key, title), v in zip(cols[1:], values[1:]) if v != "-")
    return [values[0], f"{reached}{'; ' if reached else ''}**{r['error']}**"]


def render(rows: list[dict], cols, markdown: bool) -> str:
    """The table as Markdown, or as aligned text (a refused row's message runs on)."""
    head = [t for _, t in cols]
    body = [cells(r, cols) for r in rows]
    if markdown:
        return "\n".join(["| " + " | ".join(head) + " |", "|" + "|".join("---" for _ in head) + "|"]
                         + ["| " + " | ".join(c) + " |" for c in body])
    full = [c for c in body if len(c) == len(head)]
    widths = [max(len(x) for x in col) for col in zip(head, *full)]
    return "\n".join("  ".join(x.rjust(w) if i else x.ljust(w) for i, (x, w) in enumerate(zip(c, widths)))
                     if len(c) == len(head) else f"{c[0].ljust(widths[0])}  {c[1].replace('**', '')}"
                     for c in [head, *body])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default=",".join(NETWORKS), help="comma-separated (default: all nine)")
    ap.add_argument("--timesteps", type=int, default=8)
    ap.add_argument("--calib", type=int, default=2, help="seeded calibration images")
    ap.add_argument("--samples", type=int, default=2, help="seeded images run on the emulator and the CPU runtime")
    ap.add_argument("--chip", default="mesh-board-4",
                    help="chip description whose boards --board auto sizes (default: mesh-board-4, with [fanin])")
    ap.add_argument("--lrn", choices=("scale", "refuse"), default="scale",
                    help="networks with LRN: --convert lrn=scale (default) or the default refusal")
    ap.add_argument("--rates", choices=("assumed", "measured"), default="assumed",
                    help="spike rates for placement and link loads: route's assumed rate (default) or measure-rates")
    ap.add_argument("--links", choices=("report", "enforce"), default="report",
                    help="map with link capacities unlimited and count the links over the chip's (default), "
                         "or map on the chip as it is")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per network")
    ap.add_argument("--max-memory", default="16G", help="NMC_MAX_MEMORY for the rows (nmc's stage estimates)")
    ap.add_argument("--memory-limit", type=float, help="GiB of address space per row (default: 90%% available)")
    ap.add_argument("--jobs", type=int, default=1,
                    help="rows run at once, each in its own process (their timings then share the cores)")
    ap.add_argument("--in-process", action="store_true", help="run the rows in this process (debugging)")
    ap.add_argument("--cluster", metavar="auto|ADDRESS", help="add the Ray check (module docstring)")
    ap.add_argument("--keep", metavar="DIR", help="save each row's image as DIR/NETWORK.nmb and its run images "
                    "as DIR/NETWORK.x.npy (to run them again with nmc run, each executor in its own process)")
    ap.add_argument("--cluster-network", default="squeezenet")
    ap.add_argument("--cluster-samples", type=int, default=4)
    ap.add_argument("--cluster-backend", default="cpu", choices=("emulator", "cpu"))
    ap.add_argument("--markdown", action="store_true", help="Markdown tables (docs/zoo.md)")
    ap.add_argument("--json", type=Path)
    ap.add_argument("--rows-from", type=Path, metavar="LOG",
                    help="print the tables of the rows a run wrote to stderr (LOG) instead of running")
    args = ap.parse_args()
    names = [n for n in args.networks.split(",") if n]
    unknown = set(names) - set(NETWORKS)
    if unknown:
        ap.error(f"unknown network(s) {', '.join(sorted(unknown))}; choose from {', '.join(NETWORKS)}")
    if args.cluster and args.cluster_network not in names:
        ap.error(f"--cluster-network {args.cluster_network} is not among --networks")
    limit = args.memory_limit or 0.9 * memory_available_gib() / max(1, args.jobs)
    if args.rows_from:
        rows, ray_line = rows_from(args.rows_from, names), None
    else:
        rows, ray_line = run_rows(args, names, limit)
    print_tables(args, rows, ray_line, limit)


def rows_from(log: Path, names: list[str]) -> list[dict]:
    """The rows a run printed to stderr (``name: {json}``, one a line) for ``names``, in that
    order: the tables of a run stopped before its end."""
    found = {}
    for line in log.read_text(encoding="utf-8").splitlines():
        name, _, rest = line.partition(": ")
        if name in names and rest.startswith("{"):
            found[name] = json.loads(rest)
    return [found[n] for n in names if n in found]


def run_rows(args, names: list[str], limit: float) -> tuple[list[dict], str | None]:
    """Every network's row (each in its own process, ``--jobs`` at a time), then the Ray check."""
    with tempfile.TemporaryDirectory(prefix="nmc-zoo-") as tmp:
        kept = str(Path(tmp) / "cluster.nmb")

        def one(name: str) -> dict:
            spec = {"network": name, "timesteps": args.timesteps, "calib": args.calib, "samples": args.samples,
                    "chip": args.chip, "lrn": args.lrn, "rates": args.rates, "links": args.links, "seed": args.seed,
                    "max_memory": args.max_memory, "memory_limit_gib": limit,
                    "keep": kept if args.cluster and name == args.cluster_network else
                    str(Path(args.keep) / f"{name}.nmb") if args.keep else None}
            start = time.perf_counter()
            row = isolated(network_row, spec, args.timeout, args.in_process)
            row.setdefault("network", name)
            row["wall_s"] = time.perf_counter() - start
            print(f"{name}: {json.dumps(row, default=str)}", file=sys.stderr, flush=True)
            return row

        with ThreadPoolExecutor(max_workers=1 if args.in_process else args.jobs) as pool:  # each row: a process
            rows = list(pool.map(one, names))
        ray_line = None
        if args.cluster:
            if not os.path.exists(kept):
                ray_line = f"not run: {args.cluster_network} has no image"
            else:
                import nmc

                shape = nmc.load(str(zoo_dir() / f"light_{args.cluster_network}.onnx")).inputs[0].type.shape
                _, x = seeded_images(shape, args.calib, args.cluster_samples, args.seed)
                os.environ["NMC_MAX_MEMORY"] = args.max_memory
                ray_line = cluster_check(kept, x, args.cluster_backend, args.cluster, Path(tmp))
    return rows, ray_line


def print_tables(args, rows: list[dict], ray_line: str | None, limit: float) -> None:
    print(render(rows, COLS, args.markdown))
    print("\nSeconds by pass:\n")
    print(render([r for r in rows if r.get("calibrate_s") is not None], PASS_COLS, args.markdown))
    print(f"\nT = {args.timesteps}; {args.calib} seeded calibration images, {args.samples} run; chip {args.chip} "
          f"(--board auto); spike rates {args.rates}; links {args.links}; {args.jobs} row(s) at a time; "
          f"NMC_MAX_MEMORY={args.max_memory}; address space per row {limit:.1f} GiB.")
    for r in rows:
        if r.get("note"):
            print(f"{r['network']}: {r['note']}")
    if ray_line is not None:
        print(f"\nRay check ({args.cluster_network}, {args.cluster_samples} seeded images, `nmc run --backend "
              f"{args.cluster_backend} --cluster {args.cluster}` against the single-process run): {ray_line}")
    if args.json:
        args.json.write_text(json.dumps({"rows": rows, "ray": ray_line}, indent=1, default=str) + "\n",
                             encoding="utf-8")


if __name__ == "__main__":
    main()

"""Router-table compression, nmc against PACMAN's compressors (``python benchmarks/routing.py``).

Every router table of a mapping is compressed as far as each method goes, same tables in,
entries out and seconds.  nmc (targets/multicast/compress.py) twice:
``compress_tables(..., target_length=0, effort="fast")`` (the default: the route groups —
PACMAN's ordered pair compressor with default-route removal, and a split-first variant — ORTC,
and on tables of at most 64 entries Ordered Covering as rig has it, each stopping at the
table's floor, the shortest kept; the whole of it one llvmlite-compiled call for all the tables
of the call, targets/multicast/compress_jit.py's ``compress_batch``) and ``effort="thorough"`` (every
method; compress.py's module docstring lists them).  The compiled kernels are built once per
process (or loaded from nmc's object cache) before the first timed call; the run prints how
long that took.  PACMAN: its ``router_table_compress_as_far_as_possible`` compressors.  PACMAN
(``spinnaker-pacman``) runs in its own venv through ``benchmarks/pacman_routing.py`` on the
same tables passed as JSON::

    python3.11 -m venv /work/venv-pacman && /work/venv-pacman/bin/pip install 'spinnaker-pacman==1!7.4.1'

(``--pacman-python`` points at its interpreter, default ``../venv-pacman/bin/python``); its
compressors are Ordered Covering, the ordered pair compressor, the pair compressor followed by
PACMAN's default-route removal, and the range compressor, and its best per table is the fewest
entries any of them reaches, timed by the fastest one that reaches it.

Timing: ``time.perf_counter`` around the compressor's call only (``--clock cpu``: on both sides
``time.thread_time`` instead, the calling thread's CPU time, which a loaded machine's other
work does not add to; wall time is the figure to quote from a quiet machine), the median of ``--repeats``
calls; building the input tables and checking the outputs are not timed.  PACMAN compresses
one table per call (its compressor's ``compress_table`` on its
``UnCompressedMulticastRoutingTable``, returning its entries), so its time per network is
the sum of its tables' medians.  nmc compresses a board's tables per call (``compress_tables``
on the columns the mapper builds, ``RouteTables``: keys, masks, route ids, defaultable flags
and each table's offset, returning the compressed tables' columns), as the compiler does: its
time per network is one call on all the network's tables, and its time per table, for the
per-table speed-ups, is the amortised one: one call on ``COPIES`` (48, a SpiNN-5 board's
chips) copies of that table, divided by 48 (what the table costs inside a board-sized call;
everything per table — its part of the kernel and of the result's columns — is in it).  The
input columns are what the mapper builds (``mapping.router_tables``), not a conversion left
out of the timed region; the 48 copies are gathered by ``RouteTables.take`` before the timed
calls, as the mapper would build a board of them.  PACMAN's input tables are built from the
same entries in its own process, not timed either (as before).
Every nmc table is proved equivalent to its original by ``check_equivalent`` (every allocated
key looked up in both); every PACMAN output by PACMAN's own ``compare_tables``.  The speed-up
is PACMAN's best time over nmc's.

Tables (``real``): the multicast class's own uncompressed tables
(``nmc.targets.multicast.mapping.router_tables``: key ranges per core slice, shortest-path
multicast trees, defaultable flags) of networks mapped onto ``--board`` (default
``spinnaker1-board``, one SpiNN-5 board of 48 chips) by the class's default pipeline up to
``mc-place``: ``mnist-8`` (``<data>/models/mnist-8.onnx``, calibrated on ``--calib`` MNIST
``train_idx`` images), ``cnn`` (``examples/cnn.nmd``, the same images), ``vgg11@0.5``
(benchmarks/vgg.py, seeded random weights and calibration images) and the size series
(benchmarks/mapping.py's ``conv_graph``: four layers of ``n/4`` neurons, 2 channels, 3x3
convolutions, integer weights; mapped directly).  ``--synthetic`` adds networks from a
generator that only mimics such tables (layers in slices of 256 neurons placed chip by chip,
aligned consecutive keys per layer, ``dense``/``conv`` projections, breadth-first trees), the
harness's stand-in before the class landed; their rows say ``synthetic``.

    python benchmarks/routing.py [--networks mnist-8,cnn,vgg] [--sizes 10000 30000 100000]
        [--repeats 5] [--clock wall|cpu] [--data ../shared/data] [--synthetic] [--json OUT]
        [--pacman-python PATH]
    python benchmarks/routing.py --from-json OUT    # the tables of a saved run again

The machine may be shared with other work: nmc and PACMAN run in the same run, one network
after the other, and medians damp but do not remove the noise.
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
from collections import deque
from pathlib import Path

from nmc.targets.multicast.check import check_equivalent
from nmc.targets.multicast.compress import compress_tables
from nmc.targets.multicast.compress_jit import prepare
from nmc.targets.multicast.table import RouteTables, core_bit, link_bit, opposite

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CAPACITY = 1024  # SpiNNaker1's router entries
OFFSETS = ((1, 0), (1, 1), (0, 1), (-1, 0), (-1, -1), (0, -1))  # links E, NE, N, W, SW, S
SPINN5_ROWS = ((0, 4), (0, 5), (0, 6), (0, 7), (1, 7), (2, 7), (3, 7), (4, 7))
CHIPS = [(x, y) for y, (lo, hi) in enumerate(SPINN5_ROWS) for x in range(lo, hi + 1)]
CORES_PER_CHIP = 16

# synthetic networks: layers (neurons, projection into the layer from the previous one)
SYNTHETIC = {
    "synthetic-cnn": [(3136, None), (6272, "conv"), (3136, "conv"), (1568, "conv"), (128, "dense"), (10, "dense")],
    "synthetic-vgg": [(3072, None), (16384, "conv"), (8192, "conv"), (8192, "conv"), (4096, "conv"),
                      (4096, "conv"), (2048, "conv"), (2048, "conv"), (512, "dense"), (10, "dense")],
    "synthetic-mlp": [(784, None), (4096, "dense"), (4096, "dense"), (10, "dense")],
}
SIZES = (10_000, 30_000, 100_000, 150_000)


def _bfs_parents(src):
    parent = {src: None}
    queue = deque([src])
    while queue:
        c = queue.popleft()
        for link, (dx, dy) in enumerate(OFFSETS):
            n = (c[0] + dx, c[1] + dy)
            if n in _ON_BOARD and n not in parent:
                parent[n] = (c, link)
                queue.append(n)
    return parent


_ON_BOARD = set(CHIPS)


def synthetic_tables(layers, neurons_per_core: int, window: int) -> RouteTables:
    """The tables of the synthetic network ``layers`` (see the module docstring), chips
    ``(x, y)`` in order."""
    bits = (neurons_per_core - 1).bit_length()
    slices, base = [], 0
    for neurons, _ in layers:
        n = -(-neurons // neurons_per_core)
        base = -(-base // (1 << (n - 1).bit_length())) * (1 << (n - 1).bit_length())  # align
        slices.append([base + s for s in range(n)])
        base += n
    place, core = {}, 0
    for layer in slices:
        for s in layer:
            if core >= len(CHIPS) * CORES_PER_CHIP:
                raise ValueError(f"{sum(map(len, slices))} slices need more than the board's cores")
            place[s] = (CHIPS[core // CORES_PER_CHIP], core % CORES_PER_CHIP)
            core += 1
    routes: dict = {}  # chip -> {key: [route, arrival link or None]}
    parents = {}
    for li in range(len(layers) - 1):
        kind = layers[li + 1][1]
        src_layer, dst_layer = slices[li], slices[li + 1]
        for i, s in enumerate(src_layer):
            if kind == "dense":
                targets = dst_layer
            else:
                centre = (i * len(dst_layer)) // len(src_layer)
                targets = dst_layer[max(0, centre - window): centre + window + 1]
            src_chip = place[s][0]
            parent = parents.setdefault(src_chip, _bfs_parents(src_chip))
            key = s << bits
            for t in targets:
                chip, core_id = place[t]
                table = routes.setdefault(chip, {})
                table.setdefault(key, [0, None])[0] |= core_bit(core_id)
                while parent[chip] is not None:  # walk the tree back to the source
                    up, link = parent[chip]
                    routes.setdefault(chip, {}).setdefault(key, [0, None])[1] = opposite(link)
                    entry = routes.setdefault(up, {}).setdefault(key, [0, None])
                    entry[0] |= link_bit(link)
                    chip = up
    mask = ((1 << 32) - 1) & ~((1 << bits) - 1)
    rows = [(key, route, arrival is not None and route == link_bit(opposite(arrival)))
            for _, table in sorted(routes.items()) for key, (route, arrival) in sorted(table.items())]
    return RouteTables.from_rows([len(table) for _, table in sorted(routes.items())], [k for k, _, _ in rows],
                                 [mask] * len(rows), [r for _, r, _ in rows], [f for _, _, f in rows], sorted(routes))


def real_tables(name: str, args):
    """The multicast class's uncompressed tables of network ``name`` mapped onto ``args.board``."""
    import numpy as np

    import nmc
    from nmc.compiler import default_pipeline, resolve_target
    from nmc.passmanager import PassContext, PassManager, parse_pipeline
    from nmc.targets.multicast.mapping import router_tables

    target = resolve_target(args.board)
    if name.startswith("series"):
        from mapping import conv_graph

        snn = conv_graph(int(name.split()[1]), 2, args.seed)
    else:
        if name == "vgg11@0.5":
            from vgg import vgg11_graph

            graph = vgg11_graph(0.5, args.seed)
            calib = np.random.default_rng(args.seed).random((args.calib, 3, 32, 32), dtype=np.float32)
        else:
            test = np.load(args.data / "mnist/mnist_test.npz")
            split = np.load(args.data / "mnist/mnist_test_split.npz")
            calib = test["x"][split["train_idx"][:args.calib]].astype(np.float32)[:, None] / 255.0
            graph = nmc.load(str(args.data / "models/mnist-8.onnx" if name == "mnist-8" else ROOT / "examples/cnn.nmd"))
        pipeline = default_pipeline(graph, target, 2, 16, args.seed, calibrated=True)
        front = pipeline[:pipeline.index("mc-partition")].rstrip(",")
        snn = nmc.optimize(graph, front, target=target.chip, calibration=calib, seed=args.seed)
    PassManager(parse_pipeline(f"mc-partition,mc-place{{seed={args.seed}}}"), PassContext(target=target.chip)).run(snn)
    return router_tables(snn, target.chip), target.chip.router.entries


def series_layers(neurons: int):
    """The size series: four equal layers, conv projections."""
    return [(neurons // 4, None)] + [(neurons // 4, "conv")] * 3


COPIES = 48  # a table's amortised time: one call on this many copies of it (a SpiNN-5 board's chips)


CLOCKS = {"wall": time.perf_counter, "cpu": time.thread_time}
_CLOCK = ["wall"]  # --clock


def _timed(tables, chips, capacity: int, effort: str, repeats: int):
    """(median seconds, results) of ``repeats`` calls of ``compress_tables`` on ``tables``."""
    timer = CLOCKS[_CLOCK[0]]
    times = []
    for _ in range(repeats):
        start = timer()
        out = compress_tables(tables, capacity, chips=chips, target_length=0, effort=effort)
        times.append(timer() - start)
    return statistics.median(times), out


def run_nmc(tables: RouteTables, capacity: int, effort: str, repeats: int):
    """(seconds of one call on all of ``tables``, per-table rows): every result checked; with
    ``effort="fast"`` each row also has the table's amortised seconds (one call on ``COPIES``
    copies of it, divided by ``COPIES``)."""
    chips = [f"{chip}" for chip in tables.chips]
    seconds, out = _timed(tables, chips, capacity, effort, repeats)
    rows = []
    for t, chip in enumerate(chips):
        check_equivalent(tables.entries(t), tables.flags(t), out.entries(t))
        rows.append({"entries": int(out.sizes()[t])})
        if effort == "fast":
            copies = tables.take([t] * COPIES)  # a board of this table (not timed: the mapper builds columns)
            rows[-1]["seconds"] = _timed(copies, [chip] * COPIES, capacity, effort, repeats)[0] / COPIES
    return seconds, rows


def run_pacman(tables: RouteTables, python: str, repeats: int):
    payload = {"tables": [
        {"x": x, "y": y, "entries": [[*e, f] for e, f in zip(tables.entries(t), tables.flags(t))]}
        for t, (x, y) in enumerate(tables.chips)
    ]}
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "tables.json", Path(tmp) / "results.json"
        src.write_text(json.dumps(payload))
        proc = subprocess.run([python, str(HERE / "pacman_routing.py"), str(src), str(dst), str(repeats), _CLOCK[0]],
                              capture_output=True, text=True)
        if proc.returncode:
            sys.exit(f"PACMAN failed:\n{proc.stderr[-3000:]}")
        result = json.loads(dst.read_text())
    return result["pacman"], result["results"]


EFFORTS = ("fast", "thorough")


def compare(name, source, tables, pacman_python, capacity=CAPACITY, repeats=1):
    network = {effort: run_nmc(tables, capacity, effort, repeats) for effort in EFFORTS}
    mine = {effort: rows for effort, (_, rows) in network.items()}
    version, theirs = run_pacman(tables, pacman_python, repeats)
    names = list(theirs[0]) if theirs else []
    sizes = tables.sizes().tolist()
    row = {
        "network": name, "tables": source, "routers": len(tables),
        "entries_in": sum(sizes), "max_in": max(sizes, default=0), "pacman": version,
    }
    fewest, fastest = [], []
    for t in theirs:
        ok = {k: v for k, v in t.items() if v["ok"]}
        fewest.append(min(v["entries"] for v in ok.values()))
        fastest.append(min(v["seconds"] for v in ok.values() if v["entries"] == fewest[-1]))
    row.update(pacman_best_entries=sum(fewest), pacman_best_s=sum(fastest))
    for effort, (seconds, rows) in network.items():
        if effort == "fast":
            ratios = sorted(f / max(r["seconds"], 1e-9) for r, f in zip(rows, fastest))
            row[f"nmc_{effort}_table_speedups"] = [ratios[0], statistics.median(ratios), ratios[-1]] if ratios else []
        row[f"nmc_{effort}_entries"] = sum(r["entries"] for r in rows)
        row[f"nmc_{effort}_max"] = max((r["entries"] for r in rows), default=0)
        row[f"nmc_{effort}_s"] = seconds
        row[f"nmc_{effort}_worse"] = sum(r["entries"] > f for r, f in zip(rows, fewest))
        row[f"nmc_{effort}_better"] = sum(r["entries"] < f for r, f in zip(rows, fewest))
    row["per_table"] = [  # for --json: every table's entries and seconds, each side
        {"chip": list(chip), "entries_in": sizes[i], **{f"nmc_{effort}": rows[i] for effort, rows in mine.items()},
         "pacman": theirs[i]}
        for i, chip in enumerate(tables.chips)
    ]
    for k in names:
        row[f"{k}_entries"] = sum(t[k]["entries"] for t in theirs)
        row[f"{k}_s"] = sum(t[k]["seconds"] for t in theirs)
        row[f"{k}_failed"] = sum(not t[k]["ok"] for t in theirs)
    return row


def print_table(rows):
    cols = ["network", "tables", "routers", "entries in (max)", "PACMAN best entries", "PACMAN best s"]
    for effort in EFFORTS:
        cols += [f"nmc {effort} entries", f"tables fewer / more than PACMAN ({effort})", f"nmc {effort} s",
                 f"speed-up ({effort}{'; per table min / median / max' if effort == 'fast' else ''})"]
    print("| " + " | ".join(cols) + " |")
    print("|" + "---|" * len(cols))
    for r in rows:
        cells = [r["network"], r["tables"], str(r["routers"]), f"{r['entries_in']} ({r['max_in']})",
                 str(r["pacman_best_entries"]), f"{r['pacman_best_s']:.5f}"]
        for effort in EFFORTS:
            s = r[f"nmc_{effort}_s"]
            speedup = f"{r['pacman_best_s'] / max(s, 1e-9):.1f}×"
            if effort == "fast":
                speedup += " ({:.1f} / {:.1f} / {:.1f})".format(*r[f"nmc_{effort}_table_speedups"])
            cells += [str(r[f"nmc_{effort}_entries"]), f"{r[f'nmc_{effort}_better']} / {r[f'nmc_{effort}_worse']}",
                      f"{s:.5f}", speedup]
        print("| " + " | ".join(cells) + " |")
    names = [k[:-8] for k in rows[0] if k.endswith("_entries") and not k.startswith(("nmc_", "pacman_"))
             and k != "entries_in"] if rows else []
    print()
    print("| network | " + " | ".join(f"{k} entries | {k} s" for k in names) + " |")
    print("|---|" + "---|---|" * len(names))
    for r in rows:
        cells = " | ".join(f"{r[k + '_entries']}{' (' + str(r[k + '_failed']) + ' failed check)' if r[k + '_failed'] else ''}"
                           f" | {r[k + '_s']:.4f}" for k in names)
        print(f"| {r['network']} | {cells} |")


def _pacman_best(table):
    """(entries, seconds, compressor) of PACMAN's best on one ``per_table`` row."""
    ok = {k: v for k, v in table["pacman"].items() if v["ok"]}
    fewest = min(v["entries"] for v in ok.values())
    seconds, name = min((v["seconds"], k) for k, v in ok.items() if v["entries"] == fewest)
    return fewest, seconds, name


def print_summary(rows):
    """Every table of the run at once: entries and speed-up against PACMAN's best, the tables
    below 10x, and the tables where PACMAN's Ordered Covering beats its pair compressor."""
    tables = [t for r in rows for t in r["per_table"]]
    if not tables:
        return
    best = [_pacman_best(t) for t in tables]
    total = sum(b[0] for b in best)
    seconds = sum(b[1] for b in best)
    print(f"\nAll {len(tables)} tables: PACMAN's best {total} entries in {seconds:.5f} s")
    for effort in EFFORTS:
        mine = [t[f"nmc_{effort}"] for t in tables]
        entries, s = sum(m["entries"] for m in mine), sum(r[f"nmc_{effort}_s"] for r in rows)
        fewer = sum(m["entries"] < b[0] for m, b in zip(mine, best))
        more = sum(m["entries"] > b[0] for m, b in zip(mine, best))
        print(f"- nmc {effort}: {entries} entries ({1 - entries / total:.1%} fewer), shorter on {fewer} tables, "
              f"longer on {more}; {s:.5f} s (one call per network, summed), {seconds / max(s, 1e-9):.1f}x")
    ratios = sorted((b[1] / max(t["nmc_fast"]["seconds"], 1e-9), t["entries_in"], b[2], b[1], t["nmc_fast"]["seconds"])
                    for t, b in zip(tables, best))
    print(f"- fast per table (amortised): speed-up min {ratios[0][0]:.1f}x, median {statistics.median(r[0] for r in ratios):.1f}x, "
          f"max {ratios[-1][0]:.1f}x; {sum(r[0] >= 10 for r in ratios)} tables at 10x or more")
    for ratio, n, name, theirs, mine in ratios:
        if ratio < 10:
            print(f"  - {ratio:.1f}x: {n} entries, PACMAN's best {name} {theirs * 1e6:.1f} us, nmc fast {mine * 1e6:.1f} us")
    oc = [t for t in tables if t["pacman"]["ordered_covering"]["entries"]
          < min(t["pacman"]["pair"]["entries"], t["pacman"]["pair+dr"]["entries"])]
    print(f"- PACMAN's ordered_covering beats its pair compressors on {len(oc)} tables "
          f"(at most {max((t['entries_in'] for t in oc), default=0)} entries); nmc fast is longer than it on "
          f"{sum(t['nmc_fast']['entries'] > t['pacman']['ordered_covering']['entries'] for t in oc)} of them")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--networks", default="mnist-8,cnn,vgg", help="comma-separated of mnist-8,cnn,vgg, or none")
    ap.add_argument("--sizes", type=int, nargs="*", default=[10_000, 30_000, 100_000], help="series sizes (neurons)")
    ap.add_argument("--board", default="spinnaker1-board")
    ap.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--calib", type=int, default=20, help="calibration samples")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeats", type=int, default=5, help="timed calls per table and compressor (median)")
    ap.add_argument("--clock", choices=sorted(CLOCKS), default="wall",
                    help="wall (perf_counter) or cpu (thread_time: the caller's CPU time), both sides")
    ap.add_argument("--synthetic", action="store_true", help="also the synthetic networks and series")
    ap.add_argument("--neurons-per-core", type=int, default=256, help="synthetic tables")
    ap.add_argument("--window", type=int, default=2, help="synthetic conv projections: slices either side")
    ap.add_argument("--pacman-python", default=os.environ.get("PACMAN_PYTHON", str(ROOT.parent / "venv-pacman/bin/python")))
    ap.add_argument("--json", type=Path, help="write the rows here")
    ap.add_argument("--from-json", type=Path, help="print the tables of a run written by --json, and stop")
    args = ap.parse_args()
    _CLOCK[0] = args.clock
    if args.from_json:
        rows = json.loads(args.from_json.read_text())
        print_table(rows)
        print_summary(rows)
        return
    if not Path(args.pacman_python).exists():
        sys.exit(f"no PACMAN interpreter at {args.pacman_python}: see benchmarks/pacman_routing.py's docstring")
    sys.path.insert(0, str(HERE))
    names = {"mnist-8": "mnist-8", "cnn": "cnn", "vgg": "vgg11@0.5"}
    wanted = [names[n] for n in args.networks.split(",") if n and n != "none"]
    if any(n in ("mnist-8", "cnn") for n in wanted) and not args.data.exists():
        sys.exit(f"no data folder {args.data} (mnist-8 and cnn need it): --data, or --networks vgg")
    compiled, cached = prepare()  # once per process, before any timed call
    print(f"# nmc's compression kernels {'loaded from the cache' if cached else 'compiled'} in {compiled:.3f} s",
          file=sys.stderr)
    rows = []
    for name in wanted + [f"series {n}" for n in args.sizes]:
        start = time.perf_counter()
        tables, capacity = real_tables(name, args)
        print(f"# {name}: mapped in {time.perf_counter() - start:.1f} s", file=sys.stderr)
        rows.append(compare(name, "real", tables, args.pacman_python, capacity, args.repeats))
    if args.synthetic:
        for name, layers in [*SYNTHETIC.items(), *((f"synthetic series {n}", series_layers(n)) for n in SIZES)]:
            tables = synthetic_tables(layers, args.neurons_per_core, args.window)
            rows.append(compare(name, "synthetic", tables, args.pacman_python, repeats=args.repeats))
    print(f"PACMAN: spinnaker-pacman {rows[0]['pacman'] if rows else '?'}; nmc and PACMAN in the same run, "
          f"{args.clock} clock; "
          f"{os.cpu_count()} CPUs, possibly shared with other work (load average {os.getloadavg()[0]:.1f} at the end); "
          f"nmc's kernels {'loaded from the cache' if cached else 'compiled'} once, in {compiled:.3f} s (not timed below)")
    print_table(rows)
    print_summary(rows)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1))


if __name__ == "__main__":
    main()

"""Mapping quality and compile speed: real networks and a size series (``python benchmarks/mapping.py``).

Two tables, one row per network.

**Networks** — compiled through the public API (``nmc.optimize`` for the default conversion
pipeline of an ANN with calibration data, which ends with ``measure-rates``, then
``nmc.compile`` of the integer ``snn`` graph for a chip board, whose default pipeline is then
just ``partition,place{seed},route``; ``compile s`` is the sum of the two, ``convert s`` the
first (rate measurement included), then the mapping passes, and ``emit etc. s`` the rest of
``nmc.compile``: the IR snapshot the image carries, the emitter and the resource summary):

* ``mnist-8`` — the ONNX Model Zoo's MNIST CNN (``<data>/models/mnist-8.onnx``);
* ``cnn``, ``mlp`` — the project's own MNIST models (``examples/mnist_cnn.onnx``, ``mnist_mlp.onnx``);
* ``vgg11@W`` — a VGG-11-class CNN on 3x32x32 inputs with seeded random weights and channel
  widths ×W (benchmarks/vgg.py), calibrated and run on seeded uniform-random images.

``--resnet`` adds ``resnet50-shape``: an integer graph with the layer shapes of the onnx light
zoo's ResNet-50 at 224x224 (``resnet50_graph``: seeded weights, the max pool as one pooling
projection, every population at ``--resnet-rate`` spikes per step), mapping only (no
conversion, no emulation: ``compile s`` is ``nmc.compiler.compile_graph(..., board="auto")``
on ``--board``'s chip, whose fan-in splitting its 4,608- and 100,352-input neurons need), so
the mapping time of a network of that size is measured without its conversion (which
benchmarks/zoo.py runs on the real model).

The MNIST models are calibrated on the first ``--calib`` ``train_idx`` images of
``<data>/mnist`` (pixels/255, as ``<data>/README.md`` specifies for every model, mnist-8
included) and run on the first ``--samples`` ``heldout_idx`` images.  Each network gets a
board of just enough chips: the base description ``--board`` (default ``mesh-board-4``: the
Loihi-class chip of targets/chips/mesh.toml with the shipped board's slower links between
chips) with ``chips_x``/``chips_y`` rewritten, starting from ``--min-chips`` (VGG: 4, a
multi-chip board) and grown to ``⌈cores / 128⌉`` chips when the partitioner reports that
the graph needs more cores (at most ``--max-chips``).  A network that still does not fit
prints ``does not fit: <first line of the error>``; when the only problem is a link between
chips over its capacity, the network is mapped again on the same board with chip-to-chip
links as fast as on-chip ones (``+fast`` in the board column), so its other figures are shown.

**Size series** — layered integer graphs of n nominal neurons (4 equal layers: an encoder of
n/4 inputs, then three populations), mapped by running the ``partition``, ``place`` and
``route`` passes and the emitter directly (``nmc.compile`` would also print the whole graph
into the image, which is not mapping), on ``targets/chips/mesh.toml`` with just enough chips
(30% headroom).  ``--series conv`` (the default): each layer ``--channels`` channels of a
square plane, fed by a 3x3 convolution (padding 1) of seeded int8 weights — mapped by shape;
``--series sparse``: each neuron draws ``--fan-in`` int8 synapses from a window of the previous
layer around its own position — irregular, so mapped from explicit lists.  The busiest link is at
the assumed ``--rate`` spikes per step (every input enters at the host port at one corner, so
the rate is kept low).  Below the table: the mapping time per neuron and the fitted exponent
of mapping time against n (least-squares slope in log-log), beside the slope that n·log n
would give over the same sizes — so the "close to n log n" claim is checked by the numbers.

Columns: cores used and the partitioner's lower bound (and their ratio), chips used, the
annealed placement's cost and the naive placement's (cost = Σ rate × hops; and the ratio),
the busiest link (expected spikes per step, and which link), the emulator's throughput in
sample-steps per second (samples × steps / run seconds, preparing the image excluded) — for
the networks also the CPU runtime's (``--backend cpu``, LLVM JIT; its compile time excluded)
and the reference semantics' on the same image and samples (the baseline, measured in the
same row), the emulator/reference ratio, and whether the three gave the same outputs bit for
bit — and the row's peak resident memory.  Each row runs in its own process (``spawn``), so its peak
memory is its own and a row that runs out of memory (its address space is capped at
``--memory-limit``, default 90% of the memory available, so that is a MemoryError rather than
the system's OOM killer) or time (``--timeout``) does not end the benchmark; a series size
whose extrapolated peak memory exceeds the memory available is skipped with the reason
(``--force`` runs it anyway).

    python benchmarks/mapping.py [--quick] [--data ../shared/data] [--networks mnist-8,cnn,mlp,vgg]
        [--vgg-widths 0.5] [--sizes 10000 100000 1000000] [--timesteps 16] [--seed 0] [--json OUT]

``--quick`` (a smoke test, well under a minute): mlp, mnist-8, VGG-11 at width 1/16 and the
series at 10^3 and 10^4.  The default: all four networks (VGG-11 at width 0.5; the full width,
``--vgg-widths 1``, needs 4608 distinct inputs per neuron in its 512-channel layers, over the
4096 input axons of a core: it maps with fan-in splitting, which mesh-board-4 declares, and
``dendrites`` counts the cores holding partial sums) and the series at 10^4, 10^5,
10^6; ``--sizes ... 10000000`` adds 10^7.  ``--data`` given but missing is an error; when
the default ``../shared/data`` is missing, the rows that need it are skipped with a note.
Deterministic: every random choice comes from ``--seed`` (timings and memory vary).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import re
import resource
import sys
import tempfile
import time
import traceback
import types
from pathlib import Path

import numpy as np

from nmc.diagnostics import NmcError
from nmc.ir.ann import Input, Output
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType
from nmc.passmanager import PassContext, PassManager, parse_pipeline
from nmc.targets.chip import parse_chip
from nmc.targets.mesh.chipclass import CHIP_CLASS
from nmc.targets.mesh.emulator import prepare
from nmc.targets.mesh.sections import emit_sections

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CHIPS = ROOT / "targets" / "chips"
MESH = CHIPS / "mesh.toml"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
MODELS = {"mnist-8": "models/mnist-8.onnx", "cnn": ROOT / "examples" / "mnist_cnn.onnx",
          "mlp": ROOT / "examples" / "mnist_mlp.onnx"}
MNIST_FILES = ("mnist/mnist_test.npz", "mnist/mnist_test_split.npz")


def peak_gib() -> float:
    """This process's peak resident memory so far (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


# ------------------------------------------------------------------------- boards


def board_text(base: str, chips: int, fast_chip_links: bool = False) -> tuple[str, str]:
    """(text, label) of chip description ``base`` (a shipped name or a .toml path) on a board
    of ``chips`` chips (cx × cy, as square as possible); ``fast_chip_links``: links between
    chips get the on-chip link capacity."""
    path = Path(base) if base.endswith(".toml") else CHIPS / f"{base}.toml"
    text = path.read_text(encoding="utf-8")
    cx = math.ceil(math.sqrt(chips))
    cy = math.ceil(chips / cx)
    text = re.sub(r"(?m)^chips_x = \d+", f"chips_x = {cx}", text)
    text = re.sub(r"(?m)^chips_y = \d+", f"chips_y = {cy}", text)
    label = f"{cx}x{cy}"
    if fast_chip_links:
        capacity = re.search(r"(?m)^link_capacity = (\d+)", text)[1]
        text = re.sub(r"(?m)^chip_link_capacity = \d+", f"chip_link_capacity = {capacity}", text)
        label += "+fast"
    text = re.sub(r'(?m)^name = "([^"]*)"', lambda m: f'name = "{m[1]}-{label}"', text)
    return text, label


def board_for(neurons: int) -> tuple[object, str]:
    """mesh.toml on a board of just enough chips (30% headroom), as chip and text."""
    text, label = board_text(str(MESH), max(1, math.ceil(neurons * 1.3 / (1024 * 128))))
    return parse_chip(text, f"mesh-{label}.toml"), text


# --------------------------------------------------------------------- networks


def network_inputs(spec: dict):
    """(ann graph, calibration batch, run batch) of one network."""
    import nmc

    if spec["kind"] == "vgg":
        if str(HERE) not in sys.path:
            sys.path.insert(0, str(HERE))
        from vgg import vgg11_graph

        rng = np.random.default_rng(spec["seed"])
        x_cal = rng.random((spec["calib"], 3, 32, 32), dtype=np.float32)
        x_run = rng.random((spec["samples"], 3, 32, 32), dtype=np.float32)
        return vgg11_graph(spec["width"], spec["seed"]), x_cal, x_run
    data = Path(spec["data"])
    test = np.load(data / MNIST_FILES[0])
    split = np.load(data / MNIST_FILES[1])
    x = test["x"].astype(np.float32)[:, None] / 255.0  # [N, 1, 28, 28], pixels/255 (data README)
    x_cal = x[split["train_idx"][:spec["calib"]]]
    x_run = x[split["heldout_idx"][:spec["samples"]]]
    path = Path(spec["path"])
    return nmc.load(str(path if path.is_absolute() else data / path)), x_cal, x_run


def network_row(spec: dict) -> dict:
    """Convert, map (growing the board as needed), emulate; one table row."""
    import nmc
    from nmc.compiler import default_pipeline, resolve_target

    row = {"network": spec["label"]}
    graph, x_cal, x_run = network_inputs(spec)
    T, seed = spec["timesteps"], spec["seed"]
    with tempfile.TemporaryDirectory(prefix="nmc-mapping-") as tmp:
        def board(chips: int, fast: bool):
            text, label = board_text(spec["board"], chips, fast)
            path = Path(tmp) / f"board-{label}.toml"
            path.write_text(text, encoding="utf-8")
            return str(path), label

        chips, fast = spec["min_chips"], False
        toml, row["board"] = board(chips, fast)
        target = resolve_target(toml)
        per_chip = target.chip.mesh.cores_x * target.chip.mesh.cores_y
        # The conversion part of nmc.compile's default pipeline with calibration data (through
        # measure-rates, so placement and link loads use measured spike rates), once; then
        # nmc.compile maps the integer snn graph (its pipeline for it: partition,place,route).
        # Binary spikes (burst=1, not the mesh chips' default burst neurons): the figures of
        # docs/mesh-target.md and docs/scale.md are those of binary spikes.
        pipeline = default_pipeline(graph, target, 2, T, seed, calibrated=True, convert="burst=1")
        front = pipeline[:pipeline.index("partition")].rstrip(",")
        start = time.perf_counter()
        try:
            snn = nmc.optimize(graph, front, target=target.chip, calibration=x_cal, seed=seed) if front else graph
        except NmcError as err:
            return {**row, "error": f"does not fit: {str(err).splitlines()[0]}"}
        row["convert_s"] = time.perf_counter() - start
        while True:
            start = time.perf_counter()
            try:
                image = nmc.compile(snn, target=toml, timesteps=T, seed=seed)
                break
            except NmcError as err:
                first = str(err).splitlines()[0]
                need = re.search(r"needs (\d+) cores", first)
                grow = math.ceil(int(need[1]) / per_chip) if need else 0
                if chips < grow <= spec["max_chips"]:
                    chips = grow
                elif "link between chips" in first and not fast:
                    row["note"] = f"on {row['board']} (chip links as described): does not fit: {first}"
                    fast = True
                else:
                    return {**row, "error": f"does not fit: {first}", "peak_gib": peak_gib()}
                toml, row["board"] = board(chips, fast)
        row["map_s"] = time.perf_counter() - start
        row["compile_s"] = row["convert_s"] + row["map_s"]
        passes = image.stats["passes"]
        row.update({f"{p}_s": passes.get(p) for p in ("partition", "place", "route")})
        row["other_s"] = row["map_s"] - sum(passes.get(p, 0.0) for p in ("partition", "place", "route"))
        res = image.manifest["resources"]
        row.update(neurons=res["neurons"], synapses=res["synapses"], cores=res["cores"],
                   lower_bound=res["cores_lower_bound"], chips=res["chips"], cost=res["placement_cost"],
                   cost_naive=res["placement_cost_naive"], link_load=res["max_link_load"],
                   link=res["busiest_link"], assumed_rate=res.get("assumed_rate"),
                   dendrites=res.get("dendrite_cores", 0))
        if spec["emulate"]:
            path = str(Path(tmp) / "net.nmb")
            image.save(path)
            del image
            result = nmc.run(path, x_run, backend="emulator")
            row["emu_sample_steps_per_s"] = len(x_run) * result.steps / result.run_s
            row["steps"] = result.steps
            baseline = nmc.run(path, x_run, backend="reference")  # the image's graph, by the semantics
            row["ref_sample_steps_per_s"] = len(x_run) * baseline.steps / baseline.run_s
            cpu = nmc.run(path, x_run, backend="cpu")  # the CPU runtime (LLVM), same image
            row["cpu_sample_steps_per_s"] = len(x_run) * cpu.steps / cpu.run_s
            row["identical"] = "yes" if all(np.array_equal(a, b) and np.array_equal(a, c) for a, b, c
                                            in zip(result.outputs, baseline.outputs, cpu.outputs)) else "NO"
    row["peak_gib"] = peak_gib()
    return row


# ------------------------------------------------------------------ size series


def layered_graph(neurons: int, fan_in: int, seed: int, window: int = 4096) -> Graph:
    rng = np.random.default_rng(seed)
    n = max(neurons // 4, 1)
    g = Graph("layered", {"timesteps": 8})
    x = g.add(Input(declared_type=TensorType((n,), "f32")), "x")
    prev = g.add(Encode(x=x), "e")
    for layer in range(3):
        centre = np.arange(n)
        offsets = rng.integers(-window // 2, window // 2, size=(n, fan_in))
        src = np.clip(centre[:, None] + offsets, 0, n - 1)
        src = np.sort(src, axis=1)
        tgt = np.repeat(np.arange(n), fan_in)
        src = src.reshape(-1)
        order = np.argsort(src, kind="stable")
        indptr = np.concatenate([[0], np.cumsum(np.bincount(src, minlength=n))]).astype(np.int64)
        w = rng.integers(-40, 80, size=len(src)).astype(np.int8)
        c = g.add(Project(src=prev, kind="sparse", weight=Blob(w[order]), indptr=Blob(indptr),
                          indices=Blob(tgt[order].astype(np.int64)), shape=(n,)), f"c{layer}")
        pop = g.add(Population(currents=[c], declared_type=SpikeType((n,)), bits=24, threshold=200,
                               dv=int(rng.integers(0, 400))), f"h{layer}")
        prev = pop
    d = g.add(Decode(x=prev), "o")
    g.add(Output(values=[d]))
    return g




def conv_graph(neurons: int, channels: int, seed: int) -> Graph:
    """A layered convolutional integer graph of about ``neurons`` neurons: an encoder of
    ``channels × S × S`` inputs, then three populations of the same shape, each fed by a 3x3
    convolution (padding 1) of seeded int8 weights from the layer before (fan-in 9·channels)."""
    rng = np.random.default_rng(seed)
    side = max(1, round(math.sqrt(neurons / 4 / channels)))
    shape = (channels, side, side)
    g = Graph("conv_layers", {"timesteps": 8})
    x = g.add(Input(declared_type=TensorType(shape, "f32")), "x")
    prev = g.add(Encode(x=x), "e")
    for layer in range(3):
        w = rng.integers(-40, 80, size=(channels, channels, 3, 3)).astype(np.int8)
        c = g.add(Project(src=prev, kind="conv2d", weight=Blob(w), pads=(1, 1, 1, 1)), f"c{layer}")
        prev = g.add(Population(currents=[c], declared_type=SpikeType(shape), bits=24, threshold=200,
                                dv=int(rng.integers(0, 400))), f"h{layer}")
    d = g.add(Decode(x=prev), "o")
    g.add(Output(values=[d]))
    return g


def resnet50_graph(seed: int, rate: float) -> Graph:
    """An integer graph with the layer shapes of ResNet-50 at 3x224x224 (the onnx light zoo's
    ``light_resnet50``: a 7x7/2 convolution, a 3x3/2 pooling, bottleneck blocks of [3, 4, 6, 3]
    with widths 64..512 and 4x expansion, 1x1/2 projection shortcuts, a 1000-way classifier over
    the last 2048x7x7 maps, i.e. the average pool folded in: 100,352 inputs per neuron), seeded
    weights in [-2, 2]; the max pool is one ``pool`` projection (the conversion's tournament
    adds populations).  Every population and the encoder carry ``calib.rate = rate``, as a
    calibrated graph carries its measured rates, for the links' loads."""
    rng = np.random.default_rng(seed)
    g = Graph("resnet50_shape", {"timesteps": 8})
    x = g.add(Input(declared_type=TensorType((3, 224, 224), "f32")), "x")
    prev = g.add(Encode(x=x), "e")
    count = iter(range(1, 1 << 20))

    def conv(src, c_in, c_out, k, stride, pad):
        w = Blob(rng.integers(-2, 3, size=(c_out, c_in, k, k)).astype(np.int8))
        return g.add(Project(src=src, kind="conv2d", weight=w, strides=(stride, stride), pads=(pad,) * 4),
                     f"c{next(count)}")

    def pop(currents, shape):
        return g.add(Population(currents=currents, declared_type=SpikeType(shape), bits=16, threshold=64),
                     f"p{next(count)}")

    h = pop([conv(prev, 3, 64, 7, 2, 3)], (64, 112, 112))
    pool = g.add(Project(src=h, kind="pool", weight=Blob(np.ones((64, 1, 1), np.int8)), kernel=(3, 3),
                         strides=(2, 2), pads=(1, 1, 1, 1)), "maxpool")
    h, c_in, size = pop([pool], (64, 56, 56)), 64, 56
    for stage, (width, blocks) in enumerate(((64, 3), (128, 4), (256, 6), (512, 3))):
        for b in range(blocks):
            stride = 2 if b == 0 and stage > 0 else 1
            out = size // stride
            a = pop([conv(h, c_in, width, 1, 1, 0)], (width, size, size))
            main = conv(pop([conv(a, width, width, 3, stride, 1)], (width, out, out)), width, 4 * width, 1, 1, 0)
            if b == 0:
                short = conv(h, c_in, 4 * width, 1, stride, 0)
            else:
                short = g.add(Project(src=h, kind="one_to_one", weight=Blob(np.ones((4 * width, out, out), np.int8))),
                              f"id{next(count)}")
            h, c_in, size = pop([main, short], (4 * width, out, out)), 4 * width, out
    w = Blob(rng.integers(-2, 3, size=(1000, c_in * size * size)).astype(np.int8))
    y = pop([g.add(Project(src=h, kind="dense", weight=w), "fc")], (1000,))
    g.add(Output(values=[g.add(Decode(x=y), "o")]))
    for op in g.walk("snn.population") + g.walk("snn.encode"):
        op.extra["calib.rate"] = rate
    return g


def resnet_row(spec: dict) -> dict:
    """Map the ResNet-50-shaped graph with ``nmc``'s compile (``board="auto"`` on ``--board``'s
    chip, which must split fan-in: 4,608 and 100,352 inputs per neuron), as benchmarks/zoo.py
    maps a converted network."""
    import os

    from nmc.compiler import compile_graph

    os.environ.setdefault("NMC_MAX_MEMORY", "16G")  # the mapping estimate is over the 4 GiB default
    graph = resnet50_graph(spec["seed"], spec["rate"])
    row = {"network": "resnet50-shape", "neurons": sum(p.result.type.size for p in graph.walk("snn.population"))}
    start = time.perf_counter()
    try:
        image = compile_graph(graph, spec["board"], timesteps=8, seed=spec["seed"], board="auto")
    except NmcError as err:
        return {**row, "error": f"does not fit: {str(err).splitlines()[0]}", "peak_gib": peak_gib()}
    row["map_s"] = row["compile_s"] = time.perf_counter() - start
    passes = image.stats["passes"]
    row.update({f"{p}_s": passes.get(p) for p in ("partition", "place", "route")})
    row["other_s"] = row["map_s"] - sum(passes.get(p, 0.0) for p in ("partition", "place", "route"))
    res = image.manifest["resources"]
    row.update(board=image.target.rsplit("-", 1)[-1], synapses=res["synapses"], cores=res["cores"],
               lower_bound=res["cores_lower_bound"], chips=res["chips"], cost=res["placement_cost"],
               cost_naive=res["placement_cost_naive"], link_load=res["max_link_load"], link=res["busiest_link"],
               dendrites=res.get("dendrite_cores", 0), peak_gib=peak_gib())
    return row


def series_row(spec: dict) -> dict:
    """Map one random layered graph by running the mapping passes and the emitter directly."""
    n, seed, rate = spec["size"], spec["seed"], spec["rate"]
    if spec["kind"] == "conv":
        graph = conv_graph(n, spec["channels"], seed)
    else:
        graph = layered_graph(n, spec["fan_in"], seed)
    chip, text = board_for(n)
    ctx = PassContext(target=chip, seed=seed)
    row = {"size": n, "board": f"{chip.mesh.chips_x}x{chip.mesh.chips_y}"}
    times = {}
    try:
        for name in ("partition", f"place{{seed={seed}}}", f"route{{rate={rate}}}"):
            start = time.perf_counter()
            PassManager(parse_pipeline(name), ctx).run(graph)
            times[name.split("{")[0]] = time.perf_counter() - start
    except NmcError as err:
        return {**row, "error": f"does not fit: {str(err).splitlines()[0]}", "peak_gib": peak_gib()}
    start = time.perf_counter()
    sections = emit_sections(graph, chip)
    times["emit"] = time.perf_counter() - start
    summary = CHIP_CLASS.resource_summary(graph, chip)
    graph_input_shape = graph.inputs[0].type.shape
    row.update({"neurons": sum(p.result.type.size for p in graph.walk("snn.population")),
                "synapses": summary["synapses"], **{f"{k}_s": v for k, v in times.items()},
                "map_s": sum(times.values()), "cores": summary["cores"],
                "lower_bound": summary["cores_lower_bound"], "chips": summary["chips"],
                "cost": summary["placement_cost"], "cost_naive": summary["placement_cost_naive"],
                "link_load": summary["max_link_load"], "link": summary["busiest_link"]})
    row["us_per_neuron"] = 1e6 * row["map_s"] / row["neurons"]
    del graph, summary
    if spec["emulate"]:
        sections["chip"] = text.encode()
        execute = prepare(types.SimpleNamespace(sections=sections))
        del sections
        x = np.random.default_rng(seed).random((spec["batch"], *graph_input_shape)).astype(np.float32)
        start = time.perf_counter()
        result = execute([x])
        row["emu_sample_steps_per_s"] = spec["batch"] * result.steps / (time.perf_counter() - start)
    row["peak_gib"] = peak_gib()
    return row


# ------------------------------------------------------------------ isolation


def _child(fn, spec, conn) -> None:
    limit = spec.get("memory_limit_gib")
    if limit:  # address-space cap: running out is a MemoryError here, not the system's OOM killer
        resource.setrlimit(resource.RLIMIT_AS, (int(limit * 2**30), int(limit * 2**30)))
    try:
        message = ("ok", fn(spec))
    except MemoryError:  # little memory to spare here: no traceback
        message = ("error", f"MemoryError: over the {limit or 0:.1f} GiB address-space limit", "")
    except BaseException as err:  # report it as the row; the benchmark goes on
        message = ("error", f"{type(err).__name__}: {err}".splitlines()[0], traceback.format_exc())
    if message[0] == "error":
        message = (*message[:2], message[2] + f"(peak resident memory {peak_gib():.1f} GiB)\n")
    conn.send(message)
    conn.close()


def isolated(fn, spec: dict, timeout: float | None, in_process: bool) -> dict:
    """``fn(spec)`` in a fresh process (its own peak memory; a crash, out-of-memory kill or
    timeout becomes the row's error)."""
    if in_process:
        return fn(spec)
    ctx = multiprocessing.get_context("spawn")
    receive, send = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(fn, spec, send))
    start = time.perf_counter()
    proc.start()
    send.close()
    message = None
    try:
        if receive.poll(timeout):
            message = receive.recv()
    except EOFError:
        pass
    if message is None and proc.is_alive():
        proc.kill()
    proc.join()
    if message is None:
        if proc.exitcode == -9 and time.perf_counter() - start < (timeout or math.inf):
            return {"error": "killed (signal 9): most likely out of memory"}
        if proc.exitcode is not None and proc.exitcode != -9:
            return {"error": f"the process ended with status {proc.exitcode}"}
        return {"error": f"stopped after {timeout:.0f} s (--timeout)"}
    if message[0] == "error":
        print(message[2], file=sys.stderr)
        return {"error": f"error: {message[1]}"}
    return message[1]


# ------------------------------------------------------------------ output


def memory_available_gib() -> float:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) / 2**20
    except OSError:
        pass
    return math.inf


def loglog_fit(n, y) -> tuple[float, float]:
    """(slope, intercept) of log y against log n."""
    slope, intercept = np.polyfit(np.log(np.asarray(n, float)), np.log(np.asarray(y, float)), 1)
    return float(slope), float(intercept)


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


def table(rows: list[dict], cols: list[tuple[str, str]], key: str) -> str:
    """Markdown table; a row with an ``error`` shows it after its key column."""
    header = [title for _, title in cols]
    cells = []
    for r in rows:
        if "error" in r:
            cells.append([_fmt(r.get(key)), _fmt(r.get("board")), r["error"]] + [""] * (len(cols) - 3))
            continue
        line = []
        for c, _ in cols:
            if c == "cores/lb":
                v = r["cores"] / r["lower_bound"] if r.get("lower_bound") else None
            elif c == "cost/naive":
                v = r["cost"] / r["cost_naive"] if r.get("cost_naive") else None
            elif c == "emu/ref":
                v = r["emu_sample_steps_per_s"] / r["ref_sample_steps_per_s"] if r.get("ref_sample_steps_per_s") else None
            elif c == "busiest":
                v = f"{r['link_load']:.4g} {r['link']}" if r.get("link") else None
            else:
                v = r.get(c)
            line.append(_fmt(v))
        cells.append(line)
    widths = [max([len(header[i])] + [len(c[i]) for c in cells if i < 2 or c[3:] != [""] * (len(cols) - 3)])
              for i in range(len(cols))]
    out = ["| " + " | ".join(h.rjust(w) for h, w in zip(header, widths)) + " |",
           "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    for c in cells:
        if c[3:] == [""] * (len(cols) - 3):
            out.append(f"| {c[0].rjust(widths[0])} | {c[1].rjust(widths[1])} | {c[2]} |")
        else:
            out.append("| " + " | ".join(v.rjust(w) for v, w in zip(c, widths)) + " |")
    return "\n".join(out)


NETWORK_COLS = [("network", "network"), ("board", "board"), ("neurons", "neurons"), ("synapses", "synapses"),
                ("compile_s", "compile s"), ("convert_s", "convert s"), ("partition_s", "partition s"),
                ("place_s", "place s"), ("route_s", "route s"), ("other_s", "emit etc. s"), ("cores", "cores"),
                ("lower_bound", "lower bound"), ("dendrites", "dendrites"),
                ("cores/lb", "cores/lb"), ("chips", "chips"), ("cost", "cost"), ("cost_naive", "naive cost"),
                ("cost/naive", "cost/naive"), ("busiest", "busiest link (spikes/step)"),
                ("emu_sample_steps_per_s", "emulator sample-steps/s"), ("cpu_sample_steps_per_s", "CPU sample-steps/s"),
                ("ref_sample_steps_per_s", "reference"),
                ("emu/ref", "emulator/reference"), ("identical", "same outputs"), ("peak_gib", "peak GiB")]
SERIES_COLS = [("size", "n"), ("board", "board"), ("neurons", "neurons"), ("synapses", "synapses"),
               ("partition_s", "partition s"), ("place_s", "place s"), ("route_s", "route s"),
               ("emit_s", "emit s"), ("map_s", "map s"), ("us_per_neuron", "µs/neuron"), ("cores", "cores"),
               ("lower_bound", "lower bound"), ("cores/lb", "cores/lb"), ("chips", "chips"), ("cost", "cost"),
               ("cost_naive", "naive cost"), ("cost/naive", "cost/naive"), ("busiest", "busiest link (spikes/step)"),
               ("emu_sample_steps_per_s", "emulator sample-steps/s"), ("peak_gib", "peak GiB")]


# ------------------------------------------------------------------ main


def data_dir(args) -> tuple[Path | None, str | None]:
    """(the data folder or None, a note when the default one is missing); exits when a given
    ``--data`` lacks the files."""
    data = args.data if args.data is not None else DEFAULT_DATA
    needed = list(MNIST_FILES) + (["models/mnist-8.onnx"] if "mnist-8" in args.networks else [])
    missing = [f for f in needed if not (data / f).is_file()]
    if not missing:
        return data, None
    if args.data is not None:
        sys.exit(f"error: --data {args.data}: missing {', '.join(missing)}\n"
                 "hint: --data is the shared data folder (MNIST test set as mnist/*.npz, models/mnist-8.onnx; "
                 "see its README.md); leave it out to skip the MNIST networks")
    return None, (f"note: {DEFAULT_DATA} is missing ({', '.join(missing)}): MNIST networks skipped "
                  "(give --data DIR to run them)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smoke test: mlp, mnist-8, VGG-11 x1/16, 10^3 and 10^4")
    ap.add_argument("--data", type=Path, help=f"shared data folder (default {DEFAULT_DATA}, skipped if missing)")
    ap.add_argument("--networks", help="comma-separated of mnist-8,cnn,mlp,vgg, or none (default: all)")
    ap.add_argument("--vgg-widths", help="VGG-11 channel width multipliers (default 0.5; quick 0.0625)")
    ap.add_argument("--sizes", type=int, nargs="*", help="total neurons per series graph (none: no series)")
    ap.add_argument("--board", default="mesh-board-4", help="base chip description of the networks' boards")
    ap.add_argument("--max-chips", type=int, default=48)
    ap.add_argument("--timesteps", type=int, default=16)
    ap.add_argument("--calib", type=int, help="calibration samples (default 100; quick 20)")
    ap.add_argument("--samples", type=int, help="emulated samples per network (default 8; quick 2)")
    ap.add_argument("--series", choices=("conv", "sparse"), default="conv",
                    help="size series graphs: 3x3 convolutions (mapped by shape) or random sparse windows (explicit)")
    ap.add_argument("--channels", type=int, default=2, help="conv series: channels per layer (fan-in 9 x channels)")
    ap.add_argument("--fan-in", type=int, default=16, help="sparse series: synapses per neuron")
    ap.add_argument("--batch", type=int, default=4, help="emulated samples per series graph")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rate", type=float, default=0.01,
                    help="series: assumed spikes per step per neuron for link loads (all inputs enter at one host port)")
    ap.add_argument("--no-emulator", action="store_true")
    ap.add_argument("--resnet", action="store_true",
                    help="also map a ResNet-50-shaped integer graph (224x224, fan-in splitting; mapping only)")
    ap.add_argument("--resnet-rate", type=float, default=0.0005,
                    help="its assumed spikes per step per neuron (calib.rate) for the links' loads")
    ap.add_argument("--timeout", type=float, default=1800, help="seconds per row")
    ap.add_argument("--force", action="store_true", help="run series sizes predicted not to fit in memory")
    ap.add_argument("--memory-limit", type=float,
                    help="GiB of address space per row (default: 90%% of the memory available at start)")
    ap.add_argument("--in-process", action="store_true", help="no process per row (debugging; shared peak memory)")
    ap.add_argument("--json", type=Path, help="write all rows here")
    args = ap.parse_args()
    q = args.quick
    args.networks = [n for n in (args.networks or ("mlp,mnist-8,vgg" if q else "mnist-8,cnn,mlp,vgg")).split(",")
                     if n and n != "none"]
    unknown = set(args.networks) - set(MODELS) - {"vgg"}
    if unknown:
        ap.error(f"unknown network(s) {', '.join(sorted(unknown))}; choose from mnist-8, cnn, mlp, vgg")
    widths = [float(w) for w in (args.vgg_widths or ("0.0625" if q else "0.5")).split(",")]
    sizes = args.sizes if args.sizes is not None else ([1000, 10_000] if q else [10_000, 100_000, 1_000_000])
    calib = args.calib or (20 if q else 100)
    samples = args.samples or (2 if q else 8)
    data, note = data_dir(args)
    emulate = not args.no_emulator
    limit = args.memory_limit or (0.9 * memory_available_gib() if math.isfinite(memory_available_gib()) else None)
    notes = [note] if note else []
    started = time.perf_counter()

    specs = []
    for name in args.networks:
        common = {"timesteps": args.timesteps, "seed": args.seed, "board": args.board, "max_chips": args.max_chips,
                  "calib": calib, "samples": samples, "emulate": emulate, "memory_limit_gib": limit}
        if name == "vgg":
            specs += [{**common, "kind": "vgg", "label": f"vgg11 x{w:g}", "width": w, "min_chips": 4}
                      for w in widths]
        elif data is not None:
            specs.append({**common, "kind": "onnx", "label": name, "path": str(MODELS[name]), "data": str(data),
                          "min_chips": 1})
    if args.resnet:
        specs.append({"kind": "resnet", "label": "resnet50-shape", "seed": args.seed, "rate": args.resnet_rate,
                      "board": args.board, "memory_limit_gib": limit})
    rows = []
    if specs:
        print(f"Networks: T = {args.timesteps}, boards of {args.board} chips, {calib} calibration samples, "
              f"{samples} emulated samples, seed {args.seed}", flush=True)
    for spec in specs:
        start = time.perf_counter()
        row = {"network": spec["label"], **isolated(resnet_row if spec["kind"] == "resnet" else network_row, spec,
                                                     args.timeout, args.in_process)}
        row["wall_s"] = time.perf_counter() - start
        rows.append(row)
        print(f"  {row['network']}: {row['wall_s']:.0f} s", file=sys.stderr, flush=True)
    if rows:
        print(table(rows, NETWORK_COLS, "network"))
        for r in rows:
            if r.get("note"):
                print(f"  {r['network']}: {r['note']}")
        print()

    series = []
    if sizes:
        what = (f"3x3 convolutions of {args.channels} channels (fan-in {9 * args.channels})" if args.series == "conv"
                else f"random sparse windows, fan-in {args.fan_in}")
        print(f"Size series: layered graphs of {what}, link loads at {args.rate} "
              f"spikes/step/neuron, mesh.toml boards, seed {args.seed}", flush=True)
    for n in sorted(sizes):
        done = [r for r in series if "error" not in r and "skipped" not in r]
        if len(done) >= 1 and not args.force and not args.in_process:
            ns = [r["size"] for r in done]
            peaks = [r["peak_gib"] for r in done]
            times = [r["wall_s"] for r in done]
            mem_slope = loglog_fit(ns, peaks)[0] if len(done) >= 2 else 1.0
            time_slope = loglog_fit(ns, times)[0] if len(done) >= 2 else 1.0
            mem = peaks[-1] * (n / ns[-1]) ** max(mem_slope, 1.0)
            wall = times[-1] * (n / ns[-1]) ** max(time_slope, 1.0)
            available = memory_available_gib()
            if mem > 0.9 * available:
                series.append({"size": n, "skipped": True, "error": (
                    f"skipped: extrapolated peak memory {mem:.0f} GiB (peak ∝ n^{max(mem_slope, 1.0):.2f} from the "
                    f"sizes above) exceeds the {available:.0f} GiB available; about {wall / 60:.0f} min; --force runs it")})
                print(f"  n={n}: {series[-1]['error']}", file=sys.stderr, flush=True)
                continue
            if wall > args.timeout:
                notes.append(f"n={n}: extrapolated time {wall / 60:.0f} min exceeds --timeout {args.timeout:.0f} s")
        spec = {"size": n, "kind": args.series, "channels": args.channels, "fan_in": args.fan_in, "seed": args.seed,
                "rate": args.rate, "batch": args.batch,
                "emulate": emulate, "memory_limit_gib": limit}
        start = time.perf_counter()
        row = {"size": n, **isolated(series_row, spec, args.timeout, args.in_process)}
        row["wall_s"] = time.perf_counter() - start
        series.append(row)
        print(f"  n={n}: {row['wall_s']:.0f} s", file=sys.stderr, flush=True)
    if series:
        print(table(series, SERIES_COLS, "size"))
        ok = [r for r in series if "error" not in r]
        if len(ok) >= 2:
            n = [r["neurons"] for r in ok]
            print(f"Fitted exponent of time against neurons (log-log slope over n = "
                  f"{', '.join(format(r['size'], '.0e') for r in ok)}):")
            for key in ("map_s", "partition_s", "place_s", "route_s", "emit_s"):
                print(f"  {key[:-2]:>9}: {loglog_fit(n, [r[key] for r in ok])[0]:.2f}")
            ref = loglog_fit(n, [v * math.log(v) for v in n])[0]
            print(f"  reference: n log n over these sizes gives {ref:.2f}; n gives 1.00; n^2 gives 2.00")
            steps = [f"{a['size']:.0e}->{b['size']:.0e}: {loglog_fit([a['neurons'], b['neurons']], [a['map_s'], b['map_s']])[0]:.2f} "
                     f"(n log n: {loglog_fit([a['neurons'], b['neurons']], [a['neurons'] * math.log(a['neurons']), b['neurons'] * math.log(b['neurons'])])[0]:.2f})"
                     for a, b in zip(ok, ok[1:])]
            print(f"  map time, slope between consecutive sizes: {'; '.join(steps)}")
            print("  (place anneals a fixed number of proposals, 20000 by default, whatever n: at small n its "
                  "nearly constant time flattens the slope)")
            print(f"  mapping time per neuron: {', '.join(format(r['us_per_neuron'], '.2f') + ' µs' for r in ok)}")
    for line in notes:
        print(line)
    print(f"Total {time.perf_counter() - started:.0f} s.")
    if args.json:
        args.json.write_text(json.dumps({"networks": rows, "series": series}, indent=1, sort_keys=True, default=str)
                             + "\n")


if __name__ == "__main__":
    main()

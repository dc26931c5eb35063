"""The CPU runtime (targets/cpu) on the user's path, against every peer at its best, in one run.

    python benchmarks/runtime.py            # all workloads, every peer found (about 10 min)

Workloads (integer graphs, 24-bit state, int8 weights, so every executor must agree exactly):

* W1  IF network 784-500-500-10, T=100, batch 64 and batch 1, input spike trains of 15 %
      density (a fixed seed), weights scaled so the hidden layers fire at 5–20 %.
* W1c the same network with ``current``-encoded input (integer currents ``⌊8x + 1/2⌋``),
      batch 64: the first layer runs the dense kernel.
* W2  conv SNN on 28×28×1 (MNIST when ``--data`` has it, else seeded noise), rate encoded:
      conv 3×3×16, pool 2, conv 3×3×32, pool 2, dense 10; T=50, batch 32.
* W3  10,000 LIF neurons, 1,000,000 random synapses (10 % recurrent, 90 % from 1,000 input
      neurons firing at 2 %), 1,000 steps, batch 1.

**nmc, as a user runs it.**  Each workload's graph is written as a model file (``.nmir`` with
its blobs), compiled by ``nmc.compiler.compile_graph(load(model), "cpu")`` — what ``nmc compile
MODEL --target cpu -o IMAGE`` does — into an image, and run from the image through
``nmc.runner.load_artifact`` and the ``cpu`` backend (what ``nmc run IMAGE --backend cpu``
does; the run includes the host's input encoding).  Its start-up is measured by ``nmc run``
itself, as a command in a fresh process: ``prepare`` (the CLI's own figure: reading the
image and preparing the executor) with an empty object cache (``cold``) and again
(``cached``).  ``compile s`` is a compile in this process with an empty cache, after the
process's one-time LLVM set-up (printed below the table).

**Peers, each at its best** (outputs compared with nmc's before anything is timed; every
value is an integer below 2**24, so float32 holds it exactly):

* numpy (this process): float32 time-batched — each layer's currents of all steps and samples
  as one sgemm (im2col for convolutions), then the IF neurons step by step, vectorised; W3
  event driven (per step, the synapses of the spiking sources gathered, summed by bincount);
* torch: each layer one call over all steps and samples, then the neuron loop in float32;
  W3: the input's currents as one sparse CSR product, the recurrent CSR matrix × spike
  vector per step, in float64;
* snnTorch: each layer's projection over all steps, then ``snn.Leaky(beta=1, subtract)``;
* SpikingJelly: multi-step mode, ``IFNode(step_mode="m", v_reset=None)`` over the sequence;
* Brian2 2.9 ``cpp_standalone`` (W3): generated C++, ``-O3 -march=native``, OpenMP on the
  run's threads; its build time is shown apart, its run time is the program's own.

torch, snnTorch and SpikingJelly (torch 2.13.0) and Brian2 (numpy < 2.4) collide with nmc's
pins, so they run from their own venvs as subprocesses (``benchmarks/runtime_peers.py``,
whose docstring has the recipe; ``--peers-venv`` and ``--brian2-venv``, default
``../venv-peers`` and ``../venv-brian2`` beside the repository); a missing venv leaves its
columns empty.

**Against the machine.**  The benchmark measures the memory bandwidth (numpy copies of
256 MB, one per thread) and the arithmetic peak (float32 sgemm, 2048², every thread).  Per
workload, the bytes touched per sample-step — each synaptic event's weight (1 byte for int8
dense and conv weights, 4 for a sparse synapse word) and each neuron's state (u, v and its
count, 4 bytes each, read and written) — over the bandwidth, and the operations — an add per
synaptic event, 8 per neuron update — over the peak, give the roofline time
``max(bytes / bandwidth, ops / peak)``; ``x roof`` is nmc's time over it.  (Time-batched
layers reuse their weights from cache, so for them this bound is pessimistic.)

    python benchmarks/runtime.py [--quick] [--threads N] [--repeat K] [--data ../shared/data]
                                 [--only W1-64,W2] [--kernels auto|event|dense]
                                 [--schedule auto|step|layer] [--crossover] [--markdown]

``--kernels event`` forces event lists everywhere (the runtime before the dense kernel);
``--schedule step`` runs every network step by step (the runtime before time batching),
``--schedule layer`` each feed-forward network layer by layer (W3, recurrent, cannot be);
``--crossover`` instead prints, for one 784→500 int8 layer (batch 32, T=50, one thread), the
time of both kernels against the source's firing rate: what set ``DENSE_RATE`` in
targets/cpu/plan.py.  ``--markdown`` also prints the table for the README and
docs/cpu-runtime.md.  Speed is never asserted; this prints a table.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import runtime_peers  # noqa: E402  (beside this file; imports no nmc)

from nmc.ir import ann, snn  # noqa: E402
from nmc.ir.core import Blob, Graph  # noqa: E402
from nmc.ir.types import SpikeType, TensorType  # noqa: E402
from nmc.ir.verifier import verify  # noqa: E402
from nmc.targets import cpu  # noqa: E402

BITS = 24

# ------------------------------------------------------------------------------ graphs


def _population(g, currents, shape, name, **params):
    op = snn.Population(currents=currents, declared_type=SpikeType(tuple(shape)), bits=BITS, **params)
    g.add(op, name)
    return op


W1_THRESHOLDS = (600, 200, 200)  # hidden layers fire at 9 % and 11 % of neuron-steps


W1C_THRESHOLDS = (20000, 200, 200)  # current-encoded input: a larger first threshold
W1C_SCALE = 8.0


def w1_graph(rng, thresholds=W1_THRESHOLDS, encoding="spikes", scale=1.0) -> Graph:
    g = Graph("w1")
    x = g.add(ann.Input(declared_type=TensorType((784,))), "x")
    s = g.add(snn.Encode(x=x, encoding=encoding, scale=scale), "s")
    src, sizes = s, [784, 500, 500, 10]
    for i, (a, b) in enumerate(zip(sizes, sizes[1:])):
        w = rng.integers(-12, 14, size=(b, a)).astype(np.int8)
        c = g.add(snn.Project(src=src, kind="dense", weight=Blob(w)), f"c{i}")
        src = _population(g, [c], (b,), f"h{i}", threshold=thresholds[i]).result
    y = g.add(snn.Decode(x=src), "y")
    g.add(ann.Output(values=[y]))
    verify(g)
    return g


W2_THRESHOLDS = (100, 80, 300, 200, 800)  # every layer fires at 11–20 % of neuron-steps


def w2_graph(rng, th=W2_THRESHOLDS) -> Graph:
    g = Graph("w2")
    x = g.add(ann.Input(declared_type=TensorType((1, 28, 28))), "x")
    s = g.add(snn.Encode(x=x, encoding="rate"), "s")
    c1 = g.add(snn.Project(src=s, kind="conv2d", weight=Blob(rng.integers(-20, 40, (16, 1, 3, 3)).astype(np.int8))))
    h1 = _population(g, [c1], (16, 26, 26), "h1", threshold=th[0]).result
    p1 = g.add(snn.Project(src=h1, kind="pool", kernel=(2, 2), strides=(2, 2), weight=40))
    h2 = _population(g, [p1], (16, 13, 13), "h2", threshold=th[1]).result
    c2 = g.add(snn.Project(src=h2, kind="conv2d", weight=Blob(rng.integers(-10, 14, (32, 16, 3, 3)).astype(np.int8))))
    h3 = _population(g, [c2], (32, 11, 11), "h3", threshold=th[2]).result
    p2 = g.add(snn.Project(src=h3, kind="pool", kernel=(2, 2), strides=(2, 2), weight=40))
    h4 = _population(g, [p2], (32, 5, 5), "h4", threshold=th[3]).result
    d = g.add(snn.Project(src=h4, kind="dense", weight=Blob(rng.integers(-10, 14, (10, 800)).astype(np.int8))))
    h5 = _population(g, [d], (10,), "h5", threshold=th[4]).result
    y = g.add(snn.Decode(x=h5), "y")
    g.add(ann.Output(values=[y]))
    verify(g)
    return g


def _csr(rng, n_src, n_dst, nnz, lo, hi):
    """Random synapses, CSR by source: (indptr, indices, weights)."""
    src = np.sort(rng.integers(0, n_src, nnz))
    indptr = np.searchsorted(src, np.arange(n_src + 1)).astype(np.int64)
    return indptr, rng.integers(0, n_dst, nnz).astype(np.int32), rng.integers(lo, hi, nnz).astype(np.int8)


def w3_graph(rng, neurons: int, synapses: int) -> Graph:
    g = Graph("w3")
    n_in = neurons // 10
    x = g.add(ann.Input(declared_type=TensorType((n_in,))), "x")
    s = g.add(snn.Encode(x=x, encoding="spikes"), "s")
    ip, ix, w = _csr(rng, n_in, neurons, synapses * 9 // 10, -20, 60)
    c = g.add(snn.Project(src=s, kind="sparse", weight=Blob(w), indptr=Blob(ip), indices=Blob(ix), shape=(neurons,)))
    pop = snn.Population(currents=[c], declared_type=SpikeType((neurons,)), bits=BITS, threshold=1000,
                         du=1024, dv=256)
    g.add(pop, "h")
    ip, ix, w = _csr(rng, neurons, neurons, synapses // 10, -30, 30)
    r = g.add(snn.Project(src=pop.result, kind="sparse", weight=Blob(w), indptr=Blob(ip), indices=Blob(ix),
                          shape=(neurons,)))
    pop.currents.append(r)
    y = g.add(snn.Decode(x=pop.result), "y")
    g.add(ann.Output(values=[y]))
    verify(g)
    return g



# ------------------------------------------------------------------------------ harness


def process_setup() -> float:
    """Seconds the first compile in a process takes, for a 16-16-4 IF network: LLVM's set-up
    and first-use costs, paid once per process, which the cold column then leaves out."""
    g = Graph("setup", {"timesteps": 2})
    x = g.add(ann.Input(declared_type=TensorType((16,))), "x")
    src = g.add(snn.Encode(x=x, encoding="spikes"), "s")
    for i, n in enumerate((16, 4)):
        c = g.add(snn.Project(src=src, kind="dense", weight=Blob(np.ones((n, 16), np.int8))), f"c{i}")
        src = _population(g, [c], (n,), f"h{i}", threshold=3).result
    g.add(ann.Output(values=[g.add(snn.Decode(x=src), "o")]))
    start = time.perf_counter()
    cpu.prepare(g, cache=False)
    return time.perf_counter() - start


def mnist(data: str | None, n: int, rng) -> np.ndarray:
    path = Path(data or "") / "mnist" / "mnist_test.npz"
    if data and path.is_file():
        with np.load(path) as d:
            x = d["x"][:n].astype(np.float32)
        return (x / x.max()).reshape(n, 1, 28, 28)
    return rng.random((n, 1, 28, 28)).astype(np.float32)


def crossover() -> int:
    """Both kernels of one 784→500 int8 dense layer against the source's firing rate (rate
    encoder: binary events; spikes encoder: the same events as counts)."""
    w = np.random.default_rng(1).integers(-12, 14, size=(500, 784)).astype(np.int8)
    print(f"{'source':8} {'rate':>5} {'event ms':>9} {'dense ms':>9} {'event/dense':>11}")
    for encoding in ("rate", "spikes"):
        g = Graph("layer")
        x = g.add(ann.Input(declared_type=TensorType((784,))), "x")
        s = g.add(snn.Encode(x=x, encoding=encoding), "s")
        c = g.add(snn.Project(src=s, kind="dense", weight=Blob(w)))
        _population(g, [c], (500,), "h", threshold=10**6)  # no spikes: the layer's work only
        g.add(ann.Output(values=[g.add(snn.Decode(x=g.walk("snn.population")[0].result))]))
        verify(g)
        run = {k: cpu.prepare(g, cache=False, threads=1, kernels=k) for k in ("event", "dense")}
        rng = np.random.default_rng(7)
        for r in (0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.7, 1.0):
            shape = (32, 784) if encoding == "rate" else (32, 50, 784)
            xin = [(rng.random(shape) < r).astype(np.float32)]
            a, b = (run[k](xin, timesteps=50) for k in ("event", "dense"))
            assert np.array_equal(a.voltages[0], b.voltages[0]) and a.synaptic_ops == b.synaptic_ops
            t = {k: _best(lambda k=k: run[k](xin, timesteps=50), 7)[1] for k in run}
            print(f"{encoding:8} {r:5.2f} {t['event'] * 1e3:9.1f} {t['dense'] * 1e3:9.1f} {t['event'] / t['dense']:11.2f}")
    return 0




def _best(fn, repeat: int):
    """(result of the last run, best wall time of ``repeat`` runs)."""
    best, out = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return out, best


def ff_spec(g: Graph, trains: np.ndarray) -> tuple[dict, dict]:
    """A feed-forward graph of one projection per population as ``runtime_peers`` takes it."""
    layers, arrays = [], {"trains": trains}
    for i, pop in enumerate(g.walk("snn.population")):
        p = pop.currents[0].owner
        L = {"kind": {"dense": "dense", "conv2d": "conv", "pool": "pool"}[p.kind], "src": list(p.src.type.shape),
             "threshold": int(pop.threshold)}
        if p.kind == "pool":
            L.update(k=int(p.kernel[0]), weight=float(p.weight))
        else:
            arrays[f"w{i}"] = p.weight.data
        layers.append(L)
    return {"kind": "ff", "layers": layers, "bits": BITS}, arrays


def w3_spec(g: Graph, x: np.ndarray, steps: int, T: int) -> tuple[dict, dict]:
    pop = g.walk("snn.population")[0]
    inp, rec = (c.owner for c in pop.currents)
    arrays = {"trains": x.transpose(1, 0, 2), "ip_in": inp.indptr.data, "ix_in": inp.indices.data,
              "w_in": inp.weight.data, "ip_rec": rec.indptr.data, "ix_rec": rec.indices.data, "w_rec": rec.weight.data}
    meta = {"kind": "w3", "neurons": pop.result.type.size, "steps": steps, "T": T, "bits": BITS,
            "threshold": int(pop.threshold), "du": int(pop.du), "dv": int(pop.dv)}
    return meta, arrays


def subprocess_peers(python: Path, peers: str, meta: dict, arrays: dict, expected, threads: int, repeat: int,
                     timeout: int = 1800) -> list[dict]:
    """Run ``runtime_peers.py`` with another venv's ``python``: one dict per peer."""
    if not python.is_file():
        return []
    with tempfile.TemporaryDirectory() as tmp:
        spec = Path(tmp) / "spec.npz"
        np.savez(spec, meta=json.dumps({**meta, "threads": threads, "repeat": repeat}),
                 expected=np.asarray(expected), **arrays)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        proc = subprocess.run([str(python), runtime_peers.__file__, str(spec), "--peers", peers],
                              capture_output=True, text=True, env=env, timeout=timeout)
    rows = [json.loads(line) for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode and not rows:
        rows = [{"peer": p, "error": proc.stderr.strip().splitlines()[-1:]} for p in peers.split(",")]
    return rows


def user_path(g: Graph, folder: Path) -> Path:
    """Write ``g`` as a model file and compile it as ``nmc compile MODEL --target cpu`` does;
    returns the image's path."""
    from nmc.compiler import compile_graph
    from nmc.frontends import load
    from nmc.ir.io import write_ir
    from nmc.targets.image import encode_image

    model = folder / f"{g.name}.nmir"
    write_ir(g, str(model))
    image = folder / f"{g.name}.nmb"
    image.write_bytes(encode_image(compile_graph(load(str(model)), "cpu", source_path=str(model))))
    return image


def cli_prepare(image: Path, x: np.ndarray, cache: Path, threads: int) -> float:
    """``nmc run IMAGE --backend cpu`` in a fresh process: its own ``prepare`` figure (s)."""
    folder = image.parent
    np.save(folder / "x.npy", x)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}  # as a user's Python
    env.update(NMC_CACHE_DIR=str(cache), OMP_NUM_THREADS=str(threads))
    report = folder / "run.json"
    report.unlink(missing_ok=True)
    subprocess.run([sys.executable, "-m", "nmc", "run", str(image), "--backend", "cpu", "--input",
                    str(folder / "x.npy"), "--report", str(report)], check=True, capture_output=True, env=env)
    return json.loads(report.read_text())["compile_s"]


def machine_limits(threads: int) -> dict:
    """Measured memory bandwidth (bytes/s: numpy copies of 256 MB, one per thread, read and
    written) and arithmetic peak (operations/s: float32 sgemm of 2048², 2 per multiply-add)."""
    n = 1 << 25  # 256 MB of float64 per thread
    src = [np.ones(n) for _ in range(threads)]
    dst = [np.empty(n) for _ in range(threads)]

    def copy(k):
        np.copyto(dst[k], src[k])

    def copies():
        pool = [threading.Thread(target=copy, args=(k,)) for k in range(threads)]
        for th in pool:
            th.start()
        for th in pool:
            th.join()

    copies()
    _, seconds = _best(copies, 5)
    bandwidth = 2 * 8 * n * threads / seconds
    a = np.ones((2048, 2048), np.float32)
    a @ a
    _, seconds = _best(lambda: a @ a, 5)
    return {"bandwidth": bandwidth, "peak": 2 * 2048**3 / seconds}


def roofline(g: Graph, synops_per_step: float, limits: dict) -> float:
    """Seconds per sample-step at the machine's limit (module docstring, "Against the machine")."""
    from nmc.targets.cpu.tables import int_weights

    weight_bytes = synapses = 0
    for p in g.walk("snn.project"):
        n = int(np.asarray(p.weight.data if isinstance(p.weight, Blob) else 0).size)
        size = 4 if p.kind == "sparse" else int_weights(p).itemsize if isinstance(p.weight, Blob) else 0
        weight_bytes += n * size
        synapses += n
    per_event = weight_bytes / max(synapses, 1)
    neurons = sum(pop.result.type.size for pop in g.walk("snn.population"))
    touched = synops_per_step * per_event + neurons * 24
    ops = synops_per_step + 8 * neurons
    return max(touched / limits["bandwidth"], ops / limits["peak"])


def workload(name: str, args):
    """(graph, inputs, T, peer spec (meta, arrays), numpy peer, subprocess peers)."""
    rng = np.random.default_rng(1234)  # the graphs are drawn in one fixed order from this seed
    g1 = w1_graph(rng)
    if name.startswith("W1-"):
        batch = int(name.split("-")[1])
        x = (np.random.default_rng(7).random((batch, 100, 784)) < 0.15).astype(np.float32)
        return g1, [x], 100, ff_spec(g1, x.transpose(1, 0, 2)), "torch,snnTorch,SpikingJelly"
    if name == "W1c-64":
        gc = w1_graph(np.random.default_rng(1234), W1C_THRESHOLDS, "current", W1C_SCALE)
        gc.name = "w1c"
        xc = np.random.default_rng(7).random((64, 784)).astype(np.float32)
        values = np.floor(xc.astype(np.float64) * W1C_SCALE + 0.5)  # what the encoder emits each step
        trains = np.repeat(values[None], 100, axis=0)
        return gc, [xc], 100, ff_spec(gc, trains), "torch,snnTorch,SpikingJelly"
    g2 = w2_graph(rng)
    x2 = mnist(args.data, 32, rng)
    if name == "W2":
        from nmc.semantics import encode

        state: dict = {}
        enc = g2.walk("snn.encode")[0]
        trains = np.stack([encode(enc, x2, t, 50, state, True).reshape(32, 1, 28, 28) for t in range(50)])
        return g2, [x2], 50, ff_spec(g2, trains), "torch,snnTorch,SpikingJelly"
    neurons, synapses, steps = (2000, 100_000, 200) if args.quick else (10_000, 1_000_000, 1000)
    g3 = w3_graph(rng, neurons, synapses)
    x3 = (np.random.default_rng(9).random((1, steps, neurons // 10)) < 0.02).astype(np.float32)
    return g3, [x3], steps, w3_spec(g3, x3, steps, steps), "torch"


def workload_row(name: str, args) -> dict:
    """Measure workload ``name`` in this (fresh) process: nmc on the user's path, its start-up,
    every peer, the machine's limits."""
    setup = process_setup()
    threads = args.threads or len(os.sched_getaffinity(0))
    g, inputs, T, (meta, arrays), peers = workload(name, args)
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        image = user_path(g, folder)
        saved = os.environ.get("NMC_CACHE_DIR")
        os.environ["NMC_CACHE_DIR"] = str(folder / "compile-cache")
        try:  # a compile in this process, with an empty cache
            start = time.perf_counter()
            cpu.prepare(g, kernels=args.kernels, schedule=args.schedule)
            compile_s = time.perf_counter() - start
            os.environ["NMC_CACHE_DIR"] = str(folder / "cache")
            from nmc.runner import load_artifact

            execute = cpu.prepare(load_artifact(str(image)), threads=threads, kernels=args.kernels,
                                  schedule=args.schedule)
        finally:
            if saved is None:
                del os.environ["NMC_CACHE_DIR"]
            else:
                os.environ["NMC_CACHE_DIR"] = saved
        start_up = {}
        if args.kernels == "auto" and args.schedule == "auto":
            cache = folder / "cli-cache"
            start_up = {"cold": cli_prepare(image, inputs[0], cache, threads),
                        "cached": min(cli_prepare(image, inputs[0], cache, threads) for _ in range(3))}
    # outputs are compared first, on untimed runs (which also warm caches and BLAS threads)
    res = execute(inputs, timesteps=T)
    out = res.outputs[0].reshape(len(inputs[0]), -1)
    if meta["kind"] == "w3":
        meta["steps"] = res.steps
    numpy_run = (runtime_peers.numpy_w3 if meta["kind"] == "w3" else runtime_peers.numpy_ff)(meta, arrays)
    rows = [{"peer": "numpy", "same": bool(np.array_equal(numpy_run(), out))}]
    if rows[0]["same"]:
        time.sleep(0.3)
        rows[0]["seconds"] = _best(numpy_run, args.repeat)[1]
    rows += subprocess_peers(Path(args.peers_venv) / "bin" / "python", peers, meta, arrays, out, threads, args.repeat)
    if meta["kind"] == "w3":
        rows += subprocess_peers(Path(args.brian2_venv) / "bin" / "python", "Brian2", meta, arrays, out, threads,
                                 args.repeat)
    time.sleep(0.5)  # BLAS and OpenMP worker threads spin for a while after work: let them settle
    res, nmc_s = _best(lambda: execute(inputs, timesteps=T), args.repeat)
    sample_steps = len(inputs[0]) * res.steps
    synops = res.synaptic_ops / sample_steps
    limits = machine_limits(threads)
    timed = {r["peer"]: r["seconds"] for r in rows if "seconds" in r}
    best = min(timed, key=timed.get) if timed else None
    return dict(name=name, per_step=nmc_s / sample_steps, events=res.synaptic_ops / nmc_s,
                peers={r["peer"]: {**r, "per_step": r["seconds"] / sample_steps if "seconds" in r else None}
                       for r in rows},
                best=best, ratio=timed[best] / nmc_s if best else None, compile_s=compile_s, start_up=start_up,
                synops=synops, roof=roofline(g, synops, limits), limits=limits, setup=setup, threads=threads,
                schedule=res.stats["schedule"], spikes=res.spikes / sample_steps, steps=res.steps,
                brian2_events=(res.synaptic_ops / timed["Brian2"]) if "Brian2" in timed else None)


WORKLOADS = ("W1-64", "W1-1", "W1c-64", "W2", "W3")
PEER_ORDER = ("numpy", "torch", "snnTorch", "SpikingJelly", "Brian2")


def _fmt(x, spec=".2e"):
    return "-" if x is None else format(x, spec)


def print_table(rows: list[dict], args, markdown: bool) -> None:
    peers = [p for p in PEER_ORDER if any(p in r["peers"] for r in rows)]
    head = ["workload", "nmc s/smp-step"] + [f"{p}" for p in peers] + [
        "best peer", "ratio", "nmc ev/s", "roof s", "x roof", "compile s", "prepare cold", "prepare cached", "sched"]
    lines = []
    for r in rows:
        cells = [r["name"], _fmt(r["per_step"])]
        for p in peers:
            info = r["peers"].get(p)
            if info is None:
                cells.append("-")
            elif "error" in info:
                cells.append("error")
            elif not info["same"]:
                cells.append("DIFFERS")
            else:
                cells.append(_fmt(info["per_step"]) + (f" (+{info['build_s']:.1f} s build)" if "build_s" in info else ""))
        ratio = "-" if r["ratio"] is None else f"{r['ratio']:.1f}"
        su = r["start_up"]
        cells += [r["best"] or "-", ratio, _fmt(r["events"]), _fmt(r["roof"]), f"{r['per_step'] / r['roof']:.1f}",
                  f"{r['compile_s']:.3f}", _fmt(su.get("cold"), ".3f"), _fmt(su.get("cached"), ".3f"), r["schedule"]]
        lines.append(cells)
    if markdown:
        print("| " + " | ".join(head) + " |")
        print("|" + "---|" * len(head))
        for cells in lines:
            print("| " + " | ".join(cells) + " |")
        return
    widths = [max(len(h), *(len(c[i]) for c in lines)) for i, h in enumerate(head)]
    print("  ".join(h.rjust(w) for h, w in zip(head, widths)))
    for cells in lines:
        print("  ".join(c.rjust(w) for c, w in zip(cells, widths)))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small W3 (2,000 neurons, 100,000 synapses, 200 steps)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=3)
    beside = Path(__file__).resolve().parents[2]
    shared = beside / "shared" / "data"
    ap.add_argument("--data", default=str(shared) if shared.is_dir() else None,
                    help="folder with mnist/mnist_test.npz (default ../shared/data; else seeded noise, "
                         "which fires far more densely than digits)")
    ap.add_argument("--peers-venv", default=str(beside / "venv-peers"), help="venv with torch, snnTorch, SpikingJelly")
    ap.add_argument("--brian2-venv", default=str(beside / "venv-brian2"), help="venv with brian2 2.9")
    ap.add_argument("--only", default=",".join(WORKLOADS))
    ap.add_argument("--kernels", default="auto", choices=("auto", "event", "dense"))
    ap.add_argument("--schedule", default="auto", choices=("auto", "step", "layer"))
    ap.add_argument("--crossover", action="store_true", help="event vs dense kernel against the firing rate")
    ap.add_argument("--markdown", action="store_true", help="also print the table as Markdown")
    args = ap.parse_args(argv)
    if args.crossover:
        return crossover()
    rows = []
    started = time.perf_counter()
    for name in args.only.split(","):
        if name not in WORKLOADS:
            ap.error(f"unknown workload {name!r}; choose from {','.join(WORKLOADS)}")
        if name == "W3" and args.schedule == "layer":
            ap.error("W3 is recurrent: --schedule layer cannot run it")
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(workload_row, name, args).result())
    print_table(rows, args, markdown=False)
    lim = rows[0]["limits"]
    print(f"\nseconds per sample-step; threads {rows[0]['threads']}; kernels {args.kernels}; schedule {args.schedule}; "
          f"best of {args.repeat}.  nmc: the user's path (model file → compile_graph(..., 'cpu') → image → cpu "
          f"backend).  Peers: the time of each whose output equals nmc's exactly (DIFFERS: not equal, not timed); "
          f"ratio = best peer / nmc.\nBrian2: its run as the program measures it; its build apart.  "
          f"W3 in synaptic events/s: " + ", ".join(
              f"nmc {r['events']:.2e}, Brian2 {r['brian2_events']:.2e} ({r['events'] / r['brian2_events']:.1f}x)"
              for r in rows if r.get("brian2_events")) +
          f".\nMachine: bandwidth {lim['bandwidth'] / 1e9:.1f} GB/s, peak {lim['peak'] / 1e9:.0f} Gop/s (measured in the "
          f"first row's process); roof s = max(bytes/bandwidth, ops/peak) per sample-step; x roof = nmc / roof.\n"
          f"compile s: in-process, empty cache, after the one-time set-up ({min(r['setup'] for r in rows):.3f}-"
          f"{max(r['setup'] for r in rows):.3f} s).  prepare cold/cached: `nmc run IMAGE --backend cpu` in a fresh "
          f"process, empty object cache / best of 3 after it.\nTotal {time.perf_counter() - started:.0f} s.")
    if args.markdown:
        print()
        print_table(rows, args, markdown=True)
    for r in rows:
        for p, info in r["peers"].items():
            if "error" in info:
                print(f"{r['name']}: {p} failed: {info['error']}")
    return 0 if all(info.get("same", True) for r in rows for info in r["peers"].values()) else 1


if __name__ == "__main__":
    sys.exit(main())

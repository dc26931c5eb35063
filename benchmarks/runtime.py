"""The CPU runtime (targets/cpu) against strong numpy (and torch, snnTorch) baselines, in the same run.

Workloads (integer graphs, 24-bit state, int8 weights, so both executors must agree exactly):

* W1  IF network 784-500-500-10, T=100, batch 64 and batch 1, input spike trains of 15 %
      density (a fixed seed), weights scaled so the hidden layers fire at 5–20 %.
      Baseline: time-batched matmuls (one BLAS call per layer over all samples and steps) and
      a vectorised neuron loop over steps.
* W1c the same network with ``current``-encoded input (integer currents ``⌊8x + 1/2⌋``, all
      but a few non-zero every step), batch 64: the first layer runs the dense kernel.
      Baseline: the same time-batched matmuls.
* W2  conv SNN on 28×28×1 (MNIST when ``--data`` has it, else seeded noise), rate encoded:
      conv 3×3×16, pool 2, conv 3×3×32, pool 2, dense 10; T=50, batch 32; layers fire at
      11–20 %.
      Baseline: im2col matmuls over all frames at once, pooling by reshape-sum.
* W3  10,000 LIF neurons, 1,000,000 random synapses (10 % recurrent, 90 % from 1,000 input
      neurons firing at 2 %), 1,000 steps, batch 1; the LIF neurons fire at about 10 %.  Baseline: event-driven CSR
      (per step, the synapses of the spiking sources gathered and summed with bincount).

When ``torch`` imports, each workload also runs plain torch baselines, and when ``snntorch``
imports, W1, W1c and W2 snnTorch's standard loop, in the same process on the same input
(torch.set_num_threads as nmc's threads, inference_mode; all must match nmc's output exactly):

* torch, W1/W1c/W2: each layer one call (F.linear, F.conv2d, F.avg_pool2d with
  ``divisor_override=1`` × the pool weight) over all steps and samples, then the IF neurons
  step by step in float32 (24-bit integers are exact in it); W3: the input synapses' currents
  of all steps as one sparse CSR product, then per step the recurrent sparse CSR matrix ×
  spike vector and the LIF update in float64.
* snnTorch, W1/W1c/W2: per step, each layer's projection then ``snn.Leaky(beta=1.0,
  reset_mechanism="subtract", threshold=θ)``; with ``beta = 1`` its delayed reset is nmc's IF
  exactly, and without nmc's one-step delays the output counts over ``T`` steps are nmc's.

To get them, a venv with torch, snnTorch and nmc (pip must not replace torch)::

    python -m venv ../sjvenv && ../sjvenv/bin/pip install torch==2.13.0   # a CPU build
    echo torch==2.13.0 > /tmp/c.txt
    ../sjvenv/bin/pip install -c /tmp/c.txt snntorch && ../sjvenv/bin/pip install -c /tmp/c.txt -e .
    ../sjvenv/bin/python benchmarks/runtime.py --repeat 3

    python benchmarks/runtime.py [--quick] [--threads N] [--repeat K] [--data ../shared/data] [--only W1-64,W2]
                                 [--kernels auto|event|dense] [--schedule auto|step|layer] [--crossover]

``--kernels event`` forces event lists everywhere (the runtime before the dense kernel);
``--schedule step`` runs every network step by step (the runtime before time batching),
``--schedule layer`` each feed-forward network layer by layer (W3, recurrent, cannot be);
``--crossover`` instead prints, for one 784→500 int8 layer (batch 32, T=50, one thread), the
time of both kernels against the source's firing rate: what set ``DENSE_RATE`` in
targets/cpu/plan.py.

Columns: seconds per sample-step (nmc, numpy and, when present, torch and snnTorch), synaptic
events per second, speed-up of nmc over the best other executor (``best``; numpy without
torch), nmc's cold and cached compile times, peak traced memory of each run, the schedule the
runtime chose (``step`` or ``layer``: targets/cpu/plan.py ``choose_schedule``).  Outputs are
compared before anything is timed.  Speed is never asserted; this prints a table.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import tempfile
import time
import warnings
import tracemalloc
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

try:  # the torch baselines, when torch (and snnTorch) are installed
    import torch
    import torch.nn.functional as F
except ImportError:
    torch = None
try:
    import snntorch
except ImportError:
    snntorch = None

from nmc.ir import ann, snn
from nmc.ir.core import Blob, Graph
from nmc.ir.types import SpikeType, TensorType
from nmc.ir.verifier import verify
from nmc.semantics import latency_steps
from nmc.targets import cpu

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


# ---------------------------------------------------------------------------- baselines


def _if_lif(currents, bits, threshold, du=4096, dv=0):
    """Integer LIF over currents ``[steps, N, size]``: spikes [steps, N, size] (nmc semantics)."""
    lim = 1 << (bits - 1)
    u = np.zeros(currents.shape[1:], np.int64)
    v = np.zeros_like(u)
    out = np.zeros(currents.shape, np.int8)

    def decay(x, d):
        if d == 0:
            return x
        if d == 4096:
            return np.zeros_like(x)
        return np.sign(x) * ((np.abs(x) * (4096 - d)) >> 12)

    for t in range(len(currents)):
        u_raw = decay(u, du) + currents[t]
        v = np.clip(decay(v, dv) + u_raw + 0, -lim, lim - 1)
        u = np.clip(u_raw, -lim, lim - 1)
        fired = v > threshold
        v = np.where(fired, v - threshold, v)
        out[t] = fired
    return out, v


def _shift(spikes, steps):
    """Spikes of steps ``t`` → what a delay-1 projection delivers at ``t + 1``: [steps, N, ...]."""
    out = np.zeros((steps, *spikes.shape[1:]), spikes.dtype)
    out[1:] = spikes[:steps - 1]
    return out


def baseline_w1(g, x, T):
    """Time-batched: each layer one matmul over all (step, sample) rows."""
    steps = latency_steps(g, T)
    N = len(x)
    s = np.zeros((steps, N, 784), np.float64)
    s[:T] = x.transpose(1, 0, 2)  # presented at t, integrated at t (delay 1)
    for i, pop in enumerate(g.walk("snn.population")):
        w = pop.currents[0].owner.weight.data.astype(np.float64)
        cur = (s.reshape(steps * N, -1) @ w.T).reshape(steps, N, -1).astype(np.int64)
        spikes, v = _if_lif(cur, BITS, int(pop.threshold))
        s = _shift(spikes, steps).astype(np.float64)
    return spikes.sum(axis=0).astype(np.float32)


def _im2col_conv(frames, w):
    """Valid 3×3 convolution of ``frames`` [F, C, H, W] by ``w`` [O, C, 3, 3] as one matmul."""
    F, C, H, W = frames.shape
    kh, kw = w.shape[2:]
    oh, ow = H - kh + 1, W - kw + 1
    cols = np.lib.stride_tricks.sliding_window_view(frames, (kh, kw), axis=(2, 3))  # F,C,oh,ow,kh,kw
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(F * oh * ow, C * kh * kw)
    out = cols @ w.reshape(len(w), -1).T.astype(np.float64)
    return out.reshape(F, oh, ow, -1).transpose(0, 3, 1, 2)


def _pool2(frames):
    F, C, H, W = frames.shape
    h, w = H // 2, W // 2
    return frames[:, :, :2 * h, :2 * w].reshape(F, C, h, 2, w, 2).sum(axis=(3, 5))


def baseline_w2(g, spikes_in, T):
    """im2col over all frames (steps × samples) of each layer, then the neuron loop."""
    steps = latency_steps(g, T)
    N = spikes_in.shape[1]
    pops = g.walk("snn.population")
    s = np.zeros((steps, N, 1, 28, 28))
    s[:T] = spikes_in
    for pop in pops:
        p = pop.currents[0].owner
        frames = s.reshape(steps * N, *p.src.type.shape)
        if p.kind == "conv2d":
            cur = _im2col_conv(frames, p.weight.data)
        elif p.kind == "pool":
            cur = _pool2(frames) * float(p.weight)
        else:
            cur = frames.reshape(steps * N, -1) @ p.weight.data.astype(np.float64).T
        cur = cur.reshape(steps, N, -1).astype(np.int64)
        spikes, v = _if_lif(cur, BITS, int(pop.threshold))
        s = _shift(spikes, steps).astype(np.float64).reshape(steps, N, *pop.result.type.shape)
    return spikes.sum(axis=0).astype(np.float32)


def baseline_w3(g, x, T):
    """Event-driven CSR, one step at a time (the recurrence forbids time batching)."""
    steps = latency_steps(g, T)
    pop = g.walk("snn.population")[0]
    inp, rec = (c.owner for c in pop.currents)
    n = pop.result.type.size
    lim = 1 << (BITS - 1)
    theta = int(pop.threshold)

    def deliver(proj, active):
        ip = proj.indptr.data
        starts, ends = ip[active], ip[active + 1]
        lens = ends - starts
        if lens.sum() == 0:
            return np.zeros(n, np.int64)
        # the synapse numbers of every active source, without a Python loop
        offs = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(lens.sum())
        return np.bincount(proj.indices.data[offs], proj.weight.data[offs].astype(np.float64),
                           minlength=n).astype(np.int64)

    def decay(z, d):
        return np.sign(z) * ((np.abs(z) * (4096 - d)) >> 12)

    u = np.zeros(n, np.int64)
    v = np.zeros(n, np.int64)
    counts = np.zeros(n, np.int64)
    fired = np.zeros(0, np.int64)
    for t in range(steps):
        cur = np.zeros(n, np.int64)
        if t < T:
            cur += deliver(inp, np.flatnonzero(x[0, t]))
        if t >= 1:
            cur += deliver(rec, fired)
        u_raw = decay(u, int(pop.du)) + cur
        v = np.clip(decay(v, int(pop.dv)) + u_raw, -lim, lim - 1)
        u = np.clip(u_raw, -lim, lim - 1)
        spk = v > theta
        v = np.where(spk, v - theta, v)
        fired = np.flatnonzero(spk)
        counts[fired] += 1
    return counts.reshape(1, n).astype(np.float32)


# ---------------------------------------------------------------------- torch baselines


def _torch_layers(g):
    """Each population of a feed-forward IF graph as (its projection in torch: spike frames
    ``[F, *source shape]`` → currents ``[F, *shape]``, its threshold)."""
    layers = []
    for pop in g.walk("snn.population"):
        p = pop.currents[0].owner
        shape = tuple(p.src.type.shape)
        if p.kind == "conv2d":
            w = torch.from_numpy(p.weight.data.astype(np.float32))
            project = lambda s, w=w, shape=shape: F.conv2d(s.reshape(-1, *shape), w)  # noqa: E731
        elif p.kind == "pool":
            project = lambda s, p=p, shape=shape: F.avg_pool2d(  # noqa: E731
                s.reshape(-1, *shape), p.kernel, p.strides, divisor_override=1) * float(p.weight)
        else:
            w = torch.from_numpy(p.weight.data.astype(np.float32))
            project = lambda s, w=w: F.linear(s.flatten(1), w)  # noqa: E731
        layers.append((project, int(pop.threshold)))
    return layers


def _torch_if(v, current, threshold):
    """One step of the integer IF neurons in place (float32 holds their 24-bit values exactly):
    their spikes as 0/1 floats."""
    lim = 1 << (BITS - 1)
    v.add_(current).clamp_(-lim, lim - 1)
    spikes = (v > threshold).float()
    v.sub_(spikes * threshold)
    return spikes


def torch_layers(layers, spikes_in):
    """Plain torch, time-batched like :func:`baseline_w1`: each layer's projection one call over
    all (step, sample) frames, then the neuron loop over steps.  ``spikes_in`` [T, N, ...].

    Without the one-step delays: a layer of a feed-forward network sees its source's spikes of
    the same step.  Populations at rest do not fire, so each layer's spike train is the
    delayed one shifted, and the output's counts over ``T`` steps are those nmc counts over
    ``T + D - 1``."""
    with torch.inference_mode():
        s = torch.from_numpy(spikes_in).float()
        steps, batch = s.shape[:2]
        for project, threshold in layers:
            current = project(s.flatten(0, 1)).unflatten(0, (steps, batch))
            v = torch.zeros_like(current[0])
            s = torch.stack([_torch_if(v, current[t], threshold) for t in range(steps)])
        return s.sum(0).numpy()


def snntorch_loop(layers, spikes_in):
    """snnTorch's standard loop: per step, each layer's projection and its ``snn.Leaky``
    (``beta = 1``, reset by subtraction: IF) in turn; no delays, as in :func:`torch_layers`."""
    with torch.inference_mode():
        s_in = torch.from_numpy(spikes_in).float()
        neurons = [snntorch.Leaky(beta=1.0, threshold=float(th), reset_mechanism="subtract") for _, th in layers]
        mem = [lif.init_leaky() for lif in neurons]
        counts = 0
        for t in range(len(s_in)):
            s = s_in[t]
            for i, ((project, _), lif) in enumerate(zip(layers, neurons)):
                s, mem[i] = lif(project(s), mem[i])
            counts = counts + s
        return counts.numpy()


def _torch_csr(proj, n):
    """The synapses of a ``sparse`` projection (stored by source) as a float64 CSR matrix by target."""
    ip = proj.indptr.data
    src = np.repeat(np.arange(len(ip) - 1), np.diff(ip))
    with warnings.catch_warnings():  # "Sparse CSR tensor support is in beta state"
        warnings.simplefilter("ignore", UserWarning)
        coo = torch.sparse_coo_tensor(np.stack([proj.indices.data.astype(np.int64), src]),
                                      proj.weight.data.astype(np.float64), (n, len(ip) - 1),
                                      check_invariants=False)
        return coo.coalesce().to_sparse_csr()


def torch_w3(g, synapses, x, T):
    """Plain torch: the input synapses' currents of all steps as one sparse CSR matrix × spike
    matrix (the input is known in advance), then one step at a time the recurrent synapses'
    sparse CSR matrix × spike vector and the LIF update, in float64 (its integers are exact).
    ``synapses``: the population's input and recurrent :func:`_torch_csr` matrices."""
    steps = latency_steps(g, T)
    pop = g.walk("snn.population")[0]
    n = pop.result.type.size
    lim = 1 << (BITS - 1)
    theta = float(pop.threshold)
    keep_u, keep_v = (1 - int(d) / 4096 for d in (pop.du, pop.dv))  # multiples of 2**-12: exact
    with torch.inference_mode():
        w_in, w_rec = synapses
        input_currents = (w_in @ torch.from_numpy(x[0]).double().T).T.contiguous()  # [T, n]
        u = torch.zeros(n, dtype=torch.float64)
        v = torch.zeros_like(u)
        spikes = torch.zeros_like(u)
        counts = torch.zeros_like(u)
        for t in range(steps):
            current = w_rec @ spikes
            if t < T:
                current += input_currents[t]
            u_raw = torch.trunc(u * keep_u) + current  # truncating decay, as nmc's shift
            v = (torch.trunc(v * keep_v) + u_raw).clamp_(-lim, lim - 1)
            u = u_raw.clamp_(-lim, lim - 1)
            spikes = (v > theta).double()
            v -= spikes * theta
            counts += spikes
        return counts.reshape(1, n).float().numpy()


# ------------------------------------------------------------------------------ harness


def _timed(fn, repeat=1, trace=True):
    """(result, best wall time of ``repeat`` runs, peak traced memory of one more run or None
    without ``trace``).  Memory is traced in a separate run: tracing slows every allocation."""
    best, out = None, None
    for _ in range(repeat):
        start = time.perf_counter()
        out = fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    if not trace:
        return out, best, None
    tracemalloc.start()
    fn()
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    return out, best, peak


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


def measure(name, graph, inputs, T, baselines, threads, repeat, kernels="auto", schedule="auto"):
    """nmc against each of ``baselines`` (executor name → run, giving the output counts; numpy's
    first), all in this process on the same input."""
    saved = os.environ.get("NMC_CACHE_DIR")
    with tempfile.TemporaryDirectory() as cache:  # an empty cache: the first prepare compiles
        os.environ["NMC_CACHE_DIR"] = cache
        try:
            start = time.perf_counter()
            cpu.prepare(graph, kernels=kernels, schedule=schedule)
            cold = time.perf_counter() - start
            start = time.perf_counter()
            execute = cpu.prepare(graph, threads=threads, kernels=kernels, schedule=schedule)
            cached = time.perf_counter() - start
        finally:
            if saved is None:
                del os.environ["NMC_CACHE_DIR"]
            else:
                os.environ["NMC_CACHE_DIR"] = saved
    # outputs are compared first, on untimed runs (which also warm caches and BLAS threads)
    out = execute(inputs, timesteps=T).outputs[0]
    same = {executor: np.array_equal(out, run()) for executor, run in baselines.items()}
    time.sleep(0.5)  # OpenBLAS and OpenMP worker threads spin for a while after work: let them settle
    res, nmc_s, nmc_mem = _timed(lambda: execute(inputs, timesteps=T), repeat)
    _, base_s, base_mem = _timed(baselines["numpy"], repeat)
    seconds = {"numpy": base_s}
    for executor, run in baselines.items():
        if executor != "numpy":  # torch allocates outside Python's tracing: time only
            time.sleep(0.5)
            seconds[executor] = _timed(run, repeat, trace=False)[1]
    best = min(seconds, key=seconds.get)
    batch = len(inputs[0])
    sample_steps = batch * res.steps
    return dict(name=name, same=same, nmc_s=nmc_s, base_s=base_s, per_step=nmc_s / sample_steps,
                base_per_step=base_s / sample_steps, events=res.synaptic_ops / nmc_s,
                base_events=res.synaptic_ops / base_s, ratio=seconds[best] / nmc_s, best=best,
                other_per_step={k: v / sample_steps for k, v in seconds.items()}, cold=cold, cached=cached,
                nmc_mem=nmc_mem, base_mem=base_mem, spikes=res.spikes / sample_steps,
                synops=res.synaptic_ops, schedule=res.stats["schedule"])


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
            t = {k: _timed(lambda k=k: run[k](xin, timesteps=50), 7)[1] for k in run}
            print(f"{encoding:8} {r:5.2f} {t['event'] * 1e3:9.1f} {t['dense'] * 1e3:9.1f} {t['event'] / t['dense']:11.2f}")
    return 0


WORKLOADS = ("W1-64", "W1-1", "W1c-64", "W2", "W3")


def feed_forward_baselines(g, numpy_run, trains) -> dict:
    """numpy's baseline and, when installed, torch's and snnTorch's, on the input ``trains``
    [T, N, ...] (the values numpy's baseline integrates too)."""
    baselines = {"numpy": numpy_run}
    if torch is not None:
        layers = _torch_layers(g)
        trains = np.ascontiguousarray(trains, np.float32)
        baselines["torch"] = lambda: torch_layers(layers, trains)
        if snntorch is not None:
            baselines["snnTorch"] = lambda: snntorch_loop(layers, trains)
    return baselines


def workload_row(name: str, args) -> dict:
    """Build workload ``name`` (the graphs are drawn in one fixed order from seed 1234, so each
    is the same whichever are run) and measure it after this process's one-time set-up."""
    setup = process_setup()
    if torch is not None:
        torch.set_num_threads(args.threads or os.cpu_count())
    rng = np.random.default_rng(1234)
    g1 = w1_graph(rng)
    if name.startswith("W1-"):
        batch = int(name.split("-")[1])
        x = (np.random.default_rng(7).random((batch, 100, 784)) < 0.15).astype(np.float32)
        baselines = feed_forward_baselines(g1, lambda: baseline_w1(g1, x, 100), x.transpose(1, 0, 2))
        row = measure(f"W1 784-500-500-10 b{batch}", g1, [x], 100, baselines, args.threads, args.repeat, args.kernels, args.schedule)
    elif name == "W1c-64":
        gc = w1_graph(np.random.default_rng(1234), W1C_THRESHOLDS, "current", W1C_SCALE)
        xc = np.random.default_rng(7).random((64, 784)).astype(np.float32)
        values = np.floor(xc.astype(np.float64) * W1C_SCALE + 0.5)  # what the encoder emits each step
        trains = np.repeat(values[:, None, :], 100, axis=1)
        baselines = feed_forward_baselines(gc, lambda: baseline_w1(gc, trains, 100), trains.transpose(1, 0, 2))
        row = measure("W1c current-enc b64", gc, [xc], 100, baselines, args.threads, args.repeat, args.kernels, args.schedule)
    else:
        g2 = w2_graph(rng)
        x2 = mnist(args.data, 32, rng)
        if name == "W2":
            # the rate encoder's spikes, computed as the host does for every backend
            from nmc.semantics import encode
            state: dict = {}
            enc = g2.walk("snn.encode")[0]
            trains = np.stack([encode(enc, x2, t, 50, state, True).reshape(32, 1, 28, 28) for t in range(50)])
            baselines = feed_forward_baselines(g2, lambda: baseline_w2(g2, trains, 50), trains)
            row = measure("W2 conv 28x28 b32", g2, [x2], 50, baselines, args.threads, args.repeat, args.kernels, args.schedule)
        else:
            neurons, synapses, steps = (2000, 100_000, 200) if args.quick else (10_000, 1_000_000, 1000)
            g3 = w3_graph(rng, neurons, synapses)
            x3 = (np.random.default_rng(9).random((1, steps, neurons // 10)) < 0.02).astype(np.float32)
            baselines = {"numpy": lambda: baseline_w3(g3, x3, steps)}
            if torch is not None:
                matrices = [_torch_csr(c.owner, neurons) for c in g3.walk("snn.population")[0].currents]
                baselines["torch"] = lambda: torch_w3(g3, matrices, x3, steps)
            row = measure(f"W3 LIF {neurons} / {synapses:,} syn", g3, [x3], steps, baselines, args.threads, args.repeat, args.kernels,
                          "step" if args.schedule == "layer" else args.schedule)
    row["setup"] = setup
    row["rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return row


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="small W3 (2,000 neurons, 100,000 synapses, 200 steps)")
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--repeat", type=int, default=2)
    shared = Path(__file__).resolve().parents[2] / "shared" / "data"
    ap.add_argument("--data", default=str(shared) if shared.is_dir() else None,
                    help="folder with mnist/mnist_test.npz (default ../shared/data; else seeded noise, "
                         "which fires far more densely than digits)")
    ap.add_argument("--only", default="W1-64,W1-1,W1c-64,W2,W3")
    ap.add_argument("--kernels", default="auto", choices=("auto", "event", "dense"))
    ap.add_argument("--schedule", default="auto", choices=("auto", "step", "layer"))
    ap.add_argument("--crossover", action="store_true", help="event vs dense kernel against the firing rate")
    ap.add_argument("--in-process", action="store_true", help="all workloads in this process (no fresh process each)")
    args = ap.parse_args(argv)
    if args.crossover:
        return crossover()
    rows = []
    for name in args.only.split(","):
        if name not in WORKLOADS:
            ap.error(f"unknown workload {name!r}; choose from {','.join(WORKLOADS)}")
        if args.in_process:
            rows.append(workload_row(name, args))
            continue
        with ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn")) as pool:
            rows.append(pool.submit(workload_row, name, args).result())

    extra = [k for k in ("torch", "snnTorch") if any(k in r["other_per_step"] for r in rows)]
    head = (f"{'workload':28} {'same':>4} {'nmc s/smp-step':>14} {'numpy s/smp-step':>16} "
            + "".join(f"{k + ' s/smp-step':>19} " for k in extra)
            + f"{'nmc ev/s':>9} {'numpy ev/s':>10} {'ratio':>6} " + (f"{'best':>8} " if extra else "")
            + f"{'cold s':>7} {'cached s':>8} {'nmc MB':>7} {'numpy MB':>8} {'spk/step':>8} {'sched':>5}")
    print(head)
    print("-" * len(head))
    for r in rows:
        differ = [k for k, same in r["same"].items() if not same]
        same = "yes" if not differ else "NO" if not extra else "NO " + ",".join(differ)
        others = "".join(f"{r['other_per_step'][k]:19.3e} " if k in r["other_per_step"] else f"{'-':>19} "
                         for k in extra)
        print(f"{r['name']:28} {same:>4} {r['per_step']:14.3e} {r['base_per_step']:16.3e} {others}"
              f"{r['events']:9.2e} {r['base_events']:10.2e} {r['ratio']:6.1f} " + (f"{r['best']:>8} " if extra else "")
              + f"{r['cold']:7.3f} {r['cached']:8.3f} "
              f"{r['nmc_mem'] / 2**20:7.1f} {r['base_mem'] / 2**20:8.1f} {r['spikes']:8.0f} {r['schedule']:>5}")
    rss = max(r["rss_mb"] for r in rows)
    setups = [r["setup"] for r in rows]
    ratio = ("the best other executor's time (best) / nmc time" if extra else "numpy time / nmc time")
    print(f"\nEach workload runs in a fresh process{' (here: all in this one)' if args.in_process else ''}, nmc and "
          f"its baseline{'s' if extra else ''} in the same one.  MB columns: peak of Python/numpy allocations during one run "
          f"(tracemalloc); largest process peak RSS {rss:.0f} MB.  ratio = {ratio}; "
          f"threads: {args.threads or os.cpu_count()}; kernels: {args.kernels}; schedule: {args.schedule} "
          f"(sched: the one each run used).\n"
          f"cold s: compiling a network with an empty cache, after the process's one-time set-up (LLVM "
          f"initialisation and first compile of a 16-16-4 network: {min(setups):.3f}-{max(setups):.3f} s).")
    if extra:
        print(f"torch {torch.__version__}" + (f", snnTorch {snntorch.__version__}" if snntorch else "")
              + f": torch.set_num_threads({args.threads or os.cpu_count()}), inference_mode, float32 "
              "(W3 float64), integer values throughout; same: every executor's output equals nmc's exactly "
              "(else NO and the executors that differ).  torch: each layer one call over all steps, then "
              "the neuron loop (W1, W2); the input's currents as one sparse CSR product, then the recurrent "
              "sparse CSR matrix × spike vector per step (W3).  snnTorch: its "
              "standard loop over steps of nn.functional projections and snn.Leaky(beta=1, subtract).")
    return 0 if all(all(r["same"].values()) for r in rows) else 1

if __name__ == "__main__":
    sys.exit(main())

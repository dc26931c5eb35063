"""The peers of benchmarks/runtime.py, each at its best, on a workload handed over as a file.

It imports no nmc: the peers that collide with nmc's pins run it from their own venvs, as a
subprocess of benchmarks/runtime.py, which writes the workload (weights, thresholds, input,
and nmc's output) into an ``.npz`` and reads back one JSON line per peer::

    python benchmarks/runtime_peers.py SPEC.npz --peers torch,snnTorch,SpikingJelly
    python benchmarks/runtime_peers.py SPEC.npz --peers Brian2

Every peer's output is compared with nmc's before anything is timed; a peer whose output
differs is reported (``same: false``) and not timed.  The venvs (outside the repository)::

    python3.11 -m venv /work/venv-peers && /work/venv-peers/bin/pip install torch==2.13.0   # a CPU build
    echo torch==2.13.0 > /tmp/c.txt && /work/venv-peers/bin/pip install -c /tmp/c.txt snntorch spikingjelly
    python3.11 -m venv /work/venv-brian2 && /work/venv-brian2/bin/pip install brian2==2.9.0 'numpy<2.4'

(Brian2 2.10 and newer need Python 3.12; 2.9.0 needs numpy < 2.4, hence its own venv.)

Workloads (``meta["kind"]``):

* ``ff``: a feed-forward integer IF network (threshold θ, reset by subtraction, state
  saturated to ``bits``; layers ``dense``, ``conv`` (valid 3×3) or ``pool`` (sum pooling × a
  weight)) on input spike trains ``[T, N, ...]``; output: spike counts of the last layer.
  Peers run it without nmc's one-step delays (a layer sees its source's spikes of the same
  step): populations at rest do not fire, so each layer's train is nmc's shifted and the
  counts over ``T`` steps are those nmc counts over ``T + depth - 1``.  Every value is an
  integer below 2**24, so float32 holds it exactly.
* ``w3``: a recurrent LIF population (integer decays ``du``, ``dv`` in 4096ths, truncating
  toward zero) fed by input spikes through sparse synapses; output: spike counts.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
import warnings

import numpy as np


def load_spec(path: str) -> tuple[dict, dict]:
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files}
    return json.loads(str(arrays.pop("meta"))), arrays


def best_time(fn, repeat: int) -> float:
    best = None
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        elapsed = time.perf_counter() - start
        best = elapsed if best is None else min(best, elapsed)
    return best


# ------------------------------------------------------------------------------- numpy


def _pool_sum(frames: np.ndarray, k: int) -> np.ndarray:
    F, C, H, W = frames.shape
    h, w = H // k, W // k
    return frames[:, :, :h * k, :w * k].reshape(F, C, h, k, w, k).sum(axis=(3, 5))


def _conv_f32(frames: np.ndarray, w: np.ndarray) -> np.ndarray:
    """Valid convolution of ``frames`` [F, C, H, W] by ``w`` [O, C, kh, kw] as one float32
    matmul over all frames (im2col)."""
    F, C, H, W = frames.shape
    kh, kw = w.shape[2:]
    oh, ow = H - kh + 1, W - kw + 1
    cols = np.lib.stride_tricks.sliding_window_view(frames, (kh, kw), axis=(2, 3))  # F,C,oh,ow,kh,kw
    cols = cols.transpose(0, 2, 3, 1, 4, 5).reshape(F * oh * ow, C * kh * kw)
    out = cols @ w.reshape(len(w), -1).T
    return out.reshape(F, oh, ow, -1).transpose(0, 3, 1, 2)


def numpy_ff(meta: dict, arrays: dict):
    """numpy float32, time-batched: each layer's currents of all steps and samples as one
    float32 matmul (sgemm; im2col for convolutions), then the IF neurons step by step,
    vectorised over samples and neurons, in float32 (exact: integers below 2**24)."""
    layers = [(L, arrays[f"w{i}"].astype(np.float32) if L["kind"] != "pool" else None)
              for i, L in enumerate(meta["layers"])]
    lim = float(1 << (meta["bits"] - 1))
    trains = arrays["trains"].astype(np.float32)

    def run():
        s = trains
        T, N = s.shape[:2]
        for L, w in layers:
            frames = s.reshape(T * N, *L["src"])
            if L["kind"] == "dense":
                cur = frames.reshape(T * N, -1) @ w.T
            elif L["kind"] == "conv":
                cur = _conv_f32(frames, w)
            else:
                cur = _pool_sum(frames, L["k"]) * np.float32(L["weight"])
            cur = cur.reshape(T, N, -1)
            v = np.zeros(cur.shape[1:], np.float32)
            out = np.empty_like(cur)
            th = np.float32(L["threshold"])
            for t in range(T):
                v += cur[t]
                np.clip(v, -lim, lim - 1, out=v)
                np.greater(v, th, out=out[t])
                v -= out[t] * th
            s = out
        return s.sum(axis=0).reshape(N, -1)

    return run


def numpy_w3(meta: dict, arrays: dict):
    """numpy event-driven: per step, the synapses of the spiking sources (CSR by source)
    gathered and summed with ``bincount``, then the LIF update vectorised."""
    n, steps, T = meta["neurons"], meta["steps"], meta["T"]
    lim = 1 << (meta["bits"] - 1)
    theta, du, dv = meta["threshold"], meta["du"], meta["dv"]
    ip_in, ix_in, w_in = arrays["ip_in"], arrays["ix_in"], arrays["w_in"].astype(np.float64)
    ip_rec, ix_rec, w_rec = arrays["ip_rec"], arrays["ix_rec"], arrays["w_rec"].astype(np.float64)
    x = arrays["trains"][:, 0]  # [T, inputs]

    def deliver(ip, ix, w, active):
        starts, ends = ip[active], ip[active + 1]
        lens = ends - starts
        total = int(lens.sum())
        if total == 0:
            return np.zeros(n, np.int64)
        offs = np.repeat(starts - np.cumsum(lens) + lens, lens) + np.arange(total)
        return np.bincount(ix[offs], w[offs], minlength=n).astype(np.int64)

    def decay(z, d):
        return np.sign(z) * ((np.abs(z) * (4096 - d)) >> 12)

    def run():
        u = np.zeros(n, np.int64)
        v = np.zeros(n, np.int64)
        counts = np.zeros(n, np.int64)
        fired = np.zeros(0, np.int64)
        for t in range(steps):
            cur = deliver(ip_in, ix_in, w_in, np.flatnonzero(x[t])) if t < T else np.zeros(n, np.int64)
            if t >= 1:
                cur += deliver(ip_rec, ix_rec, w_rec, fired)
            u_raw = decay(u, du) + cur
            v = np.clip(decay(v, dv) + u_raw, -lim, lim - 1)
            u = np.clip(u_raw, -lim, lim - 1)
            spk = v > theta
            v = np.where(spk, v - theta, v)
            fired = np.flatnonzero(spk)
            counts[fired] += 1
        return counts.reshape(1, n)

    return run


# ------------------------------------------------------------------------------- torch


def _torch_projections(meta, arrays):
    import torch
    import torch.nn.functional as F

    out = []
    for i, L in enumerate(meta["layers"]):
        src = tuple(L["src"])
        if L["kind"] == "dense":
            w = torch.from_numpy(arrays[f"w{i}"].astype(np.float32))
            out.append(lambda s, w=w: F.linear(s.flatten(1), w))
        elif L["kind"] == "conv":
            w = torch.from_numpy(arrays[f"w{i}"].astype(np.float32))
            out.append(lambda s, w=w, src=src: F.conv2d(s.reshape(-1, *src), w).flatten(1))
        else:
            out.append(lambda s, L=L, src=src: (F.avg_pool2d(s.reshape(-1, *src), L["k"], L["k"], divisor_override=1)
                                                * float(L["weight"])).flatten(1))
    return out


def torch_ff(meta, arrays):
    """Plain torch, every step batched: each layer's projection one call over all steps and
    samples (F.linear, F.conv2d, F.avg_pool2d with divisor_override=1), then the IF neurons
    step by step in float32, in place."""
    import torch

    projections = _torch_projections(meta, arrays)
    th = [float(L["threshold"]) for L in meta["layers"]]
    lim = float(1 << (meta["bits"] - 1))
    trains = torch.from_numpy(arrays["trains"].astype(np.float32))

    def run():
        with torch.inference_mode():
            s = trains
            T, N = s.shape[:2]
            for project, theta in zip(projections, th):
                cur = project(s.flatten(0, 1)).unflatten(0, (T, N))
                v = torch.zeros_like(cur[0])
                out = torch.empty_like(cur)
                for t in range(T):
                    v.add_(cur[t]).clamp_(-lim, lim - 1)
                    torch.gt(v, theta, out=out[t])
                    v.sub_(out[t] * theta)
                s = out
            return s.sum(0).numpy()

    return run


def snntorch_ff(meta, arrays):
    """snnTorch at its best: each layer's projection over all steps at once, then its
    ``snn.Leaky(beta=1, reset_mechanism="subtract")`` step by step (with beta = 1 its delayed
    reset is nmc's IF)."""
    import snntorch
    import torch

    projections = _torch_projections(meta, arrays)
    th = [float(L["threshold"]) for L in meta["layers"]]
    trains = torch.from_numpy(arrays["trains"].astype(np.float32))

    def run():
        with torch.inference_mode():
            s = trains
            T, N = s.shape[:2]
            for project, theta in zip(projections, th):
                cur = project(s.flatten(0, 1)).unflatten(0, (T, N))
                lif = snntorch.Leaky(beta=1.0, threshold=theta, reset_mechanism="subtract")
                mem = lif.init_leaky()
                out = []
                for t in range(T):
                    spk, mem = lif(cur[t], mem)
                    out.append(spk)
                s = torch.stack(out)
            return s.sum(0).numpy()

    return run


def spikingjelly_ff(meta, arrays):
    """SpikingJelly in multi-step mode: each layer's projection over all steps at once, then
    ``neuron.IFNode(step_mode="m", v_reset=None)`` (reset by subtraction) over the whole
    sequence.  It fires at ``v >= θ``, nmc at ``v > θ``: its voltage starts at -1 (so it is
    nmc's minus 1), which for integer voltages makes the two the same."""
    import torch
    from spikingjelly.activation_based import functional, neuron

    projections = _torch_projections(meta, arrays)
    nodes = [neuron.IFNode(v_threshold=float(L["threshold"]), v_reset=None, step_mode="m", detach_reset=True)
             for L in meta["layers"]]
    trains = torch.from_numpy(arrays["trains"].astype(np.float32))

    def run():
        with torch.inference_mode():
            s = trains
            T, N = s.shape[:2]
            for project, node in zip(projections, nodes):
                functional.reset_net(node)
                node.v = -1.0
                s = node(project(s.flatten(0, 1)).unflatten(0, (T, N)))
            return s.sum(0).numpy()

    return run


def torch_w3(meta, arrays):
    """Plain torch: the input synapses' currents of all steps as one sparse CSR product, then
    per step the recurrent sparse CSR matrix × spike vector and the LIF update, in float64."""
    import torch

    n, steps, T = meta["neurons"], meta["steps"], meta["T"]
    lim = float(1 << (meta["bits"] - 1))
    theta = float(meta["threshold"])
    keep_u, keep_v = 1 - meta["du"] / 4096, 1 - meta["dv"] / 4096  # multiples of 2**-12: exact

    def csr(ip, ix, w, n_src):
        src = np.repeat(np.arange(n_src), np.diff(ip))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            coo = torch.sparse_coo_tensor(np.stack([ix.astype(np.int64), src]), w.astype(np.float64), (n, n_src))
            return coo.coalesce().to_sparse_csr()

    w_in = csr(arrays["ip_in"], arrays["ix_in"], arrays["w_in"], len(arrays["ip_in"]) - 1)
    w_rec = csr(arrays["ip_rec"], arrays["ix_rec"], arrays["w_rec"], n)
    x = torch.from_numpy(arrays["trains"][:, 0].astype(np.float64))  # [T, inputs]

    def run():
        with torch.inference_mode():
            input_currents = (w_in @ x.T).T.contiguous()
            u = torch.zeros(n, dtype=torch.float64)
            v = torch.zeros_like(u)
            spikes = torch.zeros_like(u)
            counts = torch.zeros_like(u)
            for t in range(steps):
                current = w_rec @ spikes
                if t < T:
                    current += input_currents[t]
                u_raw = torch.trunc(u * keep_u) + current
                v = (torch.trunc(v * keep_v) + u_raw).clamp_(-lim, lim - 1)
                u = u_raw.clamp_(-lim, lim - 1)
                spikes = (v > theta).double()
                v -= spikes * theta
                counts += spikes
            return counts.reshape(1, n).numpy()

    return run


# ------------------------------------------------------------------------------ Brian2


def brian2_w3(meta, arrays, threads: int):
    """Brian2 at its best: :func:`brian2_build_and_run` on one thread and on ``threads``
    (OpenMP), the faster run kept; returns (counts, build seconds of that one, run seconds)."""
    results = [brian2_build_and_run(meta, arrays, k) for k in sorted({1, threads})]
    counts = [r[0] for r in results]
    if any(not np.array_equal(c, counts[0]) for c in counts):
        raise AssertionError("Brian2 gave different counts on 1 and on several threads")
    return min(results, key=lambda r: r[2])


def brian2_build_and_run(meta, arrays, threads: int):
    """Brian2 2.9 ``cpp_standalone`` (C++ generated, compiled with the system compiler, run as
    a program; OpenMP on ``threads`` threads): input spikes from a SpikeGeneratorGroup,
    synapses ``on_pre: I_post += w`` (delivered in the step they are emitted), and the LIF
    update as a ``run_regularly`` at the end of each step (``int()`` truncates toward zero,
    ``clip`` saturates), so that a spike found at step ``t + 1`` is nmc's spike of step ``t``
    and the recurrent synapses add it at ``t + 1``, as nmc's delay 1 does.

    Returns (counts, build seconds, run seconds): the build (code generation and
    compilation) apart from the run, which is the simulation's own time as the program
    measures it (``device._last_run_time``)."""
    import brian2 as b2

    n, steps, T = meta["neurons"], meta["steps"], meta["T"]
    lim = 1 << (meta["bits"] - 1)
    folder = tempfile.mkdtemp(prefix="nmc-brian2-")
    b2.set_device("cpp_standalone", directory=folder, build_on_run=False)
    b2.prefs.devices.cpp_standalone.openmp_threads = threads if threads > 1 else 0
    b2.prefs.codegen.cpp.extra_compile_args_gcc = ["-O3", "-march=native", "-w"]
    b2.defaultclock.dt = 1 * b2.ms
    g = b2.NeuronGroup(n, "u : 1\nv : 1\nI : 1\ncount : 1", threshold=f"v > {meta['threshold']}",
                       reset=f"v -= {meta['threshold']}\ncount += 1", name="lif")
    keep_u, keep_v = 4096 - meta["du"], 4096 - meta["dv"]
    g.run_regularly(f"""u_raw = int(u * {keep_u} / 4096.0) + I
v = clip(int(v * {keep_v} / 4096.0) + u_raw, {-lim}, {lim - 1})
u = clip(u_raw, {-lim}, {lim - 1})
I = 0""", when="end")
    x = arrays["trains"][:, 0]  # [T, inputs]
    t_idx, i_idx = np.nonzero(x[:T])
    inp = b2.SpikeGeneratorGroup(x.shape[1], i_idx, t_idx * b2.ms)
    s_in = b2.Synapses(inp, g, "w : 1", on_pre="I_post += w")
    ip = arrays["ip_in"]
    s_in.connect(i=np.repeat(np.arange(len(ip) - 1), np.diff(ip)), j=arrays["ix_in"].astype(np.int64))
    s_in.w = arrays["w_in"].astype(np.float64)
    s_rec = b2.Synapses(g, g, "w : 1", on_pre="I_post += w")
    ip = arrays["ip_rec"]
    s_rec.connect(i=np.repeat(np.arange(n), np.diff(ip)), j=arrays["ix_rec"].astype(np.int64))
    s_rec.w = arrays["w_rec"].astype(np.float64)
    net = b2.Network(g, inp, s_in, s_rec)
    net.run((steps + 1) * b2.ms)  # one more step finds the last update's spikes
    start = time.perf_counter()
    b2.device.build(directory=folder, compile=True, run=False)
    build = time.perf_counter() - start
    runs = []
    for _ in range(meta.get("repeat", 1)):
        b2.device.run(folder, with_output=False, run_args=[])
        runs.append(b2.device._last_run_time)
    counts = np.asarray(g.count[:]).reshape(1, n)
    b2.device.reinit()  # so that another network can be built in this process
    b2.device.activate()
    shutil.rmtree(folder, ignore_errors=True)
    return counts, build, min(runs)


# --------------------------------------------------------------------------------- main

PEERS = {"ff": {"torch": torch_ff, "snnTorch": snntorch_ff, "SpikingJelly": spikingjelly_ff},
         "w3": {"torch": torch_w3}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("spec")
    ap.add_argument("--peers", required=True, help="comma-separated: torch, snnTorch, SpikingJelly, Brian2")
    args = ap.parse_args(argv)
    meta, arrays = load_spec(args.spec)
    threads = meta["threads"]
    expected = arrays["expected"]
    for name in args.peers.split(","):
        row = {"peer": name}
        try:
            if name == "Brian2":
                counts, build, run_s = brian2_w3(meta, arrays, threads)
                row.update(same=bool(np.array_equal(counts, expected)), seconds=run_s, build_s=build)
            else:
                import torch

                torch.set_num_threads(threads)
                row["version"] = torch.__version__
                run = PEERS[meta["kind"]][name](meta, arrays)
                same = bool(np.array_equal(np.asarray(run()).reshape(expected.shape), expected))
                row["same"] = same
                if same:
                    time.sleep(0.3)
                    row["seconds"] = best_time(run, meta["repeat"])
        except Exception as err:  # noqa: BLE001 - a peer that fails is reported, not fatal
            row["error"] = f"{type(err).__name__}: {err}"
        print(json.dumps(row), flush=True)
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    sys.exit(main())

"""Mapping quality and speed on random layered integer graphs (``python benchmarks/mapping.py``).

For each size (total neurons) a graph of 4 equal layers is built: an encoder of n/4 inputs,
then sparse projections where each neuron draws ``--fan-in`` random sources (int8 weights)
from a window of the previous layer around its own relative position (local connectivity,
as convolutions have).  The graph is mapped onto Loihi-class chips (targets/chips/mesh.toml)
on a board with just enough chips, and the table reports: compile time per mapping pass and
for the emitter, cores vs the partitioner's lower bound, placement cost vs the naive
placement, the busiest link (expected spikes per step at the assumed ``--rate``; every
input enters through the host port at one corner, so the rate is kept low) and the
emulator's throughput in sample-steps per second.

``--quick`` runs 10^3 and 10^4 neurons (seconds); the default runs 10^4, 10^5 and 10^6.
Deterministic: every random choice comes from ``--seed``.
"""

from __future__ import annotations

import argparse
import math
import re
import time
import types
from pathlib import Path

import numpy as np

from nmc.ir.ann import Input, Output
from nmc.ir.core import Blob, Graph
from nmc.ir.snn import Decode, Encode, Population, Project
from nmc.ir.types import SpikeType, TensorType
from nmc.passmanager import PassContext, PassManager, parse_pipeline
from nmc.targets.chip import parse_chip
from nmc.targets.mesh import emit_sections, prepare, resource_summary

MESH = Path(__file__).resolve().parent.parent / "targets" / "chips" / "mesh.toml"


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


def board_for(neurons: int) -> tuple[object, str]:
    """mesh.toml on a board of just enough chips (30% headroom), as chip and text."""
    text = MESH.read_text()
    chips = max(1, math.ceil(neurons * 1.3 / (1024 * 128)))
    cx = math.ceil(math.sqrt(chips))
    cy = math.ceil(chips / cx)
    text = re.sub(r"chips_x = \d+", f"chips_x = {cx}", text)
    text = re.sub(r"chips_y = \d+", f"chips_y = {cy}", text)
    return parse_chip(text, f"mesh-{cx}x{cy}.toml"), text


def measure(neurons: int, fan_in: int, seed: int, batch: int, emulate: bool, rate: float) -> dict:
    graph = layered_graph(neurons, fan_in, seed)
    chip, text = board_for(neurons)
    ctx = PassContext(target=chip, seed=seed)
    times = {}
    for name in ("partition", f"place{{seed={seed}}}", f"route{{rate={rate}}}"):
        start = time.perf_counter()
        PassManager(parse_pipeline(name), ctx).run(graph)
        times[name.split("{")[0]] = time.perf_counter() - start
    start = time.perf_counter()
    sections = emit_sections(graph, chip)
    times["emit"] = time.perf_counter() - start
    summary = resource_summary(graph, chip)
    row = {"neurons": sum(p.result.type.size for p in graph.walk("snn.population")),
           "synapses": summary["synapses"], "board": f"{chip.mesh.chips_x}x{chip.mesh.chips_y}",
           **{f"{k}_s": v for k, v in times.items()},
           "cores": summary["cores"], "lower_bound": summary["cores_lower_bound"], "chips": summary["chips"],
           "cost": summary["placement_cost"], "cost_naive": summary["placement_cost_naive"],
           "busiest_link": summary["max_link_load"], "emu_sample_steps_per_s": None}
    if emulate:
        sections["chip"] = text.encode()
        start = time.perf_counter()
        execute = prepare(types.SimpleNamespace(sections=sections))
        row["emu_prepare_s"] = time.perf_counter() - start
        x = np.random.default_rng(seed).random((batch, graph.inputs[0].type.size)).astype(np.float32)
        start = time.perf_counter()
        result = execute([x])
        row["emu_sample_steps_per_s"] = batch * result.steps / (time.perf_counter() - start)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="10^3 and 10^4 neurons only")
    ap.add_argument("--sizes", type=int, nargs="*", help="total neurons per graph")
    ap.add_argument("--fan-in", type=int, default=16)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-emulator", action="store_true")
    ap.add_argument("--rate", type=float, default=0.01,
                    help="assumed spikes per step per neuron for link loads (all inputs enter at one host port)")
    args = ap.parse_args()
    sizes = args.sizes or ([1000, 10_000] if args.quick else [10_000, 100_000, 1_000_000])
    rows = [measure(n, args.fan_in, args.seed, args.batch, not args.no_emulator, args.rate) for n in sizes]
    cols = ["neurons", "synapses", "board", "partition_s", "place_s", "route_s", "emit_s", "cores", "lower_bound",
            "chips", "cost", "cost_naive", "busiest_link", "emu_sample_steps_per_s"]
    cells = [cols] + [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(cols))]
    for row in cells:
        print("| " + " | ".join(v.rjust(w) for v, w in zip(row, widths)) + " |")


def _fmt(v) -> str:
    if v is None:
        return "-"
    if isinstance(v, float):
        return f"{v:.3g}" if abs(v) < 1e4 else f"{v:.4g}"
    return str(v)


if __name__ == "__main__":
    main()

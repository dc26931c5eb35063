"""Check nmc's NIR frontend on the NIR paper's benchmark graphs (../shared/data/nir).

1. LIF (``01_lif/lif_norse.nir``, dt = 1e-4 s) driven by the input spike train of
   ``lif_exact.csv`` (column 0) must spike where the exact ODE solution does (column 2: steps
   460, 510, 710, 760), or one step later (a synaptic delay).
2. The spiking CNN (``02_cnn/cnn_sinabs.nir``) imports, runs on random spike input, compiles
   for the ``mesh`` chip (8-bit weights), and the image runs with bit-identical outputs, spike
   and synaptic-op counts on the chip emulator, the CPU runtime and the reference semantics.
3. Both recurrent Braille graphs (``03_rnn/braille_*.nir``, CubaLIF) import, run, compile for
   ``mesh`` and run bit-identically on the three executors; the subtractive variant with
   ``reset = subtract`` as its name says.
4. ``01_lif/lif_rockpool.nir`` (nir's type inference rejects its Output of ``[1, 1, 1]``, a
   batch axis rockpool wrote) imports with the batch axes dropped, and runs.
5. Every graph that nmc can express in NIR is written back and re-read: NIR → nmc → NIR → nmc
   must print the same IR.

The N-MNIST and Braille data sets are not here, so accuracy is not checked: the inputs are
random spike trains.  Exits 1 if a check fails.

    python examples/check_nir_paper.py [DATA_DIR]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time

import numpy as np

import nmc
from nmc import semantics
from nmc.diagnostics import NmcError
from nmc.exporters.nir import export_nir
from nmc.frontends.nir import load_nir
from nmc.ir.printer import print_graph

DEFAULT_DATA = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..", "shared", "data", "nir")
DT = 1e-4  # the paper's time step for every graph here
SEED = 0


def check(ok: bool, what: str, failures: list[str]) -> None:
    print(f"  [{'ok' if ok else 'FAIL'}] {what}")
    if not ok:
        failures.append(what)


def spike_steps(graph, x: np.ndarray) -> tuple[np.ndarray, object]:
    pop = graph.walk("snn.decode")[0].x.owner
    res = semantics.run_snn(graph, [x], record=[pop])
    return res.spikes[pop], res


def lif(data: str, failures: list[str]) -> None:
    print("01_lif/lif_norse.nir, driven by lif_exact.csv")
    trace = np.loadtxt(os.path.join(data, "01_lif", "lif_exact.csv"), delimiter=",")
    norse = np.loadtxt(os.path.join(data, "01_lif", "lif_norse.csv"), delimiter=",")
    graph = load_nir(os.path.join(data, "01_lif", "lif_norse.nir"), dt=DT)
    x = trace[:, 0].reshape(1, -1, 1).astype(np.float32)
    train, res = spike_steps(graph, x)
    got = np.nonzero(train[0, :, 0])[0].tolist()
    exact = np.nonzero(trace[:, 2])[0].tolist()
    print(f"  input spikes: {int(x.sum())} over {len(trace)} steps; T = {res.timesteps}, steps run = {res.steps}")
    print(f"  exact solution spikes at {exact}; Norse at {np.nonzero(norse[:, 2])[0].tolist()}; nmc at {got}")
    check(exact == [460, 510, 710, 760], "the exact solution spikes at 460, 510, 710, 760", failures)
    check(got == exact or got == [s + 1 for s in exact], "nmc spikes at the exact solution's steps (or one later)", failures)


def cnn(data: str, failures: list[str]) -> None:
    print("02_cnn/cnn_sinabs.nir on random spike input")
    start = time.perf_counter()
    graph = load_nir(os.path.join(data, "02_cnn", "cnn_sinabs.nir"), dt=DT)
    load_s = time.perf_counter() - start
    kinds = [p.kind for p in graph.walk("snn.project")]
    print(f"  imported in {load_s:.3f} s: {len(graph.walk('snn.population'))} populations, projections {kinds}")
    rng = np.random.default_rng(SEED)
    x = (rng.random((4, 30, 2, 34, 34)) < 0.05).astype(np.float32)
    start = time.perf_counter()
    _, res = spike_steps(graph, x)
    print(f"  4 samples x T = 30 ({res.steps} steps): {res.spike_count / 4:.0f} spikes/sample, "
          f"{res.synaptic_ops / 4:.0f} synaptic ops/sample, {time.perf_counter() - start:.2f} s")
    print(f"  output counts per sample: {res.outputs[0].sum(axis=1).tolist()}, "
          f"classes {semantics.classify(res.outputs[0], res.voltages[0]).tolist()}")
    check(res.outputs[0].shape == (4, 10) and res.spike_count > 0, "the CNN runs and its neurons spike", failures)
    on_mesh(graph, x, "02_cnn/cnn_sinabs.nir", failures)


def on_mesh(graph, x: np.ndarray, name: str, failures: list[str]) -> None:
    """Compile ``graph`` for the mesh chip; the image's outputs and counts must be the same on
    the emulator, the CPU runtime and the reference semantics."""
    start = time.perf_counter()
    image = nmc.compile(graph, target="mesh")
    r = image.manifest["resources"]
    print(f"  compiled for mesh in {time.perf_counter() - start:.2f} s: {r['cores']} cores "
          f"(lower bound {r['cores_lower_bound']}), {r['chips']} chip(s), {sum(map(len, image.sections.values()))} B")
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "model.nmb")
        image.save(path)
        runs = {b: nmc.run(path, x, backend=b) for b in ("emulator", "cpu", "reference")}
    emu = runs["emulator"]
    print(f"  emulator: {emu.spikes / len(x):.0f} spikes/sample, energy {emu.stats['energy_per_inference_j'] * 1e6:.3g} µJ"
          f"/inference; run time emulator {emu.run_s:.2f} s, cpu {runs['cpu'].run_s:.3f} s, "
          f"reference {runs['reference'].run_s:.2f} s")
    same = all(np.array_equal(r.outputs[0], emu.outputs[0]) and (r.spikes, r.synaptic_ops) == (emu.spikes, emu.synaptic_ops)
               for r in runs.values())
    check(same, f"{name} on mesh: emulator, CPU runtime and reference agree bit for bit", failures)


def braille(data: str, failures: list[str]) -> None:
    rng = np.random.default_rng(SEED)
    x = (rng.random((3, 256, 12)) < 0.1).astype(np.float32)
    for name, reset in (("braille_noDelay_bias_zero.nir", "zero"), ("braille_noDelay_noBias_subtract.nir", "subtract")):
        print(f"03_rnn/{name} (reset {reset}) on random spike input")
        graph = load_nir(os.path.join(data, "03_rnn", name), dt=DT, reset=reset)
        pops = graph.walk("snn.population")
        recurrent = [p for p in graph.walk("snn.project") if graph.index(p) > graph.index(p.src.owner)
                     and graph.index(p) > graph.index(graph.users(p.result)[0])]
        print(f"  populations {[(p.result.name, p.result.type.size) for p in pops]}, "
              f"recurrent projections {[p.result.name for p in recurrent]}")
        _, res = spike_steps(graph, x)
        print(f"  3 samples x T = 256: output counts {res.outputs[0].astype(int).tolist()}")
        check(res.spike_count > 0 and len(recurrent) == 1, f"{name} imports and runs", failures)
        on_mesh(graph, x, name, failures)


def rockpool(data: str, failures: list[str]) -> None:
    print("01_lif/lif_rockpool.nir")
    try:
        graph = load_nir(os.path.join(data, "01_lif", "lif_rockpool.nir"), dt=DT)
    except NmcError as err:
        print("  " + err.render().replace("\n", "\n  "))
        check(False, "imports with its batch axes dropped", failures)
    else:
        print(f"  output shape {list(graph.outputs[0].type.shape)}")
        check(graph.outputs[0].type.shape == (1,), "imports with its batch axes dropped", failures)


def roundtrip(data: str, failures: list[str]) -> None:
    print("round trip NIR → nmc → NIR → nmc")
    files = [("01_lif/lif_norse.nir", "zero"), ("01_lif/debug_spike_representation/two_lif_neurons.nir", "zero"),
             ("02_cnn/cnn_sinabs.nir", "zero"), ("03_rnn/braille_noDelay_bias_zero.nir", "zero")]
    with tempfile.TemporaryDirectory() as tmp:
        for name, reset in files:
            first = load_nir(os.path.join(data, name), dt=DT, reset=reset)
            copy = os.path.join(tmp, os.path.basename(name))
            export_nir(first, copy)
            second = load_nir(copy, dt=DT, reset=reset)
            check(print_graph(first) == print_graph(second), f"{name}: the same IR after the round trip", failures)


def main() -> int:
    data = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else DEFAULT_DATA)
    failures: list[str] = []
    for part in (lif, cnn, braille, rockpool, roundtrip):
        part(data, failures)
    print(f"{'all checks passed' if not failures else f'{len(failures)} check(s) failed'}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())

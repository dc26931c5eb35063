"""NIR interoperability with snnTorch, Norse, sinabs and rockpool, in both directions.

Each library builds small networks (MLPs of its LIF/IF/leaky neurons, a small CNN and a
recurrent layer where it can), runs them in its own simulator on a fixed random spike train,
writes them with its own NIR exporter and reads them back with its own importer.  The files
and the recorded output spike counts go to ``tests/data/nir/<lib>/`` (committed: the tests
run on them without torch).  Then nmc imports every file, runs it and compares spike counts;
writes each graph back with ``--compat <lib>`` (``tests/data/nir/<lib>/nmc/``); and the
library reads nmc's file, runs it and compares with nmc's counts.  Prints the table of
docs/nir.md.

The libraries collide with nmc's pins, so they live in their own venvs (sinabs pins
``nir <= 1.0.4``, hence two)::

    python3.11 -m venv /work/venv-snn
    /work/venv-snn/bin/pip install torch==2.13.0          # the CPU wheel on local disk
    /work/venv-snn/bin/pip install snntorch norse rockpool nirtorch nir h5py 'numpy<2.4'
    python3.11 -m venv /work/venv-sinabs
    /work/venv-sinabs/bin/pip install torch==2.13.0
    /work/venv-sinabs/bin/pip install sinabs h5py 'numpy<2.4'   # brings nir 1.0.4, nirtorch 2.0

(used here: torch 2.14.1 (pip took it from disk for norse's pin), snnTorch 1.0.0, Norse 1.1.0,
rockpool 3.1.0, nirtorch 2.6, nir 1.0.8; sinabs 3.1.3 with torch 2.13.0, nir 1.0.4, nirtorch 2.0.2).

Run with nmc's own Python (the peers run as subprocesses)::

    python benchmarks/interop.py [--snn /work/venv-snn/bin/python] [--sinabs /work/venv-sinabs/bin/python]

Phases (``--phase``): ``write`` and ``read`` run inside a peer venv (``--lib``), ``nmc``
in nmc's; ``all`` (default) runs them in order and prints the table; ``table`` prints it
from the results recorded in ``tests/data/nir/<lib>/`` by the last runs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DATA = os.path.join(ROOT, "tests", "data", "nir")
SAMPLES, STEPS, SEED = 4, 24, 0
PEERS = {"snntorch": "snn", "norse": "snn", "rockpool": "snn", "sinabs": "sinabs"}


def spike_train(shape, p=0.3, seed=SEED) -> np.ndarray:
    """The fixed input: ``[samples, steps, *shape]`` of 0/1."""
    return (np.random.default_rng(seed).random((SAMPLES, STEPS, *shape)) < p).astype(np.float32)


# ----------------------------------------------------------------------------- the libraries
# Each returns {name: (module, input shape, notes)} and knows how to run a module on [N, T, ...].


def _torch():
    import torch

    torch.manual_seed(SEED)
    return torch


def _scaled(layer, gain):
    import torch

    with torch.no_grad():
        layer.weight.mul_(gain)
        if getattr(layer, "bias", None) is not None:
            layer.bias.zero_()
    return layer


def _stateful_counts(module, x):
    """Spike counts of a loaded module that takes and returns its state each step (snnTorch's
    ``import_from_nir`` graphs), over the steps of ``x`` [batch, T, ...]."""
    torch = _torch()
    counts, state = 0, None
    with torch.no_grad():
        for t in range(x.shape[1]):
            out, state = module(torch.from_numpy(x[:, t]), state)
            counts = counts + out.numpy()
    return counts


class SnnTorch:
    """snnTorch 1.0: ``export_to_nir`` / ``import_from_nir``.  Its exporter fails on a batched
    sample (nir's type check sees ``[1, 16]`` against ``[16]``) and on scalar ``beta``, so the
    networks use per-neuron ``beta``/``threshold`` and ``ignore_dims=[0]``, as its docs do."""

    @staticmethod
    def nets():
        torch = _torch()
        import snntorch as snn

        def leaky(shape, beta, reset="zero"):
            return snn.Leaky(beta=torch.full(shape, beta), threshold=torch.ones(shape), init_hidden=True,
                             reset_mechanism=reset)

        def synaptic(n, reset="zero"):
            return snn.Synaptic(alpha=torch.full((n,), 0.8), beta=torch.full((n,), 0.9), threshold=torch.ones(n),
                                init_hidden=True, reset_mechanism=reset)

        def rleaky(n, reset="zero"):
            return snn.RLeaky(beta=torch.full((n,), 0.9), threshold=torch.ones(n), linear_features=n, init_hidden=True,
                              reset_mechanism=reset)

        lin = torch.nn.Linear
        return {
            "mlp_lif": (torch.nn.Sequential(_scaled(lin(16, 12), 2), leaky((12,), 0.9), _scaled(lin(12, 4), 2),
                                            leaky((4,), 0.9)), (16,)),
            "mlp_cuba": (torch.nn.Sequential(_scaled(lin(16, 12), 1), synaptic(12), _scaled(lin(12, 4), 1),
                                             synaptic(4)), (16,)),
            "mlp_cuba_subtract": (torch.nn.Sequential(_scaled(lin(16, 12), 1), synaptic(12, "subtract"),
                                                      _scaled(lin(12, 4), 1), synaptic(4, "subtract")), (16,)),
            "rnn_lif": (torch.nn.Sequential(_scaled(lin(16, 12), 4), rleaky(12), _scaled(lin(12, 4), 4),
                                            leaky((4,), 0.9)), (16,)),
            "rnn_lif_subtract": (torch.nn.Sequential(_scaled(lin(16, 12), 2), rleaky(12, "subtract"), _scaled(lin(12, 4), 2),
                                                     leaky((4,), 0.9, "subtract")), (16,)),
            "mlp_if": (torch.nn.Sequential(_scaled(lin(16, 12), 2), leaky((12,), 1.0), _scaled(lin(12, 4), 2),
                                           leaky((4,), 1.0)), (16,)),
            "mlp_lif_subtract": (torch.nn.Sequential(_scaled(lin(16, 12), 2), leaky((12,), 0.9, "subtract"),
                                                     _scaled(lin(12, 4), 2), leaky((4,), 0.9, "subtract")), (16,)),
            "cnn_lif": (torch.nn.Sequential(_scaled(torch.nn.Conv2d(1, 2, 3, bias=False), 2), leaky((2, 6, 6), 0.9),
                                            torch.nn.Flatten(), _scaled(lin(72, 4), 2), leaky((4,), 0.9)), (1, 8, 8)),
        }

    @staticmethod
    def run(net, x):
        torch = _torch()
        import snntorch.utils

        snntorch.utils.reset(net)
        counts = 0
        with torch.no_grad():
            for t in range(x.shape[1]):
                out = net(torch.from_numpy(x[:, t]))
                out = out[0] if isinstance(out, tuple) else out
                counts = counts + out.numpy()
        return counts

    @staticmethod
    def export(net, shape):
        torch = _torch()
        from snntorch.export_nir import export_to_nir

        return export_to_nir(net, torch.zeros(1, *shape), ignore_dims=[0])

    @staticmethod
    def load(graph):
        from snntorch.import_nir import import_from_nir

        return import_from_nir(graph)

    run_loaded = staticmethod(_stateful_counts)


class Norse:
    """Norse 1.1: ``norse.torch.to_nir`` (dt = 1e-3) / ``from_nir``."""

    @staticmethod
    def nets():
        torch = _torch()
        import norse.torch as norse

        lin = torch.nn.Linear

        def box(n):  # per-neuron parameters: Norse's scalar defaults cannot be written (h5py refuses 0-d data)
            return norse.LIFBoxCell(norse.LIFBoxParameters(tau_mem_inv=torch.full((n,), 100.0), v_th=torch.full((n,), 0.5),
                                                           v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

        def iaf(n):
            return norse.IAFCell(norse.IAFParameters(v_th=torch.ones(n), v_reset=torch.zeros(n)))

        def cuba(n):
            return norse.LIFCell(norse.LIFParameters(tau_syn_inv=torch.full((n,), 200.0), tau_mem_inv=torch.full((n,), 100.0),
                                                     v_th=torch.full((n,), 0.5), v_leak=torch.zeros(n), v_reset=torch.zeros(n)))

        return {
            "mlp_lifbox": (norse.SequentialState(_scaled(lin(16, 12), 16), box(12), _scaled(lin(12, 4), 16), box(4)), (16,)),
            "mlp_iaf": (norse.SequentialState(_scaled(lin(16, 12), 1), iaf(12), _scaled(lin(12, 4), 1), iaf(4)), (16,)),
            "mlp_lif": (norse.SequentialState(_scaled(lin(16, 12), 4), cuba(12), _scaled(lin(12, 4), 4), cuba(4)), (16,)),
        }

    @staticmethod
    def run(net, x):
        torch = _torch()
        counts, state = 0, None
        with torch.no_grad():
            for t in range(x.shape[1]):
                out, state = net(torch.from_numpy(x[:, t]), state)
                counts = counts + out.numpy()
        return counts

    @staticmethod
    def export(net, shape):
        torch = _torch()
        import norse.torch as norse

        return norse.to_nir(net, torch.zeros(1, *shape))

    @staticmethod
    def load(graph):
        import norse.torch as norse

        return norse.from_nir(graph)

    run_loaded = run


class Rockpool:
    """rockpool 3.1: ``rockpool.nn.modules.to_nir`` / ``from_nir``; modules run whole trains."""

    @staticmethod
    def nets():
        _torch()
        from rockpool.nn.combinators import Sequential
        from rockpool.nn.modules import LIFTorch, LinearTorch

        return {
            "mlp_lif": (Sequential(LinearTorch((16, 12), has_bias=False), LIFTorch(12, dt=1e-3, max_spikes_per_dt=1),
                                   LinearTorch((12, 4), has_bias=False), LIFTorch(4, dt=1e-3, max_spikes_per_dt=1)), (16,)),
            "rnn_lif": (Sequential(LinearTorch((16, 12), has_bias=False), LIFTorch(12, dt=1e-3, has_rec=True, max_spikes_per_dt=1),
                                   LinearTorch((12, 4), has_bias=False), LIFTorch(4, dt=1e-3, max_spikes_per_dt=1)), (16,)),
        }

    @staticmethod
    def run(net, x):
        torch = _torch()
        with torch.no_grad():
            out = net(torch.from_numpy(x))
        out = out[0] if isinstance(out, tuple) else out
        return out.detach().numpy().sum(axis=1)

    @staticmethod
    def export(net, shape):
        torch = _torch()
        from rockpool.nn.modules import to_nir

        return to_nir(net, torch.zeros(1, *shape))

    @staticmethod
    def load(graph):
        from rockpool.nn.modules import from_nir

        return from_nir(graph)

    run_loaded = run  # the whole train in one call: rockpool's modules run differently one step at a time


class Sinabs:
    """sinabs 3.1.3: ``sinabs.to_nir`` / ``from_nir``; single-spike, reset-to-zero layers
    (its defaults, multi-spike and subtractive reset, have no NIR form)."""

    @staticmethod
    def nets():
        torch = _torch()
        import sinabs.activation as sa
        import sinabs.layers as sl

        kw = dict(batch_size=SAMPLES, spike_fn=sa.SingleSpike, reset_fn=sa.MembraneReset())
        lin = torch.nn.Linear
        return {
            "mlp_iaf": (torch.nn.Sequential(_scaled(lin(16, 12), 2), sl.IAFSqueeze(**kw), _scaled(lin(12, 4), 2),
                                            sl.IAFSqueeze(**kw)), (16,)),
            "mlp_lif": (torch.nn.Sequential(_scaled(lin(16, 12), 8), sl.LIFSqueeze(tau_mem=8.0, **kw),
                                            _scaled(lin(12, 4), 32), sl.LIFSqueeze(tau_mem=8.0, **kw)), (16,)),
            "cnn_iaf": (torch.nn.Sequential(_scaled(torch.nn.Conv2d(1, 2, 3, bias=False), 1), sl.IAFSqueeze(**kw),
                                            sl.SumPool2d(2), torch.nn.Flatten(), _scaled(lin(18, 4), 1),
                                            sl.IAFSqueeze(**kw)), (1, 8, 8)),
        }

    @staticmethod
    def run(net, x):
        torch = _torch()
        for m in net.modules():
            if hasattr(m, "reset_states"):
                m.reset_states()
        with torch.no_grad():
            out = net(torch.from_numpy(x.reshape(-1, *x.shape[2:])))
        return out.numpy().reshape(x.shape[0], x.shape[1], -1).sum(axis=1)

    @staticmethod
    def export(net, shape):
        torch = _torch()
        import sinabs

        Sinabs.run(net, np.zeros((SAMPLES, STEPS, *shape), np.float32))  # sinabs needs its states sized
        return sinabs.to_nir(net, torch.zeros(SAMPLES, *shape))

    @staticmethod
    def load(graph):
        import sinabs

        return sinabs.from_nir(graph, batch_size=SAMPLES)

    @staticmethod
    def run_loaded(module, x):
        torch = _torch()
        with torch.no_grad():
            out = module(torch.from_numpy(x.reshape(-1, *x.shape[2:])))
        out = out[0] if isinstance(out, tuple) else out
        return out.numpy().reshape(x.shape[0], x.shape[1], -1).sum(axis=1)


LIBS = {"snntorch": SnnTorch, "norse": Norse, "rockpool": Rockpool, "sinabs": Sinabs}


def _short(err: BaseException) -> str:
    text = f"{type(err).__name__}: {err}".splitlines()[0]
    return text[:200]


# ------------------------------------------------------------------------------ peer phases


def phase_write(lib: str) -> dict:
    """In the peer venv: run, export, write the file and its counts, re-import with the library."""
    import importlib.metadata as md

    import nir

    api = LIBS[lib]
    out_dir = os.path.join(DATA, lib)
    os.makedirs(out_dir, exist_ok=True)
    results = {"versions": {p: md.version(p) for p in (lib, "nir", "torch")}}
    for name, (net, shape) in api.nets().items():
        x = spike_train(shape)
        row = {}
        counts = api.run(net, x)
        try:
            graph = api.export(net, shape)
            path = os.path.join(out_dir, f"{name}.nir")
            nir.write(path + ".tmp", graph)  # no partial file when the library's writer fails
            os.replace(path + ".tmp", path)
            np.savez_compressed(os.path.join(out_dir, f"{name}.npz"), x=x, counts=counts.astype(np.float32))
            row["export"] = "ok"
        except Exception as err:  # noqa: BLE001 — a library's failure is a result to report
            row["export"] = _short(err)
            if os.path.exists(os.path.join(out_dir, f"{name}.nir.tmp")):
                os.remove(os.path.join(out_dir, f"{name}.nir.tmp"))
            results[name] = row
            continue
        try:
            back = api.run_loaded(api.load(nir.read(path)), x)
            row["own_roundtrip"] = _compare(counts, back)
        except Exception as err:  # noqa: BLE001
            row["own_roundtrip"] = _short(err)
            if "type mismatch" not in str(err):
                row["own_roundtrip"] += _one_by_one(api, lambda: api.load(nir.read(path)), x, counts)
            else:  # the batch axis it wrote: drop it as nmc does, and try again
                try:
                    graph = nir.read(path, type_check=False)
                    _shapes().normalise(graph)
                    module = api.load(nir.NIRGraph(nodes=graph.nodes, edges=graph.edges))
                    if lib == "rockpool":
                        _single_spike(module)
                    row["own_roundtrip"] += ("; with the batch axis dropped" + (" and single spikes" if lib == "rockpool"
                                             else "") + ": " + _compare(counts, api.run_loaded(module, x)))
                except Exception as again:  # noqa: BLE001
                    row["own_roundtrip"] += "; with the batch axis dropped: " + _short(again)
        results[name] = row
    with open(os.path.join(out_dir, "library.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return results


def phase_read(lib: str) -> dict:
    """In the peer venv: read nmc's exports of this library's graphs and compare counts."""
    import nir

    api = LIBS[lib]
    nmc_dir = os.path.join(DATA, lib, "nmc")
    results = {}
    for fname in sorted(os.listdir(nmc_dir)) if os.path.isdir(nmc_dir) else []:
        if not fname.endswith(".nir"):
            continue
        name = fname[:-4]
        ref = np.load(os.path.join(nmc_dir, f"{name}.npz"))
        try:
            module = api.load(nir.read(os.path.join(nmc_dir, fname)))
            results[name] = _compare(ref["counts"], api.run_loaded(module, ref["x"]))
            if lib == "rockpool":  # its from_nir keeps LIFTorch's multi-spike default; measured both ways
                module = api.load(nir.read(os.path.join(nmc_dir, fname)))  # fresh states
                _single_spike(module)
                results[name] += "; with max_spikes_per_dt = 1 set: " + _compare(ref["counts"], api.run_loaded(module, ref["x"]))
        except Exception as err:  # noqa: BLE001
            results[name] = _short(err) + _one_by_one(api, lambda: api.load(nir.read(os.path.join(nmc_dir, fname))),
                                                      ref["x"], ref["counts"])
    with open(os.path.join(nmc_dir, "library_reads.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return results


def _one_by_one(api, load, x, expected) -> str:
    """A loaded module that fails on the batch, run on one sample at a time (a fresh module
    each): snnTorch's reader makes NIR's ``Flatten(start_dim=0)`` torch's ``Flatten(0)``, which
    folds the batch axis into the features, so its modules run only batches of one."""
    try:
        load()
    except Exception:  # noqa: BLE001 — the reader itself fails: nothing to run one sample at a time
        return ""
    try:
        got = np.concatenate([np.reshape(api.run_loaded(load(), x[i:i + 1]), (1, -1)) for i in range(len(x))])
        return "; one sample at a time: " + _compare(expected, got)
    except Exception as err:  # noqa: BLE001
        return "; one sample at a time: " + _short(err)


def _shapes():
    """nmc's batch-axis normaliser (numpy only), loaded without nmc's dependencies."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("nmc_nir_shapes", os.path.join(ROOT, "nmc", "frontends", "nir", "shapes.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _single_spike(module) -> None:
    """rockpool's from_nir keeps LIFTorch's default of many spikes per step; set one."""
    from rockpool.nn.modules import LIFTorch

    for mod in module.modules():
        if isinstance(mod, LIFTorch):
            mod.max_spikes_per_dt = _torch().tensor(1.0)


def _compare(expected: np.ndarray, got: np.ndarray) -> str:
    expected, got = np.asarray(expected, np.float64), np.asarray(got, np.float64).reshape(np.shape(expected))
    if np.array_equal(expected, got):
        return f"exact ({int(expected.sum())} spikes)"
    diff = np.abs(expected - got)
    return (f"differs: {int(diff.sum())} of {int(expected.sum())} spikes "
            f"(max {int(diff.max())} per neuron; {int((diff > 0).sum())}/{diff.size} neurons)")


# ------------------------------------------------------------------------------- nmc phase


CONVENTIONS = {"snntorch": "snntorch", "norse": "norse", "rockpool": "rockpool", "sinabs": "sinabs"}


def phase_nmc(lib: str) -> dict:
    """In nmc's venv: import each library file as written (then with ``--convention lib``),
    compare spike counts, and export for the library."""
    sys.path.insert(0, ROOT)
    from nmc.diagnostics import NmcError
    from nmc.exporters.nir import export_nir
    from nmc.frontends.nir import load_nir
    from nmc.semantics import run_snn

    lib_dir = os.path.join(DATA, lib)
    nmc_dir = os.path.join(lib_dir, "nmc")
    os.makedirs(nmc_dir, exist_ok=True)
    for old in os.listdir(nmc_dir):  # no file of an earlier run stands for this one's
        os.remove(os.path.join(nmc_dir, old))
    results = {}
    for fname in sorted(os.listdir(lib_dir)):
        if not fname.endswith(".nir"):
            continue
        name = fname[:-4]
        ref = np.load(os.path.join(lib_dir, f"{name}.npz"))
        row = {}
        graphs = []  # (graph, counts): as the library ran it first, then as written
        for key, convention in (("as_written", None), ("convention", CONVENTIONS[lib])):
            try:
                # as the network was built: --reset subtract; under --convention snntorch, zero and subtract
                # name snnTorch's reset_mechanism, whose resets come one step late (reset_delay=True)
                reset = "subtract" if name.endswith("_subtract") else None
                g = load_nir(os.path.join(lib_dir, fname), dt=DTS.get(lib), convention=convention, reset=reset)
                counts = run_snn(g, [ref["x"]]).outputs[0]
                row[key] = _compare(ref["counts"], counts)
                graphs.insert(0 if convention else len(graphs), (g, counts))
            except NmcError as err:
                row[key] = "refused: " + err.message.splitlines()[0][:160]
        for i, (graph, nmc_counts) in enumerate(graphs):  # the first graph nmc can write for the library
            try:
                export_nir(graph, os.path.join(nmc_dir, fname), compat=lib)
                np.savez_compressed(os.path.join(nmc_dir, f"{name}.npz"), x=ref["x"],
                                    counts=np.asarray(nmc_counts, np.float32))
                row["export" if i == 0 else "export_as_written"] = "ok"
                break
            except NmcError as err:
                row["export" if i == 0 else "export_as_written"] = "refused: " + err.message.splitlines()[0][:300]
        results[name] = row
    with open(os.path.join(nmc_dir, "nmc_reads.json"), "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
    return results


DTS = {"snntorch": 1e-4, "norse": 1e-3, "rockpool": 1e-3, "sinabs": 1e-3}  # the dt each exporter assumed


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--phase", choices=("all", "write", "read", "nmc", "table"), default="all")
    ap.add_argument("--lib", choices=sorted(LIBS))
    ap.add_argument("--snn", default="/work/venv-snn/bin/python", help="python of the snnTorch/Norse/rockpool venv")
    ap.add_argument("--sinabs", default="/work/venv-sinabs/bin/python", help="python of the sinabs venv")
    args = ap.parse_args(argv)
    if args.phase == "write":
        print(json.dumps(phase_write(args.lib), indent=1))
        return 0
    if args.phase == "read":
        print(json.dumps(phase_read(args.lib), indent=1))
        return 0
    if args.phase == "nmc":
        print(json.dumps(phase_nmc(args.lib), indent=1))
        return 0
    pythons = {"snn": args.snn, "sinabs": args.sinabs}
    libs = [args.lib] if args.lib else list(LIBS)
    if args.phase == "table":  # from the results the last runs recorded
        print(table(libs))
        return 0
    env = dict(os.environ, PYTHONHASHSEED="0")  # the peers' exporters order edges by hashing: same files each run
    for lib in libs:
        subprocess.run([pythons[PEERS[lib]], __file__, "--phase", "write", "--lib", lib], check=True, env=env)
        phase_nmc(lib)
        subprocess.run([pythons[PEERS[lib]], __file__, "--phase", "read", "--lib", lib], check=True, env=env)
    print(table(libs))
    return 0


def _brief(refusal: str) -> str:
    """An export refusal for the table: what nmc refused (the whole reason is in nmc_reads.json
    and docs/nir.md)."""
    if "reset =" not in refusal:
        return refusal
    return "refused: " + refusal.removeprefix("refused: ").replace("cannot export to NIR: ", "").split(": ")[0]


def table(libs) -> str:
    rows = ["| library | network | library's own NIR round trip | nmc reads it (as written) | nmc reads it "
            "(`--convention LIB`) | library reads nmc's export |", "|---|---|---|---|---|---|"]
    for lib in libs:
        with open(os.path.join(DATA, lib, "library.json")) as f:
            own = json.load(f)
        nmc_dir = os.path.join(DATA, lib, "nmc")
        reads = json.load(open(os.path.join(nmc_dir, "nmc_reads.json")))
        back = json.load(open(os.path.join(nmc_dir, "library_reads.json")))
        v = own.pop("versions")
        for name, row in own.items():
            if row.get("export") != "ok":
                rows.append(f"| {lib} {v[lib]} | {name} | export fails: {row['export']} | – | – | – |")
                continue
            r = reads.get(name, {})
            b = back.get(name, "–")
            if r.get("export", "ok") != "ok":  # then the graph as written (NIR's equations), if nmc could write it
                b = f"nmc export {_brief(r['export'])}"
                if "export_as_written" in r:
                    b += "; the graph read as written: " + (back.get(name, "–") if r["export_as_written"] == "ok"
                                                             else f"nmc export {_brief(r['export_as_written'])}")
            rows.append(f"| {lib} {v[lib]} | {name} | {row['own_roundtrip']} | {r.get('as_written', '–')} | "
                        f"{r.get('convention', '–')} | {b} |")
    return "\n".join(rows)


if __name__ == "__main__":
    sys.exit(main())

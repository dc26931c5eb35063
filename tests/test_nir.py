"""The NIR frontend and exporter (nmc/frontends/nir/, nmc/exporters/nir.py, docs/nir.md).

Small NIR graphs are built here with the ``nir`` package and written with ``nir.write``.  Their
meaning is checked against :func:`simulate`, a direct step-by-step simulation of the NIR graph
written from NIR's equations (forward Euler, synaptic current before voltage, feed-forward
edges within a step, recurrent edges from the previous step), independent of the importer.
Parameters are dyadic (dt/τ = 1/4, weights in eighths), so both sides compute exactly.
"""

from __future__ import annotations

import numpy as np
import pytest

nir = pytest.importorskip("nir")

from nmc import semantics  # noqa: E402
from nmc.cli import main  # noqa: E402
from nmc.diagnostics import NmcError  # noqa: E402
from nmc.exporters.nir import export_nir, to_nir  # noqa: E402
from nmc.frontends import load  # noqa: E402
from nmc.frontends.nir import load_nir  # noqa: E402
from nmc.ir.parser import parse_ir  # noqa: E402
from nmc.ir.printer import print_graph  # noqa: E402

DT = 2.0**-10
TAU = 4 * DT  # dt / tau = 1/4 exactly
F32 = np.float32


def eighths(rng, *shape):
    return (rng.integers(-8, 9, size=shape) / 8).astype(F32)


def ones(*shape, value=1.0):
    return np.full(shape, value, dtype=F32)


# ------------------------------------------------------------------- the NIR reference


def window_sum(x, kernel, stride, padding):
    return semantics.window_sum(x, tuple(kernel), tuple(stride), tuple(padding) * 2)


def simulate(graph, x, dt=DT, order=None, reset="zero"):
    """Run ``graph`` (flat) in NIR time on ``x`` [N, T, ...]; returns {output name: [N, T, ...]}."""
    nodes, edges = graph.nodes, graph.edges
    order = order or list(nodes)
    n, steps = x.shape[:2]
    shape = {k: tuple(np.atleast_1d(v.output_type["output"]).astype(int)) for k, v in nodes.items()}
    prev = {k: np.zeros((n, *shape[k])) for k in nodes}
    state = {k: {"v": np.zeros((n, *shape[k])), "i": np.zeros((n, *shape[k])), "buf": []} for k in nodes}
    outputs = {k: [] for k, v in nodes.items() if isinstance(v, nir.Output)}
    for t in range(steps):
        cur = {}
        for k in order:
            node, st = nodes[k], state[k]
            ins = [cur[a] if a in cur else prev[a] for a, b in edges if b == k]
            inp = sum(ins) if ins else None
            kind = type(node).__name__
            if kind == "Input":
                out = x[:, t].astype(np.float64)
            elif kind in ("Output",):
                out = inp
            elif kind == "Affine":
                out = inp.reshape(n, -1) @ node.weight.T.astype(np.float64) + node.bias
            elif kind == "Linear":
                out = inp.reshape(n, -1) @ node.weight.T.astype(np.float64)
            elif kind == "Scale":
                out = inp * node.scale
            elif kind == "Flatten":
                out = inp.reshape(n, -1)
            elif kind in ("Conv1d", "Conv2d"):
                nd = node.weight.ndim - 2
                pad = tuple(np.broadcast_to(node.padding, nd)) * 2
                out = semantics.conv(inp, node.weight.astype(np.float64), tuple(np.broadcast_to(node.stride, nd)),
                                      pad, tuple(np.broadcast_to(node.dilation, nd)), int(node.groups))
                out = out + node.bias.reshape((1, -1) + (1,) * nd)
            elif kind == "SumPool2d":
                out = window_sum(inp, node.kernel_size, node.stride, node.padding)
            elif kind == "AvgPool2d":
                out = window_sum(inp, node.kernel_size, node.stride, node.padding) / np.prod(node.kernel_size)
            elif kind == "Delay":
                st["buf"].append(inp)
                k_steps = int(round(float(node.delay.reshape(-1)[0]) / dt))
                out = st["buf"][-1 - k_steps] if len(st["buf"]) > k_steps else np.zeros_like(inp)
            elif kind == "Threshold":
                out = (inp > node.threshold).astype(np.float64)
            else:
                v = st["v"]
                if kind in ("IF", "I"):
                    v = v + node.r * inp
                elif kind in ("LIF", "LI"):
                    v = v + dt / node.tau * (node.v_leak - v + node.r * inp)
                else:  # CubaLIF, CubaLI: the synaptic current first, then the voltage
                    st["i"] = st["i"] + dt / node.tau_syn * (-st["i"] + node.w_in * inp)
                    v = v + dt / node.tau_mem * (node.v_leak - v + node.r * st["i"])
                if kind in ("I", "LI", "CubaLI"):
                    out = v
                else:
                    z = v > node.v_threshold
                    v = np.where(z, 0.0 if reset == "zero" else v - node.v_threshold, v)
                    out = z.astype(np.float64)
                st["v"] = v
            cur[k] = out
        prev = cur
        for k in outputs:
            outputs[k].append(cur[k])
    return {k: np.stack(v, axis=1) for k, v in outputs.items()}


def run_nmc(graph, x, output_index=0, lag=None):
    """(spike train of the decoded population aligned to NIR time, decoded outputs).  ``lag``:
    how many steps the population runs behind NIR time (its depth − 1; by default D − 1)."""
    pop = graph.walk("snn.decode")[output_index].x.owner
    res = semantics.run_snn(graph, [x], record=[pop])
    lag = res.steps - res.timesteps if lag is None else lag
    train = res.spikes[pop]
    assert not train[:, :lag].any(), "the output fired before the input could reach it"
    return train[:, lag:lag + res.timesteps], res.outputs[output_index]


def spikes_in(rng, n, steps, *shape, p=0.3):
    return (rng.random((n, steps, *shape)) < p).astype(F32)


def roundtrip_file(tmp_path, graph, name="model.nir", **kw):
    path = tmp_path / name
    nir.write(path, graph)
    return load_nir(str(path), **kw)


# ------------------------------------------------------------------------- LIF by hand


def test_lif_hand_trace(tmp_path):
    """Linear(1) → LIF(τ = 4 dt, r = 2, θ = 1): gain dt/τ·r = 0.5, decay 1/4 per step.
    Spikes at steps 0, 1, 2: v = 0.5, 0.875, 1.15625 > 1 → spike at step 2, reset to 0;
    step 3 (no input): v stays 0; step 4 spike in: v = 0.5."""
    g = nir.NIRGraph.from_list(nir.Linear(weight=ones(1, 1)),
                               nir.LIF(tau=ones(1, value=TAU), r=ones(1, value=2.0), v_leak=ones(1, value=0.0),
                                       v_threshold=ones(1), v_reset=ones(1, value=0.0)))
    graph = roundtrip_file(tmp_path, g, dt=DT)
    text = print_graph(graph)
    assert "dv = 1024.0" in text and "dense<[[0.5]]>" in text and "reset = zero" in text
    assert graph.meta["dt"] == DT
    x = np.array([1, 1, 1, 0, 1, 0], dtype=F32).reshape(1, 6, 1)
    pop = graph.walk("snn.population")[0]
    res = semantics.run_snn(graph, [x], record=[pop])
    assert res.steps == 6
    assert res.spikes[pop][0, :, 0].tolist() == [0, 0, 1, 0, 0, 0]
    assert res.voltages[0][0, 0] == pytest.approx(0.5 * 0.75)  # step 4: 0.5, step 5: decays by 1/4


# --------------------------------------------------------------- every node vs the reference


def _neuron(kind, shape, rng, threshold=1.0):
    th = ones(*shape, value=threshold)
    zero = ones(*shape, value=0.0)
    tau = ones(*shape, value=TAU)
    r = ones(*shape, value=2.0)
    return {
        "IF": lambda: nir.IF(r=r, v_threshold=th, v_reset=zero),
        "LIF": lambda: nir.LIF(tau=tau, r=r, v_leak=ones(*shape, value=0.5), v_threshold=th, v_reset=zero),
        "CubaLIF": lambda: nir.CubaLIF(tau_syn=tau, tau_mem=ones(*shape, value=2 * DT), r=r, v_leak=zero,
                                       v_threshold=th, v_reset=zero, w_in=ones(*shape, value=2.0)),
        "I": lambda: nir.I(r=r),
        "LI": lambda: nir.LI(tau=tau, r=r, v_leak=ones(*shape, value=0.25)),
        "CubaLI": lambda: nir.CubaLI(tau_syn=tau, tau_mem=ones(*shape, value=2 * DT), r=r, v_leak=zero,
                                     w_in=ones(*shape, value=2.0)),
        "Threshold": lambda: nir.Threshold(threshold=ones(*shape, value=0.5)),
    }[kind]()


@pytest.mark.parametrize("kind", ["IF", "LIF", "CubaLIF", "Threshold", "I", "LI", "CubaLI"])
def test_neuron_nodes_match_nir_equations(tmp_path, kind):
    rng = np.random.default_rng(1)
    g = nir.NIRGraph.from_list(nir.Affine(weight=eighths(rng, 5, 6), bias=eighths(rng, 5) / 4), _neuron(kind, (5,), rng))
    graph = roundtrip_file(tmp_path, g, dt=DT)
    x = spikes_in(rng, 4, 30, 6)
    want = simulate(g, x)["output"]
    train, out = run_nmc(graph, x)
    if kind in ("I", "LI", "CubaLI"):
        assert graph.walk("snn.decode")[0].mode == "membrane"
        np.testing.assert_allclose(out, want[:, -1], rtol=1e-6, atol=1e-6)
    else:
        assert graph.walk("snn.decode")[0].mode == "count"
        np.testing.assert_array_equal(train, want)
        assert want.sum() > 0


def test_cnn_nodes_match_nir_equations(tmp_path):
    """Conv2d → IF → SumPool2d → Conv2d → IF → AvgPool2d → Flatten → Affine → LIF."""
    rng = np.random.default_rng(2)
    g = nir.NIRGraph.from_list(
        nir.Conv2d(input_shape=(8, 8), weight=eighths(rng, 4, 2, 3, 3), stride=1, padding=1, dilation=1, groups=1,
                   bias=eighths(rng, 4)),
        nir.IF(r=ones(4, 8, 8), v_threshold=ones(4, 8, 8), v_reset=ones(4, 8, 8, value=0)),
        nir.SumPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.Conv2d(input_shape=(4, 4), weight=eighths(rng, 4, 4, 3, 3), stride=1, padding=1, dilation=1, groups=1,
                   bias=np.zeros(4, dtype=F32)),
        nir.IF(r=ones(4, 4, 4), v_threshold=ones(4, 4, 4), v_reset=ones(4, 4, 4, value=0)),
        nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.Flatten(input_type={"input": np.array([4, 2, 2])}, start_dim=0),
        nir.Affine(weight=eighths(rng, 3, 16), bias=np.zeros(3, dtype=F32)),
        _neuron("LIF", (3,), rng, threshold=0.25),
    )
    graph = roundtrip_file(tmp_path, g, dt=DT)
    kinds = [p.kind for p in graph.walk("snn.project")]
    assert kinds.count("conv2d") == 2 and "dense" in kinds  # pool+conv fused into one convolution
    x = spikes_in(rng, 3, 12, 2, 8, 8, p=0.5)
    want = simulate(g, x)["output"]
    train, _ = run_nmc(graph, x)
    np.testing.assert_array_equal(train, want)
    assert want.sum() > 0


def test_pool_into_neurons_and_conv1d(tmp_path):
    rng = np.random.default_rng(3)
    g = nir.NIRGraph.from_list(
        nir.Conv1d(input_shape=10, weight=eighths(rng, 3, 2, 3), stride=1, padding=1, dilation=1, groups=1,
                   bias=np.zeros(3, dtype=F32)),
        nir.IF(r=ones(3, 10), v_threshold=ones(3, 10), v_reset=ones(3, 10, value=0)),
        nir.Flatten(input_type={"input": np.array([3, 10])}, start_dim=0),
        nir.Scale(scale=eighths(rng, 30) + 1),
        nir.IF(r=ones(30), v_threshold=ones(30), v_reset=ones(30, value=0)),
    )
    graph = roundtrip_file(tmp_path, g, dt=DT)
    assert graph.inputs[0].type.shape == (2, 1, 10)  # a Conv1d input is read as [C, 1, L]
    x = spikes_in(rng, 3, 15, 2, 10, p=0.5)
    want = simulate(g, x)["output"]
    train, _ = run_nmc(graph, x.reshape(3, 15, 2, 1, 10))
    np.testing.assert_array_equal(train, want)
    # AvgPool2d straight into neurons is a pool projection of weight 1/k²
    g2 = nir.NIRGraph.from_list(
        nir.Conv2d(input_shape=(4, 4), weight=eighths(rng, 2, 1, 1, 1) + 2, stride=1, padding=0, dilation=1, groups=1,
                   bias=np.zeros(2, dtype=F32)),
        nir.IF(r=ones(2, 4, 4), v_threshold=ones(2, 4, 4, value=0.5), v_reset=ones(2, 4, 4, value=0)),
        nir.AvgPool2d(kernel_size=np.array([2, 2]), stride=np.array([2, 2]), padding=np.array([0, 0])),
        nir.IF(r=ones(2, 2, 2), v_threshold=ones(2, 2, 2, value=0.5), v_reset=ones(2, 2, 2, value=0)),
    )
    graph2 = roundtrip_file(tmp_path, g2, "pool.nir", dt=DT)
    pool = [p for p in graph2.walk("snn.project") if p.kind == "pool"][0]
    assert pool.weight == 0.25 and pool.kernel == (2, 2)
    x2 = spikes_in(rng, 2, 10, 1, 4, 4, p=0.5)
    np.testing.assert_array_equal(run_nmc(graph2, x2)[0], simulate(g2, x2)["output"])


def test_chain_without_neurons_is_composed_and_linear_output_is_read(tmp_path):
    """Affine → Scale → Linear → LIF is one dense projection; Affine → Output reads the
    Affine through a memoryless non-spiking population (its value at the last step)."""
    rng = np.random.default_rng(4)
    g = nir.NIRGraph.from_list(nir.Affine(weight=eighths(rng, 6, 4), bias=eighths(rng, 6)),
                               nir.Scale(scale=eighths(rng, 6)), nir.Linear(weight=eighths(rng, 5, 6)),
                               _neuron("LIF", (5,), rng))
    graph = roundtrip_file(tmp_path, g, dt=DT)
    assert [p.kind for p in graph.walk("snn.project")] == ["dense", "dense"]  # weights and the bias path
    x = spikes_in(rng, 4, 20, 4)
    np.testing.assert_array_equal(run_nmc(graph, x)[0], simulate(g, x)["output"])

    g2 = nir.NIRGraph.from_list(nir.Affine(weight=eighths(rng, 3, 4), bias=eighths(rng, 3)))
    graph2 = roundtrip_file(tmp_path, g2, "lin.nir")  # no time constants: no dt needed
    assert graph2.walk("snn.decode")[0].mode == "membrane"
    x2 = spikes_in(rng, 4, 7, 4)
    _, out = run_nmc(graph2, x2)
    np.testing.assert_allclose(out, simulate(g2, x2)["output"][:, -1], rtol=1e-6)


def _recurrent_graph(rng, delay_steps=0):
    nodes = {
        "in": nir.Input(input_type=np.array([4])),
        "fc1": nir.Affine(weight=eighths(rng, 6, 4), bias=eighths(rng, 6) / 2),
        "lif1": _neuron("CubaLIF", (6,), rng),
        "rec": nir.Linear(weight=eighths(rng, 6, 6)),
        "fc2": nir.Affine(weight=eighths(rng, 3, 6), bias=eighths(rng, 3) / 2),
        "lif2": _neuron("LIF", (3,), rng, threshold=0.5),
        "out": nir.Output(output_type=np.array([3])),
    }
    edges = [("in", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "fc2"), ("fc2", "lif2"),
             ("lif2", "out")]
    if delay_steps:
        nodes["d"] = nir.Delay(delay=np.full(6, delay_steps * DT))
        edges = [e for e in edges if e != ("lif1", "fc2")] + [("lif1", "d"), ("d", "fc2")]
    return nir.NIRGraph(nodes=nodes, edges=edges)


@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_recurrence_and_biases(tmp_path, reset):
    rng = np.random.default_rng(5)
    g = _recurrent_graph(rng)
    graph = roundtrip_file(tmp_path, g, dt=DT, reset=reset)
    rec = next(p for p in graph.walk("snn.project") if p.result.name == "rec")
    lif1 = rec.src.owner
    assert rec.delay == 1 and rec.result in lif1.currents
    assert graph.index(rec) > graph.index(lif1)  # a forward reference closes the loop
    bias2 = next(p for p in graph.walk("snn.project") if p.result.name == "lif2.bias")
    assert bias2.delay == 2  # lif2 runs one step behind NIR time, and so does its bias
    x = spikes_in(rng, 4, 40, 4)
    want = simulate(g, x, order=["in", "fc1", "lif1", "rec", "fc2", "lif2", "out"], reset=reset)["out"]
    train, _ = run_nmc(graph, x)
    np.testing.assert_array_equal(train, want)
    assert 0 < want.sum() < want.size


def test_delay_node(tmp_path):
    rng = np.random.default_rng(6)
    g = _recurrent_graph(rng, delay_steps=2)
    graph = roundtrip_file(tmp_path, g, dt=DT)
    assert next(p for p in graph.walk("snn.project") if p.result.name == "fc2").delay == 3
    x = spikes_in(rng, 3, 30, 4)
    want = simulate(g, x, order=["in", "fc1", "lif1", "rec", "d", "fc2", "lif2", "out"])["out"]
    np.testing.assert_array_equal(run_nmc(graph, x, lag=1)[0], want)  # lif2 is at depth 2


def test_nested_graph_is_inlined(tmp_path):
    rng = np.random.default_rng(7)
    flat = _recurrent_graph(rng)
    inner = nir.NIRGraph(nodes={"i": nir.Input(input_type=np.array([4])), "fc1": flat.nodes["fc1"],
                                "lif1": flat.nodes["lif1"], "rec": flat.nodes["rec"],
                                "o": nir.Output(output_type=np.array([6]))},
                         edges=[("i", "fc1"), ("fc1", "lif1"), ("lif1", "rec"), ("rec", "lif1"), ("lif1", "o")])
    outer = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([4])), "layer": inner, "fc2": flat.nodes["fc2"],
                                "lif2": flat.nodes["lif2"], "out": nir.Output(output_type=np.array([3]))},
                         edges=[("in", "layer"), ("layer", "fc2"), ("fc2", "lif2"), ("lif2", "out")])
    nested = roundtrip_file(tmp_path, outer, "nested.nir", dt=DT)
    plain = roundtrip_file(tmp_path, flat, "flat.nir", dt=DT)
    assert {op.result.name for op in nested.walk("snn.population")} == {"layer.lif1", "lif2"}
    x = spikes_in(rng, 3, 25, 4)
    np.testing.assert_array_equal(run_nmc(nested, x)[0], run_nmc(plain, x)[0])


def test_every_op_is_located(tmp_path):
    rng = np.random.default_rng(8)
    graph = roundtrip_file(tmp_path, _recurrent_graph(rng), dt=DT)
    for op in graph.ops:
        assert op.loc.file.endswith("model.nir") and op.loc.node in graph_nodes(), op
    fc1 = next(p for p in graph.walk("snn.project") if p.result.name == "fc1")
    assert (fc1.loc.node, fc1.loc.op_type) == ("fc1", "Affine")


def graph_nodes():
    return {"in", "fc1", "lif1", "rec", "fc2", "lif2", "out"}


# ------------------------------------------------------------------------------ errors


def test_missing_dt_names_the_node(tmp_path, capsys):
    rng = np.random.default_rng(9)
    path = tmp_path / "m.nir"
    nir.write(path, _recurrent_graph(rng))
    with pytest.raises(NmcError) as info:
        load_nir(str(path))
    assert info.value.loc.node == "lif1" and "--dt" in info.value.hint
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "node 'lif1' (CubaLIF)" in err and "no time step" in err and "--dt SECONDS" in err


def test_unreadable_files_are_refused(tmp_path, capsys):
    # an Output whose shape disagrees with its input: nir's type inference rejects it on read
    bad = nir.NIRGraph(nodes={"in": nir.Input(input_type=np.array([2])), "lin": nir.Linear(weight=ones(2, 2)),
                              "out": nir.Output(output_type=np.array([3]))},
                       edges=[("in", "lin"), ("lin", "out")], type_check=False)
    path = tmp_path / "bad.nir"
    nir.write(path, bad)
    assert main(["import", str(path)]) == 1
    err = capsys.readouterr().err
    assert "bad.nir: node 'lin': error: the nir package cannot read this file" in err and "type mismatch" in err
    garbage = tmp_path / "garbage.nir"
    garbage.write_bytes(b"\x89HDF\r\n\x1a\n" + b"\0" * 64)
    assert main(["import", str(garbage)]) == 1
    assert "cannot read this file" in capsys.readouterr().err


@pytest.mark.parametrize("case, message", [
    ("v_reset", "v_reset = 0.5 is not supported"),
    ("nonspiking", "nmc projections carry spikes only"),
    ("tau", "shorter than dt"),
    ("conv_gain", "vary within a channel"),
])
def test_unmappable_nodes_are_refused(tmp_path, case, message):
    z = ones(2, value=0.0)
    if case == "v_reset":
        g = nir.NIRGraph.from_list(nir.Linear(weight=ones(2, 2)), nir.IF(r=ones(2), v_threshold=ones(2), v_reset=z + 0.5))
    elif case == "nonspiking":
        g = nir.NIRGraph.from_list(nir.Linear(weight=ones(2, 2)), nir.LI(tau=ones(2, value=TAU), r=ones(2), v_leak=z),
                                   nir.Linear(weight=ones(2, 2)), nir.IF(r=ones(2), v_threshold=ones(2), v_reset=z))
    elif case == "tau":
        g = nir.NIRGraph.from_list(nir.Linear(weight=ones(2, 2)),
                                   nir.LIF(tau=ones(2, value=DT / 2), r=ones(2), v_leak=z, v_threshold=ones(2), v_reset=z))
    else:
        r = ones(1, 2, 2)
        r[0, 0, 0] = 2
        g = nir.NIRGraph.from_list(
            nir.Conv2d(input_shape=(2, 2), weight=ones(1, 1, 1, 1), stride=1, padding=0, dilation=1, groups=1,
                       bias=ones(1, value=0)),
            nir.IF(r=r, v_threshold=ones(1, 2, 2), v_reset=ones(1, 2, 2, value=0)))
    path = tmp_path / "u.nir"
    nir.write(path, g)
    with pytest.raises(NmcError, match=message) as info:
        load_nir(str(path), dt=DT)
    assert info.value.loc is not None and info.value.loc.node is not None


# ---------------------------------------------------------------------------------- CLI


def test_cli_run_takes_steps_from_the_spike_train(tmp_path):
    rng = np.random.default_rng(10)
    model = tmp_path / "model.nir"
    nir.write(model, _recurrent_graph(rng))
    x = spikes_in(rng, 2, 17, 4)
    np.save(tmp_path / "x.npy", x)
    rc = main(["run", str(model), "--dt", str(DT), "--input", str(tmp_path / "x.npy"),
               "--record", str(tmp_path / "s.npz"), "-o", str(tmp_path / "out.npy")])
    assert rc == 0
    recorded = np.load(tmp_path / "s.npz")["spikes"]
    assert recorded.shape == (2, 18, 3)  # T = 17 from the train, plus one step of latency
    want = simulate(_recurrent_graph(np.random.default_rng(10)), x,
                    order=["in", "fc1", "lif1", "rec", "fc2", "lif2", "out"])["out"]
    np.testing.assert_array_equal(recorded[:, 1:], want)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), want.sum(axis=1))


@pytest.mark.slow
@pytest.mark.parametrize("reset", ["zero", "subtract"])
def test_cli_compiles_a_nir_graph_with_biases_for_the_mesh_chip(tmp_path, reset, capsys):
    """``nmc compile model.nir --dt --reset --target mesh-tiny``: the image (biases as an
    always-on host source) runs bit for bit like the quantised graph on the emulator and the
    CPU runtime, on a spike train of any length."""
    rng = np.random.default_rng(11)
    model = tmp_path / "model.nir"
    nir.write(model, _recurrent_graph(rng))
    image = tmp_path / "m.nmb"
    assert main(["compile", str(model), "--dt", str(DT), "--reset", reset, "--target", "mesh-tiny",
                 "-o", str(image)]) == 0
    np.save(tmp_path / "x.npy", spikes_in(rng, 3, 23, 4))
    outs = []
    for backend in ("emulator", "cpu", "reference"):
        out = tmp_path / f"{backend}.npy"
        assert main(["run", str(image), "--backend", backend, "--input", str(tmp_path / "x.npy"), "-o", str(out)]) == 0
        outs.append(out.read_bytes())
    assert outs[0] == outs[1] == outs[2]
    assert "T=23" in capsys.readouterr().out
    ir = tmp_path / "model.nmir"
    assert main(["import", str(model), "--dt", str(DT), "-o", str(ir)]) == 0
    assert main(["compile", str(ir), "--reset", reset, "--target", "mesh-tiny", "-o", str(image)]) == 2
    assert "--reset does not apply to nmir files" in capsys.readouterr().err


# ------------------------------------------------------------------------------- export


def test_roundtrip_nir_nmc_nir_nmc(tmp_path, capsys):
    rng = np.random.default_rng(11)
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    model = tmp_path / "a" / "model.nir"
    nir.write(model, _recurrent_graph(rng, delay_steps=1))
    assert main(["export", str(model), "--dt", str(DT), "-o", str(tmp_path / "b" / "model.nir")]) == 0
    first = load_nir(str(model), dt=DT)
    second = load_nir(str(tmp_path / "b" / "model.nir"), dt=DT)
    assert print_graph(first) == print_graph(second)


def test_export_native_snn_graph_keeps_its_meaning(tmp_path):
    """An snn graph written in textual IR (IF with a bias, LIF, CubaLIF, a pool, a sparse
    projection, a membrane read-out) → NIR → nmc: the same outputs on random spikes."""
    text = """graph @net {dt = 0.001}
%x = ann.input : tensor<2x4x4xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<2x4x4>
%c = snn.project(%s) {kind = conv2d, pads = [1, 1, 1, 1], weight = random<uniform, seed = 1, scale = 0.8> : tensor<3x2x3x3xf32>} : current<3x4x4>
%h = snn.population(%c) {bias = 0.125, reset = zero, threshold = 0.5} : spikes<3x4x4>
%p = snn.project(%h) {kind = pool, kernel = [2, 2], strides = [2, 2], weight = 0.5} : current<3x2x2>
%g = snn.population(%p) {dv = 512, reset = zero, threshold = 0.3} : spikes<3x2x2>
%d = snn.project(%g) {kind = dense, weight = random<uniform, seed = 2, scale = 1.0> : tensor<5x12xf32>} : current<5>
%k = snn.population(%d) {du = 1024, dv = 2048, reset = zero, threshold = 0.2} : spikes<5>
%r = snn.project(%k) {kind = dense, weight = random<uniform, seed = 3, scale = 1.0> : tensor<4x5xf32>} : current<4>
%m = snn.population(%r) {dv = 1024, threshold = inf} : spikes<4>
%y = snn.decode(%m) {mode = membrane} : tensor<4xf32>
ann.output(%y)
"""
    graph = parse_ir(text, "net.nmir")
    export_nir(graph, str(tmp_path / "net.nir"))
    back = load_nir(str(tmp_path / "net.nir"), dt=0.001)
    x = spikes_in(np.random.default_rng(12), 3, 20, 2, 4, 4, p=0.4)
    a = semantics.run_snn(graph, [x], record=graph.walk("snn.population"))
    b = semantics.run_snn(back, [x], record=back.walk("snn.population"))
    np.testing.assert_allclose(b.outputs[0], a.outputs[0], rtol=1e-5, atol=1e-6)
    # every population agrees while it runs in NIR time (depth d: steps d-1 .. d-1+T); after
    # that NIR's run is over (the bias of %h then stops in the NIR version)
    for depth, (pa, pb) in enumerate(zip(graph.walk("snn.population"), back.walk("snn.population")), 1):
        window = slice(depth - 1, depth - 1 + 20)
        np.testing.assert_array_equal(a.spikes[pa][:, window], b.spikes[pb][:, window])
    assert b.spikes[back.walk("snn.population")[2]].sum() > 0
    kinds = {type(n).__name__ for n in to_nir(graph).nodes.values()}
    assert {"Conv2d", "IF", "SumPool2d", "Scale", "Flatten", "Linear", "LIF", "CubaLIF", "LI"} <= kinds
    # a bias on a deeper population acts before its input arrives, which NIR cannot say
    deep = parse_ir(text.replace("{du = 1024, dv = 2048,", "{du = 1024, dv = 2048, bias = 0.01,"), "net.nmir")
    with pytest.raises(NmcError, match="start at rest") as info:
        to_nir(deep)
    assert "first arrives at step 2; v0 = " in info.value.hint


@pytest.mark.parametrize("change, message", [
    ("reset = zero, threshold = 0.5", "NIR has no subtractive reset"),
    ("encoding = rate", "encoding 'rate' has no NIR equivalent"),
    ("v0 = 0.5", "NIR neurons start at rest"),
    ("max_spikes = 2", "burst population (up to 2 spikes per step); NIR's neurons emit at most one"),
])
def test_export_refuses_what_nir_cannot_say(tmp_path, change, message, capsys):
    pop = "{reset = zero, threshold = 0.5}"
    enc = "{encoding = spikes}"
    if change.startswith("reset"):
        pop = "{threshold = 0.5}"  # the IR's default reset is subtract
    elif change.startswith("encoding"):
        enc = "{encoding = rate}"
    elif change.startswith("max_spikes"):
        pop = "{max_spikes = 2, reset = zero, threshold = 0.5}"
    else:
        pop = "{reset = zero, threshold = 0.5, v0 = 0.5}"
    text = f"""graph @g
%x = ann.input : tensor<3xf32>
%s = snn.encode(%x) {enc} : spikes<3>
%c = snn.project(%s) {{kind = one_to_one, weight = 1.0}} : current<3>
%h = snn.population(%c) {pop} : spikes<3>
%y = snn.decode(%h) : tensor<3xf32>
ann.output(%y)
"""
    src = tmp_path / "g.nmir"
    src.write_text(text)
    out = tmp_path / "g.nir"
    assert main(["export", str(src), "-o", str(out)]) == 1
    assert message in capsys.readouterr().err
    assert not out.exists()


def test_load_through_the_registry(tmp_path):
    rng = np.random.default_rng(13)
    path = tmp_path / "reg.nir"
    nir.write(path, _recurrent_graph(rng))
    graph = load(str(path), dt=DT, reset="subtract")
    assert {p.reset for p in graph.walk("snn.population")} == {"subtract"}


def test_export_refuses_a_maxpool_gate(tmp_path, capsys):
    text = """graph @g
%x = ann.input : tensor<1x4x4xf32>
%s = snn.encode(%x) {encoding = spikes} : spikes<1x4x4>
%m = snn.project(%s) {kernel = [2, 2], kind = maxgate, strides = [2, 2], weight = 1.0} : current<1x2x2>
%h = snn.population(%m) {reset = zero, threshold = 0.5} : spikes<1x2x2>
%y = snn.decode(%h) : tensor<1x2x2xf32>
ann.output(%y)
"""
    with pytest.raises(NmcError, match="projection %m is a max-pool gate .*NIR has no such node") as info:
        to_nir(parse_ir(text, "g.nmir"))
    assert "maxpool=or" in info.value.hint and info.value.loc.line == 4
    src, out = tmp_path / "g.nmir", tmp_path / "g.nir"
    src.write_text(text)
    assert main(["export", str(src), "-o", str(out)]) == 1
    assert "max-pool gate" in capsys.readouterr().err and not out.exists()

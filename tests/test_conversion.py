"""ANN → SNN conversion end to end on scikit-learn's 8×8 digits (docs/design.md §8), plus the rate
law of a single IF neuron and the refusals of convert-to-spiking."""

from __future__ import annotations

import numpy as np
import pytest

from nmc import semantics
from nmc.compiler import DEFAULT_BURST
from nmc.diagnostics import Loc, NmcError
from nmc.ir import Blob, Graph, TensorType, ann
from nmc.ir.verifier import verify
from nmc.passmanager import PassContext, PassManager
from nmc.targets.chip import chips_dir, load_chip

sklearn = pytest.importorskip("sklearn")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402

LOC = Loc("test_conversion.py", node="mlp")


@pytest.fixture(scope="module")
def digits():
    data = load_digits()
    x = (data.data / 16.0).astype(np.float32)
    return train_test_split(x, data.target, test_size=0.25, random_state=0, stratify=data.target)


@pytest.fixture(scope="module")
def mlp(digits):
    """A 64-32-10 ReLU MLP trained with a fixed seed, as an ``ann`` graph."""
    x_train, _, y_train, _ = digits
    clf = MLPClassifier(hidden_layer_sizes=(32,), max_iter=600, random_state=0).fit(x_train, y_train)
    g = Graph("digits")
    h = g.add(ann.Input(declared_type=TensorType((64,)), loc=LOC), "x")
    for i, (w, b) in enumerate(zip(clf.coefs_, clf.intercepts_), 1):
        h = g.add(ann.Dense(x=h, weight=Blob(w.T.astype(np.float32), f"fc{i}.w"), bias=Blob(b.astype(np.float32), f"fc{i}.b"),
                            loc=LOC), f"fc{i}")
        if i < len(clf.coefs_):
            h = g.add(ann.Relu(x=h, loc=LOC), f"relu{i}")
    g.add(ann.Output(values=[h], loc=LOC))
    return g


def accuracy(graph, x, y, timesteps=None):
    if semantics.is_spiking(graph):
        r = semantics.run_snn(graph, [x], timesteps=timesteps)
        pred = semantics.classify(r.outputs[0], r.voltages[0])
    else:
        pred = semantics.classify(semantics.run_ann(graph, [x]).outputs[0])
    return float(np.mean(pred == y)), pred


def convert(graph, x_cal, pipeline, target=None):
    ctx = PassContext(calibration=x_cal, target=target)
    return PassManager(pipeline, ctx).run(graph.clone()), ctx


CONVERT = "canonicalize,calibrate,normalize,convert-to-spiking{{timesteps={T}}}"


def test_float_and_integer_snn_match_the_ann(mlp, digits):
    x_train, x_test, _, y_test = digits
    ann_acc, _ = accuracy(mlp, x_test, y_test)
    assert ann_acc > 0.9
    results = {}
    for T in (16, 32, 64):
        snn, _ = convert(mlp, x_train, CONVERT.format(T=T))
        quant, ctx = convert(snn, x_train, "quantize{weight-bits=8}", target=load_chip("mesh"))
        verify(quant)
        assert all(p.bits == 24 for p in quant.walk("snn.population"))
        assert all(p.is_integer and 0 <= p.exponent <= 7 for p in quant.walk("snn.project"))
        assert ctx.stats["quantize"]["weights-saturated"] == 0
        results[T] = (accuracy(snn, x_test, y_test)[0], accuracy(quant, x_test, y_test)[0])
    # the float SNN within 1 point of the ANN at some T <= 64, the integer SNN within 1 more
    good = [T for T, (f, i) in results.items() if f >= ann_acc - 0.01 and i >= ann_acc - 0.02]
    assert good, f"ANN {ann_acc:.4f}, SNN (float, int) by T: {results}"


def test_a_clipped_relu_becomes_an_if_neuron_with_the_clip_as_threshold(mlp, digits):
    """ReLU6-style clips: a hidden layer clipped below its calibrated percentile takes the clip's
    bound as λ (it would otherwise be refused: the clip would cut under the neuron's range)."""
    x_train, x_test, _, _ = digits
    clipped = mlp.clone()
    hidden = semantics.run_ann(mlp, [x_train], keep=True).values
    relu = next(op for op in clipped.ops if op.KIND == "ann.relu")
    bound = float(np.percentile(next(a for v, a in hidden.items() if v.name == "relu1"), 95))
    clipped.replace(relu, ann.Clip(x=relu.x, min=0.0, max=bound, loc=LOC))
    _, want = accuracy(clipped, x_test, None)
    snn, _ = convert(clipped, x_train, "canonicalize,calibrate,normalize")
    assert snn.walk("ann.dense")[0].extra["norm.scale"] == pytest.approx(bound)
    assert snn.walk("ann.clip")[0].max == pytest.approx(1.0)
    snn, _ = convert(snn, x_train, "convert-to-spiking{timesteps=64}")
    _, got = accuracy(snn, x_test, None)
    assert np.mean(got == want) >= 0.98


def test_quantize_bounds_the_step_current_by_the_sign_of_the_sources(mlp, digits):
    """Spikes are never negative, so a neuron's current lies between minus its negative and its
    positive weight sums; a current encoder may be negative, so there the bound is Σ|w|.  The
    bound is reached: no integer voltage of the quantised graph saturates."""
    from nmc.passes.quantize import max_step_current

    x_train, x_test, _, _ = digits
    for encoding in ("rate", "current"):
        snn, _ = convert(mlp, x_train, f"canonicalize,calibrate,normalize,convert-to-spiking{{timesteps=16,encoding={encoding}}}")
        first, second = [p.currents[0].owner for p in snn.walk("snn.population")]
        w2 = second.weight.data.astype(np.float64)
        expected = max(np.clip(w2, 0, None).sum(axis=1).max(), np.clip(-w2, 0, None).sum(axis=1).max())
        assert max_step_current(second, 1.0) == pytest.approx(expected)
        assert max_step_current(second, 1.0) < np.abs(w2).sum(axis=1).max()
        w1 = first.weight.data.astype(np.float64)
        if encoding == "rate":  # 0/1 events
            bound = max(np.clip(w1, 0, None).sum(axis=1).max(), np.clip(-w1, 0, None).sum(axis=1).max())
        else:
            bound = np.abs(w1).sum(axis=1).max()
        assert max_step_current(first, 1.0) == pytest.approx(bound)
        quant, ctx = convert(snn, x_train, "quantize", target=load_chip("mesh"))
        assert ctx.stats["quantize"]["params-saturated"] == 0
        v = semantics.run_snn(quant, [x_test]).voltages[0]
        assert np.abs(v).max() < (1 << 23) - 1


def test_integer_run_is_deterministic_and_integer(mlp, digits):
    x_train, x_test, _, _ = digits
    snn, _ = convert(mlp, x_train, CONVERT.format(T=8))
    quant, _ = convert(snn, x_train, "quantize", target=load_chip("mesh"))
    a = semantics.run_snn(quant, [x_test[:20]])
    b = semantics.run_snn(quant, [x_test[:20]])
    assert np.array_equal(a.outputs[0], b.outputs[0])
    assert np.all(a.outputs[0] == np.round(a.outputs[0]))  # integer membranes


def test_bias_correction_cancels_the_precharge(mlp, digits):
    """Without the correction the output's bias acts D - 1 extra steps; with it the final
    membrane of a network whose hidden layer is silent equals T * bias exactly."""
    x_train, _, _, _ = digits
    snn, _ = convert(mlp, x_train, CONVERT.format(T=4))
    out = snn.walk("snn.population")[-1]
    bias = semantics.param_array(out.bias, out.result.type.shape)
    zeros = np.zeros((1, 64), dtype=np.float32)
    hidden = snn.walk("snn.population")[0]
    if np.any(semantics.param_array(hidden.bias, hidden.result.type.shape) + 0.5 > 1):
        pytest.skip("a hidden neuron fires without input")
    v = semantics.run_snn(snn, [zeros]).outputs[0][0]
    assert np.allclose(v, 4 * bias, atol=1e-5)
    uncorrected, _ = convert(mlp, x_train, CONVERT.format(T=4)[:-1] + ",bias-correction=false}")
    v = semantics.run_snn(uncorrected, [zeros]).outputs[0][0]
    assert np.allclose(v, 5 * bias, atol=1e-5)  # T + D - 1 = 5 steps of bias


def test_a_negative_bias_precharge_fires_no_spike_before_the_input():
    """A layer three projections deep with bias −1 would start at v0 + 2 (the bias acts for
    two steps before its input) and fire at step 0, a spike no later input takes back (at
    T = 1 mnist-8's max-pool tree lost 6 points to them).  It starts under the threshold
    with a bias that holds the same charge at the end of its window, so it is silent until
    its input arrives and its one-step count is the rate code's, relu(v0 + b + z)."""
    g = Graph("deep")
    h = g.add(ann.Input(declared_type=TensorType((2,)), loc=LOC), "x")
    for i, (w, b) in enumerate(((np.eye(2), 0.0), (np.eye(2), 0.0), (2 * np.eye(2), -1.0))):
        h = g.add(ann.Dense(x=h, weight=Blob(w.astype(np.float32), f"w{i}"),
                            bias=Blob(np.full(2, b, np.float32), f"b{i}"), loc=LOC), f"d{i}")
        h = g.add(ann.Relu(x=h, loc=LOC), f"r{i}")
    g.add(ann.Output(values=[g.add(ann.Dense(x=h, weight=Blob(np.eye(2, dtype=np.float32), "wo"), loc=LOC), "y")],
                     loc=LOC))
    verify(g)
    x = np.array([[0.0, 1.0]], np.float32)  # the deep layer's input: 2·0 − 1 < 0 and 2·1 − 1 = 1
    snn, _ = convert(g, None, "convert-to-spiking{timesteps=1,encoding=current}")
    deep = next(p for p in snn.walk("snn.population") if p.result.name == "r2")
    v0, bias = (semantics.param_array(p, (2,)) for p in (deep.v0, deep.bias))
    assert np.all(v0 + bias < 1.0) and np.allclose(v0 + 3 * bias, 0.5 - 1.0)  # T + depth − 1 = 3 steps
    spikes = semantics.run_snn(snn, [x], record=[deep]).spikes[deep][0]  # [steps, 2]
    assert spikes[:2].sum() == 0  # before its input (step 2)
    assert spikes[2].tolist() == [0, 1]  # relu(−1) and relu(1) at one step: 0 and 1 spike


def _one_neuron(threshold: float) -> Graph:
    g = Graph("one")
    x = g.add(ann.Input(declared_type=TensorType((1,))), "x")
    d = g.add(ann.Dense(x=x, weight=Blob(np.array([[1.0 / threshold]], dtype=np.float32))), "d")
    r = g.add(ann.Relu(x=d), "r")
    y = g.add(ann.Dense(x=r, weight=Blob(np.array([[1.0]], dtype=np.float32))), "y")
    g.add(ann.Output(values=[y]))
    return g


@pytest.mark.parametrize("threshold", [1.0, 0.3])
@pytest.mark.parametrize("T", [8, 37, 64])
def test_if_neuron_rate_is_min_1_x_over_theta(threshold, T):
    """Driven by a constant current x, an IF neuron (reset by subtraction, v0 = 0) fires at
    rate min(1, x/θ) within 1/T.  θ enters as the weight 1/θ of a unit-threshold neuron."""
    x = np.linspace(0.0, 2.5 * threshold, 41, dtype=np.float32).reshape(-1, 1)
    snn, _ = convert(_one_neuron(threshold), None, f"convert-to-spiking{{timesteps={T},encoding=current,v0=0.0}}")
    pop = snn.walk("snn.population")[0]
    spikes = semantics.run_snn(snn, [x], record=[pop]).spikes[pop]
    rate = spikes[:, :T].sum(axis=(1, 2)) / T  # its input window: the first T steps
    want = np.minimum(1.0, x[:, 0].astype(np.float64) / threshold)
    assert np.all(np.abs(rate - want) <= 1.0 / T + 1e-6), np.c_[x[:, 0], rate, want]


@pytest.mark.parametrize("fuse, kinds", [
    ("true", ["conv2d", "conv2d", "dense", "pool"]),  # c2 reads r through a fused kernel; no pool neurons
    ("false", ["conv2d", "conv2d", "dense", "one_to_one", "pool"]),
])
def test_cnn_with_pooling_and_residual_agrees_with_its_ann(digits, fuse, kinds):
    """A small random CNN (conv, average pooling, a residual add, dense): the float SNN's
    classes agree with the ANN's on most samples."""
    x_train, x_test, _, _ = digits
    rng = np.random.default_rng(0)
    g = Graph("cnn")
    x = g.add(ann.Input(declared_type=TensorType((1, 8, 8))), "x")
    c = g.add(ann.Conv(x=x, weight=Blob(rng.normal(0, 0.5, (4, 1, 3, 3)).astype(np.float32)),
                       bias=Blob(np.full(4, 0.05, np.float32)), pads=(1, 1, 1, 1)), "c")
    r = g.add(ann.Relu(x=c), "r")
    p = g.add(ann.AvgPool(x=r, kernel=(2, 2), strides=(2, 2)), "p")
    c2 = g.add(ann.Conv(x=p, weight=Blob(rng.normal(0, 0.3, (4, 4, 3, 3)).astype(np.float32)), pads=(1, 1, 1, 1)), "c2")
    s = g.add(ann.Add(a=c2, b=p), "s")
    r2 = g.add(ann.Relu(x=s), "r2")
    f = g.add(ann.Flatten(x=r2), "f")
    y = g.add(ann.Dense(x=f, weight=Blob(rng.normal(0, 0.3, (10, 64)).astype(np.float32))), "y")
    g.add(ann.Output(values=[y]))
    xs, xt = x_train.reshape(-1, 1, 8, 8)[:300], x_test.reshape(-1, 1, 8, 8)[:200]
    ann_pred = semantics.classify(semantics.run_ann(g, [xt]).outputs[0])
    snn, _ = convert(g, xs, CONVERT.format(T=64)[:-1] + f",fuse-pooling={fuse}}}")
    assert sorted(p.kind for p in snn.walk("snn.project")) == kinds
    _, pred = accuracy(snn, xt, ann_pred)
    assert np.mean(pred == ann_pred) >= 0.9
    quant, _ = convert(snn, xs, "quantize", target=load_chip("mesh"))
    _, qpred = accuracy(quant, xt, ann_pred)
    assert np.mean(qpred == ann_pred) >= 0.85


@pytest.mark.parametrize("pool, conv", [
    ({"kernel": (2, 2), "strides": (2, 2)}, {"pads": (1, 0, 2, 1), "strides": (1, 1)}),
    ({"kernel": (3, 3), "strides": (3, 3)}, {"pads": (0, 0, 0, 0), "strides": (2, 1), "groups": 2}),
])
def test_fused_pooling_kernel_equals_pool_then_conv(pool, conv):
    """conv(avgpool(x)) and the fused conv2d projection on x compute the same currents."""
    rng = np.random.default_rng(3)
    shape = (2, 12, 12)
    g = Graph("pc")
    x = g.add(ann.Input(declared_type=TensorType(shape)), "x")
    r = g.add(ann.Relu(x=x), "r")
    p = g.add(ann.AvgPool(x=r, **pool), "p")
    w = rng.normal(size=(4, 2 // conv.get("groups", 1), 3, 3)).astype(np.float32)
    c = g.add(ann.Conv(x=p, weight=Blob(w), **conv), "c")
    g.add(ann.Output(values=[c]))
    snn, ctx = convert(g, None, "convert-to-spiking{timesteps=4}")
    assert ctx.stats["convert-to-spiking"]["pools-fused"] == 1
    (proj,) = [q for q in snn.walk("snn.project") if q.kind == "conv2d"]
    f = Graph("fused")
    xf = f.add(ann.Input(declared_type=TensorType(shape)), "x")
    cf = f.add(ann.Conv(x=xf, weight=proj.weight, strides=proj.strides, pads=proj.pads, groups=proj.groups), "c")
    f.add(ann.Output(values=[cf]))
    xs = rng.uniform(0, 1, (3, *shape)).astype(np.float32)
    np.testing.assert_allclose(semantics.run_ann(f, [xs]).outputs[0], semantics.run_ann(g, [xs]).outputs[0],
                               rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("kind, words", [
    ("sigmoid", "a sigmoid is bounded on both sides"),
    ("tanh", "tanh takes negative values"),
    ("softmax", "a softmax normalises across neurons"),
])
def test_refusals_name_the_op(kind, words):
    g = Graph("bad")
    x = g.add(ann.Input(declared_type=TensorType((2,))), "x")
    d = g.add(ann.Dense(x=x, weight=Blob(np.eye(2, dtype=np.float32))), "d")
    where = Loc("model.onnx", node="Act_1", op_type=kind.capitalize())
    cls = {"sigmoid": ann.Sigmoid, "tanh": ann.Tanh, "softmax": ann.Softmax}[kind]
    h = g.add(cls(x=d, loc=where), "h")
    y = g.add(ann.Dense(x=h, weight=Blob(np.eye(2, dtype=np.float32))), "y")
    g.add(ann.Output(values=[y]))
    with pytest.raises(NmcError) as info:
        convert(g, None, "convert-to-spiking")
    err = info.value
    assert err.loc == where and words in err.message
    assert f"cannot convert 'ann.{kind}' to spiking neurons" in err.message
    assert "model.onnx: node 'Act_1'" in err.render()


def test_quantize_refuses_a_reset_the_chip_lacks(tmp_path, mlp, digits):
    text = (chips_dir() / "mesh.toml").read_text(encoding="utf-8")
    path = tmp_path / "zero_only.toml"
    path.write_text(text.replace('reset_modes = ["subtract", "zero"]', 'reset_modes = ["zero"]'))
    snn, _ = convert(mlp, digits[0], CONVERT.format(T=8))
    with pytest.raises(NmcError) as info:
        convert(snn, None, "quantize", target=load_chip(str(path)))
    assert "do not support reset 'subtract'" in info.value.message
    with pytest.raises(NmcError) as info:
        convert(mlp, digits[0], "convert-to-spiking", target=load_chip(str(path)))
    assert "do not support reset 'subtract'" in info.value.message


def test_nmc_eval_reports_ann_float_and_int_accuracy(tmp_path, mlp, digits, capsys):
    from nmc.cli import main
    from nmc.ir.io import write_ir

    x_train, x_test, y_train, y_test = digits
    model, data, calib, report = (tmp_path / n for n in ("m.nmir", "d.npz", "c.npz", "r.json"))
    write_ir([mlp], str(model))
    np.savez(data, x=x_test[:120], y=y_test[:120].astype(np.int64))
    np.savez(calib, x=x_train)
    code = main(["eval", str(model), "--data", str(data), "--calib", str(calib), "--target", "mesh",
                 "--timesteps", "8,32", "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "ANN accuracy" in out and "agree(int)" in out
    import json
    r = json.loads(report.read_text())
    ann_acc, _ = accuracy(mlp, x_test[:120], y_test[:120])
    assert r["ann_accuracy"] == pytest.approx(ann_acc)
    assert [row["timesteps"] for row in r["snn"]] == [8, 32]
    for row in r["snn"]:
        assert row["latency_steps"] == row["timesteps"] + 1
        for key in ("rate_code_accuracy", "float_accuracy", "int_accuracy", "int_agreement"):
            assert 0.8 <= row[key] <= 1.0
        assert row["spikes_per_sample"] > 0 and row["synaptic_ops_per_sample"] > row["spikes_per_sample"]
    assert main(["eval", str(model), "--data", str(data), "--timesteps", "0"]) == 2


def test_per_layer_losses_shrink_with_T_and_show_quantisation(mlp, digits):
    from nmc.evaluation import layer_losses

    x_train, x_test, _, _ = digits
    base, ctx = convert(mlp, x_train, "canonicalize,calibrate,normalize")
    errors = []
    for T in (4, 32):
        snn = PassManager(f"convert-to-spiking{{timesteps={T}}}", ctx).run(base.clone())
        rows = layer_losses(base, snn, x_test[:100])
        assert [r["layer"] for r in rows] == ["relu1", "fc2"]
        assert rows[0]["quant_error"] is None and rows[1]["clipped"] is None
        errors.append(rows[0]["relative_error"])
        assert rows[0]["correlation"] > 0.9
    assert errors[1] < errors[0] / 3  # rate-coding error falls roughly as 1/T
    ctx.target = load_chip("mesh")
    quant = PassManager("quantize{weight-bits=4}", ctx).run(snn)
    rows = layer_losses(base, quant, x_test[:100])
    assert rows[0]["quant_error"] > 0.02 and rows[0]["saturated"] == 0


def test_the_rate_coded_ann_is_what_one_hidden_layer_computes_from_a_constant_current(mlp, digits):
    """With the image as a current, each hidden neuron of a one-hidden-layer network sees a
    constant input and fires round(T·a) times, and the membrane read-out is exact: the float
    SNN's classes are the rate-coded ANN's, sample by sample.  With two steps the rounding
    changes classes (the rate-coded ANN is not the ANN itself)."""
    from nmc.evaluation import rate_code_classes

    x_train, x_test, _, _ = digits
    base, ctx = convert(mlp, x_train, "canonicalize,calibrate,normalize")
    ann_classes = accuracy(base, x_test, None)[1]
    for T in (2, 8):
        snn = PassManager(f"convert-to-spiking{{timesteps={T},encoding=current}}", ctx).run(base.clone())
        coded = rate_code_classes(base, snn, x_test, T)
        assert np.array_equal(coded, accuracy(snn, x_test, None)[1])
        if T == 2:
            assert np.mean(coded != ann_classes) > 0.02


def test_per_layer_losses_compare_with_the_scales_used_at_each_T(mlp, digits):
    """With thresholds calibrated per T, each row compares the rates with the ANN normalised
    for that T (not with the percentile normalisation): at T = 64 the first layer's rates
    follow its activations closely."""
    from nmc.evaluation import evaluate

    x_train, x_test, _, y_test = digits
    r = evaluate(mlp, x_test[:100], y_test[:100], x_train, None, [64], encoding="current", per_layer=True)
    (first, _) = r["snn"][0]["layers"]
    assert first["layer"] == "relu1"
    assert first["relative_error"] < 0.05 and first["correlation"] > 0.99


def test_nmc_eval_per_layer_and_plot(tmp_path, mlp, digits, capsys):
    from nmc.cli import main
    from nmc.ir.io import write_ir

    _, x_test, _, y_test = digits
    model, data, png, report = (tmp_path / n for n in ("m.nmir", "d.npz", "acc.png", "r.json"))
    write_ir([mlp], str(model))
    np.savez(data, x=x_test[:60], y=y_test[:60].astype(np.int64))
    code = main(["eval", str(model), "--data", str(data), "--timesteps", "4,16", "--encoding", "current",
                 "--per-layer", "--plot", str(png), "--report", str(report)])
    assert code == 0
    out = capsys.readouterr().out
    assert "T=16 integer SNN, per layer:" in out and "relu1" in out
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import json
    r = json.loads(report.read_text())
    assert r["encoding"] == "current"
    assert {L["layer"] for L in r["snn"][1]["int_layers"]} == {"relu1", "fc2"}
    assert not list(tmp_path.glob("*.tmp*"))


def _rate_error(values, lam, T):
    return np.sum((values - lam * np.clip(np.floor(T * values / lam + 0.5), 0, T) / T) ** 2)


def test_rate_coded_scale_fits_the_window():
    """With few steps the chosen λ clips the rare large activations instead of wasting rate
    levels on them, and represents the values better than the maximum or the 99.9th percentile;
    with many steps it moves towards the maximum."""
    from nmc.passes.normalize import rate_coded_scale

    values = np.random.default_rng(0).exponential(1.0, 50_000)
    short, long = rate_coded_scale(values, 4), rate_coded_scale(values, 256)
    assert short < long <= values.max()
    for lam in (values.max(), np.percentile(values, 99.9)):
        assert _rate_error(values, short, 4) < _rate_error(values, lam, 4)
    assert rate_coded_scale(-values, 4) == 1.0  # nothing positive: nothing to scale


def test_normalize_for_a_window_needs_data(mlp, digits):
    base, _ = convert(mlp, digits[0], "canonicalize,calibrate")
    with pytest.raises(NmcError, match=r"normalize\{timesteps=8\} needs calibration data"):
        convert(base, None, "normalize{timesteps=8}")
    g, _ = convert(base, digits[0], "normalize{timesteps=8}")
    assert g.meta["normalized"] and all("norm.scale" in op.extra for op in g.walk("ann.dense"))


def _conv_maxpool_ann(seed: int = 0) -> tuple[Graph, np.ndarray]:
    """conv(1→4, 3×3, pad 1) → ReLU → 2×2 max pool → dense(2), weights scaled so that the
    ReLU's outputs on the returned inputs stay below 0.9 (rates without normalisation)."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(0, 1, size=(24, 1, 6, 6)).astype(np.float32)
    w = rng.uniform(-0.5, 1.0, size=(4, 1, 3, 3))
    peak = semantics.conv(x.astype(np.float64), w, (1, 1), (1, 1, 1, 1), (1, 1), 1).max()
    g = Graph("cnnmax")
    h = g.add(ann.Input(declared_type=TensorType((1, 6, 6)), loc=LOC), "x")
    h = g.add(ann.Conv(x=h, weight=Blob((w * 0.9 / peak).astype(np.float32), "c.w"), pads=(1, 1, 1, 1), loc=LOC), "c")
    h = g.add(ann.Relu(x=h, loc=LOC), "r")
    h = g.add(ann.MaxPool(x=h, kernel=(2, 2), strides=(2, 2), loc=LOC), "m")
    h = g.add(ann.Flatten(x=h, loc=LOC), "f")
    h = g.add(ann.Dense(x=h, weight=Blob(rng.normal(size=(2, 36)).astype(np.float32), "d.w"), loc=LOC), "y")
    g.add(ann.Output(values=[h], loc=LOC))
    verify(g)
    return g, x


def test_maxpool_gate_and_tree_track_the_max_closer_than_the_spiking_or():
    # the pooled population's firing rate against the ANN's max-pooled activation: the OR
    # overestimates it (several inputs of a window firing at different steps all pass), the
    # gate passes one input, whose rate tends to the largest; the tree computes
    # max(a, b) = b + relu(a - b) with neurons (measured mean |error| at T = 64: OR 0.29,
    # gate 0.038, tree 0.0067)
    g, x = _conv_maxpool_ann()
    T = 64
    want = semantics.run_ann(g, [x], keep=True).values[g.walk("ann.maxpool")[0].result].reshape(len(x), -1)
    errors = {}
    for strategy in ("gate", "or", "tree"):
        snn, _ = convert(g, x, f"convert-to-spiking{{timesteps={T},maxpool={strategy}}}")
        kinds = {p.kind for p in snn.walk("snn.project")}
        assert ("maxgate" in kinds) == (strategy == "gate")
        pooled = next(p for p in snn.walk("snn.population") if p.result.name == "m")
        rate = semantics.run_snn(snn, [x]).counts[pooled].reshape(len(x), -1) / T
        errors[strategy] = (float(np.mean(np.abs(rate - want))), float(np.mean(rate - want)))
    gate, spiking_or, tree = errors["gate"], errors["or"], errors["tree"]
    assert spiking_or[1] > 0.2  # the OR overestimates the max (measured: by 0.29 on average)
    assert gate[0] < 0.5 * spiking_or[0], errors
    assert abs(gate[1]) < 0.05, errors
    assert tree[0] < 0.5 * gate[0] and abs(tree[1]) < 0.01, errors


def test_maxpool_tree_is_a_tournament_of_stateless_projections():
    """A 3×3 window (9 elements) takes ⌈log2 9⌉ = 4 rounds of difference neurons (8
    populations) and a relay; the terms of every sum are delayed to arrive in one step."""
    g = Graph("pool3")
    h = g.add(ann.Input(declared_type=TensorType((2, 6, 6)), loc=LOC), "x")
    h = g.add(ann.Relu(x=h, loc=LOC), "r")
    h = g.add(ann.MaxPool(x=h, kernel=(3, 3), strides=(3, 3), loc=LOC), "m")
    g.add(ann.Output(values=[g.add(ann.Flatten(x=h, loc=LOC), "f")], loc=LOC))
    snn, ctx = convert(g, None, "convert-to-spiking{timesteps=4,maxpool=tree,encoding=current}")
    pops = [p.result.name for p in snn.walk("snn.population")]
    assert pops == ["m.max0.0", "m.max0.1", "m.max0.2", "m.max0.3", "m.max1.0", "m.max1.1", "m.max2.0",
                    "m.max3.0", "m"]
    assert {p.kind for p in snn.walk("snn.project")} == {"conv2d", "one_to_one"}
    depth = {snn.walk("snn.encode")[0].result: 0}
    for pop in snn.walk("snn.population"):
        arrivals = {depth[c.owner.src] + c.owner.delay for c in pop.currents}
        assert len(arrivals) == 1, (pop.result.name, arrivals)
        depth[pop.result] = arrivals.pop()
    assert depth[snn.walk("snn.population")[-1].result] == 4 + 1  # the ReLU of spikes is no neuron
    assert any("4 rounds" in r for r in ctx.remarks)


def test_eval_with_a_chip_converts_max_pooling_as_the_chip_runs_it():
    """``nmc eval --target mesh`` converts max pooling as ``nmc compile --target mesh`` does
    (the tree); asked for the gate, which the CPU runtime runs but the chip cannot map, it keeps
    it and says so in a note."""
    from nmc.evaluation import evaluate

    g, x = _conv_maxpool_ann()
    y = np.zeros(len(x), dtype=np.int64)
    chip = load_chip("mesh")
    tree = evaluate(g, x, y, x, chip, [8], encoding="current")
    burst = min(DEFAULT_BURST, chip.formats.max_spikes)  # mesh declares graded spikes: burst neurons by default
    assert tree["convert_options"] == f"maxpool=tree,burst={burst}" and len(tree["notes"]) == 1
    assert evaluate(g, x, y, x, chip, [8], encoding="current", convert_options="burst=1")["convert_options"] \
        == "maxpool=tree,burst=1"
    gate = evaluate(g, x, y, x, chip, [8], encoding="current", convert_options="maxpool=gate")
    assert len(gate["notes"]) == 1 and "maxpool=tree" in gate["notes"][0] and "'mesh'" in gate["notes"][0]
    assert evaluate(g, x, y, x, None, [8], encoding="current").get("notes") is None


def _small_cnn(seed: int = 0) -> tuple[Graph, np.ndarray]:
    """conv(1→3, 3×3, pad 1) → ReLU → 2×2 avgpool → conv(3→4, 3×3) → ReLU → flatten → dense(5),
    random weights, and 40 random [1, 8, 8] inputs in [0, 1]."""
    rng = np.random.default_rng(seed)
    g = Graph("cnn")
    h = g.add(ann.Input(declared_type=TensorType((1, 8, 8)), loc=LOC), "x")
    h = g.add(ann.Conv(x=h, weight=Blob(rng.normal(0, 0.5, (3, 1, 3, 3)).astype(np.float32)),
                       bias=Blob(rng.normal(0, 0.1, 3).astype(np.float32)), pads=(1, 1, 1, 1), loc=LOC), "c1")
    h = g.add(ann.Relu(x=h, loc=LOC), "r1")
    h = g.add(ann.AvgPool(x=h, kernel=(2, 2), strides=(2, 2), loc=LOC), "p1")
    h = g.add(ann.Conv(x=h, weight=Blob(rng.normal(0, 0.5, (4, 3, 3, 3)).astype(np.float32)),
                       bias=Blob(rng.normal(0, 0.1, 4).astype(np.float32)), loc=LOC), "c2")
    h = g.add(ann.Relu(x=h, loc=LOC), "r2")
    h = g.add(ann.Flatten(x=h, loc=LOC), "f")
    h = g.add(ann.Dense(x=h, weight=Blob(rng.normal(0, 0.5, (5, 16)).astype(np.float32)), loc=LOC), "out")
    g.add(ann.Output(values=[h], loc=LOC))
    return g, rng.random((40, 1, 8, 8)).astype(np.float32)


def test_channelwise_scales_keep_the_function(mlp, digits):
    """normalize{channelwise}: every hidden layer divides each channel by its own λ and the next
    layer multiplies its inputs back, so the normalised ANN computes the original outputs divided
    by meta.output_scale, through dense layers, and through conv, pooling and flatten."""
    cnn, x_cnn = _small_cnn()
    for graph, x in ((mlp, digits[0]), (cnn, x_cnn)):
        before = semantics.run_ann(graph, [x]).outputs[0]
        normed, ctx = convert(graph, x, "canonicalize,calibrate,normalize{timesteps=2,channelwise=true}")
        after = semantics.run_ann(normed, [x]).outputs[0]
        np.testing.assert_allclose(after * normed.meta["output_scale"][0], before, rtol=1e-4, atol=1e-4)
        first = next(op for op in normed.ops if op.KIND in ("ann.dense", "ann.conv"))
        original = next(op for op in graph.ops if op.KIND == first.KIND)
        ratio = (original.weight.data.reshape(len(original.weight.data), -1)[:, 0]
                 / first.weight.data.reshape(len(first.weight.data), -1)[:, 0])
        assert np.ptp(ratio) > 0.01 * np.max(ratio)  # one λ per output channel, not one per layer


def test_channelwise_stops_where_a_join_or_the_output_needs_one_scale():
    from nmc.passes.normalize import channel_scalable

    cnn, _ = _small_cnn()
    cnn = PassManager("canonicalize", PassContext()).run(cnn)
    c1, c2, out = [op for op in cnn.ops if op.KIND in ("ann.conv", "ann.dense")]
    assert channel_scalable(cnn, c1) and channel_scalable(cnn, c2) and not channel_scalable(cnn, out)


def test_offsets_correct_a_systematic_shortfall():
    """fit_rate_code with offsets: inputs that arrive 0.3 spikes short of the activation they
    stand for get a positive offset, and the rate code then comes closer to the activations
    than any λ alone achieves (the candidate offsets include 0)."""
    from nmc.passes.normalize import fit_rate_code, rate_code

    rng = np.random.default_rng(1)
    a = np.maximum(rng.normal(0.3, 0.4, (2000, 6)), 0)
    T, lam0 = 2, np.percentile(a[a > 0], 99)
    z = a - 0.3 * lam0 / T
    lam, shift = fit_rate_code(z, a, T, channelwise=False, offsets=False)
    assert np.all(shift == 0)
    lam_o, shift_o = fit_rate_code(z, a, T, channelwise=False, offsets=True)
    assert np.all(shift_o > 0)

    def error(lam, shift):
        return np.sum((a - rate_code(z, lam, shift[None, :], T)) ** 2)

    assert error(lam_o, shift_o) < 0.9 * error(lam, shift)


def test_fitted_scales_and_offsets_are_what_one_hidden_layer_computes(mlp, digits):
    """The float SNN of a one-hidden-layer network with the image as a current is the rate-coded
    ANN, sample by sample, also with per-channel scales and offsets fitted for its T; and the
    8-bit integer SNN of the mesh chip agrees with it on nearly every sample."""
    from nmc.evaluation import rate_code_classes

    x_train, x_test, _, _ = digits
    for T in (1, 3):
        base, ctx = convert(mlp, x_train, f"canonicalize,calibrate,normalize{{timesteps={T},encoding=current,"
                                          "channelwise=true,offsets=true}")
        snn = PassManager(f"convert-to-spiking{{timesteps={T},encoding=current}}", ctx).run(base.clone())
        coded = rate_code_classes(base, snn, x_test, T)
        assert np.array_equal(coded, accuracy(snn, x_test, None)[1])
        quant, _ = convert(snn, x_train, "quantize{weight-bits=8}", target=load_chip("mesh"))
        assert np.mean(accuracy(quant, x_test, None)[1] == coded) > 0.97


def test_channelwise_and_offsets_need_a_window(mlp, digits):
    base, _ = convert(mlp, digits[0], "canonicalize,calibrate")
    with pytest.raises(NmcError, match="fitted for a window of T steps"):
        convert(base, digits[0], "normalize{channelwise=true}")


def test_stream_ann_is_run_ann_one_op_at_a_time():
    """stream_ann yields every op's value as run_ann(keep=True) computes it, and a value sent
    back replaces the op's result for the ops after it (run_ann's transform)."""
    cnn, x = _small_cnn()
    kept = semantics.run_ann(cnn, [x], keep=True).values
    seen = [op for op, value in semantics.stream_ann(cnn, [x]) if np.array_equal(value, kept[op.result])]
    assert seen == [op for op in cnn.ops if op.KIND != "ann.output"]
    doubled = semantics.run_ann(cnn, [x], transform=lambda v, a: 2 * a if v.name == "r1" else a).outputs[0]
    stream = semantics.stream_ann(cnn, [x])
    item, last = next(stream), None
    while item is not None:
        op, value = item
        last = value
        try:
            item = stream.send(2 * value if op.result.name == "r1" else None)
        except StopIteration:
            item = None
    np.testing.assert_array_equal(last, doubled)


@pytest.mark.parametrize("channelwise", [False, True])
def test_layer_fit_in_one_pass_equals_a_run_per_layer(channelwise):
    """fit_layers fits every layer in one streamed pass; the oracle re-runs the whole network
    for each layer with the layers before it rate-coded (the definition, docs/conversion.md)."""
    from nmc.passes.normalize import (WEIGHTED, fit_layers, fit_rate_code, rate_code, rate_coded_scale,
                                      spiking_ops)

    cnn, x = _small_cnn(3)
    cnn = PassManager("canonicalize", PassContext()).run(cnn)
    measured = [op for op in cnn.ops if op.KIND in WEIGHTED]
    T = 4
    chosen, _, _ = fit_layers(cnn, x, measured, T, channelwise=channelwise, offsets=False, coded_input=True)
    clean = semantics.run_ann(cnn, [x], keep=True).values
    coded_x = rate_code(np.clip(x, 0.0, 1.0), 1.0, 0.0, T).astype(x.dtype)
    spiking, fitted, expected = spiking_ops(cnn, measured), {}, {}

    def coded(v, arr):
        if v not in fitted:
            return arr
        shape = (-1,) + (1,) * (arr.ndim - 2)
        return rate_code(arr, np.reshape(fitted[v], shape), 0.0, T).astype(arr.dtype)

    for op in measured:
        if op not in spiking:
            expected[op] = rate_coded_scale(clean[op.result], T)
            continue
        z = semantics.run_ann(cnn, [coded_x], keep=True, transform=coded).values[op.result]
        lam, _ = fit_rate_code(z, np.clip(clean[op.result], 0.0, None), T,
                               channelwise and op.KIND == "ann.conv", False)
        fitted[op.result] = expected[op] = lam
    assert set(chosen) == set(expected)
    for op in measured:
        np.testing.assert_array_equal(np.asarray(chosen[op]), np.asarray(expected[op]))


def concat_of_two_branches(g: Graph, x, rng):
    """``j``: the channel concatenation of two ReLU'd 3x3 convolutions of ``x`` (2 and 3 channels)."""
    parts = []
    for i, c in enumerate((2, 3)):
        conv = g.add(ann.Conv(x=x, weight=Blob(rng.normal(0, 0.8, (c, 1, 3, 3)).astype(np.float32)),
                              pads=(1, 1, 1, 1)), f"c{i}")
        parts.append(g.add(ann.Relu(x=conv), f"r{i}"))
    return g.add(ann.Concat(inputs=parts, axis=0), "j")


def test_pooling_a_concat_pools_each_part_and_agrees_with_the_ann():
    """Max and average pooling of a channel concatenation (SqueezeNet's fire modules,
    Inception's branches) convert part by part; the float SNN's classes follow the ANN's."""
    rng = np.random.default_rng(5)
    g = Graph("fire")
    x = g.add(ann.Input(declared_type=TensorType((1, 8, 8))), "x")
    j = concat_of_two_branches(g, x, rng)
    m = g.add(ann.MaxPool(x=j, kernel=(2, 2), strides=(2, 2)), "m")
    p = g.add(ann.AvgPool(x=m, kernel=(2, 2), strides=(2, 2)), "p")
    f = g.add(ann.Flatten(x=p), "f")
    y = g.add(ann.Dense(x=f, weight=Blob(rng.normal(0, 0.5, (4, 20)).astype(np.float32))), "y")
    g.add(ann.Output(values=[y]))
    xs = rng.random((200, 1, 8, 8)).astype(np.float32)
    ann_pred = semantics.classify(semantics.run_ann(g, [xs]).outputs[0])
    for maxpool in ("tree", "gate"):
        snn, _ = convert(g, xs, CONVERT.format(T=64)[:-1] + f",maxpool={maxpool}}}")
        names = {op.result.name for op in snn.walk("snn.population")}
        assert {"m.0", "m.1", "p.0", "p.1"} <= names
        _, pred = accuracy(snn, xs, ann_pred)
        assert np.mean(pred == ann_pred) >= 0.9


def test_a_rescaled_concatenation_scales_its_readers():
    """Inception v2's pattern: a max pool of a concatenation joins another concatenation, whose
    other branch has another scale, so normalize multiplies the pooled parts by a constant;
    the readers (here a dense layer) take that factor into their weights, the float SNN's
    classes follow the ANN's, and an explicit multiplication of a concatenation converts too."""
    rng = np.random.default_rng(7)
    g = Graph("mixed")
    x = g.add(ann.Input(declared_type=TensorType((1, 8, 8))), "x")
    j = concat_of_two_branches(g, x, rng)
    m = g.add(ann.MaxPool(x=j, kernel=(2, 2), strides=(2, 2)), "m")
    half = g.add(ann.Constant(value=Blob(np.full((1,), 0.5, np.float32))), "half")
    s = g.add(ann.Mul(a=m, b=half), "s")
    c2 = g.add(ann.Conv(x=x, weight=Blob(rng.normal(0, 3.0, (2, 1, 2, 2)).astype(np.float32)), strides=(2, 2)), "c2")
    r2 = g.add(ann.Relu(x=c2), "r2")
    k = g.add(ann.Concat(inputs=[s, r2], axis=0), "k")
    f = g.add(ann.Flatten(x=k), "f")
    y = g.add(ann.Dense(x=f, weight=Blob(rng.normal(0, 0.5, (4, 112)).astype(np.float32))), "y")
    g.add(ann.Output(values=[y]))
    xs = rng.random((200, 1, 8, 8)).astype(np.float32)
    ann_pred = semantics.classify(semantics.run_ann(g, [xs]).outputs[0])
    snn, ctx = convert(g, xs, CONVERT.format(T=64))
    assert not snn.walk("ann.mul")
    _, pred = accuracy(snn, xs, ann_pred)
    assert np.mean(pred == ann_pred) >= 0.9


def test_lrn_scaled_before_a_max_pool_converts():
    """AlexNet's conv → ReLU → LRN → max pool → grouped conv with --convert lrn=scale: the gain
    lands between the spikes and the pool; the pool passes it on and the next layer takes it
    into its weights (max(g·a) = g·max(a) for g > 0); the float SNN's classes follow the
    lrn-to-scale ANN's."""
    rng = np.random.default_rng(11)
    g = Graph("alex")
    x = g.add(ann.Input(declared_type=TensorType((1, 8, 8))), "x")
    c = g.add(ann.Conv(x=x, weight=Blob(rng.normal(0, 2.0, (4, 1, 3, 3)).astype(np.float32)), pads=(1, 1, 1, 1)), "c")
    r = g.add(ann.Relu(x=c), "r")
    n = g.add(ann.LRN(x=r, size=3, alpha=0.5, beta=0.75, bias=1.0), "n")
    m = g.add(ann.MaxPool(x=n, kernel=(2, 2), strides=(2, 2)), "m")
    c2 = g.add(ann.Conv(x=m, weight=Blob(rng.normal(0, 1.0, (4, 2, 3, 3)).astype(np.float32)), pads=(1, 1, 1, 1),
                        groups=2), "c2")  # AlexNet's second conv has two groups
    r2 = g.add(ann.Relu(x=c2), "r2")
    f = g.add(ann.Flatten(x=r2), "f")
    y = g.add(ann.Dense(x=f, weight=Blob(rng.normal(0, 0.5, (4, 64)).astype(np.float32))), "y")
    g.add(ann.Output(values=[y]))
    xs = rng.random((200, 1, 8, 8)).astype(np.float32)
    scaled, ctx = convert(g, xs, "canonicalize,lrn-to-scale")
    assert scaled.walk("ann.mul") and not scaled.walk("ann.lrn")
    want = semantics.classify(semantics.run_ann(scaled, [xs]).outputs[0])
    snn, _ = convert(scaled, xs, "calibrate,normalize,convert-to-spiking{timesteps=256}")
    _, pred = accuracy(snn, xs, want)
    assert np.mean(pred == want) >= 0.9


def test_reconstruction_corrects_a_layer_toward_its_clean_output():
    """reconstruct=bias moves each channel's mean output from the rate-coded input onto the
    ANN's (Li et al. 2021's bias correction); reconstruct=weights fits the residual from the
    input as well, which leaves less of it than the bias alone."""
    from nmc.passes.normalize import reconstruction

    rng = np.random.default_rng(0)
    x = rng.uniform(0, 1, (400, 12))
    w = rng.normal(size=(5, 12))
    coded = np.round(2 * x) / 2  # the input as a rate code of two steps
    a, z = x @ w.T, coded @ w.T
    dw, db, zb = reconstruction(z, a, None)
    assert dw is None and np.allclose((a - zb).mean(axis=0), 0.0) and np.allclose(zb, z + db)
    dw, db, zw = reconstruction(z, a, coded)
    assert dw.shape == (5, 12) and np.allclose(zw, z + coded @ dw.T + db)
    assert np.sum((a - zw) ** 2) < 0.8 * np.sum((a - zb) ** 2)
    conv = rng.normal(size=(8, 3, 4, 4))  # conv outputs [N, C, H, W]: one Δb per channel
    _, db, _ = reconstruction(conv, conv + np.arange(3).reshape(1, 3, 1, 1), None)
    assert np.allclose(db, [0, 1, 2])


def test_reconstruct_changes_every_layer_it_names(mlp, digits):
    x_train = digits[0]
    plain, _ = convert(mlp, x_train, "canonicalize,calibrate,normalize{timesteps=2}")
    for mode, weights_change in (("bias", False), ("weights", True)):
        g, ctx = convert(mlp, x_train, f"canonicalize,calibrate,normalize{{timesteps=2,reconstruct={mode}}}")
        assert ctx.stats["normalize"]["layers-reconstructed"] == 2
        for old, new in zip(plain.walk("ann.dense"), g.walk("ann.dense")):
            ratio = new.weight.data / np.where(old.weight.data == 0, 1, old.weight.data)
            proportional = np.allclose(ratio[old.weight.data != 0], np.median(ratio), rtol=1e-4)
            assert proportional != weights_change  # normalize's λ may change: a factor per layer
            assert not np.allclose(new.bias.data, old.bias.data * np.median(ratio))
    with pytest.raises(NmcError, match="fitted for a window of T steps"):
        convert(mlp, x_train, "canonicalize,calibrate,normalize{reconstruct=bias}")

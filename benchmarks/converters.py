"""Reference numbers: existing ANN→SNN converters on nmc's MNIST models, in the same conditions.

Measures SpikingJelly's converters (and the textbook method, built from SpikingJelly's own
parts) on the models that ``benchmarks/conversion.py`` measures nmc on: the project's MLP and
CNN (``examples/mnist_{mlp,cnn}.onnx``) and the ONNX Model Zoo's mnist-8.  Every model is
rebuilt by hand as a ``torch.nn.Sequential`` from its ONNX initializers and checked against
onnxruntime before it is converted.

Conditions (the ones nmc's issue states for "the best existing converter"):

* test set: the first ``--samples`` (2000) ``heldout_idx`` images, x/255 in [0, 1];
  calibration: the first ``--calib`` (1000) ``train_idx`` images, no labels, fed to the
  recipes in batches of ``--calib-batch`` (100, as in SpikingJelly's own MNIST example);
* float weights; the image fed as a constant current at every step; SpikingJelly's
  single-step simulation, so every layer is updated within one step (no per-layer delay);
* output: the last layer (Linear/Gemm, no ReLU, so it stays non-spiking) summed over the T
  steps, i.e. the last layer's summed input; class = argmax (ties go to the lowest index);
* one run of max(T) steps per model and converter, read at every T (the state is causal, so
  the sum after T steps is that of a T-step run).

Converters (SpikingJelly 2.0, ``spikingjelly.activation_based.ann2snn``; ``Converter`` is
``FXConverter``, which FX-traces the ANN and applies a recipe):

* ``sj-max``, ``sj-99.9%`` — ``RateCodingRecipe(mode="max" | "99.9%")``, the classic
  SpikingJelly converter.  A ``VoltageHook`` after every ``nn.ReLU`` records one scale for
  the layer: per calibration batch the max (or the 99.9th percentile) of the ReLU output,
  kept as a running average with momentum 0.1 (the first batch sets it, then
  s ← 0.9 s + 0.1 s_batch), so "max" is not the max over all calibration images.  Each ReLU
  becomes ``VoltageScaler(1/s) → IFNode(v_threshold=1, v_reset=None: soft reset, v0 = 0) →
  VoltageScaler(s)``: weights are untouched, the spikes are scaled back by s.
* ``sj-ltb`` — ``LocalThresholdBalancingRecipe`` (Bu, Li, Yu, CVPR 2025, training-free):
  one threshold per channel, found on the calibration batches by θ ← θ + 2·mean(relu(a − θ))
  from θ = 0, with the activations clipped at θ while calibrating; each ReLU becomes
  ``ChannelVoltageScaler(1/θ) → HalfThresholdIFNode (threshold 1, soft reset, v0 = 1/2) →
  ChannelVoltageScaler(θ)``.
* ``textbook`` — data-based max normalisation (Diehl et al. 2015, Rueckauer et al. 2017),
  IF with soft reset and initial voltage θ/2: ``RateCodingRecipe(mode="max")`` with the
  whole calibration set in ONE batch (so the scale is the true max of the layer over the
  1000 images) and ``neuron_factory`` giving a ``HalfThresholdIFNode``.  Not a SpikingJelly
  preset; it is assembled here from SpikingJelly's parts.

Max pooling (mnist-8 only: ReLU → MaxPool2d): ``sj-max``, ``sj-99.9%`` and ``textbook`` keep
``nn.MaxPool2d`` after the neurons, as a max over the (scaled) spikes of each step, i.e. an
OR of the spikes in the window — not rate-preserving, and not a neuron.  ``sj-ltb`` calibrates
after the pooling and moves ``nn.MaxPool2d`` BEFORE the neuron: each step it takes the max of
the analog input currents of the window, then one neuron fires for the pooled unit.  Neither
is a spiking operation a neuromorphic chip runs as neurons; average pooling (the project's CNN)
stays a plain ``nn.AvgPool2d`` on spikes, which is a linear synapse.

Setup (a separate venv, so that the project's venv stays torch-free)::

    python3 -m venv sjvenv
    sjvenv/bin/pip install torch==2.13.0
    echo torch==2.13.0 > /tmp/c.txt
    sjvenv/bin/pip install -c /tmp/c.txt spikingjelly==2.0.0 onnx onnxruntime numpy

Run (from the repository root)::

    sjvenv/bin/python benchmarks/converters.py --data ../shared/data \\
        [--models mlp,cnn,mnist-8] [--timesteps 1,2,3,4,8,16] [--samples 2000] \\
        [--converters sj-max,sj-99.9%,sj-ltb,textbook] [--json out.json]

Prints one markdown table per model: accuracy (%) and agreement with the ANN's class (%) of
each converter at each T, and the spikes per image at the largest T.
"""

from __future__ import annotations

import argparse
import copy
import json
import pathlib
import time
from importlib import metadata

import numpy as np
import onnx
import onnxruntime
import torch
from onnx import numpy_helper
from spikingjelly.activation_based import ann2snn, functional, neuron
from torch import nn

ROOT = pathlib.Path(__file__).resolve().parent.parent
MODELS = {"mlp": ROOT / "examples" / "mnist_mlp.onnx", "cnn": ROOT / "examples" / "mnist_cnn.onnx",
          "mnist-8": pathlib.Path("models") / "mnist-8.onnx"}


def load_mnist(data: pathlib.Path, samples: int, calib: int):
    test = np.load(data / "mnist" / "mnist_test.npz")
    split = np.load(data / "mnist" / "mnist_test_split.npz")
    x = test["x"].astype(np.float32)[:, None] / 255.0
    held = split["heldout_idx"][:samples]
    return (torch.from_numpy(x[held]), torch.from_numpy(test["y"][held].astype(np.int64)),
            torch.from_numpy(x[split["train_idx"][:calib]]))


# --- the ANNs, rebuilt from the ONNX initializers ------------------------------------------

def _linear(w: np.ndarray, b: np.ndarray) -> nn.Linear:
    """A Linear with weight w [out, in] and bias b."""
    layer = nn.Linear(w.shape[1], w.shape[0])
    layer.weight.data = torch.tensor(w, dtype=torch.float32)
    layer.bias.data = torch.tensor(b, dtype=torch.float32).reshape(-1)
    return layer


def _conv(w: np.ndarray, b: np.ndarray, padding: int) -> nn.Conv2d:
    layer = nn.Conv2d(w.shape[1], w.shape[0], w.shape[2:], padding=padding)
    layer.weight.data = torch.tensor(w, dtype=torch.float32)
    layer.bias.data = torch.tensor(b, dtype=torch.float32).reshape(-1)
    return layer


def build_ann(name: str, path: pathlib.Path) -> nn.Sequential:
    """The torch twin of one of the three ONNX models (their exact layer lists; see the ONNX)."""
    p = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(path)).graph.initializer}
    if name == "mlp":    # Flatten, (Gemm transB=1, Relu) x2, Gemm
        net = [nn.Flatten(), _linear(p["1.weight"], p["1.bias"]), nn.ReLU(),
               _linear(p["3.weight"], p["3.bias"]), nn.ReLU(), _linear(p["5.weight"], p["5.bias"])]
    elif name == "cnn":  # (Conv 5x5 valid, Relu, AveragePool 2x2) x2, Flatten, Gemm
        net = [_conv(p["0.weight"], p["0.bias"], 0), nn.ReLU(), nn.AvgPool2d(2),
               _conv(p["3.weight"], p["3.bias"], 0), nn.ReLU(), nn.AvgPool2d(2),
               nn.Flatten(), _linear(p["7.weight"], p["7.bias"])]
    elif name == "mnist-8":  # Conv SAME + Add, Relu, MaxPool 2; Conv SAME + Add, Relu, MaxPool 3; MatMul + Add
        net = [_conv(p["Parameter5"], p["Parameter6"], 2), nn.ReLU(), nn.MaxPool2d(2),
               _conv(p["Parameter87"], p["Parameter88"], 2), nn.ReLU(), nn.MaxPool2d(3),
               nn.Flatten(), _linear(p["Parameter193"].reshape(256, 10).T, p["Parameter194"])]
    else:
        raise ValueError(f"unknown model {name!r}")
    return nn.Sequential(*net).eval()


def check_against_onnx(ann: nn.Module, path: pathlib.Path, x: torch.Tensor) -> float:
    """Max |torch − onnxruntime| over the logits of x (one image a call: mnist-8 has batch 1)."""
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    feed = session.get_inputs()[0].name
    with torch.no_grad():
        mine = ann(x).numpy()
    theirs = np.concatenate([session.run(None, {feed: xi[None].numpy()})[0] for xi in x])
    return float(np.abs(mine - theirs.reshape(mine.shape)).max())


# --- the converters --------------------------------------------------------------------------

def sj_rate_coding(ann: nn.Module, x_cal: torch.Tensor, batch: int, mode: str) -> nn.Module:
    """SpikingJelly's classic converter: layer-wise scale (max or percentile), IF v0 = 0."""
    recipe = ann2snn.RateCodingRecipe(dataloader=list(x_cal.split(batch)), mode=mode)
    return ann2snn.Converter(recipe, device="cpu").convert(copy.deepcopy(ann))


def sj_threshold_balancing(ann: nn.Module, x_cal: torch.Tensor, batch: int) -> nn.Module:
    """SpikingJelly's local threshold balancing: channel-wise thresholds, IF v0 = θ/2."""
    recipe = ann2snn.LocalThresholdBalancingRecipe(dataloader=list(x_cal.split(batch)))
    return ann2snn.Converter(recipe, device="cpu").convert(copy.deepcopy(ann))


def textbook(ann: nn.Module, x_cal: torch.Tensor, batch: int) -> nn.Module:
    """Data-based max normalisation over the whole calibration set, IF soft reset, v0 = θ/2."""
    del batch  # one batch on purpose: the scale is then the true max, not a running average
    recipe = ann2snn.RateCodingRecipe(dataloader=[x_cal], mode="max",
                                      neuron_factory=lambda scale: neuron.HalfThresholdIFNode())
    return ann2snn.Converter(recipe, device="cpu").convert(copy.deepcopy(ann))


CONVERTERS = {
    "sj-max": lambda ann, x_cal, batch: sj_rate_coding(ann, x_cal, batch, "max"),
    "sj-99.9%": lambda ann, x_cal, batch: sj_rate_coding(ann, x_cal, batch, "99.9%"),
    "sj-ltb": sj_threshold_balancing,
    "textbook": textbook,
}


# --- simulation ------------------------------------------------------------------------------

def simulate(snn: nn.Module, x: torch.Tensor, steps: int, batch: int = 500):
    """Classes after each of 1..steps steps ([steps, N]) and spikes per image over all steps."""
    snn.eval()
    spikes = torch.zeros(())
    nodes = [m for m in snn.modules() if isinstance(m, neuron.BaseNode)]
    def count(_module, _inputs, out):
        spikes.add_(out.sum())
    hooks = [m.register_forward_hook(count) for m in nodes]
    classes = []
    with torch.no_grad():
        for xb in x.split(batch):
            functional.reset_net(snn)
            total, per_step = 0, []
            for _ in range(steps):
                total = total + snn(xb)           # constant current: the same image every step
                per_step.append(total.argmax(1))
            classes.append(torch.stack(per_step))
    for h in hooks:
        h.remove()
    return torch.cat(classes, 1), float(spikes) / len(x)


def evaluate(name: str, path: pathlib.Path, x, y, x_cal, timesteps, converters, calib_batch):
    ann = build_ann(name, path)
    diff = check_against_onnx(ann, path, x[:16])
    with torch.no_grad():
        ann_class = ann(x).argmax(1)
    report = {"model": name, "samples": len(x), "onnx_max_abs_diff": diff,
              "ann_accuracy": float((ann_class == y).float().mean()), "converters": {}}
    for conv in converters:
        start = time.perf_counter()
        snn = CONVERTERS[conv](ann, x_cal, calib_batch)
        classes, spikes = simulate(snn, x, max(timesteps))
        report["converters"][conv] = {
            "seconds": time.perf_counter() - start, f"spikes_per_image_T{max(timesteps)}": spikes,
            "rows": [{"timesteps": t, "accuracy": float((classes[t - 1] == y).float().mean()),
                      "agreement": float((classes[t - 1] == ann_class).float().mean())}
                     for t in timesteps]}
    return report


def print_table(r, timesteps) -> None:
    print(f"\n### {r['model']}: ANN {100 * r['ann_accuracy']:.2f} % on {r['samples']} heldout images "
          f"(torch vs onnxruntime max |diff| {r['onnx_max_abs_diff']:.1e})\n")
    convs = list(r["converters"])
    print("| T | " + " | ".join(f"{c} acc | {c} agree" for c in convs) + " |")
    print("|---:|" + "---:|" * (2 * len(convs)))
    for i, t in enumerate(timesteps):
        cells = [f"{100 * r['converters'][c]['rows'][i][k]:.2f}" for c in convs for k in ("accuracy", "agreement")]
        print(f"| {t} | " + " | ".join(cells) + " |")
    key = f"spikes_per_image_T{max(timesteps)}"
    print("\nspikes/image over T = %d: " % max(timesteps)
          + ", ".join(f"{c} {r['converters'][c][key]:.0f}" for c in convs), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--samples", type=int, default=2000)
    ap.add_argument("--calib", type=int, default=1000)
    ap.add_argument("--calib-batch", type=int, default=100)
    ap.add_argument("--timesteps", default="1,2,3,4,8,16")
    ap.add_argument("--models", default="mlp,cnn,mnist-8")
    ap.add_argument("--converters", default=",".join(CONVERTERS))
    ap.add_argument("--json", type=pathlib.Path, help="write every report here")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x, y, x_cal = load_mnist(args.data, args.samples, args.calib)
    timesteps = [int(t) for t in args.timesteps.split(",")]
    reports = {}
    for name in args.models.split(","):
        path = MODELS[name] if MODELS[name].is_absolute() else args.data / MODELS[name]
        reports[name] = evaluate(name, path, x, y, x_cal, timesteps, args.converters.split(","),
                                 args.calib_batch)
        print_table(reports[name], timesteps)
    if args.json:
        reports["versions"] = {"torch": torch.__version__,
                               "spikingjelly": metadata.version("spikingjelly")}
        args.json.write_text(json.dumps(reports, indent=2) + "\n")


if __name__ == "__main__":
    main()

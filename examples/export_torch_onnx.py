"""Export vision models from PyTorch to ONNX, as users do, as test data for nmc's ONNX frontend.

Writes ``tests/data/onnx-torch/``: for each model (torchvision's ResNet-18, MobileNet-v2 and
VGG-11 at reduced widths, LeNet-like CNNs, an MLP; random weights from a fixed seed) one
``<model>.inputs.npz`` (``x``: the input samples, float32) and, for each exporter configuration,
``<model>-<config>.onnx`` with ``<model>-<config>.npz`` (``y``: onnxruntime's outputs on ``x``).
Configurations: the dynamo exporter (``torch.onnx.export(..., dynamo=True)``, torch's default)
at opsets 18, 19 and 20, at opset 18 with a symbolic batch axis for some models, and the
TorchScript (legacy) exporter at opset 17.  ``manifest.json`` lists every file, the versions
used, the largest difference between onnxruntime and torch, and the exports torch itself
refused.  The files are committed, so nmc's tests (``tests/test_onnx_torch.py``) never need
torch; weights are stored in the ``.onnx`` files themselves (no external data).

Needs torch and torchvision, which collide with nmc's pins; they go in their own venv (on
x86_64; on aarch64 use ``torch==2.9.1 torchvision==0.24.1``, see
/work/.library/env/machines/python.md)::

    python3.11 -m venv /work/venv-torchvision
    /work/venv-torchvision/bin/pip install torch==2.14.1 torchvision==0.29.1 onnx onnxscript onnxruntime
    /work/venv-torchvision/bin/python examples/export_torch_onnx.py [--out tests/data/onnx-torch]

Then, in nmc's own environment, ``python examples/export_torch_onnx.py --table docs/onnx-torch.md``
imports every file with nmc, compares nmc's ANN reference semantics with the recorded
onnxruntime outputs and writes the table of docs/onnx-torch.md (that mode needs no torch).
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import pathlib
import warnings

import numpy as np

HERE = pathlib.Path(__file__).resolve().parent
DATA = HERE.parent / "tests" / "data" / "onnx-torch"
SEED = 0
SAMPLES = 2
CONFIGS = [("dynamo", 18, False), ("dynamo", 19, False), ("dynamo", 20, False), ("legacy", 17, False)]
"""(exporter, opset, symbolic batch axis?) of every model's exports."""
WITH_DYNAMIC_BATCH = CONFIGS + [("dynamo", 18, True)]


# ------------------------------------------------------------------------------ the models


def build_models():
    """name → (module in eval mode, per-sample input shape, description, export configurations, samples)."""
    import torch
    import torchvision
    from torch import nn
    from torchvision.models.resnet import BasicBlock, ResNet
    from torchvision.models.vgg import VGG, make_layers

    class NarrowResNet18(ResNet):
        """torchvision's ResNet-18 (BasicBlock, [2, 2, 2, 2]) with stage widths w, 2w, 4w, 8w
        instead of 64…512: ResNet.__init__ with the widths as parameters; forward is ResNet's."""

        def __init__(self, width: int, num_classes: int):
            nn.Module.__init__(self)
            self._norm_layer, self.dilation, self.groups, self.base_width = nn.BatchNorm2d, 1, 1, 64
            self.inplanes = width
            self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
            self.bn1, self.relu = nn.BatchNorm2d(width), nn.ReLU(inplace=True)
            self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
            self.layer1 = self._make_layer(BasicBlock, width, 2)
            self.layer2 = self._make_layer(BasicBlock, 2 * width, 2, stride=2)
            self.layer3 = self._make_layer(BasicBlock, 4 * width, 2, stride=2)
            self.layer4 = self._make_layer(BasicBlock, 8 * width, 2, stride=2)
            self.avgpool = nn.AdaptiveAvgPool2d((1, 1))
            self.fc = nn.Linear(8 * width, num_classes)

    class NarrowVGG11(VGG):
        """torchvision's VGG-11 (configuration "A", make_layers) with every width divided by 16
        and a classifier of the same form (Linear-ReLU-Dropout ×2, Linear) 32·7·7 → 32 → 32 → 10;
        VGG's AdaptiveAvgPool2d((7, 7)) and forward."""

        def __init__(self, num_classes: int):
            nn.Module.__init__(self)
            self.features = make_layers([4, "M", 8, "M", 16, 16, "M", 32, 32, "M", 32, 32, "M"])
            self.avgpool = nn.AdaptiveAvgPool2d((7, 7))
            self.classifier = nn.Sequential(nn.Linear(32 * 7 * 7, 32), nn.ReLU(True), nn.Dropout(),
                                            nn.Linear(32, 32), nn.ReLU(True), nn.Dropout(), nn.Linear(32, 10))

    class LeNetGAP(nn.Module):
        """LeNet-like: conv-BN-ReLU, max pool, conv-ReLU, global (adaptive) average pool, linear."""

        def __init__(self):
            super().__init__()
            self.features = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.BatchNorm2d(6), nn.ReLU(),
                                          nn.MaxPool2d(2), nn.Conv2d(6, 16, 5), nn.ReLU(),
                                          nn.AdaptiveAvgPool2d(1))
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            return self.fc(torch.flatten(self.features(x), 1))

    class LeNet5(nn.Module):
        """LeNet-5: tanh, average pooling, three linear layers; a log-softmax read-out."""

        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Conv2d(1, 6, 5, padding=2), nn.Tanh(), nn.AvgPool2d(2),
                                     nn.Conv2d(6, 16, 5), nn.Tanh(), nn.AvgPool2d(2), nn.Flatten(),
                                     nn.Linear(400, 120), nn.Tanh(), nn.Linear(120, 84), nn.Tanh(),
                                     nn.Linear(84, 10), nn.LogSoftmax(dim=1))

        def forward(self, x):
            return self.net(x)

    class CNNMix(nn.Module):
        """Odd sizes and window options: ReLU6, ceil-mode max pool, grouped conv, padded average
        pool without the padding in the count, adaptive average pool 2×2, ``x.mean((2, 3))``."""

        def __init__(self):
            super().__init__()
            self.a = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.BatchNorm2d(8), nn.ReLU6(),
                                   nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                                   nn.Conv2d(8, 16, 3, padding=1, groups=2), nn.ReLU(),
                                   nn.AvgPool2d(3, stride=2, padding=1, count_include_pad=False))
            self.b = nn.Sequential(nn.AdaptiveAvgPool2d(2), nn.Conv2d(16, 16, 1), nn.ReLU())
            self.fc = nn.Linear(16, 10)

        def forward(self, x):
            return self.fc(self.b(self.a(x)).mean(dim=(2, 3)))

    class MLP(nn.Module):
        def __init__(self):
            super().__init__()
            self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Dropout(0.2),
                                     nn.Linear(32, 16), nn.Sigmoid(), nn.Linear(16, 10))

        def forward(self, x):
            return torch.softmax(self.net(x), dim=-1)

    torch.manual_seed(SEED)
    models = {
        "mlp": (MLP(), (1, 8, 8), "MLP 64-32-16-10 (Flatten, ReLU, Dropout, Sigmoid, softmax)",
                WITH_DYNAMIC_BATCH, SAMPLES),
        "lenet-gap": (LeNetGAP(), (1, 28, 28), "LeNet-like CNN, BatchNorm, max pool, AdaptiveAvgPool2d(1)",
                      WITH_DYNAMIC_BATCH, SAMPLES),
        "lenet5": (LeNet5(), (1, 28, 28), "LeNet-5 (tanh, AvgPool2d, LogSoftmax)", CONFIGS, SAMPLES),
        "cnn-mix": (CNNMix(), (3, 15, 15), "CNN: BatchNorm, ReLU6, ceil-mode MaxPool, groups=2, AvgPool2d(count_include_pad=False), "
                    "AdaptiveAvgPool2d(2), x.mean((2, 3))", CONFIGS, SAMPLES),
        "resnet18": (NarrowResNet18(4, 10), (3, 64, 64), "torchvision ResNet-18, stage widths 4-8-16-32",
                     WITH_DYNAMIC_BATCH, SAMPLES),
        "mobilenet-v2": (torchvision.models.mobilenet_v2(width_mult=0.1, round_nearest=4, num_classes=10),
                         (3, 64, 64), "torchvision mobilenet_v2(width_mult=0.1, round_nearest=4)", CONFIGS, SAMPLES),
        "vgg11": (NarrowVGG11(10), (3, 224, 224), "torchvision VGG-11 (cfg A), widths / 16, classifier 1568-32-32-10",
                  CONFIGS, 1),
        "vgg11-32px": (NarrowVGG11(10), (3, 32, 32), "VGG-11 as above (other weights) at 32×32: AdaptiveAvgPool2d((7, 7)) "
                       "upsamples 1×1 to 7×7", [CONFIGS[0], CONFIGS[3]], SAMPLES),
    }
    for m, *_ in models.values():
        m.eval()
        with torch.no_grad():  # random BatchNorm statistics, so folding them is exercised
            for mod in m.modules():
                if isinstance(mod, nn.BatchNorm2d):
                    mod.running_mean.uniform_(-0.5, 0.5)
                    mod.running_var.uniform_(0.5, 2.0)
                    mod.weight.uniform_(0.5, 1.5)
                    mod.bias.uniform_(-0.2, 0.2)
    return models


# ---------------------------------------------------------------------------------- export


def export_one(module, x, path: pathlib.Path, exporter: str, opset: int, dynamic: bool) -> None:
    import torch

    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if exporter == "dynamo":
            shapes = {"x": {0: torch.export.Dim("batch")}} if dynamic else None
            torch.onnx.export(module, (x,), str(path), dynamo=True, opset_version=opset, external_data=False,
                              input_names=["x"], dynamic_shapes=shapes)
        else:
            axes = {"x": {0: "batch"}} if dynamic else None
            torch.onnx.export(module, (x,), str(path), dynamo=False, opset_version=opset, input_names=["x"],
                              output_names=["y"], dynamic_axes=axes)


def export_all(out: pathlib.Path) -> None:
    import onnx
    import onnxruntime as ort
    import onnxscript
    import torch
    import torchvision

    out.mkdir(parents=True, exist_ok=True)
    manifest = {"seed": SEED, "versions": {"torch": torch.__version__, "torchvision": torchvision.__version__,
                                           "onnx": onnx.__version__, "onnxscript": onnxscript.__version__,
                                           "onnxruntime": ort.__version__},
                "models": {}, "exports": []}
    rng = np.random.default_rng(SEED)
    for name, (module, shape, what, configs, samples) in build_models().items():
        x = rng.standard_normal((samples, *shape)).astype(np.float32)
        np.savez(out / f"{name}.inputs.npz", x=x)
        with torch.no_grad():
            ref = module(torch.from_numpy(x)).numpy()
        manifest["models"][name] = {"description": what, "input": list(shape), "parameters":
                                    sum(p.numel() for p in module.parameters())}
        for exporter, opset, dynamic in configs:
            stem = f"{name}-{exporter}{opset}" + ("-dynbatch" if dynamic else "")
            path = out / f"{stem}.onnx"
            row = {"model": name, "exporter": exporter, "opset": opset, "dynamic_batch": dynamic, "file": path.name}
            feed = x if dynamic else x[:1]
            try:
                export_one(module, torch.from_numpy(feed), path, exporter, opset, dynamic)
            except Exception as err:  # noqa: BLE001 - torch raises many kinds; recorded as a row
                path.unlink(missing_ok=True)
                row.update(file=None, export_error=f"{type(err).__name__}: {str(err).splitlines()[0][:300]}")
                manifest["exports"].append(row)
                print(f"{stem}: torch refused: {row['export_error']}")
                continue
            sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
            iname = sess.get_inputs()[0].name
            if dynamic:
                y = sess.run(None, {iname: x})[0]
            else:  # a fixed batch of 1: one sample at a time
                y = np.concatenate([sess.run(None, {iname: x[i:i + 1]})[0] for i in range(len(x))])
            np.savez(out / f"{stem}.npz", y=y)
            model = onnx.load(str(path))
            row.update(bytes=path.stat().st_size, ops=sorted({n.op_type for n in model.graph.node}),
                       ort_vs_torch=float(np.max(np.abs(y - ref))))
            manifest["exports"].append(row)
            print(f"{stem}: {row['bytes']} bytes, |ort - torch| = {row['ort_vs_torch']:.2e}, ops {row['ops']}")
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")


# ----------------------------------------------------------------------- nmc's side: the table


def check_with_nmc(data: pathlib.Path, row: dict):
    """Import one exported file with nmc and run its ANN semantics on the recorded inputs:
    (graph, outputs, max |nmc - onnxruntime|), or raises the NmcError nmc gave."""
    from nmc.frontends import load
    from nmc.semantics import run_ann

    graph = load(str(data / row["file"]))
    x = np.load(data / f"{row['model']}.inputs.npz")["x"]
    y = np.load(data / row["file"].replace(".onnx", ".npz"))["y"]
    got = run_ann(graph, [x]).outputs[0]
    return graph, got, float(np.max(np.abs(got.astype(np.float64) - y)))


def write_table(data: pathlib.Path, doc: pathlib.Path) -> None:
    from nmc.diagnostics import NmcError

    manifest = json.loads((data / "manifest.json").read_text())
    v = manifest["versions"]
    lines = [
        "| model | exporter | opset | batch | ONNX ops (besides Conv, Gemm, Relu, Add) | nmc imports? | max \\|nmc − onnxruntime\\| |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in manifest["exports"]:
        batch = "symbolic" if row["dynamic_batch"] else "1"
        if row["file"] is None:
            result, diff, ops = f"torch refused to export: `{row['export_error'][:120]}`", "–", "–"
        else:
            ops = ", ".join(o for o in row["ops"] if o not in ("Conv", "Gemm", "Relu", "Add")) or "–"
            try:
                _, _, d = check_with_nmc(data, row)
                result, diff = "yes", f"{d:.1e}"
            except NmcError as err:
                first = err.render().splitlines()[0]
                result, diff = f"refused: `{first.split('error: ', 1)[-1]}` at {err.loc.node!r}", "–"
        lines.append(f"| {row['model']} | {row['exporter']} | {row['opset']} | {batch} | {ops} | {result} | {diff} |")
    models = "\n".join(f"| {k} | {m['description']} | {'×'.join(map(str, m['input']))} | {m['parameters']} |"
                       for k, m in manifest["models"].items())
    text = TEMPLATE.format(versions=", ".join(f"{k} {val}" for k, val in v.items()), seed=manifest["seed"],
                           models=models, table="\n".join(lines))
    doc.write_text(text)
    print(text)


TEMPLATE = """# ONNX from PyTorch: what the exporters write, and what nmc reads

Generated by `python examples/export_torch_onnx.py --table docs/onnx-torch.md` (nmc's
environment) from the files in `tests/data/onnx-torch/`, which the same script exported (its
docstring says how to make that environment) with:
{versions}.
Weights are random (seed {seed}); every file holds its weights. `tests/test_onnx_torch.py`
checks every row, and compiles `lenet-gap` and `resnet18` from the dynamo exporter with `nmc
compile --target cpu --convert encoding=current` and runs them with `nmc run` (slow tier).
`mobilenet-v2` imports, but `convert-to-spiking` refuses its linear bottlenecks (a convolution
fed by a convolution with no ReLU between them), naming the node.

The models (torchvision's classes at reduced widths, so that the files stay small; the
structure and the operators are the full models'):

| model | what | input (per sample) | parameters |
|---|---|---|---|
{models}

Exports: the dynamo exporter (`torch.onnx.export(..., dynamo=True)`, torch's default) at
opsets 18, 19 and 20 with a batch of 1, at opset 18 with a symbolic batch axis
(`dynamic_shapes`) for some models, and the TorchScript exporter (`dynamo=False`) at opset 17.
The last column is the largest absolute difference between nmc's ANN reference semantics
(`nmc.semantics.run_ann`, float32) and onnxruntime on the recorded random inputs (two samples;
one for VGG-11 at 224×224).

{table}

What the dynamo exporter writes that the TorchScript exporter does not: `ReduceMean` with its
axes as an input (opset 18+) for every adaptive or global average pool to 1×1 and for
`x.mean(...)` (TorchScript writes `GlobalAveragePool`, or `ReduceMean` with an `axes`
attribute); `Reshape` with `allowzero=1` and a constant target (`[1, n]`, or `[-1, n]` with a
symbolic batch axis) instead of `Flatten`. Both fold BatchNormalization into the convolution
before it. nmc maps `ReduceMean` over spatial axes to `ann.global_avgpool` (all of them) or
`ann.avgpool` (some), over the channel or feature axis to a convolution or dense layer with
weights 1/n, and drops a `keepdims=0` axis with `ann.reshape`; a mean over the batch axis is
refused. Before this, nmc refused every dynamo export with a global or adaptive pool
(`node 'node_mean' (ReduceMean): error: unsupported operator`, issue 21). VGG-11 at 32×32 needs its `AdaptiveAvgPool2d((7, 7))` to upsample 1×1 to 7×7, which
the dynamo exporter writes as `GatherND` of a transposed tensor: nmc names that node and refuses
it (the TorchScript exporter refuses the model itself).
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=pathlib.Path, default=DATA, help="where the files go (export mode)")
    ap.add_argument("--table", type=pathlib.Path, help="write the nmc results table here (nmc's environment)")
    args = ap.parse_args()
    if args.table:
        write_table(args.out, args.table)
    else:
        export_all(args.out)


if __name__ == "__main__":
    main()

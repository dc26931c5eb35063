"""Train the project's MNIST example models and export them to ONNX.

Trains on the 8000 ``train_idx`` images of ``mnist_test_split.npz`` only (the 2000
``heldout_idx`` images measure the models; see benchmarks/conversion.py) and writes

- ``examples/mnist_mlp.onnx``: 784-256-128-10 ReLU MLP,
- ``examples/mnist_cnn.onnx``: conv 5×5×16, avgpool 2, conv 5×5×32, avgpool 2, dense 10,

plain layers, as a user trains them, exported with the TorchScript exporter (dynamic batch
dimension).  Inputs are pixel/255.  :func:`mlp` also builds the MLP with
:class:`ClipFloorShift` activations, the conversion-aware training that
benchmarks/conversion_seeds.py measures against the plain one.  Needs PyTorch (``pip install
torch==2.13.0``), which nothing else in nmc needs; the exported models are committed so that
the tests and benchmarks never need torch.  The output is byte-identical from run to run on one
machine, not across machines (torch's CPU kernels differ): the committed models score 97.70 and
98.15 % on ``heldout_idx``; a rerun on 2026-11-29 gave 97.65 and 98.30 %.

    python examples/train_mnist.py --data ../shared/data/mnist [--epochs 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
from torch import nn

HERE = pathlib.Path(__file__).parent


class ClipFloorShift(nn.Module):
    """The QCFS activation of Bu et al. 2022, ``λ · clip(⌊x·L/λ + 1/2⌋, 0, L) / L``, with a
    trainable threshold ``λ``: training sees the ``L + 1`` levels an IF neuron with ``v0 = θ/2``
    can show in ``L`` steps (the floor's gradient taken as 1).  Evaluated and exported, it is
    ``clip(x, 0, λ)`` (:func:`exportable`), which nmc converts to IF neurons of threshold ``λ``."""

    def __init__(self, levels: int, threshold: float = 4.0):
        super().__init__()
        self.levels = levels
        self.threshold = nn.Parameter(torch.tensor(threshold))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            return torch.minimum(torch.relu(x), self.threshold)
        y = torch.clamp(x / self.threshold, 0, 1) * self.levels + 0.5
        y = y + (torch.floor(y) - y).detach()
        return y * self.threshold / self.levels


def exportable(model: nn.Sequential) -> nn.Sequential:
    """``model`` with every :class:`ClipFloorShift` replaced by the clip it evaluates to (ONNX ``Clip``)."""
    return nn.Sequential(*[nn.Hardtanh(0.0, float(m.threshold)) if isinstance(m, ClipFloorShift) else m
                           for m in model])


def mlp(activation=nn.ReLU) -> nn.Sequential:
    """784-256-128-10; ``activation()`` makes each hidden layer's activation."""
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 256), activation(), nn.Linear(256, 128), activation(),
                         nn.Linear(128, 10))


def models() -> dict[str, nn.Module]:
    return {
        "mnist_mlp": mlp(),
        "mnist_cnn": nn.Sequential(nn.Conv2d(1, 16, 5), nn.ReLU(), nn.AvgPool2d(2),
                                   nn.Conv2d(16, 32, 5), nn.ReLU(), nn.AvgPool2d(2),
                                   nn.Flatten(), nn.Linear(32 * 4 * 4, 10)),
    }


def load_split(data: pathlib.Path):
    test = np.load(data / "mnist_test.npz")
    split = np.load(data / "mnist_test_split.npz")
    x = test["x"].astype(np.float32)[:, None] / 255.0
    y = test["y"].astype(np.int64)
    return (x[split["train_idx"]], y[split["train_idx"]]), (x[split["heldout_idx"]], y[split["heldout_idx"]])


def train(model: nn.Module, x: np.ndarray, y: np.ndarray, epochs: int, seed: int) -> None:
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, epochs)
    xt, yt = torch.from_numpy(x), torch.from_numpy(y)
    for _ in range(epochs):
        model.train()
        for idx in torch.randperm(len(xt), generator=gen).split(64):
            # small random shifts: 8000 images are few, augmentation is what keeps them honest
            dx, dy = torch.randint(-2, 3, (2,), generator=gen).tolist()
            batch = torch.roll(xt[idx], shifts=(dy, dx), dims=(2, 3))
            opt.zero_grad()
            nn.functional.cross_entropy(model(batch), yt[idx]).backward()
            opt.step()
        sched.step()


def accuracy(model: nn.Module, x: np.ndarray, y: np.ndarray) -> float:
    model.eval()
    with torch.no_grad():
        return float((model(torch.from_numpy(x)).argmax(1).numpy() == y).mean())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=HERE.parent.parent / "shared" / "data" / "mnist")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=pathlib.Path, default=HERE)
    args = ap.parse_args()
    torch.manual_seed(args.seed)
    torch.use_deterministic_algorithms(True)
    (xtr, ytr), (xte, yte) = load_split(args.data)
    for name, model in models().items():
        train(model, xtr, ytr, args.epochs, args.seed)
        print(f"{name}: train {100 * accuracy(model, xtr, ytr):.2f} %, heldout {100 * accuracy(model, xte, yte):.2f} %")
        path = args.out / f"{name}.onnx"
        export(model, xte[:1], path)
        print(f"wrote {path}")


def export(model: nn.Sequential, example: np.ndarray, path: pathlib.Path) -> None:
    torch.onnx.export(exportable(model).eval(), torch.from_numpy(example), str(path), input_names=["image"],
                      output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                      opset_version=13, dynamo=False)


if __name__ == "__main__":
    main()

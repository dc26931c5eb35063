"""Train the project's MNIST example models and export them to ONNX.

Trains on the 8000 ``train_idx`` images of ``mnist_test_split.npz`` only (the 2000
``heldout_idx`` images measure the models; see benchmarks/conversion.py) and writes

- ``examples/mnist_mlp.onnx``: 784-256-128-10 ReLU MLP,
- ``examples/mnist_cnn.onnx``: conv 5×5×16, avgpool 2, conv 5×5×32, avgpool 2, dense 10,

plain layers, as a user trains them, exported with the
TorchScript exporter (dynamic batch dimension).  Inputs are pixel/255.  Needs PyTorch
(``pip install torch==2.13.0``), which nothing else in nmc needs; the exported models are
committed so that the tests and benchmarks never need torch.

    python examples/train_mnist.py --data ../shared/data/mnist [--epochs 30] [--seed 0]
"""

from __future__ import annotations

import argparse
import pathlib

import numpy as np
import torch
from torch import nn

HERE = pathlib.Path(__file__).parent


def models() -> dict[str, nn.Module]:
    return {
        "mnist_mlp": nn.Sequential(nn.Flatten(), nn.Linear(784, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(),
                                   nn.Linear(128, 10)),
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
        torch.onnx.export(model.eval(), torch.from_numpy(xte[:1]), str(path), input_names=["image"],
                          output_names=["logits"], dynamic_axes={"image": {0: "batch"}, "logits": {0: "batch"}},
                          opset_version=13, dynamo=False)
        print(f"wrote {path}")


if __name__ == "__main__":
    main()

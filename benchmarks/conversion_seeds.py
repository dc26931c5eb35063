"""How much of the conversion gap is the trained model: the MNIST MLP over training seeds.

On 2000 test images one image is 0.05 points, so a gap of 0.1–0.2 points between an ANN and
its SNN cannot tell a conversion method from the luck of one trained model.  This trains the
project's MLP (``examples/train_mnist.py``: same data, schedule and augmentation) once per
seed, converts each with nmc's default pipeline exactly as ``benchmarks/conversion.py`` does
(the mesh chip's default burst neurons unless ``--convert``/``--bursts`` say otherwise;
8-bit integer SNN in the ``mesh`` chip's formats, 2000 ``heldout_idx`` images, calibration on
1000 ``train_idx`` images) and prints, per T, the mean over seeds of the ANN's and the integer
SNN's accuracy, of their gap (with its standard error, its smallest and largest value), of the
agreement, and of the gap of the ANN seen through a rate code of T steps (``ANN@T``, every
spiking layer's activations rounded to T + 1 levels: :func:`nmc.evaluation.rate_code_classes`).

Variants (``--variants``): ``relu``, the plain MLP (seed 0 is trained as the committed
``examples/mnist_mlp.onnx`` was, but torch's CPU kernels are not bit-identical across machines,
so its weights may differ); ``qcfsL``, the same MLP trained with ``ClipFloorShift``
activations of ``L`` levels (Bu et al. 2022), exported with ``clip(x, 0, λ)``, which nmc
converts to IF neurons of threshold ``λ``.  Needs PyTorch, so it runs from the environment of
``benchmarks/converters.py`` (see its docstring; nmc installed there with ``pip install -e .``)::

    sjvenv/bin/python benchmarks/conversion_seeds.py --data ../shared/data \\
        [--seeds 7] [--variants relu,qcfs16,qcfs8] [--timesteps 1,2,3,4,8,16] [--encodings current,rate]
        [--models-dir DIR] [--normalize OPTS] [--convert OPTS] [--bursts 1,2,4,8] [--peers]

``--models-dir``: keep the trained models there (``{variant}_{seed}.onnx``) and reuse those
already there.  ``--peers``: also convert every model with SpikingJelly's converters
(``benchmarks/converters.py``, same images and calibration) and print the mean of the best
converter's accuracy at each T, and of nmc's margin over it (± s.e.).  ``--normalize``: more
options of the per-T normalize; ``--convert``: more options of convert-to-spiking (``burst=B``).
``--bursts``: convert every model once per burst ``B`` listed (``--convert``'s options with
``burst=B``; the converters run once per model) and close with the ``B × T`` table: the mean
over seeds of int SNN − ANN and of nmc − best converter (± s.e.), and each ``B``'s paired
difference from the ``B`` before it in the list (per seed, then mean ± s.e.).
"""

from __future__ import annotations

import argparse
import pathlib
import sys
import tempfile

import numpy as np
import torch

import nmc
from nmc.evaluation import evaluate
from nmc.passmanager import merge_options
from nmc.targets.chip import load_chip

ROOT = pathlib.Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "examples"), str(ROOT / "benchmarks")]
import converters  # noqa: E402
import train_mnist  # noqa: E402
from conversion import load_mnist  # noqa: E402


def trained_mlp(variant: str, seed: int, train: tuple, epochs: int) -> torch.nn.Sequential:
    """The MLP of ``variant``, initialised and trained as examples/train_mnist.py does for ``seed``
    on ``train`` (images, labels)."""
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    if variant == "relu":
        model = train_mnist.models()["mnist_mlp"]
    elif variant.startswith("qcfs") and variant[4:].isdigit():
        model = train_mnist.mlp(lambda: train_mnist.ClipFloorShift(int(variant[4:])))
    else:
        raise SystemExit(f"unknown variant {variant!r} (relu or qcfsL, e.g. qcfs16)")
    train_mnist.train(model, *train, epochs, seed)
    return model


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--seeds", type=int, default=7, help="seeds 0 … N−1")
    ap.add_argument("--variants", default="relu,qcfs16,qcfs8")
    ap.add_argument("--timesteps", default="1,2,3,4,8,16")
    ap.add_argument("--encodings", default="current,rate")
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--models-dir", type=pathlib.Path)
    ap.add_argument("--normalize", default="")
    ap.add_argument("--convert", default="", help="more options of convert-to-spiking, e.g. burst=4")
    ap.add_argument("--bursts", default="", help="convert with each of these burst B, e.g. 1,2,4,8")
    ap.add_argument("--peers", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    x, y, x_cal = load_mnist(args.data, 2000, 1000)
    train, _ = train_mnist.load_split(args.data / "mnist")
    timesteps = [int(t) for t in args.timesteps.split(",")]
    encodings = args.encodings.split(",")
    chip = load_chip("mesh")
    bursts = [int(b) for b in args.bursts.split(",")] if args.bursts else [0]  # 0: --convert as given
    with tempfile.TemporaryDirectory() as tmp:
        folder = args.models_dir or pathlib.Path(tmp)
        for variant in args.variants.split(","):
            # per (encoding, B) and seed: ANN, then int SNN, agreement, ANN@T by T
            rows = {(enc, b): [] for enc in encodings for b in bursts}
            best = []  # per seed: the best converter's accuracy by T
            for seed in range(args.seeds):
                path = folder / f"{variant}_{seed}.onnx"
                if not path.exists():
                    train_mnist.export(trained_mlp(variant, seed, train, args.epochs), x[:1], path)
                graph = nmc.load(str(path))
                if args.peers:
                    peer = converters.evaluate("mlp", path, *(torch.from_numpy(a) for a in (x, y, x_cal)), timesteps,
                                               list(converters.CONVERTERS), 100)
                    best.append([max(c["rows"][i]["accuracy"] for c in peer["converters"].values())
                                 for i in range(len(timesteps))])
                for enc in encodings:
                    for b in bursts:
                        convert = merge_options(args.convert, f"burst={b}") if b else args.convert
                        r = evaluate(graph, x, y, x_cal, chip, timesteps, encoding=enc,
                                     normalize_options=args.normalize, convert_options=convert)
                        rows[enc, b].append((r["ann_accuracy"], *([row[key] for row in r["snn"]] for key in (
                            "int_accuracy", "int_agreement", "rate_code_accuracy"))))
                        print(f"  {variant} seed {seed} {enc}{f' B={b}' if b else ''}: ANN {100 * r['ann_accuracy']:.2f}, "
                              "int SNN − ANN " + " ".join(f"{100 * (row['int_accuracy'] - r['ann_accuracy']):+.2f}"
                                                          for row in r["snn"]), file=sys.stderr, flush=True)
            for enc in encodings:
                for b in bursts:
                    print_summary(variant + (f", B = {b}" if b else ""), enc, rows[enc, b], timesteps, best)
                if len(bursts) > 1:
                    print_bursts(variant, enc, {b: rows[enc, b] for b in bursts}, timesteps, best)


def mean_se(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over seeds (axis 0) and its standard error."""
    n = len(d)
    return d.mean(axis=0), (d.std(axis=0, ddof=1) / np.sqrt(n) if n > 1 else np.full(d.shape[1:], np.nan))


def print_bursts(variant: str, encoding: str, rows: dict, timesteps: list[int], best: list) -> None:
    """The ``B × T`` table of ``--bursts``: per B and T, the mean over seeds of int SNN − ANN and
    of nmc − best converter, and the paired difference from the B before it (points ± s.e.)."""
    print(f"\n{variant}, {encoding} input, B × T (points, mean ± s.e. over {len(next(iter(rows.values())))} seeds)")
    print("     B     T   int−ANN ± s.e.   nmc−best ± s.e.   B − previous B ± s.e.")
    none = (np.full(len(timesteps), np.nan),) * 2
    previous = None
    for b, rs in rows.items():
        snn = 100 * np.array([r[1] for r in rs])
        gm, gse = mean_se(snn - 100 * np.array([r[0] for r in rs])[:, None])
        bm, bse = mean_se(snn - 100 * np.array(best)) if best else none
        dm, dse = mean_se(snn - previous) if previous is not None else none
        for i, t in enumerate(timesteps):
            print(f"{b:6d}  {t:4d}   {gm[i]:+6.2f} ± {gse[i]:4.2f}   {bm[i]:+6.2f} ± {bse[i]:4.2f}    "
                  f"{dm[i]:+6.2f} ± {dse[i]:4.2f}", flush=True)
        previous = snn


def print_summary(variant: str, encoding: str, rows: list, timesteps: list[int], best: list) -> None:
    ann = 100 * np.array([r[0] for r in rows])
    snn = 100 * np.array([r[1] for r in rows])
    agree = 100 * np.array([r[2] for r in rows])
    coded = 100 * np.array([r[3] for r in rows]) - ann[:, None]
    gap = snn - ann[:, None]
    n = len(rows)
    print(f"\n{variant}, {encoding} input, {n} seeds: ANN {ann.mean():.2f} % (seeds {ann.min():.2f}…{ann.max():.2f})")
    print("     T   int SNN   int−ANN ± s.e.   min    max   agreement   ANN@T−ANN ± s.e.")
    for i, t in enumerate(timesteps):
        se, coded_se = (d[:, i].std(ddof=1) / np.sqrt(n) if n > 1 else float("nan") for d in (gap, coded))
        print(f"{t:6d}  {snn[:, i].mean():7.2f}  {gap[:, i].mean():+7.2f} ± {se:4.2f}  {gap[:, i].min():+5.2f}  "
              f"{gap[:, i].max():+5.2f}  {agree[:, i].mean():8.2f}   {coded[:, i].mean():+7.2f} ± {coded_se:4.2f}",
              flush=True)
    if best:
        peer = 100 * np.array(best)
        (pm, pse), (mm, mse) = mean_se(peer), mean_se(snn - peer)
        print("     T   best converter ± s.e.   nmc − best ± s.e.   seeds where nmc ≥ best")
        for i, t in enumerate(timesteps):
            print(f"{t:6d}   {pm[i]:7.2f} ± {pse[i]:4.2f}      {mm[i]:+7.2f} ± {mse[i]:4.2f}      "
                  f"{int(np.sum(snn[:, i] >= peer[:, i]))}/{len(peer)}", flush=True)


if __name__ == "__main__":
    main()

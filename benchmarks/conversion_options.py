"""Which conversion options gain at few steps: normalize's options, measured on models it never saw.

For each model and each variant of the per-T ``normalize`` pass, calibrates on the first 1000
``train_idx`` MNIST images and scores on the 2000 ``heldout_idx`` images the network as a rate
code of T steps sees it (``ANN@T``, :func:`nmc.evaluation.rate_code_classes`: every spiking
layer's activation, and the rate-coded input, rounded as IF neurons with v0 = θ/2 round them).
At T = 1 this is the float SNN itself, class for class; at larger T the float SNN follows it
within a few tenths of a point (benchmarks/conversion.py prints both).  It costs a tenth of a
spiking run, which is what makes seven models × five variants × six T affordable.

Variants: ``before`` (the pass before issue 25: each layer's λ fitted on its own clean
activations, among their 90th…100th percentiles), ``wide`` (that fit with the 50th…100th
percentiles at T ≤ 2), ``default`` (the pass's defaults: layer after layer on the inputs the
rate-coded layers before deliver, 50th…100th percentiles at T ≤ 2), ``channelwise=true``,
``offsets=true``, and both.  Prints every model's accuracies and, per variant, the mean
difference from ``before`` over the models (± standard error), by T.  Choose on the MLP seeds
(``--models-dir`` of benchmarks/conversion_seeds.py), confirm on the CNN and mnist-8.

    python benchmarks/conversion_options.py --data ../shared/data --models DIR/relu_0.onnx,...
        [--timesteps 1,2,3,4,8,16] [--encoding rate]
"""

from __future__ import annotations

import argparse
import pathlib
import sys

import numpy as np

import nmc
import nmc.passes.normalize as normalize_pass
from nmc.evaluation import rate_code_classes
from nmc.passmanager import PassContext, PassManager

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parent))
from conversion import MODELS, ROOT, load_mnist  # noqa: E402

VARIANTS = {"before": "", "wide": "", "default": "", "channelwise": "channelwise=true", "offsets": "offsets=true",
            "channelwise+offsets": "channelwise=true,offsets=true",
            "bias": "reconstruct=bias", "weights": "reconstruct=weights", "weights1000": "reconstruct=weights,samples=1000"}


def independent_fit(graph, x, measured, timesteps, **_options):
    """normalize's fit before issue 25: every layer's λ from its own clean activations."""
    clean = normalize_pass.semantics.run_ann(graph, [x], keep=True).values
    positive = {}
    for op in measured:
        a = np.minimum(clean[op.result], normalize_pass.clip_bound(graph, op) or np.inf).reshape(-1)
        positive[op] = a[a > 0][:: -(-max(1, np.sum(a > 0)) // 200_000)]
    return {op: fit_scale(positive[op], timesteps) for op in measured}, {}, {}


def fit_scale(positive: np.ndarray, T: int) -> float:
    """rate_coded_scale with the candidates of ``search_low(T)``."""
    if positive.size == 0:
        return 1.0
    lams = np.unique(np.percentile(positive, np.linspace(normalize_pass.search_low(T), 100.0, 101)))
    errors = [np.sum((positive - normalize_pass.rate_code(positive, lam, 0.0, T)) ** 2) for lam in lams]
    return float(lams[int(np.argmin(errors))])


def coded_accuracy(graph, ctx, x, y, T: int, encoding: str, options: str) -> float:
    opts = ",".join(o for o in (f"timesteps={T}", f"encoding={encoding}", options) if o)
    normed = PassManager(f"normalize{{{opts}}}", ctx).run(graph.clone())
    snn = PassManager(f"convert-to-spiking{{timesteps={T},encoding={encoding}}}", ctx).run(normed.clone())
    return 100 * float(np.mean(rate_code_classes(normed, snn, x, T) == y))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--data", type=pathlib.Path, default=ROOT.parent / "shared" / "data")
    ap.add_argument("--models", required=True, help="ONNX paths, or names of benchmarks/conversion.py's models")
    ap.add_argument("--timesteps", default="1,2,3,4,8,16")
    ap.add_argument("--encoding", default="rate")
    ap.add_argument("--variants", default=",".join(VARIANTS))
    args = ap.parse_args()
    x, y, x_cal = load_mnist(args.data, 2000, 1000)
    ctx = PassContext(calibration=x_cal)
    timesteps = [int(t) for t in args.timesteps.split(",")]
    variants = args.variants.split(",")
    low, fit = normalize_pass.search_low, normalize_pass.fit_layers
    table = {v: [] for v in variants}
    for model in args.models.split(","):
        path = MODELS[model][0] if model in MODELS else pathlib.Path(model)
        path = path if path.is_absolute() else args.data / path
        calibrated = PassManager("canonicalize,calibrate", ctx).run(nmc.load(str(path)))
        for v in variants:
            normalize_pass.search_low = (lambda T: 90.0) if v == "before" else low
            normalize_pass.fit_layers = independent_fit if v in ("before", "wide") else fit
            accs = [coded_accuracy(calibrated, ctx, x, y, T, args.encoding, VARIANTS[v]) for T in timesteps]
            table[v].append(accs)
            print(f"{path.name:16s} {v:20s} " + " ".join(f"{a:6.2f}" for a in accs), flush=True)
    normalize_pass.search_low, normalize_pass.fit_layers = low, fit
    base = np.array(table[variants[0]])
    print(f"\nANN@T, {args.encoding} input: mean difference from {variants[0]!r} over {len(base)} models (± s.e.)")
    print("variant              " + " ".join(f"{'T = ' + str(t):>13s}" for t in timesteps))
    for v in variants:
        d = np.array(table[v]) - base
        se = d.std(axis=0, ddof=1) / np.sqrt(len(d)) if len(d) > 1 else np.zeros(len(timesteps))
        print(f"{v:20s} " + " ".join(f"{m:+6.2f} ± {s:4.2f}" for m, s in zip(d.mean(axis=0), se)))


if __name__ == "__main__":
    main()

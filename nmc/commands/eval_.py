"""Compare a model's accuracy as an ANN, as a float SNN and as an integer SNN for a target.

The ANN is canonicalised, calibrated (on --calib, else on the evaluation inputs: calibration
uses no labels), normalised, then converted for each T and quantised for the target; all runs
use the reference semantics.  Agreement: the fraction of samples whose class equals the ANN's.

examples:
  nmc eval model.nmir --data digits_test.npz --target mesh --timesteps 8,16,32
  nmc eval model.onnx --data test.npz --calib train.npz --target mesh --report eval.json
"""

from __future__ import annotations

import json

import numpy as np

from nmc import semantics
from nmc.data import load_inputs
from nmc.diagnostics import NmcError, UsageError
from nmc.fileio import atomic_write
from nmc.frontends import load
from nmc.passmanager import PassContext, PassManager
from nmc.targets.chip import load_chip

NAME = "eval"
HELP = "ANN vs float SNN vs integer SNN accuracy"


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a model file (.onnx, .nir, .nmd, .nmir) holding an ANN")
    p.add_argument("--data", required=True, metavar="DATA.npz", help="inputs x and integer labels y")
    p.add_argument("--target", default="mesh", metavar="CHIP", help="chip name or .toml path; 'cpu' skips quantisation")
    p.add_argument("--timesteps", default="32", metavar="N[,N...]", help="presentation steps, comma-separated (default 32)")
    p.add_argument("--calib", metavar="DATA.npz", help="calibration inputs (default: the evaluation inputs)")
    p.add_argument("--percentile", type=float, default=99.9, help="normalisation percentile (default 99.9)")
    p.add_argument("--weight-bits", type=int, default=8, help="weight bits for quantize (default 8)")
    p.add_argument("--report", metavar="R.json", help="a JSON report (DESIGN §7 keys)")


def parse_timesteps(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--timesteps expects integers separated by commas, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--timesteps needs values >= 1, got '{text}'")
    return values


def _classes(graph, x):
    if semantics.is_spiking(graph):
        r = semantics.run_snn(graph, [x])
        return semantics.classify(r.outputs[0], r.voltages[0]), r
    return semantics.classify(semantics.run_ann(graph, [x]).outputs[0]), None


def evaluate(graph, x, y, x_cal, chip, timesteps: list[int], percentile: float, weight_bits: int) -> dict:
    """The report of DESIGN §7 for ``nmc eval`` (``chip`` None: no integer SNN)."""
    if semantics.is_spiking(graph):
        raise NmcError("nmc eval needs an ANN model; this graph is already spiking",
                       hint="use nmc run --timesteps N to run a spiking graph")
    ctx = PassContext(calibration=x_cal, target=chip)
    base = PassManager(f"canonicalize,calibrate{{percentile={percentile}}},normalize{{percentile={percentile}}}",
                       ctx).run(graph.clone())
    ann_pred, _ = _classes(base, x)
    report = {"ann_accuracy": float(np.mean(ann_pred == y)), "samples": int(len(x)), "snn": []}
    for T in timesteps:
        snn = PassManager(f"convert-to-spiking{{timesteps={T}}}", ctx).run(base.clone())
        pred, run = _classes(snn, x)
        row = {"timesteps": T, "latency_steps": run.steps, "float_accuracy": float(np.mean(pred == y)),
               "float_agreement": float(np.mean(pred == ann_pred)), "int_accuracy": None, "int_agreement": None,
               "spikes_per_sample": run.spike_count / len(x), "synaptic_ops_per_sample": run.synaptic_ops / len(x)}
        if chip is not None:
            quant = PassManager(f"quantize{{weight-bits={weight_bits}}}", ctx).run(snn)
            ipred, irun = _classes(quant, x)
            row.update(int_accuracy=float(np.mean(ipred == y)), int_agreement=float(np.mean(ipred == ann_pred)),
                       spikes_per_sample=irun.spike_count / len(x), synaptic_ops_per_sample=irun.synaptic_ops / len(x))
        report["snn"].append(row)
    return report


def run(args) -> int:
    timesteps = parse_timesteps(args.timesteps)
    x, y = load_inputs(args.data)
    if y is None:
        raise NmcError(f"{args.data} has no labels 'y'", hint="nmc eval needs DATA.npz with x and y")
    x_cal = load_inputs(args.calib)[0] if args.calib else x
    chip = None if args.target == "cpu" else load_chip(args.target)
    report = evaluate(load(args.model), x, y, x_cal, chip, timesteps, args.percentile, args.weight_bits)
    if args.report:
        atomic_write(args.report, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    pct = lambda v: "   -  " if v is None else f"{100 * v:6.2f}"  # noqa: E731
    print(f"ANN accuracy {100 * report['ann_accuracy']:.2f} % ({report['samples']} samples"
          + ("; calibrated on the evaluation inputs)" if not args.calib else ")"))
    print("     T  steps   float    int  agree(int)  spikes/sample  synops/sample")
    for r in report["snn"]:
        print(f"{r['timesteps']:6d} {r['latency_steps']:6d}  {pct(r['float_accuracy'])} {pct(r['int_accuracy'])}"
              f"      {pct(r['int_agreement'])}  {r['spikes_per_sample']:13.1f}  {r['synaptic_ops_per_sample']:13.1f}")
    return 0

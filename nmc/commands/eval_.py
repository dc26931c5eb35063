"""Compare a model's accuracy as an ANN, as a float SNN and as an integer SNN for a target.

The ANN is canonicalised, calibrated (on --calib, else on the evaluation inputs: calibration
uses no labels), normalised, then converted for each T (as nmc compile converts for the
target: max pooling by a tournament of IF neurons for a chip) and quantised for the target;
the SNNs run on the fastest executor available (--backend to choose).  Agreement: the fraction of
samples whose class equals the ANN's.  ANN@T: the ANN with every activation that becomes spiking
neurons rounded to the T + 1 levels a rate code of T steps has, the nearest a spike count comes
to each activation (so ANN - ANN@T is roughly what the code's resolution costs, ANN@T - SNN
what the spiking network adds; a reference, not a bound).  --per-layer shows where accuracy goes: for each layer,
how closely firing rates follow the ANN's activations, how many activations normalisation
clips, and the quantisation error and saturation of its weights.

examples:
  nmc eval model.nmir --data digits_test.npz --target mesh --timesteps 8,16,32
  nmc eval model.onnx --data test.npz --calib train.npz --target mesh --report eval.json
  nmc eval model.onnx --data test.npz --timesteps 4,8,16,32,64 --plot acc.png --per-layer
  nmc eval model.onnx --data test.npz --calib train.npz --cluster auto --report eval.json
"""

from __future__ import annotations

import json
import os

from nmc.commands.cluster_option import add_cluster_option
from nmc.diagnostics import NmcError, UsageError
from nmc.fileio import atomic_write
from nmc.outputs import check_outputs
from nmc.plotting import pyplot, save_png
from nmc.targets import DEFAULT_CHIP


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a model file (.onnx, .nir, .nmd, .nmir) holding an ANN")
    p.add_argument("--data", required=True, metavar="DATA.npz", help="inputs x and integer labels y")
    p.add_argument("--target", default=DEFAULT_CHIP, metavar="CHIP",
                   help=f"chip name or .toml path (default {DEFAULT_CHIP}); 'cpu' skips quantisation")
    p.add_argument("--timesteps", default="32", metavar="N[,N...]", help="presentation steps, comma-separated (default 32)")
    p.add_argument("--calib", metavar="DATA.npz", help="calibration inputs (default: the evaluation inputs)")
    p.add_argument("--percentile", type=float, default=99.9, help="normalisation percentile (default 99.9)")
    p.add_argument("--thresholds", default="calibrated", choices=("percentile", "calibrated"),
                   help="layer scales: the percentile, or chosen per T to best fit the activations as rates")
    p.add_argument("--weight-bits", type=int, default=8, help="weight bits for quantize (default 8)")
    p.add_argument("--encoding", default="rate", choices=("rate", "poisson", "current"),
                   help="how the input is presented (default rate: binary spikes)")
    p.add_argument("--convert", default="", metavar="OPTS",
                   help="more convert-to-spiking options, e.g. 'v0=0,reset=zero,bias-correction=false' "
                        "('burst=1': binary spikes on a chip whose default is burst neurons)")
    p.add_argument("--backend", choices=("reference", "cpu"), help="executor (default: the fastest available)")
    p.add_argument("--no-cache", action="store_true",
                   help="the cpu backend compiles afresh, neither reading nor writing its object cache (NMC_CACHE_DIR)")
    p.add_argument("--per-layer", action="store_true", help="attribute the accuracy loss to layers")
    p.add_argument("--plot", metavar="ACC.png", help="draw accuracy against time steps")
    p.add_argument("--report", metavar="R.json", help="a JSON report (docs/design.md §7 keys)")
    p.add_argument("--html", metavar="R.html", help="the report as one HTML page: accuracy against T, per-layer losses")
    add_cluster_option(p)


def parse_timesteps(text: str) -> list[int]:
    try:
        values = [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--timesteps expects integers separated by commas, got '{text}'") from None
    if not values or any(v < 1 for v in values):
        raise UsageError(f"--timesteps needs values >= 1, got '{text}'")
    return values


def _pct(v) -> str:
    return "   -  " if v is None else f"{100 * v:6.2f}"


def _num(v, fmt: str) -> str:
    return "-" if v is None else format(v, fmt)


def print_row(r: dict) -> None:
    print(f"{r['timesteps']:6d} {r['latency_steps']:6d}  {_pct(r['rate_code_accuracy'])}  {_pct(r['float_accuracy'])} "
          f"{_pct(r['int_accuracy'])}"
          f"      {_pct(r['int_agreement'])}  {r['spikes_per_sample']:13.1f}  {r['synaptic_ops_per_sample']:13.1f}",
          flush=True)


def print_layers(r: dict) -> None:
    for key, what in (("layers", "float"), ("int_layers", "integer")):
        if key not in r:
            continue
        print(f"  T={r['timesteps']} {what} SNN, per layer:")
        print("    layer                 neurons  corr   rel.err  clipped  rate    q.err   saturated")
        for L in r[key]:
            print(f"    {L['layer'][:20]:20s} {L['neurons']:8d}  {_num(L['correlation'], '.3f'):5s}  "
                  f"{_num(L['relative_error'], '.3f'):7s}  {_pct(L['clipped'])}%  {L['rate']:.3f}  "
                  f"{_num(L['quant_error'], '.4f'):6s}  {_num(L['saturated'], 'd')}")


def plot(report: dict, path: str) -> None:
    """Accuracy against time steps (ANN as a line), written atomically as PNG."""
    plt = pyplot()
    rows = report["snn"]
    ts = [r["timesteps"] for r in rows]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.axhline(100 * report["ann_accuracy"], color="k", linestyle="--", label="ANN")
    ax.plot(ts, [100 * r["rate_code_accuracy"] for r in rows], ":", color="0.5", label="ANN, T + 1 levels")
    ax.plot(ts, [100 * r["float_accuracy"] for r in rows], "o-", label="float SNN")
    if any(r["int_accuracy"] is not None for r in rows):
        ax.plot(ts, [100 * r["int_accuracy"] for r in rows], "s-", label="integer SNN")
    ax.set_xscale("log", base=2)
    ax.set_xticks(ts, [str(t) for t in ts])
    ax.set_xlabel("time steps T")
    ax.set_ylabel("accuracy (%)")
    ax.set_title(f"{report['samples']} samples, {report['encoding']} input")
    ax.grid(alpha=0.3)
    ax.legend()
    save_png(fig, path)


def run(args) -> int:
    from nmc.data import load_inputs
    from nmc.evaluation import evaluate
    from nmc.frontends import load
    from nmc.targets.chip import load_chip

    if args.no_cache:
        os.environ["NMC_NO_CACHE"] = "1"  # read by the CPU runtime's JIT (nmc.targets.cpu.jit)
    timesteps = parse_timesteps(args.timesteps)
    check_outputs([args.model, args.data, args.calib, args.target],
                  [("--report", args.report), ("--html", args.html), ("--plot", args.plot)])
    x, y = load_inputs(args.data)
    if y is None:
        raise NmcError(f"{args.data} has no labels 'y'", hint="nmc eval needs DATA.npz with x and y")
    x_cal = load_inputs(args.calib)[0] if args.calib else x
    chip = None if args.target == "cpu" else load_chip(args.target)
    graph = load(args.model)
    from nmc.limits import check_calibration

    check_calibration(graph, len(x_cal))  # the passes' memory, estimated before they run (issue 22)
    printed = []

    def on_row(r):
        if not printed:  # the header only once the pipeline has been accepted
            print("     T  steps   ANN@T   float    int  agree(int)  spikes/sample  synops/sample")
        printed.append(r)
        print_row(r)
        if args.per_layer:
            print_layers(r)

    options = dict(percentile=args.percentile, thresholds=args.thresholds, weight_bits=args.weight_bits,
                   encoding=args.encoding, convert_options=args.convert, backend=args.backend,
                   per_layer=args.per_layer, on_row=on_row)
    if args.cluster:
        from nmc.cluster import Cluster

        with Cluster(args.cluster) as cluster:
            report = evaluate(graph, x, y, x_cal, chip, timesteps, predict=cluster.predict, **options)
        print(cluster.summary())
    else:
        report = evaluate(graph, x, y, x_cal, chip, timesteps, **options)
    print(f"ANN accuracy {100 * report['ann_accuracy']:.2f} % ({report['samples']} samples, "
          f"{report['encoding']} input, {args.thresholds} thresholds{', ' + args.convert if args.convert else ''}, backend {report['backend']}"
          + ("; calibrated on the evaluation inputs)" if not args.calib else ")"))
    for note in report.get("notes", []):
        print(f"note: {note}")
    if args.report:
        atomic_write(args.report, (json.dumps(report, indent=2, sort_keys=True) + "\n").encode())
    if args.html:
        from nmc.report_html import render_eval

        atomic_write(args.html, render_eval(report).encode())
    if args.plot:
        plot(report, args.plot)
    return 0

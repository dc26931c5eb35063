"""Compile a model into an image (.nmb) for a chip, or for the CPU runtime.

The default pipeline depends on the target's class, the opt level and whether the model is
already spiking; --print-pipeline shows it, and --pipeline replaces it.  An ANN needs
calibration inputs (--calib; labels are not used).  Same inputs, same image bytes.

examples:
  nmc compile model.onnx --target mesh --calib train.npz -o model.nmb --report compile.json
  nmc compile examples/digits_mlp.nmir --target cpu --calib examples/digits_calib.npz -o digits.nmb
  nmc compile net.nir --target mesh-tiny --print-pipeline
  nmc compile model.onnx --target mesh --calib train.npz --convert fuse-pooling=false --quantize weight-bits=6 -o m.nmb
  nmc compile model.nmir --target my_chip.toml -O3 --time-passes --calib data.npz -o out.nmb
"""

from __future__ import annotations

import json

from nmc.commands.nir_options import add_nir_options, nir_options
from nmc.diagnostics import UsageError
from nmc.outputs import check_outputs, write_all


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a model file (.onnx, .nir, .nmd, .nmir)")
    p.add_argument("--target", required=True, metavar="T", help="'cpu', a shipped chip (nmc targets) or a chip .toml path")
    p.add_argument("-O", dest="opt_level", type=int, default=2, choices=range(4), metavar="{0,1,2,3}",
                   help="optimisation level (default 2)")
    p.add_argument("--calib", metavar="DATA.npz", help="calibration inputs x (required for ANN models)")
    p.add_argument("--timesteps", type=int, metavar="N", help="presentation steps (default 32, or the spiking model's own)")
    p.add_argument("--pipeline", metavar="P", help="run this pipeline instead of the default")
    p.add_argument("--convert", metavar="KEY=VALUE,...", default="",
                   help="options of convert-to-spiking in the default pipeline (e.g. fuse-pooling=false,v0=0; "
                        "burst=1: binary spikes on a chip whose default is burst neurons)")
    p.add_argument("--quantize", metavar="KEY=VALUE,...", default="",
                   help="options of quantize in the default pipeline (e.g. weight-bits=6)")
    p.add_argument("--board", choices=("auto",), help="auto: the smallest board of the target's chips that fits")
    p.add_argument("--seed", type=int, default=0, help="seed of placement and other randomised passes (default 0)")
    add_nir_options(p)
    p.add_argument("--print-pipeline", action="store_true", help="print the pipeline and stop")
    p.add_argument("--time-passes", action="store_true", help="print a table of time per pass")
    p.add_argument("--pass-statistics", action="store_true", help="print each pass's statistics")
    p.add_argument("--remarks", action="store_true",
                   help="print the passes' remarks (per-layer cores against their lower bound, quantisation error, ...)")
    p.add_argument("-o", "--output", metavar="OUT.nmb", help="the image to write")
    p.add_argument("--report", metavar="R.json", help="a JSON report (docs/design.md §7 keys)")
    p.add_argument("--html", metavar="R.html", help="the report as one self-contained HTML page (board, layers, "
                   "passes, advice); with --calib it measures each layer's conversion loss")


def run(args) -> int:
    from nmc.compiler import compile_graph, default_pipeline, report, resolve_target
    from nmc.data import load_inputs
    from nmc.frontends import load
    from nmc.passmanager import Instruments, parse_pipeline
    from nmc.targets.image import encode_image

    if args.timesteps is not None and args.timesteps < 1:
        raise UsageError(f"--timesteps must be at least 1, got {args.timesteps}")
    if not args.print_pipeline and not args.output:
        raise UsageError("nmc compile needs -o OUT.nmb (or --print-pipeline)")
    check_outputs([args.model, args.calib, args.target], [("-o", args.output), ("--report", args.report),
                                                          ("--html", args.html)])
    graph = load(args.model, **nir_options(args))
    target = resolve_target(args.target)
    if args.print_pipeline:
        from nmc.semantics import is_spiking

        T = args.timesteps or (int(graph.meta.get("timesteps", 32)) if is_spiking(graph) else 32)
        if args.pipeline is not None and (args.convert or args.quantize):
            raise UsageError("--convert and --quantize set options of the default pipeline; with --pipeline, "
                             "write the options into it")
        text = args.pipeline if args.pipeline is not None else default_pipeline(
            graph, target, args.opt_level, T, args.seed, args.calib is not None, args.convert, args.quantize)
        parse_pipeline(text)  # unknown passes and options are errors here too
        print(text)
        return 0
    calibration = load_inputs(args.calib)[0] if args.calib else None
    instruments = Instruments(time_passes=args.time_passes, pass_statistics=args.pass_statistics, remarks=args.remarks)
    image = compile_graph(graph, target, calibration=calibration, timesteps=args.timesteps, opt_level=args.opt_level,
                          pipeline=args.pipeline, seed=args.seed, source_path=args.model, instruments=instruments,
                          convert=args.convert, quantize=args.quantize, board=args.board)
    losses = None
    if args.html and calibration is not None:
        from nmc.report_data import LOSS_SAMPLES, conversion_losses

        losses = conversion_losses(graph, image, calibration)
    summary = report(image, losses=losses, loss_samples=min(LOSS_SAMPLES, len(calibration)) if losses else None)
    writes = [(args.output, encode_image(image))]  # the image and its reports: all or nothing (issue 22)
    if args.report:
        writes.append((args.report, (json.dumps(summary, indent=2, sort_keys=True) + "\n").encode()))
    if args.html:
        from nmc.report_html import render

        writes.append((args.html, render(summary).encode()))
    write_all(writes)
    sections = ", ".join(f"{n} {len(b)} B" for n, b in sorted(image.sections.items()))
    print(f"wrote {args.output}: target {image.target}, {sections}")
    for note in image.stats.get("notes", []):
        print(f"note: {note}")
    if summary.get("cores") is not None:
        line = f"cores {summary['cores']} (lower bound {summary['cores_lower_bound']}) on {summary['chips']} chip(s)"
        if summary.get("placement_cost") is not None:
            line += f", placement cost {summary['placement_cost']} (naive {summary['placement_cost_naive']})"
        if summary.get("max_link_load") is not None:
            line += f", busiest link {summary['max_link_load']} spikes/step"
        print(line)
    return 0

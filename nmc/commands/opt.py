"""Run passes over textual IR and print the result.

examples:
  nmc opt model.nmir --passes=canonicalize --time-passes
  nmc opt model.nmir --passes='fold-batchnorm,dce' --print-ir-after=all -o out.nmir
  nmc opt cases.nmir --split-input-file --passes=dce
  nmc opt /tmp/nmc-reproducer-1234.nmir --run-reproducer
"""

from __future__ import annotations

import sys

from nmc.diagnostics import NmcError, UsageError


def add_arguments(p) -> None:
    p.add_argument("input", metavar="IN.nmir", help="textual IR ('-' for standard input)")
    p.add_argument("--passes", default="", metavar="PIPELINE", help="comma-separated passes, e.g. 'fold-batchnorm,dce'")
    p.add_argument("-o", "--output", metavar="OUT.nmir", help="write the IR here (and large blobs to OUT.nmir.npz)")
    p.add_argument("--split-input-file", action="store_true", help="run each '// -----' separated case on its own")
    p.add_argument("--print-ir-before", default="", metavar="NAME|all", help="print the IR before these passes (comma-separated)")
    p.add_argument("--print-ir-after", default="", metavar="NAME|all", help="print the IR after these passes (comma-separated)")
    p.add_argument("--time-passes", action="store_true", help="print a table of time per pass")
    p.add_argument("--pass-statistics", action="store_true", help="print each pass's statistics")
    p.add_argument("--debug-only", default="", metavar="NAMES", help="debug logging of these passes (comma-separated)")
    p.add_argument("--no-verify", action="store_true", help="skip the verifier between passes")
    p.add_argument("--print-debuginfo", action="store_true", help="print op locations")
    p.add_argument("--print-blobs", action="store_true", help="print large blobs inline as base64")
    p.add_argument("--reproducer", metavar="PATH", help="where to write a reproducer if a pass fails")
    p.add_argument("--run-reproducer", action="store_true", help="take the pipeline from the input's reproducer header")
    p.add_argument("--calib", metavar="DATA.npz", help="calibration data for calibrate/normalize (x of a .npz, or a .npy)")
    p.add_argument("--target", metavar="CHIP", help="target chip (shipped name or .toml path) for passes that need one")


def _pass_names(text: str, flag: str) -> set[str]:
    from nmc.passmanager import pass_names

    names = {n for n in text.split(",") if n}
    if not names:
        return names
    unknown = names - set(pass_names()) - {"all"}
    if unknown:
        raise UsageError(f"{flag}: unknown pass {', '.join(sorted(unknown))}",
                         hint="valid passes: " + ", ".join(pass_names()))
    return names


def run(args) -> int:
    from nmc.ir.io import format_ir, read_text, sidecar_loader, write_ir
    from nmc.ir.parser import parse_ir, split_cases
    from nmc.outputs import check_outputs
    from nmc.passmanager import Instruments, PassContext, PassManager, read_reproducer_pipeline

    check_outputs([args.input, args.calib, args.target], [("-o", args.output)])
    filename = "<stdin>" if args.input == "-" else args.input
    text = read_text(args.input)
    sidecar = None if args.input == "-" else sidecar_loader(args.input)
    pipeline = args.passes
    if args.run_reproducer:
        pipeline = read_reproducer_pipeline(text)
        if pipeline is None:
            raise NmcError(f"{filename} has no reproducer header",
                           hint="a reproducer's first line is '// nmc-reproducer: pipeline=...'")
    instruments = Instruments(
        print_ir_before=_pass_names(args.print_ir_before, "--print-ir-before"),
        print_ir_after=_pass_names(args.print_ir_after, "--print-ir-after"),
        time_passes=args.time_passes,
        pass_statistics=args.pass_statistics,
        debug_only=_pass_names(args.debug_only, "--debug-only"),
        reproducer=args.reproducer,
        remarks=True,
    )
    passes = PassManager(pipeline).passes  # parse (and refuse a bad pipeline) before any work
    calibration = None
    if args.calib:
        from nmc.data import load_inputs  # zipfile, pathlib...: only with --calib (start-up time)

        calibration = load_inputs(args.calib)[0]
    target = None
    if args.target:
        from nmc.targets.chip import load_chip

        target = load_chip(args.target)
    cases = split_cases(text) if args.split_input_file else [text]
    done, failures = [], 0
    for case in cases:
        try:
            graph = parse_ir(case, filename, sidecar)
            PassManager(passes, PassContext(verify=not args.no_verify, instruments=instruments,
                                                 calibration=calibration, target=target)).run(graph)
            done.append(graph)
        except NmcError as err:
            if not args.split_input_file:
                raise
            print(err.render(), file=sys.stderr)
            failures += 1
    if args.output:
        write_ir(done, args.output, debuginfo=args.print_debuginfo, print_blobs=args.print_blobs)
    else:
        out, _ = format_ir(done, debuginfo=args.print_debuginfo, print_blobs=args.print_blobs)
        sys.stdout.write(out)
    return 1 if failures else 0

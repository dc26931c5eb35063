"""Read a model (ONNX, NIR, .nmd or .nmir) and write it as textual IR.

examples:
  nmc import model.nmir -o out.nmir
  nmc import model.nmir --print-debuginfo
"""

from __future__ import annotations

import sys

from nmc.commands.nir_options import add_nir_options, nir_options


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a model file (.onnx, .nir, .nmd, .nmir)")
    p.add_argument("-o", "--output", metavar="OUT.nmir", help="write the IR here (default: standard output)")
    add_nir_options(p)
    p.add_argument("--print-debuginfo", action="store_true", help="print op locations")
    p.add_argument("--print-blobs", action="store_true", help="print large blobs inline as base64")


def run(args) -> int:
    from nmc.frontends import load
    from nmc.ir.io import format_ir, write_ir
    from nmc.outputs import check_outputs

    check_outputs([args.model], [("-o", args.output)])
    graph = load(args.model, **nir_options(args))
    if args.output:
        write_ir(graph, args.output, debuginfo=args.print_debuginfo, print_blobs=args.print_blobs)
    else:
        text, _ = format_ir([graph], debuginfo=args.print_debuginfo, print_blobs=args.print_blobs)
        sys.stdout.write(text)
    return 0

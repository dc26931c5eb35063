"""Write a spiking model in an interchange format (NIR).

The model is read as `nmc import` reads it (an .nmir file with an snn graph, a .nir file, or
any model a frontend reads that is already spiking), then written with `nmc.exporters.nir.export_nir`.
What NIR cannot express (subtractive reset, integer populations, rate or Poisson encoders,
v0 != 0) is refused with the op it concerns.  The file is readable by nir 1.0.4 and newer;
``--compat LIB`` writes the parameters as LIB's NIR reader means them (snntorch, norse, sinabs,
rockpool), refuses the nodes it cannot read, and warns where it will run differently.  See
docs/nir.md.

examples:
  nmc export snn.nmir --format nir -o model.nir
  nmc export model.nir --dt 1e-4 --format nir -o copy.nir
  nmc export snn.nmir --format nir --compat sinabs -o for_sinabs.nir
"""

from __future__ import annotations

import sys

from nmc.commands.nir_options import CONVENTIONS

COMPATS = ("snntorch", "norse", "sinabs", "rockpool")  # nmc.exporters.nir.COMPATS

FORMATS = ("nir",)


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a spiking model (.nmir with an snn graph, .nir)")
    p.add_argument("--format", choices=FORMATS, default="nir", help="output format (default nir)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.nir", help="the file to write")
    p.add_argument("--dt", type=float, metavar="SECONDS",
                   help="time step: for reading NIR models, and for graphs whose meta records no dt")
    p.add_argument("--compat", choices=COMPATS, metavar="LIB",
                   help="write for LIB's NIR reader: " + ", ".join(COMPATS))
    p.add_argument("--convention", choices=CONVENTIONS, metavar="LIB",
                   help="read a NIR model as LIB's exporter wrote it (see nmc import --help)")


def run(args) -> int:
    from nmc.exporters.nir import export_nir
    from nmc.frontends import choose_frontend, load

    from nmc.outputs import check_outputs

    check_outputs([args.model], [("-o", args.output)])
    options = {"dt": args.dt, "convention": args.convention} if choose_frontend(args.model).name == "nir" else {}
    graph = load(args.model, **options)
    for warning in export_nir(graph, args.output, dt=args.dt, compat=args.compat):
        sys.stderr.write(f"{args.output}: warning: {warning}\n")
    return 0

"""Write a spiking model in an interchange format (NIR).

The model is read as `nmc import` reads it (an .nmir file with an snn graph, a .nir file, or
any model a frontend reads that is already spiking), then written with `nmc.exporters.nir.export_nir`.
What NIR cannot express (subtractive reset, integer populations, rate or Poisson encoders,
v0 != 0) is refused with the op it concerns.  See docs/nir.md.

examples:
  nmc export snn.nmir --format nir -o model.nir
  nmc export model.nir --dt 1e-4 --format nir -o copy.nir
"""

from __future__ import annotations


FORMATS = ("nir",)


def add_arguments(p) -> None:
    p.add_argument("model", metavar="MODEL", help="a spiking model (.nmir with an snn graph, .nir)")
    p.add_argument("--format", choices=FORMATS, default="nir", help="output format (default nir)")
    p.add_argument("-o", "--output", required=True, metavar="OUT.nir", help="the file to write")
    p.add_argument("--dt", type=float, metavar="SECONDS",
                   help="time step: for reading NIR models, and for graphs whose meta records no dt")


def run(args) -> int:
    from nmc.exporters.nir import export_nir
    from nmc.frontends import choose_frontend, load

    from nmc.outputs import check_outputs

    check_outputs([args.model], [("-o", args.output)])
    options = {"dt": args.dt} if choose_frontend(args.model).name == "nir" else {}
    graph = load(args.model, **options)
    export_nir(graph, args.output, dt=args.dt)
    return 0

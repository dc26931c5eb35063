"""The options every command that reads a model file takes for NIR models (which carry no
time step and no reset mode); :func:`nmc.frontends.load` refuses them for other formats."""

from __future__ import annotations


def add_nir_options(p) -> None:
    p.add_argument("--dt", type=float, metavar="SECONDS", help="time step for NIR models")
    p.add_argument("--reset", choices=("zero", "subtract"),
                   help="reset mode for NIR models (default zero, as NIR defines it)")


def nir_options(args) -> dict:
    """Keyword arguments for :func:`nmc.frontends.load` / :func:`nmc.run`."""
    return {"dt": args.dt, "reset": args.reset}

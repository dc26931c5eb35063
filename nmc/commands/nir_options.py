"""The options every command that reads a model file takes for NIR models (which carry no
time step, no reset mode, and no word on which library's reading of the parameters they
follow); :func:`nmc.frontends.load` refuses them for other formats."""

from __future__ import annotations

CONVENTIONS = ("nir", "snntorch", "norse", "sinabs", "rockpool")  # nmc.frontends.nir.importer.CONVENTIONS


def add_nir_options(p) -> None:
    p.add_argument("--dt", type=float, metavar="SECONDS", help="time step for NIR models")
    p.add_argument("--reset", choices=("zero", "subtract", "subtract_delayed", "zero_delayed"),
                   help="reset mode for NIR models (default zero, as NIR defines it); the _delayed modes reset one "
                        "step after the spike, as snnTorch's neurons do by default (reset_delay=True); with "
                        "--convention snntorch, zero and subtract name snnTorch's reset_mechanism (docs/nir.md)")
    p.add_argument("--convention", choices=CONVENTIONS, metavar="LIB",
                   help="read a NIR model's parameters as LIB's exporter wrote them: snntorch (dt = 1e-4 unless "
                        "--dt), norse (tau = dt/tau_inv, the current jumps by the input), sinabs (tau in steps, "
                        "exact decay), rockpool (exact decays, the current jumps by the input, reset subtract); "
                        "default nir, NIR's equations (docs/nir.md)")


def nir_options(args) -> dict:
    """Keyword arguments for :func:`nmc.frontends.load` / :func:`nmc.run`."""
    return {"dt": args.dt, "reset": args.reset, "convention": args.convention}

"""One module per ``nmc`` subcommand.  Each defines ``NAME``, ``HELP``, a docstring (the
subcommand's ``--help`` description), ``add_arguments(parser)`` and ``run(args) -> int``."""

from nmc.commands import eval_, import_, opt, run

COMMANDS = [import_, opt, run, eval_]

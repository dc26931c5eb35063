"""One module per ``nmc`` subcommand.  Each defines ``NAME``, ``HELP``, a docstring (the
subcommand's ``--help`` description), ``add_arguments(parser)`` and ``run(args) -> int``."""

from nmc.commands import compile, eval_, export, import_, inspect, opt, run, targets

COMMANDS = [import_, opt, compile, run, eval_, inspect, targets, export]

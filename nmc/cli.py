"""The ``nmc`` command: subcommands, diagnostics and exit codes (docs/design.md §7).

Exit status: 0 success; 1 the input is at fault (a diagnostic with its location); 2 the
command line is misused; 70 an internal error (a bug: one line asking for a report, the
traceback only with ``-v``).
"""

from __future__ import annotations

import argparse
import os
import sys

import nmc
from nmc.commands import COMMANDS, command_module

EXIT_INPUT, EXIT_USAGE, EXIT_INTERNAL = 1, 2, 70
REPORT_URL = "https://github.com/nmc-toolchain/nmc/issues"


def build_parser(argv: list[str] | None = None) -> argparse.ArgumentParser:
    """The ``nmc`` parser.  Given the command line, only the chosen subcommand's module is imported
    and its arguments added (``nmc --version`` imports none); every subcommand is listed with
    its one-line help either way."""
    chosen = next((a for a in argv if not a.startswith("-")), None) if argv is not None else None
    parser = argparse.ArgumentParser(
        prog="nmc",
        description="Compile trained neural networks for neuromorphic chips, and run them.",
    )
    parser.add_argument("--version", action="version", version=f"nmc {nmc.__version__}")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-v", "--verbose", action="store_true", help="show tracebacks of internal errors")
    common.add_argument("--max-memory", metavar="BYTES", help="the largest array nmc allocates from an input, "
                        "e.g. 16G (default 4G; also NMC_MAX_MEMORY)")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (_, one_line) in COMMANDS.items():
        if argv is None or chosen == name:
            module = command_module(name)
            p = sub.add_parser(name, help=one_line, description=module.__doc__, parents=[common],
                               formatter_class=argparse.RawDescriptionHelpFormatter)
            module.add_arguments(p)
        else:
            p = sub.add_parser(name, help=one_line, parents=[common])
        p.set_defaults(run=lambda args, name=name: command_module(name).run(args))
    return parser


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    parser = build_parser(argv)
    args = parser.parse_args(argv)  # --version and --help exit here, before dataclasses are imported
    from nmc.diagnostics import NmcError

    if getattr(args, "max_memory", None):
        os.environ["NMC_MAX_MEMORY"] = args.max_memory  # read by nmc.limits (issue 22)
    try:
        return args.run(args) or 0
    except NmcError as err:
        print(err.render(), file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print("nmc: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader of our output went away (`nmc … | head`): stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit
        return 141
    except Exception as err:  # noqa: BLE001 — anything else is a bug in nmc
        passmanager = sys.modules.get("nmc.passmanager")  # a pass failed (not imported: none ran)
        if passmanager is not None and isinstance(err, passmanager.PassFailure):
            return _internal_error(err, args, str(err))
        return _internal_error(err, args, f"{type(err).__name__}: {err}")


def _internal_error(err: BaseException, args, message: str) -> int:
    first = message.splitlines()[0] if message else type(err).__name__
    print(f"nmc: internal error: {first}", file=sys.stderr)
    if getattr(args, "verbose", False):
        import traceback

        traceback.print_exception(err, file=sys.stderr)
    else:
        print(f"  this is a bug in nmc; please report it at {REPORT_URL} "
              "with the command and its input (rerun with -v for the traceback)", file=sys.stderr)
    return EXIT_INTERNAL


def entry() -> None:
    sys.exit(main())

"""The one console command, ``dcmon``: every entry point, above all other layers.

Each module of this package listed in :data:`COMMAND_MODULES` defines ``register(subparsers)``
and parses the arguments of its subcommands and wires the parts (registry, store, collector,
dashboard app, reports); each subcommand sets ``func(args) -> int`` as its default. Nothing
below this package imports it. Errors the user can fix (:class:`DcmonError`) print one clear
message and exit 2; nothing is half-written.
"""
from __future__ import annotations

import argparse
import logging
import sys

from dcmon import __version__
from dcmon.cli import collect, dashboard, data, demo, reports
from dcmon.errors import DcmonError

# in the order `dcmon --help` lists their subcommands
COMMAND_MODULES = (
    data,         # evaluate, import, generate, compact, check, facilities
    collect,      # collect, simulate, quarantine
    demo,         # demo
    dashboard,    # dashboard, users
    reports,      # export, evidence, verify, keys
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dcmon",
        description="Data-centre energy and rack compliance monitor: PUE, standard racks, occupancy, "
                    "compute share and policy checks from live telemetry.")
    parser.add_argument("--version", action="version", version=f"dcmon {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more log output: -v adds the libraries' information lines (HTTP requests, PDF "
                             "rendering), -vv debug output")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for mod in COMMAND_MODULES:
        mod.register(sub)
    return parser


QUIET_LIBRARIES = ("werkzeug", "waitress", "weasyprint", "fontTools")


def setup_logging(verbose: int) -> None:
    """dcmon's own information lines always; the libraries' (werkzeug's request log, WeasyPrint's
    rendering notes) only with -v: by default they would drown the warnings that matter."""
    logging.basicConfig(level=logging.WARNING - 10 * min(verbose, 2),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    if not verbose:
        logging.getLogger("dcmon").setLevel(logging.INFO)
    # These libraries set their own loggers to INFO, which the root level does not override.
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(logging.WARNING if not verbose else logging.WARNING - 10 * min(verbose, 2))


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.verbose)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    try:
        return int(args.func(args) or 0)
    except DcmonError as e:
        print(f"dcmon {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"dcmon {args.command}: interrupted", file=sys.stderr)
        return 130


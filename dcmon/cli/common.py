"""Options and argument handling shared by the subcommands: config and data folders, the period,
the readings of the figures, and opening the store."""
from __future__ import annotations

import os
from pathlib import Path

from dcmon.errors import InputError
from dcmon.periods import from_options


def add_config_data(p, data=True):
    p.add_argument("--config", default=os.environ.get("DCMON_CONFIG", "config"), metavar="DIR",
                   help="configuration folder holding facilities/ (and optionally policies/, users.yaml); "
                        "default $DCMON_CONFIG or ./config")
    if data:
        p.add_argument("--data", default=os.environ.get("DCMON_DATA", "data"), metavar="DIR",
                       help="data folder of the store; default $DCMON_DATA or ./data")


def add_period(p):
    g = p.add_argument_group("period (inclusive calendar days in each facility's time zone)")
    g.add_argument("--quarter", metavar="YYYYQN", help="a calendar quarter, for example 2026Q3")
    g.add_argument("--year", metavar="YYYY", help="a calendar year, for example 2025")
    g.add_argument("--from", dest="date_from", metavar="YYYY-MM-DD", help="first day (with --to)")
    g.add_argument("--to", dest="date_to", metavar="YYYY-MM-DD", help="last day, inclusive (with --from)")


def add_readings(p):
    g = p.add_argument_group("readings (printed with every result)")
    g.add_argument("--rack-basis", choices=["standard", "physical"], default="standard",
                   help="count racks in standard 2.5 kW units (default) or physically")
    g.add_argument("--compute-share", dest="compute_share", default="design_power",
                   choices=["design_power", "rack_count", "it_energy", "compute_storage"],
                   help="reading of the compute-function share (default design_power)")
    g.add_argument("--inventory", choices=["end_of_period", "time_weighted"], default="end_of_period",
                   help="rack inventory as of the end of the period (default) or time-weighted over it")
    g.add_argument("--min-coverage", type=float, default=0.95, metavar="FRACTION",
                   help="data coverage below which a check is inconclusive (default 0.95)")


def period_from_args(args):
    return from_options(quarter_text=args.quarter, year_text=args.year, from_text=args.date_from, to_text=args.date_to)


def options_from_args(args, bins=None):
    from dcmon.metrics.evaluate import Options
    try:
        return Options(rack_basis=args.rack_basis, compute_share_reading=args.compute_share,
                       inventory=args.inventory, min_coverage=args.min_coverage, bins=bins)
    except ValueError as e:
        raise InputError(str(e)) from None


def open_data(args, must_exist=True):
    from dcmon.store import open_store
    data = Path(args.data)
    if must_exist and not (data / "readings").is_dir():
        raise InputError(f"--data {data}: no store there (expected {data}/readings; run dcmon import or dcmon collect first)")
    return open_store(data)

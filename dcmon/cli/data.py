"""Subcommands on the store and the configuration: ``evaluate``, ``import``, ``generate``, ``compact``,
``check`` and ``facilities``."""
from __future__ import annotations

import csv
import sys
import time
from pathlib import Path

import orjson

from dcmon.cli.common import add_config_data, add_period, add_readings, open_data, options_from_args, period_from_args
from dcmon.cli.text import align, format_table
from dcmon.errors import InputError
from dcmon.readings import now_ms
from dcmon.registry import load_registry


def register(sub):
    p = sub.add_parser("evaluate", help="compute PUE, racks, occupancy, compute share and policy checks for a period",
                       description="Evaluate facilities for a period: PUE (ratio of sums), standard racks, occupancy, "
                                   "compute-function share, policy checks and subsidy estimates.")
    add_config_data(p)
    p.add_argument("--facility", action="append", metavar="ID", help="facility id (repeatable; default all)")
    add_period(p)
    p.add_argument("--profile", action="append", metavar="NAME",
                   help="policy profile (repeatable; default: the profiles of each facility's city)")
    add_readings(p)
    p.add_argument("--bins", choices=["day", "month"], help="add a per-day or per-month energy and PUE table")
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="a table for people (default) or JSON with every figure, basis and coverage")
    p.set_defaults(func=cmd_evaluate)

    p = sub.add_parser("import", help="backfill readings from a CSV or Parquet file (idempotent)",
                       description="Import readings from CSV or Parquet (by the .parquet suffix) with columns "
                                   "ts,facility_id,kind,id,energy_kwh,power_kw[,status,function,design_power_kw]. ts is "
                                   "ISO 8601 with an offset or epoch milliseconds (in Parquet also a timestamp with "
                                   "a time zone); kind is meter or rack. Rejected rows go to a rejects file with their "
                                   "line (CSV) or row (Parquet) and reason; the rest is imported. Importing twice "
                                   "changes nothing. Exit status 0 when every row was accepted, 3 when some were "
                                   "rejected.")
    p.add_argument("file", metavar="FILE", help="FILE.csv or FILE.parquet")
    add_config_data(p)
    p.add_argument("--rejects", metavar="PATH", help="where to write rejected rows (default FILE.rejects.csv)")
    p.set_defaults(func=cmd_import)

    p = sub.add_parser("generate", help="write realistic sample readings with known figures (for trying dcmon out)",
                       description="Generate meter readings (and rack readings where IT energy comes from the racks) "
                                   "for the configured facilities over the days --from .. --to, into the store "
                                   "(--data) or into a file for dcmon import (--out FILE.csv or FILE.parquet). Loads "
                                   "follow a daily and weekly cycle, cooling follows the city's weather, and every "
                                   "whole quarter in the range hits the facility's target PUE exactly (sample "
                                   "facilities: dcmon.fixtures.generate.TARGETS; any other facility 1.30). Counters "
                                   "run on through the range. A second, adjacent range starts its counters afresh, so "
                                   "the join would read as a counter jump or reset: generate one range. The same "
                                   "arguments always give the same readings.")
    add_config_data(p)
    g = p.add_argument_group("what to generate")
    g.add_argument("--from", dest="date_from", required=True, metavar="YYYY-MM-DD",
                   help="first day (in each facility's time zone)")
    g.add_argument("--to", dest="date_to", required=True, metavar="YYYY-MM-DD", help="last day, inclusive")
    g.add_argument("--facility", action="append", metavar="ID", help="facility id (repeatable; default all)")
    g.add_argument("--interval", type=int, default=900, metavar="S",
                   help="meter reading interval in seconds, a divisor of 3600 (default 900)")
    g.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--out", metavar="FILE", help="write FILE.csv or FILE.parquet instead of the store")
    p.set_defaults(func=cmd_generate)

    p = sub.add_parser("compact", help="merge small store files into one sorted file per partition",
                       description="Merge the small files the collector writes into one sorted file per store "
                                   "partition. Safe while the collector and readers run; readings do not change.")
    add_config_data(p)
    p.add_argument("--facility", metavar="ID", help="only this facility (default all)")
    p.set_defaults(func=cmd_compact)

    p = sub.add_parser("check", help="find damaged store files (and move them aside with --repair)",
                       description="Read every file of the store in full (every column, page checksums) and list "
                                   "those that cannot be read. With --repair they are moved to <data>/damaged/ with "
                                   "a .reason.txt beside them, so evaluations and the collector carry on without "
                                   "them (their readings are left out: re-import them from the source if you can). "
                                   "The daily rollup files are checked too (checksums); --repair moves a damaged one "
                                   "aside and makes it again from the readings. With a period, each facility's figures "
                                   "from the daily rollups are compared with a scan of every reading and any "
                                   "difference is listed. Exit status 0 when no damaged file is left in the store and "
                                   "no difference was found, 3 otherwise.")
    add_config_data(p)
    p.add_argument("--facility", metavar="ID", help="only this facility's files")
    p.add_argument("--repair", action="store_true", help="move damaged files aside to <data>/damaged/")
    add_period(p)
    p.set_defaults(func=cmd_check)

    p = sub.add_parser("facilities", help="validate the configuration and list facilities",
                       description="Load and validate every facility of the configuration (identity, credit code, "
                                   "meters, racks CSV) and list them with their standard racks and size class. "
                                   "Every error names its file, field or line and value (exit 2).")
    add_config_data(p, data=False)
    p.add_argument("--format", choices=["table", "json"], default="table",
                   help="a table for people (default) or JSON")
    p.set_defaults(func=cmd_facilities)


# ------------------------------------------------------------------- evaluate
def cmd_evaluate(args) -> int:
    from dcmon.metrics.evaluate import evaluate
    registry = load_registry(args.config)
    period = period_from_args(args)
    options = options_from_args(args, bins=args.bins)
    store = open_data(args)
    result = evaluate(registry, store, period, args.facility, args.profile, options)
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(result, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY
                                             | orjson.OPT_NON_STR_KEYS) + b"\n")
    else:
        sys.stdout.write(format_table(result))
    return 0


# --------------------------------------------------------------------- import
def cmd_import(args) -> int:
    from tqdm import tqdm

    from dcmon.collector import importfile
    from dcmon.store import open_store
    path = Path(args.file)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    parquet = importfile.is_parquet(path)
    registry = load_registry(args.config)
    store = open_store(args.data)
    rejects_path = Path(args.rejects) if args.rejects else path.with_name(path.name + ".rejects.csv")
    received = now_ms()
    origin = f"import:{path.name}"
    t0 = time.monotonic()
    rej_fh = None
    rej_writer = None
    try:
        total, unit = importfile.progress_total(path)
        with tqdm(total=total, unit=unit, unit_scale=True, desc=f"import {path.name}", disable=None,
                  file=sys.stderr) as bar:
            records = importfile.read_records(path, bar)
            header = next(records)

            def reject(where, reason, rec):
                nonlocal rej_fh, rej_writer
                if rej_writer is None:
                    rej_fh = open(rejects_path, "w", newline="", encoding="utf-8")
                    rej_writer = csv.writer(rej_fh)
                    rej_writer.writerow(["row" if parquet else "line", "reason", *header])
                rej_writer.writerow([where, reason, *rec])
            totals = importfile.import_records(registry, store, records, reject, received_at_ms=received,
                                               origin=origin)
    finally:
        if rej_fh:
            rej_fh.close()
    dt = time.monotonic() - t0
    msg = (f"{path}: {totals['rows']} rows; {totals['written']} stored, {totals['duplicates']} already stored"
           + (f" ({totals['conflicts']} with different values; the stored values were kept)" if totals["conflicts"] else "")
           + f", {totals['rejected']} rejected" + (f" → {rejects_path}" if totals["rejected"] else "")
           + f" in {dt:.1f} s")
    print(msg)
    return 3 if totals["rejected"] else 0


def _check_each(paths, check, repair, done_text: str) -> int:
    """Check each file, print one line per damaged one (and what ``repair`` did with it); the count."""
    bad = 0
    for path in paths:
        reason = check(path)
        if reason is None:
            continue
        bad += 1
        if repair is None:
            print(f"{path}: {reason}")
        else:
            print(f"{path}: {reason} → moved aside to {repair(path, reason)}{done_text}")
    return bad


def cmd_check(args) -> int:
    store = open_data(args)
    files = store.files(args.facility)
    damaged = _check_each(files, store.check_file, store.move_aside if args.repair else None, "")
    rollups = store.rollup_files(args.facility)
    bad_rollups = _check_each(rollups, store.check_rollup_file,
                              store.repair_rollup_file if args.repair else None,
                              " and made again from the readings")
    earlier = len(store.damaged_files()) - ((damaged + bad_rollups) if args.repair else 0)
    left = 0 if args.repair else damaged + bad_rollups
    print(f"checked {len(files)} file(s) in {store.readings_dir}: {damaged} damaged"
          + (f", moved aside to {store.damaged_dir}" if args.repair and damaged else "")
          + (" (dcmon check --repair moves them aside)" if not args.repair and damaged else "")
          + (f"; {earlier} file(s) set aside earlier in {store.damaged_dir}" if earlier > 0 else ""))
    if rollups:
        print(f"checked {len(rollups)} daily rollup file(s): {bad_rollups} damaged"
              + (" (dcmon check --repair moves them aside and makes them again)" if not args.repair and bad_rollups
                 else ""))
    differences = 0
    if args.quarter or args.year or args.date_from or args.date_to:
        differences = _compare_rollups(store, args)
    return 3 if left or differences else 0


def _compare_rollups(store, args) -> int:
    """Figures from the daily rollups against a scan of every reading, for each facility; differences."""
    from dcmon.metrics.period_energy import compare_with_raw_scan
    from dcmon.metrics.streaming import bin_edges, meter_params, rack_params, source_energy
    period = period_from_args(args)
    registry = load_registry(args.config)
    facilities = registry.select([args.facility] if args.facility else None)
    lines = []
    for fac in facilities:
        edges, _ = bin_edges(period, fac.timezone, None)
        kinds = [("meter", [m.id for m in fac.meters], [meter_params(m, fac) for m in fac.meters])]
        if fac.it_energy_from == "racks":
            kinds.append(("rack", list(fac.racks["rack_id"]), rack_params(fac)))
        lines += compare_with_raw_scan(store, fac, edges, source_energy, kinds)
    for line in lines:
        print(line)
    print(f"compared the figures from the daily rollups with a scan of every reading, {period.to_json()['label']}, "
          f"{len(facilities)} facilities: " + ("identical" if not lines else f"{len(lines)} difference(s)"))
    return len(lines)


def cmd_generate(args) -> int:
    from dcmon.collector.importfile import append_counted, write_readings_file
    from dcmon.fixtures.generate import generate_range, target_for
    from dcmon.periods import parse_date
    from dcmon.store import open_store
    first, last = parse_date(args.date_from, "--from"), parse_date(args.date_to, "--to")
    if last < first:
        raise InputError(f"--to {last} is before --from {first}")
    if not (0 < args.interval <= 3600 and 3600 % args.interval == 0):
        raise InputError(f"--interval must divide 3600 s (60, 300, 900, 3600 …): {args.interval}")
    out = Path(args.out) if args.out else None
    if out is not None and out.suffix.lower() not in (".csv", ".parquet"):
        raise InputError(f"--out must end in .csv or .parquet: {args.out!r}")
    registry = load_registry(args.config)
    facilities = registry.select(args.facility)
    for f in facilities:
        for m in f.meters:
            if args.interval > m.max_gap_s:
                raise InputError(f"--interval {args.interval} s is longer than max_gap_s {m.max_gap_s} s of meter "
                                 f"{m.id} of {f.id} (the readings would count as gaps)")
    tables = []
    for f in facilities:
        try:
            t = generate_range(f, first, last, meter_interval_s=args.interval, seed=args.seed)
        except ValueError as e:
            raise InputError(f"{f.id}: {e}") from None
        print(f"{f.id}: {t.num_rows:,} readings (target PUE {target_for(f.id).pue:g})")
        tables.append(t)
    days = (last - first).days + 1
    total = sum(t.num_rows for t in tables)
    if out is not None:
        write_readings_file(tables, out)
        print(f"{out}: {total:,} readings for {len(tables)} {'facility' if len(tables) == 1 else 'facilities'}, {first} .. {last} ({days} days); "
              f"load them with dcmon import {out}")
        return 0
    store = open_store(args.data)
    totals = {"written": 0, "duplicates": 0, "conflicts": 0}
    for t in tables:
        append_counted(store, t, totals)
    print(f"{args.data}: {total:,} readings for {len(tables)} {'facility' if len(tables) == 1 else 'facilities'}, {first} .. {last} ({days} days); "
          f"{totals['written']:,} stored, {totals['duplicates']:,} already stored"
          + (f" ({totals['conflicts']:,} with different values; the stored values were kept)" if totals["conflicts"] else ""))
    return 0


def cmd_compact(args) -> int:
    store = open_data(args)
    n = store.compact(args.facility)
    print(f"compacted {n} day folder(s)")
    return 0


def cmd_facilities(args) -> int:
    from dcmon.metrics import racks as racks_mod
    registry = load_registry(args.config)
    rows = [["id", "name", "city", "district", "kind", "std racks", "class", "meters", "IT energy from"]]
    docs = []
    for f in registry.select(None):
        s = racks_mod.rack_summary(f.racks)
        rows.append([f.id, f.name, f.city, f.district, f.kind, f"{s['standard_racks']:.1f}", s["size_class"],
                     str(len(f.meters)), f.it_energy_from])
        docs.append({"facility_id": f.id, "name": f.name, "city": f.city, "district": f.district, "kind": f.kind,
                     "standard_racks": s["standard_racks"], "size_class": s["size_class"]})
    if args.format == "json":
        sys.stdout.buffer.write(orjson.dumps(docs, option=orjson.OPT_INDENT_2) + b"\n")
    else:
        sys.stdout.write(align(rows))
        print(f"{len(docs)} facilities, configuration valid ({registry.config_dir})")
    return 0

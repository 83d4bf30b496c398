"""Core subcommands: ``evaluate``, ``import``, ``compact``, ``facilities``."""
from __future__ import annotations

import csv
import io
import os
import sys
import time
from pathlib import Path

import orjson

from dcmon.errors import InputError
from dcmon.periods import from_options
from dcmon.readings import make_reading, now_ms, to_table
from dcmon.registry import load_registry

IMPORT_REQUIRED = ("ts", "facility_id", "kind", "id")
IMPORT_OPTIONAL = ("energy_kwh", "power_kw", "status", "function", "design_power_kw")
IMPORT_CHUNK = 50_000


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
                                   "Exit status 0 when no damaged file is left in the store, 3 when some are.")
    add_config_data(p)
    p.add_argument("--facility", metavar="ID", help="only this facility's files")
    p.add_argument("--repair", action="store_true", help="move damaged files aside to <data>/damaged/")
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


MARK = {"pass": "✔", "fail": "✘", "inconclusive": "?", "not_applicable": "–"}


def _pct(x):
    return "—" if x is None else f"{x * 100:.1f}%"


def _f(x, nd=3):
    return "—" if x is None else f"{x:.{nd}f}"


def _eligible_mark(e):
    return {True: "✔", False: "✘", None: "?"}[e]


def _align(rows: list[list[str]]) -> str:
    import unicodedata

    def width(s):
        return sum(2 if unicodedata.east_asian_width(ch) in "WF" else 1 for ch in s)
    w = [max(width(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        lines.append("  ".join(c + " " * (w[i] - width(c)) for i, c in enumerate(r)).rstrip())
    lines.insert(1, "  ".join("-" * x for x in w))
    return "\n".join(lines) + "\n"


def format_table(result: dict) -> str:
    b = result["basis"]
    per = result["period"]
    out = io.StringIO()
    out.write(f"Period {per['from']} .. {per['to']} ({per['days']} days, calendar days in each facility's time zone)\n")
    out.write(f"Readings: racks {b['rack_basis']} ({b['rack_basis_text']}); compute share {b['compute_share_reading']} "
              f"({b['compute_share_text']}); inventory {b['inventory']}; checks need coverage ≥ {b['min_coverage']:.0%}\n")
    out.write("PUE = Σ facility energy ÷ Σ IT energy over the period. ✔ pass  ✘ fail  ? inconclusive  – not applicable\n\n")
    rows = [["facility", "PUE", "label", "cat", "coverage", "std racks", "physical", "in service", "class",
             "occupancy", "compute", "facility kWh", "IT kWh"]]
    for f in result["facilities"]:
        rows.append([f["facility_id"], _f(f["pue"]), f["pue_label"], str(f["pue_category"]), _pct(f["coverage"]),
                     f"{f['standard_racks']:.1f}", str(f["physical_racks"]), str(f["in_service_racks"]), f["size_class"],
                     _pct(f["occupancy_rate"]), _pct(f["compute_share"]),
                     "—" if f["facility_energy_kwh"] is None else f"{f['facility_energy_kwh']:,.1f}",
                     "—" if f["it_energy_kwh"] is None else f"{f['it_energy_kwh']:,.1f}"])
    out.write(_align(rows))
    out.write("\nPolicy checks (result: ✔ only when every required check passes; report-only flags never decide it)\n")
    rows = [["facility", "profile", "result", "required checks", "report-only flags", "subsidy CNY"]]
    for f in result["facilities"]:
        for pid, pr in f["profiles"].items():
            if not pr["applicable"]:
                rows.append([f["facility_id"], pid, "–", "not applicable", "", ""])
                continue
            checks = " ".join(f"{MARK[c['status']]}{c['metric']} {c.get('value_text', '')}{c['op']}{c['threshold']:g}"
                              for c in pr["checks"] if c["status"] != "not_applicable" and not c.get("flag"))
            if pr.get("grade") is not None or "grade_note" in pr:
                checks += f" grade {pr.get('grade') or '—'}"
            flags = " ".join(f"{MARK[r['status']]}{r['flag']}" + (" RAISED" if r["raised"] else "")
                             for r in pr.get("report_only", []))
            rows.append([f["facility_id"], pid, MARK.get(pr.get("verdict"), _eligible_mark(pr["eligible"])),
                         checks or "no required check applies", flags, _subsidy_text(pr)])
    out.write(_align(rows))
    p = result["portfolio"]
    out.write(f"\nFacilities shown ({p['facilities']}): energy-weighted PUE {_f(p['pue'])}, "
              f"occupancy {_pct(p['occupancy_rate'])}, coverage {_pct(p['coverage'])}\n")
    for c in p["checks"]:
        out.write(f"  {MARK[c['status']]} {c['profile']} {c['scope']} {c.get('city', '')} ({c.get('facilities', '?')} "
                  f"facilities of the registry): {c['metric']} {c.get('value_text', _f(c['value']))} {c['op']} {c['threshold']}\n")
    for f in result["facilities"]:
        for pid, pr in f["profiles"].items():
            for c in pr["checks"]:
                if c["status"] == "inconclusive":
                    out.write(f"  ? {f['facility_id']} {pid} {c['metric']}: {c.get('reason', '')}\n")
            for n in pr.get("notes", []):
                out.write(f"  note {f['facility_id']} {pid}: {n}\n")
    return out.getvalue()


def _subsidy_text(pr: dict) -> str:
    """The amount column: due only when eligible, in force and in the window; else marked hypothetical."""
    est = pr.get("subsidy_estimate")
    if not est:
        return ""
    amount = f"{est['subsidy_cny']:,.2f}"
    tags = []
    if est.get("no_retrofit_cost"):
        tags.append("upper bound: no retrofit cost")
    elif est.get("ceiling_only"):
        tags.append("upper bound: ceiling only")
    if est.get("per_rack_capped"):
        tags.append("per-rack cap applied")
    if est.get("capped"):
        tags.append("total cap applied")
    if pr.get("subsidy_hypothetical"):
        why = {"not_eligible": "not eligible", "not_in_force": "measure not in force for this period",
               "outside_application_window": "outside the application window"}
        return f"none due; hypothetical {amount} ({', '.join(why[r] for r in pr.get('hypothetical_reasons', []))})"
    return amount + (f" ({'; '.join(tags)})" if tags else "")


# --------------------------------------------------------------------- import
def _check_columns(path, header, where):
    missing = [c for c in IMPORT_REQUIRED if c not in header]
    unknown = [c for c in header if c not in IMPORT_REQUIRED + IMPORT_OPTIONAL]
    if missing or unknown:
        raise InputError(f"{path}{where}: {'header' if where else 'columns'} {','.join(header)!r}: "
                         + (f"missing column(s) {', '.join(missing)}" if missing else "")
                         + ("; " if missing and unknown else "")
                         + (f"unknown column(s) {', '.join(unknown)}" if unknown else "")
                         + f" (expected {','.join(IMPORT_REQUIRED)} and any of {','.join(IMPORT_OPTIONAL)})")


def _csv_records(path: Path, bar):
    """(line number, values by column or a reason the row is unusable, the raw fields) per data row."""
    with open(path, newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise InputError(f"{path}: empty file (expected a header: "
                             f"{','.join(IMPORT_REQUIRED + IMPORT_OPTIONAL)})") from None
        _check_columns(path, header, ":1")
        yield header
        last_pos = 0
        for lineno, rec in enumerate(reader, start=2):
            if not rec or (len(rec) == 1 and not rec[0].strip()):
                continue
            if len(rec) != len(header):
                yield lineno, f"has {len(rec)} fields, header has {len(header)}", rec
            else:
                yield lineno, {h: v.strip() for h, v in zip(header, rec)}, rec
            if lineno % 10_000 == 0:
                pos = _approx_pos(fh, path)
                bar.update(max(0, pos - last_pos))
                last_pos = pos
        bar.update(max(0, path.stat().st_size - last_pos))


def _parquet_value(v):
    return v.strip() if isinstance(v, str) else v


def _parquet_records(path: Path, bar):
    """As :func:`_csv_records` for a Parquet file: row numbers from 1, the same columns. Time stamps
    may be timestamp columns with a time zone, epoch milliseconds or text as in the CSV."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowInvalid, OSError) as e:
        raise InputError(f"{path}: not a readable Parquet file ({e})") from None
    header = list(pf.schema_arrow.names)
    _check_columns(path, header, "")
    ts_type = pf.schema_arrow.field("ts").type
    if pa.types.is_timestamp(ts_type) and ts_type.tz is None:
        raise InputError(f"{path}: column ts is a timestamp without a time zone; its instant is unknown "
                         "(store UTC timestamps, epoch milliseconds or ISO 8601 text with an offset)")
    yield header
    row = 0
    for batch in pf.iter_batches(batch_size=IMPORT_CHUNK):
        cols = {}
        for name in header:
            col = batch.column(name)
            if name == "ts" and pa.types.is_timestamp(col.type):
                col = col.cast(pa.timestamp("ms", tz=col.type.tz), safe=False).cast(pa.int64())
            cols[name] = col.to_pylist()
        for k in range(batch.num_rows):
            row += 1
            values = {name: _parquet_value(cols[name][k]) for name in header}
            yield row, values, ["" if values[h] is None else values[h] for h in header]
        bar.update(batch.num_rows)


def cmd_import(args) -> int:
    from tqdm import tqdm

    from dcmon.collector.ingest import store_neighbours
    from dcmon.collector.jumpguard import JumpGuard
    from dcmon.store import open_store
    path = Path(args.file)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    parquet = path.suffix.lower() in (".parquet", ".pq")
    registry = load_registry(args.config)
    store = open_store(args.data)
    rejects_path = Path(args.rejects) if args.rejects else path.with_name(path.name + ".rejects.csv")
    received = now_ms()
    origin = f"import:{path.name}"
    totals = {"rows": 0, "written": 0, "duplicates": 0, "conflicts": 0, "rejected": 0}
    t0 = time.monotonic()
    rej_fh = None
    rej_writer = None
    try:
        if parquet:
            import pyarrow.parquet as pq
            try:
                total, unit = pq.ParquetFile(path).metadata.num_rows, "rows"
            except Exception:
                total, unit = 0, "rows"
        else:
            total, unit = path.stat().st_size, "B"
        with tqdm(total=total, unit=unit, unit_scale=True, desc=f"import {path.name}", disable=None,
                  file=sys.stderr) as bar:
            records = (_parquet_records if parquet else _csv_records)(path, bar)
            header = next(records)
            rows = []   # (row, line or row number, record)
            guard = JumpGuard(history=store_neighbours(store))

            def reject(where, reason, rec):
                nonlocal rej_fh, rej_writer
                totals["rejected"] += 1
                if rej_writer is None:
                    rej_fh = open(rejects_path, "w", newline="", encoding="utf-8")
                    rej_writer = csv.writer(rej_fh)
                    rej_writer.writerow(["row" if parquet else "line", "reason", *header])
                rej_writer.writerow([where, reason, *rec])
            for where, values, rec in records:
                totals["rows"] += 1
                try:
                    if isinstance(values, str):
                        raise ValueError(values)
                    raw = {k: values[k] for k in IMPORT_OPTIONAL if k in values}
                    raw["ts"] = values["ts"]
                    rows.append((make_reading(registry, str(values["facility_id"] or ""), str(values["kind"] or ""),
                                              str(values["id"] or ""), raw, received_at_ms=received, origin=origin),
                                 where, rec))
                except ValueError as e:
                    reject(where, str(e), rec)
                if len(rows) >= IMPORT_CHUNK:
                    _flush(store, _plausible(rows, registry, guard, reject), totals)
                    rows = []
            _flush(store, _plausible(rows, registry, guard, reject), totals)
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


def _approx_pos(fh, path):
    try:
        return os.lseek(fh.fileno(), 0, os.SEEK_CUR)
    except OSError:
        return 0


def _plausible(items, registry, guard, reject) -> list[dict]:
    """The rows of a chunk that pass the counter plausibility check (the collector's, against both
    neighbours in time and the store), taken in time order per source so a file's own order does
    not matter; the others go to ``reject(line, reason, record)``."""
    out = []
    for row, where, rec in sorted(items, key=lambda x: (x[0]["facility_id"], x[0]["kind"], x[0]["source_id"],
                                                       x[0]["ts"], x[1])):
        try:
            guard.check(registry.facilities[row["facility_id"]], row)
        except ValueError as e:
            reject(where, str(e), rec)
            continue
        out.append(row)
    return out


def _flush(store, rows, totals):
    if not rows:
        return
    res = store.append(to_table(rows), check_existing=True)
    totals["written"] += res.written
    totals["duplicates"] += res.duplicates
    totals["conflicts"] += res.conflicts


def cmd_check(args) -> int:
    store = open_data(args)
    files = store.files(args.facility)
    damaged = 0
    for path in files:
        reason = store.check_file(path)
        if reason is None:
            continue
        damaged += 1
        if args.repair:
            moved = store.move_aside(path, reason)
            print(f"{path}: {reason} → moved aside to {moved}")
        else:
            print(f"{path}: {reason}")
    earlier = len(store.damaged_files()) - (damaged if args.repair else 0)
    left = 0 if args.repair else damaged
    print(f"checked {len(files)} file(s) in {store.readings_dir}: {damaged} damaged"
          + (f", moved aside to {store.damaged_dir}" if args.repair and damaged else "")
          + (" (dcmon check --repair moves them aside)" if left else "")
          + (f"; {earlier} file(s) set aside earlier in {store.damaged_dir}" if earlier > 0 else ""))
    return 3 if left else 0


def cmd_generate(args) -> int:
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
        _write_readings_file(tables, out)
        print(f"{out}: {total:,} readings for {len(tables)} {'facility' if len(tables) == 1 else 'facilities'}, {first} .. {last} ({days} days); "
              f"load them with dcmon import {out}")
        return 0
    store = open_store(args.data)
    totals = {"written": 0, "duplicates": 0, "conflicts": 0}
    for t in tables:
        _flush_table(store, t, totals)
    print(f"{args.data}: {total:,} readings for {len(tables)} {'facility' if len(tables) == 1 else 'facilities'}, {first} .. {last} ({days} days); "
          f"{totals['written']:,} stored, {totals['duplicates']:,} already stored"
          + (f" ({totals['conflicts']:,} with different values; the stored values were kept)" if totals["conflicts"] else ""))
    return 0


def _flush_table(store, table, totals):
    res = store.append(table, check_existing=True)
    totals["written"] += res.written
    totals["duplicates"] += res.duplicates
    totals["conflicts"] += res.conflicts


def _write_readings_file(tables, out: Path):
    """Readings in the columns dcmon import reads (CSV: ISO 8601 UTC time stamps)."""
    import pyarrow as pa
    import pyarrow.csv as pcsv
    import pyarrow.parquet as pq
    t = pa.concat_tables(tables).rename_columns(["id" if n == "source_id" else n for n in tables[0].column_names])
    t = t.select(list(IMPORT_REQUIRED + IMPORT_OPTIONAL))
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    if out.suffix.lower() == ".parquet":
        pq.write_table(t, tmp)
    else:
        import pyarrow.compute as pc
        ts = pc.strftime(t.column("ts"), format="%Y-%m-%dT%H:%M:%SZ")
        t = t.set_column(0, "ts", ts)
        pcsv.write_csv(t, tmp, pcsv.WriteOptions(quoting_style="needed"))
    tmp.replace(out)


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
        sys.stdout.write(_align(rows))
        print(f"{len(docs)} facilities, configuration valid ({registry.config_dir})")
    return 0

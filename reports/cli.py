"""Subcommands ``export``, ``evidence`` and ``verify``."""
from __future__ import annotations

import sys
from pathlib import Path

from dcmon.commands import add_config_data, add_period, add_readings, open_data, options_from_args, period_from_args
from dcmon.errors import InputError


def register(sub):
    p = sub.add_parser("export", help="the regulator's quarterly list of data centres above 100 standard racks",
                       description="Quarterly inventory export (seed 003 四(五)): one row per facility above 100 standard "
                                   "racks, figures identical to dcmon evaluate, with <out>.manifest.json holding the "
                                   "SHA-256 of the output and of every input data file.")
    add_config_data(p)
    p.add_argument("--quarter", required=True, metavar="YYYYQN", help="the quarter reported, for example 2026Q3")
    p.add_argument("--district", metavar="NAME", help="only facilities of this district (as in the facility files)")
    p.add_argument("--city", metavar="NAME", help="only facilities of this city, for example chengdu")
    p.add_argument("--all", action="store_true", help="list every facility, also those with 100 standard racks or fewer")
    p.add_argument("--format", choices=["xlsx", "csv", "parquet", "json"], required=True, help="output format")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="header language (default zh)")
    p.add_argument("--out", required=True, metavar="PATH", help="output file; the manifest goes to PATH.manifest.json")
    add_readings(p)
    p.set_defaults(func=cmd_export)

    p = sub.add_parser("evidence", help="the evidence report a subsidy applicant files (PDF or HTML)",
                       description="The evidence pack for one facility, period and policy profile: identity, method, "
                                   "monthly PUE, energy by meter role, rack inventory and standard-rack conversion, "
                                   "each threshold with its clause, the subsidy computation, data coverage and "
                                   "anomalies. It embeds a machine-readable summary with the SHA-256 of every data "
                                   "file, which dcmon verify recomputes from the data.")
    add_config_data(p)
    p.add_argument("--facility", required=True, metavar="ID", help="the facility reported")
    add_period(p)
    p.add_argument("--profile", default="chengdu-2023-cloud-retrofit", metavar="NAME",
                   help="policy profile (default chengdu-2023-cloud-retrofit)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="report language (default zh)")
    p.add_argument("--out", required=True, metavar="report.pdf|report.html",
                   help="output file; the suffix chooses PDF or HTML")
    add_readings(p)
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("verify", help="recompute a report's figures from the data and check they match",
                       description="Check an evidence report (PDF or HTML) against the data: its embedded summary is "
                                   "intact, the data files it lists are unchanged (SHA-256), and every figure "
                                   "recomputed from --data with the report's period and readings equals the "
                                   "report's. Exit 0 when verified, 1 on any mismatch.")
    p.add_argument("report", metavar="REPORT", help="the report file (.pdf or .html) made by dcmon evidence")
    add_config_data(p)
    p.set_defaults(func=cmd_verify)


def _progress(total: int):
    from tqdm import tqdm
    bar = tqdm(total=total, unit="facility", disable=None, file=sys.stderr)

    def step(_fid):
        bar.update(1)
    return bar, step


def cmd_export(args) -> int:
    from dcmon.periods import quarter
    from dcmon.registry import load_registry
    from dcmon.reports.export import write_export
    registry = load_registry(args.config)
    store = open_data(args)
    period = quarter(args.quarter)
    bar, step = _progress(len(registry.facilities))
    try:
        manifest = write_export(registry, store, period, Path(args.out), fmt=args.format, lang=args.lang,
                                district=args.district, city=args.city, include_all=args.all,
                                options=options_from_args(args), progress=step)
    except ValueError as e:
        raise InputError(str(e)) from None
    finally:
        bar.close()
    print(f"{args.out}: {len(manifest['facilities'])} facilities, {period.label}; manifest {args.out}.manifest.json "
          f"({len(manifest['inputs'])} input files hashed)")
    return 0


def cmd_evidence(args) -> int:
    from dcmon.registry import load_registry
    from dcmon.reports.evidence import build_evidence
    out = Path(args.out)
    fmt = out.suffix.lower().lstrip(".")
    if fmt not in ("pdf", "html"):
        raise InputError(f"--out must end in .pdf or .html: {args.out!r}")
    registry = load_registry(args.config, racks_on_demand=True)   # the report reads one facility's racks
    registry.get(args.facility)
    store = open_data(args)
    try:
        data, _ = build_evidence(registry, store, args.facility, period_from_args(args), profile=args.profile,
                                 lang=args.lang, fmt=fmt, options=options_from_args(args))
    except KeyError:
        raise InputError(f"profile {args.profile!r} does not apply to facility {args.facility!r}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    print(f"{out}: evidence report for {args.facility} ({len(data):,} bytes)")
    return 0


def cmd_verify(args) -> int:
    from dcmon.registry import load_registry
    from dcmon.reports.verify import verify_report
    path = Path(args.report)
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    registry = load_registry(args.config)
    store = open_data(args)
    try:
        ok, lines = verify_report(path, registry, store)
    except ValueError as e:
        raise InputError(str(e)) from None
    print("\n".join(lines))
    print(f"{path}: {'VERIFIED — the figures match the data' if ok else 'NOT VERIFIED'}")
    return 0 if ok else 1

"""Subcommands ``export``, ``evidence``, ``verify`` and ``keys``: the reports wired from the options."""
from __future__ import annotations

import sys
from pathlib import Path

from dcmon.cli.common import add_config_data, add_period, add_readings, open_data, options_from_args, period_from_args
from dcmon.errors import InputError


def register(sub):
    p = sub.add_parser("export", help="the regulator's quarterly list of data centres above 100 standard racks",
                       description="Quarterly inventory export (seed 003 四(五)): one row per facility above 100 standard "
                                   "racks, figures identical to dcmon evaluate, with <out>.manifest.json holding the "
                                   "SHA-256 of the output and the content digests of the readings used "
                                   "(dcmon verify checks both and recomputes every row).")
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
                                   "anomalies. It embeds a machine-readable summary with the content digests of the "
                                   "readings, which dcmon verify recomputes from the data. A PDF is signed with the "
                                   "operator's key (created on first use; see dcmon keys init).")
    add_config_data(p)
    p.add_argument("--facility", required=True, metavar="ID", help="the facility reported")
    add_period(p)
    p.add_argument("--profile", default="chengdu-2023-cloud-retrofit", metavar="NAME",
                   help="policy profile (default chengdu-2023-cloud-retrofit)")
    p.add_argument("--lang", choices=["zh", "en"], default="zh", help="report language (default zh)")
    p.add_argument("--out", required=True, metavar="report.pdf|report.html",
                   help="output file; the suffix chooses PDF or HTML")
    add_key_dir(p)
    p.add_argument("--unsigned", action="store_true",
                   help="do not sign the PDF (its first page then says it is unsigned)")
    p.add_argument("--form-xlsx", metavar="PATH", help="also write the application form's pre-filled fields and the "
                   "item (4) statement as a workbook to paste from (profiles with an application notice)")
    add_readings(p)
    p.set_defaults(func=cmd_evidence)

    p = sub.add_parser("verify", help="check a report or export against the data: signature, readings, every figure",
                       description="Verify an evidence report (PDF, HTML) or an export (csv, xlsx, json, parquet, with "
                                   "its .manifest.json) against the data: the PDF signature, the embedded summary or "
                                   "manifest, the content digests of the readings, every figure or row recomputed from "
                                   "--data, and the whole visible document re-rendered. Exit 0 verified, 1 not verified, "
                                   "2 not a dcmon report or bad input.")
    p.add_argument("report", metavar="REPORT|EXPORT",
                   help="a report made by dcmon evidence (.pdf, .html) or an export made by dcmon export")
    add_config_data(p)
    p.add_argument("--certificate", metavar="FILE", help="the signer certificate the PDF must be signed with (PEM or DER)")
    p.add_argument("--fingerprint", metavar="SHA256",
                   help="the SHA-256 fingerprint of the signer certificate the PDF must be signed with")
    p.add_argument("--allow-unsigned", action="store_true", help="accept an unsigned PDF whose figures match the data")
    p.set_defaults(func=cmd_verify)

    p = sub.add_parser("keys", help="the operator's key pair that signs evidence reports",
                       description="Manage the operator's signing key and certificate. Signed evidence PDFs print the "
                                   "certificate's SHA-256 fingerprint; regulators pin it with dcmon verify --fingerprint.")
    ks = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    k = ks.add_parser("init", help="create a signing key and self-signed certificate (owner-only files)",
                      description="Create an ECDSA P-256 key (signing-key.pem, mode 0600) and a self-signed certificate "
                                  "(signing-cert.pem) in the key folder (mode 0700): --key-dir, else $DCMON_KEY_DIR, else "
                                  "~/.config/dcmon/keys. An existing pair is kept unless --force.")
    add_key_dir(k)
    k.add_argument("--subject", metavar="NAME", help="certificate common name (default: dcmon operator (<host>))")
    k.add_argument("--force", action="store_true", help="replace an existing key pair (earlier reports keep the old fingerprint)")
    k.set_defaults(func=cmd_keys_init)


def add_key_dir(p):
    p.add_argument("--key-dir", metavar="DIR",
                   help="folder of the signing key and certificate (default $DCMON_KEY_DIR, else ~/.config/dcmon/keys)")


def _progress(total: int):
    from tqdm import tqdm
    bar = tqdm(total=total, unit="facility", disable=None, file=sys.stderr)

    def step(_fid):
        bar.update(1)
    return bar, step


def cmd_export(args) -> int:
    from dcmon.periods import quarter
    from dcmon.registry import load_registry
    from dcmon.reports.export import NoDataError, format_for, write_export
    try:
        format_for(args.format, Path(args.out))
    except ValueError as e:
        raise InputError(str(e)) from None
    registry = load_registry(args.config)
    store = open_data(args)
    period = quarter(args.quarter)
    bar, step = _progress(len(registry.facilities))
    try:
        manifest = write_export(registry, store, period, Path(args.out), fmt=args.format, lang=args.lang,
                                district=args.district, city=args.city, include_all=args.all,
                                options=options_from_args(args), progress=step)
    except NoDataError as e:
        bar.close()
        print(f"dcmon export: warning: {e}", file=sys.stderr)
        return 1
    except ValueError as e:
        raise InputError(str(e)) from None
    finally:
        bar.close()
    print(f"{args.out}: {len(manifest['facilities'])} facilities, {period.label}; manifest {args.out}.manifest.json "
          f"({len(manifest['inputs']['digests'])} source-months of readings digested)")
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
    keys = None
    if fmt == "pdf" and not args.unsigned:
        keys = _keys(args.key_dir, announce=True)
    try:
        data, _ = build_evidence(registry, store, args.facility, period_from_args(args), profile=args.profile,
                                 lang=args.lang, fmt=fmt, options=options_from_args(args), keys=keys)
    except KeyError:
        raise InputError(f"profile {args.profile!r} does not apply to facility {args.facility!r}") from None
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(f".{out.name}.tmp")
    tmp.write_bytes(data)
    tmp.replace(out)
    how = (f"signed, certificate SHA-256 {keys.fingerprint}" if keys else
           "UNSIGNED" if fmt == "pdf" else "HTML, not signed: verify re-renders it")
    print(f"{out}: evidence report for {args.facility} ({len(data):,} bytes; {how})")
    if args.form_xlsx:
        from dcmon.reports.applicant import form_xlsx
        from dcmon.reports.evidence import read_summary
        pack = read_summary(out).get("applicant")   # from the embedded summary: the same figures as the report
        if pack is None:
            raise InputError(f"--form-xlsx: profile {args.profile!r} names no application notice, so there is no form")
        xlsx = Path(args.form_xlsx)
        xlsx.parent.mkdir(parents=True, exist_ok=True)
        xlsx.write_bytes(form_xlsx(pack, args.lang))
        print(f"{xlsx}: application form fields and statement for {args.facility}")
    return 0


def _keys(key_dir: str | None, *, announce: bool):
    from dcmon.reports.keys import init_keys, key_dir_from
    d = key_dir_from(key_dir)
    try:
        kp = init_keys(d)
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from None
    if kp.created and announce:
        print(f"no signing key in {d}: created one (key {kp.key_path}, owner-only; certificate {kp.cert_path}); "
              f"certificate SHA-256 {kp.fingerprint} — publish it so regulators can pin it", file=sys.stderr)
    return kp


def cmd_keys_init(args) -> int:
    from dcmon.reports.keys import init_keys, key_dir_from
    d = key_dir_from(args.key_dir)
    try:
        kp = init_keys(d, subject=args.subject, force=args.force)
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from None
    print(f"{'created' if kp.created else 'kept the existing'} signing key {kp.key_path} (owner-only) and certificate "
          f"{kp.cert_path}")
    print(f"certificate SHA-256 fingerprint: {kp.fingerprint}")
    return 0


def cmd_verify(args) -> int:
    from dcmon.registry import load_registry
    from dcmon.reports.export import FORMATS, verify_export
    from dcmon.reports.keys import cert_der_from_file, normalise_fingerprint
    from dcmon.reports.verify import verify_report
    path = Path(args.report)
    if path.name.endswith(".manifest.json"):
        path = path.with_name(path.name[:-len(".manifest.json")])
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    try:
        cert = cert_der_from_file(Path(args.certificate)) if args.certificate else None
        fp = normalise_fingerprint(args.fingerprint) if args.fingerprint else None
    except (ValueError, OSError) as e:
        raise InputError(str(e)) from None
    registry = load_registry(args.config)
    store = open_data(args)
    try:
        if path.suffix.lower().lstrip(".") in FORMATS:
            ok, lines = verify_export(path, registry, store)
        else:
            ok, lines = verify_report(path, registry, store, certificate=cert, fingerprint=fp,
                                      allow_unsigned=args.allow_unsigned)
    except ValueError as e:
        raise InputError(str(e)) from None
    print("\n".join(lines))
    print(f"{path}: {'VERIFIED — the figures match the data' if ok else 'NOT VERIFIED'}")
    return 0 if ok else 1

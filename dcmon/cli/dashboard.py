"""Subcommands ``dashboard`` and ``users add``: the dashboard app and its server wired from the options."""
from __future__ import annotations

import getpass
import ipaddress
import logging
import os
import sys
from pathlib import Path

from dcmon.cli.common import add_config_data, open_data
from dcmon.errors import ConfigError, InputError
from dcmon.netaddr import is_loopback

MIN_PASSWORD_CHARS = 12


def register(sub):
    p = sub.add_parser("dashboard", help="serve the live dashboard (Dash, waitress) on 127.0.0.1",
                       description="Live operator view, regulator overview and subsidy check, served by waitress. "
                                   "Binds to 127.0.0.1 by default; another address is refused unless users are "
                                   "configured (users.yaml). Behind a TLS reverse proxy use --secure-cookies and "
                                   "--trusted-proxy (docs/dashboard.md).")
    add_config_data(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs a users file)")
    p.add_argument("--port", type=int, default=8050, help="port to listen on (default 8050)")
    p.add_argument("--users", metavar="FILE", help="users and roles (default <config>/users.yaml)")
    p.add_argument("--prometheus-url", metavar="URL", default=None,
                   help="show the active alerts this Prometheus evaluates from deploy/prometheus/dcmon-rules.yml "
                        "(default $DCMON_PROMETHEUS_URL; none: no alerts panel data)")
    p.add_argument("--secure-cookies", action="store_true",
                   help="mark the session cookie Secure (HTTPS only) and send HSTS: use when a TLS proxy serves it")
    p.add_argument("--trusted-proxy", metavar="ADDR",
                   help="address of the reverse proxy whose X-Forwarded-For/-Proto/-Host headers are believed")
    p.add_argument("--session-idle-minutes", type=float, default=480, metavar="MIN",
                   help="end a session after this long without user activity (default 480, a working day)")
    p.set_defaults(func=cmd_dashboard)

    u = sub.add_parser("users", help="manage dashboard users (users.yaml)",
                       description="Add or replace a dashboard user with an Argon2id password hash. The password is "
                                   "read from a prompt, or from the first line of standard input when it is not a "
                                   "terminal; it is never an argument.")
    usub = u.add_subparsers(dest="users_command", metavar="ACTION", required=True)
    a = usub.add_parser("add", help="add a user (or --replace an existing one)",
                        description="Add a dashboard user to the users file with an Argon2id hash of a password read "
                                    "from a prompt (twice) or from the first line of standard input; at least "
                                    f"{MIN_PASSWORD_CHARS} characters. A new file is created owner-only.")
    a.add_argument("name", help="the user name to log in with")
    a.add_argument("--role", required=True, choices=("operator", "regulator", "admin"),
                   help="operator (only its --facility), regulator (all, read-only) or admin (all)")
    a.add_argument("--facility", action="append", default=[], metavar="ID",
                   help="a facility an operator may see (repeat for several)")
    a.add_argument("--replace", action="store_true", help="replace the user's entry if it exists (a new password "
                                                          "ends the user's open sessions)")
    add_config_data(a, data=False)
    a.add_argument("--users", metavar="FILE", help="users file (default <config>/users.yaml)")
    a.set_defaults(func=cmd_users_add)


def cmd_dashboard(args) -> int:
    from dcmon.dashboard.app import create_app
    from dcmon.dashboard.server import make_server
    from dcmon.registry import load_registry
    users = Path(args.users) if args.users else Path(args.config) / "users.yaml"
    if args.users and not users.is_file():
        raise InputError(f"--users {users}: no such file")
    if not is_loopback(args.host) and not users.is_file():
        raise InputError(f"--host {args.host}: refusing a non-loopback address without users "
                         f"(create {users} with `dcmon users add`)")
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be 1..65535: {args.port}")
    if not args.session_idle_minutes > 0:
        raise InputError(f"--session-idle-minutes must be more than 0: {args.session_idle_minutes}")
    if args.trusted_proxy:
        try:
            ipaddress.ip_address(args.trusted_proxy)
        except ValueError:
            raise InputError(f"--trusted-proxy must be an IP address: {args.trusted_proxy!r}") from None
    if args.prometheus_url and not args.prometheus_url.startswith(("http://", "https://")):
        raise InputError(f"--prometheus-url must start with http:// or https://: {args.prometheus_url!r}")
    app = create_app(load_registry(args.config), open_data(args, must_exist=False),
                     users_file=users if users.is_file() else None, warm=True,
                     prometheus_url=args.prometheus_url, secure_cookies=args.secure_cookies,
                     idle_minutes=args.session_idle_minutes)
    try:
        srv = make_server(app, args.host, args.port, trusted_proxy=args.trusted_proxy)
    except OSError as e:
        raise InputError(f"--host {args.host} --port {args.port}: cannot listen there: {e.strerror or e}") from None
    if not is_loopback(args.host) and not args.secure_cookies:
        logging.getLogger("dcmon.dashboard").warning(
            "serving plain HTTP on %s: passwords and session cookies cross the network unencrypted; "
            "put a TLS reverse proxy in front and use --secure-cookies (docs/dashboard.md)", args.host)
    print(f"dcmon dashboard: http://{args.host}:{args.port}/ (waitress)", flush=True)
    srv.run()
    return 0


def read_password(name: str) -> str:
    if sys.stdin is not None and sys.stdin.isatty():
        pw = getpass.getpass(f"password for {name}: ")
        if getpass.getpass("again: ") != pw:
            raise InputError("the two passwords differ")
    else:
        pw = (sys.stdin.readline() if sys.stdin is not None else "").rstrip("\r\n")
    if len(pw) < MIN_PASSWORD_CHARS:
        raise InputError(f"the password must have at least {MIN_PASSWORD_CHARS} characters")
    return pw


def cmd_users_add(args) -> int:
    import yaml

    from dcmon.config.yamlfile import load_yaml
    from dcmon.dashboard.auth import hash_password, load_users
    from dcmon.registry import load_registry
    path = Path(args.users) if args.users else Path(args.config) / "users.yaml"
    registry = load_registry(args.config)
    unknown = sorted(set(args.facility) - set(registry.facilities))
    if unknown:
        raise InputError(f"--facility: unknown facility id(s) {', '.join(unknown)} in {args.config}")
    if args.role == "operator" and not args.facility:
        raise InputError("an operator needs at least one --facility ID")
    if args.role != "operator" and args.facility:
        raise InputError(f"--facility is only for operators: a {args.role} sees every facility")
    doc = (load_yaml(path) or {}) if path.is_file() else {}
    if not isinstance(doc, dict) or not isinstance(doc.setdefault("users", []), list):
        raise ConfigError(f"{path}: needs a list `users:`")
    entries = doc["users"]
    at = next((i for i, e in enumerate(entries) if isinstance(e, dict) and str(e.get("name")) == args.name), None)
    if at is not None and not args.replace:
        raise InputError(f"user {args.name!r} is already in {path}; add --replace to give it a new password or role")
    entry = {"name": args.name, "role": args.role}
    if args.facility:
        entry["facilities"] = sorted(set(args.facility))
    entry["password_hash"] = hash_password(read_password(args.name))
    if at is None:
        entries.append(entry)
    else:
        entries[at] = entry
    # keep the file's opening comment; write a new file next to it, then swap it in
    header = ""
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines(keepends=True):
            if not line.startswith("#"):
                break
            header += line
    body = yaml.safe_dump(doc, sort_keys=False, allow_unicode=True, default_flow_style=False)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    mode = (path.stat().st_mode & 0o777) if path.is_file() else 0o600
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(header + body)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    print(f"{'replaced' if at is not None else 'added'} {args.name} ({args.role}) in {path}")
    try:
        load_users(path, registry)
    except ConfigError as e:   # other entries; the dashboard will refuse to start until they are fixed
        print(f"note: {e}", file=sys.stderr)
    return 0

"""Subcommand ``dashboard``."""
from __future__ import annotations

import ipaddress
from pathlib import Path

from dcmon.commands import add_config_data
from dcmon.errors import InputError


def register(sub):
    p = sub.add_parser("dashboard", help="serve the live dashboard (Dash) on 127.0.0.1",
                       description="Live operator view, regulator overview and subsidy check. Binds to 127.0.0.1 by "
                                   "default; another address is refused unless users are configured (users.yaml).")
    add_config_data(p)
    p.add_argument("--host", default="127.0.0.1",
                   help="address to listen on (default 127.0.0.1; any other needs a users file)")
    p.add_argument("--port", type=int, default=8050, help="port to listen on (default 8050)")
    p.add_argument("--users", metavar="FILE", help="users and roles (default <config>/users.yaml)")
    p.add_argument("--prometheus-url", metavar="URL", default=None,
                   help="show the active alerts this Prometheus evaluates from deploy/prometheus/dcmon-rules.yml "
                        "(default $DCMON_PROMETHEUS_URL; none: no alerts panel data)")
    p.set_defaults(func=cmd_dashboard)


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def cmd_dashboard(args) -> int:
    from dcmon.dashboard.app import create_app
    users = Path(args.users) if args.users else Path(args.config) / "users.yaml"
    if args.users and not users.is_file():
        raise InputError(f"--users {users}: no such file")
    if not is_loopback(args.host) and not users.is_file():
        raise InputError(f"--host {args.host}: refusing a non-loopback address without users "
                         f"(create {users} with roles and password hashes)")
    if not 1 <= args.port <= 65535:
        raise InputError(f"--port must be 1..65535: {args.port}")
    if args.prometheus_url and not args.prometheus_url.startswith(("http://", "https://")):
        raise InputError(f"--prometheus-url must start with http:// or https://: {args.prometheus_url!r}")
    app = create_app(args.config, args.data, users_file=users if users.is_file() else None, warm=True,
                     prometheus_url=args.prometheus_url)
    print(f"dcmon dashboard: http://{args.host}:{args.port}/", flush=True)
    app.run(host=args.host, port=args.port, debug=False)
    return 0

"""Users and roles from ``<config>/users.yaml``; checked server-side on every request.

Roles: ``operator`` sees only its ``facilities``; ``regulator`` sees all, read-only;
``admin`` sees all. Passwords are stored as hashes only (werkzeug ``scrypt``/``pbkdf2``);
make one with ``python -c "from werkzeug.security import generate_password_hash as g; print(g('…'))"``.
Without a users file the dashboard runs in local single-user mode and binds only to loopback.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from werkzeug.security import check_password_hash

from dcmon.errors import ConfigError
from dcmon.registry import load_yaml

ROLES = ("operator", "regulator", "admin")
LOCAL_USER = "local"


@dataclass(frozen=True)
class User:
    name: str
    role: str
    facilities: frozenset = field(default_factory=frozenset)
    password_hash: str = ""

    def may_see(self, facility_id: str) -> bool:
        return self.role in ("regulator", "admin") or facility_id in self.facilities

    def may_export(self) -> bool:
        return self.role in ("regulator", "admin")


def load_users(path: Path | None, registry) -> dict[str, User] | None:
    """Users by name, or None (local mode) when there is no users file."""
    if path is None or not Path(path).is_file():
        return None
    doc = load_yaml(Path(path)) or {}
    errs, users = [], {}
    for i, u in enumerate(doc.get("users") or []):
        where = f"{path} users[{i}]"
        name, role = str(u.get("name", "")), u.get("role")
        if not name:
            errs.append(f"{where}: name is required")
            continue
        if role not in ROLES:
            errs.append(f"{where}: role {role!r} is not one of {', '.join(ROLES)}")
        ph = str(u.get("password_hash", ""))
        if not ph or ":" not in ph:
            errs.append(f"{where}: password_hash must be a werkzeug hash (never a plain password)")
        facs = frozenset(u.get("facilities") or [])
        unknown = sorted(facs - set(registry.facilities))
        if unknown:
            errs.append(f"{where}: unknown facility id(s) {', '.join(unknown)}")
        if role == "operator" and not facs:
            errs.append(f"{where}: an operator needs facilities: [ids]")
        users[name] = User(name=name, role=role, facilities=facs, password_hash=ph)
    if errs:
        raise ConfigError("invalid users file:\n  " + "\n  ".join(errs))
    return users


def authenticate(users: dict[str, User], name: str, password: str) -> User | None:
    u = users.get(name)
    if u is None or not check_password_hash(u.password_hash, password):
        return None
    return u

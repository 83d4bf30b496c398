"""Users and roles from ``<config>/users.yaml``; checked server-side on every request.

Roles: ``operator`` sees only its ``facilities``; ``regulator`` sees all, read-only;
``admin`` sees all. Passwords are stored as hashes only; ``dcmon users add NAME --role …``
writes an entry with an Argon2id hash. The file is validated when the dashboard starts and
whenever it changes on disk: a hash made with an unknown scheme, or with parameters below the
OWASP Password Storage Cheat Sheet minimums, is refused with a message naming the user.
Without a users file the dashboard runs in local single-user mode and binds only to loopback.

Accepted hashes (the minimums are OWASP's):
- Argon2id (``$argon2id$…``, what ``dcmon users add`` writes): memory ≥ 19 MiB with ≥ 2 passes,
  or ≥ 46 MiB with 1 pass;
- bcrypt (``$2b$``/``$2a$``/``$2y$``, e.g. ``htpasswd -B``): cost ≥ 10;
- werkzeug ``scrypt:N:r:p$…``: r ≥ 8 and (N, p) at least (2^17, 1), (2^16, 2), (2^15, 3),
  (2^14, 5) or (2^13, 10);
- werkzeug ``pbkdf2:sha256:ITER$…`` with ITER ≥ 600 000, ``pbkdf2:sha512:ITER$…`` with ≥ 210 000.
"""
from __future__ import annotations

import logging
import os
import re
import secrets
import threading
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import bcrypt
from argon2 import PasswordHasher, Type, extract_parameters
from argon2.exceptions import InvalidHashError, VerificationError
from pydantic import ValidationError
from werkzeug.security import check_password_hash, generate_password_hash

from dcmon.config.errors import Problems, add_validation_errors
from dcmon.config.users import UsersDoc, user_where
from dcmon.config.yamlfile import load_yaml
from dcmon.errors import ConfigError

log = logging.getLogger(__name__)

LOCAL_USER = "local"
# argon2-cffi's defaults: Argon2id, 64 MiB, 3 passes, 4 lanes (RFC 9106's low-memory choice).
ARGON2 = PasswordHasher()
ACCEPTED = "argon2id, bcrypt, werkzeug scrypt or pbkdf2:sha256/sha512"

_BCRYPT = re.compile(r"^\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}$")
_SCRYPT = re.compile(r"^scrypt:(\d+):(\d+):(\d+)\$[^$]+\$[0-9a-f]+$")
_PBKDF2 = re.compile(r"^pbkdf2:(sha256|sha512):(\d+)\$[^$]+\$[0-9a-f]+$")
_SCRYPT_MIN_N_P = ((2 ** 17, 1), (2 ** 16, 2), (2 ** 15, 3), (2 ** 14, 5), (2 ** 13, 10))
_PBKDF2_MIN = {"sha256": 600_000, "sha512": 210_000}


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


def hash_password(password: str) -> str:
    """A new Argon2id hash (argon2-cffi's parameters)."""
    return ARGON2.hash(password)


def hash_problem(ph: str) -> str | None:
    """Why this stored hash is refused, or None when its scheme and parameters are strong enough."""
    if ph.startswith("$argon2"):
        try:
            p = extract_parameters(ph)
        except InvalidHashError:
            return "is not a well-formed Argon2 hash"
        if p.type is not Type.ID:
            return f"uses {p.type.name.lower()}; only Argon2id is accepted"
        if not (p.memory_cost >= 47104 or (p.memory_cost >= 19456 and p.time_cost >= 2)):
            return (f"Argon2id m={p.memory_cost} KiB t={p.time_cost} is below the minimum "
                    "(19 MiB with 2 passes, or 46 MiB with 1)")
        return None
    if ph.startswith("$2"):
        m = _BCRYPT.match(ph)
        if not m:
            return "is not a well-formed bcrypt hash"
        return None if int(m.group(1)) >= 10 else f"bcrypt cost {int(m.group(1))} is below 10"
    if ph.startswith("scrypt:"):
        m = _SCRYPT.match(ph)
        if not m:
            return "is not a well-formed scrypt hash (scrypt:N:r:p$salt$hex)"
        n, r, p = (int(x) for x in m.groups())
        if r >= 8 and any(n >= min_n and p >= min_p for min_n, min_p in _SCRYPT_MIN_N_P):
            return None
        return f"scrypt N={n} r={r} p={p} is below the minimum (N=131072 r=8 p=1 or an equivalent)"
    if ph.startswith("pbkdf2:"):
        m = _PBKDF2.match(ph)
        if not m:
            return "is not a pbkdf2:sha256 or pbkdf2:sha512 hash with its iteration count (pbkdf2:sha256:ITER$salt$hex)"
        algo, iterations = m.group(1), int(m.group(2))
        if iterations < _PBKDF2_MIN[algo]:
            return f"PBKDF2-{algo.upper()} with {iterations} iterations is below {_PBKDF2_MIN[algo]}"
        return None
    return f"uses an unknown scheme {ph.split('$')[0].split(':')[0][:20]!r} (accepted: {ACCEPTED})"


def verify_password(ph: str, password: str) -> bool:
    """Whether ``password`` matches the stored hash (any accepted scheme); never raises on a mismatch."""
    if ph.startswith("$argon2"):
        try:
            return ARGON2.verify(ph, password)
        except (VerificationError, InvalidHashError):
            return False
    if ph.startswith("$2"):
        try:
            return bcrypt.checkpw(password.encode("utf-8"), ph.encode("ascii"))
        except ValueError:   # bcrypt refuses passwords over 72 bytes
            return False
    return check_password_hash(ph, password)


def hash_like(ph: str, password: str) -> str:
    """A hash of ``password`` with the same scheme and cost as ``ph``.

    Used for the dummy verification of unknown user names, so that they take as long as a
    real user's wrong password (user names cannot be guessed by timing).
    """
    if ph.startswith("$argon2"):
        p = extract_parameters(ph)
        return PasswordHasher(time_cost=p.time_cost, memory_cost=p.memory_cost, parallelism=p.parallelism,
                              hash_len=p.hash_len, salt_len=p.salt_len, type=p.type).hash(password)
    if ph.startswith("$2"):
        return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=int(ph[4:6]))).decode("ascii")
    return generate_password_hash(password, method=ph.split("$", 1)[0])


def _cost_key(ph: str) -> str:
    """The scheme and cost part of a hash (without salt and digest)."""
    if ph.startswith("$argon2"):
        return ph.rsplit("$", 2)[0]
    if ph.startswith("$2"):
        return ph[:7]
    return ph.split("$", 1)[0]


def load_users(path: Path | None, registry) -> dict[str, User] | None:
    """Users by name, or None (local mode) when there is no users file (checked by ``config.users.UsersDoc``)."""
    if path is None or not Path(path).is_file():
        return None
    doc = load_yaml(Path(path)) or {}
    try:
        users = UsersDoc.model_validate(doc, context={"facilities": set(registry.facilities),
                                                      "hash_problem": hash_problem}).users
    except ValidationError as e:
        errs = Problems()
        add_validation_errors(e, errs, where=user_where(doc))
        if len(errs.items) == 1 and not errs.items[0].startswith("users["):   # the file's shape
            raise ConfigError(f"invalid users file {path}: {errs.items[0]}") from None
        errs.raise_if_any(f"invalid users file {path}:")
    return {u.name: User(name=u.name, role=u.role, facilities=frozenset(u.facilities), password_hash=u.password_hash)
            for u in users}


class UsersFile:
    """The users file, read again when it changes on disk.

    A changed password hash ends that user's sessions (``security.Sessions`` compares it on
    every request); a changed role or facility list applies to the next request. A file that
    becomes invalid while the dashboard runs leaves no user at all (every session ends, no
    login succeeds) until it is fixed: the reason is logged.
    """

    def __init__(self, path: Path, registry):
        self.path, self.registry = Path(path), registry
        self._lock = threading.Lock()
        self._sig = self._signature()
        self.users = load_users(self.path, registry) or {}   # invalid at start: ConfigError
        self._dummy = self._dummy_hash(self.users)

    def _signature(self):
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    @staticmethod
    def _dummy_hash(users: dict[str, User]) -> str:
        """A hash of a random secret with the cost most users' hashes have."""
        if not users:
            return hash_password(secrets.token_hex(16))
        common = Counter(_cost_key(u.password_hash) for u in users.values()).most_common(1)[0][0]
        model = next(u.password_hash for u in users.values() if _cost_key(u.password_hash) == common)
        return hash_like(model, secrets.token_hex(16))

    def current(self) -> dict[str, User]:
        sig = self._signature()
        if sig != self._sig:
            with self._lock:
                if sig != self._sig:
                    try:
                        self.users = load_users(self.path, self.registry) or {}
                        self._dummy = self._dummy_hash(self.users)
                        log.info("users file %s read again: %d user(s)", self.path, len(self.users))
                    except (ConfigError, OSError) as e:
                        self.users = {}
                        log.error("users file %s is invalid; no one can log in until it is fixed: %s", self.path, e)
                    self._sig = sig
        return self.users

    def authenticate(self, name: str, password: str) -> User | None:
        """The user when the password matches. An unknown name costs the same as a wrong password."""
        users = self.current()
        u = users.get(name)
        if u is None:
            verify_password(self._dummy, password)
            return None
        return u if verify_password(u.password_hash, password) else None

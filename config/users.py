"""Schema of the dashboard's users file (``<config>/users.yaml``; see ``config/users.example.yaml``).

Validate with ``context={"facilities": <known facility ids>, "hash_problem": <fn>}``: the
facility ids come from the registry and the password-hash check from ``dashboard.auth`` (which
owns the accepted schemes and their minimum costs).
"""
from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcmon.config.errors import fail, fail_many

ROLES = ("operator", "regulator", "admin")


class UserDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(default=None, validate_default=True)
    role: str | None = None
    facilities: list[str] = Field(default_factory=list, validate_default=True)   # what an operator sees
    password_hash: str = ""

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if not isinstance(v, dict):
            raise fail("each entry needs name, role and password_hash")
        return v

    @field_validator("name", mode="before")
    @classmethod
    def _name(cls, v):
        if not v:
            raise fail("name is required")
        return str(v)

    @field_validator("role", mode="before")
    @classmethod
    def _role(cls, v):
        if v not in ROLES:
            raise fail(f"role {v!r} is not one of {', '.join(ROLES)}")
        return v

    @field_validator("facilities", mode="before")
    @classmethod
    def _facilities(cls, v, info):
        ids = [str(f) for f in v or []]
        known = (info.context or {}).get("facilities")
        unknown = sorted(set(ids) - set(known)) if known is not None else []
        if unknown:
            raise fail(f"unknown facility id(s) {', '.join(unknown)}")
        if info.data.get("role") == "operator" and not ids:
            raise fail("an operator needs facilities: [ids]")
        return ids

    @field_validator("password_hash", mode="before")
    @classmethod
    def _hash(cls, v, info):
        ph = str(v or "")
        check = (info.context or {}).get("hash_problem")
        problem = "is missing" if not ph else (check(ph) if check else None)
        if problem:
            name, role = info.data.get("name", "NAME"), info.data.get("role")
            raise fail(f"password_hash {problem}; set a new one with "
                       f"`dcmon users add {name} --role {role if role in ROLES else 'ROLE'} --replace`")
        return ph


class UsersDoc(BaseModel):
    model_config = ConfigDict(extra="forbid")

    users: list[UserDoc]

    @model_validator(mode="before")
    @classmethod
    def _shape(cls, v):
        if not isinstance(v, dict) or not isinstance(v.get("users"), list):
            raise fail("needs a list `users:` (see config/users.example.yaml)")
        return v

    @field_validator("users", mode="after")
    @classmethod
    def _unique(cls, users):
        seen, dups = set(), []
        for i, u in enumerate(users):
            if u.name in seen:
                dups.append(((i,), f"user {u.name!r} is listed twice"))
            seen.add(u.name)
        if dups:
            raise fail_many(dups)
        return users


def user_where(doc):
    """``users[i] (name)`` for an error in entry ``i`` of ``doc`` (the parsed file), else None."""
    entries = doc.get("users") if isinstance(doc, dict) else None

    def where(loc: tuple):
        if len(loc) < 2 or loc[0] != "users" or not isinstance(loc[1], int):
            return None
        e = entries[loc[1]]
        name = str(e.get("name") or "") if isinstance(e, dict) else ""
        return f"users[{loc[1]}] ({name})" if name else f"users[{loc[1]}]"
    return where

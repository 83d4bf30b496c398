"""Config errors in the user's words: collected, then reported together.

Schemas (pydantic models in this package) raise :func:`fail` with the sentence the user reads;
:func:`add_validation_errors` turns a pydantic ``ValidationError`` into those sentences, each
prefixed with where it is (file, list entry), so no pydantic wording or traceback reaches the
user. A sentence may start with :data:`FIELD`, replaced by the dotted field name
(``applicant.actual_investment[0].year``).

:class:`Settings` is the base of options built in code or from the command line (evaluation
readings, MQTT connection): a bad value raises ``ValueError`` with the same kind of sentences.
"""
from __future__ import annotations

from collections.abc import Callable

from pydantic import BaseModel, ConfigDict, ValidationError
from pydantic_core import PydanticCustomError

from dcmon.errors import ConfigError

FIELD = "{field}"
ERROR_TYPE = "dcmon"


class Problems:
    """Every problem of one load, each ``<where>: <message>``; raised together as a ConfigError."""

    def __init__(self):
        self.items: list[str] = []

    def add(self, where, msg):
        """``where`` None: the problem is about the file as a whole, named in the header."""
        self.items.append(msg if where is None else f"{where}: {msg}")

    def raise_if_any(self, header: str):
        if self.items:
            raise ConfigError(header + "\n  " + "\n  ".join(self.items))


def fail(message: str, *, at: tuple = ()) -> PydanticCustomError:
    """The error a schema validator raises: ``message`` is shown as written.

    ``at`` places it deeper than the validated value (a list validator naming one entry).
    """
    return fail_many([(at, message)])


def fail_many(problems: list[tuple[tuple, str]]) -> PydanticCustomError:
    """Several problems found by one validator (a pydantic validator raises once): ``(at, message)``."""
    lines = tuple((tuple(at), msg) for at, msg in problems)
    return PydanticCustomError(ERROR_TYPE, "{text}", {"text": "; ".join(m for _, m in lines), "lines": lines})


def dotted(loc: tuple) -> str:
    """``('applicant', 'actual_investment', 0, 'year')`` → ``applicant.actual_investment[0].year``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _generic(err: dict, name: str) -> str:
    """A sentence for an error no schema validator worded (a wrong container type, a missing key)."""
    kind, value = err["type"], err.get("input")
    if kind == "missing":
        return f"{name} is required"
    if kind in ("dict_type", "model_type", "model_attributes_type"):
        return f"{name} must be a mapping: {value!r}"
    if kind in ("list_type", "tuple_type"):
        return f"{name} must be a list: {value!r}"
    return f"{name} is not valid: {value!r}"


def add_validation_errors(exc: ValidationError, problems: Problems, *,
                          where: Callable[[tuple], object],
                          name: Callable[[tuple], str] = dotted,
                          unknown: Callable[[tuple, list[str]], str] | None = None,
                          message: Callable[[dict, tuple], str | None] | None = None) -> None:
    """Add each error of ``exc`` to ``problems`` as ``<where(loc)>: <sentence>``.

    where : the location prefix for an error at ``loc`` (the file, or ``file meters[2]``)
    name : the field name a sentence starting with :data:`FIELD` gets
    unknown : the sentence for unknown keys of the mapping at ``loc`` (all of one mapping in one line)
    message : the sentence for an error of a plain type or bound (pydantic's own check), or None for
        the generic one; lets a hot schema use native checks and still speak the user's words
    """
    extra: dict[tuple, list[str]] = {}
    for err in exc.errors(include_url=False):
        loc = tuple(err["loc"])
        if err["type"] == "extra_forbidden":
            extra.setdefault(loc[:-1], []).append(str(loc[-1]))
            continue
        if err["type"] == ERROR_TYPE:
            for at, line in err["ctx"]["lines"]:
                here = loc + at
                if line.startswith(FIELD):
                    line = name(here) + line[len(FIELD):]
                problems.add(where(here), line)
        else:
            problems.add(where(loc), (message and message(err, loc)) or _generic(err, name(loc)))
    for loc, keys in extra.items():
        keys = sorted(keys)
        problems.add(where(loc), unknown(loc, keys) if unknown else f"unknown key(s) {', '.join(keys)}")


class Settings(BaseModel):
    """Options checked when built, by the same kind of schema as a config file.

    A bad value raises ``ValueError`` whose text is the user's sentences (every problem, joined
    by ``; `` to stay one line), never pydantic's wording; callers turn it into an ``InputError``
    naming the option. Values a field check accepts are kept as given (no coercion).
    """

    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True)

    def __init__(self, **values):
        try:
            super().__init__(**values)
        except ValidationError as e:
            problems = Problems()
            add_validation_errors(e, problems, where=lambda loc: None)
            raise ValueError("; ".join(problems.items)) from None

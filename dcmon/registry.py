"""Facility registry: ``<config>/facilities/<facility_id>.yaml`` plus a racks CSV.

Validated once, at load. Every error names the file, the line or field and the bad value;
all errors of a load are collected and reported together so a user fixes them in one pass.
See ``config/facilities/example.yaml`` for an annotated facility.
"""
from __future__ import annotations

import datetime as dt
import hashlib
import os
import pickle
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml
from pydantic import ValidationError

from dcmon.config.errors import Problems, add_validation_errors
from dcmon.config.facility import (  # noqa: F401  (FACILITY_ID, NARRATIVE_SECTIONS, credit codes: read from here too)
    FACILITY_ID, NARRATIVE_SECTIONS, FacilityDoc, NarrativeDoc, credit_code_check_char, credit_code_problem,
    facility_unknown, facility_where, load_racks, meter_message, narrative_name, narrative_unknown,
)
from dcmon.config.yamlfile import load_yaml, yaml_error_where
from dcmon.errors import ConfigError

if TYPE_CHECKING:
    import pandas as pd

# Default ceiling of a meter: this many times the design power of the racks in service (or reserved,
# vacant: anything not decommissioned), and at least MIN_METER_MAX_POWER_KW [kW].
METER_MAX_POWER_FACTOR = 3.0
MIN_METER_MAX_POWER_KW = 100.0
# Ceiling of a rack: this many times its design power [kW] (a counter step beyond it is implausible).
RACK_MAX_POWER_FACTOR = 3.0


@dataclass(frozen=True)
class Meter:
    id: str
    role: str
    rollover_kwh: float | None = None
    name: str = ""
    max_gap_s: int = 900          # readings further apart than this leave a coverage hole [s]
    noise_kwh: float = 0.5        # a counter dip up to this is meter noise, not a reset [kWh]
    multiplier: float = 1.0       # CT/PT ratio applied to raw energy and power on ingestion (live and import) [-]
    max_power_kw: float | None = None  # most power the meter can carry (primary side) [kW]; None: the default


@dataclass
class Facility:
    id: str
    name: str
    operator: str
    credit_code: str
    city: str
    district: str
    kind: str
    timezone: str
    cluster_start_area: bool
    commissioned: dt.date | None
    pue_category: int
    it_energy_from: str
    meters: list[Meter]
    racks: pd.DataFrame            # columns RACK_COLUMNS, indexed 0..n-1, rack_id unique; None: read on first use
    path: Path
    racks_path: Path
    name_en: str = ""
    retrofit_completed: dt.date | None = None
    retrofit_cost_cny: float | None = None
    annual_terminals_served: int | None = None
    rack_max_gap_s: int = 1800
    extra: dict = field(default_factory=dict)
    applicant: dict = field(default_factory=dict)   # validated ``applicant:`` block (config.facility.ApplicantDoc)
    side_files: tuple = ()                          # files the config reads besides the YAML and racks CSV

    @property
    def meter_ids(self) -> set[str]:
        return {m.id for m in self.meters}

    @property
    def rack_ids(self) -> set[str]:
        ids = self.__dict__.get("_rack_ids")
        if ids is None:
            # tolist() first: iterating an Arrow-backed column boxes one scalar at a time (10× slower)
            ids = self._rack_ids = set(self.racks["rack_id"].tolist())
        return ids

    def __post_init__(self):
        if self.racks is None:     # load_registry(..., racks_on_demand=True): __getattr__ reads it when asked
            del self.racks

    def __getattr__(self, name):
        if name != "racks":
            raise AttributeError(name)
        errors = Problems()
        racks = load_racks(self.racks_path, errors)
        _rack_meter_clash(racks, self.meters, self.path, errors)
        errors.raise_if_any(f"invalid facility file {self.path}")
        self.racks = racks
        return racks

    def meters_with_role(self, role: str) -> list[Meter]:
        return [m for m in self.meters if m.role == role]

    def meter(self, meter_id: str) -> Meter:
        for m in self.meters:
            if m.id == meter_id:
                return m
        raise KeyError(meter_id)

    @property
    def default_meter_max_power_kw(self) -> float:
        """Ceiling of a meter without ``max_power_kw`` [kW]: ``METER_MAX_POWER_FACTOR`` × the design
        power of the racks not decommissioned, at least ``MIN_METER_MAX_POWER_KW``.

        A facility meter carries the IT load plus cooling and losses (PUE rarely above 2), so three
        times the racks' design power is more than any meter of the site can carry.
        """
        racks = self.racks
        cached = self.__dict__.get("_live_design_kw")
        if cached is None or cached[0] is not racks:   # once per rack table (asked for every meter)
            live = float(racks["design_power_kw"].to_numpy()[racks["status"].to_numpy() != "decommissioned"].sum()) \
                if len(racks) else 0.0
            cached = self._live_design_kw = (racks, live)
        return max(MIN_METER_MAX_POWER_KW, METER_MAX_POWER_FACTOR * cached[1])

    def meter_max_power_kw(self, meter_id: str) -> float:
        """Most power meter ``meter_id`` can carry [kW]: its ``max_power_kw`` or the facility default.
        A counter step implying more is implausible (rejected on ingestion, not counted as energy)."""
        m = self.meter(meter_id)
        return m.max_power_kw if m.max_power_kw is not None else self.default_meter_max_power_kw


@dataclass
class Registry:
    config_dir: Path
    facilities: dict[str, Facility]

    def get(self, facility_id: str) -> Facility:
        try:
            return self.facilities[facility_id]
        except KeyError:
            known = ", ".join(sorted(self.facilities)) or "none"
            raise ConfigError(f"unknown facility {facility_id!r} (known: {known})") from None

    def select(self, ids: list[str] | None) -> list[Facility]:
        if not ids:
            return [self.facilities[k] for k in sorted(self.facilities)]
        return [self.get(i) for i in ids]

    def fingerprint(self) -> str:
        """SHA-256 over every facility file and racks CSV: the config a figure was computed from."""
        h = hashlib.sha256()
        for fid in sorted(self.facilities):
            f = self.facilities[fid]
            for p in (f.path, f.racks_path, *f.side_files):
                h.update(p.name.encode())
                h.update(p.read_bytes())
        return h.hexdigest()


def _rack_meter_clash(racks: pd.DataFrame, meters: list[Meter], path: Path, errors: Problems) -> None:
    clash = sorted(set(racks["rack_id"].tolist()) & {m.id for m in meters})
    if clash:
        errors.add(path, f"rack and meter ids must differ: {', '.join(clash)}")


def _load_facility(path: Path, errors: Problems, *, racks_on_demand: bool = False) -> Facility | None:
    """One facility file, checked by ``config.facility.FacilityDoc``; its racks CSV and narrative side file."""
    try:
        doc = load_yaml(path)
    except yaml.YAMLError as e:
        errors.add(yaml_error_where(path, e), f"not valid YAML: {getattr(e, 'problem', e)}")
        return None
    if not isinstance(doc, dict):
        errors.add(path, "must be a mapping of keys (id, name, meters, racks, ...)")
        return None
    n_before = len(errors.items)
    try:
        fd = FacilityDoc.model_validate(doc, context={"stem": path.stem})
    except ValidationError as e:
        add_validation_errors(e, errors, where=facility_where(path), unknown=facility_unknown,
                              message=meter_message(doc))
        fd = None
    racks_rel = doc.get("racks")
    racks_path = (path.parent / str(racks_rel)).resolve() if racks_rel else path.with_suffix(".csv")
    racks = None     # with racks_on_demand: read on first use (Facility.__getattr__)
    if racks_rel:
        if not racks_path.is_file():
            errors.add(path, f"racks file not found: {racks_rel!r} (looked for {racks_path})")
        elif not racks_on_demand:
            racks = load_racks(racks_path, errors)
    applicant, side_files = _applicant(fd.applicant if fd else None, doc.get("applicant"), path, errors)
    if fd is None or len(errors.items) > n_before:
        return None
    meters = [Meter(id=m.id, role=m.role, rollover_kwh=m.rollover_kwh, name=m.name, max_gap_s=int(m.max_gap_s),
                    noise_kwh=m.noise_kwh, multiplier=m.multiplier, max_power_kw=m.max_power_kw)
              for m in fd.meters]
    if racks is not None:
        _rack_meter_clash(racks, meters, path, errors)
        if len(errors.items) > n_before:
            return None
    r = fd.retrofit
    return Facility(
        id=fd.id, name=fd.name, name_en=fd.name_en, operator=fd.operator, credit_code=fd.credit_code,
        city=fd.city, district=fd.district, kind=fd.kind, timezone=fd.timezone,
        cluster_start_area=fd.cluster_start_area, commissioned=fd.commissioned, pue_category=fd.pue_category,
        it_energy_from=fd.it_energy_from, meters=meters, racks=racks, path=path, racks_path=racks_path,
        retrofit_completed=r.completed if r else None, retrofit_cost_cny=r.cost_cny if r else None,
        annual_terminals_served=fd.annual_terminals_served, rack_max_gap_s=fd.max_gap_s,
        extra={k: doc[k] for k in ("address", "contact", "notes") if k in doc},
        applicant=applicant, side_files=side_files,
    )


def _applicant(block, raw, path: Path, errors: Problems) -> tuple[dict, tuple]:
    """The validated ``applicant:`` block as a dict, with its narrative read (inline or a side file)."""
    out = block.as_dict() if block is not None else {}
    nar = raw.get("narrative") if isinstance(raw, dict) else None
    if nar is None or not isinstance(nar, (str, dict)):
        return out, ()
    side: tuple = ()
    where = f"{path} applicant"
    if isinstance(nar, str):
        npath = (path.parent / nar).resolve()
        if not npath.is_file():
            errors.add(where, f"applicant.narrative file not found: {nar!r} (looked for {npath})")
            return out, ()
        side, where = (npath,), str(npath)
        try:
            nar = load_yaml(npath)
        except yaml.YAMLError as e:
            errors.add(npath, f"not valid YAML: {getattr(e, 'problem', e)}")
            return out, side
    try:
        doc = NarrativeDoc.model_validate(nar)
    except ValidationError as e:
        add_validation_errors(e, errors, where=lambda loc: where, name=narrative_name, unknown=narrative_unknown)
    else:
        out["narrative"] = {k: v for k, v in doc.model_dump().items() if v is not None}
    return out, side


def load_registry(config_dir, *, racks_on_demand: bool = False) -> Registry:
    """Load and validate every facility under ``<config_dir>/facilities``.

    With ``racks_on_demand`` a facility's rack CSV is read and validated when its ``racks`` are
    first used (an invalid one then raises ``ConfigError``), so a command about one facility
    does not read all of them; every facility file is still read and validated now.

    A valid configuration is kept as a snapshot (:func:`snapshot_path`) and later loads take it
    in one read while every file it was made from is unchanged; see :func:`_read_snapshot`.
    """
    config_dir = Path(config_dir)
    snap = snapshot_path(config_dir)
    registry = _read_snapshot(snap, config_dir) if snap else None
    if registry is not None:
        return registry
    started_ns = time.time_ns()
    registry = _validate(config_dir, racks_on_demand=racks_on_demand)
    if snap and not racks_on_demand:   # only a configuration validated in full is kept
        _write_snapshot(snap, registry, started_ns)
    return registry


def _validate(config_dir: Path, *, racks_on_demand: bool) -> Registry:
    fdir = config_dir / "facilities"
    if not fdir.is_dir():
        raise ConfigError(f"{config_dir}: no facilities/ folder (expected {fdir}/<facility_id>.yaml)")
    errors = Problems()
    facilities: dict[str, Facility] = {}
    for path in _facility_files(fdir):
        fac = _load_facility(path, errors, racks_on_demand=racks_on_demand)
        if fac is not None:
            if fac.id in facilities:
                errors.add(path, f"facility id {fac.id!r} also defined in {facilities[fac.id].path}")
            facilities[fac.id] = fac
    errors.raise_if_any(f"invalid configuration in {config_dir}")
    if not facilities:
        raise ConfigError(f"{fdir}: no facility files (*.yaml)")
    return Registry(config_dir=config_dir, facilities=facilities)


def _facility_files(fdir: Path) -> list[Path]:
    return sorted(fdir.glob("*.yaml")) + sorted(fdir.glob("*.yml"))


# ------------------------------------------------------------------------------ registry snapshot
# Bump when what a snapshot holds changes shape; the code's own files are part of the key as well.
SNAPSHOT_FORMAT = 1
_SNAPSHOT_CODE = ("dcmon.registry", "dcmon.config.facility", "dcmon.config.fields", "dcmon.config.errors",
                  "dcmon.config.yamlfile", "dcmon.readings")


def cache_dir() -> Path:
    """Where dcmon keeps what it can rebuild: ``$DCMON_CACHE``, else ``$XDG_CACHE_HOME/dcmon`` or ``~/.cache/dcmon``."""
    env = os.environ.get("DCMON_CACHE")
    if env:
        return Path(env)
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "dcmon"


def snapshot_path(config_dir: Path) -> Path | None:
    """The snapshot file of ``config_dir`` (as written, from this working directory: the paths a
    registry holds are spelt that way), or None when ``DCMON_CACHE`` is ``off``."""
    if os.environ.get("DCMON_CACHE") == "off":
        return None
    ident = f"{config_dir}\0{'' if config_dir.is_absolute() else os.getcwd()}".encode()
    return cache_dir() / "registry" / f"{hashlib.sha256(ident).hexdigest()[:40]}.pickle"


def _code_key() -> tuple:
    """dcmon's version, Python's and pandas', and the size and time of the code that validates."""
    import pandas as pd   # a snapshot holds DataFrames: another pandas may not read it
    from dcmon import __version__
    files = []
    for name in _SNAPSHOT_CODE:
        f = sys.modules[name].__file__
        st = os.stat(f)
        files.append((name, st.st_size, st.st_mtime_ns))
    return (SNAPSHOT_FORMAT, __version__, sys.version, pd.__version__, pickle.HIGHEST_PROTOCOL, tuple(files))


def _file_key(path: Path) -> tuple:
    """(path, size, modification time [ns], SHA-256 of the content) of one configuration file."""
    st = os.stat(path)
    return (str(path), st.st_size, st.st_mtime_ns, hashlib.sha256(Path(path).read_bytes()).hexdigest())


def _owner_only(path: Path, *, directory: bool) -> bool:
    """Whether ``path`` is ours and nobody else may write it (a snapshot is unpickled: only trust our own)."""
    st = os.lstat(path)
    kind_ok = (st.st_mode & 0o170000) == (0o040000 if directory else 0o100000)
    return kind_ok and st.st_uid == os.getuid() and not st.st_mode & (0o077 if directory else 0o022)


def _read_snapshot(snap: Path, config_dir: Path) -> Registry | None:
    """The registry kept in ``snap`` if every file it was validated from is unchanged, else None.

    Unchanged means: the same facility files in ``facilities/``, and each file read (facility
    YAML, racks CSV, side files) with the same size, modification time and SHA-256; and the same
    dcmon code. A snapshot that is missing, damaged, stale or not owner-only is ignored (the
    configuration is validated again); validation errors are never kept, so an invalid
    configuration fails with the same lines every time.
    """
    try:
        if not (_owner_only(snap.parent, directory=True) and _owner_only(snap, directory=False)):
            return None
        with open(snap, "rb") as fh:
            head = pickle.load(fh)
            if (not isinstance(head, dict) or head.get("code") != _code_key()
                    or head.get("facility_files") != [str(p) for p in _facility_files(config_dir / "facilities")]):
                return None
            for key in head["files"]:
                if _file_key(Path(key[0])) != tuple(key):
                    return None
            registry = pickle.load(fh)
        return registry if isinstance(registry, Registry) else None
    except Exception:   # noqa: BLE001 — any damage means: validate again (never a wrong registry, never a traceback)
        return None


def _write_snapshot(snap: Path, registry: Registry, started_ns: int) -> None:
    """Keep ``registry`` in ``snap`` (owner-only), keyed by the files it was validated from.

    Not kept when a file changed while it was being validated (modified at or after the start,
    with a second's margin for coarse file times): what was read may not be what is there now.
    Failing to write is not an error: the next load validates again.
    """
    tmp = None
    try:
        files = []
        for f in registry.facilities.values():
            for p in (f.path, f.racks_path, *f.side_files):
                files.append(_file_key(p))
        if any(os.stat(k[0]).st_mtime_ns >= started_ns - 1_000_000_000 for k in files):
            return
        head = {"code": _code_key(), "files": files,
                "facility_files": [str(p) for p in _facility_files(registry.config_dir / "facilities")]}
        snap.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        os.chmod(snap.parent, 0o700)
        if not _owner_only(snap.parent, directory=True):
            return
        tmp = snap.with_name(f".{snap.name}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as fh:
            pickle.dump(head, fh, protocol=pickle.HIGHEST_PROTOCOL)
            pickle.dump(registry, fh, protocol=pickle.HIGHEST_PROTOCOL)
        os.replace(tmp, snap)
    except Exception:   # noqa: BLE001 — a read-only or full cache folder only costs the next load its time
        if tmp is not None:
            tmp.unlink(missing_ok=True)

"""``run.json`` as typed, versioned records: what `satscope run` writes and every reader reads.

`docs/run-format.md` is the prose; ``satscope.run_format`` holds the file names, Arrow schemas and
atomic writers; this module holds the manifest. Every writer builds it here (``Manifest.new`` for
a run that starts, ``to_json`` before writing) and every reader parses it here (``from_json``),
the test suite's synthetic runs included, so a field cannot drift between them. Like
``run_format`` it imports nothing else of satscope.

``from_json`` accepts every version-1 file: a field added later gets its default, and the
load-generator judgement that early runs recorded (``validity.loadgen_saturated`` and its reason)
is kept, since the report falls back on it when ``loadgen.parquet`` is absent. A file whose
``format_version`` is newer than this code's, or whose fields have the wrong types, is a
``ManifestError`` that names the field.
"""

from __future__ import annotations

import dataclasses
import os
import platform
import socket
import time
from dataclasses import asdict, dataclass, field
from typing import Any

from satscope.run_format import FORMAT_VERSION

__all__ = [
    "STATUSES",
    "Clock",
    "LoadgenFigures",
    "Manifest",
    "ManifestError",
    "Owner",
    "StageRecord",
    "Validity",
]

STATUSES = ("running", "complete", "interrupted", "failed", "abandoned")


class ManifestError(ValueError):
    """``run.json`` does not hold a manifest this code can read; the message names the field."""


def _num(value: Any, where: str, nullable: bool = False) -> float | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ManifestError(f"{where} must be a number{' or null' if nullable else ''}, not {value!r}")
    return float(value)


def _int(value: Any, where: str, nullable: bool = False) -> int | None:
    if value is None and nullable:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ManifestError(f"{where} must be a whole number{' or null' if nullable else ''}, not {value!r}")
    return value


def _str(value: Any, where: str, nullable: bool = False) -> str | None:
    if value is None and nullable:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{where} must be a string{' or null' if nullable else ''}, not {value!r}")
    return value


def _obj(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ManifestError(f"{where} must be an object, not {type(value).__name__}")
    return value


def _known(d: dict[str, Any], names: set[str], where: str) -> None:
    unknown = sorted(set(d) - names)
    if unknown:
        raise ManifestError(f"{where} has fields the run format does not define: {', '.join(unknown)}")


def _list(value: Any, where: str) -> list[Any]:
    if not isinstance(value, list):
        raise ManifestError(f"{where} must be a list, not {type(value).__name__}")
    return value


@dataclass(slots=True)
class Clock:
    """The run's origin: monotonic seconds (every time in the run) and the wall clock then."""

    monotonic_origin_s: float
    wall_origin_unix_s: float

    @classmethod
    def from_json(cls, d: Any) -> Clock:
        d = _obj(d, "clock")
        return cls(
            _num(d.get("monotonic_origin_s"), "clock.monotonic_origin_s"),  # type: ignore[arg-type]
            _num(d.get("wall_origin_unix_s"), "clock.wall_origin_unix_s"),  # type: ignore[arg-type]
        )


@dataclass(slots=True)
class Owner:
    """The `satscope run` process writing the run: a reader checks it is alive while ``running``."""

    pid: int | None = None
    hostname: str | None = None
    process_start_unix_s: float | None = None

    @classmethod
    def current(cls) -> Owner:
        try:
            import psutil

            started: float | None = psutil.Process().create_time()
        except (ImportError, OSError):
            started = None
        return cls(os.getpid(), socket.gethostname(), started)

    @classmethod
    def from_json(cls, d: Any) -> Owner:
        d = _obj(d or {}, "owner")
        return cls(
            _int(d.get("pid"), "owner.pid", True),
            _str(d.get("hostname"), "owner.hostname", True),
            _num(d.get("process_start_unix_s"), "owner.process_start_unix_s", True),
        )


@dataclass(slots=True)
class StageRecord:
    """One stage of the shape as it ran (monotonic seconds); unused load fields are null."""

    name: str
    start_s: float
    end_s: float | None  # null: a stage still going (a run read while it runs)
    kind: str  # closed (users) or open (arrival rate)
    profile: str | None = "hold"  # hold, linear or sine; null in runs written before profiles
    users: float | None = None
    spawn_rate: float | None = None
    rate_rps: float | None = None
    arrival: str | None = None

    @classmethod
    def from_json(cls, d: Any, i: int) -> StageRecord:
        w = f"stages[{i}]"
        d = _obj(d, w)
        kind = _str(d.get("kind", "closed"), f"{w}.kind")
        if kind not in ("closed", "open"):
            raise ManifestError(f"{w}.kind must be closed or open, not {kind!r}")
        return cls(
            _str(d.get("name"), f"{w}.name"),  # type: ignore[arg-type]
            _num(d.get("start_s"), f"{w}.start_s"),  # type: ignore[arg-type]
            _num(d.get("end_s"), f"{w}.end_s", True),
            kind,  # type: ignore[arg-type]
            _str(d.get("profile"), f"{w}.profile", True),
            _num(d.get("users"), f"{w}.users", True),
            _num(d.get("spawn_rate"), f"{w}.spawn_rate", True),
            _num(d.get("rate_rps"), f"{w}.rate_rps", True),
            _str(d.get("arrival"), f"{w}.arrival", True),
        )


@dataclass(slots=True)
class Validity:
    """What a reader must know before trusting the figures (docs/run-format.md)."""

    interrupted: bool = False
    token_mismatches: int = 0
    target_errors: int = 0
    target_lost_s: float | None = None
    missing_probes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    # recorded by runs before the report judged the client itself; never written by this code
    loadgen_saturated: bool | None = None
    loadgen_saturated_reason: str | None = None

    @classmethod
    def from_json(cls, d: Any) -> Validity:
        d = _obj(d or {}, "validity")
        flag = d.get("loadgen_saturated")
        if flag is not None and not isinstance(flag, bool):
            raise ManifestError(f"validity.loadgen_saturated must be true, false or null, not {flag!r}")
        interrupted = d.get("interrupted", False)
        if not isinstance(interrupted, bool):
            raise ManifestError(f"validity.interrupted must be true or false, not {interrupted!r}")
        return cls(
            interrupted,
            _int(d.get("token_mismatches", 0), "validity.token_mismatches"),  # type: ignore[arg-type]
            _int(d.get("target_errors", 0), "validity.target_errors"),  # type: ignore[arg-type]
            _num(d.get("target_lost_s"), "validity.target_lost_s", True),
            [
                _str(x, "validity.missing_probes[]")
                for x in _list(d.get("missing_probes", []), "validity.missing_probes")
            ],  # type: ignore[misc]
            [_str(x, "validity.notes[]") for x in _list(d.get("notes", []), "validity.notes")],  # type: ignore[misc]
            flag,
            _str(d.get("loadgen_saturated_reason"), "validity.loadgen_saturated_reason", True),
        )

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        for legacy in ("loadgen_saturated", "loadgen_saturated_reason"):
            if out[legacy] is None:
                del out[legacy]
        return out


@dataclass(slots=True)
class LoadgenFigures:
    """The load generator's own figures; the judgement of them is the report's (satscope/reports/_client.py)."""

    requests_sent: int = 0
    records_written: int = 0
    calibration_requests: int = 0
    workers: int = 0
    worker_clock_offsets_s: dict[str, float] = field(default_factory=dict)
    cpu_max: float | None = None
    cpu_p90: float | None = None
    loop_lag_p90_s: float | None = None
    loop_lag_p99_s: float | None = None
    late_dispatches: int = 0
    dropped_dispatches: int = 0
    connection_retries: int = 0
    max_in_flight: float | None = None

    @classmethod
    def from_json(cls, d: Any) -> LoadgenFigures:
        d = _obj(d or {}, "loadgen")
        out = cls()
        for f in dataclasses.fields(cls):
            if f.name not in d:
                continue
            value, where = d[f.name], f"loadgen.{f.name}"
            if f.name == "worker_clock_offsets_s":
                offsets = _obj(value or {}, where)
                setattr(out, f.name, {str(k): _num(v, f"{where}.{k}") for k, v in offsets.items()})
            elif isinstance(f.default, int):
                setattr(out, f.name, _int(value, where))
            else:
                setattr(out, f.name, _num(value, where, True))
        return out


@dataclass(slots=True)
class Manifest:
    """``run.json``, format version 1. ``config``, ``target``, ``versions`` and ``host`` stay open
    objects (their keys are documented, and grow with the options); the rest is typed."""

    run_id: str
    status: str
    command: list[str]
    config: dict[str, Any]
    target: dict[str, Any]
    versions: dict[str, Any]
    host: dict[str, Any]
    clock: Clock
    start_s: float
    owner: Owner = field(default_factory=Owner)
    end_s: float | None = None
    stages: list[StageRecord] = field(default_factory=list)
    validity: Validity = field(default_factory=Validity)
    loadgen: LoadgenFigures = field(default_factory=LoadgenFigures)
    files: list[str] = field(default_factory=list)
    format_version: int = FORMAT_VERSION

    def __post_init__(self) -> None:
        if self.status not in STATUSES:
            raise ManifestError(f"status must be one of {', '.join(STATUSES)}, not {self.status!r}")

    @classmethod
    def new(
        cls, run_id: str, command: list[str], config: dict[str, Any], target: dict[str, Any], versions: dict[str, Any]
    ) -> Manifest:
        """A ``running`` manifest of this process and machine, with the clock origin taken now."""
        mono, wall = time.monotonic(), time.time()
        try:
            memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        except (ValueError, OSError, AttributeError):
            memory = None
        host = {
            "hostname": socket.gethostname(),
            "cpu_count": os.cpu_count(),
            "platform": platform.platform(),
            "memory_bytes": memory,
        }
        return cls(
            run_id=run_id,
            status="running",
            command=command,
            config=config,
            target=target,
            versions=versions,
            host=host,
            clock=Clock(mono, wall),
            start_s=mono,
            owner=Owner.current(),
            loadgen=LoadgenFigures(workers=int(config.get("workers", 0) or 0)),
        )

    def to_json(self) -> dict[str, Any]:
        """The JSON object, fields in the documented order."""
        return {
            "format_version": self.format_version,
            "run_id": self.run_id,
            "status": self.status,
            "command": list(self.command),
            "config": self.config,
            "target": self.target,
            "versions": self.versions,
            "host": self.host,
            "clock": asdict(self.clock),
            "owner": asdict(self.owner),
            "start_s": self.start_s,
            "end_s": self.end_s,
            "stages": [asdict(s) for s in self.stages],
            "validity": self.validity.to_json(),
            "loadgen": asdict(self.loadgen),
            "files": list(self.files),
        }

    @classmethod
    def from_json(cls, d: Any, strict: bool = False) -> Manifest:
        """Parse and check a ``run.json`` object; ManifestError names the first bad field.

        ``strict`` (what a writer asks) also refuses fields the type does not know, at the top
        level and in ``validity`` and ``loadgen``, so that nothing is dropped unnoticed."""
        d = _obj(d, "run.json")
        if strict:
            _known(d, {f.name for f in dataclasses.fields(cls)}, "run.json")
            _known(d.get("validity") or {}, {f.name for f in dataclasses.fields(Validity)}, "validity")
            _known(d.get("loadgen") or {}, {f.name for f in dataclasses.fields(LoadgenFigures)}, "loadgen")
        version = d.get("format_version", FORMAT_VERSION)
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            raise ManifestError(f"format_version must be a whole number >= 1, not {version!r}")
        if version > FORMAT_VERSION:
            raise ManifestError(
                f"format_version {version} is newer than this satscope reads ({FORMAT_VERSION}); upgrade satscope"
            )
        for key in ("status", "clock", "start_s"):
            if key not in d:
                raise ManifestError(f"field `{key}` is missing")
        command = _list(d.get("command", []), "command")
        return cls(
            run_id=_str(d.get("run_id", ""), "run_id") or "",
            status=_str(d["status"], "status"),  # type: ignore[arg-type]
            command=[str(x) for x in command],
            config=_obj(d.get("config") or {}, "config"),
            target=_obj(d.get("target") or {}, "target"),
            versions=_obj(d.get("versions") or {}, "versions"),
            host=_obj(d.get("host") or {}, "host"),
            clock=Clock.from_json(d["clock"]),
            start_s=_num(d["start_s"], "start_s"),  # type: ignore[arg-type]
            owner=Owner.from_json(d.get("owner")),
            end_s=_num(d.get("end_s"), "end_s", True),
            stages=[StageRecord.from_json(s, i) for i, s in enumerate(_list(d.get("stages", []), "stages"))],
            validity=Validity.from_json(d.get("validity")),
            loadgen=LoadgenFigures.from_json(d.get("loadgen")),
            files=[str(x) for x in _list(d.get("files", []), "files")],
            format_version=version,
        )

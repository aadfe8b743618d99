"""Which programme is in force: the newest version a group admin stored, else the group's file, else the
shipped defaults. Versions are kept (never edited) so that the history of a group's rules stays readable.

- the file: ``PROGRAMME_FILE`` in the service config (default ``config/programme.yml``; absent: defaults);
- a stored version: ``members.set_programme`` (group admins), checked like the file, numbered 1, 2, ...
"""

from __future__ import annotations

import functools
import json
import os
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import bindparam, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.clock import utcnow
from services.kit.config import REPO_ROOT, resolve_path
from services.kit.errors import Conflict, Invalid
from services.kit.schemas import load
from services.members.models import Member, ProgrammeVersion
from services.members.rules.programme import (
    DEFAULT_PROGRAMME,
    Programme,
    problems,
    programme_document,
    programme_from_document,
)
from services.members.schemas import ProgrammeSchema

DEFAULT_FILE = REPO_ROOT / "config" / "programme.yml"


@dataclass(frozen=True)
class InForce:
    programme: Programme
    version: int  # 0 unless a stored version is in force
    source: str  # "database", "file" or "defaults"


def parse(document: Any, currency: str) -> Programme:
    """A programme from a document (file or API), or ``Invalid`` saying what is wrong with it."""
    data = load(ProgrammeSchema(), document)
    programme = programme_from_document(data)
    found = problems(programme)
    if programme.currency != currency:
        found.setdefault("currency", []).append(f"Thresholds must be in the group's currency, {currency}.")
    if found:
        first = next(iter(found))
        raise Invalid(f"The programme cannot be used. {first}: {found[first][0]}", found)
    return programme


@functools.lru_cache(maxsize=16)
def _from_file(path: str, modified: float, currency: str) -> Programme:
    with open(path, encoding="utf-8") as handle:
        return parse(yaml.safe_load(handle) or {}, currency)


@functools.lru_cache(maxsize=64)
def _from_stored(document: str, currency: str) -> Programme:
    return parse(json.loads(document), currency)


def file_path(config: dict[str, Any]) -> Path | None:
    path = resolve_path(config.get("PROGRAMME_FILE"), DEFAULT_FILE)
    return path if path.exists() else None


_NEWEST = select(ProgrammeVersion.version, ProgrammeVersion.document).order_by(ProgrammeVersion.version.desc()).limit(1)


def in_force(session: Session, config: dict[str, Any], currency: str) -> InForce:
    """The programme that applies now (one indexed row read; parsed versions are cached)."""
    stored = session.execute(_NEWEST).first()
    if stored is not None:
        return InForce(_from_stored(stored.document, currency), stored.version, "database")
    return _not_stored(config, currency)


FILE_LOOKED_AT_EVERY = 1.0
"""Seconds between two looks at the programme file (whether it is there, when it changed): every event of a paid
visit asks which programme is in force, and two ``stat`` calls each were 2.6 % of members' time in the flow."""
_FILE_SEEN: dict[str, tuple[float, str | None, float]] = {}  # configured path -> (looked at, path found, modified)


def _file_now(config: dict[str, Any]) -> tuple[str, float] | None:
    """The programme file's path and modification time (None: no file), looked at once a ``FILE_LOOKED_AT_EVERY``."""
    configured, now = str(config.get("PROGRAMME_FILE") or ""), time.monotonic()
    seen = _FILE_SEEN.get(configured)
    if seen is None or now - seen[0] >= FILE_LOOKED_AT_EVERY:
        path = file_path(config)
        try:
            seen = (now, str(path), os.path.getmtime(path)) if path is not None else (now, None, 0.0)
        except OSError:  # removed between the two looks
            seen = (now, None, 0.0)
        _FILE_SEEN[configured] = seen
    return (seen[1], seen[2]) if seen[1] is not None else None


def _not_stored(config: dict[str, Any], currency: str) -> InForce:
    found = _file_now(config)
    if found is not None:
        return InForce(_from_file(found[0], found[1], currency), 0, "file")
    return InForce(DEFAULT_PROGRAMME, 0, "defaults")


STAMP = (select(ProgrammeVersion.version).order_by(ProgrammeVersion.version.desc()).limit(1).scalar_subquery(),
         select(ProgrammeVersion.created_at).order_by(ProgrammeVersion.version.desc()).limit(1).scalar_subquery())
"""The newest stored version's number and when it was stored, as two columns of a statement that reads other things
(``arrivals``): what names the programme in force without its document (a number alone would not: two databases,
a test's and the next one's, both have a version 1)."""

_DOCUMENT = select(ProgrammeVersion.document).where(ProgrammeVersion.version == bindparam("version"))
_BY_STAMP: dict[tuple[int, datetime, str], Programme] = {}
_BY_STAMP_MAX = 64


def in_force_at(session: Session, config: dict[str, Any], currency: str, version: int | None,
                stored_at: datetime | None) -> InForce:
    """``in_force`` when the newest version's ``STAMP`` was read already: the stored document is read and parsed the
    first time the process meets that version, not on every event (versions are never edited)."""
    if version is None or stored_at is None:
        return _not_stored(config, currency)
    key = (version, stored_at, currency)
    programme = _BY_STAMP.get(key)
    if programme is None:
        programme = _from_stored(session.execute(_DOCUMENT, {"version": version}).scalar_one(), currency)
        if len(_BY_STAMP) >= _BY_STAMP_MAX:
            _BY_STAMP.clear()
        _BY_STAMP[key] = programme
    return InForce(programme, version, "database")


def keeps_held_tiers(session: Session, current: Programme, proposed: Programme) -> None:
    """``Conflict`` if ``proposed`` drops a tier that members still hold."""
    removed = set(current.codes) - set(proposed.codes)
    if removed:
        held = session.scalars(select(Member.tier).where(Member.tier.in_(sorted(removed))).limit(1)).first()
        if held is not None:
            raise Conflict(f"Members still hold the tier {held!r}: keep it in the programme (you may change "
                           "its thresholds and benefits).", details={"tier": held})


def store(session: Session, config: dict[str, Any], currency: str, document: Any, note: str | None,
          expected_version: int | None, actor: str) -> InForce:
    """Put a new version in force. ``expected_version``: refuse if someone else changed it meanwhile."""
    programme = parse(document, currency)
    current = in_force(session, config, currency)
    if expected_version is not None and expected_version != current.version:
        raise Conflict(f"The programme changed meanwhile (now version {current.version}); reload and edit again.",
                       details={"version": current.version})
    keeps_held_tiers(session, current.programme, programme)
    version = current.version + 1
    session.add(ProgrammeVersion(version=version, document=json.dumps(programme_document(programme)),
                                 note=note, created_at=utcnow(), created_by=actor))
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise Conflict("Someone stored another version at the same moment; reload and edit again.") from None
    return InForce(programme, version, "database")


def versions(session: Session, limit: int) -> list[ProgrammeVersion]:
    """The latest stored versions, newest first."""
    return list(session.scalars(select(ProgrammeVersion).order_by(ProgrammeVersion.version.desc()).limit(limit)))

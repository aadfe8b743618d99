"""Campaigns created, changed and ended through the API, and the programme in force with them merged in.

The programme file's campaigns stay in the file (read-only here); a stored campaign is checked by the
file's own rule (``rules.programme.parse_campaign``) and its code is unique across both. Each change adds a
version (``points_campaign_versions``) and says who made it; ``ended_at`` ends one early.

The earn path does not query the campaigns on every visit. Each process keeps the stored campaigns it last
loaded, per database, under the ``stamp`` of ``points_campaigns_stamp`` they were loaded at; every change
writes a new random stamp in its own transaction. A visit's earn reads that one row (a primary-key read) in
its own transaction and reloads only when the stamp moved, so a campaign created, changed or ended applies
to every visit earned after the change answered, on every replica, with no time-to-live to wait out. The
stamp is random rather than a counter so that a database emptied and refilled (tests, a restore) can never
present an old number with new contents.
"""

from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass, replace
from datetime import date, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.kit.db import dialect_insert
from services.kit.errors import Conflict, Invalid, NotFound
from services.points import earning_rules
from services.points.models import Campaign as CampaignRow
from services.points.models import CampaignsStamp, CampaignVersion
from services.points.rules.programme import Campaign, Programme, campaign_state, parse_campaign, plain

CODE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,31}", re.ASCII)  # gateway.paths "campaign_code" has this shape
STAMP_ROW = 1
_STAMP = select(CampaignsStamp.stamp).where(CampaignsStamp.id == STAMP_ROW)
STAMP_SQL = f"SELECT stamp FROM points_campaigns_stamp WHERE id = {STAMP_ROW}"
"""The same read as text, for a statement that goes with another in one round trip (``awards.hold_visit``)."""
UNREAD = object()


@dataclass(frozen=True)
class Stored:
    """A stored campaign's current terms, with its row (who, when, ended)."""

    row: CampaignRow
    terms: Campaign


@dataclass
class _Loaded:
    stamp: str | None
    campaigns: tuple[Campaign, ...]
    merged: tuple[Programme, Programme] | None = None  # (the file's programme, it with these rules and campaigns)
    # the earning rules stored through the API (earning_rules.py) at this stamp, read by the first in_force
    earning: dict[str, Any] | None = None
    earning_read: bool = False


_loaded: dict[str, _Loaded] = {}  # per database URL: several services share a process in tests


def _database(session: Session) -> str:
    return str(session.get_bind().url)


def _current(session: Session, stamp: Any = UNREAD) -> _Loaded:
    if stamp is UNREAD:
        stamp = session.execute(_STAMP).scalar_one_or_none()
    key = _database(session)
    cached = _loaded.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached
    campaigns = tuple(item.terms for item in _stored(session) if item.row.ended_at is None)
    cached = _Loaded(stamp, campaigns)
    _loaded[key] = cached
    return cached


def in_force(session: Session, base: Programme, stamp: Any = UNREAD) -> Programme:
    """``base`` (the file's programme) with the earning rules stored through the API over it, then the stored
    campaigns not ended by hand (one row read when cached; both are reloaded when the stamp moved; ``stamp``:
    that row's stamp, read already in this transaction, e.g. by ``awards.hold_visit``)."""
    loaded = _current(session, stamp)
    if not loaded.earning_read:
        loaded.earning, loaded.earning_read = earning_rules.stored_terms(session), True
    if not loaded.campaigns and not loaded.earning:
        return base
    if loaded.merged is None or loaded.merged[0] is not base:  # settings caches the file's: one entry is enough
        ruled = earning_rules.apply(base, loaded.earning)
        loaded.merged = (base, replace(ruled, campaigns=ruled.campaigns + loaded.campaigns))
    return loaded.merged[1]


def _stored(session: Session) -> list[Stored]:
    rows = session.execute(
        select(CampaignRow, CampaignVersion.terms)
        .join(CampaignVersion, (CampaignVersion.campaign_id == CampaignRow.id)
              & (CampaignVersion.version == CampaignRow.version))
        .order_by(CampaignRow.created_at, CampaignRow.code)).all()
    return [Stored(row, _terms(terms)) for row, terms in rows]


def _terms(terms: str) -> Campaign:
    return parse_campaign(json.loads(terms))


def _changing(session: Session, now: datetime) -> None:
    """Take the stamp row's lock and write a new stamp: changes run one at a time (a code, a version read after
    this is the one the previous change committed), and every cache sees this change once it commits."""
    stamp = uuid.uuid4().hex
    insert = dialect_insert(session, CampaignsStamp).values(id=STAMP_ROW, stamp=stamp, changes=1, changed_at=now)
    session.execute(insert.on_conflict_do_update(
        index_elements=[CampaignsStamp.id],
        set_={"stamp": stamp, "changes": CampaignsStamp.changes + 1, "changed_at": now}))


def _locked(session: Session, code: str) -> CampaignRow:
    row = session.scalars(select(CampaignRow).where(CampaignRow.code == code).with_for_update()).first()
    if row is None:
        raise NotFound(f"No campaign {code!r} was created through the API.")
    return row


def _from_file(base: Programme, code: str) -> Campaign | None:
    return next((c for c in base.campaigns if c.code == code), None)


def _version(row: CampaignRow, terms: Campaign, now: datetime, actor: str) -> CampaignVersion:
    return CampaignVersion(campaign_id=row.id, version=row.version, terms=json.dumps(plain(terms)),
                           created_at=now, created_by=actor)


def create(session: Session, base: Programme, raw: Any, now: datetime, actor: str) -> Stored:
    """A new campaign (version 1); its code must be new to the file and to the stored campaigns."""
    terms = parse_campaign(raw)
    if not CODE.fullmatch(terms.code):
        raise Invalid("A campaign code is 1 to 32 letters, digits, _ or - (it names the campaign in URLs).",
                      {"code": ["1 to 32 letters, digits, _ or -, starting with a letter or digit."]})
    _changing(session, now)
    if _from_file(base, terms.code) is not None or session.scalars(
            select(CampaignRow.id).where(CampaignRow.code == terms.code)).first() is not None:
        raise Conflict(f"A campaign with the code {terms.code!r} exists already; choose another code.",
                       details={"code": terms.code})
    row = CampaignRow(id=uuid.uuid4(), code=terms.code, version=1, created_at=now, created_by=actor,
                      updated_at=now, updated_by=actor)
    session.add(row)
    session.flush()
    session.add(_version(row, terms, now, actor))
    session.flush()
    return Stored(row, terms)


def update(session: Session, base: Programme, code: str, raw: Any, expected_version: int | None, today: date,
           now: datetime, actor: str) -> Stored:
    """The next version of a stored campaign (its code cannot change); refused once it ended, or when
    ``expected_version`` is not the version in force (someone changed it meanwhile)."""
    if _from_file(base, code) is not None:
        raise Conflict(f"The campaign {code!r} is in the programme file: change it there.")
    if not isinstance(raw, dict):
        raise Invalid("Send the campaign's terms as an object.", {"campaign": ["Must be an object."]})
    if raw.get("code", code) != code:
        raise Invalid("A campaign's code cannot change; create a new campaign instead.",
                      {"code": ["Cannot change."]})
    terms = parse_campaign({**raw, "code": code})
    _changing(session, now)
    row = _locked(session, code)
    current = _terms(session.get(CampaignVersion, (row.id, row.version)).terms)
    if campaign_state(current, row.ended_at is not None, today) == "ended":
        raise Conflict(f"The campaign {code!r} has ended: create a new one instead.", details={"state": "ended"})
    if expected_version is not None and expected_version != row.version:
        raise Conflict(f"The campaign {code!r} changed meanwhile (now version {row.version}, you had "
                       f"{expected_version}); reload it and edit again.", details={"version": row.version})
    row.version += 1
    row.updated_at, row.updated_by = now, actor
    session.add(_version(row, terms, now, actor))
    session.flush()
    return Stored(row, terms)


def end(session: Session, base: Programme, code: str, now: datetime, actor: str) -> Stored:
    """End a stored campaign now (visits earned from now on no longer get it); ending it again changes nothing."""
    if _from_file(base, code) is not None:
        raise Conflict(f"The campaign {code!r} is in the programme file: end it there.")
    _changing(session, now)
    row = _locked(session, code)
    if row.ended_at is None:
        row.ended_at, row.ended_by = now, actor
        row.updated_at, row.updated_by = now, actor
        session.flush()
    return Stored(row, _terms(session.get(CampaignVersion, (row.id, row.version)).terms))


def describe(item: Stored | Campaign, today: date) -> dict[str, Any]:
    """A campaign for the API: its terms, state and (stored ones) who created, changed and ended it."""
    if isinstance(item, Campaign):
        return {**plain(item), "source": "file", "state": campaign_state(item, False, today), "version": None}
    row = item.row
    return {**plain(item.terms), "source": "api", "state": campaign_state(item.terms, row.ended_at is not None, today),
            "version": row.version, "created_at": row.created_at, "created_by": row.created_by,
            "updated_at": row.updated_at, "updated_by": row.updated_by, "ended_at": row.ended_at,
            "ended_by": row.ended_by}


def listing(session: Session, base: Programme, today: date, state: str | None) -> list[dict[str, Any]]:
    """The file's campaigns, then the stored ones in the order they were created; ``state``: only those."""
    found = [describe(c, today) for c in base.campaigns] + [describe(s, today) for s in _stored(session)]
    return [c for c in found if state is None or c["state"] == state]


def get(session: Session, base: Programme, code: str, today: date) -> dict[str, Any]:
    """One campaign; a stored one with every version, oldest first."""
    in_file = _from_file(base, code)
    if in_file is not None:
        return {**describe(in_file, today), "versions": []}
    row = session.scalars(select(CampaignRow).where(CampaignRow.code == code)).first()
    if row is None:
        raise NotFound(f"No campaign {code!r}.")
    versions = list(session.scalars(select(CampaignVersion).where(CampaignVersion.campaign_id == row.id)
                                    .order_by(CampaignVersion.version)))
    current = _terms(versions[-1].terms)
    return {**describe(Stored(row, current), today),
            "versions": [{"version": v.version, "terms": json.loads(v.terms), "created_at": v.created_at,
                          "created_by": v.created_by} for v in versions]}

"""The member register: enrolment, lookups and changes, on the members database.

Duplicates are found through blind indexes (same phone, same ID document, same name + date of birth)
and refused with the member they match; the unique indexes on phone and document make the refusal
hold when two desks enrol the same person at the same moment, and for name + date of birth (not unique:
two people may share them) an enrolment takes a ``kit.locks`` lock on that blind index before it looks.
"""

from __future__ import annotations

import uuid
from collections import Counter
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy import Select, String, any_, bindparam, func, or_, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.clock import local_date
from services.kit.config import Group
from services.kit.crypto import blind_index
from services.kit.db import fetch, parse_uuid, valid_uuids
from services.kit.errors import Conflict, Invalid, NotFound, PreconditionFailed
from services.kit.exports import changed_page
from services.kit.insert_batch import insert_rows
from services.kit.locks import serialise
from services.kit.paging import keyset_page
from services.kit.telemetry import counter
from services.members.models import Member, MemberNameToken
from services.members.rules import identity
from services.members.rules.identity import Match
from services.members.rules.tiers import next_anniversary
from services.members.schemas import (
    DOCUMENT_TYPES,
    EnrolmentSchema,
    MemberChangesSchema,
    MemberExportSchema,
    MemberSchema,
)
from services.members.segmentation import follow_branch

CARD_ATTEMPTS = 5
ENROLLED = counter("careloop_members_enrolled_total", "Members enrolled", ("branch", "source"))
UPDATED = counter("careloop_members_updated_total", "Member records changed", ("branch",))

ENROLLED_AS_GIVEN = tuple(name for name in EnrolmentSchema().fields if name not in {
    "full_name", "phone", "birth_date", "id_document", "consents", "preferred_language", "referral_code"})
"""The enrolment's fields stored as given, each in the member's column of the same name (the others are
normalised, indexed or looked up in ``enrol``): a new plain field needs its column and its schema field only."""
CHANGED_AS_GIVEN = tuple(name for name in MemberChangesSchema().fields if name not in {
    "full_name", "phone", "birth_date", "id_document", "consents", "home_branch"})
"""The same for a change (``update``)."""


@dataclass(frozen=True)
class Indexes:
    phone: str | None
    document: str | None
    name: str
    name_birth: str


def indexes_for(full_name: str, phone: str | None, birth: date | None,
                document: tuple[str, str] | None) -> Indexes:
    name = identity.normalise_name(full_name)
    return Indexes(
        phone=blind_index(phone, "members.phone"),
        document=blind_index(f"{document[0]}:{document[1]}", "members.document") if document else None,
        name=blind_index(name, "members.name"),
        name_birth=blind_index(f"{name}|{birth.isoformat() if birth else ''}", "members.name_birth"),
    )


def find_matches(session: Session, indexes: Indexes, exclude: uuid.UUID | None = None,
                 other_phones: tuple[str, ...] = ()) -> list[Match]:
    """The members an enrolment would duplicate: same phone (``indexes.phone`` or one of ``other_phones``,
    blind indexes), same ID document, same name and date of birth; with whether each has the same name."""
    phones = tuple(dict.fromkeys(phone for phone in (indexes.phone, *other_phones) if phone))
    conditions = [Member.name_birth_index == indexes.name_birth]
    if phones:
        conditions.append(Member.phone_index.in_(phones) if len(phones) > 1 else Member.phone_index == phones[0])
    if indexes.document:
        conditions.append(Member.document_index == indexes.document)
    query = select(Member).where(or_(*conditions), Member.status != "closed")
    if exclude is not None:
        query = query.where(Member.id != exclude)
    matches = []
    for member in session.scalars(query.limit(5)):
        reasons = [reason for reason, hit in (
            ("phone", member.phone_index is not None and member.phone_index in phones),
            ("id_document", indexes.document and member.document_index == indexes.document),
            ("name_and_birth_date", member.name_birth_index == indexes.name_birth),
        ) if hit]
        matches.append(Match(str(member.id), member.card_number, tuple(reasons), member.name_index == indexes.name))
    return matches


def duplicate(matches: list[Match]) -> Conflict:
    first = matches[0]
    what = {"phone": "phone number", "id_document": "ID document",
            "name_and_birth_date": "name and date of birth"}[first.matched_on[0]]
    return Conflict(f"A member with the same {what} already exists (card {first.card_number}).",
                    details={"matches": [match.as_dict() for match in matches],
                             "probable": identity.judge(matches).outcome == identity.PROBABLE})


def parse_id(member_id: Any) -> uuid.UUID:
    return parse_uuid(member_id, "member")


def get(session: Session, member_id: Any, lock: bool = False) -> Member:
    return fetch(session, Member, member_id, "member", lock=lock)


_READ = select(*(Member.__table__.c[name] for name in MemberSchema.columns())).where(
    Member.__table__.c.id == bindparam("member"))


def read(session: Session | Connection, member_id: Any) -> Any:
    """What ``MemberSchema`` shows of a member, for reading only: a prebuilt Core select of just those columns
    (the most frequent call of the service; the ORM object, its unit of work and the decryption of
    fields nobody shows cost as much again). The row dumps like a ``Member``."""
    row = session.execute(_READ, {"member": parse_id(member_id)}).first()
    if row is None:
        raise NotFound(f"No member {member_id}.")
    return row


def by_card(session: Session, card_number: str) -> Member:
    card = identity.normalise_card_number(card_number)
    member = session.scalars(select(Member).where(Member.card_number == card)).first()
    if member is None:
        raise NotFound(f"No member with card {card}.")
    return member


def _referrer(session: Session, code: str | None) -> Member | None:
    if not code:
        return None
    referrer = session.scalars(
        select(Member).where(Member.referral_code == identity.normalise_referral_code(code))).first()
    if referrer is None or referrer.status == "closed":
        raise Invalid("No member has this referral code.", {"referral_code": ["Unknown referral code."]})
    return referrer


def _document(data: dict[str, Any]) -> tuple[str, str] | None:
    document = data.get("id_document")
    if not document:
        return None
    return document["type"], identity.normalise_document(document["type"], document["number"])


@dataclass(frozen=True)
class Person:
    """An enrolment's identity in normal form, with its blind indexes (what duplicates are found by)."""

    full_name: str
    phone: str
    document: tuple[str, str] | None
    indexes: Indexes


def person_of(data: dict[str, Any], group: Group) -> Person:
    """The normal form of a loaded enrolment; ``Invalid`` for an unknown branch, a bad phone or document."""
    group.branch(data["home_branch"])
    phone = identity.parse_phone(data["phone"], group.region_of(data["home_branch"]))
    document = _document(data)
    full_name = " ".join(data["full_name"].split())
    return Person(full_name, phone, document, indexes_for(full_name, phone, data["birth_date"], document))


_MATCHED = (Member.id, Member.card_number, Member.phone_index, Member.document_index, Member.name_birth_index,
            Member.name_index)
_MATCHES_OF_MANY = select(*_MATCHED).where(or_(
    Member.name_birth_index == any_(bindparam("names", type_=ARRAY(String))),
    Member.phone_index == any_(bindparam("phones", type_=ARRAY(String))),
    Member.document_index == any_(bindparam("documents", type_=ARRAY(String)))), Member.status != "closed")


def matches_of_many(session: Session, people: list[Indexes]) -> dict[int, list[Match]]:
    """``find_matches`` for many enrolments in one query: position in ``people`` -> its matches."""
    if not people:
        return {}
    phones = [p.phone for p in people if p.phone]
    documents = [p.document for p in people if p.document]
    names = [p.name_birth for p in people]
    if session.get_bind().dialect.name == "postgresql":  # three arrays, not a bound parameter per blind index
        found = session.execute(_MATCHES_OF_MANY, {"names": names, "phones": phones, "documents": documents}).all()
    else:
        conditions = [Member.name_birth_index.in_(names)]
        if phones:
            conditions.append(Member.phone_index.in_(phones))
        if documents:
            conditions.append(Member.document_index.in_(documents))
        found = session.execute(select(*_MATCHED).where(or_(*conditions), Member.status != "closed")).all()
    by_index: dict[tuple[str, str], list[Any]] = {}  # (kind, blind index) -> the members found with it
    for member in found:
        for kind, index in (("phone", member.phone_index), ("document", member.document_index),
                            ("name_birth", member.name_birth_index)):
            if index:
                by_index.setdefault((kind, index), []).append(member)
    by_position: dict[int, list[Match]] = {}
    for position, person in enumerate(people):
        candidates = {member.id: member for kind, index in (("phone", person.phone), ("document", person.document),
                                                            ("name_birth", person.name_birth)) if index
                      for member in by_index.get((kind, index), ())}
        for member in candidates.values():
            reasons = tuple(reason for reason, hit in (
                ("phone", person.phone and member.phone_index == person.phone),
                ("id_document", person.document and member.document_index == person.document),
                ("name_and_birth_date", member.name_birth_index == person.name_birth),
            ) if hit)
            by_position.setdefault(position, []).append(Match(str(member.id), member.card_number, reasons,
                                                              member.name_index == person.name))
    return by_position


def enrol(session: Session, data: dict[str, Any], group: Group, now: datetime, entry_tier: str = "standard",
          despite_name_and_birth_date: bool = False, card_number: str | None = None) -> Member:
    """Enrol a new member; a duplicate (``find_matches``) is a ``Conflict`` naming it. With
    ``despite_name_and_birth_date`` (a person decided, in the identity review, that this is someone else),
    a member matched on name and date of birth alone does not stop it (phone and ID document still do).
    ``card_number``: the card the member had in the system an import comes from, kept when free."""
    person = person_of(data, group)
    # phone and document are unique in the table; name + date of birth is not (two people may share them),
    # so two desks enrolling the same person at once take turns here, and the second is told of the first
    serialise(session, "members.name_birth", person.indexes.name_birth)
    matches = find_matches(session, person.indexes)
    if despite_name_and_birth_date:
        matches = [match for match in matches if set(match.matched_on) != {"name_and_birth_date"}]
    if matches:
        raise duplicate(matches)
    member = new_member(data, person, _referrer(session, data.get("referral_code")), group, now, entry_tier)
    _insert_with_fresh_codes(session, member, group, person.indexes, card_number)
    _write_tokens(session, member.id, person.full_name)
    ENROLLED.labels(member.home_branch, member.source).inc()
    return member


def member_values(data: dict[str, Any], person: Person, referrer_id: uuid.UUID | None, group: Group, now: datetime,
                  entry_tier: str, review_on: date | None = None) -> dict[str, Any]:
    """The column values of a checked enrolment's member row, without its card and referral codes
    (``review_on``: the first yearly review, the same for a whole batch enrolled at ``now``)."""
    document, indexes = person.document, person.indexes
    if review_on is None:
        review_on = next_anniversary(local_date(now, group.zone), local_date(now, group.zone))
    return {
        "id": uuid.uuid4(), "referred_by_id": referrer_id,
        "full_name": person.full_name, "name_index": indexes.name, "name_birth_index": indexes.name_birth,
        "phone": person.phone, "phone_index": indexes.phone,
        "birth_date": data["birth_date"].isoformat(), "birth_mmdd": identity.birthday_key(data["birth_date"]),
        "document_type": document[0] if document else None,
        "document_number": document[1] if document else None, "document_index": indexes.document,
        "preferred_language": data.get("preferred_language") or group.default_language,
        **{f"consent_{channel}": granted for channel, granted in data["consents"].items()}, "consents_updated_at": now,
        "status": "active", "tier": entry_tier, **{name: data[name] for name in ENROLLED_AS_GIVEN},
        "enrolled_at": now, "updated_at": now, "tier_since": now, "tier_review_on": review_on,
    }


def new_member(data: dict[str, Any], person: Person, referrer: Member | None, group: Group, now: datetime,
               entry_tier: str) -> Member:
    """The ``Member`` row of a checked enrolment, not yet inserted and without its card and referral codes."""
    return Member(**member_values(data, person, referrer.id if referrer else None, group, now, entry_tier))


@dataclass(frozen=True)
class Enrolled:
    """A member ``enrol_checked`` inserted: what its answer and its ``member_enrolled`` say of it."""

    id: uuid.UUID
    card_number: str
    home_branch: str
    referred_by_id: uuid.UUID | None
    preferred_language: str
    source: str
    enrolled_at: datetime


_MEMBERS = Member.__table__
_NAME_TOKENS = MemberNameToken.__table__


def free_cards(session: Session, cards: list[str | None]) -> list[str | None]:
    """Each of ``cards`` (a legacy card number an import brings, or None) if no member holds it and no
    earlier one of the list is the same; else None (the member gets a card drawn for it)."""
    wanted = {card for card in cards if card}
    held = set(session.scalars(select(Member.card_number).where(Member.card_number.in_(wanted)))) if wanted else set()
    free: list[str | None] = []
    for card in cards:
        free.append(card if card and card not in held else None)
        if card:
            held.add(card)
    return free


def enrol_checked(session: Session, enrolments: list[tuple[dict[str, Any], Person, str | None]], group: Group,
                  now: datetime, entry_tier: str) -> list[Enrolled] | None:
    """Insert many enrolments already checked against the register under their name + birth locks (imports),
    each with the legacy card number it brings when that is free (``free_cards``), else a card drawn for it:
    one multi-row insert of the members (``kit.insert_batch``: values encrypted and indexed in one pass) and one of their name
    tokens; None, with nothing written, when one collides (a desk enrolled the same person a moment ago, or
    a card number drawn twice): the caller then enrols them one by one."""
    review_on = next_anniversary(local_date(now, group.zone), local_date(now, group.zone))
    cards = free_cards(session, [card for _data, _person, card in enrolments])
    rows, tokens = [], []
    for (data, person, _card), card in zip(enrolments, cards, strict=True):
        referrer = _referrer(session, data.get("referral_code"))
        row = member_values(data, person, referrer.id if referrer else None, group, now, entry_tier, review_on)
        row["card_number"] = card or identity.new_card_number(group.card_prefix)
        row["referral_code"] = identity.new_referral_code()
        rows.append(row)
        tokens += [{"member_id": row["id"], "token_index": blind_index(token, "members.name_token")}
                   for token in identity.name_tokens(person.full_name)]
    if not rows:
        return []
    try:
        with session.begin_nested():
            insert_rows(session, _MEMBERS, rows)  # one statement, no per-value bookkeeping (kit.insert_batch)
            insert_rows(session, _NAME_TOKENS, tokens)
    except IntegrityError:
        return None
    for (branch, source), count in Counter((row["home_branch"], row["source"]) for row in rows).items():
        ENROLLED.labels(branch, source).inc(count)
    return [Enrolled(row["id"], row["card_number"], row["home_branch"], row["referred_by_id"],
                     row["preferred_language"], row["source"], now) for row in rows]


def _insert_with_fresh_codes(session: Session, member: Member, group: Group, indexes: Indexes,
                             card_number: str | None = None) -> None:
    """Insert, drawing new card and referral codes on the (rare) collision with an existing one;
    ``card_number`` first, when given (a legacy card an import brings: kept if no member holds it)."""
    for attempt in range(CARD_ATTEMPTS):
        member.card_number = card_number if card_number and attempt == 0 else identity.new_card_number(group.card_prefix)
        member.referral_code = identity.new_referral_code()
        try:
            with session.begin_nested():
                session.add(member)
                session.flush()
            return
        except IntegrityError:
            # only a unique column can refuse the row: card, referral code, phone, document
            matches = [match for match in find_matches(session, indexes, exclude=member.id)
                       if {"phone", "id_document"} & set(match.matched_on)]
            if matches:  # enrolled by another desk a moment ago
                raise duplicate(matches) from None
    raise Conflict("Could not draw a free card number; please try again.")


def _write_tokens(session: Session, member_id: uuid.UUID, full_name: str) -> None:
    session.query(MemberNameToken).filter(MemberNameToken.member_id == member_id).delete()
    for token in identity.name_tokens(full_name):
        session.add(MemberNameToken(member_id=member_id, token_index=blind_index(token, "members.name_token")))


def update(session: Session, member: Member, changes: dict[str, Any], group: Group, now: datetime,
           expected_version: int | None = None) -> list[str]:
    """Apply a partial change; returns the names of the fields that really changed. A change that really
    changes something adds one to the member's ``version``; ``expected_version`` (a FHIR ``If-Match``) must be
    the version now (the member is locked by the caller), else ``PreconditionFailed``."""
    if expected_version is not None and member.version != expected_version:
        raise PreconditionFailed(f"The member is at version {member.version}, not {expected_version}: read it "
                                 "again and make the change on what it is now.",
                                 details={"version": member.version})
    if member.status == "closed":
        raise Conflict("This membership is closed; its personal data was erased.")
    if member.status == "merged":
        raise Conflict(f"This member was merged into {member.merged_into_id}; change that member instead.",
                       details={"merged_into": str(member.merged_into_id)})
    changed: list[str] = []

    def put(field: str, attribute: str, value: Any) -> None:
        if getattr(member, attribute) != value:
            setattr(member, attribute, value)
            if field not in changed:
                changed.append(field)

    if "home_branch" in changes:
        group.branch(changes["home_branch"])
        put("home_branch", "home_branch", changes["home_branch"])
        if "home_branch" in changed:
            follow_branch(session, member.id, member.home_branch)
    if "full_name" in changes:
        put("full_name", "full_name", " ".join(changes["full_name"].split()))
    if "phone" in changes:
        put("phone", "phone", identity.parse_phone(changes["phone"], group.region_of(member.home_branch)))
    if "birth_date" in changes:
        put("birth_date", "birth_date", changes["birth_date"].isoformat())
        member.birth_mmdd = identity.birthday_key(changes["birth_date"])
    if "id_document" in changes:
        document = _document(changes)
        put("id_document", "document_type", document[0] if document else None)
        put("id_document", "document_number", document[1] if document else None)
    for field in CHANGED_AS_GIVEN:
        if field in changes:
            put(field, field, changes[field])
    for channel, granted in (changes.get("consents") or {}).items():
        put("consents", f"consent_{channel}", granted)
    if "consents" in changed:
        member.consents_updated_at = now
    if not changed:
        return changed

    birth = date.fromisoformat(member.birth_date) if member.birth_date else None
    document = (member.document_type, member.document_number) if member.document_number else None
    indexes = indexes_for(member.full_name or "", member.phone, birth, document)
    if {"full_name", "phone", "birth_date", "id_document"} & set(changed):
        matches = find_matches(session, indexes, exclude=member.id)
        if matches:
            raise duplicate(matches)
    member.name_index, member.name_birth_index = indexes.name, indexes.name_birth
    member.phone_index, member.document_index = indexes.phone, indexes.document
    if "full_name" in changed:
        _write_tokens(session, member.id, member.full_name or "")
    member.updated_at = now
    member.version = (member.version or 1) + 1
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError:
        raise duplicate(find_matches(session, indexes, exclude=member.id) or [
            Match(str(member.id), member.card_number, ("phone",))]) from None
    UPDATED.labels(member.home_branch).inc()
    return changed


def find(session: Session, criteria: dict[str, Any], group: Group) -> tuple[list[Member], str | None]:
    """Members matching exactly one of phone, card, id_number or q (name), a page at a time."""
    given = [key for key in ("phone", "card", "id_number", "q") if criteria.get(key)]
    if len(given) != 1:
        raise Invalid("Search by exactly one of phone, card, id_number or q.",
                      {"_schema": ["Give exactly one of phone, card, id_number, q."]})
    query = select(Member)
    if "phone" in given:
        phone = identity.parse_phone(criteria["phone"], group.region_of(criteria.get("branch")))
        query = query.where(Member.phone_index == blind_index(phone, "members.phone"))
    elif "card" in given:
        query = query.where(Member.card_number == identity.normalise_card_number(criteria["card"]))
    elif "id_number" in given:
        candidates = []
        for kind in DOCUMENT_TYPES:
            try:
                number = identity.normalise_document(kind, criteria["id_number"])
            except Invalid:
                continue
            candidates.append(blind_index(f"{kind}:{number}", "members.document"))
        if not candidates:
            raise Invalid("The ID number is not valid.", {"id_number": ["Not a valid document number."]})
        query = query.where(Member.document_index.in_(candidates))
    else:
        query = _by_name(query, criteria["q"])
    if criteria.get("branch"):
        query = query.where(Member.home_branch == criteria["branch"])
    return keyset_page(session, query, Member.enrolled_at, Member.id, criteria["limit"], criteria.get("cursor"))


def _by_name(query: Select, text: str) -> Select:
    full = blind_index(identity.normalise_name(text), "members.name")
    tokens = [blind_index(token, "members.name_token") for token in identity.name_tokens(text)]
    if not tokens:
        raise Invalid("Type part of the name to search for.", {"q": ["Empty name."]})
    having_all = (select(MemberNameToken.member_id).where(MemberNameToken.token_index.in_(tokens))
                  .group_by(MemberNameToken.member_id)
                  .having(func.count(MemberNameToken.token_index) == len(tokens)))
    return query.where(or_(Member.name_index == full, Member.id.in_(having_all)))


def birthdays(session: Session, month_day: str, limit: int, cursor: str | None) -> tuple[list[Member], str | None]:
    """Active members born on ``month_day`` (``MM-DD``), a page at a time in id order."""
    if not (len(month_day) == 5 and month_day[2] == "-" and month_day.replace("-", "").isdigit()):
        raise Invalid("month_day must look like 03-15.", {"month_day": ["Expected MM-DD."]})
    query = select(Member).where(Member.birth_mmdd == month_day, Member.status == "active")
    return keyset_page(session, query, Member.birth_mmdd, Member.id, limit, cursor)


_EXPORTED = select(*(Member.__table__.c[name] for name in MemberExportSchema.columns()))
"""What ``MemberExportSchema`` shows of members: Core rows of just those columns (no ORM object, no unit of work,
no decryption of fields the export does not carry)."""


def changed_since(session: Session, limit: int, cursor: str | None, until: datetime) -> tuple[list[Any], str | None, bool]:
    """Members in the order they last changed (``updated_at``, id) after ``cursor``, none changed after
    ``until`` (the export's horizon, ``kit.exports``): a page (rows ``MemberExportSchema`` dumps), the cursor to
    continue from and whether more wait."""
    return changed_page(session, _EXPORTED, Member.updated_at, Member.id, limit, cursor, until)


EXPORT_PAGE_LIMIT = 5000
"""The most members one ``by_ids`` reads (an export page's, ``kit.exports.ExportQuerySchema``'s limit)."""


def _listed_ids(member_ids: list[str]) -> set[uuid.UUID]:
    """The ids of a batch asked for (malformed ones left out): a list of at most ``EXPORT_PAGE_LIMIT``."""
    if not isinstance(member_ids, list) or len(member_ids) > EXPORT_PAGE_LIMIT:
        raise Invalid(f"Ask for a list of at most {EXPORT_PAGE_LIMIT} member ids.",
                      {"member_ids": [f"A list of at most {EXPORT_PAGE_LIMIT} ids."]})
    return valid_uuids(member_ids)


def by_ids(session: Session, member_ids: list[str]) -> list[Any]:
    """The members of ``member_ids`` (malformed or unknown ids left out), for an export page naming them."""
    ids = _listed_ids(member_ids)
    return session.execute(_EXPORTED.where(Member.id.in_(ids))).all() if ids else []


_READ_MANY = select(*(Member.__table__.c[name] for name in MemberSchema.columns()))


def read_many(session: Session | Connection, member_ids: list[str]) -> list[Any]:
    """``read`` for a batch (an import's rows naming members: one statement, not one a row); malformed or
    unknown ids left out."""
    ids = _listed_ids(member_ids)
    return session.execute(_READ_MANY.where(Member.__table__.c.id.in_(ids))).all() if ids else []

"""Members' external identifiers, and who an incoming patient is (``identify``).

An identifier is (system URI, value): each HIS's medical record number under that HIS's system, and the
card number under the group's card system (``settings.card_system``; the card is not stored twice: it is
read off the member). One (system, value) is one member: the unique constraint on ``member_identifiers``
holds it. A merged member's identifiers stay on its row (a merge is reversible) and lead to the survivor.

``identify`` is the identity rule every adapter (HIS webhooks, FHIR, HL7, imports) goes through: the
members the patient matches — on an identifier here, and on phone, ID document, name and date of birth as
``register.find_matches`` finds duplicates — judged by ``rules.identity.judge``: a sure match is linked
(the patient's identifiers added to it), a probable one changes nothing (a person decides: the review
queue of the interfaces service), none is enrolled. It takes the enrolment's lock (name and date of birth)
and one lock per identifier before it looks, and an enrolment or an identifier that loses a race to the
database's unique constraints is judged again: two identical arrivals at once make one member.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.kit.config import Group
from services.kit.crypto import blind_index
from services.kit.errors import Conflict, Invalid, NotFound
from services.kit.locks import serialise
from services.kit.schemas import load
from services.kit.telemetry import counter
from services.members import register
from services.members.models import Member, MemberIdentifier
from services.members.rules import identity
from services.members.rules.identity import NONE, PROBABLE, SURE, Match, judge
from services.members.schemas import EnrolmentSchema

IDENTIFIED = counter("careloop_members_identified_total", "Incoming patients identified", ("outcome",))
ATTEMPTS = 3  # judging again after losing a race to a unique constraint; a third loss is a 409
MERGE_HOPS = 10  # how far a chain of merges is followed


def _index(value: str) -> str:
    return blind_index(value, "members.identifier")


def normalised(identifiers: list[dict[str, str]]) -> list[tuple[str, str]]:
    """The identifiers given, in normal form, each once, in the order given."""
    return list(dict.fromkeys(identity.normalise_identifier(item["system"], item["value"]) for item in identifiers))


def _current(session: Session, member: Member) -> Member:
    """The member itself, or the survivor of the merges it went into."""
    for _hop in range(MERGE_HOPS):
        if member.status != "merged" or member.merged_into_id is None:
            return member
        member = register.get(session, member.merged_into_id)
    return member


def _holder(session: Session, system: str, value: str, card_system: str) -> Member | None:
    """The member an identifier names today (following merges), or None."""
    if system == card_system:
        member = session.scalars(select(Member).where(
            Member.card_number == identity.normalise_card_number(value))).first()
    else:
        member_id = session.scalars(select(MemberIdentifier.member_id).where(
            MemberIdentifier.system == system, MemberIdentifier.value_index == _index(value))).first()
        member = register.get(session, member_id) if member_id is not None else None
    return _current(session, member) if member is not None else None


def find(session: Session, system: str, value: str, card_system: str) -> Member:
    system, value = identity.normalise_identifier(system, value)
    member = _holder(session, system, value, card_system)
    if member is None or member.status == "closed":
        raise NotFound("No member has this identifier.")
    return member


def listed(session: Session, member: Member, card_system: str) -> list[dict[str, str]]:
    """The member's identifiers: the card number first, then the others in the order they were added."""
    rows = session.scalars(select(MemberIdentifier).where(MemberIdentifier.member_id == member.id)
                           .order_by(MemberIdentifier.id))
    return [{"system": card_system, "value": member.card_number},
            *({"system": row.system, "value": row.value} for row in rows)]


def add(session: Session, member: Member, identifiers: list[tuple[str, str]], card_system: str, now: datetime,
        actor: str) -> list[dict[str, str]]:
    """Give ``member`` these identifiers (normal forms); those it has already are skipped. One held by
    another member is a ``Conflict`` naming that member; the card system is the member's own card only."""
    if member.status in ("closed", "merged"):
        raise Conflict(f"This membership is {member.status}; identifiers cannot be added to it.")
    added = []
    for system, value in identifiers:
        if system == card_system:
            if identity.normalise_card_number(value) != member.card_number:
                raise Invalid("The card number is CareLoop's own: it cannot be given to a member.",
                              {"identifiers": [f"{card_system} is the group's card system."]})
            continue
        row = MemberIdentifier(member_id=member.id, system=system, value=value, value_index=_index(value),
                               added_at=now, added_by=actor)
        try:
            with session.begin_nested():
                session.add(row)
                session.flush()
        except IntegrityError:  # held already: by this member (nothing to do) or by another one
            holder = _holder(session, system, value, card_system)
            if holder is not None and holder.id == member.id:
                continue
            raise Conflict("This identifier belongs to another member.", details={"matches": [
                Match(str(holder.id), holder.card_number, ("identifier",)).as_dict()] if holder else []}) from None
        added.append({"system": system, "value": value})
    return added


def forget(session: Session, member_id: uuid.UUID) -> None:
    """A closed membership keeps no identifiers (they are personal data)."""
    session.execute(delete(MemberIdentifier).where(MemberIdentifier.member_id == member_id))


# --- identify ------------------------------------------------------------------------------------------


@dataclass
class Identified:
    """What ``identify`` did: ``matched`` (linked to ``member``), ``enrolled`` (``member`` is new) or
    ``probable`` (nothing changed; ``candidates`` for a person to choose from)."""

    outcome: str
    member: Member | None = None
    matched_on: tuple[str, ...] = ()
    candidates: tuple[Match, ...] = ()
    identifiers_added: list[dict[str, str]] = field(default_factory=list)


@dataclass(frozen=True)
class _Patient:
    full_name: str
    birth: date
    phones: tuple[str, ...]  # E.164 mobiles, in the order given
    indexes: register.Indexes
    other_phone_indexes: tuple[str, ...]
    identifiers: list[tuple[str, str]]


def _read(data: dict[str, Any], group: Group) -> _Patient:
    phones = []
    for raw in ([data["phone"]] if data.get("phone") else []) + data["phones"]:
        try:
            phones.append(identity.parse_phone(raw, group.region_of(data["home_branch"])))
        except Invalid:  # a landline or a typo does not make a patient unknown: matched on the rest
            continue
    phones = list(dict.fromkeys(phones))
    document = data.get("id_document")
    document = (document["type"], identity.normalise_document(document["type"], document["number"])) if document else None
    full_name = " ".join(data["full_name"].split())
    indexes = register.indexes_for(full_name, phones[0] if phones else None, data["birth_date"], document)
    return _Patient(full_name, data["birth_date"], tuple(phones), indexes,
                    tuple(blind_index(phone, "members.phone") for phone in phones[1:]), normalised(data["identifiers"]))


def _matches(session: Session, patient: _Patient, card_system: str) -> list[Match]:
    """One ``Match`` per member the patient matches, with every reason: identifiers, then
    ``register.find_matches`` (the enrolment's own duplicate detection)."""
    found: dict[str, Match] = {}

    def note(match: Match) -> None:
        earlier = found.get(match.member_id)
        if earlier is not None:
            match = Match(match.member_id, match.card_number,
                          tuple(dict.fromkeys((*earlier.matched_on, *match.matched_on))), match.same_name)
        found[match.member_id] = match

    for system, value in patient.identifiers:
        member = _holder(session, system, value, card_system)
        if member is not None and member.status != "closed":
            note(Match(str(member.id), member.card_number, ("identifier",), member.name_index == patient.indexes.name))
    for match in register.find_matches(session, patient.indexes, other_phones=patient.other_phone_indexes):
        note(match)
    return list(found.values())


def _enrolment(data: dict[str, Any], patient: _Patient) -> dict[str, Any]:
    """The enrolment of a patient nobody matched, checked by ``EnrolmentSchema`` like any other."""
    if not patient.phones:
        raise Invalid("A mobile phone number is needed to enrol this patient.",
                      {"phones": ["No valid mobile phone number."]})
    given = {"full_name": patient.full_name, "phone": patient.phones[0], "birth_date": patient.birth.isoformat(),
             "gender": data["gender"], "home_branch": data["home_branch"], "source": data["source"],
             "consents": data["consents"], "email": data.get("email")}
    for name in ("preferred_language", "id_document", "referral_code", "wechat_openid", "line_user_id"):
        if data.get(name):
            given[name] = data[name]
    return load(EnrolmentSchema(), given)


def identify(session: Session, data: dict[str, Any], group: Group, card_system: str, now: datetime, actor: str,
             entry_tier: str, create_new: bool = False) -> Identified:
    """Who the incoming patient ``data`` (``PatientSchema``, loaded) is; links or enrols as the rule says.

    ``create_new``: a person decided this is someone new (an identity review): enrol even when a member
    has the same name and date of birth; a phone, ID document or identifier held by a member is still a
    ``Conflict`` naming that member."""
    patient = _read(data, group)
    serialise(session, "members.name_birth", patient.indexes.name_birth)  # the enrolment's own lock, first
    for system, value in sorted(patient.identifiers):
        serialise(session, "members.identifier", f"{system}|{_index(value)}")
    for attempt in range(ATTEMPTS):
        try:
            with session.begin_nested():
                done = _identify_once(session, data, patient, group, card_system, now, actor, entry_tier, create_new)
        except Conflict:
            if create_new or attempt == ATTEMPTS - 1:
                raise
            continue  # another arrival won a unique constraint a moment ago: judge again, now seeing it
        IDENTIFIED.labels(done.outcome).inc()
        return done
    raise AssertionError("unreachable")  # pragma: no cover


def _identify_once(session: Session, data: dict[str, Any], patient: _Patient, group: Group, card_system: str,
                   now: datetime, actor: str, entry_tier: str, create_new: bool) -> Identified:
    if not create_new:
        verdict = judge(_matches(session, patient, card_system))
        if verdict.outcome == PROBABLE:
            return Identified(PROBABLE, candidates=verdict.candidates)
        if verdict.outcome == SURE:
            member = register.get(session, verdict.member_id)
            added = add(session, member, patient.identifiers, card_system, now, actor)
            return Identified("matched", member, verdict.matched_on, identifiers_added=added)
        assert verdict.outcome == NONE
    member = register.enrol(session, _enrolment(data, patient), group, now, entry_tier,
                            despite_name_and_birth_date=create_new)
    added = add(session, member, patient.identifiers, card_system, now, actor)
    return Identified("enrolled", member, identifiers_added=added)


def locate(session: Session, rows: list[dict[str, Any]], group: Group, card_system: str) -> list[dict[str, Any]]:
    """Which member each row of an import names, by the first of its card number, identifier (``system`` and
    ``value``) or phone it gives (imports of balances and visits): ``found`` with the member (the survivor
    of a merge), ``missing``, or ``invalid`` (a phone that two members share, or one that is no phone)."""
    outcomes = []
    for row in rows:
        try:
            if row.get("card_number"):
                member = _holder(session, card_system, row["card_number"], card_system)
            elif row.get("identifier"):
                system, value = identity.normalise_identifier(row["identifier"]["system"], row["identifier"]["value"])
                member = _holder(session, system, value, card_system)
            else:
                phone = identity.parse_phone(row["phone"], group.region_of(row.get("branch")))
                found = list(session.scalars(select(Member).where(
                    Member.phone_index == blind_index(phone, "members.phone"), Member.status != "merged").limit(2)))
                if len(found) > 1:
                    raise Invalid("Two members share this phone: name the card number.", {"phone": ["Shared."]})
                member = _current(session, found[0]) if found else None
        except Invalid as error:
            outcomes.append({"key": row["key"], "status": "invalid", "message": str(error)})
            continue
        if member is None or member.status == "closed":
            outcomes.append({"key": row["key"], "status": "missing", "message": "No member is known by this."})
        else:
            outcomes.append({"key": row["key"], "status": "found", "member_id": str(member.id),
                             "card_number": member.card_number, "home_branch": member.home_branch})
    return outcomes

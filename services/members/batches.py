"""Enrolment in batches, for imports (``services/interfaces``): many rows in one call, each row on its own.

``check`` validates each row by the enrolment's own rules (``EnrolmentSchema``, the branch, phone and
document rules of ``register.person_of``, and the legacy card number a row may bring) and finds the members
each would duplicate, in one query for the whole batch; it writes nothing. ``enrol_each`` enrols the rows, each under its own idempotency key
(``kit.idempotency``, command ``enrol_import``): a batch sent again, or a job resumed after a crash, gets each
row's first answer back and enrols nobody twice. A row that fails leaves the others be. The batch goes in a
few statements (keys claimed, locks taken, the register searched, the members inserted by a Core multi-row
insert, the answers stored, each at once); ``enrolled`` is called with each member enrolled (the service
announces them together: one ``members_imported`` a batch, not a ``member_enrolled`` a row); should an insert collide (a desk enrolled the
same person a moment ago), it goes again a row at a time, each in its own savepoint, as ``register.enrol``
does for a desk. A row's legacy card number (the card the member had in the system the file comes from)
becomes the member's card number when no member holds it; else a card is drawn, as for a desk.

Every row is validated again by the commit, as by the dry run (the same rules as the API), and a row is trusted
by nothing but its own check. An import's plain rows are checked by ``schemas.plain_enrolment`` (the enrolment's
rules written out once, held equal to ``EnrolmentSchema`` by its unit test; any other row, and every refusal, by the
schema). The commit does not take the dry run's verdict instead (decided for issue 19, 2026-12-07, from
``tests/perf/RESULTS.md``, round 4): what the commit's check costs is then ~50 us a row, nearly all of it the phone's
parse and the blind indexes, which the insert needs anyway or the floor of the rules is; trusting the dry run would
save ~20-25 us a row of the commit's ~200 while it needed the verdict stored by interfaces and proven to be for this
very row (a MAC over its content), and what can change between the two phases (the branch, the caller's branches,
a referral code, existing members) would still be checked by the commit. The end-to-end commit's cost lay
elsewhere: its ``member_enrolled`` events, published and consumed one message each — hence one ``members_imported``
a batch, which each consumer applies in one transaction (issue 19, ``tests/perf/RESULTS.md``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.config import Group
from services.kit.errors import Conflict, Forbidden, Invalid
from services.kit.idempotency import (
    check_key,
    claim,
    claim_many,
    release,
    replay,
    request_fingerprint,
    store_answer,
)
from services.kit.idempotency_batch import store_answers
from services.kit.locks import serialise_many
from services.kit.schemas import load
from services.members import register
from services.members.rules import identity
from services.members.schemas import EnrolmentSchema, plain_enrolment

COMMAND = "enrol_import"
_CARD = re.compile(r"[0-9A-Za-z]{1,20}")


def _identity_keys(indexes: register.Indexes) -> list[str]:
    """Short digests of a row's blind indexes: what tells two rows of one file apart as the same person,
    without handing out the indexes themselves."""
    return [hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:24]
            for kind, value in (("phone", indexes.phone), ("document", indexes.document),
                                ("name_birth", indexes.name_birth)) if value]


def _card(row: dict[str, Any]) -> str | None:
    """The row's legacy card number in the form cards are kept (no spaces or dashes); ``Invalid`` unless it is
    1 to 20 letters and digits."""
    if not row.get("card_number"):
        return None
    card = identity.normalise_card_number(row["card_number"])
    if not _CARD.fullmatch(card):
        raise Invalid("The card number must be 1 to 20 letters and digits.",
                      {"card_number": ["Not a card number (1 to 20 letters and digits)."]})
    return card


def _loaded(row: dict[str, Any], group: Group, caller: Identity,
            schema: EnrolmentSchema | None = None) -> tuple[dict[str, Any], register.Person, str | None]:
    # the plain rows an import sends are checked without marshmallow's machinery (the same rules); the others,
    # and every refusal, by the schema (one for a whole batch: building it costs)
    data = plain_enrolment(row["member"]) or load(schema or EnrolmentSchema(), row["member"])
    caller.require_branch(data["home_branch"], "enrol members at this branch")
    return data, register.person_of(data, group), _card(row)


def _fingerprint(row: dict[str, Any]) -> str:
    return request_fingerprint({"member": row["member"], **({"card_number": row["card_number"]}
                                                             if row.get("card_number") else {})})


def check(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    people: list[register.Indexes] = []
    positions: list[int] = []
    schema = EnrolmentSchema()
    for row in rows:
        try:
            _data, person, _legacy_card = _loaded(row, group, caller, schema)
        except (Invalid, Forbidden) as error:
            outcomes.append({"key": row["key"], "status": "invalid", "message": error.message,
                             "errors": getattr(error, "fields", {}) or {"home_branch": [error.message]}})
            continue
        positions.append(len(outcomes))
        people.append(person.indexes)
        outcomes.append({"key": row["key"], "status": "valid", "identity": _identity_keys(person.indexes)})
    for position, matches in register.matches_of_many(session, people).items():
        outcome = outcomes[positions[position]]
        outcome["status"] = "present"
        refusal = register.duplicate(matches)
        outcome["matches"], outcome["probable"] = refusal.details["matches"], refusal.details["probable"]
        outcome["message"] = refusal.message
    return outcomes


def enrol_each(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity, now: datetime,
               entry_tier: str, enrolled: Callable[[Any], None]) -> list[dict[str, Any]]:
    together = _enrol_together(session, rows, group, caller, now, entry_tier, enrolled)
    if together is not None:
        return together
    return _enrol_one_by_one(session, rows, group, caller, now, entry_tier, enrolled)


def _refusal(key: str, error: Invalid | Forbidden | Conflict) -> dict[str, Any]:
    outcome = {"key": key, "status": "present" if isinstance(error, Conflict) else "invalid",
               "message": error.message, "errors": getattr(error, "fields", {}), "replayed": False}
    if isinstance(error, Conflict):
        outcome["matches"] = error.details.get("matches", [])
        outcome["probable"] = error.details.get("probable", False)
    return outcome


def _enrol_together(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity, now: datetime,
                    entry_tier: str, enrolled: Callable[[Any], None]) -> list[dict[str, Any]] | None:
    """The whole batch in a few statements: the keys claimed at once, the name + birth locks taken at once,
    the register searched once, the new members inserted at once. None (nothing written) when an insert
    collides: the batch then goes one row at a time."""
    keyed = [(check_key(row["key"]), _fingerprint(row), row) for row in rows]
    if len({key for key, _fingerprint, _row in keyed}) != len(keyed):
        return None
    savepoint = session.begin_nested()
    claims = claim_many(session, COMMAND, [(key, fingerprint) for key, fingerprint, _row in keyed])
    outcomes: dict[str, dict[str, Any]] = {}
    fresh = []
    schema = EnrolmentSchema()
    for key, fingerprint, row in keyed:
        if key not in claims:
            outcomes[key] = {**replay(session, COMMAND, key, fingerprint), "replayed": True}
            continue
        try:
            data, person, card = _loaded(row, group, caller, schema)
        except (Invalid, Forbidden) as error:
            outcomes[key] = _refusal(key, error)
            continue
        fresh.append((key, {**data, "source": "import"}, person, card))
    serialise_many(session, "members.name_birth", [person.indexes.name_birth for _key, _data, person, _card in fresh])
    matches = register.matches_of_many(session, [person.indexes for _key, _data, person, _card in fresh])
    first_of: dict[str, str] = {}  # an identifier's blind index -> the key of the batch's first row with it
    chosen = []
    for position, (key, data, person, card) in enumerate(fresh):
        if position in matches:
            outcomes[key] = _refusal(key, register.duplicate(matches[position]))
            continue
        identifiers = [index for index in (person.indexes.phone, person.indexes.document,
                                           person.indexes.name_birth) if index]
        earlier = next((first_of[index] for index in identifiers if index in first_of), None)
        if earlier is not None:
            outcomes[key] = {"key": key, "status": "present", "replayed": False, "errors": {},
                             "message": f"The same person as {earlier}, enrolled in this batch."}
            continue
        first_of.update(dict.fromkeys(identifiers, key))
        chosen.append((key, data, person, card))
    members = register.enrol_checked(session, [(data, person, card) for _key, data, person, card in chosen], group,
                                     now, entry_tier)
    if members is None:
        savepoint.rollback()
        return None
    answers = []
    for (key, _data, _person, _card), member in zip(chosen, members, strict=True):
        enrolled(member)
        answer = {"key": key, "status": "enrolled", "member_id": str(member.id), "card_number": member.card_number}
        answers.append((claims[key], answer))
        outcomes[key] = {**answer, "replayed": False}
    store_answers(session, answers)
    release(session, [claims[key] for key, outcome in outcomes.items()
                      if key in claims and outcome["status"] != "enrolled" and not outcome["replayed"]])
    savepoint.commit()
    return [outcomes[key] for key, _fingerprint, _row in keyed]


def _enrol_one_by_one(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity,
                      now: datetime, entry_tier: str, enrolled: Callable[[Any], None]) -> list[dict[str, Any]]:
    outcomes = []
    for row in rows:
        key = check_key(row["key"])
        fingerprint = _fingerprint(row)
        savepoint = session.begin_nested()
        claim_id = claim(session, COMMAND, key, fingerprint)
        if claim_id is None:
            savepoint.commit()
            outcomes.append({**replay(session, COMMAND, key, fingerprint), "replayed": True})
            continue
        try:
            data, _person, card = _loaded(row, group, caller)
            member = register.enrol(session, {**data, "source": "import"}, group, now, entry_tier, card_number=card)
        except (Invalid, Forbidden, Conflict) as error:
            savepoint.rollback()  # the claim goes too: a corrected row may be sent again under its key
            outcomes.append(_refusal(key, error))
            continue
        enrolled(member)
        answer = {"key": key, "status": "enrolled", "member_id": str(member.id), "card_number": member.card_number}
        store_answer(session, claim_id, answer)
        savepoint.commit()
        outcomes.append({**answer, "replayed": False})
    return outcomes

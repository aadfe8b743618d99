"""Enrolment in batches, for imports (``services/interfaces``): many rows in one call, each row on its own.

``check`` validates each row by the enrolment's own rules (``EnrolmentSchema``, the branch, phone and
document rules of ``register.person_of``) and finds the members each would duplicate, in one query for the
whole batch; it writes nothing. ``enrol_each`` enrols the rows, each in a savepoint under its own
idempotency key (``kit.idempotency``, command ``enrol_import``): a batch sent again, or a job resumed after
a crash, gets each row's first answer back and enrols nobody twice. A row that fails leaves the others be.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from services.kit.caller import Identity
from services.kit.config import Group
from services.kit.errors import Conflict, Forbidden, Invalid
from services.kit.idempotency import check_key, claim, replay, request_fingerprint, store_answer
from services.kit.schemas import load
from services.members import register
from services.members.schemas import EnrolmentSchema

COMMAND = "enrol_import"


def _identity_keys(indexes: register.Indexes) -> list[str]:
    """Short digests of a row's blind indexes: what tells two rows of one file apart as the same person,
    without handing out the indexes themselves."""
    return [hashlib.sha256(f"{kind}:{value}".encode()).hexdigest()[:24]
            for kind, value in (("phone", indexes.phone), ("document", indexes.document),
                                ("name_birth", indexes.name_birth)) if value]


def _loaded(row: dict[str, Any], group: Group, caller: Identity) -> tuple[dict[str, Any], register.Person]:
    data = load(EnrolmentSchema(), row["member"])
    caller.require_branch(data["home_branch"], "enrol members at this branch")
    return data, register.person_of(data, group)


def check(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity) -> list[dict[str, Any]]:
    outcomes: list[dict[str, Any]] = []
    people: list[register.Indexes] = []
    positions: list[int] = []
    for row in rows:
        try:
            _data, person = _loaded(row, group, caller)
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
        outcome["matches"] = [match.as_dict() for match in matches]
        outcome["message"] = register.duplicate(matches).message
    return outcomes


def enrol_each(session: Session, rows: list[dict[str, Any]], group: Group, caller: Identity, now: datetime,
               entry_tier: str, enrolled: Callable[[Any], None]) -> list[dict[str, Any]]:
    outcomes = []
    for row in rows:
        key = check_key(row["key"])
        fingerprint = request_fingerprint({"member": row["member"]})
        savepoint = session.begin_nested()
        claim_id = claim(session, COMMAND, key, fingerprint)
        if claim_id is None:
            savepoint.commit()
            outcomes.append({**replay(session, COMMAND, key, fingerprint), "replayed": True})
            continue
        try:
            data, _person = _loaded(row, group, caller)
            member = register.enrol(session, {**data, "source": "import"}, group, now, entry_tier)
        except (Invalid, Forbidden, Conflict) as error:
            savepoint.rollback()  # the claim goes too: a corrected row may be sent again under its key
            outcome = {"key": key, "status": "present" if isinstance(error, Conflict) else "invalid",
                       "message": error.message, "errors": getattr(error, "fields", {})}
            if isinstance(error, Conflict):
                outcome["matches"] = error.details.get("matches", [])
            outcomes.append({**outcome, "replayed": False})
            continue
        enrolled(member)
        answer = {"key": key, "status": "enrolled", "member_id": str(member.id), "card_number": member.card_number}
        store_answer(session, claim_id, answer)
        savepoint.commit()
        outcomes.append({**answer, "replayed": False})
    return outcomes

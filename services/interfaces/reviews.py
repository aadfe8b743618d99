"""The identity review queue: incoming patients who probably are members already, waiting for a person.

``identify`` is the identity rule for one arrival, the same for every adapter: members judges
(``members.identify``) and a probable match is queued here. The ``interfaces.identify`` RPC and the HL7 ADT^A04
(``hl7/patients.py``) both call it.

A review keeps the patient as it arrived, the candidates members named, and the original message, all
encrypted (``models``). ``queue`` adds one (once per sender's message id: a message sent again finds its
review); branch managers list a branch's reviews, read one (logged) and resolve it once: ``begin_resolve``
locks the row and refuses a resolved review (409), ``resolved`` writes the outcome and the log.
"""

from __future__ import annotations

import json
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.interfaces.models import OPEN, IdentityReview, IdentityReviewLog
from services.kit.db import fetch
from services.kit.errors import Conflict
from services.kit.paging import keyset_page
from services.kit.telemetry import counter

REVIEWS = counter("careloop_identity_reviews_total", "Identity reviews queued and resolved", ("branch", "action"))


def identify(session: Session, members: Any, arrival: dict[str, Any], idempotency_key: str | None, now: datetime,
             actor: str) -> dict[str, Any]:
    """Who the arriving patient is (``arrival``: ``ArrivalSchema``, loaded), in ``IdentityResultSchema``'s
    shape: ``matched`` or ``enrolled`` with the ``member``, or ``review`` (a probable match: nobody created or
    changed) with the queued ``review``."""
    answer = members.identify(arrival["patient"], idempotency_key=idempotency_key)
    if answer["outcome"] != "probable":
        return {**answer, "review": None}
    review = queue(session, arrival, answer["candidates"], now, actor)
    return {"outcome": "review", "member": None, "matched_on": [], "review": review}


def _log(session: Session, review: IdentityReview, action: str, actor: str, now: datetime) -> None:
    session.add(IdentityReviewLog(review_id=review.id, action=action, actor=actor, at=now))


def queue(session: Session, arrival: dict[str, Any], candidates: list[dict[str, Any]], now: datetime,
          actor: str) -> IdentityReview:
    """A new open review of ``arrival`` (``ArrivalSchema``, loaded); the existing one when its sender's
    message (``source``, ``source_ref``) was queued before."""
    existing = _by_source(session, arrival["source"], arrival["source_ref"])
    if existing is not None:
        return existing
    patient = arrival["patient"]
    review = IdentityReview(
        id=uuid.uuid4(), branch=str(patient["home_branch"]), source=arrival["source"],
        source_ref=arrival["source_ref"], status=OPEN, patient=json.dumps(patient, ensure_ascii=False),
        candidates=json.dumps(candidates), original=arrival["original"], original_format=arrival["original_format"],
        created_at=now, created_by=actor)
    try:
        with session.begin_nested():
            session.add(review)
            session.flush()
    except IntegrityError:  # the same message, queued by another worker a moment ago
        again = _by_source(session, arrival["source"], arrival["source_ref"])
        if again is None:
            raise
        return again
    _log(session, review, "queued", actor, now)
    REVIEWS.labels(review.branch, "queued").inc()
    return review


def _by_source(session: Session, source: str, source_ref: str | None) -> IdentityReview | None:
    if source_ref is None:
        return None
    return session.scalars(select(IdentityReview).where(IdentityReview.source == source,
                                                        IdentityReview.source_ref == source_ref)).first()


def get(session: Session, review_id: Any, lock: bool = False) -> IdentityReview:
    return fetch(session, IdentityReview, review_id, "identity review", lock=lock)


def read(session: Session, review: IdentityReview, actor: str, now: datetime) -> list[IdentityReviewLog]:
    """The review's log, after noting that ``actor`` read it (the patient and the original message)."""
    _log(session, review, "read", actor, now)
    session.flush()
    return list(session.scalars(select(IdentityReviewLog).where(IdentityReviewLog.review_id == review.id)
                                .order_by(IdentityReviewLog.id)))


def page(session: Session, branch: str, status: str, limit: int, cursor: str | None) -> tuple[list[Any], str | None]:
    """A branch's reviews in one status, oldest first."""
    query = select(IdentityReview).where(IdentityReview.branch == branch, IdentityReview.status == status)
    return keyset_page(session, query, IdentityReview.created_at, IdentityReview.id, limit, cursor)


def begin_resolve(session: Session, review_id: Any) -> IdentityReview:
    """The open review, locked until the transaction ends; a resolved one is a ``Conflict`` saying how."""
    review = get(session, review_id, lock=True)
    if review.status != OPEN:
        raise Conflict(f"This review was resolved already ({review.status}, member {review.member_id}, "
                       f"by {review.resolved_by}).",
                       details={"status": review.status, "member_id": str(review.member_id)})
    return review


def resolved(session: Session, review: IdentityReview, status: str, member_id: str, actor: str,
             now: datetime) -> IdentityReview:
    review.status, review.member_id = status, uuid.UUID(str(member_id))
    review.resolved_at, review.resolved_by = now, actor
    _log(session, review, status, actor, now)
    REVIEWS.labels(review.branch, status).inc()
    return review


def patient_of(review: IdentityReview, phone: str | None = None) -> dict[str, Any]:
    """The patient as it arrived; with ``phone`` first among its phones when one is given."""
    patient = json.loads(review.patient)
    if phone is not None:
        patient["phones"] = [phone, *(p for p in patient.get("phones") or [] if p != phone)]
        patient.pop("phone", None)
    return patient

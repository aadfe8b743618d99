"""The interfaces service: what CareLoop owes the outside world (the rooms: the package's docstring).

Entrypoints only. Inherited from ``kit.Service``: ``ping`` (the gateway's readiness), dead letters, the
metrics and log context; its own database (kit tables and ``models``) and outbox.

Identity: ``identify`` is the one call every adapter (HIS webhooks, FHIR, HL7, imports) makes for an
incoming patient; members judges (``members.identify``) and a probable match waits here, in the review
queue, for a branch manager to ``resolve_review``.
"""

from __future__ import annotations

from typing import Any

from services.interfaces import access, reviews
from services.interfaces.events import EVENTS
from services.interfaces.schemas import (
    RESOLVED,
    ArrivalSchema,
    IdentityResultSchema,
    ResolutionSchema,
    ReviewDetailSchema,
    ReviewPageSchema,
    ReviewQuerySchema,
    ReviewSchema,
)
from services.interfaces.settings import setting
from services.kit import Database, Outbox, Service, idempotent, load, rpc
from services.kit.clock import utcnow
from services.kit.peers import Peer
from services.kit.schemas import With


class InterfacesService(Service):
    name = "interfaces"
    db = Database()
    events = Outbox(EVENTS)
    members = Peer("members")

    def _actor(self) -> str:
        caller = self.caller
        return f"{caller.kind}:{caller.subject} ({caller.role})"

    # --- identity ------------------------------------------------------------------------------------

    @rpc
    @idempotent
    def identify(self, arrival: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Who an incoming patient is, for every adapter (``ArrivalSchema``: the patient in members'
        ``PatientSchema`` shape, who sent it, the message as received).

        Answers ``IdentityResultSchema``: ``matched`` (a sure match — same identifier, same ID document, or
        same phone under the same name — linked: the patient's identifiers are added to ``member``),
        ``enrolled`` (nobody matched: ``member`` is new) or ``review`` (a probable match — same name and
        birth date with another phone, same phone under another name —: no member is created or changed;
        ``review`` waits in the queue of the patient's branch, with the original message, until a branch
        manager resolves it). The same ``idempotency_key`` gives the same answer; the same (``source``,
        ``source_ref``) queues one review. The caller must be allowed at the patient's ``home_branch``
        (members checks). Invalid patient: 422 with the fields; members unreachable: 503 (retry).
        """
        data = load(ArrivalSchema(), arrival)
        answer = self.members.identify(data["patient"], idempotency_key=idempotency_key)
        if answer["outcome"] != "probable":
            return IdentityResultSchema().dump({**answer, "review": None})
        review = reviews.queue(self.db.session, data, answer["candidates"], utcnow(), self._actor())
        return IdentityResultSchema().dump({"outcome": "review", "member": None, "matched_on": [], "review": review})

    @rpc
    def identity_reviews(self, query: dict[str, Any]) -> dict[str, Any]:
        """A branch's identity reviews in one status (default ``open``), oldest first, a page at a time."""
        data = load(ReviewQuerySchema(), query)
        self.caller.require_role(*access.REVIEWERS, action="read identity reviews")
        self.group.branch(data["branch"])
        self.caller.require_branch(data["branch"], "read this branch's identity reviews")
        limit = min(data["limit"], setting(self.config, "REVIEW_PAGE_MAX"))
        rows, next_cursor = reviews.page(self.db.session, data["branch"], data["status"], limit, data["cursor"])
        return ReviewPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    def identity_review(self, review_id: str) -> dict[str, Any]:
        """One review with the original message and its log; the reading is logged too."""
        self.caller.require_role(*access.REVIEWERS, action="read identity reviews")
        review = reviews.get(self.db.session, review_id)
        self.caller.require_branch(review.branch, "read this branch's identity reviews")
        log = reviews.read(self.db.session, review, self._actor(), utcnow())
        return ReviewDetailSchema().dump(With(review, log=log))

    @rpc
    @idempotent
    def resolve_review(self, review_id: str, resolution: dict[str, Any],
                       idempotency_key: str | None = None) -> dict[str, Any]:
        """Resolve an open review (``ResolutionSchema``): ``link`` to a member (the patient's identifiers are
        added to it) or ``create`` a new member (even beside the candidate with the same name and birth
        date). Once only: a resolved review is a 409 saying how it was resolved. The review stays locked
        while members acts, so two people resolving at once do it once."""
        data = load(ResolutionSchema(), resolution)
        self.caller.require_role(*access.REVIEWERS, action="resolve identity reviews")
        review = reviews.begin_resolve(self.db.session, review_id)
        self.caller.require_branch(review.branch, "resolve this branch's identity reviews")
        if data["action"] == "link":
            member_id = str(data["member_id"])
            identifiers = reviews.patient_of(review).get("identifiers") or []
            if identifiers:
                self.members.add_identifiers(member_id, {"identifiers": identifiers}, idempotency_key=idempotency_key)
            else:
                self.members.get_member(member_id)  # it exists (404 otherwise)
        else:
            created = self.members.identify(reviews.patient_of(review, data["phone"]), create_new=True,
                                            idempotency_key=idempotency_key)
            member_id = created["member"]["id"]
        reviews.resolved(self.db.session, review, RESOLVED[data["action"]], member_id, self._actor(), utcnow())
        return ReviewSchema().dump(review)

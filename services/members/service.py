"""The members service: enrolment, lookups and changes; tiers, benefits and segments; merges and lifecycle."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import date, datetime
from functools import partial
from typing import Any

from nameko.timer import timer

from services.kit import Conflict, Database, Forbidden, Invalid, Outbox, Service, event_handler, idempotent, load, rpc
from services.kit.clock import local_date, utcnow
from services.kit.exports import ExportCursorSchema, ExportQuerySchema, horizon, require_exporter
from services.kit.schemas import With, page_limit
from services.members import (
    access,
    activity,
    arrivals,
    batches,
    families,
    identities,
    lifecycle,
    nightly,
    programme_versions,
    quotas,
    register,
    segmentation,
    standings,
    tier_ledger,
    windows,
)
from services.members.events import EVENTS, SEGMENTS
from services.members.models import Member
from services.members.rules import benefits, tiers
from services.members.rules.programme import Programme
from services.members.schemas import (
    BenefitsSchema,
    BirthdayPageSchema,
    ContactSchema,
    EnrolmentSchema,
    FamilyCreateSchema,
    FamilyHistorySchema,
    FamilyLinkSchema,
    FamilySchema,
    FamilyUnlinkSchema,
    FindMembersSchema,
    IdentifierListSchema,
    IdentifiersChangeSchema,
    IdentifierSchema,
    IdentityAnswerSchema,
    ImportBatchSchema,
    ImportOutcomesSchema,
    LocateBatchSchema,
    LocatedListSchema,
    ManualTierSchema,
    MemberChangesSchema,
    MemberPageSchema,
    MemberSchema,
    MemberStatusChangeSchema,
    MergeRequestSchema,
    MergeReversalSchema,
    MergeSchema,
    PatientSchema,
    PatientViewSchema,
    PriceRequestSchema,
    PriceSchema,
    ProgrammeChangeSchema,
    ProgrammeInForceSchema,
    ProgrammePreviewSchema,
    QuotaUndoRequestSchema,
    QuotaUseRequestSchema,
    QuotaUseSchema,
    SegmentMemberSchema,
    SegmentPageSchema,
    SegmentQuerySchema,
    StatusChangeSchema,
    TierHistoryPageSchema,
    TierStatusSchema,
    export_rows,
)
from services.members.settings import card_system, nightly_starts, setting
from services.points.events import PointsEarned, PointsReversed, ToppedUp, VisitPointsEarned, earned_lines
from services.records.events import VisitCancelled, VisitCompleted, VisitRefunded, VisitsImported

EVENT_ACTOR = "service:members (event)"


def enrolled_event(enrolled: Any) -> dict[str, Any]:
    """``member_enrolled`` of a member just enrolled (a ``Member``, or a ``register.Enrolled`` of an import)."""
    return {"member_id": enrolled.id, "home_branch": enrolled.home_branch, "referrer_id": enrolled.referred_by_id,
            "preferred_language": enrolled.preferred_language, "source": enrolled.source,
            "enrolled_at": enrolled.enrolled_at}


class MembersService(Service):
    name = "members"
    db = Database()
    events = Outbox(EVENTS)

    def _view(self, member: Member | Any) -> dict[str, Any]:
        return MemberSchema.shared(**access.reveals(self.caller, self.config)).dump(member)

    def _programme(self) -> programme_versions.InForce:
        return programme_versions.in_force(self.db.session, self.config, self.group.currency)

    def _programme_of(self, held: arrivals.Held) -> programme_versions.InForce:
        """The programme in force as ``held`` was read (its stamp: parsed once per version, not read every event)."""
        return programme_versions.in_force_at(self.db.session, self.config, self.group.currency,
                                              held.programme_version, held.programme_stored_at)

    def _window(self, now: datetime) -> tuple[date, date]:
        """The 12 months an event's reassessment judges: those that end today (local)."""
        return tiers.window(local_date(now, self.group.zone))

    def _today(self) -> date:
        return local_date(utcnow(), self.group.zone)

    def _locked(self, member_id: str) -> Member:
        """The member, row-locked; the caller must be allowed at the member's home branch."""
        member = register.get(self.db.session, member_id, lock=True)
        self.caller.require_branch(member.home_branch, "act for members of this branch")
        return member

    def _reassess(self, member: Member | arrivals.Held, source_ref: str,
                  how: Callable[..., Any] = tier_ledger.reassess, programme: Programme | None = None) -> None:
        how(self.db.session, member, programme or self._programme().programme, self.group.zone, utcnow(),
            self.events.emit, EVENT_ACTOR, source_ref)

    def _keep_window(self, member: Member | arrivals.Held) -> None:
        """The member's kept 12-month sums marked out of date after a fact was kept (the member is locked:
        ``member_for_event``, ``arrivals``); the preview sums them live until the night recomputes them
        (``windows``)."""
        windows.mark_stale(self.db.session, member.id, self._today(), utcnow())

    def _currency(self, currency: str) -> None:
        if currency != self.group.currency:
            raise Invalid(f"Amounts must be in {self.group.currency}, not {currency}.", {"currency": ["Wrong currency."]})

    # --- the member register -------------------------------------------------------------------------

    @rpc
    @idempotent
    def enrol(self, member: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(EnrolmentSchema(), member)
        self.caller.require_branch(data["home_branch"], "enrol members at this branch")
        enrolled = register.enrol(self.db.session, data, self.group, utcnow(), self._programme().programme.entry_tier)
        self._announce_enrolled(enrolled)
        return self._view(enrolled)

    def _announce_enrolled(self, enrolled: Member) -> None:
        self.events.emit("member_enrolled", enrolled_event(enrolled))

    # --- identifiers and identity (issue 18) ---------------------------------------------------------

    def _card_system(self) -> str:
        return card_system(self.config, self.group.code)

    @rpc
    @idempotent
    def identify(self, patient: dict[str, Any], create_new: bool = False,
                 idempotency_key: str | None = None) -> dict[str, Any]:
        """Who an incoming patient is (``PatientSchema``): the identity rule every adapter goes through (the
        interfaces service's ``identify`` calls it and queues the probable ones for review).

        - **matched**: the same identifier, the same ID document, or the same phone under the same name —
          one member: the patient's identifiers are added to it (again: nothing more);
        - **probable**: the same name and date of birth with another phone, the same phone under another
          name, or sure matches of two members — nothing changes; ``candidates`` name the members;
        - **enrolled**: nobody matched: a new member (``member_enrolled``), with the identifiers.

        ``create_new`` (a person decided, in a review): enrol, even beside a member with the same name and
        date of birth. The caller must be allowed at the patient's ``home_branch``. Two identical arrivals at
        once make one member (``identities``: locks, then the unique constraints decide)."""
        data = load(PatientSchema(), patient)
        self.caller.require_role(*access.ENROLLERS, action="identify or enrol patients")
        self.caller.require_branch(data["home_branch"], "enrol members at this branch")
        done = identities.identify(self.db.session, data, self.group, self._card_system(), utcnow(), self.caller.actor,
                                   self._programme().programme.entry_tier, create_new=bool(create_new))
        if done.outcome == "enrolled":
            self._announce_enrolled(done.member)
        return IdentityAnswerSchema(**access.reveals(self.caller, self.config)).dump(done)

    @rpc
    @idempotent
    def add_identifiers(self, member_id: str, change: dict[str, Any],
                        idempotency_key: str | None = None) -> dict[str, Any]:
        """Give the member identifiers of other systems (``{"identifiers": [{"system", "value"}]}``); those
        it has are skipped; one another member holds is a 409 naming that member."""
        data = load(IdentifiersChangeSchema(), change)
        self.caller.require_role(*access.ENROLLERS, action="add identifiers to members")
        member = register.get(self.db.session, member_id)
        identities.add(self.db.session, member, identities.normalised(data["identifiers"]), self._card_system(),
                       utcnow(), self.caller.actor)
        return IdentifierListSchema().dump({"items": identities.listed(self.db.session, member, self._card_system())})

    @rpc
    def identifiers(self, member_id: str) -> dict[str, Any]:
        """The member's identifiers: the card number (the group's card system) first, then the others."""
        member = register.get(self.db.session, member_id)
        return IdentifierListSchema().dump({"items": identities.listed(self.db.session, member, self._card_system())})

    @rpc
    def find_by_identifier(self, identifier: dict[str, Any]) -> dict[str, Any]:
        """The member an identifier (``{"system", "value"}``) names (a merged member's survivor); 404 when none."""
        data = load(IdentifierSchema(), identifier)
        return self._view(identities.find(self.db.session, data["system"], data["value"], self._card_system()))

    def _patient_view(self, member: Any) -> dict[str, Any]:
        identifiers = identities.listed(self.db.session, member, self._card_system())
        return PatientViewSchema(**access.reveals(self.caller, self.config)).dump(With(member, identifiers=identifiers))

    @rpc
    def get_patient(self, member_id: str) -> dict[str, Any]:
        """A member with its identifiers (``PatientViewSchema``): the FHIR facade's Patient read, one call."""
        return self._patient_view(register.read(self.db.session, member_id))

    @rpc
    def find_patient(self, identifier: dict[str, Any]) -> dict[str, Any]:
        """``find_by_identifier`` with the member's identifiers (``PatientViewSchema``); 404 when none."""
        data = load(IdentifierSchema(), identifier)
        return self._patient_view(identities.find(self.db.session, data["system"], data["value"], self._card_system()))

    @rpc
    def check_enrolments(self, batch: dict[str, Any]) -> dict[str, Any]:
        """An import's dry run: each row checked by the enrolment's rules and against existing members."""
        rows = load(ImportBatchSchema(), batch)["rows"]
        return ImportOutcomesSchema().dump({"items": batches.check(self.db.session, rows, self.group, self.caller)})

    @rpc
    def enrol_batch(self, batch: dict[str, Any]) -> dict[str, Any]:
        """An import's commit: each row enrolled once under its own idempotency key (``batches``)."""
        rows = load(ImportBatchSchema(), batch)["rows"]
        enrolled: list[dict[str, Any]] = []
        outcomes = batches.enrol_each(self.db.session, rows, self.group, self.caller, utcnow(),
                                      self._programme().programme.entry_tier,
                                      lambda member: enrolled.append(enrolled_event(member)))
        if enrolled:  # one event for the batch's members, not one a member (issue 19)
            self.events.emit("members_imported", {"members": enrolled})
        return ImportOutcomesSchema().dump({"items": outcomes})

    @rpc
    def locate_members(self, batch: dict[str, Any]) -> dict[str, Any]:
        """An import's rows of balances or visits: which member each names (card, identifier or phone)."""
        self.caller.require_role(*access.IMPORTERS, action="look members up in bulk")
        rows = load(LocateBatchSchema(), batch)["rows"]
        return LocatedListSchema().dump({"items": identities.locate(self.db.session, rows, self.group,
                                                                       self._card_system())})

    @rpc
    def export_members(self, query: dict[str, Any]) -> dict[str, Any]:
        """The warehouse's export: members in the order they changed, from the cursor the last export ended at,
        none changed within the safety lag (``kit.exports``: a change committed out of order is not missed)."""
        require_exporter(self.caller, access.EXPORTERS, "members")
        criteria = load(ExportQuerySchema(), query)
        members, cursor, more = register.changed_since(self.db.session, criteria["limit"], criteria["since"],
                                                       horizon(self.config, utcnow()))
        items = export_rows(members, **access.reveals(self.caller, self.config))  # MemberExportSchema
        return {"items": items, **ExportCursorSchema().dump({"cursor": cursor, "more": more})}

    @rpc
    def export_members_by_id(self, member_ids: list[str]) -> dict[str, Any]:
        """The members an export of another service names (a page of balances), in one call: who each is (card,
        phone, home branch), masked as the members export is; ids of no member are left out."""
        require_exporter(self.caller, access.EXPORTERS, "members")
        members = register.by_ids(self.db.session, member_ids)
        return {"items": export_rows(members, **access.reveals(self.caller, self.config))}  # MemberExportSchema

    @rpc
    def get_member(self, member_id: str) -> dict[str, Any]:
        with self.db.read() as connection:  # one statement, no transaction: the service's most frequent call
            return self._view(register.read(connection, member_id))

    @rpc
    def get_members(self, member_ids: list[str]) -> dict[str, Any]:
        """``get_member`` for a batch of ids (at most 5,000; unknown ones left out): one call where a service
        meets many members it has not heard of at once (points, an import's opening balances)."""
        with self.db.read() as connection:
            return {"items": [self._view(member) for member in register.read_many(connection, member_ids)]}

    @rpc
    def get_member_by_card(self, card_number: str) -> dict[str, Any]:
        return self._view(register.by_card(self.db.session, card_number))

    @rpc
    def find_members(self, query: dict[str, Any]) -> dict[str, Any]:
        criteria = load(FindMembersSchema(), query)
        members, next_cursor = register.find(self.db.session, criteria, self.group)
        # lists always mask: a list is what gets photographed, printed and left on a desk
        return MemberPageSchema().dump({"items": members, "next_cursor": next_cursor})

    @rpc
    @idempotent
    def update_member(self, member_id: str, changes: dict[str, Any], idempotency_key: str | None = None,
                      expected_version: int | None = None) -> dict[str, Any]:
        """A partial change of a member's details; with ``expected_version`` (a FHIR ``If-Match``) only if the
        member is still at that version (412 otherwise)."""
        data = load(MemberChangesSchema(), changes)
        member = register.get(self.db.session, member_id, lock=True)
        changed = register.update(self.db.session, member, data, self.group, utcnow(), expected_version)
        if changed:
            self.events.emit("member_updated", {"member_id": member.id, "changed": changed})
        return self._view(member)

    @rpc
    def birthdays(self, month_day: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """Who has a birthday on ``month_day`` (``MM-DD``): for greetings, a page at a time."""
        members, next_cursor = register.birthdays(self.db.session, month_day, page_limit(limit, 500, 5000), cursor)
        return BirthdayPageSchema().dump({"items": members, "next_cursor": next_cursor})

    @rpc
    def get_contact(self, member_id: str) -> dict[str, Any]:
        """How to reach a member, consents included: for other services (notifications), not people."""
        if self.caller.kind != "service":
            raise Forbidden("Contact details are only given to CareLoop services.")
        member = register.get(self.db.session, member_id)
        return ContactSchema().dump(families.reached_as(self.db.session, member))  # a minor: via the guardian

    # --- activity from other services' events --------------------------------------------------------

    @event_handler(VisitCompleted)
    def on_visit_completed(self, data: dict[str, Any]) -> None:
        self._currency(data["currency"])
        now = utcnow()
        held = arrivals.hold_for_visit(self.db.session, data["member_id"], str(data["visit_id"]), *self._window(now))
        if held is not None and not held.known:  # the usual case: one read, the writes with the commit (arrivals)
            activity.keep_new_visit(self.db.session, held.id, data, self.group.zone, now)
            self._keep_window(held)
            programme = self._programme_of(held).programme
            counted = held.window.with_visit(local_date(data["completed_at"], self.group.zone), data["kind"],
                                             data["qualifying_minor"]).activity(programme.tier_visit_kinds)
            self._reassess(held, f"visit:{data['visit_id']}", partial(tier_ledger.reassess, counted=counted),
                           programme)
            return
        member = tier_ledger.member_for_event(self.db.session, data["member_id"])
        if activity.record_visit(self.db.session, member.id, data, self.group.zone, utcnow()):
            self._keep_window(member)
            self._reassess(member, f"visit:{data['visit_id']}")

    @event_handler(VisitRefunded)
    def on_visit_refunded(self, data: dict[str, Any]) -> None:
        """A refund takes its spend back out; it never lowers the tier before the next review."""
        self._currency(data["currency"])
        member = tier_ledger.member_for_event(self.db.session, data["member_id"])
        if activity.record_refund(self.db.session, member.id, data, self._today(), utcnow()):
            self._keep_window(member)

    @event_handler(VisitCancelled)
    def on_visit_cancelled(self, data: dict[str, Any]) -> None:
        member = tier_ledger.member_for_event(self.db.session, data["member_id"])
        quotas.undo_for_visit(self.db.session, member.id, str(data["visit_id"]), utcnow(), EVENT_ACTOR)

    @event_handler(PointsEarned)
    def on_points_earned(self, data: dict[str, Any]) -> None:
        self._keep_points(data["member_id"], [data])

    @event_handler(VisitPointsEarned)
    def on_visit_points_earned(self, data: dict[str, Any]) -> None:
        """A visit's earn postings, kept and judged for tiers together (one handler run a visit, issue 17)."""
        self._keep_points(data["member_id"], earned_lines(data))

    def _keep_points(self, member_id: uuid.UUID, lines: list[dict[str, Any]]) -> None:
        """Keep earn postings (each as a ``points_earned`` says it) and re-judge the points path once for them all."""
        now = utcnow()
        held = arrivals.hold_for_points(self.db.session, member_id, [line["posting_id"] for line in lines],
                                        *self._window(now))
        if held is not None and held.known:
            return  # kept before
        days = [local_date(line["earned_at"], self.group.zone) for line in lines]
        if held is not None:  # the usual case: one read, the writes with the commit (arrivals)
            programme = self._programme_of(held).programme
            window = held.window
            for line, day in zip(lines, days, strict=True):
                window = window.with_points(day, line["rule"], line["points"])
            for line, day in zip(lines, days, strict=True):
                activity.keep_new_points(self.db.session, held.id, line, day)
            self._keep_window(held)
            if tier_ledger.points_may_change_tier(self.db.session, held, programme, self.group.zone, now,
                                                  window.counted_points):  # judged on all the sums: read the rest
                counted = arrivals.with_the_rest(self.db.session, held.id, window).activity(programme.tier_visit_kinds)
                self._reassess(held, f"points:{lines[0]['posting_id']}", partial(tier_ledger.reassess, counted=counted),
                               programme)
            return
        member = tier_ledger.member_for_event(self.db.session, member_id)
        kept = [line for line, day in zip(lines, days, strict=True)
                if activity.record_points(self.db.session, member.id, line, day)]
        if kept:
            self._keep_window(member)
            self._reassess(member, f"points:{kept[0]['posting_id']}", tier_ledger.reassess_after_points)

    @event_handler(PointsReversed)
    def on_points_reversed(self, data: dict[str, Any]) -> None:
        member = tier_ledger.member_for_event(self.db.session, data["member_id"])
        if activity.record_points_reversal(self.db.session, member.id, data, self._today()):
            self._keep_window(member)

    @event_handler(ToppedUp)
    def on_topped_up(self, data: dict[str, Any]) -> None:
        self._currency(data["currency"])
        member = tier_ledger.member_for_event(self.db.session, data["member_id"])
        if activity.record_top_up(self.db.session, member.id, data, local_date(data["occurred_at"], self.group.zone)):
            self._keep_window(member)
            self._reassess(member, f"top_up:{data['topup_id']}")

    # --- tiers ---------------------------------------------------------------------------------------

    @rpc
    def tier(self, member_id: str) -> dict[str, Any]:
        """The member's tier, since when, the next review, any notice, the 12 months counted, what is missing."""
        return self._tier_status(register.get(self.db.session, member_id), self._programme().programme)

    def _tier_status(self, member: Member, programme: Programme) -> dict[str, Any]:
        def names(code: str) -> dict[str, str]:
            return dict(programme.tier(code).names) if code in programme.codes else {}

        return TierStatusSchema().dump(tier_ledger.status(self.db.session, programme, member, self._today(), names,
                                                          self.group.currency))

    @rpc
    def member_summary(self, member_id: str) -> dict[str, Any]:
        """What a member's page opens with, in one call: the member (``get_member``), its ``tier`` and its
        ``benefits`` — one read of the member and of the programme instead of three of each."""
        member = register.get(self.db.session, member_id)
        programme = self._programme().programme
        return {"member": self._view(member), "tier": self._tier_status(member, programme),
                "benefits": self._benefits(member, programme)}

    @rpc
    def tier_history(self, member_id: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        member = register.get(self.db.session, member_id)
        items, next_cursor = tier_ledger.history(self.db.session, member.id, page_limit(limit, 50, 200), cursor)
        return TierHistoryPageSchema().dump({"items": items, "next_cursor": next_cursor})

    @rpc
    @idempotent
    def change_tier(self, member_id: str, change: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Set a tier by hand (group admins: ``manual``) or after a points purchase (services: ``points_purchase``)."""
        data = load(ManualTierSchema(), change)
        self.caller.require_role(*access.TIER_SETTERS, action="set a member's tier by hand")
        if data["reason"] == "points_purchase" and self.caller.kind != "service":
            raise Forbidden("Only the points service records a tier bought with points.")
        member = self._locked(member_id)
        tier_ledger.set_by_hand(self.db.session, member, self._programme().programme, self.group.zone, data["tier"],
                                data["reason"], data["note"], utcnow(), self.events.emit, self.caller.actor, None)
        return self.tier(member_id)

    # --- family accounts -----------------------------------------------------------------------------

    def _family_answer(self, family: Any) -> dict[str, Any]:
        return FamilySchema().dump(families.view(self.db.session, family))

    @rpc
    @idempotent
    def create_family(self, family: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Open a family with its contact person (the guardian of its minors) as first member."""
        data = load(FamilyCreateSchema(), family)
        self.group.branch(data["branch"])
        self.caller.require_branch(data["branch"], "open family accounts at this branch")
        contact = self._locked(str(data["contact_member_id"]))
        return self._family_answer(families.create(self.db.session, contact, data["branch"], self.caller.actor, utcnow()))

    @rpc
    def get_family(self, family_id: str) -> dict[str, Any]:
        return self._family_answer(families.get(self.db.session, family_id))

    @rpc
    def member_family(self, member_id: str) -> dict[str, Any]:
        """The family a member belongs to (404: none)."""
        member = register.get(self.db.session, member_id)
        return self._family_answer(families.of_member(self.db.session, member.id))

    @rpc
    @idempotent
    def link_family_member(self, family_id: str, link: dict[str, Any],
                           idempotency_key: str | None = None) -> dict[str, Any]:
        """Link a member to a family (audited); a member belongs to one family at most."""
        data = load(FamilyLinkSchema(), link)
        family = families.get(self.db.session, family_id, lock=True)  # the family first, then the member
        self.caller.require_branch(family.home_branch, "change family accounts of this branch")
        member = self._locked(str(data["member_id"]))
        families.link(self.db.session, family, member, data["relation"], self.caller.actor, utcnow())
        return self._family_answer(family)

    @rpc
    @idempotent
    def unlink_family_member(self, family_id: str, member_id: str, unlink: dict[str, Any],
                             idempotency_key: str | None = None) -> dict[str, Any]:
        """Take a member out of a family (audited, with the reason)."""
        data = load(FamilyUnlinkSchema(), unlink)
        family = families.get(self.db.session, family_id, lock=True)
        self.caller.require_branch(family.home_branch, "change family accounts of this branch")
        member = register.get(self.db.session, member_id)
        families.unlink(self.db.session, family, member.id, data["reason"], self.caller.actor, utcnow())
        return self._family_answer(family)

    @rpc
    def family_history(self, family_id: str) -> dict[str, Any]:
        family = families.get(self.db.session, family_id)
        return FamilyHistorySchema().dump({"items": families.history(self.db.session, family.id)})

    # --- benefits and quotas -------------------------------------------------------------------------

    @rpc
    def benefits(self, member_id: str) -> dict[str, Any]:
        """The member's tier and what it gives now (booking horizon, discounts, yearly quotas and their use)."""
        return self._benefits(register.get(self.db.session, member_id), self._programme().programme)

    def _benefits(self, member: Member, programme: Programme) -> dict[str, Any]:
        granted = programme.benefits_of(member.tier)
        allowed: dict[str, int] = granted.pop("quotas")  # type: ignore[assignment]
        year = quotas.year_of(programme, member, self.group.zone, self._today())
        used = quotas.used_in(self.db.session, member.id, year.label)
        return BenefitsSchema().dump({
            "member_id": member.id, "tier": member.tier, "status": member.status, **granted,
            "quotas": benefits.quota_lines(allowed, used, year),
            "benefit_year_starts_on": year.starts_on, "benefit_year_ends_on": year.ends_on})

    @rpc
    def use_quota(self, member_id: str, benefit: str, use: dict[str, Any]) -> dict[str, Any]:
        """Use one of a yearly quota for a visit: the same visit twice is one use; none left is a 409."""
        data = load(QuotaUseRequestSchema(), use)
        if data["branch"]:
            self.group.branch(data["branch"])
            self.caller.require_branch(data["branch"], "use benefits at this branch")
        member = register.get(self.db.session, member_id, lock=True)
        return QuotaUseSchema().dump(quotas.use(self.db.session, member, self._programme().programme, self.group.zone,
                                                benefit, data["visit_id"], data["branch"], utcnow(), self.caller.actor))

    @rpc
    def undo_quota(self, member_id: str, benefit: str, undo: dict[str, Any]) -> dict[str, Any]:
        """Give back a quota use (the visit was cancelled); undoing twice is one undo."""
        data = load(QuotaUndoRequestSchema(), undo)
        member = register.get(self.db.session, member_id, lock=True)
        return QuotaUseSchema().dump(quotas.undo(self.db.session, member, self._programme().programme, benefit,
                                                 data["visit_id"], utcnow(), self.caller.actor))

    @rpc
    def price(self, member_id: str, bill: dict[str, Any]) -> dict[str, Any]:
        """A bill with the member's discounts applied (see ``benefits`` for the rounding rule)."""
        data = load(PriceRequestSchema(), bill)
        member = register.get(self.db.session, member_id)
        programme = self._programme().programme
        unknown = sorted({item["category"] for item in data["items"]} - set(programme.categories))
        if unknown:
            raise Invalid(f"Unknown service category {unknown[0]!r}.",
                          {"items": [f"Categories are {', '.join(programme.categories)}."]})
        on = data["on"] or self._today()
        birthday_month = bool(member.birth_mmdd) and int(member.birth_mmdd[:2]) == on.month
        priced = benefits.price(programme, member.tier, data["items"], birthday_month,
                                entitled=member.status == "active")
        return PriceSchema().dump({"member_id": member.id, "tier": member.tier, "currency": self.group.currency,
                                   **priced, "rounding": "per line, half up to a whole minor unit"})

    # --- segments ------------------------------------------------------------------------------------

    @rpc
    def segment_members(self, segment: str, branch: str | None = None, limit: int | None = None,
                        cursor: str | None = None, churn_risk: bool | None = None) -> dict[str, Any]:
        """Members of segment A, B or C (optionally of a branch, or at churn risk), a page at a time."""
        if segment not in SEGMENTS:
            raise Invalid("The segment is A, B or C.", {"segment": ["One of A, B, C."]})
        query = load(SegmentQuerySchema(), {"branch": branch, "churn_risk": churn_risk, "cursor": cursor,
                                            **({} if limit is None else {"limit": limit})})
        if query["branch"]:
            self.group.branch(query["branch"])
            self.caller.require_branch(query["branch"], "list members of this branch")
        elif self.caller.kind != "service" and not self.caller.all_branches:
            raise Forbidden("Give one of your branches: you may not list members of every branch.")
        items, next_cursor = segmentation.members_in(self.db.session, segment, query["branch"], query["churn_risk"],
                                                     query["limit"], query["cursor"])
        return SegmentPageSchema().dump({"items": items, "next_cursor": next_cursor})

    @rpc
    def member_segment(self, member_id: str) -> dict[str, Any]:
        """The member's segment, RFM scores and churn risk (as last graded; null before the first night)."""
        member = register.get(self.db.session, member_id)
        grading = segmentation.of_member(self.db.session, member.id)
        return {"member_id": str(member.id), "grading": SegmentMemberSchema().dump(grading) if grading else None}

    # --- the programme -------------------------------------------------------------------------------

    @rpc
    def get_programme(self) -> dict[str, Any]:
        history = programme_versions.versions(self.db.session, 20)
        return ProgrammeInForceSchema(history=history).dump(self._programme())

    @rpc
    @idempotent
    def set_programme(self, change: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Put a new version of the programme in force (group admins). Tiers move on the next event or review."""
        self.caller.require_role(*access.TIER_SETTERS, action="change the tier programme")
        data = load(ProgrammeChangeSchema(), change)
        stored = programme_versions.store(self.db.session, self.config, self.group.currency, data["programme"],
                                          data["note"], data["expected_version"], self.caller.actor)
        return ProgrammeInForceSchema(exclude=("history",)).dump(stored)

    @rpc
    def preview_programme(self, change: dict[str, Any]) -> dict[str, Any]:
        """What storing ``change`` (as ``set_programme`` takes it) would do to members' tiers; writes nothing."""
        self.caller.require_role(*access.TIER_SETTERS, action="preview a change of the tier programme")
        data = load(ProgrammeChangeSchema(), change)
        proposed = programme_versions.parse(data["programme"], self.group.currency)
        current = self._programme()
        programme_versions.keeps_held_tiers(self.db.session, current.programme, proposed)
        found = standings.preview(self.db.session, current.programme, proposed, self._today())
        return ProgrammePreviewSchema().dump({"version": current.version, "preview": found})

    # --- merges and lifecycle ------------------------------------------------------------------------

    @rpc
    @idempotent
    def merge_members(self, survivor_id: str, merge: dict[str, Any],
                      idempotency_key: str | None = None) -> dict[str, Any]:
        """Merge a duplicate into ``survivor_id``: its history moves over; audited and reversible."""
        data = load(MergeRequestSchema(), merge)
        survivor, merged = lifecycle.lock_pair(self.db.session, survivor_id, data["merged_id"])
        for member in (survivor, merged):
            self.caller.require_branch(member.home_branch, "merge members of this branch")
        done = lifecycle.already_merged(self.db.session, survivor, merged)
        row = done or lifecycle.merge(self.db.session, survivor, merged, self._programme().programme,
                                      self.group.zone, data["reason"], utcnow(), self.events.emit, self.caller.actor)
        return MergeSchema(survivor_tier=survivor.tier).dump(row)

    @rpc
    @idempotent
    def reverse_merge(self, merge_id: str, reversal: dict[str, Any],
                      idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(MergeReversalSchema(), reversal)
        row = lifecycle.get_merge(self.db.session, merge_id, lock=True)
        for member_id in (row.survivor_id, row.merged_id):
            self.caller.require_branch(register.get(self.db.session, member_id).home_branch,
                                       "reverse merges of this branch")
        row = lifecycle.reverse(self.db.session, row, self._programme().programme, self.group.zone, data["reason"],
                                utcnow(), self.events.emit, self.caller.actor)
        return MergeSchema(survivor_tier=register.get(self.db.session, row.survivor_id).tier).dump(row)

    @rpc
    def member_merges(self, member_id: str) -> dict[str, Any]:
        member = register.get(self.db.session, member_id)
        return {"items": MergeSchema(many=True).dump(lifecycle.merges_of(self.db.session, member.id))}

    def _change_status(self, member_id: str, change: dict[str, Any],
                       move: Callable[..., bool]) -> tuple[Member, bool]:
        """The member, locked, moved by ``move`` (``lifecycle.freeze``...), and whether its status changed."""
        data = load(MemberStatusChangeSchema(), change)
        member = self._locked(member_id)
        return member, move(self.db.session, member, data["reason"], data["note"], utcnow(), self.events.emit,
                            self.caller.actor)

    @rpc
    def freeze_member(self, member_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Active -> frozen: no earning, redeeming, quota use or discount. Freezing twice is one freeze."""
        member, _ = self._change_status(member_id, change, lifecycle.freeze)
        return self._view(member)

    @rpc
    def unfreeze_member(self, member_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Frozen -> active; the tier is re-evaluated at once on the activity kept meanwhile."""
        member, moved = self._change_status(member_id, change, lifecycle.unfreeze)
        if moved:
            self._reassess(member, "reactivated")
        return self._view(member)

    @rpc
    def close_member(self, member_id: str, change: dict[str, Any]) -> dict[str, Any]:
        """Close the membership and erase personal data (id, card number and anonymised ledgers stay)."""
        member, _ = self._change_status(member_id, change, lifecycle.close)
        return self._view(member)

    @rpc
    def status_history(self, member_id: str) -> dict[str, Any]:
        member = register.get(self.db.session, member_id)
        return {"items": StatusChangeSchema(many=True).dump(lifecycle.status_history(self.db.session, member.id))}

    # --- the night -----------------------------------------------------------------------------------

    def _night(self, day: date, max_batches: int | None) -> dict[str, Any]:
        with self.db.store.transaction() as session:
            programme: Programme = programme_versions.in_force(session, self.config, self.group.currency).programme
        sizes = nightly.BatchSizes(reviews=int(setting(self.config, "TIER_REVIEW_BATCH")),
                                   segments=int(setting(self.config, "SEGMENT_BATCH")))
        return nightly.run(self.db.store, programme, self.group.zone, day, max_batches, sizes)

    @rpc
    def visit_activity(self, visit_ids: list[str]) -> dict[str, Any]:
        """What each visit contributed to tier spend and visit counts (the cross-service visit audit asks
        once per batch of visits)."""
        self.caller.require_role(*access.AUDITORS, action="audit visits")
        if not isinstance(visit_ids, list) or len(visit_ids) > activity.AUDIT_MAX_VISITS \
                or not all(isinstance(v, str) and 0 < len(v) <= 64 for v in visit_ids):
            raise Invalid(f"visit_ids must be a list of at most {activity.AUDIT_MAX_VISITS} visit ids.",
                          {"visit_ids": ["Not a list of visit ids."]})
        return {"items": activity.visits_of(self.db.session, visit_ids)}

    @rpc
    def run_nightly(self, day: str | None = None, max_batches: int | None = None) -> dict[str, Any]:
        """Run (or continue) the night's tier reviews and segmentation now (group admins; once per day)."""
        self.caller.require_role(*access.TIER_SETTERS, action="run the nightly jobs")
        today = self._today()
        try:
            wanted = date.fromisoformat(day) if day else today
        except ValueError:
            raise Invalid("day must look like 2026-03-15.", {"day": ["Not a date."]}) from None
        if wanted > today and self.caller.kind != "service":
            raise Conflict("A future day's reviews cannot be run early.")
        limit = None if max_batches is None else page_limit(max_batches, 1, 100_000)
        return {"day": wanted.isoformat(), "jobs": self._night(wanted, limit)}

    @timer(interval=60)
    def nightly_tick(self) -> None:
        """After ``NIGHTLY_AT`` local time: continue the day's jobs, ``NIGHTLY_MAX_BATCHES`` batches a tick."""
        starts = nightly_starts(self.config)
        now = datetime.now(self.group.zone)
        if starts is None or now.time() < starts:
            return
        self._night(now.date(), int(setting(self.config, "NIGHTLY_MAX_BATCHES")))

    @event_handler(VisitsImported)
    def on_visits_imported(self, data: dict[str, Any]) -> None:
        """History brought over by an import counts as completed visits do; the tier is then placed on it by the
        programme's rules, once per member and batch, announced with reason ``import`` (not congratulated)."""
        self._currency(data["currency"])
        member = tier_ledger.member_for_event(self.db.session, data["member_id"])
        if activity.record_imported_visits(self.db.session, member.id, data["visits"], self.group.zone, utcnow()):
            self._keep_window(member)
            self._reassess(member, f"import:visit:{data['visits'][0]['visit_id']}",
                           partial(tier_ledger.reassess, reason="import"))

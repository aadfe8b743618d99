"""The members service: enrolment, lookups and changes of the group's members."""

from __future__ import annotations

from typing import Any

from services.kit import Database, Forbidden, Outbox, Service, idempotent, load, rpc
from services.kit.clock import isoformat, utcnow
from services.kit.config import Group, group_from_config
from services.kit.schemas import page_limit
from services.kit.telemetry import counter
from services.members import register
from services.members.models import Member
from services.members.programme import DEFAULT_PROGRAMME
from services.members.schemas import EnrolmentSchema, FindMembersSchema, MemberChangesSchema

ENROLLED = counter("careloop_members_enrolled_total", "Members enrolled", ("branch", "source"))
UPDATED = counter("careloop_members_updated_total", "Member records changed", ("branch",))

# Who sees a member's phone / ID number in full (others see them masked). Config may override.
PHONE_ROLES = ("group_admin", "branch_manager", "front_desk", "customer_service", "integration")
DOCUMENT_ROLES = ("group_admin", "integration")


class MembersService(Service):
    name = "members"
    db = Database()
    events = Outbox()

    @property
    def group(self) -> Group:
        return group_from_config(self.config)

    def _view(self, member: Member) -> dict[str, Any]:
        role, kind = self.caller.role, self.caller.kind
        phone_roles = self.config.get("UNMASKED_PHONE_ROLES", PHONE_ROLES)
        document_roles = self.config.get("UNMASKED_DOCUMENT_ROLES", DOCUMENT_ROLES)
        return register.view(member, reveal_phone=kind == "service" or role in phone_roles,
                             reveal_document=kind == "service" or role in document_roles)

    @rpc
    @idempotent
    def enrol(self, member: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(EnrolmentSchema(), member)
        self.caller.require_branch(data["home_branch"], "enrol members at this branch")
        enrolled = register.enrol(self.db.session, data, self.group, utcnow())
        self.events.emit("member_enrolled", {
            "member_id": str(enrolled.id), "home_branch": enrolled.home_branch,
            "referrer_id": str(enrolled.referred_by_id) if enrolled.referred_by_id else None,
            "preferred_language": enrolled.preferred_language, "source": enrolled.source,
            "enrolled_at": isoformat(enrolled.enrolled_at),
        })
        ENROLLED.labels(enrolled.home_branch, enrolled.source).inc()
        return self._view(enrolled)

    @rpc
    def get_member(self, member_id: str) -> dict[str, Any]:
        return self._view(register.get(self.db.session, member_id))

    @rpc
    def get_member_by_card(self, card_number: str) -> dict[str, Any]:
        return self._view(register.by_card(self.db.session, card_number))

    @rpc
    def find_members(self, query: dict[str, Any]) -> dict[str, Any]:
        criteria = load(FindMembersSchema(), query)
        members, next_cursor = register.find(self.db.session, criteria, self.group)
        # lists always mask: a list is what gets photographed, printed and left on a desk
        return {"items": [register.view(member) for member in members], "next_cursor": next_cursor}

    @rpc
    @idempotent
    def update_member(self, member_id: str, changes: dict[str, Any],
                      idempotency_key: str | None = None) -> dict[str, Any]:
        data = load(MemberChangesSchema(), changes)
        member = register.get(self.db.session, member_id, lock=True)
        changed = register.update(self.db.session, member, data, self.group, utcnow())
        if changed:
            self.events.emit("member_updated", {"member_id": str(member.id), "changed": changed})
            UPDATED.labels(member.home_branch).inc()
        return self._view(member)

    @rpc
    def benefits(self, member_id: str) -> dict[str, Any]:
        """The member's tier and what it gives now (booking horizon, discounts, yearly quotas)."""
        member = register.get(self.db.session, member_id)
        granted = DEFAULT_PROGRAMME.benefits_of(member.tier)
        quotas = [{"benefit": benefit, "allowed": allowed} for benefit, allowed in sorted(granted.pop("quotas").items())]
        return {"member_id": str(member.id), "tier": member.tier, **granted, "quotas": quotas}

    @rpc
    def birthdays(self, month_day: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        """Who has a birthday on ``month_day`` (``MM-DD``): for greetings, a page at a time."""
        members, next_cursor = register.birthdays(self.db.session, month_day, page_limit(limit, 500, 5000), cursor)
        items = [{"member_id": str(m.id), "preferred_language": m.preferred_language,
                  "home_branch": m.home_branch, "tier": m.tier} for m in members]
        return {"items": items, "next_cursor": next_cursor}

    @rpc
    def get_contact(self, member_id: str) -> dict[str, Any]:
        """How to reach a member, consents included: for other services (notifications), not people."""
        if self.caller.kind != "service":
            raise Forbidden("Contact details are only given to CareLoop services.")
        return register.contact(register.get(self.db.session, member_id))

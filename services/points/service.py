"""The points service class: its dependencies and entrypoints (the rooms: services/points/__init__.py)."""

from __future__ import annotations

import uuid
from typing import Any

from nameko.timer import timer
from sqlalchemy import select

from services.kit import Database, Invalid, Outbox, Service, event_handler, idempotent, load, rpc
from services.kit.clock import utcnow
from services.kit.exports import (
    ExportCursorSchema,
    ExportQuerySchema,
    MaskedExportSchema,
    changed_page,
    horizon,
    require_exporter,
    retied,
    reveals,
)
from services.kit.idempotency import check_key
from services.kit.jobs import run_batches
from services.kit.peers import Peer
from services.kit.schemas import Schema, decode_cursor, encode_cursor, money, page_limit
from services.members.events import (
    MemberEnrolled,
    MemberMerged,
    MembersImported,
    MemberStatusChanged,
    MemberUnmerged,
    SegmentChanged,
    TierChanged,
    enrolments,
)
from services.points import (
    access,
    awards,
    campaigns,
    catalogue,
    coupons,
    earning_rules,
    expiry,
    holds,
    ledger,
    merges,
    openings,
    outcomes,
    reconciliation,
    roster,
    settings,
    transfers,
    wallet,
)
from services.points.awards import Context
from services.points.coupons import USER_FIRST as COUPON_USER_FIRST  # the class has a method named coupons
from services.points.events import EVENTS
from services.points.models import Coupon, MemberCopy, PointsPosting, WalletAccount, WalletPosting
from services.points.rules import earning, redemption
from services.points.rules.programme import Programme
from services.points.schemas import (
    CURRENCY,
    BalanceSchema,
    CampaignBodySchema,
    CampaignListSchema,
    CampaignQuerySchema,
    CampaignSchema,
    CancellationSchema,
    CashDeductionSchema,
    CashLimitResultSchema,
    CashLimitSchema,
    CouponCheckSchema,
    CouponExportSchema,
    CouponIssueSchema,
    CouponPageSchema,
    CouponQuerySchema,
    CouponSchema,
    CouponUseSchema,
    DailyJobsSchema,
    EarningRulesBodySchema,
    EarningRulesSchema,
    EarningRulesVersionSchema,
    EarnSchema,
    ExpectedVersionSchema,
    FamilyBalancesSchema,
    FamilyTransferSchema,
    LotExportSchema,
    LotListSchema,
    OpeningBatchSchema,
    OpeningOutcomesSchema,
    PageQuerySchema,
    PointsTransferSchema,
    PostingExportSchema,
    PostingPageSchema,
    PostingSchema,
    QuoteResultSchema,
    QuoteSchema,
    ReconciliationSchema,
    RedeemSchema,
    RedemptionOutSchema,
    RedemptionPageSchema,
    RewardChangesSchema,
    RewardOutSchema,
    RewardPageSchema,
    RewardQuerySchema,
    RewardSchema,
    TierPurchaseSchema,
    TopUpSchema,
    VisitAskSchema,
    VoidSchema,
    WalletExportSchema,
    WalletPaymentSchema,
    WalletPostingExportSchema,
    WalletPostingPageSchema,
    WalletPostingSchema,
    WalletRefundSchema,
    WalletSchema,
    WalletTransferSchema,
)
from services.records.events import FeedbackSubmitted, VisitCancelled, VisitCompleted, VisitRefunded

JOB_BATCHES_PER_TICK = 50


def _required_key(key: str | None) -> str:
    """Ledger commands need an idempotency key: a retried or double-clicked request must not post twice."""
    if key is None:
        raise Invalid("Send an idempotency key (the Idempotency-Key header) with every points or stored-value "
                      "change.", {"idempotency_key": ["Required."]})
    return check_key(key)


class PointsService(Service):
    name = "points"
    db = Database()
    events = Outbox(EVENTS)
    members = Peer("members")

    # --- shared helpers ------------------------------------------------------------------------------

    @property
    def programme(self) -> Programme:
        return settings.programme_of(self.config)

    def _ctx(self, with_campaigns: bool = False, stamp: Any = campaigns.UNREAD) -> Context:
        """``with_campaigns``: the programme with the earning rules and campaigns stored through the API merged in
        (one cached row read, campaigns.py; ``stamp``: that row, read already) — for what is earned; every other
        rule is the file's alone."""
        programme = self.programme
        if with_campaigns:
            programme = campaigns.in_force(self.db.session, programme, stamp)
        return Context(programme, self.group.zone, self.group.currency, utcnow(), self.caller.actor)

    def _dump(self, schema: Schema, answer: Any) -> dict[str, Any]:
        """``schema``'s dump of ``answer``, in the group's currency (for rows that store none: rewards, redemptions)."""
        with CURRENCY(self.group.currency):
            return schema.dump(answer)

    def _member(self, member_id: str, held: bool = False, read: Any = roster.UNREAD) -> MemberCopy:
        """The member an id names now (the survivor of a merge). ``held``: for a change, which must also hold
        the alias until it commits (``roster.resolve``), so call it before locking any account. ``read``: the
        id's copy, read already (``roster.resolve``)."""
        return roster.resolve(self.db.session, member_id, self.members.get_member, utcnow(), held=held, read=read)

    def _branch(self, branch: str, action: str) -> None:
        self.group.branch(branch)
        self.caller.require_branch(branch, action)

    def _announce(self, postings: list[Any], **extra: Any) -> None:
        for posting in postings:
            announced = ledger.event_of(posting, **extra)
            if announced is not None:
                self.events.emit(*announced)
            ledger.count(posting)

    def _announce_visit(self, postings: list[Any]) -> None:
        """A completed visit's postings: its earns in one event a member (``ledger.visit_events``)."""
        for announced in ledger.visit_events(postings):
            self.events.emit(*announced)
        for posting in postings:
            ledger.count(posting)

    # --- points: reading --------------------------------------------------------------------------------

    @rpc
    def balance(self, member_id: str) -> dict[str, Any]:
        member = self._member(member_id)
        ctx = self._ctx()
        account = ledger.find_account(self.db.session, member.member_id)
        summary = ledger.summary(self.db.session, member.member_id, account, ctx.today,
                                 ctx.programme.expiry_warning_days)
        return BalanceSchema().dump({**summary, "pending_schedule": holds.schedule(self.db.session, member.member_id)})

    @rpc
    def history(self, member_id: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        page = load(PageQuerySchema(), {"limit": limit or 20, "cursor": cursor})
        member = self._member(member_id)
        rows, next_cursor = ledger.history(self.db.session, member.member_id, page["limit"], page["cursor"])
        return PostingPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    def lots(self, member_id: str) -> dict[str, Any]:
        member = self._member(member_id)
        return LotListSchema().dump({"items": ledger.open_lots(self.db.session, member.member_id)})

    @rpc
    def quote(self, member_id: str, bill: dict[str, Any]) -> dict[str, Any]:
        """What a bill would earn, rule by rule (nothing is posted)."""
        data = load(QuoteSchema(), bill)
        ctx = self._ctx(with_campaigns=True)
        visit = awards.bill_facts(data, ctx)
        member = self._member(member_id)
        lines = earning.quote_visit(ctx.programme, visit, awards.member_facts(member))
        return QuoteResultSchema().dump({
            "member_id": member.member_id, "tier": member.tier,
            "qualifying": money(earning.qualifying_spend(ctx.programme, visit), ctx.currency), "lines": lines,
            "total_to_member": sum(line.points for line in lines if not line.to_referrer)})

    def _minor(self, amount: dict[str, Any], field: str) -> int:
        if amount["currency"] != self.group.currency:
            raise Invalid(f"Amounts must be in {self.group.currency}.", {field: [f"Must be {self.group.currency}."]})
        return amount["amount"]

    @rpc
    def programme_rules(self) -> dict[str, Any]:
        """The earning, expiry and redemption rules in force (for the console and the desk)."""
        return campaigns.in_force(self.db.session, self.programme).as_dict()

    # --- campaigns: the file's (read-only) and those created through the API ----------------------------

    def _campaign_answer(self, stored: campaigns.Stored) -> dict[str, Any]:
        return CampaignSchema().dump(campaigns.describe(stored, self._ctx().today))

    @rpc
    def list_campaigns(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        """Every campaign, the file's first, each with its state today (``state``: only those)."""
        data = load(CampaignQuerySchema(), query or {})
        found = campaigns.listing(self.db.session, self.programme, self._ctx().today, data["state"])
        return CampaignListSchema().dump({"items": found})

    @rpc
    def get_campaign(self, code: str) -> dict[str, Any]:
        """One campaign with every version of its terms and who made each."""
        return CampaignSchema().dump(campaigns.get(self.db.session, self.programme, code, self._ctx().today))

    @rpc
    @idempotent
    def create_campaign(self, campaign: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """A new campaign (version 1), checked as the programme file's are; visits earned once this answered
        get it between its dates."""
        self.caller.require_role(*access.CAMPAIGN_EDITORS, action="create campaigns")
        _required_key(idempotency_key)
        terms = load(CampaignBodySchema(), campaign)
        ctx = self._ctx()
        stored = campaigns.create(self.db.session, self.programme, terms, ctx.now, ctx.operator)
        return self._campaign_answer(stored)

    @rpc
    @idempotent
    def update_campaign(self, code: str, campaign: dict[str, Any],
                        idempotency_key: str | None = None) -> dict[str, Any]:
        """The campaign's next version (``expected_version``: 409 if someone changed it since); not once ended."""
        self.caller.require_role(*access.CAMPAIGN_EDITORS, action="change campaigns")
        _required_key(idempotency_key)
        terms = load(CampaignBodySchema(), campaign)
        expected = load(ExpectedVersionSchema(), {"expected_version": terms.pop("expected_version", None)})
        expected = expected["expected_version"]
        ctx = self._ctx()
        stored = campaigns.update(self.db.session, self.programme, code, terms, expected, ctx.today, ctx.now,
                                  ctx.operator)
        return self._campaign_answer(stored)

    @rpc
    @idempotent
    def end_campaign(self, code: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """End a campaign now: visits earned after this answered no longer get it (again: no change)."""
        self.caller.require_role(*access.CAMPAIGN_EDITORS, action="end campaigns")
        _required_key(idempotency_key)
        ctx = self._ctx()
        return self._campaign_answer(campaigns.end(self.db.session, self.programme, code, ctx.now, ctx.operator))

    # --- points: earning ----------------------------------------------------------------------------------

    @rpc
    @idempotent(first=awards.EARN_FIRST)  # the member's copy and the campaigns' stamp read with the claim
    def earn(self, member_id: str, award: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Points for an activity, an online interaction, or a manager's adjustment."""
        key = _required_key(idempotency_key)
        data = load(EarnSchema.shared(), award)
        self._branch(data["branch"], "give points at this branch")
        if data["rule"] == "adjust":
            self.caller.require_role(*access.ADJUSTERS, action="adjust points by hand")
        copy, stamp = awards.read_with_claim(self.db.session, member_id)
        member = self._member(member_id, held=True, read=copy)
        roster.require_active(member, "earn points")
        postings = awards.earn_command(self.db.session, self._ctx(with_campaigns=True, stamp=stamp), member, data, key)
        self._announce(postings)
        return PostingSchema.shared().dump(postings[-1])

    # --- points: spending ---------------------------------------------------------------------------------

    @rpc
    @idempotent(first=roster.HELD_COPY_FIRST)  # the member's copy read with the claim
    def redeem(self, member_id: str, request: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Spend points on a reward of the catalogue (a coupon reward gives its coupon at once)."""
        key = _required_key(idempotency_key)
        data = load(RedeemSchema(), request)
        self._branch(data["branch"], "redeem points at this branch")
        member = self._member(member_id, held=True)
        roster.require_active(member, "redeem points")
        ctx = self._ctx()
        record, postings, coupon = catalogue.redeem_reward(self.db.session, ctx, member, data, key)
        self._announce(postings, kind="reward", reward_id=record.reward_id, amount_minor=None, currency=None,
                       bill_id=None)
        ledger.REDEEMED.labels("reward", data["branch"]).inc(record.points)
        if coupon is not None:
            self._coupon_issued(coupon)
        return {**self._dump(RedemptionOutSchema(), record),
                "coupon": CouponSchema().dump(coupon) if coupon is not None else None}

    @rpc
    @idempotent(first=roster.HELD_COPY_FIRST)  # the member's copy read with the claim
    def buy_tier(self, member_id: str, purchase: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """A tier upgrade bought with points, where the programme prices it (``tier_upgrade_prices``).

        No half state, by ordering rather than compensation: points spends first in its open transaction,
        then asks members to place the tier (``change_tier``, reason ``points_purchase``, idempotent under a
        key derived from this one), and commits only after members answered. Members refusing (a tier not
        above the member's, a membership not active) or not answering rolls the spend back: nothing happened.
        The one window left — members placed the tier, then points failed to commit — is a failure the
        caller sees (503) and retries under the same key: members replays its answer, points spends once.
        A compensating reverse would need a second transaction that can fail the same way; this needs none.
        """
        key = _required_key(idempotency_key)
        data = load(TierPurchaseSchema(), purchase)
        self._branch(data["branch"], "sell tier upgrades at this branch")
        member = self._member(member_id, held=True)
        roster.require_active(member, "buy a tier upgrade")
        record, postings = catalogue.buy_tier(self.db.session, self._ctx(), member, data, key)
        tier = self.members.as_service().change_tier(str(member.member_id), {
            "tier": data["tier"], "reason": "points_purchase",
            "note": f"bought with {record.points} points (redemption {record.id})"},
            idempotency_key=f"points-tier:{key}")
        self._announce(postings, kind="tier_upgrade", reward_id=None, amount_minor=None, currency=None, bill_id=None)
        ledger.REDEEMED.labels("tier_upgrade", data["branch"]).inc(record.points)
        return {**self._dump(RedemptionOutSchema(), record), "tier": tier}

    @rpc
    def cash_deduction_limit(self, member_id: str, bill: dict[str, Any]) -> dict[str, Any]:
        """The most points a member may use on a bill of this size, and what they are worth."""
        data = load(CashLimitSchema(), bill)
        member = self._member(member_id)
        ctx = self._ctx()
        account = ledger.find_account(self.db.session, member.member_id)
        balance = ledger.summary(self.db.session, member.member_id, account, ctx.today, 0)["spendable"]
        points, worth = redemption.cash_limit(self.programme, self._minor(data["bill"], "bill"), balance)
        return CashLimitResultSchema().dump({"member_id": member.member_id, "balance": balance, "max_points": points,
                                             "max_amount": money(worth, self.group.currency)})

    @rpc
    @idempotent(first=roster.HELD_COPY_FIRST)  # the member's copy read with the claim
    def deduct_cash(self, member_id: str, deduction: dict[str, Any],
                    idempotency_key: str | None = None) -> dict[str, Any]:
        """Points off a bill (default 100 points = 1 CNY, at most half the bill); one per bill."""
        data = load(CashDeductionSchema(), deduction)
        key = _required_key(idempotency_key or data["bill_id"])
        self._minor(data["bill"], "bill")
        self._branch(data["branch"], "redeem points at this branch")
        member = self._member(member_id, held=True)
        roster.require_active(member, "redeem points")
        ctx = self._ctx()
        record, postings = catalogue.deduct_cash(self.db.session, ctx, member, data, key)
        if postings:
            self._announce(postings, kind="cash_deduction", reward_id=None, amount_minor=record.amount_minor,
                           currency=ctx.currency, bill_id=record.bill_id)
            ledger.REDEEMED.labels("cash_deduction", data["branch"]).inc(record.points)
        return self._dump(RedemptionOutSchema(), record)

    @rpc
    @idempotent
    def cancel_redemption(self, redemption_id: str, cancellation: dict[str, Any], idempotency_key: str | None = None,
                          member_id: str | None = None) -> dict[str, Any]:
        """Cancel a pending redemption: the points go back to their lots, the reward back to stock."""
        data = load(CancellationSchema(), cancellation)
        ctx = self._ctx()
        record = catalogue.get_redemption(self.db.session, redemption_id, member_id=member_id)
        self.caller.require_branch(record.branch, "cancel redemptions of this branch")
        record, postings = catalogue.cancel(self.db.session, ctx, redemption_id, data["reason"])
        self._announce(postings)
        if postings:
            self.events.emit("redemption_cancelled", {
                "member_id": record.member_id, "redemption_id": record.id, "kind": record.kind,
                "posting_id": str(postings[0].id), "points": postings[0].points, "reward_id": record.reward_id})
        return self._dump(RedemptionOutSchema(), record)

    @rpc
    @idempotent
    def fulfil_redemption(self, redemption_id: str, idempotency_key: str | None = None,
                          member_id: str | None = None) -> dict[str, Any]:
        """The reward was handed over: the redemption is final."""
        ctx = self._ctx()
        record = catalogue.get_redemption(self.db.session, redemption_id, member_id=member_id)
        self.caller.require_branch(record.branch, "hand over rewards at this branch")
        return self._dump(RedemptionOutSchema(), catalogue.fulfil(self.db.session, ctx, redemption_id))

    @rpc
    def redemptions(self, member_id: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        page = load(PageQuerySchema(), {"limit": limit or 20, "cursor": cursor})
        member = self._member(member_id)
        rows, next_cursor = catalogue.history(self.db.session, member.member_id, page["limit"], page["cursor"])
        return self._dump(RedemptionPageSchema(), {"items": rows, "next_cursor": next_cursor})

    # --- rewards catalogue --------------------------------------------------------------------------------

    @rpc
    def rewards(self, query: dict[str, Any] | None = None) -> dict[str, Any]:
        data = load(RewardQuerySchema(), query or {})
        rows, next_cursor = catalogue.list_rewards(self.db.session, data.get("tier"), data["include_inactive"],
                                                   data["limit"], data["cursor"])
        return self._dump(RewardPageSchema(), {"items": rows, "next_cursor": next_cursor})

    @rpc
    def get_reward(self, reward_id: str) -> dict[str, Any]:
        return self._dump(RewardOutSchema(), catalogue.get_reward(self.db.session, reward_id))

    @rpc
    @idempotent
    def create_reward(self, reward: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self.caller.require_role(*access.CATALOGUE_EDITORS, action="change the rewards catalogue")
        data = load(RewardSchema(), reward)
        if data.get("coupon") and data["coupon"].get("value"):
            self._minor(data["coupon"]["value"], "coupon")
        created = catalogue.create_reward(self.db.session, data, utcnow())
        return self._dump(RewardOutSchema(), created)

    @rpc
    @idempotent
    def change_reward(self, reward_id: str, changes: dict[str, Any],
                      idempotency_key: str | None = None) -> dict[str, Any]:
        self.caller.require_role(*access.CATALOGUE_EDITORS, action="change the rewards catalogue")
        data = load(RewardChangesSchema(), changes)
        changed = catalogue.change_reward(self.db.session, reward_id, data, utcnow())
        return self._dump(RewardOutSchema(), changed)

    # --- stored value -------------------------------------------------------------------------------------

    @rpc
    def wallet(self, member_id: str) -> dict[str, Any]:
        member = self._member(member_id)
        held = self.db.session.get(wallet.WalletAccount, member.member_id)
        return WalletSchema().dump(wallet.summary(member.member_id, held, self.group.currency))

    @rpc
    def wallet_history(self, member_id: str, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        page = load(PageQuerySchema(), {"limit": limit or 20, "cursor": cursor})
        member = self._member(member_id)
        rows, next_cursor = wallet.history(self.db.session, member.member_id, page["limit"], page["cursor"])
        return WalletPostingPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    @idempotent(first=roster.HELD_COPY_FIRST)  # the member's copy read with the claim
    def top_up(self, member_id: str, top_up: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Money paid onto the member's card (with the bonus of the programme's offers)."""
        key = _required_key(idempotency_key)
        data = load(TopUpSchema(), top_up)
        self._branch(data["branch"], "top up cards at this branch")
        member = self._member(member_id, held=True)
        may_set_bonus = self.caller.kind == "service" or self.caller.role in access.BONUS_SETTERS
        posting, created = wallet.top_up(self.db.session, self._ctx(), member, data, key, may_set_bonus)
        if created:
            self.events.emit("topped_up", wallet.topped_up_event(posting))
            wallet.TOPPED_UP.labels("principal", data["branch"]).inc(posting.principal_minor)
            wallet.TOPPED_UP.labels("bonus", data["branch"]).inc(posting.bonus_minor)
        return WalletPostingSchema().dump(posting)

    @rpc
    @idempotent(first=roster.HELD_COPY_FIRST)  # the member's copy read with the claim
    def pay(self, member_id: str, payment: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Pay (part of) a bill from the card; the answer says how much was principal and bonus."""
        key = _required_key(idempotency_key)
        data = load(WalletPaymentSchema(), payment)
        self._branch(data["branch"], "take card payments at this branch")
        member = self._member(member_id, held=True)
        posting, created = wallet.pay(self.db.session, self._ctx(), member, data, key)
        if created:
            wallet.PAID.labels(data["branch"]).inc(-(posting.principal_minor + posting.bonus_minor))
        return WalletPostingSchema().dump(posting)

    @rpc
    @idempotent
    def refund_payment(self, payment_id: str, refund: dict[str, Any], idempotency_key: str | None = None,
                       member_id: str | None = None) -> dict[str, Any]:
        """Give (part of) a card payment back to the card."""
        key = _required_key(idempotency_key)
        data = load(WalletRefundSchema(), refund)
        self.caller.require_role(*access.REFUNDERS, action="refund card payments")
        if data.get("branch"):
            self._branch(data["branch"], "refund card payments at this branch")
        posting, _created = wallet.refund(self.db.session, self._ctx(), payment_id, data, key, member_id)
        return WalletPostingSchema().dump(posting)

    # --- coupons ----------------------------------------------------------------------------------------

    def _coupon_issued(self, coupon: Any) -> None:
        self.events.emit("coupon_issued", coupons.issued_event(coupon))
        coupons.COUPONS.labels("issued", coupon.source).inc()

    @rpc
    @idempotent(first=roster.HELD_COPY_FIRST)  # the member's copy read with the claim
    def issue_coupon(self, member_id: str, coupon: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Give a member a coupon (birthday, festival, campaign, or by hand); once per idempotency key."""
        key = _required_key(idempotency_key)
        self.caller.require_role(*access.COUPON_ISSUERS, action="issue coupons")
        data = load(CouponIssueSchema(), coupon)
        terms = {**data, "value_minor": self._minor(data["value"], "value") if data["value"] else None,
                 "max_discount_minor": self._minor(data["max_discount"], "max_discount") if data["max_discount"] else None,
                 "min_spend_minor": self._minor(data["min_spend"], "min_spend") if data["min_spend"] else 0}
        member = self._member(member_id, held=True)
        issued, created = coupons.issue(self.db.session, self._ctx(), member, terms, f"issue:{key}")
        if created:
            self._coupon_issued(issued)
        return CouponSchema().dump(issued)

    @rpc
    def coupons(self, member_id: str, state: str | None = None, limit: int | None = None,
                cursor: str | None = None) -> dict[str, Any]:
        query = load(CouponQuerySchema(), {k: v for k, v in {"state": state, "limit": limit or 20,
                                                              "cursor": cursor}.items() if v is not None})
        member = self._member(member_id)
        rows, next_cursor = coupons.of_member(self.db.session, member.member_id, query.get("state"),
                                              query["limit"], query.get("cursor"))
        return CouponPageSchema().dump({"items": rows, "next_cursor": next_cursor})

    @rpc
    def get_coupon(self, code: str) -> dict[str, Any]:
        return CouponSchema().dump(coupons.get(self.db.session, code))

    @rpc
    def check_coupon(self, code: str, use: dict[str, Any]) -> dict[str, Any]:
        """Whether a coupon can be used on this bill and what it would take off (nothing changes)."""
        data = load(CouponUseSchema(), use)
        self._minor(data["bill"], "bill")
        member = self._member(data["member_id"])
        coupon, discount = coupons.check(self.db.session, self._ctx(), code, member, data)
        return CouponCheckSchema().dump({"coupon": coupon, "discount": {"amount": discount, "currency": coupon.currency}})

    @rpc
    @idempotent(first=COUPON_USER_FIRST)  # the member's copy read with the claim
    def redeem_coupon(self, code: str, use: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """Use a coupon on a bill, once; the answer says how much it took off."""
        data = load(CouponUseSchema(), use)
        _required_key(idempotency_key or data["bill_id"])
        self._minor(data["bill"], "bill")
        self._branch(data["branch"], "take coupons at this branch")
        copy, _row = roster.prefetched_copy(self.db.session, COUPON_USER_FIRST, data["member_id"])
        member = self._member(data["member_id"], held=True, read=copy)
        used = coupons.redeem(self.db.session, self._ctx(), code, member, data)
        coupons.COUPONS.labels("redeemed", used.source).inc()
        return CouponSchema().dump(used)

    @rpc
    @idempotent
    def void_coupon(self, code: str, voiding: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        self.caller.require_role(*access.COUPON_VOIDERS, action="void coupons")
        data = load(VoidSchema(), voiding)
        voided = coupons.void(self.db.session, self._ctx(), code, data["reason"])
        coupons.COUPONS.labels("voided", voided.source).inc()
        return CouponSchema().dump(voided)

    # --- family accounts --------------------------------------------------------------------------------

    def _family_pair(self, family_id: str, data: dict[str, Any], allowed: bool, what: str) -> tuple[Any, Any, Any]:
        """The family (from members), then both members resolved and held in id order, before any account lock."""
        transfers.refused_unless(allowed, what)
        self._branch(data["branch"], f"transfer {what} at this branch")
        family = self.members.get_family(family_id)
        transfers.check_family(family, data["from_member_id"], data["to_member_id"])
        held = {member_id: self._member(str(member_id), held=True)
                for member_id in sorted((data["from_member_id"], data["to_member_id"]), key=str)}
        giver, receiver = held[data["from_member_id"]], held[data["to_member_id"]]
        roster.require_active(giver, f"transfer {what}")
        roster.require_active(receiver, f"receive {what}")
        return roster.parse_id(family["id"]), giver, receiver

    @rpc
    def family_balances(self, family_id: str) -> dict[str, Any]:
        """Each family member's points and stored value, and the family's totals."""
        family = self.members.get_family(family_id)
        return self._dump(FamilyBalancesSchema(), transfers.balances(self.db.session, family, self.group.currency))

    @rpc
    @idempotent
    def transfer_points(self, family_id: str, transfer: dict[str, Any],
                        idempotency_key: str | None = None) -> dict[str, Any]:
        """Move points between members of one family (``family_points_transfer``); lots keep their dates."""
        key = _required_key(idempotency_key)
        data = load(PointsTransferSchema(), transfer)
        family, giver, receiver = self._family_pair(family_id, data, self.programme.family_points_transfer, "points")
        row, postings = transfers.move_points(self.db.session, self._ctx(), family, giver, receiver, data, key)
        self._announce(postings)
        return self._dump(FamilyTransferSchema(), row)

    @rpc
    @idempotent
    def transfer_stored_value(self, family_id: str, transfer: dict[str, Any],
                              idempotency_key: str | None = None) -> dict[str, Any]:
        """Move stored value between members of one family (``family_wallet_transfer``)."""
        key = _required_key(idempotency_key)
        data = load(WalletTransferSchema(), transfer)
        family, giver, receiver = self._family_pair(family_id, data, self.programme.family_wallet_transfer,
                                                    "stored value")
        row = transfers.move_stored_value(self.db.session, self._ctx(), family, giver, receiver, data, key)
        return self._dump(FamilyTransferSchema(), row)

    # --- audit and daily jobs -----------------------------------------------------------------------------

    @rpc
    def visit_effects(self, visits: list[Any]) -> dict[str, Any]:
        """What points made of each visit (noted outcome, ledger sums, reversal due for the refunds records
        reports), for the cross-service visit audit: one call per batch of visits, never one per visit."""
        self.caller.require_role(*access.AUDITORS, action="audit visits")
        if not isinstance(visits, list) or len(visits) > outcomes.MAX_VISITS:
            raise Invalid(f"visits must be a list of at most {outcomes.MAX_VISITS}.", {"visits": ["Too many."]})
        asked = [{"visit_id": v} if isinstance(v, str) else v for v in visits]
        schema = VisitAskSchema()
        return {"items": outcomes.effects(self.db.session, [load(schema, visit) for visit in asked])}

    @rpc
    def open_balances(self, batch: dict[str, Any]) -> dict[str, Any]:
        """An import's opening balances (points lots or stored value), many rows in one call, each posted once
        under its own key (``openings.py``)."""
        self.caller.require_role(*access.OPENERS, action="post opening balances")
        data = load(OpeningBatchSchema(), batch)
        ctx = self._ctx()
        if data["ledger"] == "wallet" and any(row["currency"] != ctx.currency for row in data["rows"]):
            raise Invalid(f"Stored value is kept in {ctx.currency}.", {"currency": [f"Must be {ctx.currency}."]})
        # members imported moments ago may not have reached points yet: their copies in one call, not one a row
        roster.prefetch(self.db.session, [row["member_id"] for row in data["rows"]], self.members.get_members,
                        utcnow())
        outcomes = openings.open_each(self.db.session, ctx, data["ledger"], data["rows"],
                                      lambda member_id, read: self._member(member_id, held=not data["dry_run"],
                                                                           read=read),
                                      lambda branch: self._branch(branch, "post opening balances at this branch"),
                                      data["dry_run"])
        return OpeningOutcomesSchema().dump({"items": outcomes})

    @rpc
    def reconcile(self, member_id: str | None = None, cursor: str | None = None,
                  limit: int | None = None) -> dict[str, Any]:
        """Prove balances against ledgers: one member (both ledgers), or a page of points accounts."""
        self.caller.require_role(*access.RECONCILERS, action="reconcile the ledgers")
        if member_id is not None:
            member = roster.parse_id(member_id)
            return ReconciliationSchema().dump({"report": reconciliation.check_member(self.db.session, member),
                                                "next_cursor": None})
        after = decode_cursor(cursor)
        report, last = reconciliation.check_points(self.db.session, roster.parse_id(after["m"]) if after else None,
                                                   page_limit(limit, 1000, 10_000))
        return ReconciliationSchema().dump({"report": report,
                                            "next_cursor": encode_cursor({"m": str(last)}) if last else None})

    @rpc
    def run_daily_jobs(self, request: dict[str, Any] | None = None) -> dict[str, Any]:
        """Run (or continue) the daily jobs for a local day now; what the nightly timer does."""
        self.caller.require_role(*access.AUDITORS, action="run the daily jobs")
        data = load(DailyJobsSchema(), request or {})
        return self._daily_jobs(data["day"], data["max_batches"])

    @timer(interval=60)
    def nightly(self) -> None:
        """Each local day, once: expire lots, warn of expiring ones, expire coupons, release pending points whose
        refund window ended, reconcile."""
        self._daily_jobs(None, JOB_BATCHES_PER_TICK)

    def _daily_jobs(self, day: Any, max_batches: int | None) -> dict[str, Any]:
        ctx = self._ctx()
        today = day or ctx.today
        store = self.db.store
        key = today.isoformat()

        def emit(session: Any, event_type: str, payload: dict[str, Any]) -> None:
            self.events.emit(event_type, payload, session=session)

        outcomes = {
            "expire_lots": run_batches(store, "points_expiry", key, expiry.expire_lots_step(ctx, today, emit),
                                       max_batches),
            "warn_expiring": run_batches(store, "points_expiry_warning", key, expiry.warn_step(ctx, today, emit),
                                         max_batches),
            "expire_coupons": run_batches(store, "coupon_expiry", key, expiry.expire_coupons_step(ctx, today),
                                          max_batches),
            "release_pending": run_batches(store, "points_pending_release", key,
                                           holds.release_step(ctx.operator, ctx.now, today, emit), max_batches),
            "reconcile": run_batches(store, "points_reconciliation", key,
                                     reconciliation.nightly_step(1000, self._reconciled), max_batches),
        }
        return {name: {"finished": o.finished, "processed": o.processed, "batches": o.batches, "skipped": o.skipped}
                for name, o in outcomes.items()}

    def _reconciled(self, totals: dict[str, Any]) -> None:
        reconciliation.gauge_totals(totals, self.programme)

    # --- events from other services -----------------------------------------------------------------------

    @event_handler(MemberEnrolled)
    def on_member_enrolled(self, event: dict[str, Any]) -> None:
        """Open the member's account; pay the referrer's bonus."""
        now = utcnow()
        known = roster.find(self.db.session, event["member_id"])
        referrer_id = event["referrer_id"] or (known.referrer_id if known is not None else None)
        # the referrer's alias is held before the new member's rows are locked (kit.locks: lock order)
        referrer = self._member(str(referrer_id), held=True) if referrer_id else None
        member = roster.enrolled(self.db.session, event, now)
        ledger.lock_account(self.db.session, member.member_id, now)
        if referrer is None:
            return
        posting = awards.referral_bonus(self.db.session, self._ctx(with_campaigns=True), member, referrer)
        self._announce([posting] if posting else [])

    @event_handler(MembersImported)
    def on_members_imported(self, event: dict[str, Any]) -> None:
        """An import's members (issue 19): for each what ``on_member_enrolled`` does, in one transaction — the
        copies and the accounts each in one statement, then each referrer's bonus as for one enrolment (the referred
        member's copy read, locked already: referrals are few in an import)."""
        now, session = utcnow(), self.db.session
        members = enrolments(event)
        known = roster.referrers_known(session, [member["member_id"] for member in members
                                                 if member["referrer_id"] is None])
        referrer_of = {member["member_id"]: member["referrer_id"] or known.get(member["member_id"])
                       for member in members}
        # every referrer's alias held (in id order) before the new members' rows are locked (kit.locks: lock order)
        referrers = {referrer_id: self._member(str(referrer_id), held=True)
                     for referrer_id in sorted({r for r in referrer_of.values() if r is not None}, key=str)}
        roster.enrolled_many(session, members, now)
        ledger.open_accounts(session, referrer_of, now)
        if not referrers:
            return
        ctx = self._ctx(with_campaigns=True)
        postings = [awards.referral_bonus(session, ctx, roster.find(session, member_id), referrers[referrer_id])
                    for member_id, referrer_id in referrer_of.items() if referrer_id is not None]
        self._announce([posting for posting in postings if posting])

    @event_handler(TierChanged)
    def on_tier_changed(self, event: dict[str, Any]) -> None:
        roster.tier_changed(self.db.session, event, utcnow())

    @event_handler(SegmentChanged)
    def on_segment_changed(self, event: dict[str, Any]) -> None:
        roster.segment_changed(self.db.session, event, utcnow())

    @event_handler(MemberStatusChanged)
    def on_member_status_changed(self, event: dict[str, Any]) -> None:
        roster.status_changed(self.db.session, event, utcnow())

    @event_handler(MemberMerged)
    def on_member_merged(self, event: dict[str, Any]) -> None:
        """Move the duplicate's points (lot by lot, dates kept), stored value and issued coupons to the
        survivor; its id names the survivor from now on. Once per merge id (merges.py)."""
        outcome = merges.merge(self.db.session, self._ctx(), event)
        if outcome.applied:
            merges.MERGES.labels("merge").inc()

    @event_handler(MemberUnmerged)
    def on_member_unmerged(self, event: dict[str, Any]) -> None:
        """Move back what the merge moved, by the rule finance agreed (merges.py); the alias goes."""
        outcome = merges.unmerge(self.db.session, self._ctx(), event)
        self._announce(outcome.postings)  # lots given back after their date expire at once
        if outcome.applied:
            merges.MERGES.labels("unmerge").inc()

    @event_handler(VisitCompleted)
    def on_visit_completed(self, event: dict[str, Any]) -> None:
        """Earn for a completed visit (once per visit), settle the bill's points deduction."""
        # first: a refund of this visit may be at work; with the lock, the member held, its copy and the campaigns
        hold = awards.hold_visit_for_earn(self.db.session, event["visit_id"], event["member_id"])
        ctx = self._ctx(with_campaigns=True, stamp=hold.stamp)
        member = self._member(event["member_id"], held=True, read=hold.copy)
        referrer = None
        if event["first_paid_visit"] and member.referrer_id is not None:
            referrer = self._member(str(member.referrer_id), held=True)
        postings = []
        if member.status == "active":
            postings = awards.earn_visit(self.db.session, ctx, event, member, referrer, hold.earned)
            if hold.refunded:  # a refund came first (none can come now: it waits for the visit's lock)
                postings += awards.apply_refunds(self.db.session, ctx, str(event["visit_id"]))
        else:
            awards.note_visit(self.db.session, event, member, "member_not_active", 0, ctx.now)
            awards.SKIPPED.labels(member.status).inc()
        # after the accounts: cancelling a redemption locks its account, then the redemption
        catalogue.settle_bill(self.db.session, ctx, event["bill_id"])
        self._announce_visit(postings)

    @event_handler(VisitRefunded)
    def on_visit_refunded(self, event: dict[str, Any]) -> None:
        """Take back what the visit earned, in proportion to what was refunded (debt if spent)."""
        ctx = self._ctx()
        refunds = awards.hold_and_record_refund(self.db.session, event, ctx.now)  # first: the earn may be at work
        if refunds is not None:
            self._announce(awards.apply_refunds(self.db.session, ctx, str(event["visit_id"]), refunds))

    @event_handler(VisitCancelled)
    def on_visit_cancelled(self, event: dict[str, Any]) -> None:
        """A cancelled visit keeps nothing it earned (a no-op for a visit that earned nothing)."""
        ctx = self._ctx()
        refund = {"refund_id": f"cancelled:{event['visit_id']}", "visit_id": event["visit_id"],
                  "member_id": event["member_id"], "refunded_minor": 0, "full": True}
        refunds = awards.hold_and_record_refund(self.db.session, refund, ctx.now)
        if refunds is not None:
            self._announce(awards.apply_refunds(self.db.session, ctx, str(event["visit_id"]), refunds))

    @event_handler(FeedbackSubmitted)
    def on_feedback_submitted(self, event: dict[str, Any]) -> None:
        """Points for answering a satisfaction survey."""
        member = self._member(event["member_id"], held=True)
        self._announce(awards.review(self.db.session, self._ctx(with_campaigns=True), event, member))

    # --- the warehouse's exports (kit.exports): a page at a time, from the cursor the last export ended at ---

    def _export(self, query: dict[str, Any], model: Any, changed: Any, schema: type[Schema],
                tie: Any = None) -> dict[str, Any]:
        require_exporter(self.caller, access.EXPORTERS, "the ledgers and coupons")
        criteria = load(ExportQuerySchema(), query)
        # Core rows of the table's columns: a page costs no ORM objects (the schemas read columns only)
        rows, cursor, more = changed_page(self.db.session, select(*model.__table__.columns), changed,
                                          model.id if tie is None else tie,
                                          criteria["limit"], criteria["since"], horizon(self.config, utcnow()))
        reveal = {"reveal": reveals(self.caller, self.config, access.EXPORT_REVEALERS)}
        items = schema(many=True, **(reveal if issubclass(schema, MaskedExportSchema) else {})).dump(rows)
        return {"items": items, **ExportCursorSchema().dump({"cursor": cursor, "more": more})}

    @rpc
    def export_postings(self, query: dict[str, Any]) -> dict[str, Any]:
        """Points postings in the order they were written (the ledger is append-only)."""
        return self._export(query, PointsPosting, PointsPosting.created_at, PostingExportSchema)

    @rpc
    def export_wallet_postings(self, query: dict[str, Any]) -> dict[str, Any]:
        """Stored-value postings in the order they were written (the ledger is append-only)."""
        return self._export(query, WalletPosting, WalletPosting.created_at, WalletPostingExportSchema)

    @rpc
    def export_points_lots(self, query: dict[str, Any]) -> dict[str, Any]:
        """Points balances as lots: every lot with points left of each member whose points changed, members in the
        order of their last change (every change of a member's lots is made by a posting, so a lot earned, spent or
        expired comes with its member again). The members are found by their last posting, not by their account's
        ``updated_at``: an index on that would make every earn's balance update a non-HOT one (pts0013)."""
        require_exporter(self.caller, access.EXPORTERS, "the ledgers and coupons")
        criteria = load(ExportQuerySchema(), query)
        until = horizon(self.config, utcnow())
        since = retied(criteria["since"], uuid.UUID, int)  # a cursor of this export when it read the accounts
        rows, cursor, more = changed_page(self.db.session, ledger.last_postings(until), PointsPosting.created_at,
                                          PointsPosting.id, criteria["limit"], since, until)
        changed = {row.member_id: row.created_at for row in rows}
        lots = ledger.open_lots_of(self.db.session, list(changed))
        items = LotExportSchema(many=True).dump(
            [{**vars(lot), "account_updated_at": changed[lot.member_id]} for lot in lots])
        return {"items": items, **ExportCursorSchema().dump({"cursor": cursor, "more": more})}

    @rpc
    def export_wallets(self, query: dict[str, Any]) -> dict[str, Any]:
        """Stored-value balances (paid and bonus apart), a member's again each time it changes."""
        return self._export(query, WalletAccount, WalletAccount.updated_at, WalletExportSchema,
                            WalletAccount.member_id)

    @rpc
    def export_coupons(self, query: dict[str, Any]) -> dict[str, Any]:
        """Coupons in the order they last changed: a coupon comes again when it is used, voided or expires."""
        return self._export(query, Coupon, Coupon.updated_at, CouponExportSchema)

    # --- earning rules changed through the API (over the programme file's; earning_rules.py) -------------

    @rpc
    def get_earning_rules(self) -> dict[str, Any]:
        """The earning rules in force, the stored version in force (0: the file's alone) and every version."""
        return EarningRulesSchema().dump(earning_rules.describe(self.db.session, self.programme))

    @rpc
    @idempotent
    def set_earning_rules(self, rules: dict[str, Any], idempotency_key: str | None = None) -> dict[str, Any]:
        """The next version of the earning rules (the fields sent over the file's; ``expected_version``: 409 if
        they changed since); everything earned once this answered earns by it."""
        self.caller.require_role(*access.CAMPAIGN_EDITORS, action="change the earning rules")
        _required_key(idempotency_key)
        body = load(EarningRulesBodySchema(), rules)
        expected = load(EarningRulesVersionSchema(), {"expected_version": body.pop("expected_version", None)})
        ctx = self._ctx()
        earning_rules.change(self.db.session, self.programme, body, expected["expected_version"], ctx.now,
                             ctx.operator)
        return self.get_earning_rules()

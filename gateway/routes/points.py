"""Points, stored value, coupons and the rewards catalogue: the desk's and the HIS's routes to the points
service. Money is ``{"amount": <integer minor units>, "currency": "CNY"}``; every change takes an
``Idempotency-Key`` header (for a points deduction or a coupon on a bill, the bill id will do)."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.points.schemas import (
    BalanceSchema,
    CancellationSchema,
    CashDeductionSchema,
    CashLimitResultSchema,
    CashLimitSchema,
    CouponCheckSchema,
    CouponIssueSchema,
    CouponPageSchema,
    CouponQuerySchema,
    CouponSchema,
    CouponUseSchema,
    DailyJobsSchema,
    EarnSchema,
    LotListSchema,
    PageQuerySchema,
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
    VoidSchema,
    WalletPaymentSchema,
    WalletPostingPageSchema,
    WalletPostingSchema,
    WalletRefundSchema,
    WalletSchema,
)

POINTS = ("points",)
WALLET = ("stored value",)
COUPONS = ("coupons",)
REWARDS = ("rewards",)
MEMBER_POINTS = "/v1/members/<member_id>/points"
MEMBER_WALLET = "/v1/members/<member_id>/wallet"


class PointsRoutes:
    points = Upstream("points")

    # --- points ---------------------------------------------------------------------------------------

    @route("GET", MEMBER_POINTS, "points:read", summary="A member's points: balance, debt, what expires when",
           tags=POINTS, responses={200: BalanceSchema, 404: None})
    def points_balance(self, request: Request, member_id: str) -> Any:
        return self.points.balance(member_id)

    @route("GET", f"{MEMBER_POINTS}/history", "points:read", summary="A member's points postings, newest first",
           tags=POINTS, query=PageQuerySchema, responses={200: PostingPageSchema, 404: None})
    def points_history(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.points.history(member_id, limit=args.get("limit"), cursor=args.get("cursor"))

    @route("GET", f"{MEMBER_POINTS}/lots", "points:read", summary="A member's open lots in spending order",
           tags=POINTS, responses={200: LotListSchema, 404: None})
    def points_lots(self, request: Request, member_id: str) -> Any:
        return self.points.lots(member_id)

    @route("POST", f"{MEMBER_POINTS}/quote", "points:read", summary="What a bill would earn, rule by rule",
           tags=POINTS, body=QuoteSchema, responses={200: QuoteResultSchema, 404: None})
    def points_quote(self, request: Request, member_id: str) -> Any:
        return self.points.quote(member_id, request.json_body)

    @route("POST", f"{MEMBER_POINTS}/earn", "points:earn",
           summary="Give points for an activity or an online interaction, or adjust by hand (managers)",
           tags=POINTS, body=EarnSchema, responses={201: PostingSchema, 404: None, 409: None}, idempotent=True)
    def points_earn(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.earn(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_POINTS}/redemptions", "points:redeem", summary="Spend points on a reward",
           tags=POINTS, body=RedeemSchema, responses={201: RedemptionOutSchema, 404: None, 409: None},
           idempotent=True)
    def points_redeem(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.redeem(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", f"{MEMBER_POINTS}/redemptions", "points:read", summary="A member's redemptions, newest first",
           tags=POINTS, query=PageQuerySchema, responses={200: RedemptionPageSchema, 404: None})
    def points_redemptions(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.points.redemptions(member_id, limit=args.get("limit"), cursor=args.get("cursor"))

    @route("POST", f"{MEMBER_POINTS}/redemptions/<redemption_id>/cancel", "points:redeem",
           summary="Cancel a pending redemption: the points go back to their lots", tags=POINTS,
           body=CancellationSchema, responses={200: RedemptionOutSchema, 404: None, 409: None}, idempotent=True)
    def points_cancel_redemption(self, request: Request, member_id: str, redemption_id: str) -> Any:
        return self.points.cancel_redemption(redemption_id, request.json_body, member_id=member_id,
                                             idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_POINTS}/redemptions/<redemption_id>/fulfil", "points:redeem",
           summary="The reward was handed over", tags=POINTS,
           responses={200: RedemptionOutSchema, 404: None, 409: None}, idempotent=True)
    def points_fulfil_redemption(self, request: Request, member_id: str, redemption_id: str) -> Any:
        return self.points.fulfil_redemption(redemption_id, member_id=member_id,
                                             idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_POINTS}/tier-purchases", "points:redeem",
           summary="Buy a tier upgrade with points (where the programme prices it)", tags=POINTS,
           body=TierPurchaseSchema, responses={201: RedemptionOutSchema, 404: None, 409: None}, idempotent=True)
    def points_buy_tier(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.buy_tier(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_POINTS}/cash-deductions", "points:redeem",
           summary="Take points off a bill (default 100 points = 1 CNY, at most half the bill)", tags=POINTS,
           body=CashDeductionSchema, responses={201: RedemptionOutSchema, 404: None, 409: None}, idempotent=True)
    def points_deduct_cash(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.deduct_cash(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_POINTS}/cash-deductions/limit", "points:read",
           summary="The most points a member may use on a bill of this size", tags=POINTS,
           body=CashLimitSchema, responses={200: CashLimitResultSchema, 404: None})
    def points_cash_limit(self, request: Request, member_id: str) -> Any:
        return self.points.cash_deduction_limit(member_id, request.json_body)

    @route("GET", "/v1/points/programme", "points:read", summary="The earning and redemption rules in force",
           tags=POINTS)
    def points_programme(self, request: Request) -> Any:
        return self.points.programme_rules()

    @route("GET", "/v1/points/reconciliation", "points:audit",
           summary="Prove balances against the ledgers: one member, or a page of accounts", tags=POINTS,
           responses={200: ReconciliationSchema})
    def points_reconciliation(self, request: Request) -> Any:
        args = query_args(request)
        return self.points.reconcile(args.get("member_id"), cursor=args.get("cursor"), limit=args.get("limit"))

    @route("POST", "/v1/points/daily-jobs", "points:audit",
           summary="Run or continue the daily expiry, warnings and reconciliation now", tags=POINTS,
           body=DailyJobsSchema)
    def points_daily_jobs(self, request: Request) -> Any:
        return self.points.run_daily_jobs(request.json_body)

    # --- stored value -----------------------------------------------------------------------------------

    @route("GET", MEMBER_WALLET, "wallet:read", summary="A member's stored value: principal and bonus",
           tags=WALLET, responses={200: WalletSchema, 404: None})
    def wallet_balance(self, request: Request, member_id: str) -> Any:
        return self.points.wallet(member_id)

    @route("GET", f"{MEMBER_WALLET}/history", "wallet:read", summary="Top-ups, payments and refunds, newest first",
           tags=WALLET, query=PageQuerySchema, responses={200: WalletPostingPageSchema, 404: None})
    def wallet_history(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.points.wallet_history(member_id, limit=args.get("limit"), cursor=args.get("cursor"))

    @route("POST", f"{MEMBER_WALLET}/top-ups", "wallet:topup", summary="Top up a member's card", tags=WALLET,
           body=TopUpSchema, responses={201: WalletPostingSchema, 404: None, 409: None}, idempotent=True)
    def wallet_top_up(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.top_up(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_WALLET}/payments", "wallet:pay", summary="Pay (part of) a bill from the card",
           tags=WALLET, body=WalletPaymentSchema, responses={201: WalletPostingSchema, 404: None, 409: None},
           idempotent=True)
    def wallet_pay(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.pay(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", f"{MEMBER_WALLET}/payments/<payment_id>/refunds", "wallet:refund",
           summary="Give (part of) a card payment back to the card", tags=WALLET, body=WalletRefundSchema,
           responses={201: WalletPostingSchema, 404: None, 409: None}, idempotent=True)
    def wallet_refund(self, request: Request, member_id: str, payment_id: str) -> tuple[int, Any]:
        return 201, self.points.refund_payment(payment_id, request.json_body, member_id=member_id,
                                               idempotency_key=idempotency_key(request))

    # --- coupons ----------------------------------------------------------------------------------------

    @route("GET", "/v1/members/<member_id>/coupons", "coupons:read", summary="A member's coupons, newest first",
           tags=COUPONS, query=CouponQuerySchema, responses={200: CouponPageSchema, 404: None})
    def member_coupons(self, request: Request, member_id: str) -> Any:
        args = query_args(request)
        return self.points.coupons(member_id, state=args.get("state"), limit=args.get("limit"),
                                   cursor=args.get("cursor"))

    @route("POST", "/v1/members/<member_id>/coupons", "coupons:issue",
           summary="Issue a coupon (birthday, festival, campaign, or by hand)", tags=COUPONS,
           body=CouponIssueSchema, responses={201: CouponSchema, 404: None, 409: None}, idempotent=True)
    def issue_coupon(self, request: Request, member_id: str) -> tuple[int, Any]:
        return 201, self.points.issue_coupon(member_id, request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/coupons/<code>", "coupons:read", summary="A coupon by its code", tags=COUPONS,
           responses={200: CouponSchema, 404: None})
    def get_coupon(self, request: Request, code: str) -> Any:
        return self.points.get_coupon(code)

    @route("POST", "/v1/coupons/<code>/check", "coupons:redeem",
           summary="Whether a coupon can be used on a bill and what it takes off (nothing changes)", tags=COUPONS,
           body=CouponUseSchema, responses={200: CouponCheckSchema, 404: None, 409: None})
    def check_coupon(self, request: Request, code: str) -> Any:
        return self.points.check_coupon(code, request.json_body)

    @route("POST", "/v1/coupons/<code>/redeem", "coupons:redeem", summary="Use a coupon on a bill, once",
           tags=COUPONS, body=CouponUseSchema, responses={200: CouponSchema, 404: None, 409: None}, idempotent=True)
    def redeem_coupon(self, request: Request, code: str) -> Any:
        return self.points.redeem_coupon(code, request.json_body, idempotency_key=idempotency_key(request))

    @route("POST", "/v1/coupons/<code>/void", "coupons:void", summary="Void an unused coupon", tags=COUPONS,
           body=VoidSchema, responses={200: CouponSchema, 404: None, 409: None}, idempotent=True)
    def void_coupon(self, request: Request, code: str) -> Any:
        return self.points.void_coupon(code, request.json_body, idempotency_key=idempotency_key(request))

    # --- rewards catalogue ------------------------------------------------------------------------------

    @route("GET", "/v1/rewards", "points:read", summary="The rewards catalogue (optionally as a tier sees it)",
           tags=REWARDS, query=RewardQuerySchema, responses={200: RewardPageSchema})
    def list_rewards(self, request: Request) -> Any:
        return self.points.rewards(query_args(request))

    @route("POST", "/v1/rewards", "rewards:manage", summary="Add a reward to the catalogue", tags=REWARDS,
           body=RewardSchema, responses={201: RewardOutSchema, 409: None}, idempotent=True)
    def create_reward(self, request: Request) -> tuple[int, Any]:
        return 201, self.points.create_reward(request.json_body, idempotency_key=idempotency_key(request))

    @route("GET", "/v1/rewards/<reward_id>", "points:read", summary="A reward", tags=REWARDS,
           responses={200: RewardOutSchema, 404: None})
    def get_reward(self, request: Request, reward_id: str) -> Any:
        return self.points.get_reward(reward_id)

    @route("PATCH", "/v1/rewards/<reward_id>", "rewards:manage",
           summary="Change a reward: price, tiers, stock received or written off, on or off", tags=REWARDS,
           body=RewardChangesSchema, responses={200: RewardOutSchema, 404: None, 409: None}, idempotent=True)
    def change_reward(self, request: Request, reward_id: str) -> Any:
        return self.points.change_reward(reward_id, request.json_body, idempotency_key=idempotency_key(request))

"""The console's pages: each loads what it shows with the same RPCs as the API routes, and renders it.

A desk action is two steps: the form (with an idempotency key made when the form was drawn) posts to a
review page that shows what will happen; its Confirm button posts the same values and the same key to
the action, which passes the key on to the service's ``@idempotent`` RPC (namespaced by the caller's
credential, like the API's ``Idempotency-Key``). A double click, a reload or a resent form is the same
command twice: the service answers the first one again.
"""

from __future__ import annotations

import uuid
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any
from urllib.parse import urlencode

import eventlet
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.console import cookies, programme_form
from gateway.console.http import (
    HERE,
    LOGIN_PATH,
    form,
    page,
    render,
    set_cookie,
    working_branch,
)
from gateway.idempotency import service_key
from gateway.paths import one_of
from gateway.upstream import Upstream
from services.kit.config import LANGUAGES
from services.kit.errors import Conflict, Forbidden, Invalid, NotFound, Unauthenticated
from services.records.events import ITEM_CATEGORIES
from services.records.rules.followups import OUTCOMES
from services.records.rules.kpis import PERIODS, TARGETS

STATIC = {path.name: path for path in (HERE / "static").iterdir() if path.is_file()}
STATIC_TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8",
                ".LICENSE": "text/plain; charset=utf-8"}
KPI_FIGURES = ("first_visit_arrivals", "return_visit_arrivals", "first_visit_conversion_bp", "referral_share_bp",
               "nps", "complaint_rate_bp", "urgent_response_average_seconds", "completed_visits", "revenue_minor",
               "average_ticket_minor", "satisfied_share_bp")


def _next_path(value: str | None) -> str:
    """Where to go after sign-in: a console path only (never another site)."""
    return value if value and value.startswith("/console") and not value.startswith("//") else "/console/"


def _remember(request: Request, cookie: str, value: str, next_path: str | None) -> Response:
    """Back to where the person was, with a choice (language, branch) remembered for a good while."""
    response = redirect(_next_path(next_path), 303)
    set_cookie(request, response, cookie, value, max_age=400 * 86400)
    return response


def _key(request: Request) -> str | None:
    """The form's idempotency key, as the service sees it (per credential, like the API's)."""
    key = request.form.get("idempotency_key", "").strip()
    if not key or len(key) > 64:
        raise Invalid("The form has no idempotency key; reload the page.", {"idempotency_key": ["Required."]})
    return service_key(request.principal.credential, key)


def _form_key(request: Request) -> str:
    """The form's own idempotency key, drawn again with the form (a new one if it had none)."""
    key = request.form.get("idempotency_key", "").strip()
    return key if key and len(key) <= 64 else uuid.uuid4().hex


def _minor(text: str, field: str) -> int:
    """Yuan as typed at the desk (``1280`` or ``1280.50``) in minor units, without a float."""
    try:
        value = Decimal(text.replace(",", ""))
    except InvalidOperation:
        raise Invalid(f"{field}: a positive amount such as 1280.50.", {field: ["Not an amount."]}) from None
    if value <= 0 or value != value.quantize(Decimal("0.01")) or value > Decimal("100000000"):
        raise Invalid(f"{field}: a positive amount with at most two decimals.", {field: ["Not an amount."]})
    return int(value * 100)


def _pile(*calls: Any) -> list[Any]:
    """Run independent RPCs side by side (each a callable); their answers in order, errors raised."""
    pile = eventlet.GreenPile(len(calls))
    for call in calls:
        pile.spawn(call)
    return list(pile)


class ConsolePages:
    members = Upstream("members")
    points = Upstream("points")
    records = Upstream("records")

    # --- assets, sign-in, language, branch ------------------------------------------------------------

    @page("GET", "/console/static/<asset>", public=True,
          path_types={"asset": one_of("console file", tuple(sorted(STATIC)))})
    def console_static(self, request: Request, asset: str) -> Response:
        path = STATIC[asset]
        response = Response(path.read_bytes(), content_type=STATIC_TYPES.get(path.suffix, "application/octet-stream"))
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    @page("GET", "/console", public=True)
    def console_root(self, request: Request) -> Response:
        return redirect("/console/", 308)

    @page("GET", LOGIN_PATH, public=True)
    def console_login_form(self, request: Request) -> Response:
        return render(request, "login.html", next=_next_path(request.args.get("next")), failed=None)

    @page("POST", LOGIN_PATH, public=True, rate_limit="login")
    def console_login(self, request: Request) -> Response:
        values = form(request, "username", "password", "next")
        accounts = self.auth.accounts
        try:
            grant = accounts.sign_in(values["username"], values["password"], request.client_address)
        except (Unauthenticated, Invalid):
            return render(request, "login.html", 401, next=_next_path(values["next"]),
                          failed=request.t("wrong_credentials"))
        if grant["password_change_required"]:
            accounts.sign_out(str(grant["user"].id), grant["session_id"])
            return render(request, "login.html", 403, next=_next_path(values["next"]),
                          failed=request.t("password_change_required"))
        response = redirect(_next_path(values["next"]), 303)
        set_cookie(request, response, cookies.SESSION_COOKIE,
                   cookies.session_cookie(self.auth.token_keys, grant["session_id"]))
        return response

    @page("POST", "/console/logout", "auth:self")
    def console_logout(self, request: Request) -> Response:
        principal = request.principal
        self.auth.accounts.sign_out(principal.identity.subject, principal.session_id)
        response = redirect(LOGIN_PATH, 303)
        response.delete_cookie(cookies.SESSION_COOKIE, path="/console")
        return response

    @page("GET", "/console/language", public=True)
    def console_language(self, request: Request) -> Response:
        language = request.args.get("lang", "")
        if language not in LANGUAGES:
            raise NotFound(f"No language {language!r}.")
        return _remember(request, cookies.LANGUAGE_COOKIE, language, request.args.get("next"))

    @page("POST", "/console/branch", "auth:self")
    def console_branch(self, request: Request) -> Response:
        branch = request.form.get("branch", "")
        if not request.identity.can_see_branch(branch) or branch not in request.page.group.branches:
            raise Forbidden(f"Branch {branch} is not one of yours.")
        return _remember(request, cookies.BRANCH_COOKIE, branch, request.form.get("next"))

    # --- find, member 360, health record ---------------------------------------------------------------

    @page("GET", "/console/", "members:read")
    def console_find(self, request: Request) -> Response:
        q = request.args.get("q", "").strip()
        found = self._find(request, q) if q else None
        template = "results.html" if request.args.get("partial") else "find.html"
        return render(request, template, q=q, found=found)

    def _find(self, request: Request, q: str) -> dict[str, Any]:
        compact = q.replace(" ", "").replace("-", "")
        prefix = request.page.group.card_prefix
        if compact.isdigit() and len(compact) == 12 and compact.startswith(prefix):
            query = {"card": compact}
        elif compact.lstrip("+").isdigit() and len(compact) >= 5:
            query = {"phone": compact}
        else:
            query = {"q": q}
        return self.members.find_members({**query, "limit": 20})

    @page("GET", "/console/members/<member_id>", "members:read")
    def console_member(self, request: Request, member_id: str) -> Response:
        principal = request.principal
        calls: dict[str, Any] = {"summary": lambda: self.members.member_summary(member_id)}  # member, tier, benefits
        if principal.may("points:read"):
            calls["points"] = lambda: self.points.balance(member_id)
            calls["lots"] = lambda: self.points.lots(member_id)
        if principal.may("wallet:read"):
            calls["wallet"] = lambda: self.points.wallet(member_id)
        if principal.may("coupons:read"):
            calls["coupons"] = lambda: self.points.coupons(member_id, state="issued", limit=20, cursor=None)
        if principal.may("points:redeem"):
            calls["rewards"] = lambda: self.points.rewards({"limit": 50})
        if principal.may("visits:read"):
            calls["visits"] = lambda: self.records.list_visits(member_id, limit=10, cursor=None)
            calls["follow_ups"] = lambda: self.records.member_follow_ups(member_id, True)
        if principal.may("appointments:read"):
            calls["appointments"] = lambda: self.records.list_appointments({"member_id": member_id})
        loaded = dict(zip(calls, _pile(*calls.values()), strict=True))
        loaded.update(loaded.pop("summary"))
        lots = sorted((lot for lot in loaded.get("lots", {}).get("items", ()) if lot["remaining"] > 0),
                      key=lambda lot: lot["expires_on"] or "9999-12-31")[:5]
        return render(request, "member.html", m=loaded["member"], data=loaded, lots=lots, tab="overview",
                      categories=ITEM_CATEGORIES, key=uuid.uuid4().hex, done=request.args.get("done"),
                      done_value=request.args.get("value", ""))

    @page("GET", "/console/members/<member_id>/health", "records:read")
    def console_health(self, request: Request, member_id: str) -> Response:
        member = self.members.get_member(member_id)
        record = self.records.get_record(member_id, "console: health record tab", visits_limit=10)
        return render(request, "health.html", m=member, record=record, tab="health")

    # --- enrolment -----------------------------------------------------------------------------------

    @page("GET", "/console/enrol", "members:enrol")
    def console_enrol_form(self, request: Request) -> Response:
        return render(request, "enrol.html", values={}, key=uuid.uuid4().hex, problem=None, matches=[])

    @page("POST", "/console/enrol", "members:enrol")
    def console_enrol(self, request: Request) -> Response:
        values = form(request, "full_name", "phone", "birth_date", "referral_code", "idempotency_key")
        data = {"full_name": values["full_name"], "phone": values["phone"], "birth_date": values["birth_date"],
                "home_branch": working_branch(request), "preferred_language": request.language,
                "consents": {"sms": request.form.get("sms") == "yes"},
                "referral_code": values["referral_code"] or None}
        try:
            member = self.members.enrol(data, idempotency_key=_key(request))
        except Conflict as duplicate:  # the warning names the match; the desk opens it instead
            return render(request, "enrol.html", 409, values=values, key=values["idempotency_key"],
                          problem=request.t("duplicate", message=str(duplicate)),
                          matches=duplicate.details.get("matches", []))
        except Invalid as invalid:
            return render(request, "enrol.html", 422, values=values, key=values["idempotency_key"],
                          problem=str(invalid), matches=[])
        return redirect(f"/console/members/{member['id']}", 303)

    # --- desk actions ---------------------------------------------------------------------------------

    DESK = {
        "earn": ("visits:write", ("bill_id", "amount", "category")),
        "redeem": ("points:redeem", ("reward_id", "quantity")),
        "top-up": ("wallet:topup", ("amount",)),
        "benefit": ("benefits:use", ("benefit", "visit_ref")),
    }

    @page("POST", "/console/members/<member_id>/desk/<action>/review", "members:read",
          path_types={"action": one_of("desk action", ("earn", "redeem", "top-up", "benefit"))})
    def console_desk_review(self, request: Request, member_id: str, action: str) -> Response:
        values = self._desk_form(request, action)
        summary = self._desk_summary(request, member_id, action, values)
        member = self.members.get_member(member_id)
        return render(request, "review.html", m=member, action=action, values=values, summary=summary, tab="",
                      key=request.form.get("idempotency_key", ""))

    def _desk_form(self, request: Request, action: str) -> dict[str, str]:
        """The action's fields, once the caller's role holds the action's own permission (the API's)."""
        permission, names = self.DESK[action]
        if not request.principal.may(permission):
            raise Forbidden(f"Your role may not do this ({permission}).")
        return form(request, *names, required=names)

    def _desk_summary(self, request: Request, member_id: str, action: str, values: dict[str, str]) -> list[Any]:
        t = request.t
        if action == "earn":
            return [(t("bill_id"), values["bill_id"]), (t("bill_amount"), t.money(_minor(values["amount"], "amount"))),
                    (t("category"), t.word(values["category"]))]
        if action == "top-up":
            return [(t("amount"), t.money(_minor(values["amount"], "amount")))]
        if action == "redeem":
            reward = self.points.get_reward(values["reward_id"])
            return [(t("reward"), reward.get("name", values["reward_id"])), (t("quantity"), values["quantity"]),
                    (t("points"), t.number(reward.get("points_price", 0) * int(values["quantity"] or 1)))]
        return [(t("benefit"), values["benefit"]), (t("visit_ref"), values["visit_ref"])]

    @page("POST", "/console/members/<member_id>/desk/<action>", "members:read",
          path_types={"action": one_of("desk action", ("earn", "redeem", "top-up", "benefit"))})
    def console_desk(self, request: Request, member_id: str, action: str) -> Response:
        values = self._desk_form(request, action)
        branch = working_branch(request)
        key = _key(request)
        done_value = ""
        if action == "earn":
            amount = _minor(values["amount"], "amount")
            self.records.complete_visit({
                "bill_id": values["bill_id"], "member_id": member_id, "branch": branch, "currency": "CNY",
                "items": [{"category": values["category"], "code": f"DESK-{values['category']}"[:32], "amount_minor": amount}],
                "payments": [{"method": "card", "amount_minor": amount}]})
            done_value = values["bill_id"]
        elif action == "redeem":
            try:
                quantity = int(values["quantity"])
            except ValueError:
                raise Invalid("quantity: a whole number.", {"quantity": ["Not a whole number."]}) from None
            done = self.points.redeem(member_id, {"reward_id": values["reward_id"], "quantity": quantity,
                                                  "branch": branch}, idempotency_key=key)
            done_value = str(done.get("points", ""))
        elif action == "top-up":
            self.points.top_up(member_id, {"amount": {"amount": _minor(values["amount"], "amount"), "currency": "CNY"},
                                           "branch": branch}, idempotency_key=key)
        else:
            self.members.use_quota(member_id, values["benefit"], {"visit_id": values["visit_ref"], "branch": branch})
        query = urlencode({"done": action, "value": done_value})
        return redirect(f"/console/members/{member_id}?{query}", 303)

    # --- follow-ups -----------------------------------------------------------------------------------

    @page("GET", "/console/follow-ups", "follow-ups:work")
    def console_follow_ups(self, request: Request) -> Response:
        branch = working_branch(request)
        query: dict[str, Any] = {"branch": branch, "limit": 25}
        if request.args.get("cursor"):
            query["cursor"] = request.args["cursor"]
        queue = self.records.follow_up_queue(query)
        return render(request, "follow_ups.html", queue=queue, outcomes=OUTCOMES, key=uuid.uuid4().hex)

    @page("POST", "/console/follow-ups/<task_id>", "follow-ups:work")
    def console_follow_up_outcome(self, request: Request, task_id: str) -> Response:
        values = form(request, "outcome", "notes", "next_appointment_id", "retry_on", required=("outcome",))
        outcome = {"outcome": values["outcome"], "notes": values["notes"] or None,
                   "next_appointment_id": values["next_appointment_id"] or None,
                   "retry_on": values["retry_on"] or None}
        self.records.record_follow_up(task_id, outcome, idempotency_key=_key(request))
        return redirect("/console/follow-ups", 303)

    # --- KPIs -----------------------------------------------------------------------------------------

    @page("GET", "/console/kpis", "kpis:read")
    def console_kpis(self, request: Request) -> Response:
        period = request.args.get("period", "month")
        on = request.args.get("on") or date.today().isoformat()
        if period not in PERIODS:
            raise Invalid(f"period: one of {', '.join(PERIODS)}.", {"period": ["Unknown period."]})
        branch = request.args.get("branch") or working_branch(request)
        if not request.identity.can_see_branch(branch):
            raise Forbidden(f"Branch {branch} is not one of yours.")
        report = self.records.kpis({"period": period, "on": on, "branch": branch})
        rows = report["branches"][0]["figures"] if report["branches"] else {}
        return render(request, "kpis.html", report=report, figures=rows, names=KPI_FIGURES, targets=TARGETS,
                      period=period, on=on, periods=PERIODS, kpi_branch=branch)

    # --- programme settings ---------------------------------------------------------------------------

    @page("GET", "/console/settings", "programme:write")
    def console_settings(self, request: Request) -> Response:
        in_force = self.members.get_programme()
        saved = request.args.get("saved")
        return self._settings(request, in_force, typed=None, key=uuid.uuid4().hex,
                              saved=int(saved) if saved and saved.isdigit() else None)

    @page("POST", "/console/settings/preview", "programme:write")
    def console_settings_preview(self, request: Request) -> Response:
        in_force = self.members.get_programme()
        change, problem = self._programme_change(request, in_force)
        if problem is not None:
            return problem
        try:
            preview = self.members.preview_programme(change)
        except (Invalid, Conflict) as refused:
            return self._settings_refused(request, in_force, refused)
        return self._settings(request, in_force, typed=request.form.to_dict(), key=_form_key(request),
                              preview=preview)

    @page("POST", "/console/settings", "programme:write")
    def console_settings_save(self, request: Request) -> Response:
        in_force = self.members.get_programme()
        change, problem = self._programme_change(request, in_force)
        if problem is not None:
            return problem
        try:
            stored = self.members.set_programme(change, idempotency_key=_key(request))
        except (Invalid, Conflict) as refused:
            return self._settings_refused(request, in_force, refused)
        return redirect(f"/console/settings?saved={stored['version']}", 303)

    def _programme_change(self, request: Request, in_force: dict[str, Any]) -> tuple[dict[str, Any], Response | None]:
        """The change the form describes (the programme in force with the typed thresholds), or the form
        again with the boxes that could not be read."""
        version = request.form.get("expected_version", "")
        document, unreadable = programme_form.with_thresholds(in_force["programme"], request.form)
        change = {"programme": document, "note": request.form.get("note", "").strip() or None,
                  "expected_version": int(version) if version.isdigit() else None}
        if not unreadable:
            return change, None
        errors = {name: [request.t(message)] for name, message in unreadable.items()}
        return change, self._settings(request, in_force, typed=request.form.to_dict(), key=_form_key(request),
                                      status=422, errors=errors, problem=request.t("fix_marked"))

    def _settings_refused(self, request: Request, in_force: dict[str, Any], refused: Invalid | Conflict) -> Response:
        errors, rest = programme_form.field_errors(in_force["programme"], getattr(refused, "fields", None) or {})
        return self._settings(request, in_force, typed=request.form.to_dict(), key=_form_key(request),
                              status=refused.status, errors=errors, problem=str(refused), others=rest)

    def _settings(self, request: Request, in_force: dict[str, Any], *,
                  typed: dict[str, str] | None, key: str, status: int = 200, **context: Any) -> Response:
        context.setdefault("errors", {})
        context.setdefault("others", [])
        for name in ("preview", "problem", "saved"):
            context.setdefault(name, None)
        document = in_force["programme"]
        return render(request, "settings.html", status, in_force=in_force, tiers=document["tiers"],
                      tier_names={tier["code"]: tier["names"] for tier in document["tiers"]},
                      path_labels={path: request.t(f"threshold.{path}") for path, _ in programme_form.PATHS},
                      rows=programme_form.boxes(document, typed), key=key,
                      note=(typed or {}).get("note", ""), **context)

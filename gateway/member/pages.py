"""The member page's pages: sign in by SMS code, the member's own page, preferences, language, sign-out.

Every signed-in page asks the services about ``request.member_id`` (the session's member) only; no page
takes a member id from the request, so no member can ask about another. The calls are the API's own RPCs
(members, points, records, notifications). A change carries an idempotency key drawn with the form, so a
double tap or a resent form changes once.
"""

from __future__ import annotations

import math
import uuid
from datetime import UTC, datetime
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.console import cookies
from gateway.console.http import HERE
from gateway.console.pages import _pile
from gateway.idempotency import service_key
from gateway.member import codes
from gateway.member.http import (
    PRE_SESSION_COOKIE,
    ROOT,
    SESSION_COOKIE,
    SESSION_PURPOSE,
    SIGN_IN_PATH,
    member_page,
    remember,
    render,
)
from gateway.member.sending import CodeSender
from gateway.upstream import Upstream
from services.kit.clock import utcnow
from services.kit.config import LANGUAGES
from services.kit.errors import Invalid
from services.members.rules.identity import parse_phone

STYLESHEET = HERE / "static" / "member.css"
SIGNS_IN = ("active", "frozen")  # a closed or merged membership has no page
UPCOMING = ("booked", "checked_in")
ACTIVITY = {"spend": "spend_minor", "top_up": "largest_top_up_minor", "points": "points", "visits": "visits"}


def _progress(tier: dict[str, Any]) -> list[dict[str, Any]]:
    """Each path to the next tier: done so far, still missing, and the share done (whole percent)."""
    nxt = tier.get("next") or {}
    rows = []
    for path, missing in (nxt.get("needs") or {}).items():
        done = int((tier.get("activity") or {}).get(ACTIVITY.get(path, path), 0) or 0)
        total = done + int(missing)
        rows.append({"path": path, "done": done, "missing": int(missing), "money": path in ("spend", "top_up"),
                     "percent": 100 if total <= 0 else min(100, done * 100 // total)})
    return rows


def _minutes(seconds: float) -> int:
    return max(1, math.ceil(seconds / 60))


def _key(request: Request, command: str) -> str:
    """The form's idempotency key for one of its commands, namespaced by the member (like a credential)."""
    key = request.form.get("idempotency_key", "").strip()
    if not key or len(key) > 64:
        raise Invalid("The form has no idempotency key; reload the page.", {"idempotency_key": ["Required."]})
    return service_key(f"member:{request.member_id}", f"{key}:{command}")


class MemberPages:
    members = Upstream("members")
    points = Upstream("points")
    records = Upstream("records")
    notifications = Upstream("notifications")
    code_sender = CodeSender()

    # --- assets and sign-in -----------------------------------------------------------------------------

    @member_page("GET", "/m/member.css", signed_in=False)
    def member_stylesheet(self, request: Request) -> Response:
        response = Response(STYLESHEET.read_bytes(), content_type="text/css; charset=utf-8")
        response.headers["Cache-Control"] = "public, max-age=3600"
        return response

    @member_page("GET", ROOT, signed_in=False)
    def member_root(self, request: Request) -> Response:
        return redirect(f"{ROOT}/", 308)

    @member_page("GET", SIGN_IN_PATH, signed_in=False)
    def member_sign_in_form(self, request: Request) -> Response:
        if request.member_id is not None:
            return redirect(f"{ROOT}/", 303)
        return render(request, "member_sign_in.html", phone="", problem=None)

    @member_page("POST", SIGN_IN_PATH, signed_in=False, rate_limit="login")
    def member_sign_in(self, request: Request) -> Response:
        """Ask for a code. The answer is the same whether or not the phone is a member's."""
        typed = request.form.get("phone", "").strip()
        try:
            phone = parse_phone(typed, request.page.group.region)
        except Invalid:
            return render(request, "member_sign_in.html", 422, phone=typed, problem=request.t("m.phone_invalid"))
        found = self.members.find_members({"phone": phone, "limit": 2})["items"]
        member = found[0] if len(found) == 1 and found[0].get("status") in SIGNS_IN else None
        issued = codes.issue(self.auth.database.store, request.page.code_policy, phone,
                             member["id"] if member else None, request.client_address, utcnow())
        answer = redirect(f"{ROOT}/code?c={issued.challenge_id}", 303)
        if member is not None:  # sent once the answer is out: its time tells nobody who is a member (sending.py)
            language = member.get("preferred_language") or request.language
            minutes = _minutes(request.page.code_policy.lifetime.total_seconds())
            self.code_sender.after(answer, self.notifications, {"phone": phone, "code": issued.code,
                                                                "language": language, "minutes": minutes})
        return answer

    @member_page("GET", f"{ROOT}/code", signed_in=False)
    def member_code_form(self, request: Request) -> Response:
        return render(request, "member_code.html", challenge=request.args.get("c", "")[:40], problem=None,
                      minutes=_minutes(request.page.code_policy.lifetime.total_seconds()))

    @member_page("POST", f"{ROOT}/code", signed_in=False, rate_limit="login")
    def member_code(self, request: Request) -> Response:
        challenge = request.form.get("challenge", "")[:40]
        page = request.page
        checked = codes.check(self.auth.database.store, page.code_policy, page.lockout_policy, challenge,
                              request.form.get("code", "")[:16], request.client_address, utcnow())
        if checked.session_id is None:
            status, headers = {"wrong": (401, None), "expired": (410, None),
                               "locked": (429, {"Retry-After": str(checked.retry_after)})}[checked.refused]
            wait = checked.retry_after if checked.refused == "locked" else page.code_policy.lifetime.total_seconds()
            return render(request, "member_code.html", status, headers=headers, challenge=challenge,
                          minutes=_minutes(page.code_policy.lifetime.total_seconds()),
                          problem=request.t(f"m.code_{checked.refused}", minutes=_minutes(wait)))
        response = redirect(f"{ROOT}/", 303)
        remember(request, response, SESSION_COOKIE,
                 cookies.session_cookie(self.auth.token_keys, checked.session_id, SESSION_PURPOSE))
        response.delete_cookie(PRE_SESSION_COOKIE, path=ROOT)
        return response

    @member_page("POST", f"{ROOT}/sign-out")
    def member_sign_out(self, request: Request) -> Response:
        codes.end_session(self.auth.database.store, request.session_id, utcnow())
        response = redirect(SIGN_IN_PATH, 303)
        response.delete_cookie(SESSION_COOKIE, path=ROOT)
        return response

    @member_page("POST", f"{ROOT}/language", signed_in=False)
    def member_language(self, request: Request) -> Response:
        """Remember the language in a cookie; a signed-in member's messages follow it too."""
        language = request.form.get("lang", "")
        if language not in LANGUAGES:
            raise Invalid(f"No language {language!r}.", {"lang": [f"One of {', '.join(LANGUAGES)}."]})
        if request.member_id is not None:  # setting a value twice is harmless: pages without a form key get one
            key = _key(request, "language") if request.form.get("idempotency_key") else None
            self.members.update_member(request.member_id, {"preferred_language": language}, idempotency_key=key)
        target = f"{ROOT}/" if request.member_id is not None else SIGN_IN_PATH
        response = redirect(target, 303)
        remember(request, response, cookies.LANGUAGE_COOKIE, language, max_age=400 * 86400)
        return response

    # --- the member's own page --------------------------------------------------------------------------

    @member_page("GET", f"{ROOT}/")
    def member_home(self, request: Request) -> Response:
        member_id = request.member_id
        member = self.members.get_member(member_id)
        if member.get("status") not in SIGNS_IN:  # closed or merged since sign-in: the session ends here
            codes.end_session(self.auth.database.store, request.session_id, utcnow())
            response = redirect(SIGN_IN_PATH, 303)
            response.delete_cookie(SESSION_COOKIE, path=ROOT)
            return response
        tier, balance, lots, coupons, appointments, preferences = _pile(
            lambda: self.members.tier(member_id),
            lambda: self.points.balance(member_id),
            lambda: self.points.lots(member_id),
            lambda: self.points.coupons(member_id, state="issued", limit=20, cursor=None),
            lambda: self.records.list_appointments({"member_id": member_id}),
            lambda: self.notifications.get_preferences(member_id))
        now = datetime.now(UTC).isoformat()
        open_lots = sorted((lot for lot in lots["items"] if lot["remaining"] > 0),
                           key=lambda lot: lot["expires_on"] or "9999-12-31")
        upcoming = sorted((a for a in appointments["items"] if a["status"] in UPCOMING and a["starts_at"] >= now),
                          key=lambda a: a["starts_at"])
        return render(request, "member_home.html", m=member, tier=tier, progress=_progress(tier), balance=balance,
                      lots=open_lots, coupons=coupons["items"], appointments=upcoming, prefs=preferences,
                      key=uuid.uuid4().hex, saved=request.args.get("saved") == "1")

    @member_page("POST", f"{ROOT}/preferences")
    def member_preferences(self, request: Request) -> Response:
        """Channel consents (members) and "do not contact" (notifications), as the member ticked them."""
        ticked = {name: request.form.get(name) == "yes" for name in ("sms", "email", "marketing", "do_not_contact")}
        self.members.update_member(request.member_id, {"consents": {
            "sms": ticked["sms"], "email": ticked["email"], "marketing": ticked["marketing"]}},
            idempotency_key=_key(request, "consents"))
        self.notifications.set_preferences(request.member_id, {"do_not_contact": ticked["do_not_contact"]},
                                           idempotency_key=_key(request, "preferences"))
        return redirect(f"{ROOT}/?saved=1", 303)

"""The points programme's pages: the earning rules in force (read-only: they are the programme file's) and the
campaigns — listed, created, changed and ended through the same RPCs as ``/v1/campaigns``.

Group admins change campaigns (``campaigns:write``); branch managers read them (``campaigns:read``), as the API
allows. A form carries an idempotency key made when it was drawn (a double click creates one campaign), an edit
the version it was drawn from (``expected_version``: points answers 409 when someone changed it meanwhile), and
ending one goes through a confirmation page.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.console import campaign_form
from gateway.console.http import page, render
from gateway.console.pages import _form_key, _key, _pile
from gateway.upstream import Upstream
from services.kit.errors import Conflict, Invalid
from services.members.events import SEGMENTS
from services.points.rules.programme import CAMPAIGN_STATES
from services.records.events import ITEM_CATEGORIES, VISIT_KINDS

PAGE_SIZE = 25
DONE = ("created", "changed", "ended")


class CampaignPages:
    members = Upstream("members")
    points = Upstream("points")

    @page("GET", "/console/settings/points", "points-rules:read")
    def console_points_in_force(self, request: Request) -> Response:
        """The whole points programme in force, read-only: the earning rules (changed on their own page), expiry,
        spending and stored value (the programme file's) and the campaigns running."""
        rules, in_force = _pile(self.points.programme_rules, self.members.get_programme)
        return render(request, "points_rules.html", rules=rules, tier_names=_tier_names(in_force), section="points")

    @page("GET", "/console/campaigns", "campaigns:read")
    def console_campaigns(self, request: Request) -> Response:
        state = request.args.get("state") or None
        if state is not None and state not in CAMPAIGN_STATES:
            raise Invalid(f"state: one of {', '.join(CAMPAIGN_STATES)}.", {"state": ["Unknown state."]})
        found = self.points.list_campaigns({"state": state})["items"]
        shown, next_cursor = _page_after(found, request.args.get("cursor"))
        return render(request, "campaigns.html", campaigns=shown, next_cursor=next_cursor, state=state,
                      states=CAMPAIGN_STATES, section="campaigns")

    @page("GET", "/console/campaigns/<campaign_code>", "campaigns:read")
    def console_campaign(self, request: Request, campaign_code: str) -> Response:
        campaign, in_force = _pile(lambda: self.points.get_campaign(campaign_code), self.members.get_programme)
        done = request.args.get("done")
        return render(request, "campaign.html", c=campaign, tier_names=_tier_names(in_force), section="campaigns",
                      done=request.t(f"campaign_done_{done}") if done in DONE else None)

    @page("GET", "/console/new-campaign", "campaigns:write")
    def console_campaign_new(self, request: Request) -> Response:
        return self._campaign_form(request, None, typed=None, key=uuid.uuid4().hex)

    @page("POST", "/console/campaigns", "campaigns:write")
    def console_campaign_create(self, request: Request) -> Response:
        def create(terms: dict[str, Any]) -> Response:
            created = self.points.create_campaign(terms, idempotency_key=_key(request))
            return redirect(f"/console/campaigns/{created['code']}?done=created", 303)

        return self._campaign_post(request, None, campaign_form.typed_from(request.form), create)

    @page("GET", "/console/campaigns/<campaign_code>/edit", "campaigns:write")
    def console_campaign_edit(self, request: Request, campaign_code: str) -> Response:
        campaign = self.points.get_campaign(campaign_code)
        return self._campaign_form(request, campaign, typed=campaign_form.typed_of(campaign), key=uuid.uuid4().hex)

    @page("POST", "/console/campaigns/<campaign_code>", "campaigns:write")
    def console_campaign_update(self, request: Request, campaign_code: str) -> Response:
        version = request.form.get("expected_version", "")
        if not version.isdigit():
            raise Invalid("The form has no version; reload the page.", {"expected_version": ["Required."]})

        def update(terms: dict[str, Any]) -> Response:
            self.points.update_campaign(campaign_code, {**terms, "expected_version": int(version)},
                                        idempotency_key=_key(request))
            return redirect(f"/console/campaigns/{campaign_code}?done=changed", 303)

        return self._campaign_post(request, {"code": campaign_code, "version": int(version), "source": "api"},
                                   {**campaign_form.typed_from(request.form), "code": campaign_code}, update)

    @page("GET", "/console/campaigns/<campaign_code>/end", "campaigns:write")
    def console_campaign_end_confirm(self, request: Request, campaign_code: str) -> Response:
        campaign = self.points.get_campaign(campaign_code)
        t = request.t
        return render(request, "confirm.html", title=t("end_campaign_title", name=campaign["name"]),
                      explain=t("end_campaign_explain"), action=f"/console/campaigns/{campaign_code}/end",
                      back=f"/console/campaigns/{campaign_code}", key=uuid.uuid4().hex, button=t("end_campaign"),
                      section="campaigns")

    @page("POST", "/console/campaigns/<campaign_code>/end", "campaigns:write")
    def console_campaign_end(self, request: Request, campaign_code: str) -> Response:
        self.points.end_campaign(campaign_code, idempotency_key=_key(request))
        return redirect(f"/console/campaigns/{campaign_code}?done=ended", 303)

    # --- the form, drawn again with what was typed ---------------------------------------------------------

    def _campaign_post(self, request: Request, campaign: dict[str, Any] | None, typed: dict[str, Any],
                       save: Callable[[dict[str, Any]], Response]) -> Response:
        """A posted campaign form: boxes that cannot be read, else ``save`` the terms; points' refusals are drawn
        back on the form with what was typed (its idempotency key kept: the corrected form is the same command)."""
        terms, unreadable = campaign_form.terms_from(typed)
        again = {"typed": typed, "key": _form_key(request)}
        if unreadable:
            return self._campaign_form(request, campaign, **again, status=422, problem=request.t("fix_marked"),
                                       errors={box: [request.t(message)] for box, message in unreadable.items()})
        try:
            return save(terms)
        except Conflict as conflict:  # a code taken, a change made meanwhile, an ended campaign
            details = conflict.details or {}
            if "code" in details:
                return self._campaign_form(request, campaign, **again, status=409, problem=str(conflict),
                                           errors={"code": [request.t("campaign_code_taken")]})
            problem = (request.t("campaign_changed_meanwhile", version=details["version"]) if "version" in details
                       else request.t("campaign_ended_no_edit") if details.get("state") == "ended" else str(conflict))
            return self._campaign_form(request, campaign, **again, status=409, problem=problem,
                                       stale="version" in details)
        except Invalid as refused:
            errors, rest = campaign_form.field_errors(getattr(refused, "fields", None))
            return self._campaign_form(request, campaign, **again, status=422, errors=errors, others=rest,
                                       problem=request.t("fix_marked"))

    def _campaign_form(self, request: Request, campaign: dict[str, Any] | None, *, typed: dict[str, Any] | None,
                       key: str, status: int = 200, **context: Any) -> Response:
        """The create form (``campaign`` None) or the edit form of ``campaign`` (its code fixed, its version
        sent back as ``expected_version``)."""
        for name, default in (("errors", {}), ("others", []), ("problem", None), ("stale", False)):
            context.setdefault(name, default)
        in_force = self.members.get_programme()
        typed = typed or {**{name: "" for name in campaign_form.TEXTS}, **{name: [] for name in campaign_form.LISTS}}
        tiers = [tier["code"] for tier in in_force["programme"]["tiers"]]
        choices = {"tiers": tiers + [code for code in typed["tiers"] if code not in tiers],
                   "branches": list(request.page.group.branches), "categories": list(ITEM_CATEGORIES),
                   "segments": list(SEGMENTS), "kinds": list(VISIT_KINDS), "weekdays": [str(d) for d in range(1, 8)]}
        return render(request, "campaign_form.html", status, campaign=campaign, typed=typed, choices=choices,
                      tier_names=_tier_names(in_force), key=key, section="campaigns", **context)


def _tier_names(in_force: dict[str, Any]) -> dict[str, dict[str, str]]:
    return {tier["code"]: tier["names"] for tier in in_force["programme"]["tiers"]}


def _page_after(items: list[dict[str, Any]], cursor: str | None) -> tuple[list[dict[str, Any]], str | None]:
    """A page of ``PAGE_SIZE`` after the campaign coded ``cursor`` (points answers every campaign at once, in a
    fixed order: the file's, then by creation); the next page's cursor, or None on the last."""
    codes = [item["code"] for item in items]
    start = codes.index(cursor) + 1 if cursor in codes else 0
    shown = items[start:start + PAGE_SIZE]
    more = start + PAGE_SIZE < len(items)
    return shown, (shown[-1]["code"] if more and shown else None)


"""The composed journeys' pages: the list with each journey's state, one journey (trigger, conditions, steps,
exits, runs, versions) with its dry run ("would reach N members this week"), and activate / pause / retire
through a confirmation page — the same RPCs as ``/v1/journeys``.

Group admins and branch managers (``journeys:read`` / ``journeys:write``, as the API); notifications checks a
branch manager's branches itself (a journey of another branch is a 403 page). Journeys are composed through the
API (``POST /v1/journeys``): the console has no form for a journey's definition.
"""

from __future__ import annotations

import uuid
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.console.http import page, render
from gateway.console.pages import _key, _pile
from gateway.paths import one_of
from gateway.upstream import Upstream
from services.kit.errors import Invalid, Unavailable
from services.notifications.models import JOURNEY_STATES

ACTIONS = {"activate": "active", "pause": "paused", "retire": "retired"}
OFFERED = {"draft": ("activate", "retire"), "active": ("pause", "retire"), "paused": ("activate", "retire"),
           "retired": ()}
"""The buttons worth showing in each state (notifications judges: ``composed.TRANSITIONS``)."""
PAGE_SIZE = 25


class JourneyPages:
    notifications = Upstream("notifications")

    @page("GET", "/console/journeys", "journeys:read")
    def console_journeys(self, request: Request) -> Response:
        state = request.args.get("state") or None
        if state is not None and state not in JOURNEY_STATES:
            raise Invalid(f"state: one of {', '.join(JOURNEY_STATES)}.", {"state": ["Unknown state."]})
        found = self.notifications.list_journeys({"state": state, "limit": PAGE_SIZE,
                                                  "cursor": request.args.get("cursor") or None})
        return render(request, "journeys.html", journeys=found["items"], next_cursor=found["next_cursor"],
                      state=state, states=JOURNEY_STATES, section="journeys")

    @page("GET", "/console/journeys/<journey_id>", "journeys:read")
    def console_journey(self, request: Request, journey_id: str) -> Response:
        return self._journey_page(request, journey_id)

    @page("GET", "/console/journeys/<journey_id>/<action>", "journeys:write",
          path_types={"action": one_of("journey action", tuple(ACTIONS))})
    def console_journey_confirm(self, request: Request, journey_id: str, action: str) -> Response:
        journey = self.notifications.get_journey(journey_id)
        t = request.t
        return render(request, "confirm.html", title=t(f"journey_{action}_title", name=journey["name"]),
                      explain=t(f"journey_{action}_explain"), action=f"/console/journeys/{journey_id}/{action}",
                      back=f"/console/journeys/{journey_id}", key=uuid.uuid4().hex, button=t(f"journey_{action}"),
                      section="journeys")

    @page("POST", "/console/journeys/<journey_id>/<action>", "journeys:write",
          path_types={"action": one_of("journey action", tuple(ACTIONS))})
    def console_journey_state(self, request: Request, journey_id: str, action: str) -> Response:
        try:
            self.notifications.set_journey_state(journey_id, ACTIONS[action], idempotency_key=_key(request))
        except Invalid as refused:  # activation's checks: each field that stops it
            return self._journey_page(request, journey_id, status=422, problem=request.t("journey_cannot_activate"),
                                 problems=_problem_lines(getattr(refused, "fields", None), str(refused)))
        return redirect(f"/console/journeys/{journey_id}?done={action}", 303)

    def _journey_page(self, request: Request, journey_id: str, status: int = 200, **context: Any) -> Response:
        journey, dry_run = _pile(lambda: self.notifications.get_journey(journey_id),
                                 lambda: self._journey_dry_run(journey_id))
        done = request.args.get("done")
        context.setdefault("problem", None)
        context.setdefault("problems", [])
        t = request.t
        return render(request, "journey.html", status, j=journey, d=journey["definition"], dry_run=dry_run,
                      offered=[(action, t(f"journey_{action}")) for action in OFFERED.get(journey["state"], ())],
                      done=t(f"journey_done_{done}") if done in ACTIONS else None,
                      section="journeys", **context)

    def _journey_dry_run(self, journey_id: str) -> dict[str, Any] | None:
        """The dry run, or None when its count could not be made now (the journey is shown all the same)."""
        try:
            return self.notifications.dry_run_journey(journey_id)
        except Unavailable:
            return None


def _problem_lines(fields: dict[str, Any] | None, message: str) -> list[str]:
    """Activation's field errors as lines a manager can act on (``steps.1.message.texts.es: required``)."""
    lines = [f"{name}: {' '.join(texts) if isinstance(texts, list) else texts}" for name, texts in (fields or {}).items()]
    return lines or [message]

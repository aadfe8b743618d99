"""A patient's confirm and cancel links (``/a/<token>``, from appointment confirmations and reminders).

Public: no login, the signed token is the authority, checked by records (``services/records/links.py``),
which acts once per link. ``GET`` only shows what the link will do, with a button (mail scanners and chat
previews open links; opening must change nothing); the button's ``POST`` acts. A browser (``Accept`` naming
``text/html``) gets a small HTML page; any other client gets JSON, as the OpenAPI document says. Each address is limited (``RATE_LIMIT_LINKS``)
on top of the gateway's per-address limit: tokens cannot be guessed, and trying is slowed down. Tokens are
not logged: the access log names the route, not the path.
"""

from __future__ import annotations

from html import escape
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.http import route
from gateway.paths import PathType
from gateway.upstream import Upstream
from services.kit.errors import DomainError
from services.kit.links import TOKEN_PATTERN
from services.records.schemas import AppointmentLinkSchema, AppointmentLinkUsedSchema

TAGS = ("appointments",)
TOKEN = {"token": PathType("link", TOKEN_PATTERN, "the link is not complete; open it from the message again",
                           "eyJkIjoiY29uZmlybSJ9.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", max_length=460)}
ERRORS = {404: None, 409: None, 410: None, 429: None}
HTML_HEADERS = {"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
                "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'",
                "X-Frame-Options": "DENY"}

_QUESTIONS = {"confirm": "Confirm that you will come to your appointment?",
              "cancel": "Cancel your appointment? The time will be offered to another patient."}
_BUTTONS = {"confirm": "Yes, I will come", "cancel": "Yes, cancel it"}
_OUTCOMES = {"confirmed": "Thank you: your appointment is confirmed.",
             "cancelled": "Your appointment is cancelled. Call the clinic when you want another time.",
             "already_done": "This was already done; nothing has changed."}


def wants_html(request: Request) -> bool:
    """A browser names text/html in its Accept header; any other client (``*/*`` too) gets JSON."""
    return "text/html" in request.accept_mimetypes.values()


def page(title: str, lines: list[str], form: str = "", status: int = 200) -> Response:
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html = (f"<!doctype html><html><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
            f"content=\"width=device-width, initial-scale=1\"><meta name=\"robots\" content=\"noindex\">"
            f"<title>{escape(title)}</title><style>body{{font-family:sans-serif;max-width:32em;margin:2em auto;"
            f"padding:0 1em}}button{{font-size:1.1em;padding:.5em 1em}}</style></head><body>"
            f"<h1>{escape(title)}</h1>{body}{form}</body></html>")
    return Response(html, status=status, headers=HTML_HEADERS, content_type="text/html; charset=utf-8")


def _when(link: dict[str, Any]) -> str:
    return f"{link['starts_local']}, {link['branch_name']}"


class AppointmentLinkRoutes:
    appointment_links = Upstream("records")

    @route("GET", "/a/<token>", public=True, rate_limit="links", path_types=TOKEN, tags=TAGS,
           responses={200: AppointmentLinkSchema, **ERRORS},
           summary="A confirm or cancel link from an appointment message: what it will do (changes nothing)",
           description="No login: the signed token is the authority. JSON; a browser (Accept: text/html) gets a "
                       "page with the button that POSTs. 404: not a valid link; 410: expired.")
    def appointment_link(self, request: Request, token: str) -> Any:
        try:
            link = self.appointment_links.appointment_link(token)
        except DomainError as error:
            return self._refused(request, error)
        if not wants_html(request):
            return link
        action = link["action"]
        if link["used"]:
            return page("Appointment", [_when(link), _OUTCOMES["already_done"]])
        form = (f"<form method=\"post\" action=\"/a/{escape(token)}\"><button type=\"submit\">"
                f"{escape(_BUTTONS[action])}</button></form>")
        return page("Appointment", [_when(link), _QUESTIONS[action]], form)

    @route("POST", "/a/<token>", public=True, rate_limit="links", path_types=TOKEN, tags=TAGS,
           responses={200: AppointmentLinkUsedSchema, **ERRORS},
           summary="Use a confirm or cancel link: acts once (again: outcome already_done, nothing changed)",
           description="No login, no body, no Idempotency-Key: the link itself acts once. A cancellation is the "
                       "desk's (the slot goes to the waitlist). 404: not a valid link; 409: the appointment can "
                       "no longer change that way; 410: expired or started.")
    def use_appointment_link(self, request: Request, token: str) -> Any:
        try:
            used = self.appointment_links.use_appointment_link(token)
        except DomainError as error:
            return self._refused(request, error)
        if not wants_html(request):
            return used
        return page("Appointment", [_when(used), _OUTCOMES[used["outcome"]]])

    def _refused(self, request: Request, error: DomainError) -> Response:
        if not wants_html(request) or error.status in (429, 503):
            raise error
        return page("Appointment", [error.message], status=error.status)

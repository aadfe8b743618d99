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

WORDS: dict[str, dict[str, str]] = {
    "en": {"title": "Your appointment", "ask_confirm": "Confirm that you will come to your appointment?",
           "ask_cancel": "Cancel your appointment? The time will be offered to another patient.",
           "do_confirm": "Yes, I will come", "do_cancel": "Yes, cancel it",
           "confirmed": "Thank you: your appointment is confirmed.",
           "cancelled": "Your appointment is cancelled. Call the clinic when you want another time.",
           "already_done": "This was already done; nothing has changed.",
           "404": "This link is not valid (it may have been copied incompletely). Please call the clinic.",
           "409": "This appointment can no longer be changed this way. Please call the clinic.",
           "410": "This link has expired. Please call the clinic."},
    "zh-Hans": {"title": "您的预约", "ask_confirm": "确认您会按时就诊吗？", "ask_cancel": "取消预约吗？该时段将提供给其他患者。",
                "do_confirm": "确认就诊", "do_cancel": "取消预约", "confirmed": "谢谢，您的预约已确认。",
                "cancelled": "您的预约已取消。如需另约时间，请致电诊所。", "already_done": "此操作已完成，未作任何更改。",
                "404": "此链接无效（可能未完整复制），请致电诊所。", "409": "此预约已无法通过此链接更改，请致电诊所。",
                "410": "此链接已过期，请致电诊所。"},
    "zh-Hant": {"title": "您的預約", "ask_confirm": "確認您會準時就診嗎？", "ask_cancel": "取消預約嗎？該時段將提供給其他病人。",
                "do_confirm": "確認就診", "do_cancel": "取消預約", "confirmed": "謝謝，您的預約已確認。",
                "cancelled": "您的預約已取消。如需另約時間，請致電診所。", "already_done": "此操作已完成，未作任何更改。",
                "404": "此連結無效（可能未完整複製），請致電診所。", "409": "此預約已無法透過此連結更改，請致電診所。",
                "410": "此連結已過期，請致電診所。"},
    "es": {"title": "Su cita", "ask_confirm": "¿Confirma que vendrá a su cita?",
           "ask_cancel": "¿Cancelar su cita? La hora se ofrecerá a otro paciente.",
           "do_confirm": "Sí, iré", "do_cancel": "Sí, cancelarla", "confirmed": "Gracias: su cita está confirmada.",
           "cancelled": "Su cita está cancelada. Llame a la clínica cuando quiera otra hora.",
           "already_done": "Esto ya estaba hecho; nada ha cambiado.",
           "404": "Este enlace no es válido (quizá se copió incompleto). Llame a la clínica.",
           "409": "Esta cita ya no puede cambiarse así. Llame a la clínica.",
           "410": "Este enlace ha caducado. Llame a la clínica."},
}
"""The page's words in the four languages of the messages (the JSON answers keep records' English messages)."""


def language(request: Request) -> str:
    """The first of the reader's languages (``Accept-Language``, best first) that the page speaks; else English."""
    for tag, _quality in request.accept_languages:
        tag = tag.lower()
        if tag.startswith("zh"):
            return "zh-Hant" if any(mark in tag for mark in ("hant", "tw", "hk", "mo")) else "zh-Hans"
        if tag.startswith(("en", "es")):
            return tag[:2]
    return "en"


def wants_html(request: Request) -> bool:
    """A browser names text/html in its Accept header; any other client (``*/*`` too) gets JSON."""
    return "text/html" in request.accept_mimetypes.values()


def page(request: Request, lines: list[str], form: str = "", status: int = 200) -> Response:
    title = WORDS[language(request)]["title"]
    body = "".join(f"<p>{escape(line)}</p>" for line in lines)
    html = (f"<!doctype html><html lang=\"{language(request)}\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" "
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
        words, action = WORDS[language(request)], link["action"]
        if link["used"]:
            return page(request, [_when(link), words["already_done"]])
        form = (f"<form method=\"post\" action=\"/a/{escape(token)}\"><button type=\"submit\">"
                f"{escape(words['do_' + action])}</button></form>")
        return page(request, [_when(link), words["ask_" + action]], form)

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
        return page(request, [_when(used), WORDS[language(request)][used["outcome"]]])

    def _refused(self, request: Request, error: DomainError) -> Response:
        if not wants_html(request) or error.status in (429, 503):
            raise error
        words = WORDS[language(request)]
        return page(request, [words.get(str(error.status), error.message)], status=error.status)

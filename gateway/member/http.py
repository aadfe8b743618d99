"""The member page's entrypoint: ``@member_page(method, url)``, the console's ``@page`` for members.

It differs from the console's only in who the caller is: a member signed in with a one-time code
(``codes.py``), named by the ``careloop_member`` cookie (HttpOnly, SameSite=Strict, Secure on https, path
``/m``), instead of a staff session. Pages marked ``signed_in=False`` (sign-in, the code, language, the
stylesheet) run without one; every other page sends the browser to the sign-in page (a POST gets 403).
Every POST carries the CSRF token of its session (or of the pre-session cookie before sign-in); the page's
method never runs without it. The services are called as the gateway itself (no staff identity): the
member's own id, from the session, is the only member a page ever asks about.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.auth import lockout
from gateway.console import cookies
from gateway.console.http import TEMPLATES, CsrfFailed, Page, set_cookie
from gateway.console.i18n import LANGUAGE_NAMES
from gateway.http import dependency_failure, run_worker
from gateway.member import codes
from gateway.paths import check_path
from services.kit.clock import utcnow
from services.kit.errors import DomainError, Forbidden, NotFound, RateLimited, Unavailable

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

ROOT = "/m"
SIGN_IN_PATH = "/m/sign-in"
SESSION_COOKIE = "careloop_member"
PRE_SESSION_COOKIE = "careloop_member_pre"
SESSION_PURPOSE = "member-session"


class MemberPage(Page):
    cookie_path = ROOT
    pre_session_cookie = PRE_SESSION_COOKIE

    def __init__(self, method: str, url: str, *, signed_in: bool = True, **kwargs: Any) -> None:
        self.signed_in = signed_in
        super().__init__(method, url, public=True, **kwargs)

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        self.code_policy = codes.CodePolicy.from_config(config)
        self.lockout_policy = lockout.Policy.from_config(config)

    @property
    def store(self) -> Any:
        return self.admission.auth.database.store

    def handle_request(self, request: Request) -> Response:
        started = time.perf_counter()
        token = self._begin(request)
        request.member_id = request.session_id = None
        response: Response | None = None
        try:
            with self.admission.in_flight_slot():  # the API's bound (gateway.admission)
                request.client_address = self.admission.admit(request.environ, self.rate_limit)
                keys = self.admission.auth.token_keys
                session_id = cookies.read_session_cookie(keys, request.cookies.get(SESSION_COOKIE), SESSION_PURPOSE)
                if session_id is not None:
                    request.member_id = codes.session_member(self.store, session_id, utcnow())
                if request.member_id is not None:
                    request.session_id = request.csrf_bound_to = session_id
                else:
                    pre = request.cookies.get(PRE_SESSION_COOKIE)
                    if not pre:
                        pre = request.new_pre_session = cookies.new_pre_session()
                    request.csrf_bound_to = pre
                request.csrf = cookies.csrf_token(keys, request.csrf_bound_to)
                if self.signed_in and request.member_id is None:
                    if request.method == "GET":
                        response = redirect(SIGN_IN_PATH, 303)
                        return response
                    raise Forbidden("Sign in again: this session has ended.")
                if request.method == "POST" and not cookies.csrf_valid(keys, request.csrf_bound_to,
                                                                       request.form.get("csrf_token")):
                    raise CsrfFailed("The form has no valid CSRF token.")
                check_path(self.path_types, request.path_values)
                response = run_worker(self, request, None)
        except Exception as exc:
            response = self._error(exc, request)
        finally:
            self._finish(request, response, started, token, f"member:{request.member_id}" if request.member_id else None)
        return response

    def _error(self, exc: Exception, request: Request) -> Response:
        t = request.t
        if isinstance(exc, CsrfFailed):
            return render(request, "member_error.html", 403, message=t("m.csrf_failed"))
        if isinstance(exc, RateLimited):
            return render(request, "member_error.html", 429, message=t("m.too_many"),
                          headers={"Retry-After": str(exc.details.get("retry_after", 60) if exc.details else 60)})
        if isinstance(exc, Forbidden):
            return render(request, "member_error.html", 403, message=t("m.signed_out"))
        if isinstance(exc, NotFound):
            return render(request, "member_error.html", 404, message=t("not_found"))
        if isinstance(exc, DomainError) and not isinstance(exc, Unavailable):
            return render(request, "member_error.html", exc.status, message=t("m.check_and_retry"), detail=str(exc))
        if isinstance(exc, Unavailable) or dependency_failure(exc) is not None:
            return render(request, "member_error.html", 503, message=t("unavailable"), headers={"Retry-After": "1"})
        log.exception("member page error in %s %s", request.method, self.url)
        return render(request, "member_error.html", 500, message=t("error"), detail=f"request id {request.request_id}")


member_page = MemberPage.decorator


def render(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> Response:
    """A member page of ``template`` in the member's language."""
    body = TEMPLATES.get_template(template).render(
        t=request.t, lang=request.language, languages=LANGUAGE_NAMES, csrf=getattr(request, "csrf", ""),
        signed_in=getattr(request, "member_id", None) is not None, path=request.path, **context)
    return Response(body, status=status, content_type="text/html; charset=utf-8", headers=headers or {})


def remember(request: Request, response: Response, name: str, value: str, max_age: int | None = None) -> None:
    set_cookie(request, response, name, value, max_age=max_age, path=ROOT)

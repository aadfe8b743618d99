"""The console's entrypoint: ``@page(method, url, permission)`` for HTML pages, beside the API's ``@route``.

It shares the gateway's web server, address limits and authenticator, and differs from ``@route`` only
where a browser differs from an API client:

1. the caller is the staff session named by the console's cookie (``cookies.py``), loaded through the
   ``Authenticator`` like an access token's session — a revoked or expired session, a disabled account
   is no caller; a page without one sends the browser to the sign-in page (a POST gets 403);
2. the caller's role must hold the page's permission (``gateway.permissions.GRANTS``, the API's table) —
   else a 403 page;
3. every POST carries the CSRF token of its session (``csrf_token`` field) — else a 403 page, and the
   page's method never runs;
4. path values have their declared shapes (``gateway.paths``);
5. answers are HTML with a Content-Security-Policy without inline scripts, ``X-Frame-Options: DENY``,
   ``no-store``; domain errors become a page in the reader's language with the service's message.

Pages are not in the OpenAPI document (``gateway.openapi`` lists ``@route`` entrypoints only).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape
from nameko.exceptions import RemoteError
from nameko.web.handlers import HttpRequestHandler
from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway import permissions
from gateway.admission import Admission
from gateway.auth.principal import Principal
from gateway.console import cookies
from gateway.console.i18n import LANGUAGE_NAMES, Translator, choose_language
from gateway.http import GatewayWebServer, begin_request, dependency_failure, run_worker
from gateway.paths import PathType, check_path, types_of
from services.kit.config import group_from_config
from services.kit.errors import DomainError, Forbidden, Invalid, NotFound, Unavailable
from services.kit.telemetry import request_id_var

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

HERE = Path(__file__).resolve().parent
TEMPLATES = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=select_autoescape(("html",)),
                        undefined=StrictUndefined, trim_blocks=True, lstrip_blocks=True)
POLICY = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; object-src 'none'; "
          "base-uri 'none'; frame-ancestors 'none'; form-action 'self'")
HTML_HEADERS = {"Content-Security-Policy": POLICY, "X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY",
                "Referrer-Policy": "same-origin", "Cache-Control": "no-store"}
LOGIN_PATH = "/console/login"


class CsrfFailed(Forbidden):
    """A form without the CSRF token of the caller's session."""


PAGE_BODY_BYTES = 64 * 1024
DEFAULT_IMPORT_MAX_BYTES = 512 * 1024 * 1024  # interfaces' IMPORT_MAX_BYTES unless the config says otherwise


class Page(HttpRequestHandler):
    server = GatewayWebServer()
    admission = Admission()
    cookie_path = "/console"  # where the pages' cookies are sent back
    pre_session_cookie = cookies.PRE_SESSION_COOKIE  # a visitor's before sign-in (the CSRF token is bound to it)

    def __init__(self, method: str, url: str, permission: str | None = None, *, public: bool = False,
                 rate_limit: str | None = None, path_types: dict[str, PathType] | None = None,
                 upload: bool = False, **kwargs: Any) -> None:
        if not public and permission not in permissions.GRANTS:
            raise ValueError(f"{method} {url}: a page needs a known permission or public=True")
        self.permission = permission
        self.public = public
        self.upload = upload  # a form with a file: bodies up to the imports' limit (spooled to disk), not 64 KiB
        self.body_limit = PAGE_BODY_BYTES
        self.rate_limit = rate_limit
        self.path_types = types_of(url, path_types)
        kwargs.setdefault("expected_exceptions", DomainError)
        super().__init__(method, url, **kwargs)

    def setup(self) -> None:
        super().setup()
        config = self.container.config
        self.group = group_from_config(config)
        self.secure_cookies = str(config.get("CONSOLE_SECURE_COOKIES", "auto")).lower()
        if self.upload:  # the file and the form's few fields (multipart's own framing included)
            self.body_limit = int(config.get("IMPORT_MAX_BYTES", DEFAULT_IMPORT_MAX_BYTES)) + PAGE_BODY_BYTES

    # -- the request pipeline ----------------------------------------------------------------------

    def handle_request(self, request: Request) -> Response:
        started = time.perf_counter()
        token = self._begin(request)
        request.principal = principal = None
        response: Response | None = None
        try:
            with self.admission.in_flight_slot():  # the API's bound (gateway.admission)
                admission = self.admission
                request.client_address = admission.admit(request.environ, self.rate_limit)
                keys = admission.auth.token_keys
                session_id = cookies.read_session_cookie(keys, request.cookies.get(cookies.SESSION_COOKIE))
                if session_id is not None:
                    principal = admission.auth.session_principal(session_id)
                if principal is not None:
                    admission.per_credential.hit(principal.credential)
                    request.principal = principal
                    request.identity = principal.identity
                    request.csrf_bound_to = principal.session_id
                else:
                    request.identity = None
                    pre = request.cookies.get(self.pre_session_cookie)
                    if not pre:
                        pre = request.new_pre_session = cookies.new_pre_session()
                    request.csrf_bound_to = pre
                request.csrf = cookies.csrf_token(keys, request.csrf_bound_to)
                if not self.public:
                    if principal is None:
                        if request.method == "GET":
                            response = redirect(f"{LOGIN_PATH}?next={quote(request.full_path.rstrip('?'))}", 303)
                            return response
                        raise Forbidden("Sign in again: this session has ended.")
                    self._authorise(principal)
                if request.method == "POST" and not cookies.csrf_valid(keys, request.csrf_bound_to,
                                                                       request.form.get("csrf_token")):
                    raise CsrfFailed("The form has no valid CSRF token.")
                check_path(self.path_types, request.path_values)
                response = self._run(request, principal)
        except Exception as exc:
            response = self._error(exc, request)
        finally:
            self._finish(request, response, started, token, principal.credential if principal is not None else None)
        return response

    def _begin(self, request: Request) -> Any:
        """The start of every page's request (the console's and the member page's): its id and body limit, the
        reader's language and translator; the returned token resets the log context in ``_finish``."""
        _, token = begin_request(request, self.body_limit)
        request.page = self
        request.language = choose_language(request.cookies.get(cookies.LANGUAGE_COOKIE), request.accept_languages)
        request.t = Translator(request.language, self.group.currency, self.group.zone)
        request.new_pre_session = None
        return token

    def _finish(self, request: Request, response: Response | None, started: float, token: Any,
                credential: str | None) -> None:
        """The end of every page's request (the console's and the member page's): the request id and the HTML
        headers on the answer, a new pre-session's cookie, the access log line, the log context reset."""
        if response is not None:
            response.headers["X-Request-Id"] = request.request_id
            for name, value in HTML_HEADERS.items():
                response.headers.setdefault(name, value)
            if request.new_pre_session:
                set_cookie(request, response, self.pre_session_cookie, request.new_pre_session, path=self.cookie_path)
        access_log.info("request", extra={
            "method": request.method, "route": self.url, "status": response.status_code if response else 500,
            "duration_ms": round((time.perf_counter() - started) * 1000, 2), "credential": credential})
        request_id_var.reset(token)

    def _authorise(self, principal: Principal) -> None:
        if not principal.may(self.permission):
            raise Forbidden(f"Your role ({principal.identity.role}) may not open this page.")
        if principal.password_change_required:
            raise Forbidden("Choose a new password first.", details={"password_change_required": True})

    def _run(self, request: Request, principal: Principal | None) -> Response:
        return run_worker(self, request, principal)

    def _error(self, exc: Exception, request: Request) -> Response:
        t = request.t
        if isinstance(exc, CsrfFailed):
            return render(request, "error.html", 403, message=t("csrf_failed"))
        if isinstance(exc, Forbidden):
            return render(request, "error.html", 403, message=t("forbidden"), detail=str(exc))
        if isinstance(exc, NotFound):
            return render(request, "error.html", 404, message=t("not_found"), detail=str(exc))
        if isinstance(exc, DomainError) and not isinstance(exc, Unavailable):
            return render(request, "error.html", exc.status, message=t("error"), detail=str(exc))
        if isinstance(exc, Unavailable) or dependency_failure(exc) is not None:
            return render(request, "error.html", 503, message=t("unavailable"), headers={"Retry-After": "1"})
        if isinstance(exc, RemoteError):
            log.error("service error behind %s %s: %s", request.method, self.url, exc.exc_type)
        else:
            log.exception("console error in %s %s", request.method, self.url)
        return render(request, "error.html", 500, message=t("error"), detail=f"request id {request.request_id}")


page = Page.decorator


def cookie_secure(request: Request) -> bool:
    """Secure cookies behind TLS: on an https request, or when the ingress says it was one."""
    setting = getattr(request.page, "secure_cookies", "auto")
    if setting in ("true", "false"):
        return setting == "true"
    return request.scheme == "https" or request.headers.get("X-Forwarded-Proto", "").lower() == "https"


def set_cookie(request: Request, response: Response, name: str, value: str, http_only: bool = True,
               max_age: int | None = None, path: str = "/console") -> None:
    response.set_cookie(name, value, path=path, httponly=http_only, samesite="Strict",
                        secure=cookie_secure(request), max_age=max_age)


def render(request: Request, template: str, status: int = 200, headers: dict[str, str] | None = None,
           **context: Any) -> Response:
    """A page of ``template`` in the reader's language, with the console's frame (who, branch, language)."""
    principal = getattr(request, "principal", None)
    body = TEMPLATES.get_template(template).render(
        t=request.t, lang=request.language, languages=LANGUAGE_NAMES, csrf=getattr(request, "csrf", ""),
        principal=principal, branch=working_branch(request) if principal is not None else None,
        branches=branch_choices(request) if principal is not None else [], path=request.path,
        full_path=request.full_path.rstrip("?"), may=(lambda p: principal is not None and principal.may(p)),
        **context)
    return Response(body, status=status, content_type="text/html; charset=utf-8", headers=headers or {})


def branch_choices(request: Request) -> list[str]:
    identity = request.identity
    return [code for code in request.page.group.branches if identity.can_see_branch(code)]


def working_branch(request: Request) -> str:
    """The branch the desk works at: the remembered choice if it is one of the caller's, else their first."""
    chosen = request.cookies.get(cookies.BRANCH_COOKIE)
    choices = branch_choices(request)
    if chosen in choices:
        return chosen
    if not choices:
        raise Forbidden("Your account has no branch of this group.")
    return choices[0]


def form(request: Request, *names: str, required: tuple[str, ...] = ()) -> dict[str, str]:
    """The named fields of the posted form, stripped; a missing required one is a 422 naming it."""
    values = {name: request.form.get(name, "").strip() for name in names}
    missing = [name for name in required if not values.get(name)]
    if missing:
        raise Invalid(request.t("fix_fields", fields=", ".join(missing)), {name: ["Required."] for name in missing})
    return values

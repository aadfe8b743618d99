"""The gateway's HTTP entrypoint: every route authenticated, authorised, size-limited and JSON.

``@route("GET", "/v1/members/<member_id>", permission="members:read", ...)`` replaces nameko's
``@http``. Before the service method runs, the request gets a request id, its size is checked, the
caller is authenticated (``gateway.auth``) and must hold the route's permission; the caller's identity
goes into the worker context, so every service called from the route sees it. The method returns a
JSON-able value (200), ``(status, value)`` or a werkzeug ``Response``; a domain error becomes
``{"error": {"code", "message", "fields"}}`` with its status, anything else a 500 that says nothing
of the internals (the log has it, under the request id).
"""

from __future__ import annotations

import json
import logging
import re
import uuid
from functools import partial
from typing import Any

import eventlet
from eventlet.event import Event
from nameko.exceptions import RemoteError, UnknownService
from nameko.web.handlers import HttpRequestHandler
from werkzeug.exceptions import RequestEntityTooLarge
from werkzeug.wrappers import Request, Response

from gateway import permissions
from services.kit.caller import Identity
from services.kit.errors import BadRequest, DomainError, Forbidden, Invalid, TooLarge, Unauthenticated, Unavailable

log = logging.getLogger(__name__)

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store"}


def json_response(status: int, body: Any, request_id: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                        headers={**JSON_HEADERS, **(headers or {})})
    response.headers["X-Request-Id"] = request_id
    return response


def error_response(error: DomainError, request_id: str) -> Response:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="careloop"'
    if error.status == 429 and "retry_after" in error.details:
        headers["Retry-After"] = str(error.details["retry_after"])
    return json_response(error.status, {"error": error.to_dict(), "request_id": request_id}, request_id, headers)


class Route(HttpRequestHandler):
    def __init__(self, method: str, url: str, permission: str | None = None, *, public: bool = False,
                 summary: str = "", tags: tuple[str, ...] = (), body: Any = None, query: Any = None,
                 responses: dict[int, Any] | None = None, idempotent: bool = False, **kwargs: Any) -> None:
        if not public and permission not in permissions.GRANTS:
            raise ValueError(f"{method} {url}: a route needs a known permission or public=True")
        self.permission = permission
        self.public = public
        self.summary = summary
        self.tags = tags
        self.body_schema = body
        self.query_schema = query
        self.responses = responses or {}
        self.idempotent = idempotent
        super().__init__(method, url, **kwargs)

    def handle_request(self, request: Request) -> Response:
        request_id = request.headers.get("X-Request-Id", "")
        if not REQUEST_ID.match(request_id):
            request_id = uuid.uuid4().hex
        request.request_id = request_id
        request.shallow = False
        request.max_content_length = MAX_BODY_BYTES
        try:
            identity = self._admit(request)
            request.identity = identity
            request.json_body = self._read_body(request)
            context = {"request_id": request_id}
            if identity is not None:
                context["caller"] = identity.to_context()
            event = Event()
            self.container.spawn_worker(self, (request,), request.path_values, context_data=context,
                                        handle_result=partial(self.handle_result, event))
            result = event.wait()
            return self._to_response(result, request_id)
        except Exception as exc:
            return self._error(exc, request, request_id)

    def _admit(self, request: Request) -> Identity | None:
        if self.public:
            return None
        identity = self._authenticator().authenticate(request)
        if identity is None:
            raise Unauthenticated("Sign in or send an API key: Authorization: Bearer <token or key>.")
        if not permissions.allowed(identity.role, self.permission):
            raise Forbidden(f"Your role ({identity.role}) may not use this route ({self.permission}).")
        return identity

    def _authenticator(self) -> Any:
        from gateway.auth import Authenticator

        return next(d for d in self.container.dependencies if isinstance(d, Authenticator))

    def _read_body(self, request: Request) -> Any:
        if self.body_schema is None and request.method in ("GET", "HEAD", "DELETE"):
            return None
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise TooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.")
        raw = request.get_data(cache=True)
        if len(raw) > MAX_BODY_BYTES:
            raise TooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.")
        if not raw:
            if self.body_schema is not None:
                raise BadRequest("A JSON body is needed.")
            return None
        if request.mimetype != "application/json":
            raise BadRequest("Send the body as JSON (Content-Type: application/json).")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequest(f"The body is not valid JSON: {error}.") from None

    def _to_response(self, result: Any, request_id: str) -> Response:
        if isinstance(result, Response):
            result.headers["X-Request-Id"] = request_id
            return result
        status = 200
        if isinstance(result, tuple):
            status, result = result
        return json_response(status, result, request_id)

    def _error(self, exc: Exception, request: Request, request_id: str) -> Response:
        if isinstance(exc, DomainError):
            return error_response(exc, request_id)
        if isinstance(exc, RequestEntityTooLarge):
            return error_response(TooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB."),
                                  request_id)
        if isinstance(exc, (eventlet.Timeout, UnknownService)):
            return error_response(Unavailable("A CareLoop service did not answer in time; try again "
                                              "(with the same Idempotency-Key if you sent one)."), request_id)
        where = f"{request.method} {self.url}"
        if isinstance(exc, RemoteError):
            log.error("service error behind %s: %s", where, exc.exc_type, extra={"request_id": request_id})
        else:
            log.exception("gateway error in %s", where, extra={"request_id": request_id})
        body = {"error": {"code": "internal", "message": "Something went wrong on our side; it has been "
                          "logged. Quote the request id to support.", "fields": {}}, "request_id": request_id}
        return json_response(500, body, request_id)


route = Route.decorator


def query_args(request: Request, integers: tuple[str, ...] = ("limit",)) -> dict[str, Any]:
    """Query parameters as a dict (last value wins), whole numbers converted where named."""
    args: dict[str, Any] = {}
    for key, value in request.args.items():
        if key in integers:
            try:
                args[key] = int(value)
            except ValueError:
                raise Invalid(f"{key} must be a whole number.", {key: ["Not a whole number."]}) from None
        else:
            args[key] = value
    return args


def idempotency_key(request: Request) -> str | None:
    """The ``Idempotency-Key`` header: the same key and body twice give one effect and one answer."""
    key = request.headers.get("Idempotency-Key")
    return key.strip() if key and key.strip() else None

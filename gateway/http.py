"""The gateway's HTTP entrypoint: every route authenticated, authorised, limited, idempotent and JSON.

``@route("GET", "/v1/members/<member_id>", "members:read", ...)`` replaces nameko's ``@http``. Before
the service method runs, in this order:

1. the request gets a request id (``X-Request-Id``, echoed on every response and in every log line);
   beyond the process's bound of requests in flight it is answered 503 at once (``gateway.admission``);
2. the client's address is limited (``gateway.ratelimit``);
3. the caller is authenticated (``gateway.auth``; on ``webhook=True`` routes by HMAC signature only,
   ``gateway.auth.webhooks``) — else 401 — and its credential is limited;
4. it must hold the route's permission (role in ``permissions.GRANTS``, and the key's narrower scope
   if any) — else 403 — and any ``branch`` named in the path or query must be one of its branches;
5. every path value must have its placeholder's declared shape (``gateway.paths``: a UUID, a coupon code...)
   — else 404, or 422 where the route's convention says so — before any service is asked;
6. the body is read (1 MiB at most; JSON, or bytes of the media type a route names as ``body``, e.g. HL7;
   on ``provider_signed=True`` routes — providers' delivery receipts — kept as sent, form or XML, for the
   service that checks the provider's signature);
7. on a mutating route with an ``Idempotency-Key``, a stored answer is replayed (``gateway.idempotency``).

The caller's identity goes into the worker context, so every service called from the route sees it.
The method returns a JSON-able value (200), ``(status, value)``, ``(status, value, headers)`` or a werkzeug
``Response``; a domain error becomes ``{"error": {"code", "message", "fields"}, "request_id"}`` with its
status; a dependency that failed (the broker unreachable or its connection reset, a service not answering,
the gateway's own database away) a 503 with ``Retry-After``; anything else a 500 that says nothing of the
internals (the log has it, under the request id).
"""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from functools import lru_cache, partial
from typing import Any

import eventlet
from eventlet import wsgi
from eventlet.event import Event
from nameko.exceptions import RemoteError, UnknownService
from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import HttpOnlyProtocol, WebServer, WsgiApp
from werkzeug.exceptions import HTTPException, MethodNotAllowed, RequestEntityTooLarge
from werkzeug.routing import Map, Rule
from werkzeug.wrappers import Request, Response

from gateway import permissions
from gateway.admission import Admission
from gateway.auth.principal import Principal
from gateway.idempotency import HEADER as IDEMPOTENCY_HEADER
from gateway.idempotency import Replayed, check_key, fingerprint, service_key
from gateway.paths import PathType, check_path, types_of
from services.kit.caller import Identity
from services.kit.consumer import BROKER_ERRORS
from services.kit.db import database_unavailable
from services.kit.errors import (
    BadRequest,
    DomainError,
    Forbidden,
    Invalid,
    RateLimited,
    TooLarge,
    Unauthenticated,
    Unavailable,
)
from services.kit.telemetry import request_id_var

log = logging.getLogger(__name__)
access_log = logging.getLogger("gateway.access")

MAX_BODY_BYTES = 1024 * 1024
REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
JSON_HEADERS = {"Content-Type": "application/json; charset=utf-8", "Cache-Control": "no-store",
                "X-Content-Type-Options": "nosniff"}
MUTATING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SELF_PERMISSION = "auth:self"
"""The permission of a signed-in person's own routes (sign out, change password): the only ones open
while a password change is required."""


def json_response(status: int, body: Any, request_id: str, headers: dict[str, str] | None = None) -> Response:
    response = Response(json.dumps(body, ensure_ascii=False, separators=(",", ":")), status=status,
                        headers={**JSON_HEADERS, **(headers or {})})
    response.headers["X-Request-Id"] = request_id
    return response


def error_body(code: str, message: str, request_id: str, fields: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": {"code": code, "message": message, "fields": fields or {}}, "request_id": request_id}


def error_response(error: DomainError, request_id: str) -> Response:
    headers = {}
    if error.status == 401:
        headers["WWW-Authenticate"] = 'Bearer realm="careloop"'
    if error.status in (409, 429, 503) and "retry_after" in error.details:
        headers["Retry-After"] = str(error.details["retry_after"])
    elif error.status == 503:  # every 503 says when to try again
        headers["Retry-After"] = "1"
    return json_response(error.status, {"error": error.to_dict(), "request_id": request_id}, request_id, headers)


def dependency_failure(exc: BaseException) -> Unavailable | None:
    """The 503 to answer when ``exc`` means a dependency failed — a service not answering, the broker
    unreachable or its connection reset, the gateway's own database away — else None."""
    again = "try again (with the same Idempotency-Key if you sent one)."
    if isinstance(exc, (eventlet.Timeout, UnknownService)):
        return Unavailable(f"A CareLoop service did not answer in time; {again}", details={"retry_after": 1})
    if isinstance(exc, BROKER_ERRORS):
        return Unavailable(f"The message broker cannot be reached just now; {again}", details={"retry_after": 5})
    if database_unavailable(exc):
        return Unavailable(f"The gateway's database cannot be reached just now; {again}",
                           details={"retry_after": 5})
    return None


def new_request_id(environ: dict[str, Any]) -> str:
    given = environ.get("HTTP_X_REQUEST_ID", "")
    return given if REQUEST_ID.match(given) else uuid.uuid4().hex


def begin_request(request: Request, max_body: int) -> tuple[str, Any]:
    """Give the request its id (also for this green thread's log lines: reset the returned token at the
    end) and a body limit; the body is read in full (not streamed)."""
    request_id = new_request_id(request.environ)
    token = request_id_var.set(request_id)
    request.request_id = request_id
    request.shallow = False
    request.max_content_length = max_body
    return request_id, token


RouteKey = tuple[str, tuple[str, ...]]  # (URL rule, its methods): a route's endpoint in the compiled map


@lru_cache(maxsize=4)
def compiled_url_map(keys: frozenset[RouteKey]) -> Map:
    """The URL map of these routes, compiled once per process and shared by every gateway container in it.

    Compiling the gateway's ~270 rules costs ~90 ms of CPU (measured), paid at each container start: once in
    production, once per test in the end-to-end tests. The map holds no container's objects (its endpoints
    are the keys, each container looks its own route up by key) and is only read once compiled: werkzeug
    builds its matcher under the map's lock and binds a new adapter per request."""
    url_map = Map()
    for url, methods in sorted(keys):
        url_map.add(Rule(url, methods=list(methods), endpoint=(url, methods)))
    return url_map


class GatewayWsgiApp(WsgiApp):
    """nameko's WSGI app, with JSON answers (and a request id, and an access log line) for paths and
    methods no route serves; its URL map compiled once per process (``compiled_url_map``)."""

    def __init__(self, server: Any) -> None:
        self.server = server
        self.routes: dict[RouteKey, Any] = {}
        for provider in server._providers:
            rule = provider.get_url_rule()
            key = (rule.rule, tuple(sorted(rule.methods or ())))
            if key in self.routes:
                raise ValueError(f"two routes serve {' '.join(key[1])} {key[0]}")
            self.routes[key] = provider
        self.url_map = compiled_url_map(frozenset(self.routes))

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        adapter = self.url_map.bind_to_environ(environ)
        try:
            key, values = adapter.match()
            provider = self.routes[key]
        except HTTPException as exc:
            request_id = new_request_id(environ)
            status = exc.code or 404
            headers = {}
            if isinstance(exc, MethodNotAllowed):
                headers["Allow"] = ", ".join(sorted(exc.valid_methods or ()))
                body = error_body("method_not_allowed", f"{environ.get('REQUEST_METHOD')} is not allowed here.",
                                  request_id)
            else:
                body = error_body("not_found", "No such route; see /openapi.json.", request_id)
            access_log.info("request", extra={"request_id": request_id, "method": environ.get("REQUEST_METHOD"),
                                              "route": None, "status": status, "duration_ms": 0.0})
            if environ.get("PATH_INFO", "").startswith("/fhir/"):  # FHIR clients read an OperationOutcome
                from gateway.fhir.http import fhir_response, outcome

                message = (f"{environ.get('REQUEST_METHOD')} is not served here." if status == 405 else
                           "Not served by this FHIR server; see /fhir/metadata.")
                answer = fhir_response(status, outcome(status, message, code="not-supported"), request_id, headers)
                return answer(environ, start_response)
            return json_response(status, body, request_id, headers)(environ, start_response)
        request = Request(environ, shallow=True)
        request.path_values = values
        return provider.handle_request(request)(environ, start_response)


class GatewayWebServer(WebServer):
    """The web server of the gateway's routes: JSON for unknown routes; eventlet's own access log off
    (it would print query strings, which can hold phone numbers) in favour of ``gateway.access``."""

    def get_wsgi_app(self) -> Any:
        return GatewayWsgiApp(self)

    def get_wsgi_server(self, sock: Any, wsgi_app: Any, protocol: Any = HttpOnlyProtocol, debug: bool = False) -> Any:
        return wsgi.Server(sock, sock.getsockname(), wsgi_app, protocol=protocol, debug=debug,
                           log=logging.getLogger("gateway.wsgi"), log_output=False)


class Route(HttpRequestHandler):
    server = GatewayWebServer()
    admission = Admission()
    in_openapi = True  # the FHIR routes (gateway.fhir) are described by their CapabilityStatement instead
    body_types: tuple[str, ...] = ("application/json",)  # the Content-Types a body may have, the first preferred
    respond = staticmethod(json_response)  # (status, body, request id, headers) -> the answer; FHIR: fhir_response

    def __init__(self, method: str, url: str, permission: str | None = None, *, public: bool = False,
                 summary: str = "", tags: tuple[str, ...] = (), body: Any = None, query: Any = None,
                 responses: dict[int, Any] | None = None, idempotent: bool | None = None,
                 webhook: bool = False, description: str = "", branch_params: tuple[str, ...] = ("branch",),
                 rate_limit: str | None = None, path_types: dict[str, PathType] | None = None,
                 provider_signed: bool = False, stream_body: str | None = None, shed: bool = True,
                 **kwargs: Any) -> None:
        # a provider's callback (delivery receipts): no staff or system credential, signed the provider's
        # way and checked by the service that holds the provider's secret; its body is passed on as sent
        public = public or provider_signed
        if not public and permission not in permissions.GRANTS:
            raise ValueError(f"{method} {url}: a route needs a known permission or public=True")
        if webhook and public:
            raise ValueError(f"{method} {url}: a webhook route is authenticated by its signature, not public")
        self.permission = permission
        self.public = public
        self.provider_signed = provider_signed
        self.shed = shed  # False: outside the process's bound of requests in flight (probes, metrics; gateway.admission)
        self.summary = summary
        self.description = description
        self.tags = tags
        self.body_schema = body
        self.query_schema = query
        self.responses = responses or {}
        self.webhook = webhook
        self.branch_params = branch_params
        self.rate_limit = rate_limit  # an extra per-address limit of Admission (e.g. "login")
        # a body of this media type that the method reads itself from ``request.stream`` a piece at a time (an
        # import's file): not read, not size-limited here (the service holds the limit), never replayed whole
        self.stream_body = stream_body
        self.path_types = types_of(url, path_types)  # every <placeholder> has a declared shape (gateway.paths)
        # every mutating route of a known caller takes an Idempotency-Key unless it opts out
        mutating = method.upper() in MUTATING
        self.idempotent = (mutating and not public) if idempotent is None else (idempotent and not public)
        if stream_body:
            self.idempotent = False
        kwargs.setdefault("expected_exceptions", DomainError)  # logged as warnings, not crashes
        super().__init__(method, url, **kwargs)

    # -- the request pipeline --------------------------------------------------------------------

    def handle_request(self, request: Request) -> Response:
        started = time.perf_counter()
        request_id, token = begin_request(request, None if self.stream_body else MAX_BODY_BYTES)
        principal: Principal | None = None
        response: Response | None = None
        claim: tuple[str, str] | None = None
        try:
            with self.admission.in_flight_slot(self.shed):
                admission = self.admission
                address = request.client_address = admission.admit(request.environ, self.rate_limit)
                raw = receipt = None
                key = request.headers.get(IDEMPOTENCY_HEADER)
                if self.webhook:
                    raw = self._read_raw(request)
                    principal, receipt = admission.auth.webhooks.verify(request.headers, raw, address)
                    if not (self.idempotent and key is not None):  # else written with the key's claim, below
                        if not admission.auth.webhooks.remember(receipt):
                            raise admission.auth.webhooks.refuse_replay(principal, address)
                        receipt = None
                elif not self.public:
                    principal = admission.auth.principal(request)
                    if principal is None:
                        raise Unauthenticated("Sign in or send an API key: Authorization: Bearer <token or key>.")
                if principal is not None:
                    admission.per_credential.hit(principal.credential)
                    self._authorise(principal, request)
                check_path(self.path_types, request.path_values)  # a malformed id goes no further
                request.principal = principal
                request.identity = principal.identity if principal is not None else None
                request.json_body = None if self.stream_body else self._read_body(request, raw)
                if self.idempotent and principal is not None and key is not None:
                    key = check_key(key)
                    print_ = fingerprint(request.method, request.path, request.query_string.decode("latin-1"),
                                         raw if raw is not None else request.get_data(cache=True), request.json_body)
                    try:  # a replayed signature may only fetch the answer already given, never act
                        stored = admission.idempotency.claim(principal.credential, key, print_,
                                                             receipt.write if receipt is not None else None)
                    except Replayed:
                        raise admission.auth.webhooks.refuse_replay(principal, address) from None
                    if stored is not None:
                        response = self._replayed(stored, request_id)
                        return response
                    claim = (principal.credential, key)
                response = self._run(request, principal)
        except Exception as exc:
            response = self._error(exc, request, request_id)
        finally:
            if claim is not None:
                self._settle(claim, response)
            status = response.status_code if response is not None else 500
            access_log.info("request", extra={
                "method": request.method, "route": self.url, "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 2),
                "credential": principal.credential if principal is not None else None})
            request_id_var.reset(token)
        return response

    def _run(self, request: Request, principal: Principal | None) -> Response:
        return self._to_response(run_worker(self, request, principal), request.request_id)

    def _replayed(self, stored: Any, request_id: str) -> Response:
        response = Response(stored.body, status=stored.status, headers={**JSON_HEADERS, "Idempotent-Replayed": "true"})
        response.headers["X-Request-Id"] = request_id
        return response

    def _settle(self, claim: tuple[str, str], response: Response | None) -> None:
        store = self.admission.idempotency
        try:
            # only answers that changed something are kept: a refused request (4xx) changed nothing, so
            # the caller may correct it and send it again under the same key (the bill id, say)
            keep = (response is not None and response.status_code < 400
                    and response.mimetype == "application/json" and not response.is_streamed)
            if keep:
                store.complete(*claim, response.status_code, response.get_data(as_text=True))
            else:
                store.release(*claim)
        except Exception:
            log.exception("could not settle an idempotency key; a retry will run again after it goes stale")

    def _authorise(self, principal: Principal, request: Request) -> None:
        identity = principal.identity
        if not principal.may(self.permission):
            if permissions.allowed(identity.role, self.permission):
                raise Forbidden(f"This credential is limited to fewer permissions; it may not use this route "
                                f"({self.permission}).", details={"permission": self.permission})
            raise Forbidden(f"Your role ({identity.role}) may not use this route ({self.permission}).",
                            details={"permission": self.permission})
        if principal.password_change_required and self.permission != SELF_PERMISSION:
            raise Forbidden("Choose a new password first (POST /v1/auth/password).",
                            details={"password_change_required": True})
        for name in self.branch_params:
            values = list(request.args.getlist(name))
            if name in request.path_values:
                values.append(request.path_values[name])
            for value in values:
                for branch in (b.strip() for b in str(value).split(",")):
                    if branch and not identity.can_see_branch(branch):
                        raise Forbidden(f"Branch {branch} is not one of yours.", details={"branch": branch})

    def _read_raw(self, request: Request) -> bytes:
        if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
            raise TooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.")
        raw = request.get_data(cache=True)
        if len(raw) > MAX_BODY_BYTES:
            raise TooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB.")
        return raw

    def _read_body(self, request: Request, raw: bytes | None = None) -> Any:
        if self.body_schema is None and request.method in ("GET", "HEAD", "DELETE"):
            return None
        if raw is None:
            raw = self._read_raw(request)
        if self.provider_signed:  # form, XML or JSON as the provider posts it, for its signature
            request.raw_body = raw
            return None
        if isinstance(self.body_schema, (str, tuple)):  # a body that is not JSON: the route reads its bytes
            media_types = (self.body_schema,) if isinstance(self.body_schema, str) else self.body_schema
            if not raw:
                raise BadRequest(f"A body is needed ({media_types[0]}).")
            if request.mimetype not in media_types:
                raise BadRequest(f"Send the body as {' or '.join(media_types)}.")
            return None
        if not raw:
            if self.body_schema is not None:
                raise BadRequest("A JSON body is needed.")
            return None
        if request.mimetype not in self.body_types:
            raise BadRequest(f"Send the body as JSON (Content-Type: {self.body_types[0]}).")
        try:
            return json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            raise BadRequest(f"The body is not valid JSON: {error}.") from None

    def _to_response(self, result: Any, request_id: str) -> Response:
        if isinstance(result, Response):
            result.headers["X-Request-Id"] = request_id
            return result
        status, headers = 200, None
        if isinstance(result, tuple):
            status, result, *more = result
            headers = more[0] if more else None
        return self.respond(status, result, request_id, headers)

    def _error(self, exc: Exception, request: Request, request_id: str) -> Response:
        if isinstance(exc, DomainError):
            return error_response(exc, request_id)
        if isinstance(exc, RequestEntityTooLarge):
            return error_response(TooLarge(f"The request body is larger than {MAX_BODY_BYTES // 1024} KiB."),
                                  request_id)
        unavailable = dependency_failure(exc)
        if unavailable is not None:
            log.warning("dependency failed behind %s %s: %s", request.method, self.url, type(exc).__name__)
            return error_response(unavailable, request_id)
        where = f"{request.method} {self.url}"
        if isinstance(exc, RemoteError):
            log.error("service error behind %s: %s", where, exc.exc_type)
        else:
            log.exception("gateway error in %s", where)
        body = error_body("internal", "Something went wrong on our side; it has been logged. Quote the request "
                          "id to support.", request_id)
        return json_response(500, body, request_id)


route = Route.decorator


def run_worker(entrypoint: HttpRequestHandler, request: Request, principal: Principal | None) -> Any:
    """Run the entrypoint's service method in a worker whose context carries the request id and the
    caller's identity (so every service called sees it); its result, or its exception raised."""
    context = {"request_id": request.request_id}
    if principal is not None:
        context["caller"] = principal.context
    event = Event()
    entrypoint.container.spawn_worker(entrypoint, (request,), request.path_values, context_data=context,
                                      handle_result=partial(entrypoint.handle_result, event))
    return event.wait()


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
    """The ``Idempotency-Key`` to pass to a service's ``@idempotent`` RPC, namespaced by the caller's
    credential (two clients' keys never collide in a service); None when the request has none."""
    key = request.headers.get(IDEMPOTENCY_HEADER)
    if not key or not key.strip():
        return None
    key = check_key(key)
    principal = getattr(request, "principal", None)
    return service_key(principal.credential, key) if principal is not None else key


def caller(request: Request) -> Identity | None:
    """The authenticated identity of the request (None on public routes)."""
    return getattr(request, "identity", None)


__all__ = ["MAX_BODY_BYTES", "RateLimited", "Route", "caller", "idempotency_key", "query_args", "route"]

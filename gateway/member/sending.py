"""A member's sign-in code leaves after the answer, so that asking for a code takes as long for a member's phone
as for anyone else's: the sign-in page must not tell who is a member by how long it takes to answer.

``CodeSender`` (a dependency of the member pages) keeps a pool of green threads beside the requests. The page
hands it the code with ``after(response, notifications, code)``; once the answer's body has been written
(werkzeug's ``call_on_close``, which eventlet's server calls after the last byte, or when the client went away)
a thread of the pool calls ``notifications.send_sign_in_code`` and waits for it there, with the page's own
deadline (``RPC_TIMEOUT``). A failure is logged by its kind and the service's message, never with the phone or
the code, and counted; the member asks again, as before. Stopping the gateway waits for the sends under way
(at most the deadline and a second); a full pool (``PENDING_SENDS`` sends waiting on a slow notifications
service) drops the code, counted and logged, rather than keep an answer waiting for a slot.
"""

from __future__ import annotations

import logging
import re
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Response

from services.kit.errors import DomainError
from services.kit.telemetry import counter

log = logging.getLogger(__name__)

PENDING_SENDS = 100
"""Sign-in codes on their way at once; one more is dropped (the rate limits keep far below this normally)."""

NUMBER = re.compile(r"\+?\d[\d\s().-]{5,}\d")
"""A phone number in a provider's error text, however written: logged as ``[number]``."""

CODES = counter("careloop_gateway_sign_in_codes_total", "Members' sign-in codes sent after the answer, by outcome",
                ("outcome",))


class Sender:
    """What a page sees: ``after(response, notifications, code)``."""

    def __init__(self, pool: eventlet.GreenPool) -> None:
        self._pool = pool

    def after(self, response: Response, notifications: Any, code: dict[str, Any]) -> None:
        """Send ``code`` (``send_sign_in_code``'s request) through ``notifications`` once ``response`` is out."""
        response.call_on_close(lambda: self._start(notifications, code))

    def _start(self, notifications: Any, code: dict[str, Any]) -> None:
        if self._pool.free() == 0:
            CODES.labels("dropped").inc()
            log.warning("sign-in code not sent: %d codes already on their way", PENDING_SENDS)
            return
        self._pool.spawn_n(_send, notifications, code)


def _send(notifications: Any, code: dict[str, Any]) -> None:
    try:
        notifications.send_sign_in_code(code)
    except DomainError as failure:  # the member asks again; the provider's reason is kept, any number in it not
        CODES.labels("failed").inc()
        log.warning("sign-in code not sent: %s (%s)", NUMBER.sub("[number]", str(failure)), failure.code)
        return
    except Exception as failure:  # a thread of its own: nobody else would hear of it
        CODES.labels("failed").inc()
        log.error("sign-in code not sent: %s", type(failure).__name__)
        return
    CODES.labels("sent").inc()


class CodeSender(DependencyProvider):
    """The pool of sends under way, drained when the gateway stops."""

    def setup(self) -> None:
        self.grace = float(self.container.config.get("RPC_TIMEOUT", 10.0)) + 1.0
        self.pool = eventlet.GreenPool(PENDING_SENDS)

    def stop(self) -> None:
        with eventlet.Timeout(self.grace, False):
            self.pool.waitall()

    def kill(self) -> None:
        for thread in list(self.pool.coroutines_running):
            thread.kill()

    def get_dependency(self, worker_ctx: Any) -> Sender:
        return Sender(self.pool)

"""Notifications under test: the real service and members on the run's broker, both databases, and the
provider imitations (SMS, LINE, WeChat over HTTP; a real SMTP server) in a process of their own."""

from __future__ import annotations

import sys
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import text

from services.kit.clock import isoformat
from services.kit.contracts import Event
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from tests.harness import service_config, store_for, wait_for
from tests.providers import Providers

OCCURRED_AT = datetime(2026, 11, 23, 8, tzinfo=UTC)


def announce(contract: type[Event], occurred_at: datetime = OCCURRED_AT, **changes: Any) -> dict[str, Any]:
    """``contract``'s event as its producer sends it: the declared sample with ``changes`` (domain values),
    checked by the producer's own contract (a test cannot send what no producer sends), in its envelope."""
    producer = sys.modules[contract.__module__].EVENTS
    body = producer.wire(contract.event_type, {**contract.sample, **changes})
    return {"event_id": str(uuid.uuid4()), "occurred_at": isoformat(occurred_at), **body}


@pytest.fixture(scope="session")
def providers() -> Iterator[Providers]:
    started = Providers()
    yield started
    started.stop()


@pytest.fixture
def imitations(providers: Providers) -> Providers:
    providers.reset()
    return providers


def notification_settings(imitations: Providers, channels: tuple[str, ...] = ("sms", "email", "line", "wechat"),
                          **overrides: Any) -> dict[str, Any]:
    """``NOTIFICATIONS`` for a test: the scheduler's timers off (tests drive it with ``now``), quick retries."""
    return {"NOTIFICATIONS": {"scheduler": False, "retry_base_seconds": 60, "retry_max_seconds": 600,
                              "channels": imitations.channels(*channels), **overrides}}


@pytest.fixture
def suite(start_service: Callable[..., Any], imitations: Providers, backend: str, rpc: Callable[..., Any],
          amqp_uri: str) -> Callable[..., Any]:
    """``suite(**settings)`` starts members and notifications on ``backend``; returns a ``Suite``."""

    def start(channels: tuple[str, ...] = ("sms", "email", "line", "wechat"), **settings: Any) -> Suite:
        members = start_service(MembersService, backend)
        notifications = start_service(NotificationsService, backend,
                                      **notification_settings(imitations, channels, **settings))
        return Suite(rpc(), imitations, members, notifications, amqp_uri)

    return start


class Suite:
    def __init__(self, proxy: Any, providers: Providers, members: Any, notifications: Any, amqp_uri: str) -> None:
        self.rpc = proxy
        self.providers = providers
        self.members = members
        self.notifications = notifications
        self._dispatch = event_dispatcher(service_config(amqp_uri))

    def publish(self, contract: type[Event], body: dict[str, Any]) -> None:
        """Publish ``body`` (``announce(contract, ...)``) as ``contract``'s producer does."""
        self._dispatch(contract.producer, contract.event_type, body)

    def enrol(self, keep_welcome: bool = False, **member: Any) -> dict[str, Any]:
        """Enrol through members; its welcome message is cancelled unless the test is about it."""
        enrolled = self.rpc.members.enrol(member)
        welcome = wait_for(lambda: self.deliveries(enrolled["id"], "welcome"), message="welcome queued")
        if not keep_welcome:
            self.rpc.notifications.cancel(welcome[0]["id"], {"reason": "not what this test is about"})
        return enrolled

    def deliveries(self, member_id: str, journey: str | None = None) -> list[dict[str, Any]]:
        return self.rpc.notifications.deliveries(member_id, limit=100, journey=journey)["items"]

    def handled(self, handler: str) -> int:
        """How many events ``handler`` has applied (its inbox rows): to wait for them before looking."""
        store = store_for(self.notifications.database_url)
        try:
            with store.transaction() as connection:  # through the process's SQLite gate, as the service
                return connection.execute(text("SELECT count(*) FROM kit_inbox WHERE consumer = :c"),
                                          {"c": f"notifications.{handler}"}).scalar_one()
        finally:
            store.dispose()

    def dispatch(self, now: str) -> dict[str, int]:
        return self.rpc.notifications.dispatch_due(now=now)

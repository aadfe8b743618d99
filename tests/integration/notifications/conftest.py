"""Notifications under test: the real service and members on the run's broker, both databases, and the
provider imitations (SMS, LINE, WeChat over HTTP; a real SMTP server) in a process of their own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest
from nameko.standalone.events import event_dispatcher
from sqlalchemy import text

from services.members.service import MembersService
from services.notifications.service import NotificationsService
from tests.harness import service_config, store_for, wait_for
from tests.providers import Providers


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

    def publish(self, source: str, event_type: str, payload: dict[str, Any]) -> None:
        self._dispatch(source, event_type, payload)

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

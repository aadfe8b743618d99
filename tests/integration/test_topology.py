"""Event queues declared up front keep events published before a consumer's first start."""

import uuid
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ClusterRpcProxy

from services.kit import Database, Service, event_handler
from services.kit.topology import declare, handler_queues
from services.members.service import MembersService
from services.notifications.service import NotificationsService
from tests.harness import service_config, wait_for


def test_handler_queue_names_are_nameko_s():
    queues = handler_queues(NotificationsService)
    assert ("members", "member_enrolled", "evt-members-member_enrolled--notifications.on_member_enrolled",
            False) in queues
    assert all(name.startswith(f"evt-{source}-{event}--notifications.on_") for source, event, name, _ in queues)


def test_an_event_published_before_its_consumer_ever_started_is_kept(start_service, amqp_uri, backend):
    declare(amqp_uri, [NotificationsService], retry_delays=[0.05, 0.1, 0.2])
    start_service(MembersService, backend)
    with ClusterRpcProxy(service_config(amqp_uri)) as proxy:
        member = proxy.members.enrol({"full_name": "Early Bird", "phone": "13700137000",
                                      "birth_date": "2000-01-01", "home_branch": "SH02"})
        start_service(NotificationsService, backend)  # starts only now
        # the welcome needs notifications' start, the kept event, the welcome run and its first step: bounded
        # generously (10 s timed out once under a loaded machine; the end waited for is the same)
        wait_for(lambda: proxy.notifications.deliveries(member["id"])["items"], timeout=30, message="welcome delivery")


class _SlowToStart(DependencyProvider):
    """A provider whose ``start`` yields (as a seed's database round trips do) before what handlers read is ready."""

    def setup(self) -> None:
        self.ready = False

    def start(self) -> None:
        eventlet.sleep(0.3)
        self.ready = True

    def get_dependency(self, worker_ctx: Any) -> "_SlowToStart":
        return self


HANDLED: list[tuple[str, bool]] = []
"""(event id, whether the provider had started) as each kept event reached the handler."""


class ReadsWhatStartPrepares(Service):
    name = "topology_starts_first"
    db = Database()
    prepared = _SlowToStart()

    @event_handler("members", "member_enrolled")
    def on_enrolled(self, event: dict) -> None:
        HANDLED.append((event["event_id"], self.prepared.ready))


def test_kept_events_reach_handlers_only_after_every_provider_started(start_service, amqp_uri, databases, backend):
    """nameko starts every extension at once; the kit's container starts the providers first (``kit.container``),
    so a kept event never meets a provider half started: without it the handler ran during the provider's sleep."""
    declare(amqp_uri, [ReadsWhatStartPrepares], retry_delays=[0.05, 0.1, 0.2])
    event_ids = [str(uuid.uuid4()) for _ in range(3)]
    dispatch = event_dispatcher(service_config(amqp_uri))
    for event_id in event_ids:
        dispatch("members", "member_enrolled", {"event_id": event_id, "member_id": str(uuid.uuid4())})
    start_service(ReadsWhatStartPrepares, database_url=databases.fresh(backend, "notifications"))  # its inbox
    wait_for(lambda: {event_id for event_id, _ready in HANDLED} >= set(event_ids), timeout=10,
             message="the kept events handled")
    assert [ready for event_id, ready in HANDLED if event_id in event_ids] == [True, True, True]

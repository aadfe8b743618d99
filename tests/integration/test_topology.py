"""Event queues declared up front keep events published before a consumer's first start."""

from nameko.standalone.rpc import ClusterRpcProxy

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

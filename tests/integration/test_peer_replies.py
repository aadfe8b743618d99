"""A reply that never comes is not waited for forever (kit.replies.DirectReplies).

nameko's reply listener keeps an event per RPC call until the reply arrives. A call whose request was never
delivered (an unknown service), or whose request expired unread in the queue of a stopped service (a
deadline), has no reply coming: its event used to stay for the life of the process — in the gateway, one per
timed-out call, the whole soak long. Now the listener holds an event only while its caller waits.
"""

from __future__ import annotations

import gc

import pytest

from services.kit import Service, rpc
from services.kit.errors import Unavailable
from services.kit.peers import Peer

CALLS = 20


class Stopped(Service):
    """Started once so that its request queue exists, then stopped: requests to it wait there, unread."""

    name = "peer_stopped"

    @rpc
    def anything(self) -> str:
        return "never: this service is stopped before it is asked"


class Asker(Service):
    name = "peer_asker"
    stopped = Peer("peer_stopped")
    nobody = Peer("peer_nobody_at_all")

    # each answers what its caller met rather than raising it: a worker's error is logged with its traceback,
    # which pytest's log capture would keep (and with it every frame of the call, the reply it waited on too)
    @rpc
    def ask_stopped(self) -> str:
        return self._outcome(self.stopped.anything)

    @rpc
    def ask_nobody(self) -> str:
        return self._outcome(self.nobody.anything)

    @staticmethod
    def _outcome(call) -> str:
        try:
            return call()
        except Unavailable:
            return "unavailable"


def waited_for(container) -> int:
    peer = next(extension for extension in container.dependencies if isinstance(extension, Peer))
    gc.collect()  # what only a reference cycle still holds is gone, as it would be at the process's next collection
    return len(peer.replies._waiting)


@pytest.mark.parametrize("method", ["ask_stopped", "ask_nobody"])
def test_calls_that_get_no_reply_leave_nothing_waiting(start_service, rpc, method):
    start_service(Stopped, database_url="sqlite://").stop()
    asker = start_service(Asker, database_url="sqlite://", PEER_TIMEOUT=0.3)
    proxy = rpc()
    calls = [getattr(proxy.peer_asker, method).call_async() for _ in range(CALLS)]
    assert [call.result() for call in calls] == ["unavailable"] * CALLS
    assert waited_for(asker) == 0

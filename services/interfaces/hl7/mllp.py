"""The MLLP listener: HL7 v2 over TCP, framed ``<VT> message <FS><CR>``, run inside the interfaces process.

``@mllp`` marks the service method that takes one message's bytes and answers its ACK text and the codec to
send it in. The entrypoint
is an eventlet server started and stopped with the service's container, so it needs no process, port
supervision or deployment of its own, and each message is an ordinary worker: the kit's database commits
before the ACK is written to the socket (an ACK always follows a durable log row), metrics and logs count it
like any entrypoint. A connection carries any number of messages, one at a time, each answered before the
next is read (MLLP's original mode). Scaled out, every replica listens; a TCP load balancer in front spreads
connections (deploy/).

Framing is python-hl7's (``hl7.mllp``: start block, end block, carriage return); the asyncio server of
python-hl7 is not used because the service runs on eventlet.
"""

from __future__ import annotations

import logging
import socket
from typing import Any

import eventlet
from eventlet.event import Event
from hl7.mllp.streams import CARRIAGE_RETURN, END_BLOCK, START_BLOCK
from nameko.extensions import Entrypoint

from services.interfaces.settings import setting

log = logging.getLogger(__name__)

FRAME_END = END_BLOCK + CARRIAGE_RETURN


def frame(payload: bytes) -> bytes:
    return START_BLOCK + payload + FRAME_END


class FrameTooLarge(Exception):
    pass


def frames(connection: socket.socket, max_bytes: int, idle_seconds: float) -> Any:
    """Yield each framed message's bytes as it completes; stop when the peer closes or stays silent.
    Bytes before a start block are dropped (line noise); a frame longer than ``max_bytes`` ends the connection."""
    buffer = b""
    while True:
        end = buffer.find(FRAME_END)
        if end >= 0:
            start = buffer.find(START_BLOCK)
            if 0 <= start < end:
                yield buffer[start + 1:end]
            buffer = buffer[end + len(FRAME_END):]
            continue
        if len(buffer) > max_bytes:
            raise FrameTooLarge
        try:
            with eventlet.Timeout(idle_seconds):
                chunk = connection.recv(65536)
        except (eventlet.Timeout, OSError):
            return
        if not chunk:
            return
        buffer += chunk


class MllpServer(Entrypoint):
    """Listens on ``HL7_MLLP_HOST``:``HL7_MLLP_PORT`` (port 0: any free port, read back from ``port``)."""

    def setup(self) -> None:
        config = self.container.config
        self.host = str(setting(config, "HL7_MLLP_HOST"))
        self.port = int(setting(config, "HL7_MLLP_PORT"))
        self.max_bytes = int(setting(config, "HL7_MLLP_MAX_BYTES"))
        self.idle_seconds = float(setting(config, "HL7_MLLP_IDLE_SECONDS"))
        self.listener: socket.socket | None = None
        self.connections: set[socket.socket] = set()

    def start(self) -> None:
        self.listener = eventlet.listen((self.host, self.port))
        self.port = self.listener.getsockname()[1]
        self.container.spawn_managed_thread(self._accept, identifier="mllp.accept")
        log.info("MLLP listening", extra={"port": self.port})

    def stop(self) -> None:
        if self.listener is not None:
            self.listener.close()
            self.listener = None
        for connection in list(self.connections):
            _close(connection)

    def kill(self) -> None:
        self.stop()

    def _accept(self) -> None:
        while self.listener is not None:
            try:
                connection, _address = self.listener.accept()
            except OSError:
                return
            self.connections.add(connection)
            self.container.spawn_managed_thread(lambda c=connection: self._serve(c), identifier="mllp.connection")

    def _serve(self, connection: socket.socket) -> None:
        try:
            for message in frames(connection, self.max_bytes, self.idle_seconds):
                connection.sendall(frame(self._answer(message)))
        except FrameTooLarge:
            log.warning("MLLP frame longer than HL7_MLLP_MAX_BYTES; connection closed")
        except OSError:
            pass  # the peer went away; an unanswered message is sent again by its sender
        finally:
            self.connections.discard(connection)
            _close(connection)

    def _answer(self, message: bytes) -> bytes:
        done = Event()

        def handle_result(worker_ctx: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
            done.send((result, exc_info))
            return result, exc_info

        try:
            self.container.spawn_worker(self, (message,), {}, context_data={}, handle_result=handle_result)
            result, exc_info = done.wait()
        except Exception:  # the container is stopping: nothing was done, the sender sends it again
            result, exc_info = None, True
        if exc_info is not None:
            result = self.container.service_cls.hl7_unavailable(message)
        ack, codec = result
        return ack.encode(codec, "replace")


def _close(connection: socket.socket) -> None:
    try:
        connection.close()
    except OSError:
        pass


mllp = MllpServer.decorator

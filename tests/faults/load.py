"""A steady mixed load through the gateway's HTTP API, as the desk (API key) and the HIS (signed webhooks) send it.

``Load(stack).start(rate=8)`` starts ~``rate`` operations a second until ``stop()``: enrolments, paid bills
(signed webhooks), full refunds sent right after the bill's answer or at the same moment as the bill,
redemptions, stored-value top-ups and payments, bookings and their cancellation. Every operation has an
idempotency key and is recorded (``Op``): acknowledged (2xx) or not, its status, latency, how many 5xx it
met. A 503, a 409 with ``Retry-After`` (the key's first request still running, or lost with a gateway that
died) or a refused connection is retried with the same key after ``Retry-After``, as a client would, for up
to ``GIVE_UP`` seconds; a refund whose bill is not there yet (404) is retried the same way.
"""

from __future__ import annotations

import itertools
import json
import random
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import requests
from requests.adapters import HTTPAdapter

from gateway.auth import webhooks

GIVE_UP = 75.0
RUN = uuid.uuid4().hex[:6]


@dataclass
class Op:
    kind: str
    key: str
    started: float  # time.time()
    data: dict[str, Any] = field(default_factory=dict)
    status: int = 0  # the last answer (0: no answer at all)
    acked: bool = False
    latency: float = 0.0  # seconds, retries included
    attempts: int = 0
    fives: int = 0  # 5xx answers met (503s retried)


class Load:
    """Mixed operations at a steady rate in green threads; ``ops`` keeps every one."""

    def __init__(self, stack: Any, seed: int = 15) -> None:
        self.stack = stack
        self.ops: list[Op] = []
        self.members: list[str] = []
        self.bills: list[str] = []  # acknowledged bills' member ids (they have points to redeem)
        self.random = random.Random(seed)
        self.counter = itertools.count(1)
        self.http = requests.Session()
        self.http.mount("http://", HTTPAdapter(pool_connections=4, pool_maxsize=512))
        self._running = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self.reward_id = ""
        zone = ZoneInfo("Asia/Shanghai")
        self.tomorrow = (datetime.now(UTC).astimezone(zone).date() + timedelta(days=1)).isoformat()

    # -- running ----------------------------------------------------------------------------------

    def prepare(self) -> None:
        """A reward to redeem and a few members to start with."""
        if not self.reward_id:
            op = self._send("reward", "POST", "/v1/rewards", {
                "code": f"F{RUN}".upper(), "name": "Toothbrush", "kind": "product", "points_price": 10,
                "stock": 1_000_000})
            assert op.acked, op
            self.reward_id = op.data["answer"]["id"]
        while len(self.members) < 5:
            self.enrol()

    def start(self, rate: float = 8.0) -> None:
        self._running.set()
        pacer = threading.Thread(target=self._pace, args=(rate,), daemon=True)
        pacer.start()
        self._threads.append(pacer)

    def stop(self, timeout: float = GIVE_UP + 20) -> None:
        """Stop starting operations and wait for those under way (each gives up after ``GIVE_UP``)."""
        self._running.clear()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(timeout=max(deadline - time.monotonic(), 0.1))
        self._threads = [thread for thread in self._threads if thread.is_alive()]

    def _pace(self, rate: float) -> None:
        menu = [(self.enrol, 1), (self.bill, 3), (self.redeem, 1), (self.top_up, 1), (self.pay, 1), (self.book, 1)]
        actions = [action for action, weight in menu for _ in range(weight)]
        next_at = time.monotonic()
        while self._running.is_set():
            action = self.random.choice(actions)
            thread = threading.Thread(target=self._safely, args=(action,), daemon=True)
            thread.start()
            self._threads.append(thread)
            self._threads = [each for each in self._threads if each.is_alive() or each is thread]
            next_at += 1.0 / rate
            time.sleep(max(next_at - time.monotonic(), 0))

    @staticmethod
    def _safely(action: Any) -> None:
        try:
            action()
        except Exception as error:  # noqa: BLE001 - one op's surprise must not stop the load; it is recorded
            print(f"load: {action.__name__} failed in the client: {error!r}", flush=True)

    # -- sending ----------------------------------------------------------------------------------

    def _url(self) -> str:
        urls = self.stack.gateway_urls
        return urls[next(self.counter) % len(urls)]

    def _send(self, kind: str, method: str, path: str, body: Any = None, key: str | None = None,
              signed: bool = False, retry_404: bool = False, data: dict[str, Any] | None = None) -> Op:
        op = Op(kind, key or f"{kind}-{RUN}-{next(self.counter)}", time.time(), dict(data or {}))
        with self._lock:
            self.ops.append(op)
        started = time.monotonic()
        raw = json.dumps(body).encode() if body is not None else b""
        while True:
            op.attempts += 1
            headers = {"Content-Type": "application/json", "Idempotency-Key": op.key}
            if signed:
                slug, secret = self.stack.integration
                headers.update(webhooks.signed_headers(slug, secret, raw))
            else:
                headers["Authorization"] = f"Bearer {self.stack.api_key}"
            wait = 1.0
            try:
                response = self.http.request(method, self._url() + path, data=raw or None, headers=headers,
                                             timeout=20)
                op.status = response.status_code
                if response.status_code >= 500:
                    op.fives += 1
                if 200 <= response.status_code < 300:
                    op.acked = True
                    op.data["answer"] = response.json() if response.content else {}
                    break
                # 503: a dependency is away; 409 with Retry-After: this key's first request is still running
                # (or died with its gateway: after the gateway's stale time, 50 s, a retry takes it over)
                retry = response.status_code == 503 or (retry_404 and response.status_code == 404) or (
                    response.status_code == 409 and "Retry-After" in response.headers)
                if not retry:
                    op.data["answer"] = response.text[:300]
                    break
                wait = float(response.headers.get("Retry-After", "1") or 1)
            except requests.RequestException as error:  # the gateway is away: try again, as a client would
                op.status = 0
                op.data["answer"] = repr(error)[:300]
            if time.monotonic() - started + wait > GIVE_UP:
                break
            # a webhook signature is good once: a retry in the same second would be a replay, so wait >= 1 s
            time.sleep(min(max(wait, 1.0), 5.0))
        op.latency = time.monotonic() - started
        return op

    # -- the operations -----------------------------------------------------------------------------

    def enrol(self) -> None:
        number = next(self.counter)
        op = self._send("enrol", "POST", "/v1/members", {
            "full_name": f"Fault Load {RUN} {number}", "phone": f"139{number % 100_000_000:08d}",
            "birth_date": f"19{50 + number % 50}-0{1 + number % 9}-1{number % 9}", "home_branch": "SH01",
            "consents": {"sms": True}})
        if op.acked:
            op.data["member_id"] = op.data["answer"]["id"]
            self.members.append(op.data["member_id"])

    def _member(self, paid: bool = False) -> str | None:
        pool = self.bills if paid and self.bills else self.members
        return self.random.choice(pool) if pool else None

    def bill(self) -> None:
        member = self._member()
        if member is None:
            return
        bill_id = f"HIS-{RUN}-{next(self.counter)}"
        amount = self.random.randrange(50_00, 2_000_00, 100)
        payments = [{"method": "card", "amount_minor": amount}]
        body = {"bill_id": bill_id, "member_id": member, "branch": "SH01", "currency": "CNY",
                "items": [{"category": "cleaning", "code": "C1", "amount_minor": amount}], "payments": payments}
        refund = {"refund_id": f"R-{bill_id}", "bill_id": bill_id, "payments": payments}
        choice = self.random.random()
        if choice < 0.2:  # the refund at the same moment as the bill (it may find no bill yet: retried)
            racer = threading.Thread(target=self._refund, args=(refund, member), daemon=True)
            racer.start()
            op = self._send("bill", "POST", "/v1/webhooks/bills", body, key=bill_id, signed=True,
                            data={"bill_id": bill_id, "member_id": member})
            racer.join()
        else:
            op = self._send("bill", "POST", "/v1/webhooks/bills", body, key=bill_id, signed=True,
                            data={"bill_id": bill_id, "member_id": member})
            if op.acked and choice < 0.5:  # refunded right after (its events may meet the bill's)
                self._refund(refund, member)
        if op.acked:
            self.bills.append(member)

    def _refund(self, refund: dict[str, Any], member: str) -> None:
        self._send("refund", "POST", "/v1/webhooks/refunds", refund, key=refund["refund_id"], signed=True,
                   retry_404=True, data={"bill_id": refund["bill_id"], "member_id": member})

    def redeem(self) -> None:
        member = self._member(paid=True)
        if member is None or not self.reward_id:
            return
        op = self._send("redeem", "POST", f"/v1/members/{member}/points/redemptions",
                        {"reward_id": self.reward_id, "branch": "SH01"}, data={"member_id": member})
        if op.acked:
            op.data["redemption_id"] = op.data["answer"]["id"]

    def top_up(self) -> None:
        member = self._member()
        if member is None:
            return
        op = self._send("top_up", "POST", f"/v1/members/{member}/wallet/top-ups",
                        {"amount": {"amount": 100_00, "currency": "CNY"}, "branch": "SH01"},
                        data={"member_id": member})
        if op.acked:
            op.data["posting_id"] = op.data["answer"]["id"]

    def pay(self) -> None:
        member = self._member()
        if member is None:
            return
        bill_id = f"W-{RUN}-{next(self.counter)}"
        self._send("pay", "POST", f"/v1/members/{member}/wallet/payments",
                   {"bill_id": bill_id, "amount": {"amount": 30_00, "currency": "CNY"}, "branch": "SH01"},
                   data={"member_id": member, "bill_id": bill_id})

    def book(self) -> None:
        member = self._member()
        if member is None:
            return
        doctor = f"dr-{RUN}-{next(self.counter)}"
        published = self._send("slots", "POST", "/v1/appointments/slots", {
            "branch": "SH01", "doctor_id": doctor, "on": self.tomorrow, "start": "09:00", "end": "09:30",
            "slot_minutes": 30})
        if not published.acked:
            return
        slot = published.data["answer"]["items"][0]["id"]
        booked = self._send("book", "POST", "/v1/appointments", {"member_id": member, "slot_id": slot},
                            data={"member_id": member, "slot_id": slot})
        if not booked.acked:
            return
        appointment = booked.data["answer"]["id"]
        booked.data["appointment_id"] = appointment
        self._send("cancel", "POST", f"/v1/appointments/{appointment}/cancel", {"reason": "fault load"},
                   data={"appointment_id": appointment})

    # -- figures ----------------------------------------------------------------------------------

    def since(self, started: float) -> list[Op]:
        with self._lock:
            return [op for op in self.ops if op.started >= started]


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return 0.0
    ordered = sorted(values)
    return ordered[min(int(fraction * len(ordered)), len(ordered) - 1)]

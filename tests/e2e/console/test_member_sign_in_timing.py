"""Asking for a sign-in code takes as long for a member's phone as for a phone that is no member's (issue 21): the
code is sent after the answer (``gateway/member/sending.py``), so the answer's time does not tell who is a member.

The real suite and notifications, the SMS adapter pointed at the provider imitation's local server, which answers
in ``PROVIDER_SECONDS`` (quicker than real SMS providers). Requests alternate between the two phones (in a
random order within each pair, so that neither always follows the other), and each member's request is followed
by waiting for its SMS to reach the provider: every code is delivered, and no send is still under way while the
next answer is timed. When the gateway waited for the SMS inside the request, the member's median was
``PROVIDER_SECONDS`` and more above the other's.
"""

from __future__ import annotations

import os
import random
import re
import statistics
import time

import pytest
import requests

from tests.e2e.console.test_console import enrol
from tests.harness import wait_for
from tests.integration.notifications import conftest as notification_fixtures

providers = notification_fixtures.providers  # the provider imitations' process (session fixture)
pytestmark = pytest.mark.timeout(300)

PAIRS = 40
PROVIDER_SECONDS = 0.05
BOUND_MS = 15.0
"""The medians may differ by less than this: a third of the provider's time, far above the noise of 40 answers."""


def ask_for_code(http: requests.Session, base_url: str, phone: str) -> float:
    """Milliseconds to answer a sign-in form for ``phone`` (the redirect to the code's page)."""
    page = http.get(base_url + "/m/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    started = time.perf_counter()
    answer = http.post(base_url + "/m/sign-in", data={"csrf_token": csrf, "phone": phone}, allow_redirects=False,
                       timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 303 and "/m/code?c=" in answer.headers["Location"], answer.text
    return elapsed


def test_a_member_s_phone_is_answered_as_quickly_as_anyone_s(start_suite, providers):
    providers.reset()
    suite = start_suite(notifications_config={"NOTIFICATIONS": {"channels": providers.channels("sms")}},
                        MEMBER_CODES_PER_PHONE=10 * PAIRS, MEMBER_CODES_PER_ADDRESS=30 * PAIRS)
    enrol(suite, "Lin Qiao", "13877770001")
    member, stranger = "+8613877770001", "+8613900009999"
    providers.slow_down(PROVIDER_SECONDS)
    try:
        medians, texts = measure(suite, providers, member, stranger)
    finally:
        providers.slow_down(0)
    members_ms, strangers_ms = medians
    print(f"\nsign-in answer, median of {PAIRS}: member's phone {members_ms:.1f} ms, another phone {strangers_ms:.1f} ms"
          f" (SMS provider answering in {PROVIDER_SECONDS * 1000:.0f} ms; load average {os.getloadavg()[0]:.1f})")
    assert abs(members_ms - strangers_ms) < BOUND_MS
    assert texts == (PAIRS + 1, 0)  # every code asked for was delivered, and only to the member


def measure(suite, providers, member: str, stranger: str) -> tuple[tuple[float, float], tuple[int, int]]:
    """The median answer for each phone over ``PAIRS`` pairs, and the SMS each phone got."""
    def texts_to(phone: str) -> int:
        return sum(1 for r in providers.accepted("sms") if r["body"]["To"] == phone)

    http = requests.Session()
    ask_for_code(http, suite.base_url, stranger)  # warm both paths once, untimed
    ask_for_code(http, suite.base_url, member)
    wait_for(lambda: texts_to(member) == 1, timeout=20, message="the warm-up code's SMS")
    timings: dict[str, list[float]] = {member: [], stranger: []}
    rng = random.Random(21)
    for pair in range(PAIRS):
        for phone in rng.sample([member, stranger], 2):
            timings[phone].append(ask_for_code(http, suite.base_url, phone))
            if phone == member:
                wait_for(lambda n=pair + 2: texts_to(member) == n, timeout=20,
                         message=f"code {pair + 2}'s SMS")
    return ((statistics.median(timings[member]), statistics.median(timings[stranger])),
            (texts_to(member), texts_to(stranger)))

"""Asking for a sign-in code takes as long for a member's phone as for a phone that is no member's (issue 21): the
code is sent after the answer (``gateway/member/sending.py``), so the answer's time does not tell who is a member.

The real suite and notifications, the SMS adapter pointed at the provider imitation's local server, which answers
in ``PROVIDER_SECONDS`` (quicker than real SMS providers). The client is a process of its own (``CLIENT``), as a
visitor's browser is: in the suite's process a green client would count the suite's other green threads as its
own wait. Its requests alternate between the two phones (in a random order within each pair, so that neither
always follows the other), and each member's request is followed by waiting for its SMS to reach the provider:
every code is delivered, and no send is still under way while the next answer is timed. When the gateway waited
for the SMS inside the request, the member's median was the provider's time and more above the other's
(108 ms apart, 50 ms provider, load average 17; 8 ms apart after, load average 15).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import eventlet
import pytest

from tests.e2e.console.test_console import enrol
from tests.integration.notifications import conftest as notification_fixtures

providers = notification_fixtures.providers  # the provider imitations' process (session fixture)
pytestmark = pytest.mark.timeout(300)

PAIRS = 40
PROVIDER_SECONDS = 0.05
BOUND_MS = 25.0
"""The medians may differ by less than this: half the provider's time, well above the noise of 40 answers."""

CLIENT = r'''
import json, random, re, statistics, sys, time
import requests

base_url, provider_url, member, stranger = sys.argv[1:5]
pairs = int(sys.argv[5])
http = requests.Session()

def texts_to(phone):
    found = requests.get(provider_url + "/_imitation/requests", timeout=5).json()
    return sum(1 for r in found if r["api"] == "sms" and r["status"] in (200, 201) and r["body"].get("To") == phone)

def ask(phone):
    page = http.get(base_url + "/m/sign-in", timeout=30)
    csrf = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
    started = time.perf_counter()
    answer = http.post(base_url + "/m/sign-in", data={"csrf_token": csrf, "phone": phone}, allow_redirects=False,
                       timeout=30)
    elapsed = (time.perf_counter() - started) * 1000
    assert answer.status_code == 303 and "/m/code?c=" in answer.headers["Location"], answer.text
    return elapsed

def delivered(count):
    deadline = time.monotonic() + 20
    while texts_to(member) < count:
        assert time.monotonic() < deadline, f"code {count}'s SMS never reached the provider"
        time.sleep(0.02)

ask(stranger)  # both paths once, untimed
ask(member)
delivered(1)
timings = {member: [], stranger: []}
rng = random.Random(21)
for pair in range(pairs):
    for phone in rng.sample([member, stranger], 2):
        timings[phone].append(ask(phone))
        if phone == member:
            delivered(pair + 2)
print(json.dumps({"member_ms": statistics.median(timings[member]), "stranger_ms": statistics.median(timings[stranger]),
                  "texts": [texts_to(member), texts_to(stranger)]}))
'''


def test_a_member_s_phone_is_answered_as_quickly_as_anyone_s(start_suite, providers):
    providers.reset()
    suite = start_suite(notifications_config={"NOTIFICATIONS": {"channels": providers.channels("sms")}},
                        MEMBER_CODES_PER_PHONE=10 * PAIRS, MEMBER_CODES_PER_ADDRESS=30 * PAIRS)
    enrol(suite, "Lin Qiao", "13877770001")
    member, stranger = "+8613877770001", "+8613900009999"
    providers.slow_down(PROVIDER_SECONDS)
    try:
        client = subprocess.Popen([sys.executable, "-c", CLIENT, suite.base_url, providers.url, member, stranger,
                                   str(PAIRS)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        while client.poll() is None:  # the suite answers in this process: let it run while the client waits
            eventlet.sleep(0.05)
        out, err = client.communicate()
    finally:
        providers.slow_down(0)
    assert client.returncode == 0, err[-3000:]
    found = json.loads(out.strip().splitlines()[-1])
    print(f"\nsign-in answer, median of {PAIRS}: member's phone {found['member_ms']:.1f} ms, another phone "
          f"{found['stranger_ms']:.1f} ms (SMS provider answering in {PROVIDER_SECONDS * 1000:.0f} ms; "
          f"load average {os.getloadavg()[0]:.1f})")
    assert abs(found["member_ms"] - found["stranger_ms"]) < BOUND_MS
    assert found["texts"] == [PAIRS + 1, 0]  # every code asked for was delivered, and only to the member

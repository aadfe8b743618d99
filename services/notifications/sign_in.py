"""A member's one-time sign-in code by SMS: sent at once, to the number the member typed on the member page.

It is transactional and asked for by the member a moment ago, so nothing that holds back journeys holds it
back: not the marketing consent, the SMS consent, quiet hours, the weekly cap or "do not contact". The
gateway decides who gets a code (a member's phone, within its rate limits); this only renders the text in
the member's language (``templates/<language>/sign_in_code.j2``) and hands it to the SMS adapter. Nothing is
stored: the code lives hashed in the gateway, and the provider's answer is the only record.
"""

from __future__ import annotations

import uuid
from typing import Any

from services.kit.errors import Invalid, Unavailable
from services.kit.telemetry import counter
from services.notifications.channels import ChannelSet
from services.notifications.channels.base import Message, PermanentFailure, TransientFailure
from services.notifications.templates import SIGN_IN_CODE as JOURNEY
from services.notifications.templates import Renderer

CODES_SENT = counter("careloop_notifications_sign_in_codes_total", "Members' sign-in codes handed to the SMS provider",
                     ("outcome",))


def send(channels: ChannelSet, renderer: Renderer, data: dict[str, Any]) -> dict[str, Any]:
    """Send ``data`` (phone in E.164, code, language, minutes) now; ``Unavailable`` if the SMS provider is not
    set up or did not take it (the member asks again), ``Invalid`` if it refused the number."""
    if "sms" not in channels.available:
        CODES_SENT.labels("not_set_up").inc()
        raise Unavailable("SMS is not set up: no sign-in code can be sent.")
    rendered = renderer.render(JOURNEY, "sms", data["language"], {"code": data["code"], "minutes": data["minutes"]})
    message = Message(delivery_id=str(uuid.uuid4()), member_id="", journey=JOURNEY, to=data["phone"],
                      subject=rendered.subject, text=rendered.text, language=rendered.language)
    try:
        receipt = channels["sms"].send(message)
    except TransientFailure as failure:
        CODES_SENT.labels("transient").inc()
        raise Unavailable(f"The SMS provider did not take the code: {failure.reason}") from None
    except PermanentFailure as failure:
        CODES_SENT.labels("refused").inc()
        raise Invalid(f"The SMS provider refused the number: {failure.reason}", {"phone": ["Refused."]}) from None
    CODES_SENT.labels("sent").inc()
    return {"provider_id": receipt.provider_id, "language": rendered.language}

"""The channels a message can go out on, behind one interface (``base.Channel``).

``build_channels`` makes the adapter of every channel whose provider is configured under
``NOTIFICATIONS.channels`` (the inbox needs nothing but the database), so that the scheduler can ask
``available`` which channels it may choose from.
"""

from __future__ import annotations

import logging
from typing import Any

from services.notifications.channels.base import Channel
from services.notifications.channels.email import EmailChannel
from services.notifications.channels.http import ProviderHttp
from services.notifications.channels.inbox import InboxChannel
from services.notifications.channels.line import LineChannel
from services.notifications.channels.sms import SmsChannel
from services.notifications.channels.wechat import WeChatChannel
from services.notifications.settings import settings_from_config

log = logging.getLogger(__name__)

PROVIDERS: dict[str, Any] = {"email": EmailChannel, "sms": SmsChannel, "line": LineChannel,
                             "wechat": WeChatChannel}


class ChannelSet:
    """The configured channels of this process, by name."""

    def __init__(self, channels: dict[str, Channel]) -> None:
        self.channels = channels

    @property
    def available(self) -> frozenset[str]:
        return frozenset(self.channels)

    def __getitem__(self, name: str) -> Channel:
        return self.channels[name]

    def close(self) -> None:
        """Close kept-open provider connections (SMTP sessions, HTTP pools)."""
        for channel in self.channels.values():
            close = getattr(channel, "close", None)
            if close is not None:
                close()
        for http in {id(c.http): c.http for c in self.channels.values() if hasattr(c, "http")}.values():
            http.close()

    def idempotent(self, name: str | None) -> bool:
        return name is not None and name in self.channels and self.channels[name].idempotent


def build_channels(config: dict[str, Any], store: Any) -> ChannelSet:
    settings = settings_from_config(config)
    http = ProviderHttp(pool_size=max(settings.send_concurrency * 2, 10))
    channels: dict[str, Channel] = {"inbox": InboxChannel(store)}
    for name, adapter in PROVIDERS.items():
        provider_settings = settings.channels.get(name) or {}
        if not adapter.configured(provider_settings):
            continue
        channels[name] = adapter(provider_settings) if name == "email" else adapter(provider_settings, http=http)
    log.info("notification channels ready: %s", ", ".join(sorted(channels)))
    return ChannelSet(channels)


"""An HTTP session for provider APIs: pooled connections, timeouts, and network errors as transient."""

from __future__ import annotations

from typing import Any

import requests
from requests.adapters import HTTPAdapter

from services.notifications.channels.base import TransientFailure

DEFAULT_TIMEOUT = (5.0, 15.0)  # connect, read (seconds)


class ProviderHttp:
    def __init__(self, pool_size: int = 20, timeout: tuple[float, float] = DEFAULT_TIMEOUT) -> None:
        self.session = requests.Session()
        adapter = HTTPAdapter(pool_connections=4, pool_maxsize=pool_size, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self.timeout = timeout

    def request(self, method: str, url: str, **kwargs: Any) -> requests.Response:
        """The provider's answer, whatever its status; a network failure or timeout is a ``TransientFailure``."""
        kwargs.setdefault("timeout", self.timeout)
        try:
            return self.session.request(method, url, **kwargs)
        except requests.Timeout:
            raise TransientFailure("the provider did not answer in time") from None
        except requests.ConnectionError as error:
            raise TransientFailure(f"could not reach the provider ({type(error).__name__})") from None

    def close(self) -> None:
        self.session.close()


def error_text(response: requests.Response, *keys: str) -> str:
    """A short reason from a provider's JSON error body (first of ``keys`` found), else the status text."""
    try:
        body = response.json()
    except ValueError:
        return (response.reason or "error")[:200]
    if isinstance(body, dict):
        for key in keys:
            if body.get(key):
                return str(body[key])[:300]
    return (response.reason or "error")[:200]

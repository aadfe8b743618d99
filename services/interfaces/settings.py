"""The interfaces service's settings (nameko config keys), their defaults, and reading them.

Each part of the service (identity reviews, HL7, outbound webhooks, imports) adds its keys to ``SETTINGS``
with the default and a comment, and ``deploy/config.yml`` names the environment variable that sets it.
"""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, Any] = {
    "REVIEW_PAGE_MAX": 200,  # the most identity reviews one list call answers (a lower ``limit`` is kept)
}


def setting(config: dict[str, Any], key: str) -> Any:
    return config.get(key, SETTINGS[key])

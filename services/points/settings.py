"""The points programme in force: the group's programme file (``POINTS_PROGRAMME_FILE``, YAML) with the
service config's inline ``POINTS_PROGRAMME`` over it, parsed by ``rules.programme`` (which holds the defaults)
and read once per distinct pair."""

from __future__ import annotations

import functools
import json
from typing import Any

import yaml

from services.kit.config import resolve_path
from services.points.rules.programme import Programme, parse_programme


def programme_of(config: dict[str, Any]) -> Programme:
    """The programme a service config names."""
    return load_programme(config.get("POINTS_PROGRAMME_FILE"),
                          json.dumps(config.get("POINTS_PROGRAMME") or {}, sort_keys=True, default=str))


@functools.lru_cache(maxsize=8)
def load_programme(path: str | None, inline: str) -> Programme:
    """The file at ``path`` (if any) with ``inline`` (JSON) over it."""
    raw: dict[str, Any] = {}
    if path:
        with open(resolve_path(path), encoding="utf-8") as handle:
            raw.update(yaml.safe_load(handle) or {})
    raw.update(json.loads(inline))
    return parse_programme(raw)

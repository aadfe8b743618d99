"""Configuration: nameko's YAML with ``${VAR:default}`` substitution, and the group's settings.

A service reads its settings from the nameko config (``self.container.config``). Settings shared by
every service — the group's name, time zone, currency and branches — live in one group file named by
``GROUP_FILE`` in each service's config, so that all services agree on them.
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import yaml

from services.kit.errors import Invalid

REPO_ROOT = Path(__file__).resolve().parents[2]
LANGUAGES = ("en", "zh-Hans", "zh-Hant", "es")
"""The languages CareLoop speaks (messages, templates, a member's preference)."""
DEFAULT_GROUP_FILE = REPO_ROOT / "config" / "group.yml"


def resolve_path(setting: str | Path | None, default: Path | None = None) -> Path | None:
    """A file named in a service's config: relative to the repository root unless absolute; ``default``
    when the setting is empty."""
    if not setting:
        return default
    path = Path(setting)
    return path if path.is_absolute() else REPO_ROOT / path


def load_config(path: str | Path) -> dict[str, Any]:
    """Load a nameko YAML config file exactly as ``nameko run --config`` does (env vars substituted)."""
    from nameko.cli.main import setup_yaml_parser

    setup_yaml_parser()
    with open(path, encoding="utf-8") as handle:
        return yaml.safe_load(handle) or {}


E164 = re.compile(r"^\+[1-9]\d{6,14}$")
EMAIL = re.compile(r"^[^@\s<>,;]+@[^@\s<>,;]+\.[^@\s<>,;]+$")


@dataclass(frozen=True)
class BranchAlerts:
    """Staff to alert about a branch's negative feedback and complaints (the branch manager, the desk lead).

    Staff addresses, not members': e-mail addresses and E.164 mobile numbers. Empty: nobody is alerted,
    and notifications records each such alert as suppressed (``no_recipient``).
    """

    email: tuple[str, ...] = ()
    sms: tuple[str, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.email or self.sms)

    @classmethod
    def parse(cls, raw: Any, where: str) -> BranchAlerts:
        """Read a branch's ``alerts`` block; a misspelt address stops the start-up, naming the branch."""
        if raw is None:
            return cls()
        if not isinstance(raw, dict):
            raise ValueError(f"{where}: alerts must be a mapping like {{email: [...], sms: [...]}}")
        unknown = set(raw) - {"email", "sms"}
        if unknown:
            raise ValueError(f"{where}: alerts has unknown channels {sorted(unknown)} (email and sms are known)")
        lists = {}
        for channel, pattern, what in (("email", EMAIL, "an e-mail address"),
                                       ("sms", E164, "an E.164 mobile number like +8613800138000")):
            values = raw.get(channel) or []
            if isinstance(values, str):
                values = [values]
            for value in values:
                if not isinstance(value, str) or not pattern.match(value.strip()):
                    raise ValueError(f"{where}: alerts.{channel} entry {value!r} is not {what}")
            lists[channel] = tuple(dict.fromkeys(value.strip() for value in values))
        return cls(**lists)


@dataclass(frozen=True)
class Branch:
    code: str
    name: str
    address: str = ""
    phone: str = ""
    region: str = "CN"  # ISO 3166 region used to read local phone numbers entered at this branch
    alerts: BranchAlerts = field(default_factory=BranchAlerts)  # staff alerted about negative feedback


@dataclass(frozen=True)
class Group:
    """The hospital or dental group: one per deployment."""

    code: str
    name: str
    time_zone: str
    currency: str
    region: str
    card_prefix: str
    default_language: str = "zh-Hans"
    branches: dict[str, Branch] = field(default_factory=dict)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.time_zone)

    def branch(self, code: str) -> Branch:
        try:
            return self.branches[code]
        except KeyError:
            raise Invalid(f"Unknown branch {code!r}.", {"branch": [f"Unknown branch {code!r}."]}) from None

    def region_of(self, branch_code: str | None) -> str:
        if branch_code and branch_code in self.branches:
            return self.branches[branch_code].region
        return self.region


@functools.lru_cache(maxsize=8)
def _load_group(setting: str | Path) -> Group:
    """The group file named by ``setting`` (relative to the repository root unless absolute), read once per
    process: the setting as written is the cache key, so services may ask for the group on every call."""
    path = resolve_path(setting)
    with open(path, encoding="utf-8") as handle:
        raw = yaml.safe_load(handle)
    branches = {
        code: Branch(code=code, **{k: v for k, v in spec.items() if k not in ("code", "alerts")},
                     alerts=BranchAlerts.parse(spec.get("alerts"), f"{path}: branch {code}"))
        for code, spec in (raw.get("branches") or {}).items()
    }
    if not branches:
        raise ValueError(f"{path}: a group needs at least one branch")
    ZoneInfo(raw["time_zone"])  # fail at start-up on a misspelt zone, not at the first birthday
    if raw.get("default_language", "zh-Hans") not in LANGUAGES:
        raise ValueError(f"{path}: default_language must be one of {', '.join(LANGUAGES)}")
    return Group(
        code=raw["code"], name=raw["name"], time_zone=raw["time_zone"], currency=raw["currency"],
        region=raw.get("region", "CN"), card_prefix=str(raw.get("card_prefix", "88")),
        default_language=raw.get("default_language", "zh-Hans"), branches=branches,
    )


def group_from_config(config: dict[str, Any]) -> Group:
    """The group named by ``GROUP_FILE`` in a service's config (the shipped demo group by default)."""
    return _load_group(config.get("GROUP_FILE") or DEFAULT_GROUP_FILE)

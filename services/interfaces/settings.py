"""The interfaces service's settings (nameko config keys), their defaults, and reading them.

Each part of the service (identity reviews, HL7, outbound webhooks, imports) adds its keys to ``SETTINGS``
with the default and a comment, and ``deploy/config.yml`` names the environment variable that sets it.
"""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, Any] = {
    "REVIEW_PAGE_MAX": 200,  # the most identity reviews one list call answers (a lower ``limit`` is kept)
    # HL7 v2 (services/interfaces/hl7): each sending facility (MSH-4) that may send, and the branches its
    # messages may be for (the first is the one meant when a message names none): {"HIS01": ["SH01"]}, or
    # in the environment "HIS01=SH01,SH02;HIS02=HZ01". A facility not listed is refused (AR).
    "HL7_FACILITIES": {},
    "HL7_MLLP_HOST": "0.0.0.0",  # where the MLLP listener listens
    "HL7_MLLP_PORT": 2575,  # the MLLP port (HL7's registered port); 0: a free port (tests)
    "HL7_MLLP_MAX_BYTES": 1_048_576,  # a longer MLLP frame is refused and the connection closed
    "HL7_MLLP_IDLE_SECONDS": 300,  # a connection silent this long is closed
    # outbound webhooks (services/interfaces/webhooks): the hosts deliveries may go to — exact names or
    # addresses, or "*.example.org" — as a list or "a.example.org,*.b.example.org"; empty: no subscription
    # can be made. Checked when subscribing and before every attempt.
    "WEBHOOK_ALLOWED_HOSTS": (),
    "WEBHOOK_RETRY_BASE_SECONDS": 30,  # the first retry's wait; each next one doubles ...
    "WEBHOOK_RETRY_MAX_SECONDS": 3600,  # ... up to this
    "WEBHOOK_RETRY_HOURS": 24,  # no 2xx within this window after the first try: parked (replay by hand)
    "WEBHOOK_TIMEOUT_SECONDS": 10,  # one POST's connect + read time
    "WEBHOOK_LEASE_SECONDS": 60,  # a claimed delivery is due again after this if its process died mid-POST
    "WEBHOOK_BATCH": 20,  # deliveries claimed per tick (every second) and process
    "WEBHOOK_SENDING": True,  # false: deliveries wait (an operator pausing every target)
    "IMPORT_DIR": "var/imports",  # where uploaded import files are kept (one per job, named by its id)
    "IMPORT_MAX_BYTES": 512 * 1024 * 1024,  # the largest file an import accepts
    "IMPORT_BATCH_ROWS": 500,  # rows per RPC to the owning service (one RPC per batch, never one per row)
    "IMPORT_RPC_TIMEOUT": 120,  # seconds a batch RPC may take before the batch is tried again
    "IMPORT_CHUNK_MAX_BYTES": 4 * 1024 * 1024,  # the largest piece of a file one upload call carries
}


def setting(config: dict[str, Any], key: str) -> Any:
    return config.get(key, SETTINGS[key])


def hl7_facilities(config: dict[str, Any]) -> dict[str, tuple[str, ...]]:
    """``HL7_FACILITIES`` as {facility: (branch, ...)}, from a mapping or from "HIS01=SH01,SH02;HIS02=HZ01"."""
    value = setting(config, "HL7_FACILITIES") or {}
    if isinstance(value, str):
        pairs = (item.split("=", 1) for item in value.replace(" ", "").split(";") if "=" in item)
        value = {facility: branches.split(",") for facility, branches in pairs}
    return {str(facility): tuple(str(b) for b in branches if b) for facility, branches in value.items()}


def allowed_hosts(config: dict[str, Any]) -> tuple[str, ...]:
    """``WEBHOOK_ALLOWED_HOSTS`` as a tuple of host patterns."""
    value = setting(config, "WEBHOOK_ALLOWED_HOSTS") or ()
    if isinstance(value, str):
        value = value.replace(" ", "").split(",")
    return tuple(str(host) for host in value if host)

"""The interfaces service's settings (nameko config keys), their defaults, and reading them.

Each part of the service (identity reviews, HL7, outbound webhooks, imports) adds its keys to ``SETTINGS``
with the default and a comment, and ``deploy/config.yml`` names the environment variable that sets it.
"""

from __future__ import annotations

from typing import Any

SETTINGS: dict[str, Any] = {
    "REVIEW_PAGE_MAX": 200,  # the most identity reviews one list call answers
    "IMPORT_DIR": "var/imports",  # where uploaded import files are kept (one per job, named by its id)
    "IMPORT_MAX_BYTES": 512 * 1024 * 1024,  # the largest file an import accepts
    "IMPORT_BATCH_ROWS": 500,  # rows per RPC to the owning service (one RPC per batch, never one per row)
    "IMPORT_RPC_TIMEOUT": 120,  # seconds a batch RPC may take before the batch is tried again
    "IMPORT_CHUNK_MAX_BYTES": 4 * 1024 * 1024,  # the largest piece of a file one upload call carries
}


def setting(config: dict[str, Any], key: str) -> Any:
    return config.get(key, SETTINGS[key])

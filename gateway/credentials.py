"""Operator commands for the gateway's credentials.

    python -m gateway.credentials create-api-key --name "HIS Jing'an" --role integration --branches SH01
    python -m gateway.credentials revoke-api-key <key id>

The database is ``GATEWAY_DATABASE_URL`` (default ``var/gateway.db``). A new key is printed once and
only its hash is stored: keep it where the system that uses it keeps its secrets.
"""

from __future__ import annotations

import argparse
import sys

from gateway.auth import issue_api_key, revoke_api_key
from services.kit.caller import ROLES
from services.kit.db import Store, database_url_from_env


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.credentials", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-api-key")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--branches", required=True, help="comma-separated branch codes, or * for all")
    revoke = commands.add_parser("revoke-api-key")
    revoke.add_argument("key_id")
    args = parser.parse_args(argv)

    store = Store(database_url_from_env("gateway"), pool_size=1)
    try:
        if args.command == "create-api-key":
            branches = tuple(b.strip() for b in args.branches.split(",") if b.strip())
            issued = issue_api_key(store, args.name, args.role, branches)
            print(issued.key)
        elif not revoke_api_key(store, args.key_id):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
    finally:
        store.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

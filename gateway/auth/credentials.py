"""Operator commands for the gateway's credentials.

    python -m gateway.auth.credentials create-admin --username wang.li --name "Wang Li"        (the first group admin)
    python -m gateway.auth.credentials unlock-staff <user name>
    python -m gateway.auth.credentials create-api-key --name "HIS Jing'an" --role integration --branches SH01 \\
        [--permissions members:read,members:enrol] [--expires-in-days 365]
    python -m gateway.auth.credentials rotate-api-key <key id> [--overlap-hours 24]
    python -m gateway.auth.credentials revoke-api-key <key id>
    python -m gateway.auth.credentials list-api-keys
    python -m gateway.auth.credentials create-webhook-integration --id his-jingan --name "HIS Jing'an" --branches SH01
    python -m gateway.auth.credentials rotate-webhook-secret <integration id> [--overlap-hours 24]

The database is ``GATEWAY_DATABASE_URL`` (default ``var/gateway.db``); webhook secrets and the security
log need the data keys (``CARELOOP_DATA_KEYS``, ``CARELOOP_INDEX_KEY``). A new key or secret is printed
once and only its hash (keys) or ciphertext (secrets) is stored: keep it where the system that uses
it keeps its secrets. ``create-admin`` reads the password from the terminal (twice) or, with
``--password-stdin``, from standard input; it refuses when an active group admin exists already
(more are made through the API) unless ``--another`` is given.
"""

from __future__ import annotations

import argparse
import getpass
import json
import sys
from datetime import timedelta

from sqlalchemy import select

from gateway.auth import issue_api_key, list_api_keys, lockout, revoke_api_key, rotate_api_key, webhooks
from gateway.auth.passwords import Passwords
from gateway.auth.staff import Account, Accounts, Lifetimes, check_branches
from gateway.models import StaffUser
from gateway.schemas import ApiKeySchema
from services.kit.caller import ROLES
from services.kit.clock import utcnow
from services.kit.config import group_from_config
from services.kit.db import Store, database_url_from_env
from services.kit.errors import DomainError

OPERATOR = "operator:cli"


def _accounts(store: Store) -> Accounts:
    return Accounts(store, Passwords(), None, Lifetimes.from_config({}), lockout.Policy.from_config({}),
                    group_from_config({}))


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("Password (12+ characters): ")
    if getpass.getpass("Again: ") != first:
        raise SystemExit("the two passwords differ")
    return first


def create_admin(store: Store, username: str, name: str, password: str, another: bool = False) -> Account:
    accounts = _accounts(store)
    if accounts.count_active_admins() and not another:
        raise SystemExit("an active group admin exists already; create more through the API "
                         "(POST /v1/staff) or pass --another")
    return accounts.create({"username": username, "display_name": name, "role": "group_admin", "branches": ["*"],
                            "password": password, "password_change_required": False}, OPERATOR)


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m gateway.auth.credentials", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser("create-admin", help="create a group admin (the first one)")
    admin.add_argument("--username", required=True)
    admin.add_argument("--name", required=True)
    admin.add_argument("--password-stdin", action="store_true")
    admin.add_argument("--another", action="store_true")
    unlock = commands.add_parser("unlock-staff")
    unlock.add_argument("username")
    create = commands.add_parser("create-api-key")
    create.add_argument("--name", required=True)
    create.add_argument("--role", required=True, choices=ROLES)
    create.add_argument("--branches", required=True, help="comma-separated branch codes, or * for all")
    create.add_argument("--permissions", default="", help="comma-separated permissions to narrow the key to")
    create.add_argument("--expires-in-days", type=float)
    rotate = commands.add_parser("rotate-api-key")
    rotate.add_argument("key_id")
    rotate.add_argument("--overlap-hours", type=float, default=24)
    revoke = commands.add_parser("revoke-api-key")
    revoke.add_argument("key_id")
    commands.add_parser("list-api-keys")
    hook = commands.add_parser("create-webhook-integration")
    hook.add_argument("--id", required=True)
    hook.add_argument("--name", required=True)
    hook.add_argument("--role", default="integration", choices=ROLES)
    hook.add_argument("--branches", required=True)
    hook.add_argument("--permissions", default="")
    hook_rotate = commands.add_parser("rotate-webhook-secret")
    hook_rotate.add_argument("integration_id")
    hook_rotate.add_argument("--overlap-hours", type=float, default=24)
    args = parser.parse_args(argv)

    store = Store(database_url_from_env("gateway"), pool_size=1)
    try:
        return _run(store, args)
    except DomainError as error:
        print(f"refused: {error.message} {json.dumps(error.fields) if error.fields else ''}".rstrip(), file=sys.stderr)
        return 1
    finally:
        store.dispose()


def _run(store: Store, args: argparse.Namespace) -> int:
    def split(text: str) -> list[str]:
        return [part.strip() for part in text.split(",") if part.strip()]

    if args.command == "create-admin":
        user = create_admin(store, args.username, args.name, _read_password(args.password_stdin), args.another)
        print(f"group admin {user.username} created ({user.id}); sign in at POST /v1/auth/login")
    elif args.command == "unlock-staff":
        with store.transaction() as session:
            user = session.scalars(select(StaffUser).where(StaffUser.username == args.username.lower())).first()
        if user is None:
            print(f"no staff account {args.username}", file=sys.stderr)
            return 1
        _accounts(store).unlock(str(user.id), OPERATOR)
        print(f"{args.username} unlocked")
    elif args.command == "create-api-key":
        expires = utcnow() + timedelta(days=args.expires_in_days) if args.expires_in_days else None
        issued = issue_api_key(store, args.name, args.role, tuple(split(args.branches)), expires_at=expires,
                               permissions=split(args.permissions) or None, actor=OPERATOR)
        print(issued.key)
    elif args.command == "rotate-api-key":
        issued = rotate_api_key(store, args.key_id, timedelta(hours=args.overlap_hours), actor=OPERATOR)
        print(issued.key)
        print(f"the old key {args.key_id} keeps working for {args.overlap_hours:g} h", file=sys.stderr)
    elif args.command == "revoke-api-key":
        if not revoke_api_key(store, args.key_id, actor=OPERATOR):
            print(f"no active key {args.key_id}", file=sys.stderr)
            return 1
    elif args.command == "list-api-keys":
        cursor = None
        while True:
            page = list_api_keys(store, {"limit": 100, "cursor": cursor})
            for item in page["items"]:
                print(json.dumps(ApiKeySchema().dump(item), ensure_ascii=False))
            cursor = page["next_cursor"]
            if cursor is None:
                break
    elif args.command == "create-webhook-integration":
        branches = check_branches(split(args.branches), group_from_config({}))
        print(webhooks.create_integration(store, args.id, args.name, args.role, branches,
                                          split(args.permissions) or None, OPERATOR).secret)
    elif args.command == "rotate-webhook-secret":
        print(webhooks.rotate_secret(store, args.integration_id, timedelta(hours=args.overlap_hours),
                                     OPERATOR).secret)
        print(f"the old secret keeps verifying for {args.overlap_hours:g} h", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

"""Migrations: the kit's tables and then the service's own, both with alembic, on any DATABASE_URL.

    python -m services.kit.migrate members            # URL from MEMBERS_DATABASE_URL or var/members.db
    python -m services.kit.migrate members --url postgresql://...
    python -m services.kit.migrate members --revision "add tiers"   # autogenerate a new revision

Each service keeps its revisions in ``services/<service>/migrations/versions`` (version table
``alembic_version``); the kit's live in ``services/kit/migrations/versions`` (``kit_alembic_version``).
``run_env`` is what every ``env.py`` calls.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import MetaData

from services.kit.db import create_store_engine, database_url_from_env, normalise_url

SERVICES_DIR = Path(__file__).resolve().parents[1]
KIT_VERSION_TABLE = "kit_alembic_version"


def alembic_config(location: Path, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(location))
    config.set_main_option("sqlalchemy.url", normalise_url(url).replace("%", "%%"))
    return config


def migrations_dir(service: str) -> Path:
    """Where ``service`` keeps its revisions (the gateway sits beside ``services/``, not in it)."""
    if service == "gateway":
        return SERVICES_DIR.parent / "gateway" / "migrations"
    return SERVICES_DIR / service / "migrations"


def upgrade(service: str, url: str) -> None:
    """Bring ``service``'s database at ``url`` to the newest revision (kit tables first)."""
    command.upgrade(alembic_config(SERVICES_DIR / "kit" / "migrations", url), "head")
    command.upgrade(alembic_config(migrations_dir(service), url), "head")


def revision(service: str, url: str, message: str) -> None:
    upgrade(service, url)
    command.revision(alembic_config(migrations_dir(service), url), message=message, autogenerate=True)


def run_env(target_metadata: MetaData, version_table: str = "alembic_version") -> None:
    """The body of every migrations/env.py: online migrations on the configured URL."""
    from alembic import context

    def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
        # Several metadata share one database (kit and service): each looks after its own tables.
        return type_ != "table" or name in target_metadata.tables

    def render_item(type_: str, obj: Any, autogen_context: Any) -> str | bool:
        # Encryption and UTC handling are the application's business: the schema sees plain types.
        from services.kit.crypto import Encrypted
        from services.kit.models import UtcDateTime

        if type_ == "type" and isinstance(obj, Encrypted):
            return "sa.Text()"
        if type_ == "type" and isinstance(obj, UtcDateTime):
            return "sa.DateTime(timezone=True)"
        return False

    engine = create_store_engine(context.config.get_main_option("sqlalchemy.url"), pool_size=1)
    try:
        with engine.connect() as connection:
            context.configure(connection=connection, target_metadata=target_metadata,
                              version_table=version_table, include_name=include_name,
                              render_item=render_item,
                              render_as_batch=engine.dialect.name == "sqlite", compare_type=True)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("service", nargs="+")
    parser.add_argument("--url", help="database URL (default: <SERVICE>_DATABASE_URL or var/<service>.db)")
    parser.add_argument("--revision", metavar="MESSAGE", help="autogenerate a new revision")
    args = parser.parse_args(argv)
    for service in args.service:
        url = args.url or database_url_from_env(service)
        if args.revision:
            revision(service, url, args.revision)
        else:
            upgrade(service, url)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

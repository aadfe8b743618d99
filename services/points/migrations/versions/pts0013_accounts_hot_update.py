"""points accounts updated in place: the lots export no longer reads them by updated_at

Revision ID: pts0013
Revises: pts0012
Create Date: 2026-12-07

Every posting moves its account's balance, and with it ``updated_at``; ``ix_points_accounts_export`` (pts0008)
indexed that column for the lots export (``export_points_lots``), so no account update could be a HOT update
(PostgreSQL updates in place, on the same page, only when no indexed column changes): each earn wrote a new row
version to another page and an entry into each of the table's two indexes (issue 17). The lots export now finds the
accounts that changed through their postings (``ix_points_postings_export``: every change of a member's lots is made
by a posting in the same transaction), so the index goes, built back by the downgrade.

``fillfactor = 80`` leaves a fifth of each page of accounts free for the new versions of its rows (a HOT update needs
room on the same page). It applies to pages written from now on; ``VACUUM FULL points_accounts`` (or
``pg_repack``) rewrites the existing ones when a quiet hour allows (not done here: it locks the table).
On PostgreSQL the index is dropped (and built back) ``CONCURRENTLY``: the accounts keep taking writes meanwhile.
"""

from alembic import op

revision = 'pts0013'
down_revision = 'pts0012'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.drop_index('ix_points_accounts_export', table_name='points_accounts', postgresql_concurrently=True,
                          if_exists=True)
        op.execute("ALTER TABLE points_accounts SET (fillfactor = 80)")
    else:
        op.drop_index('ix_points_accounts_export', table_name='points_accounts')


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE points_accounts RESET (fillfactor)")
        with op.get_context().autocommit_block():
            op.create_index('ix_points_accounts_export', 'points_accounts', ['updated_at', 'member_id'], unique=False,
                            postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index('ix_points_accounts_export', 'points_accounts', ['updated_at', 'member_id'], unique=False)

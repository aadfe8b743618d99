"""indexes for the warehouse's balances exports

Revision ID: pts0008
Revises: pts0007
Create Date: 2026-12-06

The points-lots and wallets exports (``kit.exports``) page ``points_accounts`` and ``wallet_accounts`` by
``(updated_at, member_id)`` from a cursor; without these indexes each page sorted every account changed after
the cursor.
"""

from alembic import op

revision = 'pts0008'
down_revision = 'pts0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_points_accounts_export', 'points_accounts', ['updated_at', 'member_id'], unique=False)
    op.create_index('ix_wallet_accounts_export', 'wallet_accounts', ['updated_at', 'member_id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_wallet_accounts_export', table_name='wallet_accounts')
    op.drop_index('ix_points_accounts_export', table_name='points_accounts')

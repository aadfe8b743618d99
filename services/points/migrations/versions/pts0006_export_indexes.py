"""indexes for the warehouse's exports

Revision ID: pts0006
Revises: pts0005
Create Date: 2026-12-06

The exports (``kit.exports``) walk postings, stored-value postings and coupons in ``(changed_at, id)``
order from a cursor; without these indexes each page would sort the whole table.
"""

from alembic import op


revision = 'pts0006'
down_revision = 'pts0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_points_postings_export', 'points_postings', ['created_at', 'id'], unique=False)
    op.create_index('ix_wallet_postings_export', 'wallet_postings', ['created_at', 'id'], unique=False)
    op.create_index('ix_coupons_export', 'coupons', ['updated_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_coupons_export', table_name='coupons')
    op.drop_index('ix_wallet_postings_export', table_name='wallet_postings')
    op.drop_index('ix_points_postings_export', table_name='points_postings')

"""an index for the warehouse's export of visits

Revision ID: rec0006
Revises: rec0004
Create Date: 2026-12-06

The visits export (``kit.exports``) walks visits in ``(updated_at, id)`` order from a cursor; without this
index each page would sort the whole table.
"""

from alembic import op


revision = 'rec0006'
down_revision = 'rec0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_visits_export', 'visits', ['updated_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_visits_export', table_name='visits')

"""an index for the warehouse's members export

Revision ID: mem0007
Revises: mem0005
Create Date: 2026-12-06

The members export (``kit.exports``, ``register.changed_since``) walks members in ``(updated_at, id)`` order
from a cursor; without this index each page sorted every member changed after the cursor (a full scan and a
sort per page: a 1,000,000-member export read the table 200 times).
"""

from alembic import op

revision = 'mem0007'
down_revision = 'mem0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index('ix_members_export', 'members', ['updated_at', 'id'], unique=False)


def downgrade() -> None:
    op.drop_index('ix_members_export', table_name='members')

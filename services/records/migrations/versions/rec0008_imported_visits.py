"""imported visits: a historical visit brought over by an import keeps the import's key for its bill

Revision ID: rec0008
Revises: rec0007
Create Date: 2026-12-07
"""

import sqlalchemy as sa
from alembic import op

revision = 'rec0008'
down_revision = 'rec0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.add_column(sa.Column('import_key', sa.String(length=128), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_column('import_key')

"""imports of opening balances: import_jobs.identifier_system (which system issued a sheet's identifiers)

Revision ID: int0006
Revises: int0005
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'int0006'
down_revision = 'int0005'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.add_column(sa.Column('identifier_system', sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_column('identifier_system')

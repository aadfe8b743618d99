"""member version: a counter of changes to a member's details (FHIR meta.versionId, If-Match)

Revision ID: mem0005
Revises: mem0004
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'mem0005'
down_revision = 'mem0004'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('members') as batch:
        batch.add_column(sa.Column('version', sa.Integer(), server_default='1', nullable=False))


def downgrade() -> None:
    with op.batch_alter_table('members') as batch:
        batch.drop_column('version')

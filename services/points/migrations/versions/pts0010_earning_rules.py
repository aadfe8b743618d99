"""earning rules changed through the API

Revision ID: pts0010
Revises: pts0008
Create Date: 2026-12-07

``points_earning_rules``: every version of the earning rules stored through the API (the fields set over the
programme file's, who stored them and when), never edited; the highest version is in force. The programme
file's own rules are not copied here.
"""

import sqlalchemy as sa
from alembic import op

revision = 'pts0010'
down_revision = 'pts0008'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('points_earning_rules',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_points_earning_rules'))
    )


def downgrade() -> None:
    op.drop_table('points_earning_rules')

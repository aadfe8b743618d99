"""campaigns created through the API

Revision ID: pts0007
Revises: pts0006
Create Date: 2026-12-06

``points_campaigns`` (one row per campaign created through the API: current version, who created, changed and
ended it), ``points_campaign_versions`` (every version's terms, never edited) and ``points_campaigns_stamp``
(one row rewritten by every change: what the earn path's cache of campaigns is checked against). The
programme file's campaigns are not copied here: they stay in the file.
"""

import sqlalchemy as sa
from alembic import op

revision = 'pts0007'
down_revision = 'pts0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('points_campaigns',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=200), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('ended_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_campaigns')),
    sa.UniqueConstraint('code', name=op.f('uq_points_campaigns_code'))
    )
    op.create_table('points_campaign_versions',
    sa.Column('campaign_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('terms', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['campaign_id'], ['points_campaigns.id'],
                            name=op.f('fk_points_campaign_versions_campaign_id_points_campaigns')),
    sa.PrimaryKeyConstraint('campaign_id', 'version', name=op.f('pk_points_campaign_versions'))
    )
    op.create_table('points_campaigns_stamp',
    sa.Column('id', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('stamp', sa.String(length=32), nullable=False),
    sa.Column('changes', sa.BigInteger(), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_campaigns_stamp'))
    )


def downgrade() -> None:
    op.drop_table('points_campaigns_stamp')
    op.drop_table('points_campaign_versions')
    op.drop_table('points_campaigns')

"""tiers, activity, benefits, segments, merges

Revision ID: mem0002
Revises: mem0001
Create Date: 2026-11-23

Members enrolled before this revision get ``tier_since`` = their enrolment and their first review on
the first enrolment anniversary (a local day in the group's zone, GROUP_FILE); an anniversary already
past is reviewed by the next nightly run (a no-op for them: nobody held a tier above standard before).
"""

import os
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = 'mem0002'
down_revision = 'mem0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_activity',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('visits_total', sa.Integer(), nullable=False),
    sa.Column('spend_total_minor', sa.BigInteger(), nullable=False),
    sa.Column('first_visit_on', sa.Date(), nullable=True),
    sa.Column('last_visit_on', sa.Date(), nullable=True),
    sa.Column('first_paid_visit_on', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_activity'))
    )
    op.create_table('member_merges',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('survivor_id', sa.Uuid(), nullable=False),
    sa.Column('merged_id', sa.Uuid(), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('record', sa.Text(), nullable=False),
    sa.Column('merged_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('merged_by', sa.String(length=200), nullable=False),
    sa.Column('reversed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('reversed_by', sa.String(length=200), nullable=True),
    sa.Column('reverse_reason', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_merges'))
    )
    with op.batch_alter_table('member_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_merges_merged_id'), ['merged_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_merges_survivor_id'), ['survivor_id'], unique=False)

    op.create_table('member_points',
    sa.Column('posting_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('rule', sa.String(length=24), nullable=True),
    sa.Column('reverses_posting_id', sa.String(length=64), nullable=True),
    sa.PrimaryKeyConstraint('posting_id', name=op.f('pk_member_points'))
    )
    with op.batch_alter_table('member_points', schema=None) as batch_op:
        batch_op.create_index('ix_member_points_member_day', ['member_id', 'day'], unique=False)
        batch_op.create_index(batch_op.f('ix_member_points_reverses_posting_id'), ['reverses_posting_id'], unique=False)

    op.create_table('member_segments',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('home_branch', sa.String(length=16), nullable=False),
    sa.Column('segment', sa.String(length=1), nullable=False),
    sa.Column('rfm_r', sa.Integer(), nullable=False),
    sa.Column('rfm_f', sa.Integer(), nullable=False),
    sa.Column('rfm_m', sa.Integer(), nullable=False),
    sa.Column('churn_risk', sa.Boolean(), nullable=False),
    sa.Column('usual_interval_days', sa.Integer(), nullable=True),
    sa.Column('last_visit_on', sa.Date(), nullable=True),
    sa.Column('changed_on', sa.Date(), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_segments'))
    )
    with op.batch_alter_table('member_segments', schema=None) as batch_op:
        batch_op.create_index('ix_member_segments_branch_list', ['segment', 'home_branch', 'member_id'], unique=False)
        batch_op.create_index('ix_member_segments_list', ['segment', 'member_id'], unique=False)

    op.create_table('member_status_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('from_status', sa.String(length=16), nullable=False),
    sa.Column('to_status', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.String(length=500), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_status_changes'))
    )
    with op.batch_alter_table('member_status_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_status_changes_member_id'), ['member_id'], unique=False)

    op.create_table('member_top_ups',
    sa.Column('topup_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('topup_id', name=op.f('pk_member_top_ups'))
    )
    with op.batch_alter_table('member_top_ups', schema=None) as batch_op:
        batch_op.create_index('ix_member_top_ups_member_day', ['member_id', 'day'], unique=False)

    op.create_table('member_visit_refunds',
    sa.Column('refund_id', sa.String(length=64), nullable=False),
    sa.Column('visit_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('refund_id', name=op.f('pk_member_visit_refunds'))
    )
    op.create_table('member_visits',
    sa.Column('visit_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=True),
    sa.Column('day', sa.Date(), nullable=False),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed', sa.Boolean(), nullable=False),
    sa.Column('qualifying_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('fully_refunded', sa.Boolean(), nullable=False),
    sa.PrimaryKeyConstraint('visit_id', name=op.f('pk_member_visits'))
    )
    with op.batch_alter_table('member_visits', schema=None) as batch_op:
        batch_op.create_index('ix_member_visits_member_day', ['member_id', 'day'], unique=False)

    op.create_table('programme_versions',
    sa.Column('version', sa.Integer(), autoincrement=False, nullable=False),
    sa.Column('document', sa.Text(), nullable=False),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.PrimaryKeyConstraint('version', name=op.f('pk_programme_versions'))
    )
    op.create_table('quota_uses',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('benefit', sa.String(length=40), nullable=False),
    sa.Column('visit_id', sa.String(length=64), nullable=False),
    sa.Column('benefit_year', sa.Integer(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_by', sa.String(length=200), nullable=False),
    sa.Column('undone_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('undone_by', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_quota_uses')),
    sa.UniqueConstraint('member_id', 'benefit', 'visit_id', name='uq_quota_uses_member_benefit_visit')
    )
    with op.batch_alter_table('quota_uses', schema=None) as batch_op:
        batch_op.create_index('ix_quota_uses_member_year', ['member_id', 'benefit_year', 'benefit'], unique=False)
        batch_op.create_index('ix_quota_uses_visit', ['visit_id'], unique=False)

    op.create_table('tier_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('from_tier', sa.String(length=24), nullable=False),
    sa.Column('to_tier', sa.String(length=24), nullable=False),
    sa.Column('direction', sa.String(length=4), nullable=False),
    sa.Column('reason', sa.String(length=24), nullable=False),
    sa.Column('source_ref', sa.String(length=128), nullable=True),
    sa.Column('note', sa.String(length=500), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('effective_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_tier_changes'))
    )
    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.create_index('ix_tier_changes_member', ['member_id', 'id'], unique=False)

    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('tier_since', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('tier_review_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('tier_pending', sa.String(length=24), nullable=True))
        batch_op.add_column(sa.Column('tier_pending_on', sa.Date(), nullable=True))
        batch_op.add_column(sa.Column('merged_into_id', sa.Uuid(), nullable=True))
        batch_op.create_index('ix_members_tier', ['tier'], unique=False)
        batch_op.create_index('ix_members_tier_pending', ['tier_pending_on', 'id'], unique=False, postgresql_where=sa.text('tier_pending_on IS NOT NULL'), sqlite_where=sa.text('tier_pending_on IS NOT NULL'))
        batch_op.create_index('ix_members_tier_review', ['tier_review_on', 'id'], unique=False)
        batch_op.create_foreign_key(batch_op.f('fk_members_merged_into_id_members'), 'members', ['merged_into_id'], ['id'])

    _schedule_existing_members()


def _schedule_existing_members(batch: int = 1000) -> None:
    from services.kit.config import group_from_config
    from services.members.rules.tiers import next_anniversary

    zone = group_from_config({"GROUP_FILE": os.environ.get("GROUP_FILE")}).zone
    bind = op.get_bind()
    while True:
        rows = bind.execute(sa.text("SELECT id, enrolled_at FROM members WHERE tier_review_on IS NULL LIMIT :n"),
                            {"n": batch}).fetchall()
        for member_id, enrolled_at in rows:
            if isinstance(enrolled_at, str):
                enrolled_at = datetime.fromisoformat(enrolled_at)
            if enrolled_at.tzinfo is None:
                enrolled_at = enrolled_at.replace(tzinfo=UTC)
            enrolled_on = enrolled_at.astimezone(zone).date()
            bind.execute(sa.text("UPDATE members SET tier_since = enrolled_at, tier_review_on = :on WHERE id = :id"),
                         {"on": next_anniversary(enrolled_on, enrolled_on), "id": member_id})
        if len(rows) < batch:
            return



def downgrade() -> None:
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_members_merged_into_id_members'), type_='foreignkey')
        batch_op.drop_index('ix_members_tier_review')
        batch_op.drop_index('ix_members_tier_pending', postgresql_where=sa.text('tier_pending_on IS NOT NULL'), sqlite_where=sa.text('tier_pending_on IS NOT NULL'))
        batch_op.drop_index('ix_members_tier')
        batch_op.drop_column('merged_into_id')
        batch_op.drop_column('tier_pending_on')
        batch_op.drop_column('tier_pending')
        batch_op.drop_column('tier_review_on')
        batch_op.drop_column('tier_since')

    with op.batch_alter_table('tier_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_tier_changes_member')

    op.drop_table('tier_changes')
    with op.batch_alter_table('quota_uses', schema=None) as batch_op:
        batch_op.drop_index('ix_quota_uses_visit')
        batch_op.drop_index('ix_quota_uses_member_year')

    op.drop_table('quota_uses')
    op.drop_table('programme_versions')
    with op.batch_alter_table('member_visits', schema=None) as batch_op:
        batch_op.drop_index('ix_member_visits_member_day')

    op.drop_table('member_visits')
    op.drop_table('member_visit_refunds')
    with op.batch_alter_table('member_top_ups', schema=None) as batch_op:
        batch_op.drop_index('ix_member_top_ups_member_day')

    op.drop_table('member_top_ups')
    with op.batch_alter_table('member_status_changes', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_status_changes_member_id'))

    op.drop_table('member_status_changes')
    with op.batch_alter_table('member_segments', schema=None) as batch_op:
        batch_op.drop_index('ix_member_segments_list')
        batch_op.drop_index('ix_member_segments_branch_list')

    op.drop_table('member_segments')
    with op.batch_alter_table('member_points', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_points_reverses_posting_id'))
        batch_op.drop_index('ix_member_points_member_day')

    op.drop_table('member_points')
    with op.batch_alter_table('member_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_merges_survivor_id'))
        batch_op.drop_index(batch_op.f('ix_member_merges_merged_id'))

    op.drop_table('member_merges')
    op.drop_table('member_activity')

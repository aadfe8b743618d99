"""records tables

Revision ID: rec0001
Revises: 
Create Date: 2026-11-23 15:10:11.863723
"""

from alembic import op
import sqlalchemy as sa


revision = 'rec0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('audit_trail',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('actor_kind', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=80), nullable=False),
    sa.Column('actor_role', sa.String(length=32), nullable=False),
    sa.Column('actor_branches', sa.String(length=200), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('resource', sa.String(length=32), nullable=False),
    sa.Column('member_id', sa.String(length=64), nullable=True),
    sa.Column('resource_id', sa.String(length=64), nullable=True),
    sa.Column('reason', sa.String(length=200), nullable=True),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('detail', sa.String(length=200), nullable=True),
    sa.Column('request_id', sa.String(length=64), nullable=True),
    sa.Column('call_id', sa.String(length=200), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_audit_trail'))
    )
    with op.batch_alter_table('audit_trail', schema=None) as batch_op:
        batch_op.create_index('ix_audit_trail_actor', ['actor', 'at', 'id'], unique=False)
        batch_op.create_index('ix_audit_trail_at', ['at', 'id'], unique=False)
        batch_op.create_index('ix_audit_trail_member', ['member_id', 'at', 'id'], unique=False)

    op.create_table('patients',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('home_branch', sa.String(length=16), nullable=True),
    sa.Column('referrer_id', sa.Uuid(), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enrolled_on', sa.Date(), nullable=True),
    sa.Column('first_arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_visits', sa.Integer(), nullable=False),
    sa.Column('paid_visits', sa.Integer(), nullable=False),
    sa.Column('last_visit_id', sa.Uuid(), nullable=True),
    sa.Column('last_visit_on', sa.Date(), nullable=True),
    sa.Column('treatment', sa.String(length=16), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_patients'))
    )
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.create_index('ix_patients_in_treatment', ['last_visit_on'], unique=False, postgresql_where=sa.text("treatment = 'ongoing'"), sqlite_where=sa.text("treatment = 'ongoing'"))
        batch_op.create_index('ix_patients_never_came', ['enrolled_on'], unique=False, postgresql_where=sa.text('first_arrived_at IS NULL'), sqlite_where=sa.text('first_arrived_at IS NULL'))

    op.create_table('slots',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doctor_id', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('local_day', sa.Date(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_slots')),
    sa.UniqueConstraint('doctor_id', 'starts_at', name='uq_slots_doctor_start')
    )
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.create_index('ix_slots_branch_day', ['branch', 'local_day', 'starts_at'], unique=False)

    op.create_table('appointments',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('slot_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doctor_id', sa.String(length=64), nullable=False),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('ends_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('service_category', sa.String(length=24), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=True),
    sa.Column('cancel_reason', sa.String(length=200), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_appointments_member_id_patients')),
    sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_appointments_slot_id_slots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_appointments'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_branch', ['branch', 'starts_at'], unique=False)
        batch_op.create_index('ix_appointments_member', ['member_id', 'starts_at'], unique=False)
        batch_op.create_index('uq_appointments_taken_slot', ['slot_id'], unique=True, postgresql_where=sa.text("status IN ('booked', 'checked_in')"), sqlite_where=sa.text("status IN ('booked', 'checked_in')"))

    op.create_table('care_plans',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('recall_type', sa.String(length=24), nullable=False),
    sa.Column('recall_interval_months', sa.SmallInteger(), nullable=False),
    sa.Column('guidance', sa.Text(), nullable=True),
    sa.Column('diet', sa.Text(), nullable=True),
    sa.Column('prevention', sa.Text(), nullable=True),
    sa.Column('last_reset_on', sa.Date(), nullable=True),
    sa.Column('next_recall_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_care_plans_member_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_care_plans')),
    sa.UniqueConstraint('member_id', 'recall_type', name='uq_care_plans_member_recall')
    )
    with op.batch_alter_table('care_plans', schema=None) as batch_op:
        batch_op.create_index('ix_care_plans_due', ['branch', 'next_recall_on'], unique=False)

    op.create_table('chart_changes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('changes', sa.Text(), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=True),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=80), nullable=False),
    sa.Column('changed_by_role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_chart_changes_member_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_chart_changes')),
    sa.UniqueConstraint('member_id', 'version', name='uq_chart_changes_version')
    )
    with op.batch_alter_table('chart_changes', schema=None) as batch_op:
        batch_op.create_index('ix_chart_changes_member', ['member_id', 'changed_at', 'id'], unique=False)

    op.create_table('dental_charts',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('teeth', sa.Text(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_dental_charts_member_id_patients')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_dental_charts'))
    )
    op.create_table('follow_ups',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=24), nullable=False),
    sa.Column('queue', sa.String(length=24), nullable=False),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=24), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('next_appointment_id', sa.Uuid(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('source_visit_id', sa.Uuid(), nullable=True),
    sa.Column('dedupe_key', sa.String(length=120), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('closed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('closed_by', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_follow_ups_member_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_follow_ups')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_follow_ups_dedupe_key'))
    )
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.create_index('ix_follow_ups_member', ['member_id', 'status'], unique=False)
        batch_op.create_index('ix_follow_ups_queue', ['branch', 'queue', 'status', 'due_on', 'id'], unique=False)

    op.create_table('health_profile_revisions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('snapshot', sa.Text(), nullable=False),
    sa.Column('changed', sa.String(length=200), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('changed_by', sa.String(length=80), nullable=False),
    sa.Column('changed_by_role', sa.String(length=32), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_health_profile_revisions_member_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_health_profile_revisions')),
    sa.UniqueConstraint('member_id', 'version', name='uq_health_profile_revisions_version')
    )
    op.create_table('health_profiles',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('medical_history', sa.Text(), nullable=True),
    sa.Column('allergies', sa.Text(), nullable=True),
    sa.Column('family_history', sa.Text(), nullable=True),
    sa.Column('medication', sa.Text(), nullable=True),
    sa.Column('notes', sa.Text(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_health_profiles_member_id_patients')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_health_profiles'))
    )
    op.create_table('visits',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doctor_id', sa.String(length=64), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=True),
    sa.Column('bill_id', sa.String(length=64), nullable=True),
    sa.Column('bill_hash', sa.String(length=64), nullable=True),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('qualifying_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('refunded_qualifying_minor', sa.BigInteger(), nullable=False),
    sa.Column('treatment', sa.String(length=16), nullable=True),
    sa.Column('outpatient_surgery', sa.Boolean(), nullable=False),
    sa.Column('first_visit', sa.Boolean(), nullable=False),
    sa.Column('first_paid_visit', sa.Boolean(), nullable=False),
    sa.Column('referral_source', sa.String(length=80), nullable=True),
    sa.Column('visit_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('scheduled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrived_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('arrived_on', sa.Date(), nullable=True),
    sa.Column('treatment_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('completed_on', sa.Date(), nullable=True),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_visits_member_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visits')),
    sa.UniqueConstraint('bill_id', name=op.f('uq_visits_bill_id'))
    )
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.create_index('ix_visits_branch_arrived', ['branch', 'arrived_on'], unique=False, postgresql_include=['kind', 'status', 'treatment', 'referral_source'])
        batch_op.create_index('ix_visits_branch_completed', ['branch', 'completed_on'], unique=False, postgresql_include=['member_id', 'total_minor', 'refunded_minor'])
        batch_op.create_index('ix_visits_member', ['member_id', 'visit_at', 'id'], unique=False)

    op.create_table('feedback',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=True),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('satisfaction', sa.String(length=24), nullable=True),
    sa.Column('score', sa.SmallInteger(), nullable=True),
    sa.Column('nps', sa.SmallInteger(), nullable=True),
    sa.Column('comment', sa.Text(), nullable=True),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('submitted_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('submitted_on', sa.Date(), nullable=False),
    sa.Column('response_due_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('first_response_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('response_seconds', sa.Integer(), nullable=True),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('resolution', sa.Text(), nullable=True),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('handled_by', sa.String(length=80), nullable=True),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'], name=op.f('fk_feedback_member_id_patients')),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_feedback_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_feedback'))
    )
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.create_index('ix_feedback_branch_day', ['branch', 'submitted_on'], unique=False)
        batch_op.create_index('ix_feedback_open_complaints', ['branch', 'status', 'response_due_at'], unique=False, postgresql_where=sa.text("kind = 'complaint'"), sqlite_where=sa.text("kind = 'complaint'"))
        batch_op.create_index('uq_feedback_visit_survey', ['visit_id'], unique=True, postgresql_where=sa.text("kind = 'survey'"), sqlite_where=sa.text("kind = 'survey'"))

    op.create_table('visit_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_visit_items_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_items'))
    )
    with op.batch_alter_table('visit_items', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_items_visit_id'), ['visit_id'], unique=False)

    op.create_table('visit_payments',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=False),
    sa.Column('method', sa.String(length=24), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_visit_payments_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_payments'))
    )
    with op.batch_alter_table('visit_payments', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_payments_visit_id'), ['visit_id'], unique=False)

    op.create_table('visit_refunds',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=False),
    sa.Column('his_refund_id', sa.String(length=64), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('payments', sa.String(length=2000), nullable=False),
    sa.Column('total_minor', sa.BigInteger(), nullable=False),
    sa.Column('qualifying_minor', sa.BigInteger(), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('refunded_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('refunded_by', sa.String(length=80), nullable=False),
    sa.ForeignKeyConstraint(['visit_id'], ['visits.id'], name=op.f('fk_visit_refunds_visit_id_visits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_refunds')),
    sa.UniqueConstraint('his_refund_id', name=op.f('uq_visit_refunds_his_refund_id'))
    )
    with op.batch_alter_table('visit_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_visit_refunds_visit_id'), ['visit_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('visit_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_refunds_visit_id'))

    op.drop_table('visit_refunds')
    with op.batch_alter_table('visit_payments', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_payments_visit_id'))

    op.drop_table('visit_payments')
    with op.batch_alter_table('visit_items', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_visit_items_visit_id'))

    op.drop_table('visit_items')
    with op.batch_alter_table('feedback', schema=None) as batch_op:
        batch_op.drop_index('uq_feedback_visit_survey', postgresql_where=sa.text("kind = 'survey'"), sqlite_where=sa.text("kind = 'survey'"))
        batch_op.drop_index('ix_feedback_open_complaints', postgresql_where=sa.text("kind = 'complaint'"), sqlite_where=sa.text("kind = 'complaint'"))
        batch_op.drop_index('ix_feedback_branch_day')

    op.drop_table('feedback')
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_index('ix_visits_member')
        batch_op.drop_index('ix_visits_branch_completed', postgresql_include=['member_id', 'total_minor', 'refunded_minor'])
        batch_op.drop_index('ix_visits_branch_arrived', postgresql_include=['kind', 'status', 'treatment', 'referral_source'])

    op.drop_table('visits')
    op.drop_table('health_profiles')
    op.drop_table('health_profile_revisions')
    with op.batch_alter_table('follow_ups', schema=None) as batch_op:
        batch_op.drop_index('ix_follow_ups_queue')
        batch_op.drop_index('ix_follow_ups_member')

    op.drop_table('follow_ups')
    op.drop_table('dental_charts')
    with op.batch_alter_table('chart_changes', schema=None) as batch_op:
        batch_op.drop_index('ix_chart_changes_member')

    op.drop_table('chart_changes')
    with op.batch_alter_table('care_plans', schema=None) as batch_op:
        batch_op.drop_index('ix_care_plans_due')

    op.drop_table('care_plans')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('uq_appointments_taken_slot', postgresql_where=sa.text("status IN ('booked', 'checked_in')"), sqlite_where=sa.text("status IN ('booked', 'checked_in')"))
        batch_op.drop_index('ix_appointments_member')
        batch_op.drop_index('ix_appointments_branch')

    op.drop_table('appointments')
    with op.batch_alter_table('slots', schema=None) as batch_op:
        batch_op.drop_index('ix_slots_branch_day')

    op.drop_table('slots')
    with op.batch_alter_table('patients', schema=None) as batch_op:
        batch_op.drop_index('ix_patients_never_came', postgresql_where=sa.text('first_arrived_at IS NULL'), sqlite_where=sa.text('first_arrived_at IS NULL'))
        batch_op.drop_index('ix_patients_in_treatment', postgresql_where=sa.text("treatment = 'ongoing'"), sqlite_where=sa.text("treatment = 'ongoing'"))

    op.drop_table('patients')
    with op.batch_alter_table('audit_trail', schema=None) as batch_op:
        batch_op.drop_index('ix_audit_trail_member')
        batch_op.drop_index('ix_audit_trail_at')
        batch_op.drop_index('ix_audit_trail_actor')

    op.drop_table('audit_trail')

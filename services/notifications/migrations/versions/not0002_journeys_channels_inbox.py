"""journeys, channels, preferences, inbox and scheduling

Revision ID: not0002
Revises: not0001
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = 'not0002'
down_revision = 'not0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('appointments',
    sa.Column('appointment_id', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('starts_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('service_category', sa.String(length=32), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('appointment_id', name=op.f('pk_appointments'))
    )
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.create_index('ix_appointments_member', ['member_id', 'status', 'starts_at'], unique=False)

    op.create_table('audience',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('home_branch', sa.String(length=16), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_audience'))
    )
    with op.batch_alter_table('audience', schema=None) as batch_op:
        batch_op.create_index('ix_audience_status', ['status', 'member_id'], unique=False)

    op.create_table('digest_items',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('kind', sa.String(length=24), nullable=False),
    sa.Column('item_ref', sa.String(length=64), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=True),
    sa.Column('points', sa.Integer(), nullable=False),
    sa.Column('recorded_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_digest_items')),
    sa.UniqueConstraint('kind', 'item_ref', name='uq_digest_items_kind_ref')
    )
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.create_index('ix_digest_items_delivery', ['delivery_id'], unique=False)

    op.create_table('inbox_messages',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.Column('journey', sa.String(length=48), nullable=False),
    sa.Column('language', sa.String(length=8), nullable=False),
    sa.Column('subject', sa.Text(), nullable=False),
    sa.Column('body', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('read_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_inbox_messages')),
    sa.UniqueConstraint('delivery_id', name=op.f('uq_inbox_messages_delivery_id'))
    )
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.create_index('ix_inbox_messages_member', ['member_id', 'created_at'], unique=False)

    op.create_table('preferences',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('channels', sa.Text(), nullable=True),
    sa.Column('marketing_opt_out', sa.Boolean(), nullable=False),
    sa.Column('service_opt_out', sa.Boolean(), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_by', sa.String(length=160), nullable=True),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_preferences'))
    )
    op.create_table('recalls',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('recall_type', sa.String(length=32), nullable=False),
    sa.Column('care_plan_id', sa.String(length=64), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('next_attempt_on', sa.Date(), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('merged_from', sa.Uuid(), nullable=True),
    sa.Column('last_event_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_recalls')),
    sa.UniqueConstraint('member_id', 'recall_type', name='uq_recalls_member_type')
    )
    with op.batch_alter_table('recalls', schema=None) as batch_op:
        batch_op.create_index('ix_recalls_due', ['next_attempt_on', 'id'], unique=False, postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.create_table('delivery_steps',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('delivery_id', sa.Uuid(), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=True),
    sa.Column('detail', sa.Text(), nullable=True),
    sa.Column('provider_id', sa.String(length=128), nullable=True),
    sa.ForeignKeyConstraint(['delivery_id'], ['deliveries.id'], name=op.f('fk_delivery_steps_delivery_id_deliveries'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_delivery_steps'))
    )
    with op.batch_alter_table('delivery_steps', schema=None) as batch_op:
        batch_op.create_index('ix_delivery_steps_delivery', ['delivery_id', 'id'], unique=False)

    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.add_column(sa.Column('category', sa.String(length=16), server_default='service', nullable=False))
        batch_op.add_column(sa.Column('requested_channel', sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column('cause_ref', sa.String(length=120), nullable=True))
        batch_op.add_column(sa.Column('context', sa.Text(), nullable=True))
        batch_op.add_column(sa.Column('language', sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column('first_due_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('expires_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('provider_id', sa.String(length=128), nullable=True))
        batch_op.add_column(sa.Column('claimed_by', sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('attempt_started_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column('delivered_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_deliveries_cap', ['member_id', 'category', 'sent_at'], unique=False)
        batch_op.create_index('ix_deliveries_cause_ref', ['cause_ref', 'state'], unique=False)
        batch_op.create_index('ix_deliveries_provider', ['channel', 'provider_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('deliveries', schema=None) as batch_op:
        batch_op.drop_index('ix_deliveries_provider')
        batch_op.drop_index('ix_deliveries_cause_ref')
        batch_op.drop_index('ix_deliveries_cap')
        batch_op.drop_column('delivered_at')
        batch_op.drop_column('sent_at')
        batch_op.drop_column('attempt_started_at')
        batch_op.drop_column('claimed_at')
        batch_op.drop_column('claimed_by')
        batch_op.drop_column('provider_id')
        batch_op.drop_column('expires_at')
        batch_op.drop_column('first_due_at')
        batch_op.drop_column('language')
        batch_op.drop_column('context')
        batch_op.drop_column('cause_ref')
        batch_op.drop_column('requested_channel')
        batch_op.drop_column('category')

    with op.batch_alter_table('delivery_steps', schema=None) as batch_op:
        batch_op.drop_index('ix_delivery_steps_delivery')

    op.drop_table('delivery_steps')
    with op.batch_alter_table('recalls', schema=None) as batch_op:
        batch_op.drop_index('ix_recalls_due', postgresql_where=sa.text("status = 'active'"), sqlite_where=sa.text("status = 'active'"))

    op.drop_table('recalls')
    op.drop_table('preferences')
    with op.batch_alter_table('inbox_messages', schema=None) as batch_op:
        batch_op.drop_index('ix_inbox_messages_member')

    op.drop_table('inbox_messages')
    with op.batch_alter_table('digest_items', schema=None) as batch_op:
        batch_op.drop_index('ix_digest_items_delivery')

    op.drop_table('digest_items')
    with op.batch_alter_table('audience', schema=None) as batch_op:
        batch_op.drop_index('ix_audience_status')

    op.drop_table('audience')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_index('ix_appointments_member')

    op.drop_table('appointments')

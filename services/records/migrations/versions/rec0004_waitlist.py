"""the waitlist: patients waiting for an earlier slot, and the cancelled slots offered to them

Revision ID: rec0004
Revises: rec0003
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'rec0004'
down_revision = 'rec0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('waitlist_entries',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('doctor_id', sa.String(length=64), nullable=True),
    sa.Column('service_category', sa.String(length=24), nullable=False),
    sa.Column('earliest_on', sa.Date(), nullable=False),
    sa.Column('latest_on', sa.Date(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=80), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['patients.member_id'],
                            name=op.f('fk_waitlist_entries_member_id_patients')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_entries'))
    )
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.create_index('ix_waitlist_entries_waiting', ['branch', 'status', 'created_at'], unique=False)
        batch_op.create_index('ix_waitlist_entries_member', ['member_id', 'status'], unique=False)

    op.create_table('waitlist_offers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('entry_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('slot_id', sa.Uuid(), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('offered_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('answered_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('appointment_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['entry_id'], ['waitlist_entries.id'],
                            name=op.f('fk_waitlist_offers_entry_id_waitlist_entries')),
    sa.ForeignKeyConstraint(['slot_id'], ['slots.id'], name=op.f('fk_waitlist_offers_slot_id_slots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_waitlist_offers')),
    sa.UniqueConstraint('entry_id', 'slot_id', name='uq_waitlist_offers_entry_slot')
    )
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.create_index('ix_waitlist_offers_slot', ['slot_id', 'status'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('waitlist_offers', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_offers_slot')
    op.drop_table('waitlist_offers')
    with op.batch_alter_table('waitlist_entries', schema=None) as batch_op:
        batch_op.drop_index('ix_waitlist_entries_member')
        batch_op.drop_index('ix_waitlist_entries_waiting')
    op.drop_table('waitlist_entries')

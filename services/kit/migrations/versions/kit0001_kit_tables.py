"""kit tables

Revision ID: kit0001
Revises: 
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = 'kit0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kit_idempotency',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('command', sa.String(length=64), nullable=False),
    sa.Column('key', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('response', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kit_idempotency')),
    sa.UniqueConstraint('command', 'key', name='uq_kit_idempotency_command_key')
    )
    op.create_table('kit_inbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('consumer', sa.String(length=128), nullable=False),
    sa.Column('event_id', sa.String(length=64), nullable=False),
    sa.Column('handled_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kit_inbox')),
    sa.UniqueConstraint('consumer', 'event_id', name='uq_kit_inbox_consumer_event')
    )
    op.create_table('kit_outbox',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('event_id', sa.String(length=36), nullable=False),
    sa.Column('event_type', sa.String(length=64), nullable=False),
    sa.Column('payload', sa.Text(), nullable=False),
    sa.Column('headers', sa.Text(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('last_error', sa.Text(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kit_outbox')),
    sa.UniqueConstraint('event_id', name=op.f('uq_kit_outbox_event_id'))
    )
    with op.batch_alter_table('kit_outbox', schema=None) as batch_op:
        batch_op.create_index('ix_kit_outbox_sent_at', ['sent_at'], unique=False)
        batch_op.create_index('ix_kit_outbox_unsent', ['id'], unique=False, postgresql_where=sa.text('sent_at IS NULL'), sqlite_where=sa.text('sent_at IS NULL'))



def downgrade() -> None:
    with op.batch_alter_table('kit_outbox', schema=None) as batch_op:
        batch_op.drop_index('ix_kit_outbox_unsent', postgresql_where=sa.text('sent_at IS NULL'), sqlite_where=sa.text('sent_at IS NULL'))
        batch_op.drop_index('ix_kit_outbox_sent_at')

    op.drop_table('kit_outbox')
    op.drop_table('kit_inbox')
    op.drop_table('kit_idempotency')

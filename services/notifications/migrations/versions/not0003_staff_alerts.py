"""staff alerts about negative feedback (apart from members' deliveries)

Revision ID: not0003
Revises: not0002
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = 'not0003'
down_revision = 'not0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('staff_alerts',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('feedback_id', sa.String(length=64), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('channel', sa.String(length=16), nullable=False),
    sa.Column('recipient', sa.String(length=254), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('context', sa.Text(), nullable=True),
    sa.Column('due_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('provider_id', sa.String(length=128), nullable=True),
    sa.Column('language', sa.String(length=8), nullable=True),
    sa.Column('claimed_by', sa.String(length=80), nullable=True),
    sa.Column('claimed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('attempt_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('sent_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_staff_alerts')),
    sa.UniqueConstraint('feedback_id', 'channel', 'recipient', name='uq_staff_alerts_feedback_recipient')
    )
    with op.batch_alter_table('staff_alerts', schema=None) as batch_op:
        batch_op.create_index('ix_staff_alerts_branch', ['branch', 'created_at'], unique=False)
        batch_op.create_index('ix_staff_alerts_due', ['state', 'due_at'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('staff_alerts', schema=None) as batch_op:
        batch_op.drop_index('ix_staff_alerts_due')
        batch_op.drop_index('ix_staff_alerts_branch')

    op.drop_table('staff_alerts')

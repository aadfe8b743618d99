"""appointment links: an appointment's confirmation by the patient, and the confirm/cancel links used

Revision ID: rec0007
Revises: rec0006
Create Date: 2026-12-06
"""

import sqlalchemy as sa
from alembic import op

revision = 'rec0007'
down_revision = 'rec0006'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.add_column(sa.Column('confirmed_at', sa.DateTime(timezone=True), nullable=True))

    op.create_table('appointment_link_uses',
    sa.Column('nonce', sa.String(length=64), nullable=False),
    sa.Column('appointment_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('outcome', sa.String(length=16), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['appointment_id'], ['appointments.id'],
                            name=op.f('fk_appointment_link_uses_appointment_id_appointments')),
    sa.PrimaryKeyConstraint('nonce', name=op.f('pk_appointment_link_uses'))
    )
    with op.batch_alter_table('appointment_link_uses', schema=None) as batch_op:
        batch_op.create_index('ix_appointment_link_uses_appointment', ['appointment_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('appointment_link_uses', schema=None) as batch_op:
        batch_op.drop_index('ix_appointment_link_uses_appointment')
    op.drop_table('appointment_link_uses')
    with op.batch_alter_table('appointments', schema=None) as batch_op:
        batch_op.drop_column('confirmed_at')

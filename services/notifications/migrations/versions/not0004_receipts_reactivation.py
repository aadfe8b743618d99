"""do not contact (preferences) and the reactivation list (recalls: calls made, the last one)

Delivery receipts need no table: they move deliveries by (channel, provider_id), indexed since not0002.

Revision ID: not0004
Revises: not0003
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'not0004'
down_revision = 'not0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('preferences', schema=None) as batch_op:
        batch_op.add_column(sa.Column('do_not_contact', sa.Boolean(), server_default=sa.text('false'),
                                      nullable=False))
    with op.batch_alter_table('recalls', schema=None) as batch_op:
        batch_op.add_column(sa.Column('reactivation_contacts', sa.Integer(), server_default=sa.text('0'),
                                      nullable=False))
        batch_op.add_column(sa.Column('last_contacted_at', sa.DateTime(timezone=True), nullable=True))
        batch_op.create_index('ix_recalls_reactivation', ['status', 'due_on', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('recalls', schema=None) as batch_op:
        batch_op.drop_index('ix_recalls_reactivation')
        batch_op.drop_column('last_contacted_at')
        batch_op.drop_column('reactivation_contacts')
    with op.batch_alter_table('preferences', schema=None) as batch_op:
        batch_op.drop_column('do_not_contact')

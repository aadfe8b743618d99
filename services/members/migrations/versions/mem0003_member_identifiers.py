"""member identifiers: (system URI, value) per member, one member per (system, value)

Revision ID: mem0003
Revises: mem0002
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'mem0003'
down_revision = 'mem0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_identifiers',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('system', sa.String(length=200), nullable=False),
    sa.Column('value', sa.Text(), nullable=False),
    sa.Column('value_index', sa.String(length=40), nullable=False),
    sa.Column('added_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('added_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_identifiers_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_identifiers')),
    sa.UniqueConstraint('system', 'value_index', name='uq_member_identifiers_system_value')
    )
    with op.batch_alter_table('member_identifiers', schema=None) as batch_op:
        batch_op.create_index('ix_member_identifiers_member', ['member_id', 'id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('member_identifiers', schema=None) as batch_op:
        batch_op.drop_index('ix_member_identifiers_member')

    op.drop_table('member_identifiers')

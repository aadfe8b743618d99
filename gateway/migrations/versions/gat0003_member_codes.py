"""the member page: one-time sign-in codes and member sessions

Revision ID: gat0003
Revises: gat0002
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'gat0003'
down_revision = 'gat0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_sign_in_codes',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.String(length=36), nullable=True),
    sa.Column('phone_hash', sa.String(length=64), nullable=False),
    sa.Column('address_hash', sa.String(length=64), nullable=False),
    sa.Column('code_hash', sa.String(length=64), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('used_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_sign_in_codes'))
    )
    with op.batch_alter_table('member_sign_in_codes', schema=None) as batch_op:
        batch_op.create_index('ix_member_sign_in_codes_address', ['address_hash', 'created_at'], unique=False)
        batch_op.create_index('ix_member_sign_in_codes_phone', ['phone_hash', 'created_at'], unique=False)

    op.create_table('member_sessions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.String(length=36), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('expires_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('revoked_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_member_sessions'))
    )
    with op.batch_alter_table('member_sessions', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_member_sessions_member_id'), ['member_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('member_sessions', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_member_sessions_member_id'))
    op.drop_table('member_sessions')
    with op.batch_alter_table('member_sign_in_codes', schema=None) as batch_op:
        batch_op.drop_index('ix_member_sign_in_codes_phone')
        batch_op.drop_index('ix_member_sign_in_codes_address')
    op.drop_table('member_sign_in_codes')

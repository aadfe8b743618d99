"""members tables

Revision ID: mem0001
Revises: 
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = 'mem0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('members',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('card_number', sa.String(length=20), nullable=False),
    sa.Column('referral_code', sa.String(length=12), nullable=False),
    sa.Column('referred_by_id', sa.Uuid(), nullable=True),
    sa.Column('full_name', sa.Text(), nullable=True),
    sa.Column('name_index', sa.String(length=40), nullable=True),
    sa.Column('name_birth_index', sa.String(length=40), nullable=True),
    sa.Column('phone', sa.Text(), nullable=True),
    sa.Column('phone_index', sa.String(length=40), nullable=True),
    sa.Column('email', sa.Text(), nullable=True),
    sa.Column('birth_date', sa.Text(), nullable=True),
    sa.Column('birth_mmdd', sa.String(length=5), nullable=True),
    sa.Column('gender', sa.String(length=16), nullable=False),
    sa.Column('document_type', sa.String(length=24), nullable=True),
    sa.Column('document_number', sa.Text(), nullable=True),
    sa.Column('document_index', sa.String(length=40), nullable=True),
    sa.Column('wechat_openid', sa.Text(), nullable=True),
    sa.Column('line_user_id', sa.Text(), nullable=True),
    sa.Column('preferred_language', sa.String(length=8), nullable=False),
    sa.Column('consent_sms', sa.Boolean(), nullable=False),
    sa.Column('consent_email', sa.Boolean(), nullable=False),
    sa.Column('consent_wechat', sa.Boolean(), nullable=False),
    sa.Column('consent_line', sa.Boolean(), nullable=False),
    sa.Column('consent_marketing', sa.Boolean(), nullable=False),
    sa.Column('consents_updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('home_branch', sa.String(length=16), nullable=False),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('tier', sa.String(length=24), nullable=False),
    sa.Column('source', sa.String(length=16), nullable=False),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['referred_by_id'], ['members.id'], name=op.f('fk_members_referred_by_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_members')),
    sa.UniqueConstraint('card_number', name=op.f('uq_members_card_number')),
    sa.UniqueConstraint('document_index', name=op.f('uq_members_document_index')),
    sa.UniqueConstraint('phone_index', name=op.f('uq_members_phone_index')),
    sa.UniqueConstraint('referral_code', name=op.f('uq_members_referral_code'))
    )
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.create_index('ix_members_birthday', ['birth_mmdd', 'id'], unique=False)
        batch_op.create_index('ix_members_enrolled', ['enrolled_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_home_branch'), ['home_branch'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_name_birth_index'), ['name_birth_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_name_index'), ['name_index'], unique=False)
        batch_op.create_index(batch_op.f('ix_members_referred_by_id'), ['referred_by_id'], unique=False)

    op.create_table('member_name_tokens',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('token_index', sa.String(length=40), nullable=False),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_member_name_tokens_member_id_members'), ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('member_id', 'token_index', name=op.f('pk_member_name_tokens'))
    )
    with op.batch_alter_table('member_name_tokens', schema=None) as batch_op:
        batch_op.create_index('ix_member_name_tokens_token', ['token_index', 'member_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('member_name_tokens', schema=None) as batch_op:
        batch_op.drop_index('ix_member_name_tokens_token')

    op.drop_table('member_name_tokens')
    with op.batch_alter_table('members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_members_referred_by_id'))
        batch_op.drop_index(batch_op.f('ix_members_name_index'))
        batch_op.drop_index(batch_op.f('ix_members_name_birth_index'))
        batch_op.drop_index(batch_op.f('ix_members_home_branch'))
        batch_op.drop_index('ix_members_enrolled')
        batch_op.drop_index('ix_members_birthday')

    op.drop_table('members')

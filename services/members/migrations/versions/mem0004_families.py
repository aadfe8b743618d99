"""family accounts: families, their members and the audit of links

Revision ID: mem0004
Revises: mem0003
Create Date: 2026-12-06

Adds ``families`` (the contact person, the home branch), ``family_members`` (a member in at most one family:
contact, adult or minor) and ``family_changes`` (created, linked, unlinked: who, when, why).
"""

from alembic import op
import sqlalchemy as sa


revision = 'mem0004'
down_revision = 'mem0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('families',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('contact_member_id', sa.Uuid(), nullable=False),
    sa.Column('home_branch', sa.String(length=16), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('ended_at', sa.DateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['contact_member_id'], ['members.id'], name=op.f('fk_families_contact_member_id_members')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_families'))
    )
    with op.batch_alter_table('families', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_families_contact_member_id'), ['contact_member_id'], unique=False)

    op.create_table('family_members',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('family_id', sa.Uuid(), nullable=False),
    sa.Column('relation', sa.String(length=12), nullable=False),
    sa.Column('linked_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('linked_by', sa.String(length=200), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_family_members_family_id_families')),
    sa.ForeignKeyConstraint(['member_id'], ['members.id'], name=op.f('fk_family_members_member_id_members')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_family_members'))
    )
    with op.batch_alter_table('family_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_members_family_id'), ['family_id'], unique=False)

    op.create_table('family_changes',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('family_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('relation', sa.String(length=12), nullable=True),
    sa.Column('reason', sa.String(length=500), nullable=True),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('changed_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['family_id'], ['families.id'], name=op.f('fk_family_changes_family_id_families')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_family_changes'))
    )
    with op.batch_alter_table('family_changes', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_family_changes_family_id'), ['family_id'], unique=False)


def downgrade() -> None:
    op.drop_table('family_changes')
    op.drop_table('family_members')
    op.drop_table('families')

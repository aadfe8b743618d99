"""interfaces tables: the identity review queue and its log

Revision ID: int0001
Revises: 
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'int0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('identity_reviews',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=False),
    sa.Column('source', sa.String(length=120), nullable=False),
    sa.Column('source_ref', sa.String(length=200), nullable=True),
    sa.Column('status', sa.String(length=12), nullable=False),
    sa.Column('patient', sa.Text(), nullable=False),
    sa.Column('candidates', sa.Text(), nullable=False),
    sa.Column('original', sa.Text(), nullable=True),
    sa.Column('original_format', sa.String(length=60), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('resolved_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('resolved_by', sa.String(length=200), nullable=True),
    sa.Column('member_id', sa.Uuid(), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_reviews')),
    sa.UniqueConstraint('source', 'source_ref', name='uq_identity_reviews_source_ref')
    )
    with op.batch_alter_table('identity_reviews', schema=None) as batch_op:
        batch_op.create_index('ix_identity_reviews_queue', ['branch', 'status', 'created_at', 'id'], unique=False)

    op.create_table('identity_review_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('review_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=12), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['review_id'], ['identity_reviews.id'], name=op.f('fk_identity_review_log_review_id_identity_reviews')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_identity_review_log'))
    )
    with op.batch_alter_table('identity_review_log', schema=None) as batch_op:
        batch_op.create_index('ix_identity_review_log_review', ['review_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('identity_review_log', schema=None) as batch_op:
        batch_op.drop_index('ix_identity_review_log_review')

    op.drop_table('identity_review_log')
    with op.batch_alter_table('identity_reviews', schema=None) as batch_op:
        batch_op.drop_index('ix_identity_reviews_queue')

    op.drop_table('identity_reviews')

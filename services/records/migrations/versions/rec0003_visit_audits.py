"""the cross-service visit audit: its runs and findings; visits indexed by completion time

Revision ID: rec0003
Revises: rec0002
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'rec0003'
down_revision = 'rec0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('visit_audits',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('run_key', sa.String(length=80), nullable=False),
    sa.Column('trigger', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=16), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.Column('until', sa.DateTime(timezone=True), nullable=False),
    sa.Column('settle_seconds', sa.Integer(), nullable=False),
    sa.Column('visits_checked', sa.Integer(), nullable=False),
    sa.Column('visits_unsettled', sa.Integer(), nullable=False),
    sa.Column('mismatches', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('started_by', sa.String(length=80), nullable=False),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_audits')),
    sa.UniqueConstraint('run_key', name=op.f('uq_visit_audits_run_key'))
    )
    with op.batch_alter_table('visit_audits', schema=None) as batch_op:
        batch_op.create_index('ix_visit_audits_started', ['started_at'], unique=False)

    op.create_table('visit_audit_findings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('audit_id', sa.Uuid(), nullable=False),
    sa.Column('visit_id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=32), nullable=False),
    sa.Column('reason', sa.String(length=300), nullable=False),
    sa.Column('expected', sa.BigInteger(), nullable=True),
    sa.Column('found', sa.BigInteger(), nullable=True),
    sa.ForeignKeyConstraint(['audit_id'], ['visit_audits.id'],
                            name=op.f('fk_visit_audit_findings_audit_id_visit_audits')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_visit_audit_findings'))
    )
    with op.batch_alter_table('visit_audit_findings', schema=None) as batch_op:
        batch_op.create_index('ix_visit_audit_findings_audit', ['audit_id', 'id'], unique=False)

    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.create_index('ix_visits_completed', ['completed_at', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('visits', schema=None) as batch_op:
        batch_op.drop_index('ix_visits_completed')
    op.drop_table('visit_audit_findings')
    op.drop_table('visit_audits')

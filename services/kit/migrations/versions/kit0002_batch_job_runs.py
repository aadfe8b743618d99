"""batch job runs

Revision ID: kit0002
Revises: kit0001
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = 'kit0002'
down_revision = 'kit0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('kit_job_runs',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job', sa.String(length=64), nullable=False),
    sa.Column('run_key', sa.String(length=64), nullable=False),
    sa.Column('cursor', sa.Text(), nullable=True),
    sa.Column('processed', sa.BigInteger(), nullable=False),
    sa.Column('batches', sa.Integer(), nullable=False),
    sa.Column('started_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_kit_job_runs')),
    sa.UniqueConstraint('job', 'run_key', name='uq_kit_job_runs_job_run_key')
    )


def downgrade() -> None:
    op.drop_table('kit_job_runs')

"""import jobs: the jobs, their row-by-row report, the identities a dry run met, and their audit log

Revision ID: int0004
Revises: int0003
Create Date: 2026-12-06
"""

from alembic import op
import sqlalchemy as sa


revision = 'int0004'
down_revision = 'int0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('import_jobs',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('filename', sa.String(length=200), nullable=False),
    sa.Column('file_kind', sa.String(length=8), nullable=False),
    sa.Column('encoding', sa.String(length=16), nullable=True),
    sa.Column('sheet', sa.String(length=100), nullable=True),
    sa.Column('day_first', sa.Boolean(), nullable=True),
    sa.Column('mapping', sa.Text(), nullable=True),
    sa.Column('default_branch', sa.String(length=16), nullable=True),
    sa.Column('branches', sa.Text(), nullable=True),
    sa.Column('size_bytes', sa.BigInteger(), nullable=False),
    sa.Column('columns', sa.Text(), nullable=True),
    sa.Column('total_rows', sa.Integer(), nullable=True),
    sa.Column('processed_rows', sa.Integer(), nullable=False),
    sa.Column('valid_rows', sa.Integer(), nullable=False),
    sa.Column('invalid_rows', sa.Integer(), nullable=False),
    sa.Column('present_rows', sa.Integer(), nullable=False),
    sa.Column('repeated_rows', sa.Integer(), nullable=False),
    sa.Column('imported_rows', sa.Integer(), nullable=False),
    sa.Column('phase_started_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('finished_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('error', sa.String(length=500), nullable=True),
    sa.Column('created_by', sa.String(length=200), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_jobs'))
    )
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.create_index('ix_import_jobs_recent', ['created_at', 'id'], unique=False)
        batch_op.create_index('ix_import_jobs_state', ['state'], unique=False)

    op.create_table('import_issues',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('phase', sa.String(length=8), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.Column('column', sa.String(length=100), nullable=False),
    sa.Column('value', sa.Text(), nullable=True),
    sa.Column('message', sa.String(length=500), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_issues_job_id_import_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_issues'))
    )
    with op.batch_alter_table('import_issues', schema=None) as batch_op:
        batch_op.create_index('ix_import_issues_job', ['job_id', 'phase', 'id'], unique=False)

    op.create_table('import_seen',
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('identity', sa.String(length=32), nullable=False),
    sa.Column('row', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('job_id', 'identity', name=op.f('pk_import_seen'))
    )

    op.create_table('import_job_log',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('job_id', sa.Uuid(), nullable=False),
    sa.Column('action', sa.String(length=16), nullable=False),
    sa.Column('actor', sa.String(length=200), nullable=False),
    sa.Column('at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['job_id'], ['import_jobs.id'], name=op.f('fk_import_job_log_job_id_import_jobs')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_import_job_log'))
    )
    with op.batch_alter_table('import_job_log', schema=None) as batch_op:
        batch_op.create_index('ix_import_job_log_job', ['job_id', 'id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('import_job_log', schema=None) as batch_op:
        batch_op.drop_index('ix_import_job_log_job')
    op.drop_table('import_job_log')
    op.drop_table('import_seen')
    with op.batch_alter_table('import_issues', schema=None) as batch_op:
        batch_op.drop_index('ix_import_issues_job')
    op.drop_table('import_issues')
    with op.batch_alter_table('import_jobs', schema=None) as batch_op:
        batch_op.drop_index('ix_import_jobs_state')
        batch_op.drop_index('ix_import_jobs_recent')
    op.drop_table('import_jobs')

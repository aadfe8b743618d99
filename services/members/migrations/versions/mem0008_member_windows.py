"""member windows: each member's last 12 months kept summed, for the programme preview

Revision ID: mem0008
Revises: mem0007
Create Date: 2026-12-07

Adds ``member_windows`` (``services/members/windows.py``). The rows are written by the service: its event
handlers after each fact and, on a database that already has activity, every member's once the first night
after this release (job ``windows_rebuild``, run key ``mem0008``, recorded here as to do; the preview sums the
activity rows as before until it finished). A database without activity needs no such night.
"""

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = 'mem0008'
down_revision = 'mem0007'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('member_windows',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('computed_for', sa.Date(), nullable=False),
    sa.Column('spend_minor', sa.BigInteger(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('top_up_minor', sa.BigInteger(), nullable=False),
    sa.Column('visits_first', sa.Integer(), nullable=False),
    sa.Column('visits_return', sa.Integer(), nullable=False),
    sa.Column('visits_emergency', sa.Integer(), nullable=False),
    sa.Column('visits_free_clinic', sa.Integer(), nullable=False),
    sa.Column('visits_event', sa.Integer(), nullable=False),
    sa.Column('earliest_day', sa.Date(), nullable=True),
    sa.Column('next_day', sa.Date(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_member_windows'))
    )
    bind = op.get_bind()
    if any(bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first()
               for table in ('member_visits', 'member_points', 'member_top_ups')):
        from services.kit.models import UtcDateTime

        now = datetime.now(UTC)
        runs = sa.table('kit_job_runs', sa.column('job'), sa.column('run_key'), sa.column('processed'),
                        sa.column('batches'), sa.column('started_at', UtcDateTime()),
                        sa.column('updated_at', UtcDateTime()), sa.column('finished_at', UtcDateTime()))
        op.execute(runs.insert().values(job='windows_rebuild', run_key='mem0008', processed=0, batches=0,
                                        started_at=now, updated_at=now, finished_at=None))


def downgrade() -> None:
    op.execute("DELETE FROM kit_job_runs WHERE job = 'windows_rebuild'")
    op.drop_table('member_windows')

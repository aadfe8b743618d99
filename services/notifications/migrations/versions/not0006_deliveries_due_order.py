"""the scheduler's claim in its own order: ``ix_deliveries_due`` on (state, due_at, id)

Revision ID: not0006
Revises: not0005
Create Date: 2026-12-07

The scheduler claims due deliveries ``WHERE state = 'queued' AND due_at <= now ORDER BY due_at, id LIMIT n FOR UPDATE
SKIP LOCKED`` (``schedule.claim_due``). On (state, due_at) the index could not give the ``id`` order: PostgreSQL read
every due row and sorted them, and once many were due (an import's welcome messages) it read the whole table and
sorted instead (issue 17). With ``id`` in the index the rows come in the claim's order and the scan stops at its
``LIMIT``, however many are due. On PostgreSQL the new index is built ``CONCURRENTLY`` beside the old one, which is
then dropped (and the other way round on the way down): deliveries keep being queued and claimed meanwhile.
"""

from alembic import op

revision = 'not0006'
down_revision = 'not0005'
branch_labels = None
depends_on = None


def _replace(columns: list[str]) -> None:
    if op.get_bind().dialect.name != "postgresql":
        with op.batch_alter_table('deliveries', schema=None) as batch_op:
            batch_op.drop_index('ix_deliveries_due')
            batch_op.create_index('ix_deliveries_due', columns, unique=False)
        return
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS ix_deliveries_due_new")  # a build interrupted before
        op.create_index('ix_deliveries_due_new', 'deliveries', columns, unique=False, postgresql_concurrently=True)
        op.drop_index('ix_deliveries_due', table_name='deliveries', postgresql_concurrently=True, if_exists=True)
    op.execute("ALTER INDEX ix_deliveries_due_new RENAME TO ix_deliveries_due")


def upgrade() -> None:
    _replace(['state', 'due_at', 'id'])


def downgrade() -> None:
    _replace(['state', 'due_at'])

"""index of a member's debt lot

Revision ID: pts0012
Revises: pts0010
Create Date: 2026-12-07

The earn (``ledger._EARN_SQL``) pays a member's debt from the points it credits, and spending or reversing past
zero finds the member's debt lot (``ledger._debt_lot``): both looked for ``kind = 'debt'`` by member, which no
index served, so PostgreSQL read every lot of every member (measured: 2 to 5.5 ms an earn at 7,000 to 20,000 lots,
growing with the table; issue 17). On PostgreSQL the index is built ``CONCURRENTLY``: a large lots table keeps
taking writes while it is built.
"""

from alembic import op
from sqlalchemy import text

revision = 'pts0012'
down_revision = 'pts0010'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        with op.get_context().autocommit_block():
            op.create_index('ix_points_lots_debt', 'points_lots', ['member_id'], unique=False,
                            postgresql_where=text("kind = 'debt'"), postgresql_concurrently=True, if_not_exists=True)
    else:
        op.create_index('ix_points_lots_debt', 'points_lots', ['member_id'], unique=False,
                        sqlite_where=text("kind = 'debt'"))


def downgrade() -> None:
    op.drop_index('ix_points_lots_debt', table_name='points_lots')

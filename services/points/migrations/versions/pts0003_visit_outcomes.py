"""visit outcomes: what points made of each completed visit, for the cross-service visit audit

Revision ID: pts0003
Revises: pts0002
Create Date: 2026-12-06

Adds ``points_visit_outcomes`` (written with each visit's earn, or its lack of one, and updated with each
reversal) and ``points_visit_outcomes_since`` (when this revision ran). Visits that earned before it get a
row from their earn and reverse postings; a visit that earned nothing before it has no row, and the audit
knows not to expect one (``outcomes.effects`` answers ``noting`` False for visits completed before).
"""

from collections import defaultdict
from datetime import UTC, datetime

from alembic import op
import sqlalchemy as sa


revision = 'pts0003'
down_revision = 'pts0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    outcomes = op.create_table('points_visit_outcomes',
    sa.Column('visit_id', sa.String(length=128), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('state', sa.String(length=20), nullable=False),
    sa.Column('earned_points', sa.BigInteger(), nullable=False),
    sa.Column('reversed_points', sa.BigInteger(), nullable=False),
    sa.Column('bill_minor', sa.BigInteger(), nullable=False),
    sa.Column('completed_seen_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('visit_id', name=op.f('pk_points_visit_outcomes'))
    )
    since = op.create_table('points_visit_outcomes_since',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('since', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_visit_outcomes_since'))
    )
    op.bulk_insert(since, [{'id': 1, 'since': datetime.now(UTC)}])
    postings = sa.table('points_postings', sa.column('id'), sa.column('member_id', sa.Uuid()), sa.column('kind'),
                        sa.column('points'), sa.column('basis_minor'), sa.column('source'), sa.column('source_ref'),
                        sa.column('created_at', sa.DateTime(timezone=True)))
    rows = op.get_bind().execute(
        sa.select(postings.c.source_ref, postings.c.member_id, postings.c.kind, postings.c.points,
                  postings.c.basis_minor, postings.c.created_at)
        .where(postings.c.source == 'visit', postings.c.kind.in_(('earn', 'reverse')))
        .order_by(postings.c.id))
    found: dict[str, dict] = defaultdict(lambda: {'earned_points': 0, 'reversed_points': 0, 'bill_minor': 0})
    for visit_id, member_id, kind, points, basis, created_at in rows:
        row = found[visit_id]
        if kind == 'earn':
            row.setdefault('member_id', member_id)  # the first line is the member's own
            row.setdefault('completed_seen_at', created_at or datetime.now(UTC))
            row['earned_points'] += points
            row['bill_minor'] = max(row['bill_minor'], basis or 0)
        else:
            row['reversed_points'] += -points
    now = datetime.now(UTC)
    values = [{'visit_id': visit_id, 'state': 'earned', 'updated_at': now, **row}
              for visit_id, row in found.items() if 'member_id' in row]
    if values:
        op.bulk_insert(outcomes, values)


def downgrade() -> None:
    op.drop_table('points_visit_outcomes_since')
    op.drop_table('points_visit_outcomes')

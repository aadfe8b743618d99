"""pending points and family transfers

Revision ID: pts0004
Revises: pts0003
Create Date: 2026-12-06

Adds ``points_accounts.pending`` (points locked in the refund window; 0 for every existing account: nothing
was locked before), ``points_holds`` (one per locked visit line, read by the release job),
``points_pending_postings`` (the append-only ledger of locked points) and ``points_family_transfers``.
No existing table is rebuilt: the column is added in place (on SQLite, whose ``ALTER TABLE`` cannot add a
named table constraint, the check is part of the column).
"""

from alembic import op
import sqlalchemy as sa


revision = 'pts0004'
down_revision = 'pts0003'
branch_labels = None
depends_on = None

ID = sa.BigInteger().with_variant(sa.Integer(), 'sqlite')


def upgrade() -> None:
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE points_accounts ADD COLUMN pending BIGINT DEFAULT 0 NOT NULL '
                   'CONSTRAINT ck_points_accounts_pending_not_negative CHECK (pending >= 0)')
    else:
        op.add_column('points_accounts', sa.Column('pending', sa.BigInteger(), server_default=sa.text('0'),
                                                   nullable=False))
        op.create_check_constraint('pending_not_negative', 'points_accounts', 'pending >= 0')

    op.create_table('points_holds',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('visit_id', sa.String(length=128), nullable=False),
    sa.Column('rule', sa.String(length=16), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('basis_minor', sa.BigInteger(), nullable=True),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('expires_on', sa.Date(), nullable=False),
    sa.Column('release_on', sa.Date(), nullable=False),
    sa.Column('released_posting_id', ID, nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('remaining >= 0 AND remaining <= points', name=op.f('ck_points_holds_remaining_in_range')),
    sa.ForeignKeyConstraint(['member_id'], ['points_accounts.member_id'],
                            name=op.f('fk_points_holds_member_id_points_accounts')),
    sa.ForeignKeyConstraint(['released_posting_id'], ['points_postings.id'],
                            name=op.f('fk_points_holds_released_posting_id_points_postings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_holds')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_points_holds_dedupe_key')),
    sa.UniqueConstraint('released_posting_id', name=op.f('uq_points_holds_released_posting_id'))
    )
    with op.batch_alter_table('points_holds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_holds_visit_id'), ['visit_id'], unique=False)
        batch_op.create_index('ix_points_holds_due', ['release_on', 'id'], unique=False,
                              postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))

    op.create_table('points_pending_postings',
    sa.Column('id', ID, autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('hold_id', ID, nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('pending_after', sa.BigInteger(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('operator', sa.String(length=160), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'lock' AND points > 0) OR (kind IN ('cancel', 'release') AND points < 0)",
                       name=op.f('ck_points_pending_postings_sign_follows_kind')),
    sa.ForeignKeyConstraint(['hold_id'], ['points_holds.id'],
                            name=op.f('fk_points_pending_postings_hold_id_points_holds')),
    sa.ForeignKeyConstraint(['member_id'], ['points_accounts.member_id'],
                            name=op.f('fk_points_pending_postings_member_id_points_accounts')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_pending_postings')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_points_pending_postings_dedupe_key'))
    )
    with op.batch_alter_table('points_pending_postings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_pending_postings_hold_id'), ['hold_id'], unique=False)
        batch_op.create_index('ix_points_pending_postings_history', ['member_id', 'created_at', 'id'], unique=False)

    op.create_table('points_family_transfers',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('family_id', sa.Uuid(), nullable=False),
    sa.Column('from_member_id', sa.Uuid(), nullable=False),
    sa.Column('to_member_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('out_posting_id', sa.BigInteger(), nullable=False),
    sa.Column('in_posting_id', sa.BigInteger(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('operator', sa.String(length=160), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('from_member_id <> to_member_id', name=op.f('ck_points_family_transfers_two_members')),
    sa.CheckConstraint("(kind = 'points' AND points > 0) OR (kind = 'wallet' AND principal_minor >= 0 "
                       "AND bonus_minor >= 0 AND principal_minor + bonus_minor > 0)",
                       name=op.f('ck_points_family_transfers_something_moves')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_family_transfers')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_points_family_transfers_dedupe_key'))
    )
    with op.batch_alter_table('points_family_transfers', schema=None) as batch_op:
        for column in ('family_id', 'from_member_id', 'to_member_id'):
            batch_op.create_index(batch_op.f(f'ix_points_family_transfers_{column}'), [column], unique=False)


def downgrade() -> None:
    op.drop_table('points_family_transfers')
    op.drop_table('points_pending_postings')
    op.drop_table('points_holds')
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE points_accounts DROP COLUMN pending')
    else:
        op.drop_constraint(op.f('ck_points_accounts_pending_not_negative'), 'points_accounts', type_='check')
        op.drop_column('points_accounts', 'pending')

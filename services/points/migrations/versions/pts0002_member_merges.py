"""member merges: merges applied, what each moved, aliases, transfer postings

Revision ID: pts0002
Revises: pts0001
Create Date: 2026-11-23

Adds ``points_merges`` and ``points_merge_moves`` (what a ``member_merged`` moved, to move it back on
``member_unmerged``), ``points_members.merged_into_id`` (the alias of a merged member),
``points_lots.moved_from_id``, and the ``transfer_out``/``transfer_in`` kinds of points and stored-value
postings (their sign checks are replaced).
"""

from alembic import op
import sqlalchemy as sa


revision = 'pts0002'
down_revision = 'pts0001'
branch_labels = None
depends_on = None

POINTS_SIGN_BEFORE = ("(kind = 'earn' AND points > 0) OR (kind = 'return' AND points > 0) "
                      "OR (kind IN ('redeem', 'reverse', 'expire', 'deduct') AND points < 0)")
POINTS_SIGN = POINTS_SIGN_BEFORE + " OR (kind IN ('transfer_out', 'transfer_in') AND points <> 0)"
WALLET_SIGN_BEFORE = ("(kind IN ('top_up', 'refund') AND principal_minor >= 0 AND bonus_minor >= 0 "
                      "AND principal_minor + bonus_minor > 0) OR (kind = 'payment' AND principal_minor <= 0 "
                      "AND bonus_minor <= 0 AND principal_minor + bonus_minor < 0)")
WALLET_SIGN = ("(kind IN ('top_up', 'refund') AND principal_minor >= 0 AND bonus_minor >= 0 "
               "AND principal_minor + bonus_minor > 0) OR (kind IN ('payment', 'transfer_out') "
               "AND principal_minor <= 0 AND bonus_minor <= 0 AND principal_minor + bonus_minor < 0) "
               "OR (kind = 'transfer_in' AND principal_minor >= 0 AND bonus_minor >= 0 "
               "AND principal_minor + bonus_minor > 0)")


def _replace_check(table: str, name: str, condition: str) -> None:
    with op.batch_alter_table(table, schema=None) as batch_op:
        batch_op.drop_constraint(op.f(f'ck_{table}_{name}'), type_='check')
        batch_op.create_check_constraint(name, condition)


def upgrade() -> None:
    op.create_table('points_merges',
    sa.Column('merge_id', sa.Uuid(), nullable=False),
    sa.Column('survivor_id', sa.Uuid(), nullable=False),
    sa.Column('merged_id', sa.Uuid(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('merged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('unmerged_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('wallet_shortfall_minor', sa.BigInteger(), nullable=False),
    sa.PrimaryKeyConstraint('merge_id', name=op.f('pk_points_merges'))
    )
    with op.batch_alter_table('points_merges', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_merges_merged_id'), ['merged_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_points_merges_survivor_id'), ['survivor_id'], unique=False)

    op.create_table('points_merge_moves',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('merge_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('from_lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('to_lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('coupon_id', sa.Uuid(), nullable=True),
    sa.ForeignKeyConstraint(['from_lot_id'], ['points_lots.id'],
                            name=op.f('fk_points_merge_moves_from_lot_id_points_lots')),
    sa.ForeignKeyConstraint(['merge_id'], ['points_merges.merge_id'],
                            name=op.f('fk_points_merge_moves_merge_id_points_merges')),
    sa.ForeignKeyConstraint(['to_lot_id'], ['points_lots.id'],
                            name=op.f('fk_points_merge_moves_to_lot_id_points_lots')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_merge_moves'))
    )
    with op.batch_alter_table('points_merge_moves', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_merge_moves_merge_id'), ['merge_id'], unique=False)

    with op.batch_alter_table('points_members', schema=None) as batch_op:
        batch_op.add_column(sa.Column('merged_into_id', sa.Uuid(), nullable=True))
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.add_column(sa.Column('moved_from_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'),
                                      nullable=True))
        batch_op.create_foreign_key(batch_op.f('fk_points_lots_moved_from_id_points_lots'), 'points_lots',
                                    ['moved_from_id'], ['id'])
    _replace_check('points_postings', 'sign_follows_kind', POINTS_SIGN)
    _replace_check('wallet_postings', 'sign_follows_kind', WALLET_SIGN)


def downgrade() -> None:
    _replace_check('wallet_postings', 'sign_follows_kind', WALLET_SIGN_BEFORE)
    _replace_check('points_postings', 'sign_follows_kind', POINTS_SIGN_BEFORE)
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f('fk_points_lots_moved_from_id_points_lots'), type_='foreignkey')
        batch_op.drop_column('moved_from_id')
    with op.batch_alter_table('points_members', schema=None) as batch_op:
        batch_op.drop_column('merged_into_id')
    with op.batch_alter_table('points_merge_moves', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_merge_moves_merge_id'))
    op.drop_table('points_merge_moves')
    with op.batch_alter_table('points_merges', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_merges_survivor_id'))
        batch_op.drop_index(batch_op.f('ix_points_merges_merged_id'))
    op.drop_table('points_merges')

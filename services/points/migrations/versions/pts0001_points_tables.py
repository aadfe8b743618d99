"""points tables

Revision ID: pts0001
Revises: 
Create Date: 2026-11-23
"""

from alembic import op
import sqlalchemy as sa


revision = 'pts0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('coupons',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=16), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('source', sa.String(length=12), nullable=False),
    sa.Column('title', sa.String(length=120), nullable=False),
    sa.Column('category', sa.String(length=24), nullable=True),
    sa.Column('value_minor', sa.BigInteger(), nullable=True),
    sa.Column('rate_bp', sa.Integer(), nullable=True),
    sa.Column('max_discount_minor', sa.BigInteger(), nullable=True),
    sa.Column('min_spend_minor', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('valid_from', sa.Date(), nullable=False),
    sa.Column('valid_until', sa.Date(), nullable=False),
    sa.Column('state', sa.String(length=10), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('redemption_id', sa.Uuid(), nullable=True),
    sa.Column('issued_by', sa.String(length=160), nullable=False),
    sa.Column('issued_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('redeemed_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('redeemed_bill_id', sa.String(length=128), nullable=True),
    sa.Column('redeemed_branch', sa.String(length=16), nullable=True),
    sa.Column('discount_minor', sa.BigInteger(), nullable=True),
    sa.Column('voided_reason', sa.Text(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('(value_minor IS NOT NULL AND value_minor > 0 AND rate_bp IS NULL) OR (rate_bp IS NOT NULL AND rate_bp > 0 AND rate_bp <= 10000 AND value_minor IS NULL)', name=op.f('ck_coupons_value_or_rate')),
    sa.CheckConstraint('valid_until >= valid_from', name=op.f('ck_coupons_window')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_coupons')),
    sa.UniqueConstraint('code', name=op.f('uq_coupons_code')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_coupons_dedupe_key'))
    )
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.create_index('ix_coupons_member', ['member_id', 'issued_at', 'id'], unique=False)
        batch_op.create_index('ix_coupons_to_expire', ['valid_until', 'id'], unique=False, postgresql_where=sa.text("state = 'issued'"), sqlite_where=sa.text("state = 'issued'"))

    op.create_table('points_accounts',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('balance', sa.BigInteger(), nullable=False),
    sa.Column('earned_total', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_points_accounts'))
    )
    op.create_table('points_members',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('home_branch', sa.String(length=16), nullable=True),
    sa.Column('referrer_id', sa.Uuid(), nullable=True),
    sa.Column('tier', sa.String(length=24), nullable=False),
    sa.Column('tier_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('segment', sa.String(length=4), nullable=True),
    sa.Column('segment_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('status', sa.String(length=16), nullable=False),
    sa.Column('status_as_of', sa.DateTime(timezone=True), nullable=True),
    sa.Column('enrolled_at', sa.DateTime(timezone=True), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_points_members'))
    )
    with op.batch_alter_table('points_members', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_members_referrer_id'), ['referrer_id'], unique=False)

    op.create_table('points_visit_refunds',
    sa.Column('refund_id', sa.String(length=128), nullable=False),
    sa.Column('visit_id', sa.String(length=128), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('refunded_minor', sa.BigInteger(), nullable=False),
    sa.Column('full', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('refund_id', name=op.f('pk_points_visit_refunds'))
    )
    with op.batch_alter_table('points_visit_refunds', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_visit_refunds_visit_id'), ['visit_id'], unique=False)

    op.create_table('rewards',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('code', sa.String(length=32), nullable=False),
    sa.Column('name', sa.String(length=120), nullable=False),
    sa.Column('description', sa.Text(), nullable=True),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('points_price', sa.BigInteger(), nullable=False),
    sa.Column('stock', sa.Integer(), nullable=True),
    sa.Column('tiers', sa.String(length=200), nullable=False),
    sa.Column('coupon_category', sa.String(length=24), nullable=True),
    sa.Column('coupon_value_minor', sa.BigInteger(), nullable=True),
    sa.Column('coupon_rate_bp', sa.Integer(), nullable=True),
    sa.Column('coupon_valid_days', sa.Integer(), nullable=True),
    sa.Column('active', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('points_price > 0', name=op.f('ck_rewards_price_positive')),
    sa.CheckConstraint('stock IS NULL OR stock >= 0', name=op.f('ck_rewards_stock_not_negative')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_rewards')),
    sa.UniqueConstraint('code', name=op.f('uq_rewards_code'))
    )
    op.create_table('wallet_accounts',
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('largest_top_up_minor', sa.BigInteger(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint('principal_minor >= 0 AND bonus_minor >= 0', name=op.f('ck_wallet_accounts_never_negative')),
    sa.PrimaryKeyConstraint('member_id', name=op.f('pk_wallet_accounts'))
    )
    op.create_table('points_postings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('rule', sa.String(length=16), nullable=True),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('balance_after', sa.BigInteger(), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=True),
    sa.Column('source', sa.String(length=24), nullable=False),
    sa.Column('source_ref', sa.String(length=128), nullable=True),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('operator', sa.String(length=160), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('basis_minor', sa.BigInteger(), nullable=True),
    sa.Column('reverses_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('redemption_id', sa.Uuid(), nullable=True),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'earn' AND points > 0) OR (kind = 'return' AND points > 0) OR (kind IN ('redeem', 'reverse', 'expire', 'deduct') AND points < 0)", name=op.f('ck_points_postings_sign_follows_kind')),
    sa.ForeignKeyConstraint(['member_id'], ['points_accounts.member_id'], name=op.f('fk_points_postings_member_id_points_accounts')),
    sa.ForeignKeyConstraint(['reverses_id'], ['points_postings.id'], name=op.f('fk_points_postings_reverses_id_points_postings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_postings')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_points_postings_dedupe_key'))
    )
    with op.batch_alter_table('points_postings', schema=None) as batch_op:
        batch_op.create_index('ix_points_postings_history', ['member_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_points_postings_reverses_id'), ['reverses_id'], unique=False)
        batch_op.create_index('ix_points_postings_source', ['source', 'source_ref'], unique=False)

    op.create_table('wallet_postings',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=12), nullable=False),
    sa.Column('principal_minor', sa.BigInteger(), nullable=False),
    sa.Column('bonus_minor', sa.BigInteger(), nullable=False),
    sa.Column('principal_after', sa.BigInteger(), nullable=False),
    sa.Column('bonus_after', sa.BigInteger(), nullable=False),
    sa.Column('currency', sa.String(length=3), nullable=False),
    sa.Column('dedupe_key', sa.String(length=200), nullable=False),
    sa.Column('bill_id', sa.String(length=128), nullable=True),
    sa.Column('refunds_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('operator', sa.String(length=160), nullable=False),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind IN ('top_up', 'refund') AND principal_minor >= 0 AND bonus_minor >= 0 AND principal_minor + bonus_minor > 0) OR (kind = 'payment' AND principal_minor <= 0 AND bonus_minor <= 0 AND principal_minor + bonus_minor < 0)", name=op.f('ck_wallet_postings_sign_follows_kind')),
    sa.ForeignKeyConstraint(['member_id'], ['wallet_accounts.member_id'], name=op.f('fk_wallet_postings_member_id_wallet_accounts')),
    sa.ForeignKeyConstraint(['refunds_id'], ['wallet_postings.id'], name=op.f('fk_wallet_postings_refunds_id_wallet_postings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_wallet_postings')),
    sa.UniqueConstraint('dedupe_key', name=op.f('uq_wallet_postings_dedupe_key'))
    )
    with op.batch_alter_table('wallet_postings', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_wallet_postings_bill_id'), ['bill_id'], unique=False)
        batch_op.create_index('ix_wallet_postings_history', ['member_id', 'created_at', 'id'], unique=False)
        batch_op.create_index(batch_op.f('ix_wallet_postings_refunds_id'), ['refunds_id'], unique=False)

    op.create_table('points_lots',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('kind', sa.String(length=8), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('remaining', sa.BigInteger(), nullable=False),
    sa.Column('expires_on', sa.Date(), nullable=True),
    sa.Column('warned', sa.Boolean(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.CheckConstraint("(kind = 'earn' AND remaining >= 0 AND remaining <= points) OR (kind = 'debt' AND remaining <= 0)", name=op.f('ck_points_lots_remaining_in_range')),
    sa.ForeignKeyConstraint(['member_id'], ['points_accounts.member_id'], name=op.f('fk_points_lots_member_id_points_accounts')),
    sa.ForeignKeyConstraint(['posting_id'], ['points_postings.id'], name=op.f('fk_points_lots_posting_id_points_postings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_lots')),
    sa.UniqueConstraint('posting_id', name=op.f('uq_points_lots_posting_id'))
    )
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.create_index('ix_points_lots_expiring', ['expires_on', 'member_id', 'id'], unique=False, postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))
        batch_op.create_index('ix_points_lots_open', ['member_id', 'expires_on', 'id'], unique=False, postgresql_where=sa.text('remaining <> 0'), sqlite_where=sa.text('remaining <> 0'))
        batch_op.create_index('ix_points_lots_to_warn', ['expires_on', 'id'], unique=False, postgresql_where=sa.text('remaining > 0 AND NOT warned'), sqlite_where=sa.text('remaining > 0 AND NOT warned'))

    op.create_table('redemptions',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('member_id', sa.Uuid(), nullable=False),
    sa.Column('kind', sa.String(length=16), nullable=False),
    sa.Column('reward_id', sa.Uuid(), nullable=True),
    sa.Column('quantity', sa.Integer(), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.Column('amount_minor', sa.BigInteger(), nullable=True),
    sa.Column('bill_id', sa.String(length=128), nullable=True),
    sa.Column('state', sa.String(length=12), nullable=False),
    sa.Column('branch', sa.String(length=16), nullable=True),
    sa.Column('operator', sa.String(length=160), nullable=False),
    sa.Column('posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('return_posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=True),
    sa.Column('coupon_id', sa.Uuid(), nullable=True),
    sa.Column('reason', sa.Text(), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['posting_id'], ['points_postings.id'], name=op.f('fk_redemptions_posting_id_points_postings')),
    sa.ForeignKeyConstraint(['return_posting_id'], ['points_postings.id'], name=op.f('fk_redemptions_return_posting_id_points_postings')),
    sa.ForeignKeyConstraint(['reward_id'], ['rewards.id'], name=op.f('fk_redemptions_reward_id_rewards')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_redemptions'))
    )
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.create_index('ix_redemptions_bill', ['bill_id'], unique=False)
        batch_op.create_index('ix_redemptions_member', ['member_id', 'created_at', 'id'], unique=False)

    op.create_table('points_lot_moves',
    sa.Column('id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), autoincrement=True, nullable=False),
    sa.Column('lot_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('posting_id', sa.BigInteger().with_variant(sa.Integer(), 'sqlite'), nullable=False),
    sa.Column('points', sa.BigInteger(), nullable=False),
    sa.ForeignKeyConstraint(['lot_id'], ['points_lots.id'], name=op.f('fk_points_lot_moves_lot_id_points_lots')),
    sa.ForeignKeyConstraint(['posting_id'], ['points_postings.id'], name=op.f('fk_points_lot_moves_posting_id_points_postings')),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_points_lot_moves'))
    )
    with op.batch_alter_table('points_lot_moves', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_points_lot_moves_lot_id'), ['lot_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_points_lot_moves_posting_id'), ['posting_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('points_lot_moves', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_lot_moves_posting_id'))
        batch_op.drop_index(batch_op.f('ix_points_lot_moves_lot_id'))

    op.drop_table('points_lot_moves')
    with op.batch_alter_table('redemptions', schema=None) as batch_op:
        batch_op.drop_index('ix_redemptions_member')
        batch_op.drop_index('ix_redemptions_bill')

    op.drop_table('redemptions')
    with op.batch_alter_table('points_lots', schema=None) as batch_op:
        batch_op.drop_index('ix_points_lots_to_warn', postgresql_where=sa.text('remaining > 0 AND NOT warned'), sqlite_where=sa.text('remaining > 0 AND NOT warned'))
        batch_op.drop_index('ix_points_lots_open', postgresql_where=sa.text('remaining <> 0'), sqlite_where=sa.text('remaining <> 0'))
        batch_op.drop_index('ix_points_lots_expiring', postgresql_where=sa.text('remaining > 0'), sqlite_where=sa.text('remaining > 0'))

    op.drop_table('points_lots')
    with op.batch_alter_table('wallet_postings', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_wallet_postings_refunds_id'))
        batch_op.drop_index('ix_wallet_postings_history')
        batch_op.drop_index(batch_op.f('ix_wallet_postings_bill_id'))

    op.drop_table('wallet_postings')
    with op.batch_alter_table('points_postings', schema=None) as batch_op:
        batch_op.drop_index('ix_points_postings_source')
        batch_op.drop_index(batch_op.f('ix_points_postings_reverses_id'))
        batch_op.drop_index('ix_points_postings_history')

    op.drop_table('points_postings')
    op.drop_table('wallet_accounts')
    op.drop_table('rewards')
    with op.batch_alter_table('points_visit_refunds', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_visit_refunds_visit_id'))

    op.drop_table('points_visit_refunds')
    with op.batch_alter_table('points_members', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_points_members_referrer_id'))

    op.drop_table('points_members')
    op.drop_table('points_accounts')
    with op.batch_alter_table('coupons', schema=None) as batch_op:
        batch_op.drop_index('ix_coupons_to_expire', postgresql_where=sa.text("state = 'issued'"), sqlite_where=sa.text("state = 'issued'"))
        batch_op.drop_index('ix_coupons_member')

    op.drop_table('coupons')

"""wallet openings: the ``opening`` kind of stored-value postings (imported opening balances)

Revision ID: pts0005
Revises: pts0004
Create Date: 2026-12-06

Replaces the sign check of ``wallet_postings`` so that an ``opening`` (an opening balance brought from an
old system by an import) is credited as a top-up is: both parts non-negative, together positive. Points
openings need no change: they are ``earn`` postings with the rule ``opening``.
"""

from alembic import op


revision = 'pts0005'
down_revision = 'pts0004'
branch_labels = None
depends_on = None

WALLET_SIGN_BEFORE = ("(kind IN ('top_up', 'refund') AND principal_minor >= 0 AND bonus_minor >= 0 "
                      "AND principal_minor + bonus_minor > 0) OR (kind IN ('payment', 'transfer_out') "
                      "AND principal_minor <= 0 AND bonus_minor <= 0 AND principal_minor + bonus_minor < 0) "
                      "OR (kind = 'transfer_in' AND principal_minor >= 0 AND bonus_minor >= 0 "
                      "AND principal_minor + bonus_minor > 0)")
WALLET_SIGN = WALLET_SIGN_BEFORE.replace("kind IN ('top_up', 'refund')", "kind IN ('top_up', 'refund', 'opening')")


def _replace_check(condition: str) -> None:
    with op.batch_alter_table('wallet_postings', schema=None) as batch_op:
        batch_op.drop_constraint(op.f('ck_wallet_postings_sign_follows_kind'), type_='check')
        batch_op.create_check_constraint('sign_follows_kind', condition)


def upgrade() -> None:
    _replace_check(WALLET_SIGN)


def downgrade() -> None:
    _replace_check(WALLET_SIGN_BEFORE)

"""the ledger's own links no longer checked per row by foreign keys (PostgreSQL)

Revision ID: pts0014
Revises: pts0013
Create Date: 2026-12-07

A foreign key check is a ``SELECT ... FOR KEY SHARE`` of the parent row, run by PostgreSQL for each row written,
locking (and so writing to) a row the same transaction has just written or locked: an earn ran five of them
(issue 17). These five guard links that only the ledger writes (``ledger.py``), each in the statement or
transaction that wrote or locked the row it points to, in tables from which nothing is ever deleted:

- ``points_postings.member_id`` and ``points_lots.member_id`` -> ``points_accounts``: every posting and every lot is
  written after (or in the same statement as) the upsert or ``FOR UPDATE`` of its member's account;
- ``points_lots.posting_id`` -> ``points_postings``: the posting's id comes from its own ``INSERT ... RETURNING``
  in the same statement or transaction (``NULL`` for the debt lot and lots opened by a transfer);
- ``points_lot_moves.lot_id`` and ``.posting_id``: ids returned by the inserts of the same statement or
  transaction, or of lots read under the account's lock.

What they guarded is checked instead by the nightly reconciliation (``reconciliation.check_links``: a posting or lot
without its account, a lot without its posting, a move without its lot or posting). The foreign keys that link a
row to one written by an earlier transaction stay: ``points_postings.reverses_id`` (a reversal),
``points_lots.moved_from_id`` (a merge), and every other table's. On SQLite the constraints stay (dropping one
rebuilds the table there, and the cost they save is PostgreSQL's); the downgrade adds them back ``NOT VALID``
then validates them (no long lock on a large ledger while the rows are checked).
"""

from alembic import op

revision = 'pts0014'
down_revision = 'pts0013'
branch_labels = None
depends_on = None

LINKS = (  # (table, constraint, column, parent table, parent column): pts0001's names
    ("points_postings", "fk_points_postings_member_id_points_accounts", "member_id", "points_accounts", "member_id"),
    ("points_lots", "fk_points_lots_member_id_points_accounts", "member_id", "points_accounts", "member_id"),
    ("points_lots", "fk_points_lots_posting_id_points_postings", "posting_id", "points_postings", "id"),
    ("points_lot_moves", "fk_points_lot_moves_lot_id_points_lots", "lot_id", "points_lots", "id"),
    ("points_lot_moves", "fk_points_lot_moves_posting_id_points_postings", "posting_id", "points_postings", "id"),
)


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, _column, _parent, _key in LINKS:
        op.execute(f"ALTER TABLE {table} DROP CONSTRAINT IF EXISTS {name}")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table, name, column, parent, key in LINKS:
        op.execute(f"ALTER TABLE {table} ADD CONSTRAINT {name} FOREIGN KEY ({column}) REFERENCES {parent} ({key}) "
                   "NOT VALID")
        op.execute(f"ALTER TABLE {table} VALIDATE CONSTRAINT {name}")

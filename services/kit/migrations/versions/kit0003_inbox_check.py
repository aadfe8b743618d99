"""inbox check: a function that refuses an event already handled (PostgreSQL)

Revision ID: kit0003
Revises: kit0002
Create Date: 2026-12-07

``kit_inbox_unseen(consumer, event_id)`` raises SQLSTATE ``CL001`` when the handler ``consumer`` has already
applied ``event_id``, and returns nothing otherwise. The kit sends it in the same query as a handler's first
statement (``kit.inbox``): a redelivered event fails that query instead of costing a round trip of its own to
look itself up. SQLite has no such functions and does not need one (the kit looks the event up there).
"""

from alembic import op

revision = 'kit0003'
down_revision = 'kit0002'
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("""
CREATE OR REPLACE FUNCTION kit_inbox_unseen(p_consumer text, p_event_id text) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF EXISTS (SELECT 1 FROM kit_inbox WHERE consumer = p_consumer AND event_id = p_event_id) THEN
        RAISE EXCEPTION 'event % already handled by %', p_event_id, p_consumer USING ERRCODE = 'CL001';
    END IF;
END
$$
""")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP FUNCTION IF EXISTS kit_inbox_unseen(text, text)")

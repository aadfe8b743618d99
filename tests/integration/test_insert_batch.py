"""A batch's rows inserted by ``kit.insert_batch.insert_rows`` are stored exactly as SQLAlchemy's insert stores
them (encrypted columns sealed, times in UTC, defaults), and a unique violation is still an ``IntegrityError``
that a savepoint takes back."""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime, timedelta, timezone

import pytest
from sqlalchemy import insert, select
from sqlalchemy.exc import IntegrityError

from services.kit.insert_batch import insert_rows
from services.members.models import Member
from tests.harness import store_for

MEMBERS = Member.__table__


def _row(n: int) -> dict:
    at = datetime(2026, 12, 7, 11, 30, tzinfo=timezone(timedelta(hours=8)))  # stored as 03:30 UTC
    return {"id": uuid.uuid4(), "card_number": f"C{n:08d}", "referral_code": f"R{n:08d}", "referred_by_id": None,
            "full_name": f"王伟 {n} 100% 'quoted'", "name_index": f"n{n}", "name_birth_index": f"nb{n}",
            "phone": f"+86139{n:08d}", "phone_index": f"p{n}", "birth_date": "1980-03-05", "birth_mmdd": "03-05",
            "document_type": None, "document_number": None, "document_index": None, "preferred_language": "zh-Hans",
            "consent_sms": True, "consent_email": False, "consents_updated_at": at, "home_branch": "SH01",
            "source": "import", "enrolled_at": at, "updated_at": at, "tier_since": at,
            "tier_review_on": date(2027, 12, 7)}  # gender, status, tier, consents left out: their defaults


def _stored(session, ids):
    columns = [c for c in MEMBERS.columns if c.name not in ("id", "card_number", "referral_code", "phone_index",
                                                              "name_index", "name_birth_index", "full_name", "phone")]
    return [tuple(getattr(member, c.key) for c in columns) + (member.full_name.split(" ")[0], member.phone[:6])
            for member in session.scalars(select(Member).where(Member.id.in_(ids)).order_by(Member.card_number))]


@pytest.mark.backends("postgresql", "sqlite")
def test_rows_are_stored_as_sqlalchemys_insert_stores_them_and_a_collision_is_an_integrity_error(databases, backend):
    url = databases.fresh(backend, "members")
    store = store_for(url)
    try:
        ours, theirs = [_row(n) for n in range(3)], [_row(n) for n in range(10, 13)]
        with store.transaction() as session:
            insert_rows(session, MEMBERS, ours)
            session.execute(insert(MEMBERS), theirs)
        with store.transaction() as session:
            assert _stored(session, [r["id"] for r in ours]) == _stored(session, [r["id"] for r in theirs])
            member = session.get(Member, ours[1]["id"])
            assert member.full_name == "王伟 1 100% 'quoted'" and member.phone == "+8613900000001"
            assert member.enrolled_at == datetime(2026, 12, 7, 3, 30, tzinfo=UTC)
            assert (member.gender, member.status, member.tier, member.version) == ("undisclosed", "active",
                                                                                    "standard", 1)
            raw = session.execute(select(MEMBERS.c.phone.cast(MEMBERS.c.card_number.type)).where(
                MEMBERS.c.id == ours[1]["id"])).scalar_one()
            assert raw.startswith("v1.") and "139" not in raw  # sealed, not in the clear
        with store.transaction() as session:
            again = {**_row(20), "phone_index": "p1"}  # the same phone as one of ours
            with pytest.raises(IntegrityError), session.begin_nested():
                insert_rows(session, MEMBERS, [_row(21), again])
            assert session.execute(select(MEMBERS.c.id).where(MEMBERS.c.card_number == "C00000021")).first() is None
            insert_rows(session, MEMBERS, [_row(22)])  # the transaction carries on after the savepoint
        with store.transaction() as session:
            assert session.execute(select(MEMBERS.c.id).where(MEMBERS.c.card_number == "C00000022")).first()
    finally:
        store.dispose()


@pytest.mark.backends("postgresql")
def test_a_value_shared_by_every_row_is_quoted_once_into_the_same_statement(databases, backend):
    """The batch's time, a date, None, a string with ``%`` given as the same object in every row are quoted once;
    the statement is the one quoting every value row by row gives, and the rows are stored as SQLAlchemy stores
    them. Equal values that are not the same object (``True`` and ``1``) are quoted row by row."""
    from services.kit.insert_batch import _template

    url = databases.fresh(backend, "members")
    store = store_for(url)
    at, on, shared = datetime(2026, 12, 7, 3, 30, tzinfo=UTC), date(2027, 12, 7), "nb 100% 'shared'"

    def rows(first: int) -> list[dict]:
        return [{**_row(n), "consents_updated_at": at, "enrolled_at": at, "updated_at": at, "tier_since": at,
                 "tier_review_on": on, "name_birth_index": shared, "consent_sms": True}
                for n in range(first, first + 3)]

    try:
        with store.transaction() as session:
            cursor = session.connection().connection.cursor()
            processed = [[True, at, None, shared, n] for n in (1, 2, 3)] + [[1, at, None, shared, 4]]
            template, varying = _template(cursor, processed)
            assert varying == [0, 4]  # True and 1 are equal, not the same: quoted row by row
            assert [cursor.mogrify(template, [row[i] for i in varying]) for row in processed] == [
                cursor.mogrify("(" + ",".join(["%s"] * 5) + ")", row) for row in processed]
            assert _template(cursor, processed[:1])[1] == [0, 1, 2, 3, 4]  # one row: nothing to share
            ours, theirs = rows(0), rows(10)
            insert_rows(session, MEMBERS, ours)
            session.execute(insert(MEMBERS), theirs)
        with store.transaction() as session:
            assert _stored(session, [r["id"] for r in ours]) == _stored(session, [r["id"] for r in theirs])
            stored = session.execute(select(MEMBERS.c.name_birth_index, MEMBERS.c.enrolled_at).where(
                MEMBERS.c.id == ours[2]["id"])).one()
            assert tuple(stored) == (shared, at)
    finally:
        store.dispose()


@pytest.mark.backends("postgresql", "sqlite")
def test_rows_that_collide_can_be_skipped_and_the_inserted_ones_named(databases, backend):
    """``skip_conflicts_on`` + ``returning``: a row whose unique columns another row holds (stored, or earlier in
    the batch) is left out, and the ids answered are those of the rows inserted, as the column gives them."""
    url = databases.fresh(backend, "members")
    store = store_for(url)
    try:
        with store.transaction() as session:
            insert_rows(session, MEMBERS, [_row(1)])
        rows = [{**_row(2), "card_number": "C00000001"}, _row(3), {**_row(4), "card_number": "C00000003"}]
        with store.transaction() as session:
            inserted = insert_rows(session, MEMBERS, rows, skip_conflicts_on=("card_number",), returning="id")
        assert inserted == [rows[1]["id"]] and isinstance(inserted[0], uuid.UUID)
        with store.transaction() as session:
            assert session.scalar(select(MEMBERS.c.id).where(MEMBERS.c.card_number == "C00000003")) == rows[1]["id"]
            assert insert_rows(session, MEMBERS, [_row(5)]) == []
    finally:
        store.dispose()

"""Each member's last 12 months kept summed (``member_windows``, ``services/members/windows.py``): kept by the event
handlers and merges, brought up to date by the nightly job as the window moves, and the programme preview read
from them answering what the statement it replaced answers (``preview_before.py``), on a seeded membership."""

from __future__ import annotations

import copy
import uuid
from datetime import date, timedelta

import pytest
from sqlalchemy import func, not_, select, true

from services.kit.caller import Identity
from services.kit.clock import utcnow
from services.kit.models import JobRun
from services.members import nightly, programme_versions, standings, windows
from services.members.models import MemberWindow
from services.members.rules import tiers
from services.members.rules.programme import DEFAULT_PROGRAMME, programme_document
from tests.harness import store_for
from tests.integration import preview_before
from tests.integration.members_world import ZONE, start_world, today

ADMIN = Identity(kind="staff", subject="u0", role="group_admin", branches=("*",))


@pytest.fixture
def world(start_service, rpc, backend, amqp_uri):
    return start_world(start_service, rpc, backend, amqp_uri)


def kept_and_summed(url: str, day: date) -> tuple[dict, dict, int]:
    """Per member, the kept sums fresh for ``day`` and the sums of the activity rows (members with any sum
    only), and how many rows are not fresh for ``day``."""
    first, last = tiers.window(day)
    store = store_for(url)
    try:
        with store.transaction() as session:
            def nonzero(rows) -> dict:
                return {row.member_id: sums for row in rows
                        if any(sums := tuple(int(row._mapping[name]) for name in windows.SUMS))}

            kept = nonzero(session.execute(select(MemberWindow.__table__).where(windows.fresh(first, last))))
            summed = nonzero(session.execute(windows.summed(lambda column: true(), first, last)))
            stale = session.scalar(select(func.count()).select_from(MemberWindow).where(
                not_(windows.fresh(first, last))))
            return kept, summed, stale
    finally:
        store.dispose()


def test_the_handlers_mark_each_member_s_sums_and_the_night_makes_them_add_up(world, rpc):
    spender, merged, old, early = (uuid.UUID(world.enrol()) for _ in range(4))
    visit = uuid.uuid4()
    world.visit(str(spender), 300_000, visit_id=visit)
    world.refund(str(spender), visit, 100_000)
    posting = world.earn(str(spender), 500)["posting_id"]
    world.reverse_points(str(spender), posting, 200)
    world.top_up(str(spender), 100_000)
    world.top_up(str(spender), 50_000)
    world.visit(str(merged), 200_000, kind="first")
    world.visit(str(merged), 0, kind="free_clinic")
    world.visit(str(old), 90_000, completed_at=utcnow() - timedelta(days=400))  # before the window: nothing
    world.visit(str(early), 70_000, completed_at=utcnow() + timedelta(days=3))  # dated ahead: not yet

    # each handler only marked its member's row out of date (with its commit): the preview sums them live ...
    kept, summed, stale = kept_and_summed(world.url, today())
    assert kept == {} and stale == 4 and set(summed) == {spender, merged}

    # ... a merge recomputes both members' rows at once ...
    admin = rpc(caller=ADMIN).members
    admin.merge_members(str(spender), {"merged_id": str(merged), "reason": "same person"}, idempotency_key="m")
    kept, summed, stale = kept_and_summed(world.url, today())
    assert kept == summed and stale == 2 and merged not in kept  # old and early: still marked
    row = {name: kept[spender][index] for index, name in enumerate(windows.SUMS)}
    assert (row["spend_minor"], row["points"], row["top_up_minor"], row["visits_return"], row["visits_first"]) == (
        400_000, 300, 100_000, 1, 1)

    # ... and the night recomputes the rest
    tomorrow = today() + timedelta(days=1)
    world.night(tomorrow)
    kept, summed, stale = kept_and_summed(world.url, tomorrow)
    assert kept == summed and stale == 0 and old not in kept and early not in kept
    # three days on, the visit dated ahead is in the window: that member's row is no longer fresh until the night
    later = today() + timedelta(days=3)
    kept, summed, stale = kept_and_summed(world.url, later)
    assert stale == 1 and early in summed and early not in kept
    world.night(later)
    assert kept_and_summed(world.url, later) == (summed, summed, 0)


def proposals() -> list:
    cheaper, dearer, visits = (copy.deepcopy(programme_document(DEFAULT_PROGRAMME)) for _ in range(3))
    cheaper["tiers"][1]["thresholds"]["spend_minor"] = 100_000
    dearer["tiers"][1]["thresholds"]["spend_minor"] = 800_000
    dearer["tiers"][2]["thresholds"]["points_12m"] = 40_000
    visits["tiers"][1]["thresholds"]["visits_12m"] = 3
    visits["tier_visit_kinds"] = ["return", "free_clinic"]
    return [programme_versions.parse(document, "CNY") for document in (cheaper, dearer, visits)]


@pytest.mark.timeout(600)
def test_the_preview_from_kept_sums_answers_what_the_statement_it_replaced_answers(monkeypatch):
    """3,000 seeded members (COPY: no handler ran, so the rows are written by the one-off rebuild as after the
    migration on a database with activity); then 40 days on, when the window has moved past many members'
    first visit (their rows summed live until the night: named, or by a subquery when many), and after that
    night."""
    from tests.harness import pg_admin
    from tests.perf.test_members_nightly import DAY, prepare

    url, _written = prepare(3000)  # a migrated database, the benchmarks' synthetic members written with COPY
    store = store_for(url)
    try:
        def answers(day: date) -> list:
            with store.transaction() as session:
                return [(standings.preview(session, DEFAULT_PROGRAMME, proposed, day),
                         preview_before.preview(session, DEFAULT_PROGRAMME, proposed, day)) for proposed in proposals()]

        with store.transaction() as session:  # what the migration records on a database with activity
            job, key = windows.REBUILD
            session.add(JobRun(job=job, run_key=key, processed=0, batches=0, started_at=utcnow(), updated_at=utcnow()))
        before = answers(DAY)  # not built yet: every member's activity rows summed
        assert all(new == old for new, old in before) and all(new.up for new, _ in before[:1])
        night = nightly.run(store, DEFAULT_PROGRAMME, ZONE, DAY)
        assert night[job]["finished"] and night[job]["processed"] == 3000
        kept, summed, stale = kept_and_summed(url, DAY)
        assert kept == summed and len(kept) > 1000 and stale == 0
        assert all(new == old for new, old in answers(DAY))  # (the night's reviews may have moved some tiers)

        later = DAY + timedelta(days=40)
        assert kept_and_summed(url, later)[2] > 100  # the window moved past these members' first activity
        for new, old in answers(later):
            assert new == old
        monkeypatch.setattr(windows, "STALE_LISTED", 10)  # more rows not fresh than are named: the subquery
        for new, old in answers(later):
            assert new == old
        monkeypatch.undo()
        night = nightly.run(store, DEFAULT_PROGRAMME, ZONE, later)
        assert night["windows"]["finished"] and night["windows"]["processed"] > 100
        kept, summed, stale = kept_and_summed(url, later)
        assert kept == summed and stale == 0
        for new, old in answers(later):
            assert new == old
    finally:
        store.dispose()
        pg_admin('DROP DATABASE IF EXISTS "cl_perf_members_3000" WITH (FORCE)')


def test_the_migration_leaves_the_rebuild_to_do_only_where_there_was_activity(tmp_path):
    """``mem0008`` on a database with a visit records the one-off rebuild as to do (the preview sums the activity
    rows until it finished); on one without, nothing (the kept rows are all there is)."""
    from alembic import command
    from sqlalchemy import create_engine, text
    from sqlalchemy.orm import Session

    from services.kit.migrate import SERVICES_DIR, alembic_config, migrations_dir

    def migrated(name: str, visit: bool) -> bool:
        url = f"sqlite:///{tmp_path / name}"
        command.upgrade(alembic_config(SERVICES_DIR / "kit" / "migrations", url), "head")
        command.upgrade(alembic_config(migrations_dir("members"), url), "mem0005")
        engine = create_engine(url)
        if visit:
            with engine.begin() as connection:
                connection.execute(text("INSERT INTO member_visits (visit_id, member_id, day, completed, "
                                        "qualifying_minor, refunded_minor, fully_refunded) VALUES ('v1', :m, "
                                        "'2026-11-02', 1, 100, 0, 0)"), {"m": uuid.uuid4().hex})
        command.upgrade(alembic_config(migrations_dir("members"), url), "mem0008")
        with Session(engine) as session:
            answer = windows.built(session)
        engine.dispose()
        return answer

    assert migrated("with.db", visit=True) is False
    assert migrated("without.db", visit=False) is True

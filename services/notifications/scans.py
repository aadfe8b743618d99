"""Daily journeys: birthdays, festivals and seasons, recalls, segment B's monthly reminder, and the composed
journeys whose schedule falls on the day (each member of their audience starts a run: ``composed``).

Each is a batch job of the kit (``kit.jobs.run_batches``): it runs once per local day (segment B: once
per month), batch by batch, each batch's messages committed with the job's cursor — so a crash or a
restart resumes where it stopped, a second run of the day does nothing, and one replica runs it while
the other skips. Scans only *queue* messages (due at the send time of that day); the scheduler sends.

Members answer ``birthdays`` (by local month-day, from their index) and ``segment_members`` a page at
a time; festivals and seasons reach every active member of our own audience copy; recalls are ours.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from services.kit.clock import local_date
from services.kit.config import Group
from services.kit.db import Store
from services.kit.jobs import Outcome, run_batches
from services.notifications import audience, composed, deliveries, recalls
from services.notifications.rules import journeys
from services.notifications.rules.composed import scheduled_on
from services.notifications.rules.festivals import festivals_on, season_on
from services.notifications.settings import Settings

log = logging.getLogger(__name__)

MEMBERS_PAGE = 500
AUDIENCE_PAGE = 1000
JOBS = ("birthdays", "festivals", "recalls", "segment_b", "composed")


class DailyJourneys:
    def __init__(self, *, store: Store, settings: Settings, group: Group, members: Any) -> None:
        self.store = store
        self.settings = settings
        self.group = group
        self.members = members

    def run(self, now: datetime, jobs: tuple[str, ...] = JOBS, max_batches: int | None = None) -> dict[str, Any]:
        """Run (or resume) today's jobs; each one's failure is logged and left for the next run."""
        day = local_date(now, self.group.zone)
        results: dict[str, Any] = {"day": day.isoformat()}
        for job in jobs:
            try:
                outcome = getattr(self, f"_{job}")(day, now, max_batches)
            except Exception as error:
                log.warning("daily journey %s stopped; it resumes on the next run", job,
                            extra={"job": job, "error": f"{type(error).__name__}: {error}"})
                results[job] = {"error": f"{type(error).__name__}: {error}"}
                continue
            results[job] = None if outcome is None else {
                "finished": outcome.finished, "processed": outcome.processed, "batches": outcome.batches,
                "skipped": outcome.skipped}
        return results

    def _birthdays(self, day: date, now: datetime, max_batches: int | None) -> Outcome:
        step = _members_pages(
            journeys.birthday_month_days(day), now,
            lambda month_day, cursor: self.members.birthdays(month_day, limit=MEMBERS_PAGE, cursor=cursor),
            lambda member: journeys.birthday(member, day, now, self.settings, self.group.zone))
        return run_batches(self.store, "notifications.birthdays", day.isoformat(), step, max_batches)

    def _festivals(self, day: date, now: datetime, max_batches: int | None) -> Outcome | None:
        festivals = festivals_on(day, self.settings.festivals)
        season = season_on(day, self.settings.seasons)
        if not festivals and not season:
            return None

        def step(session: Session, cursor: Any) -> tuple[Any, int]:
            members = audience.active_page(session, cursor, AUDIENCE_PAGE)
            plans = []
            for member in members:
                member_id = str(member.member_id)
                plans += [journeys.festival(member_id, code, day, now, self.settings, self.group.zone)
                          for code in festivals]
                if season:
                    plans.append(journeys.seasonal_tip(member_id, season, day, now, self.settings, self.group.zone))
            deliveries.queue_many(session, plans, now)
            next_cursor = str(members[-1].member_id) if len(members) == AUDIENCE_PAGE else None
            return next_cursor, len(members)

        return run_batches(self.store, "notifications.festivals", day.isoformat(), step, max_batches)

    def _recalls(self, day: date, now: datetime, max_batches: int | None) -> Outcome:
        def step(session: Session, cursor: Any) -> tuple[Any, int]:
            looked_at, _queued = recalls.scan_step(session, day, now, self.settings, self.group.zone,
                                                   self.store.is_postgresql)
            # scanned recalls move past today, so the next batch starts afresh; the cursor counts batches
            return ((cursor or 0) + 1 if looked_at == recalls.SCAN_BATCH else None), looked_at

        return run_batches(self.store, "notifications.recalls", day.isoformat(), step, max_batches)

    def _segment_b(self, day: date, now: datetime, max_batches: int | None) -> Outcome | None:
        if day.day < self.settings.segment_b_day:
            return None
        step = _members_pages(
            sorted(self.group.branches), now,
            lambda branch, cursor: self.members.segment_members("B", branch, limit=MEMBERS_PAGE, cursor=cursor),
            lambda item: journeys.segment_b_monthly(str(item["member_id"]), day, now, self.settings, self.group.zone))
        return run_batches(self.store, "notifications.segment_b", day.strftime("%Y-%m"), step, max_batches)


    def _composed(self, day: date, now: datetime, max_batches: int | None) -> Outcome | None:
        """Composed journeys scheduled today start a run per member of their audience (once per journey and
        day); trigger facts older than dry runs need are dropped."""
        with self.store.transaction() as session:
            composed.purge_facts(session, now)
            due = [(journey_id, definition) for journey_id, _version, definition in composed.active_of(session, "schedule")
                   if scheduled_on(composed.schedule_of(definition), day)]
        if not due:
            return None
        total = Outcome(finished=True)
        for journey_id, definition in due:
            def step(session: Session, cursor: Any, journey_id: Any = journey_id, definition: Any = definition
                     ) -> tuple[Any, int]:
                journey = composed.get(session, str(journey_id))
                return composed.schedule_step(session, journey, definition, day, now, cursor, self.members,
                                              self.group, AUDIENCE_PAGE)

            outcome = run_batches(self.store, "notifications.composed", f"{journey_id}:{day.isoformat()}", step,
                                  max_batches)
            total = Outcome(finished=total.finished and outcome.finished, processed=total.processed + outcome.processed,
                            batches=total.batches + outcome.batches)
        return total


def _members_pages(keys: list[str], now: datetime, page_of: Callable[[str, str | None], dict[str, Any]],
                   plan_of: Callable[[dict[str, Any]], journeys.Plan]) -> Callable[[Session, Any], tuple[Any, int]]:
    """A batch step over members' pages for each key in turn (month-days, branches): one page a batch, its
    plans queued; the cursor is the key's index and members' page cursor."""

    def step(session: Session, cursor: Any) -> tuple[Any, int]:
        index, page_cursor = (cursor["i"], cursor["c"]) if cursor else (0, None)
        page = page_of(keys[index], page_cursor)
        plans = [plan_of(item) for item in page["items"]]
        deliveries.queue_many(session, plans, now)
        if page.get("next_cursor"):
            return {"i": index, "c": page["next_cursor"]}, len(plans)
        if index + 1 < len(keys):
            return {"i": index + 1, "c": None}, len(plans)
        return None, len(plans)

    return step

"""What a proposed programme would do to members' tiers, before a group admin stores it (the preview).

One SQL statement over every active member: each member's last 12 months, as kept summed in
``member_windows`` (``windows.py``: a narrow row per member with activity; the rows the night has not brought
up to date yet summed from their activity rows, and every member's until the rows were first written), is
ranked under the programme in force and under the proposal, beside the rank of the tier held; the database
returns one row per combination of ranks with its count — a few dozen rows whatever the number of members,
never a row per member.

What the counts mean follows the tier rules (``rules/tiers.py``), which storing a version does not
change: a member the proposal qualifies *above* their tier moves up at their next visit, points or
top-up (upgrades are immediate after activity); a member who holds their tier today but falls short of
it under the proposal moves down at their yearly review (a notice first, at most ``max_steps_down``).
Members already short of their tier under the rules in force are not the proposal's doing and are
counted apart (``already_short``). Frozen and closed members change tier only when active: left out.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import date
from typing import Any

from sqlalchemy import case, func, literal, or_, select
from sqlalchemy.orm import Session

from services.members import windows
from services.members.models import Member
from services.members.rules import tiers
from services.members.rules.programme import Programme


@dataclass(frozen=True)
class Move:
    from_tier: str
    to_tier: str
    direction: str  # "up" or "down"
    members: int


@dataclass(frozen=True)
class Preview:
    as_of: date  # the last day of the 12 months judged (today, local)
    members: int  # active members judged
    up: int
    down: int
    unchanged: int
    already_short: int  # short of their tier under the rules in force already (due down at review anyway)
    moves: tuple[Move, ...]  # by tier held and tier reached, biggest first


def _earned_rank(programme: Programme, spend: Any, top_up: Any, points: Any, visits: Any) -> Any:
    """The SQL twin of ``tiers.evaluate``: the rank of the highest tier any one path reaches (0: entry)."""
    have = {"spend": spend, "top_up": top_up, "points": points, "visits": visits}
    whens = []
    for rank in range(len(programme.tiers) - 1, 0, -1):
        needed = programme.tiers[rank].thresholds.by_path()
        met = [have[path] >= threshold for path, threshold in needed.items() if threshold is not None]
        if met:
            whens.append((or_(*met), rank))
    return case(*whens, else_=0) if whens else literal(0)


def _held_rank(programme: Programme) -> Any:
    """The SQL twin of ``Programme.rank_or_top`` for the tier each member holds."""
    return case({tier.code: rank for rank, tier in enumerate(programme.tiers)}, value=Member.tier,
                else_=len(programme.tiers) - 1)


def preview(session: Session, current: Programme, proposed: Programme, as_of: date) -> Preview:
    """How many active members ``proposed`` moves up and down against ``current`` (see the module)."""
    window = windows.as_of(session, *tiers.window(as_of), kept=windows.built(session))
    spend = func.coalesce(window.c.spend_minor, 0)
    top_up = func.coalesce(window.c.top_up_minor, 0)
    earned = case((window.c.points > 0, window.c.points), else_=0)  # never below 0, as ``Activity`` counts
    ranked = (select(Member.tier.label("tier"), _held_rank(current).label("held_now"),
                     _held_rank(proposed).label("held_new"),
                     _earned_rank(current, spend, top_up, earned,
                                  func.coalesce(windows.visits_of(window, current.tier_visit_kinds), 0))
                     .label("earned_now"),
                     _earned_rank(proposed, spend, top_up, earned,
                                  func.coalesce(windows.visits_of(window, proposed.tier_visit_kinds), 0))
                     .label("earned_new"))
              .select_from(Member)
              .outerjoin(window, window.c.member_id == Member.id)
              .where(Member.status == "active").subquery())
    columns = (ranked.c.tier, ranked.c.held_now, ranked.c.held_new, ranked.c.earned_now, ranked.c.earned_new)
    rows = session.execute(select(*columns, func.count()).group_by(*columns)).all()
    return summarise(proposed, as_of, [(row[0], *(int(value) for value in row[1:])) for row in rows])


def summarise(proposed: Programme, as_of: date, rows: list[tuple[str, int, int, int, int, int]]) -> Preview:
    """The preview from (tier held, its rank now, its rank in the proposal, rank earned now, rank earned in
    the proposal, members) rows. Down moves land where the review would put them: no lower than the rank earned, at
    most ``max_steps_down`` below the tier held."""
    moves: Counter[tuple[str, str, str]] = Counter()
    up = down = unchanged = short = members = 0
    steps = proposed.review.max_steps_down
    for held, held_now, held_new, earned_now, earned_new, count in rows:
        members += count
        if earned_new > held_new:
            up += count
            moves[(held, proposed.tiers[earned_new].code, "up")] += count
        elif earned_new < held_new and earned_now < held_now:
            short += count
        elif earned_new < held_new:
            down += count
            moves[(held, proposed.tiers[max(earned_new, held_new - steps)].code, "down")] += count
        else:
            unchanged += count
    ordered = sorted(moves.items(), key=lambda item: (-item[1], item[0]))
    return Preview(as_of, members, up, down, unchanged, short,
                   tuple(Move(frm, to, direction, count) for (frm, to, direction), count in ordered))

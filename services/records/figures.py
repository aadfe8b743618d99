"""The counting behind the KPIs: SQL aggregates grouped by branch over a range of local days.

Three queries, each one pass over an index range (``ix_visits_branch_arrived``,
``ix_visits_branch_completed``, ``ix_feedback_branch_day``); no row reaches Python. The figures
themselves (rates, averages, targets) are derived from these counts in ``rules/kpis.py``.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import Integer, case, cast, func, select
from sqlalchemy.orm import Session

from services.records.models import Feedback, Visit
from services.records.rules.kpis import Counts


def _count(condition: Any) -> Any:
    return func.sum(case((condition, 1), else_=0))


def _arrivals(branches: tuple[str, ...], start: date, end: date) -> Any:
    first = Visit.kind == "first"
    return (select(Visit.branch,
                   _count(first).label("first_arrivals"),
                   _count(Visit.kind == "return").label("return_arrivals"),
                   _count(Visit.kind.not_in(("first", "return"))).label("other_arrivals"),
                   _count(first & (Visit.status == "completed") & (Visit.treatment != "none")).label("first_converted"),
                   _count(first & Visit.referral_source.is_not(None)).label("first_referred"))
            .where(Visit.branch.in_(branches), Visit.arrived_on.between(start, end))
            .group_by(Visit.branch))


def _completions(branches: tuple[str, ...], start: date, end: date) -> Any:
    return (select(Visit.branch,
                   func.count().label("completed_visits"),
                   _count(Visit.total_minor > 0).label("paying_visits"),
                   func.sum(Visit.total_minor - Visit.refunded_minor).label("revenue_minor"),
                   func.count(func.distinct(Visit.member_id)).label("patients"))
            .where(Visit.branch.in_(branches), Visit.completed_on.between(start, end))
            .group_by(Visit.branch))


def _feedback(branches: tuple[str, ...], start: date, end: date, urgent_target_seconds: int) -> Any:
    survey, urgent = Feedback.kind == "survey", (Feedback.kind == "complaint") & Feedback.urgent.is_(True)
    answered = urgent & Feedback.response_seconds.is_not(None)
    return (select(Feedback.branch,
                   _count(survey & Feedback.score.is_not(None)).label("satisfaction_answers"),
                   func.sum(case((survey, func.coalesce(Feedback.score, 0)), else_=0)).label("satisfaction_points"),
                   _count(survey & (Feedback.score >= 4)).label("satisfied_answers"),
                   _count(survey & Feedback.nps.is_not(None)).label("nps_answers"),
                   _count(survey & (Feedback.nps >= 9)).label("promoters"),
                   _count(survey & (Feedback.nps <= 6)).label("detractors"),
                   _count(Feedback.kind == "complaint").label("complaints"),
                   _count(urgent).label("urgent_complaints"),
                   _count(answered).label("urgent_answered"),
                   func.sum(case((answered, cast(Feedback.response_seconds, Integer)), else_=0))
                   .label("urgent_response_seconds"),
                   _count(answered & (Feedback.response_seconds <= urgent_target_seconds))
                   .label("urgent_within_target"))
            .where(Feedback.branch.in_(branches), Feedback.submitted_on.between(start, end))
            .group_by(Feedback.branch))


def counts(session: Session, branches: tuple[str, ...], start: date, end: date,
           urgent_target_seconds: int) -> dict[str, Counts]:
    """Counts per branch for the local days ``start``..``end`` (branches with nothing get zeros)."""
    found: dict[str, dict[str, Any]] = {branch: {} for branch in branches}
    if not branches:
        return {}
    for query in (_arrivals(branches, start, end), _completions(branches, start, end),
                  _feedback(branches, start, end, urgent_target_seconds)):
        for row in session.execute(query).mappings():
            found[row["branch"]].update(row)
    return {branch: Counts.of(values) for branch, values in found.items()}


def distinct_patients(session: Session, branches: tuple[str, ...], start: date, end: date) -> int:
    """Distinct patients who completed a visit at any of ``branches`` (not the sum over branches)."""
    if not branches:
        return 0
    query = select(func.count(func.distinct(Visit.member_id))).where(
        Visit.branch.in_(branches), Visit.completed_on.between(start, end))
    return int(session.execute(query).scalar_one() or 0)


def plans(session: Session, branches: tuple[str, ...], start: date, end: date, urgent_target_seconds: int) -> str:
    """EXPLAIN of the three KPI queries on PostgreSQL (for the benchmark and for operators)."""
    texts = []
    for query in (_arrivals(branches, start, end), _completions(branches, start, end),
                  _feedback(branches, start, end, urgent_target_seconds)):
        compiled = query.compile(dialect=session.get_bind().dialect, compile_kwargs={"literal_binds": True})
        rows = session.connection().exec_driver_sql(f"EXPLAIN (ANALYZE, BUFFERS) {compiled}").all()
        texts.append("\n".join(row[0] for row in rows))
    return "\n\n".join(texts)

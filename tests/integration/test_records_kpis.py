"""KPIs on a seeded data set equal the figures worked out by hand (SQLite and PostgreSQL)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from services.kit.errors import Forbidden, Invalid
from tests.integration.records_support import ADMIN, FRONT_DESK, HIS, MANAGER, ZONE, enrol, start_records

APP_BRANCHES = ("SH01", "SH02", "HZ01")


def paid(member_id, bill_id, branch, kind, amount, categories=("treatment",), at=None, **extra):
    items = [{"category": c, "code": c[:4].upper(), "amount_minor": amount // len(categories)} for c in categories]
    payments = [{"method": "card", "amount_minor": amount}] if amount else []
    return {"bill_id": bill_id, "member_id": member_id, "branch": branch, "kind": kind, "currency": "CNY",
            "items": items, "payments": payments, **({"completed_at": at} if at else {}), **extra}


@pytest.fixture
def seeded(start_service, rpc, backend):
    """One day at SH01 (and a little elsewhere), as the test's comments count it."""
    _records, _members = start_records(start_service, backend)
    proxy, his, desk = rpc(), rpc(caller=HIS).records, rpc(caller=FRONT_DESK).records
    anchor = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=1)
    at = anchor.isoformat()
    referrer = enrol(proxy, 200)
    code = proxy.members.get_member(referrer)["referral_code"]
    a = enrol(proxy, 201, referral_code=code)
    b, c, d, e, f = (enrol(proxy, n) for n in range(202, 207))
    g, h = enrol(proxy, 207, branch="SH02"), enrol(proxy, 208, branch="HZ01")

    # SH01 today
    va = his.complete_visit(paid(a, "K-A", "SH01", "first", 10000, ("exam",), at))  # referred, not treated
    vb = his.complete_visit({**paid(b, "K-B", "SH01", "first", 50000, at=at), "treatment": "ongoing",
                             "payments": [{"method": "card", "amount_minor": 40000},
                                          {"method": "points", "amount_minor": 10000}]})  # converted
    vc = his.complete_visit(paid(c, "K-C", "SH01", "first", 30000, ("cleaning",), at,
                                 referral_source="staff:9"))  # converted, referred
    vd = his.complete_visit(paid(d, "K-D1", "SH01", "return", 20000, at=at))
    his.complete_visit(paid(d, "K-D2", "SH01", "return", 10000, at=at))
    his.complete_visit(paid(e, "K-E", "SH01", "free_clinic", 0, ("exam",), at))  # not paying
    desk.open_visit({"member_id": f, "branch": "SH01", "kind": "first"})  # arrived, not (yet) completed
    his.refund_visit({"refund_id": "KR-1", "visit_id": vd["id"], "payments": [{"method": "card",
                                                                               "amount_minor": 5000}]})
    # elsewhere today, and at SH01 forty days ago
    vg = his.complete_visit(paid(g, "K-G", "SH02", "first", 99900, at=at))
    old_at = anchor - timedelta(days=40)
    his.complete_visit(paid(h, "K-H", "SH01", "return", 7000, at=old_at.isoformat()))

    app = rpc(caller=HIS).records
    for visit, level, nps in ((va, "very_satisfied", 10), (vb, "satisfied", 9), (vc, "neutral", 7),
                              (vd, "dissatisfied", 3), (vg, "very_satisfied", 10)):
        app.submit_feedback({"member_id": visit["member_id"], "kind": "survey", "visit_id": visit["id"],
                             "satisfaction": level, "nps": nps})
    urgent = desk.submit_feedback({"member_id": e, "kind": "complaint", "branch": "SH01", "urgent": True,
                                   "comment": "Bleeding"})
    desk.submit_feedback({"member_id": a, "kind": "complaint", "visit_id": va["id"], "comment": "Rude"})
    rpc(caller=MANAGER).records.respond_to_complaint(urgent["id"], {"response": "Come in now"})
    return rpc, anchor.astimezone(ZONE).date(), old_at.astimezone(ZONE).date()


def figures_of(report, branch):
    return next(b["figures"] for b in report["branches"] if b["branch"] == branch)


def test_kpis_of_a_branch_day_equal_the_hand_count(seeded):
    rpc, day, _old_day = seeded
    report = rpc(caller=MANAGER).records.kpis({"period": "day", "on": day.isoformat()})
    assert (report["start"], report["end"], report["total"]) == (day.isoformat(), day.isoformat(), None)
    assert [b["branch"] for b in report["branches"]] == ["SH01"]  # the manager's branch only
    sh01 = figures_of(report, "SH01")
    urgent_seconds = sh01.pop("urgent_response_average_seconds")
    assert 0 <= urgent_seconds <= 1800
    assert sh01 == {
        "first_visit_arrivals": 4,  # A, B, C and F (F arrived, not completed)
        "return_visit_arrivals": 2,  # D twice
        "other_arrivals": 1,  # E at the free clinic
        "first_visits_converted": 2,  # B (ongoing) and C (cleaning): A was not treated, F not yet
        "first_visit_conversion_bp": 5000,  # 2 / 4
        "completed_visits": 6,  # A, B, C, D, D, E
        "paying_visits": 5,  # not E
        "revenue_minor": 115000,  # 10000 + 50000 + 30000 + 20000 + 10000 - 5000 refunded
        "average_ticket_minor": 23000,  # 115000 / 5
        "patients": 5,  # A, B, C, D, E
        "visits_per_patient_x100": 120,  # 6 / 5
        "referred_first_visits": 2,  # A (by a member), C (by staff 9)
        "referral_share_bp": 5000,  # 2 / 4
        "satisfaction_answers": 4,
        "satisfaction_average_x100": 350,  # (5 + 4 + 3 + 2) / 4
        "satisfied_share_bp": 5000,  # very satisfied + satisfied: 2 / 4
        "nps_answers": 4,
        "promoters": 2,  # 10, 9
        "detractors": 1,  # 3
        "nps": 25,  # (2 - 1) / 4
        "complaints": 2,
        "complaint_rate_bp": 3333,  # 2 / 6
        "urgent_complaints": 1,
        "urgent_answered": 1,
        "urgent_within_target": 1,
        "urgent_within_target_bp": 10000,
        "targets_met": {"first_visit_conversion_bp": False, "referral_share_bp": True, "nps": False,
                        "complaint_rate_bp": False, "urgent_response_average_seconds": True},
    }
    month = rpc(caller=MANAGER).records.kpis({"period": "month", "on": day.isoformat(), "branch": "SH01"})
    month_sh01 = figures_of(month, "SH01")
    month_sh01.pop("urgent_response_average_seconds")
    assert month_sh01 == sh01  # the visit forty days ago is in an earlier month


def test_the_group_sees_every_branch_and_a_total_with_distinct_patients(seeded):
    rpc, day, old_day = seeded
    report = rpc(caller=ADMIN).records.kpis({"period": "day", "on": day.isoformat()})
    assert [b["branch"] for b in report["branches"]] == list(APP_BRANCHES)
    sh02 = figures_of(report, "SH02")
    assert (sh02["first_visit_arrivals"], sh02["first_visit_conversion_bp"], sh02["average_ticket_minor"],
            sh02["nps"], sh02["complaint_rate_bp"]) == (1, 10000, 99900, 100, 0)
    hz01 = figures_of(report, "HZ01")
    assert hz01["completed_visits"] == 0 and hz01["average_ticket_minor"] is None and hz01["nps"] is None
    total = report["total"]["figures"]
    assert (total["first_visit_arrivals"], total["first_visits_converted"], total["first_visit_conversion_bp"]) == (
        5, 3, 6000)
    assert (total["completed_visits"], total["paying_visits"], total["revenue_minor"]) == (7, 6, 214900)
    assert total["average_ticket_minor"] == 35817  # 214900 / 6 = 35816.67
    assert (total["patients"], total["visits_per_patient_x100"]) == (6, 117)  # 7 / 6
    assert (total["referral_share_bp"], total["satisfaction_average_x100"], total["nps"]) == (4000, 380, 40)
    assert total["complaint_rate_bp"] == 2857  # 2 / 7

    then = rpc(caller=ADMIN).records.kpis({"period": "day", "on": old_day.isoformat(), "branch": "SH01"})
    old = figures_of(then, "SH01")
    assert (old["return_visit_arrivals"], old["completed_visits"], old["revenue_minor"]) == (1, 1, 7000)


def test_kpis_are_for_managers_of_their_own_branches(seeded):
    rpc, day, _old_day = seeded
    with pytest.raises(Forbidden):
        rpc(caller=MANAGER).records.kpis({"period": "day", "on": day.isoformat(), "branch": "SH02"})
    with pytest.raises(Forbidden):
        rpc(caller=FRONT_DESK).records.kpis({"period": "day", "on": day.isoformat()})
    with pytest.raises(Invalid):
        rpc(caller=MANAGER).records.kpis({"period": "quarter", "on": day.isoformat()})

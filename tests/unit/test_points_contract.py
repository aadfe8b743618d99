"""The points service's contract surface: the events it consumes (docs/events.md), its queues in the
suite's topology, the programme file a group writes, and the grants its routes need."""

import pytest

from gateway import permissions
from gateway.openapi import routes_of
from gateway.routes.points import PointsRoutes
from services.kit.errors import Invalid
from services.kit.topology import SERVICE_CLASSES, handler_queues
from services.points.service import PointsService
from services.points.settings import load_programme


def test_points_consumes_the_events_the_contracts_name_for_it():
    consumed = {(source, event) for source, event, _queue, _gated in handler_queues(PointsService)}
    assert consumed == {
        ("members", "member_enrolled"), ("members", "members_imported"), ("members", "tier_changed"), ("members", "segment_changed"),
        ("members", "member_status_changed"), ("members", "member_merged"), ("members", "member_unmerged"),
        ("records", "visit_completed"), ("records", "visit_refunded"),
        ("records", "visit_cancelled"), ("records", "feedback_submitted")}
    assert "services.points.service:PointsService" in SERVICE_CLASSES


def test_a_group_s_programme_file_overrides_the_defaults(tmp_path):
    path = tmp_path / "points.yml"
    path.write_text("visit_points: 15\ncampaigns:\n  - {code: md, name: Member day, days_of_month: [18], multiplier: 2}\n")
    programme = load_programme(str(path), "{}")
    assert programme.visit_points == 15 and programme.campaigns[0].multiplier_bp == 20_000
    assert load_programme(str(path), '{"visit_points": 20}').visit_points == 20  # inline settings win
    path.write_text("visit_points: 1.5\n")
    with pytest.raises(Invalid):
        load_programme(str(path), '{"x": 1}')


def test_every_points_route_names_a_granted_permission_and_money_changes_are_idempotent():
    routes = routes_of(PointsRoutes)
    assert len(routes) >= 25
    for _name, route in routes:
        assert permissions.GRANTS[route.permission], route.url
        reads = route.method == "GET" or route.url.endswith(("/check", "/limit", "/quote"))  # POSTed questions
        if not reads and route.permission.split(":")[1] in ("earn", "redeem", "topup", "pay", "refund", "issue"):
            assert route.idempotent, route.url
    assert "front_desk" in permissions.roles_with("points:redeem")
    assert "front_desk" not in permissions.roles_with("rewards:manage")
    assert "clinician" not in permissions.roles_with("wallet:topup")


def test_records_visit_completed_as_its_contract_loads_it_is_a_visit_the_engine_quotes():
    from zoneinfo import ZoneInfo

    from services.kit.contracts import load_event
    from services.points.awards import visit_facts
    from services.points.rules.earning import MemberFacts, quote_visit
    from services.points.rules.programme import DEFAULT_PROGRAMME
    from services.records.events import EVENTS, VisitCompleted

    body = {**EVENTS.wire("visit_completed", {**VisitCompleted.sample, "items": [
        {"category": "cleaning", "code": None, "amount_minor": 28000}]}), "event_id": "e1", "occurred_at": None}
    visit = visit_facts(load_event(VisitCompleted, body), ZoneInfo("Asia/Shanghai"))
    assert (visit.branch, visit.kind, visit.day.isoformat(), visit.qualifying_minor) == ("SH01", "return",
                                                                                        "2026-03-05", 25000)
    assert visit.items[0].code == "" and [p.method for p in visit.payments] == ["card", "points"]
    lines = quote_visit(DEFAULT_PROGRAMME, visit, MemberFacts(tier="standard", segment=None, has_referrer=False))
    assert [(line.rule, line.points) for line in lines] == [("spend", 250), ("visit", 10)]

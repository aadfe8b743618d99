"""How a visits sheet's line reads (issue 19): the visit's moment as typed, the words for categories,
payment methods and kinds, and what is wrong with a line kept for its whole bill."""

from __future__ import annotations

from datetime import date, datetime
from types import SimpleNamespace

import pytest

from services.interfaces.imports import columns as cols
from services.interfaces.imports import visits

JOB = SimpleNamespace(identifier_system=None, default_branch="SH01", day_first=None)


@pytest.mark.parametrize(("cell", "moment"), [
    ("2024-03-05", datetime(2024, 3, 5)),
    ("2024/3/5 14:30", datetime(2024, 3, 5, 14, 30)),
    ("2024-03-05T09:05:07", datetime(2024, 3, 5, 9, 5, 7)),
    (datetime(2024, 3, 5, 8, 0), datetime(2024, 3, 5, 8, 0)),
    (date(2024, 3, 5), datetime(2024, 3, 5)),
    (45356.5, datetime(2024, 3, 5, 12, 0)),  # an Excel date-time: noon of 2024-03-05
])
def test_a_visit_moment_reads_as_the_clinic_typed_it(cell, moment):
    assert visits.parse_moment(cell, None) == moment


@pytest.mark.parametrize("cell", ["三月五日", "2024-03-05 25:00", "2024-02-30 10:00"])
def test_a_visit_moment_that_is_none_is_refused(cell):
    with pytest.raises(ValueError):
        visits.parse_moment(cell, None)


def line(**cells):
    return visits.read({"bill_number": "B1", "phone": "13900000001", "visited_at": "2024-03-05 10:30", **cells}, JOB)


def test_a_line_reads_into_its_item_and_payment_in_minor_units():
    row, refused = line(category="洁牙", item="CL01", amount="¥280.50", payment_method="微信", paid="280.50",
                        kind="复诊", doctor="dr-li")
    assert refused == [] and row["problems"] == []
    assert row["item"] == {"category": "cleaning", "code": "CL01", "amount_minor": 28050}
    assert row["payment"] == {"method": "mobile", "amount_minor": 28050}
    assert row["visit"] == {"doctor_id": "dr-li", "kind": "return", "at": datetime(2024, 3, 5, 10, 30)}
    assert row["who"] == {"phone": "13900000001", "branch": "SH01"}


def test_what_is_wrong_with_a_line_is_kept_for_its_bill_and_a_line_without_a_bill_is_refused():
    row, refused = line(category="美容", amount="-10", payment_method="现金")
    assert refused == []
    assert [(problem.field, problem.value) for problem in row["problems"]] == [
        ("category", "美容"), ("amount", "-10"), ("paid", "")]
    assert "Refunds are not imported" in row["problems"][1].message
    assert line(category="检查")[0]["problems"] == [cols.Issue("amount", "", "An item needs its amount.")]
    assert line()[0]["problems"][0].message == "The line has neither an item nor a payment."
    _row, refused = visits.read({"phone": "13900000001", "visited_at": "2024-03-05"}, JOB)
    assert [issue.field for issue in refused] == ["bill_number"]


def test_the_headers_of_a_visits_sheet_are_found_in_the_four_languages():
    found = cols.resolve(["单据号", "手機", "就診日期", "項目類別", "金額", "forma de pago", "pagado", "医生"], None,
                         visits.ALIASES)
    assert set(found.headers) == {"bill_number", "phone", "visited_at", "category", "amount", "payment_method",
                                  "paid", "doctor"}
    assert found.ignored == ()

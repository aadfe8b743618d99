"""Reading what clinics type into sheets (services/interfaces/imports): dates, money, headers, encodings."""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import pytest

from services.interfaces.imports import columns, sheets, values
from tests import import_samples


@pytest.mark.parametrize(("cell", "day_first", "expected"), [
    ("2024-03-05", None, date(2024, 3, 5)),
    ("2024/3/5", None, date(2024, 3, 5)),
    ("2024.03.05", None, date(2024, 3, 5)),
    ("2024年3月5日", None, date(2024, 3, 5)),
    ("20240305", None, date(2024, 3, 5)),
    ("05/03/2024", True, date(2024, 3, 5)),
    ("05/03/2024", False, date(2024, 5, 3)),
    ("25/03/2024", None, date(2024, 3, 25)),  # only one reading is a date
    (45356, None, date(2024, 3, 5)),  # an Excel serial
    ("45356", None, date(2024, 3, 5)),
    (45356.0, None, date(2024, 3, 5)),
    (datetime(2024, 3, 5, 0, 0), None, date(2024, 3, 5)),
    ("２０２４－０３－０５", None, date(2024, 3, 5)),  # full-width digits
])
def test_dates_in_the_forms_clinics_type(cell, day_first, expected):
    assert values.parse_date(cell, day_first) == expected


@pytest.mark.parametrize(("cell", "message"), [
    ("05/03/2024", "state which"), ("2024-02-30", "not a date of the calendar"), ("三月五日", "not a date"),
    ("", "not a date"),
])
def test_dates_that_cannot_be_read_say_why(cell, message):
    with pytest.raises(ValueError, match=message):
        values.parse_date(cell, None)


@pytest.mark.parametrize(("cell", "minor"), [
    ("1,280.50", 128050), ("¥1280.5", 128050), ("￥ 1,280", 128000), ("NT$300", 30000), ("0.1", 10),
    (1280.5, 128050), (0.1, 10), (12, 1200), ("(5.00)", -500), ("RMB 99.99", 9999), ("1280.5元", 128050),
])
def test_money_as_typed_becomes_exact_minor_units(cell, minor):
    assert values.parse_money(cell) == minor
    assert isinstance(values.parse_money(cell), int)


@pytest.mark.parametrize("cell", ["1.005", "abc", "", "NaN", "1e999"])
def test_money_that_is_not_exact_is_refused(cell):
    with pytest.raises(ValueError):
        values.parse_money(cell)


def test_a_phone_typed_into_a_number_cell_reads_without_decimals():
    assert values.text(13900000001.0) == "13900000001"
    assert values.text(13900000001) == "13900000001"


@pytest.mark.parametrize("header", [
    ["姓名", "手机号", "出生日期"], ["Name", "Phone", "Birth date"], ["nombre", "teléfono", "fecha de nacimiento"],
    ["會員姓名", "手機", "生日"], [" full_name ", "MOBILE", "DOB"],
])
def test_headers_are_found_by_alias_in_the_four_languages(header):
    found = columns.resolve(header)
    assert found.fields == {0: "full_name", 1: "phone", 2: "birth_date"}
    assert found.missing(columns.MEMBER_REQUIRED) == []


def test_an_explicit_mapping_names_columns_the_aliases_do_not_know():
    found = columns.resolve(["客人", "联络", "出生日期", "备注"], {"客人": "full_name", "联络": "phone"})
    assert found.headers == {"full_name": "客人", "phone": "联络", "birth_date": "出生日期"}
    assert found.ignored == ("备注",)
    with pytest.raises(ValueError, match="nickname"):
        columns.resolve(["a"], {"a": "nickname"})


def test_a_row_becomes_the_enrolment_the_members_api_takes():
    found = columns.resolve(["姓名", "手机号", "出生日期", "性别", "身份证号", "门店"])
    cells = columns.cells_of(found, ["王芳", 13900000001, "1990/5/1", "女", "11010519491231002X", "sh01"])
    member, issues = columns.enrolment(cells, None, "HZ01")
    assert issues == []
    assert member == {"source": "import", "full_name": "王芳", "phone": "13900000001", "birth_date": "1990-05-01",
                      "gender": "female", "home_branch": "SH01",
                      "id_document": {"type": "cn_resident_id", "number": "11010519491231002X"}}


def test_cells_that_cannot_be_read_are_reported_and_blank_ones_left_to_the_api():
    found = columns.resolve(["姓名", "手机号", "出生日期", "性别"])
    member, issues = columns.enrolment(columns.cells_of(found, ["王芳", None, "三月五日", "?"]), True, "SH01")
    assert "phone" not in member and member["home_branch"] == "SH01"
    assert [(issue.field, issue.value) for issue in issues] == [("birth_date", "三月五日"), ("gender", "?")]


def test_nested_api_errors_point_at_the_sheet_column():
    assert columns.column_of("id_document", {"number": ["Not valid."]}) == [("id_number", "Not valid.")]
    assert columns.column_of("phone", ["Not a valid phone number."]) == [("phone", "Not a valid phone number.")]


@pytest.mark.parametrize(("encoding", "traditional"), [
    ("utf-8", False), ("utf-8-sig", False), ("gb18030", False), ("big5", True)])
def test_csv_encodings_are_worked_out_and_read_the_same_rows(tmp_path: Path, encoding, traditional):
    rows = [import_samples.person(i, traditional) for i in range(30)]
    headers = ("姓名", "手機", "出生日期", "性別", "診所", "會員卡號") if traditional else import_samples.HEADERS
    path = import_samples.write_csv(tmp_path / "m.csv", rows, encoding, headers)
    known = lambda line: len(columns.resolve(line.split(",")).fields)  # noqa: E731
    detected = sheets.detect_encoding(path, known)
    assert detected == encoding
    read = [row for _number, row in sheets.rows(path, "csv", detected)]
    assert read == [list(headers), *rows]


def test_xlsx_rows_skip_blank_lines_and_keep_the_numbers_a_person_sees(tmp_path: Path):
    path = import_samples.write_messy_sheet(tmp_path / "messy.xlsx")
    numbered = list(sheets.rows(path, "xlsx", sheet="会员"))
    assert [number for number, _row in numbered] == [1, 2, 3, 4, 6, 7, 8, 9, 10, 11]
    assert numbered[0][1][:3] == ["姓名", "手机号", "出生日期"]
    with pytest.raises(ValueError, match="no sheet"):
        list(sheets.rows(path, "xlsx", sheet="Sheet9"))


@pytest.mark.parametrize(("cell", "expected"), [("1,280", 1280), (1280, 1280), (1280.0, 1280), ("1280.00", 1280),
                                                (" 12 ", 12)])
def test_points_are_read_as_typed_into_whole_numbers(cell, expected):
    assert values.parse_points(cell) == expected


@pytest.mark.parametrize("cell", ["12.5", 12.5, "一百", "", True])
def test_points_that_are_not_a_whole_number_are_refused(cell):
    with pytest.raises(ValueError):
        values.parse_points(cell)


def test_a_points_sheet_is_found_by_its_chinese_headers_and_a_row_reads_as_a_lot():
    found = columns.resolve(list(import_samples.POINTS_HEADERS), None, columns.POINTS_ALIASES)
    assert found.headers == {"phone": "手机号", "points": "积分", "expires_on": "到期日", "branch": "门店"}
    row, issues = columns.points_opening({"card_number": " 88001 ", "phone": "139", "points": "1,000",
                                          "expires_on": "2027/12/31"}, None, "SH01")
    assert issues == [] and row == {"who": {"card_number": "88001", "branch": "SH01"},
                                    "opening": {"branch": "SH01", "points": 1000, "expires_on": "2027-12-31"}}


def test_a_points_row_without_a_member_or_with_bad_cells_names_each_column():
    _row, issues = columns.points_opening({"points": "0", "expires_on": "三月"}, None, None)
    assert [issue.field for issue in issues] == ["card_number", "points", "expires_on"]
    _row, issues = columns.points_opening({"identifier": "MRN1", "points": "5", "expires_on": "2030-01-01"},
                                          None, None)
    assert [issue.field for issue in issues] == ["identifier"]  # an identifier needs its system


def test_a_stored_value_row_keeps_paid_and_bonus_apart_in_minor_units():
    row, issues = columns.wallet_opening({"phone": "13900000001", "principal": "¥1,280.50", "bonus": 88}, None, None)
    assert issues == [] and row["opening"] == {"branch": None, "principal_minor": 128050, "bonus_minor": 8800}
    _row, issues = columns.wallet_opening({"phone": "1", "principal": "12.345"}, None, None)
    assert [(issue.field, issue.value) for issue in issues] == [("principal", "12.345")]
    _row, issues = columns.wallet_opening({"phone": "1", "principal": "0"}, None, None)
    assert "nothing" in issues[0].message


def test_careloop_s_own_stored_value_export_reads_back_in_minor_units_not_as_typed_money():
    header = ["member_id", "phone", "branch", "currency", "principal_minor", "bonus_minor", "created_at", "updated_at"]
    found = columns.resolve(header, None, columns.WALLET_ALIASES)
    assert set(found.headers) == {"phone", "branch", "principal_minor", "bonus_minor"}
    row, issues = columns.wallet_opening({"phone": "+8613900000001", "principal_minor": "70050", "bonus_minor": "0"},
                                         None, "SH01")
    assert issues == [] and row["opening"] == {"branch": "SH01", "principal_minor": 70050, "bonus_minor": 0}
    _row, issues = columns.wallet_opening({"phone": "1", "principal_minor": "700.50"}, None, None)
    assert [(issue.field, issue.value) for issue in issues] == [("principal_minor", "700.50")]

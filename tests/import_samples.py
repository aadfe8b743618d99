"""Member and opening-balance sheets as clinics keep them, for the import tests and benchmark (issue 19).

``members(n, bad=...)`` makes ``n`` distinct people (Chinese names, mainland mobiles, past dates of birth);
``write_xlsx`` / ``write_csv`` save them under Chinese headers. ``python -m tests.import_samples DIR`` writes the
sample sheet with the usual mistakes (a bad phone, a future date of birth, a date that is no date, the same
person twice, merged cells, blank lines, a formula) and its CSV twins in UTF-8, UTF-8 with BOM, GB18030, Big5,
and the opening balances of those people: ``points_openings(n, bad=...)`` (``POINTS_HEADERS``: phone, points,
expiry date) and ``wallet_openings(n, bad=...)`` (``WALLET_HEADERS``: phone, paid part, bonus part), and their
past visits: ``visits(n, bills_each, bad=...)`` (``VISIT_HEADERS``: a row per bill line, items and payments).
"""

from __future__ import annotations

import csv
import sys
from collections.abc import Iterable, Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

GROUP_ZONE = ZoneInfo("Asia/Shanghai")  # the tests' group file's zone: a sheet's dates are days there


def group_today() -> date:
    """Today in the group's zone, which is the day an import reads a sheet's dates in: from 16:00 UTC on it is
    a day ahead of the machine's ``date.today()`` (a visit dated "yesterday" by UTC was two days ago there)."""
    return datetime.now(UTC).astimezone(GROUP_ZONE).date()


HEADERS = ("姓名", "手机号", "出生日期", "性别", "门店", "会员卡号")
SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
GIVEN = "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀霞平刚桂英华"
SURNAMES_TRADITIONAL = "王李張劉陳楊黃趙吳周徐孫馬朱胡郭何高林羅"
GIVEN_TRADITIONAL = "偉芳娜敏靜麗強磊軍洋勇豔傑娟濤明超秀霞平剛桂英華"
BAD_ROWS = {
    "phone": ("12345", "Not a valid phone number."),
    "birth_date": ((group_today() + timedelta(days=400)).isoformat(), "Date of birth cannot be in the future."),
    "date_text": ("三月五日", "is not a date"),
}


def person(i: int, traditional: bool = False) -> list[Any]:
    """Person ``i``: unique by phone and by name (three characters from ``i``)."""
    surnames, given = (SURNAMES_TRADITIONAL, GIVEN_TRADITIONAL) if traditional else (SURNAMES, GIVEN)
    g = len(given)
    name = surnames[i % 20] + given[(i // 20) % g] + given[(i // (20 * g)) % g]
    return [name + (str(i // (20 * g * g)) if i >= 20 * g * g else ""), f"139{i:08d}",
            (date(1950, 1, 1) + timedelta(days=(i * 37) % 20000)).isoformat(), "女" if i % 2 else "男", "SH01",
            f"OLD{i:06d}"]


def members(n: int, bad: Iterable[tuple[int, str]] = ()) -> Iterator[list[Any]]:
    """``n`` rows; ``bad`` names (position, mistake) pairs from ``BAD_ROWS``."""
    mistakes = dict(bad)
    for i in range(n):
        row = person(i)
        mistake = mistakes.get(i)
        if mistake == "phone":
            row[1] = BAD_ROWS["phone"][0]
        elif mistake == "birth_date":
            row[2] = BAD_ROWS["birth_date"][0]
        elif mistake == "date_text":
            row[2] = BAD_ROWS["date_text"][0]
        yield row


POINTS_HEADERS = ("手机号", "积分", "到期日", "门店")
WALLET_HEADERS = ("手机号", "本金", "赠送余额", "门店")
BAD_OPENINGS = {
    "unknown": "13800000000",  # a phone no member has
    "points": "一百",  # not a number
    "expired": "2020-12-31",  # an expiry date already past
    "money": "12.345",  # more decimals than money has
    "branch": "ZZ99",  # a branch the group does not have
}


def points_openings(n: int, bad: Iterable[tuple[int, str]] = (), expires_on: date = date(2099, 12, 31),
                    year_lots: Iterable[int] = ()) -> Iterator[list[Any]]:
    """Points of persons ``0..n-1`` (``person(i)``'s phone): ``100 + i`` points expiring on ``expires_on``; for
    each ``i`` in ``year_lots`` a second lot of 50 points expiring a year earlier. ``bad``: (position, mistake)
    pairs from ``BAD_OPENINGS``."""
    mistakes = dict(bad)
    earlier = set(year_lots)
    for i in range(n):
        phone, points, expiry = person(i)[1], f"{100 + i:,}", expires_on.isoformat()
        mistake = mistakes.get(i)
        if mistake == "unknown":
            phone = BAD_OPENINGS["unknown"]
        elif mistake == "points":
            points = BAD_OPENINGS["points"]
        elif mistake == "expired":
            expiry = BAD_OPENINGS["expired"]
        yield [phone, points, expiry, "SH01"]
        if i in earlier:
            yield [phone, 50, expires_on.replace(year=expires_on.year - 1).strftime("%Y/%m/%d"), "SH01"]


def wallet_openings(n: int, bad: Iterable[tuple[int, str]] = ()) -> Iterator[list[Any]]:
    """Stored value of persons ``0..n-1``: ``¥1,000.50 + i`` paid and ``88 + i`` bonus (as clinics type money)."""
    mistakes = dict(bad)
    for i in range(n):
        phone, paid, bonus = person(i)[1], f"¥{1000 + i:,}.50", str(88 + i)
        mistake = mistakes.get(i)
        if mistake == "unknown":
            phone = BAD_OPENINGS["unknown"]
        elif mistake == "money":
            paid = BAD_OPENINGS["money"]
        yield [phone, paid, bonus, BAD_OPENINGS["branch"] if mistake == "branch" else "SH01"]

VISIT_HEADERS = ("单据号", "手机号", "门店", "就诊日期", "医生", "项目类别", "项目", "金额", "支付方式", "实收金额")
BAD_VISITS = {
    "unknown": "13800000000",  # a phone no member has
    "amount": "一百元",  # not an amount of money
    "future": (group_today() + timedelta(days=3)).isoformat(),  # a visit still to come
    "category": "美容",  # a procedure category the import does not know
    "unpaid": "250.00",  # payments that do not add up to the items
}


def visit_bill(number: str, phone: str, day: date, lines: Iterable[tuple[Any, ...]], branch: str = "SH01",
               doctor: str | None = "dr-wang") -> Iterator[list[Any]]:
    """One bill as a clinic's sheet has it: a row per line, (category, item, amount, method, paid) each."""
    for category, item, amount, method, paid in lines:
        yield [number, phone, branch, f"{day.isoformat()} 10:30", doctor, category, item, amount, method, paid]


def visits(n: int, bills_each: int = 2, bad: Iterable[tuple[int, str]] = (),
           today: date | None = None) -> Iterator[list[Any]]:
    """Bills of persons ``0..n-1`` (``person(i)``'s phone): ``bills_each`` bills each, 30 days apart back from
    yesterday, each two lines: an exam of ¥100.00 (with the bill's payment, ¥300.00 by WeChat) and a filling of
    ¥200.00. ``bad``: (person, mistake) pairs from ``BAD_VISITS``, on the person's first bill."""
    mistakes = dict(bad)
    today = today or group_today()
    for i in range(n):
        for b in range(bills_each):
            mistake = mistakes.get(i) if b == 0 else None
            phone = BAD_VISITS["unknown"] if mistake == "unknown" else person(i)[1]
            day = today - timedelta(days=1 + 30 * b)
            if mistake == "future":
                day = date.fromisoformat(BAD_VISITS["future"])
            exam = BAD_VISITS["amount"] if mistake == "amount" else "100.00"
            paid = BAD_VISITS["unpaid"] if mistake == "unpaid" else "¥300.00"
            category = BAD_VISITS["category"] if mistake == "category" else "治疗"
            yield from visit_bill(f"B{i:06d}-{b}", phone, day, (("检查", "EX01", exam, "微信", paid),
                                                                 (category, "补牙", "200.00", None, None)))


def write_xlsx(path: Path, rows: Iterable[list[Any]], headers: Iterable[str] = HEADERS) -> Path:
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("会员")
    sheet.append(list(headers))
    for row in rows:
        sheet.append(row)
    workbook.save(path)
    return path


def write_csv(path: Path, rows: Iterable[list[Any]], encoding: str = "utf-8",
              headers: Iterable[str] = HEADERS) -> Path:
    with open(path, "w", encoding=encoding, newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(list(headers))
        writer.writerows(rows)
    return path


def write_messy_sheet(path: Path) -> Path:
    """The sheet with every usual mistake, for the eye and for the tests (rows as Excel numbers them):
    row 3 a bad phone, 4 a future date of birth, 5 blank, 6 the same person as row 2, 7-8 the branch in a
    merged cell (row 8 reads it blank: the default branch applies), 9 a birth date as an Excel serial,
    10 a formula (its value is not saved by this script: the import reads it blank), 11 2024/3/5."""
    from openpyxl import Workbook

    workbook = Workbook()
    sheet = workbook.active
    sheet.title = "会员"
    sheet.append(list(HEADERS))
    good = [person(i) for i in range(8)]
    sheet.append(good[0])
    sheet.append([*good[1][:1], "12345", *good[1][2:]])
    sheet.append([*good[2][:2], (group_today() + timedelta(days=30)).isoformat(), *good[2][3:]])
    sheet.append([])
    sheet.append(good[0])
    sheet.append(good[3])
    sheet.append([*good[4][:4], None, good[4][5]])
    sheet.merge_cells("E7:E8")
    sheet.append([*good[5][:2], 33000, *good[5][3:]])
    sheet.append([*good[6][:2], "=DATE(1980,1,1)", *good[6][3:]])
    sheet.append([*good[7][:2], "2024/3/5", *good[7][3:]])
    workbook.save(path)
    return path


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/data")
    target.mkdir(parents=True, exist_ok=True)
    write_messy_sheet(target / "members_messy.xlsx")
    rows = list(members(20))
    for encoding, name in (("utf-8", "utf8"), ("utf-8-sig", "utf8bom"), ("gb18030", "gb18030")):
        write_csv(target / f"members_{name}.csv", rows, encoding)
    traditional = [person(i, traditional=True) for i in range(20)]
    write_csv(target / "members_big5.csv", traditional, "big5", ("姓名", "手機", "出生日期", "性別", "診所", "會員卡號"))
    write_xlsx(target / "points_openings.xlsx", points_openings(20, [(3, "points"), (5, "expired")], year_lots=(0,)),
               POINTS_HEADERS)
    write_csv(target / "wallet_openings.csv", wallet_openings(20, [(4, "money")]), "gb18030", WALLET_HEADERS)
    write_xlsx(target / "visits.xlsx", visits(20, 3, [(2, "amount"), (6, "future"), (9, "unknown")]), VISIT_HEADERS)
    print(f"written to {target}")

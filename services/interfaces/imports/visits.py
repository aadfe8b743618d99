"""The visits import (issue 19): historical bills with their items and payments, one row per bill line; the
rows sharing a bill number are one visit, and they must follow each other in the file (a batch is extended to
the end of the bill it would cut: ``Kind.together``).

A line names its member as the balances sheets do (card number, identifier, phone: ``columns._who``), the
branch, the visit's date (and time), optionally the doctor and the kind of visit; an item (procedure
category, the item, its amount) and/or a payment (method, amount paid). A bill is checked and stored as a
whole by records (``records.import_visits``, one call per batch, keyed ``import:<job>:<bill>``): stored as a
completed visit marked imported, it earns no points and starts no follow-ups or messages, and members counts
it for the member's tier (records' ``visits_imported``). The job's counts are lines: a bill's lines are
valid, imported, present or invalid together. Refunds are not imported (a negative amount is refused).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from services.interfaces.imports import columns as cols
from services.interfaces.imports import values
from services.interfaces.models import ImportJob, ImportSeen
from services.kit.clock import isoformat
from services.kit.config import group_from_config

ALIASES: dict[str, tuple[str, ...]] = {
    **cols.WHO_ALIASES,
    "bill_number": ("bill_number", "bill number", "bill", "bill no", "bill id", "invoice", "invoice number",
                    "receipt number", "单据号", "账单号", "帐单号", "收费单号", "结算单号", "單據號", "帳單號", "收費單號",
                    "número de factura", "numero de factura", "factura", "número de recibo", "recibo"),
    "visited_at": ("visited_at", "visit date", "visit time", "date of visit", "visited on", "date", "就诊日期",
                   "就诊时间", "消费日期", "收费日期", "就診日期", "就診時間", "消費日期", "收費日期", "fecha de visita",
                   "fecha de la visita", "fecha"),
    "doctor": ("doctor", "doctor id", "dentist", "physician", "医生", "医师", "主治医生", "醫生", "醫師", "主治醫師",
               "médico", "medico", "odontólogo", "odontologo", "doctor/a"),
    "kind": ("kind", "visit kind", "visit type", "就诊类型", "初复诊", "就診類型", "初複診", "tipo de visita"),
    "category": ("category", "procedure category", "service category", "项目类别", "项目分类", "項目類別", "項目分類",
                 "categoría", "categoria"),
    "item": ("item", "item code", "procedure", "service", "项目", "收费项目", "项目编码", "項目", "收費項目", "項目編碼",
             "concepto", "procedimiento", "servicio"),
    "amount": ("amount", "item amount", "price", "金额", "项目金额", "應收金額", "金額", "項目金額", "importe", "precio"),
    "payment_method": ("payment_method", "payment method", "paid by", "支付方式", "付款方式", "付款方法",
                       "método de pago", "metodo de pago", "forma de pago"),
    "paid": ("paid", "payment", "amount paid", "paid amount", "实收金额", "实付金额", "付款金额", "支付金额", "實收金額",
             "付款金額", "支付金額", "pagado", "importe pagado", "pago"),
}
"""Each field of a visits sheet and the headers it goes by (besides how the member is named: ``WHO_ALIASES``)."""
REQUIRED = ("bill_number", "visited_at")

CATEGORIES: dict[str, tuple[str, ...]] = {
    "exam": ("exam", "examination", "consultation", "检查", "问诊", "檢查", "問診", "examen", "consulta"),
    "treatment": ("treatment", "治疗", "治療", "tratamiento"),
    "cleaning": ("cleaning", "洁牙", "洗牙", "潔牙", "limpieza"),
    "implant": ("implant", "种植", "种植牙", "種植", "種植牙", "implante"),
    "orthodontics": ("orthodontics", "正畸", "矫正", "矯正", "ortodoncia"),
    "whitening": ("whitening", "美白", "blanqueamiento"),
    "products": ("products", "product", "产品", "商品", "產品", "productos", "producto"),
    "surgery": ("surgery", "手术", "手術", "cirugía", "cirugia"),
    "imaging": ("imaging", "x-ray", "xray", "影像", "拍片", "imagen", "radiografía", "radiografia"),
    "other": ("other", "其他", "otro", "otros"),
}
METHODS: dict[str, tuple[str, ...]] = {
    "cash": ("cash", "现金", "現金", "efectivo"),
    "card": ("card", "bank card", "credit card", "debit card", "刷卡", "银行卡", "信用卡", "銀行卡", "tarjeta"),
    "mobile": ("mobile", "wechat", "wechat pay", "alipay", "line pay", "微信", "微信支付", "支付宝", "支付寶",
               "móvil", "movil", "bizum"),
    "insurance": ("insurance", "医保", "保险", "醫保", "保險", "健保", "seguro"),
    "stored_value": ("stored_value", "stored value", "储值", "储值卡", "会员卡", "儲值", "儲值卡", "會員卡", "saldo"),
    "stored_value_bonus": ("stored_value_bonus", "bonus", "赠送余额", "贈送餘額", "saldo de regalo"),
    "points": ("points", "积分", "積分", "puntos"),
    "coupon": ("coupon", "voucher", "优惠券", "代金券", "優惠券", "cupón", "cupon"),
}
KINDS: dict[str, tuple[str, ...]] = {
    "first": ("first", "初诊", "初診", "primera", "primera visita"),
    "return": ("return", "复诊", "複診", "revisión", "revision"),
    "emergency": ("emergency", "急诊", "急診", "urgencia"),
    "free_clinic": ("free_clinic", "free clinic", "义诊", "義診"),
    "event": ("event", "活动", "活動", "evento"),
}
"""The words clinics type for a procedure category, a payment method and a kind of visit, by the code
records keeps (``services/records/events.py``)."""


def _word_of(words: dict[str, tuple[str, ...]]) -> dict[str, str]:
    return {cols.header_key(spelling): code for code, spellings in words.items() for spelling in spellings}


_CATEGORY_OF, _METHOD_OF, _KIND_OF = _word_of(CATEGORIES), _word_of(METHODS), _word_of(KINDS)
_TIME = re.compile(r"^(.+?)[\sT]+(\d{1,2}):(\d{2})(?::(\d{2}))?$")


def _code(words: dict[str, str], cell: Any, what: str) -> str:
    found = words.get(cols.header_key(cell))
    if found is None:
        raise ValueError(f"{values.text(cell)} is not a {what} this import knows.")
    return found


def parse_moment(cell: Any, day_first: bool | None) -> datetime:
    """A visit's date, with its time when the cell has one (``2024-03-05 14:30``, an Excel date-time), as the
    clinic's local time (naive); a date alone is the start of that day."""
    if isinstance(cell, datetime):
        local = cell.replace(tzinfo=None)
    elif isinstance(cell, (int, float)) and not isinstance(cell, bool):
        day = values.excel_serial(float(cell))
        local = datetime.combine(day, time()) + timedelta(seconds=round((float(cell) % 1) * 86400))
    elif isinstance(cell, date):
        local = datetime.combine(cell, time())
    else:
        text = unicodedata.normalize("NFKC", values.text(cell))
        found = _TIME.match(text)
        if found is None:
            local = datetime.combine(values.parse_date(text, day_first), time())
        else:
            hour, minute, second = int(found[2]), int(found[3]), int(found[4] or 0)
            if hour > 23 or minute > 59 or second > 59:
                raise ValueError(f"{text} is not a time of day.")
            local = datetime.combine(values.parse_date(found[1], day_first), time(hour, minute, second))
    return local


def bill_of(columns: cols.Columns, row: list[Any]) -> str:
    """The bill a row is a line of (``Kind.together``)."""
    return values.text(cols.cells_of(columns, row).get("bill_number"))


def read(cells: dict[str, Any], job: ImportJob) -> tuple[dict[str, Any], list[cols.Issue]]:
    """A line as its parts (``who``, ``visit``, ``item``, ``payment``). What is wrong with a line of a bill goes
    under ``problems`` (the send refuses the whole bill with it); only a line without a bill number is refused
    here, being no bill's."""
    bill = values.text(cells.get("bill_number"))
    if not bill:
        return {}, [cols.Issue("bill_number", "", "Name the bill this line is of (a bill number).")]
    problems: list[cols.Issue] = []
    who = cols._who(cells, job.identifier_system, job.default_branch, problems)
    visit: dict[str, Any] = {"doctor_id": values.text(cells["doctor"]) if "doctor" in cells else None, "kind": None}

    def parse(field: str, reader: Any) -> Any:
        if field not in cells:
            problems.append(cols.Issue(field, "", "Every line needs this."))
            return None
        try:
            return reader(cells[field])
        except ValueError as error:
            problems.append(cols.Issue(field, values.text(cells[field]), str(error)))
            return None

    visit["at"] = parse("visited_at", lambda cell: parse_moment(cell, job.day_first))
    if "kind" in cells:
        visit["kind"] = parse("kind", lambda cell: _code(_KIND_OF, cell, "kind of visit"))
    item = payment = None
    if {"category", "item", "amount"} & set(cells):
        missing = [field for field in ("category", "amount") if field not in cells]
        for field in missing:
            problems.append(cols.Issue(field, "", f"An item needs its {ALIASES[field][0].replace('_', ' ')}."))
        if not missing:
            category = parse("category", lambda cell: _code(_CATEGORY_OF, cell, "procedure category"))
            amount = parse("amount", _amount)
            item = {"category": category, "code": values.text(cells.get("item")) or category, "amount_minor": amount}
    if {"payment_method", "paid"} & set(cells):
        missing = [field for field in ("payment_method", "paid") if field not in cells]
        for field in missing:
            problems.append(cols.Issue(field, "", "A payment needs its method and the amount paid."))
        if not missing:
            payment = {"method": parse("payment_method", lambda cell: _code(_METHOD_OF, cell, "payment method")),
                       "amount_minor": parse("paid", _amount)}
    if item is None and payment is None and not problems:
        problems.append(cols.Issue("amount", "", "The line has neither an item nor a payment."))
    return {"bill": bill, "who": who, "visit": visit, "item": item, "payment": payment, "problems": problems}, []


def _amount(cell: Any) -> int:
    amount = values.parse_money(cell)
    if amount < 0:
        raise ValueError("Refunds are not imported: import the bill as it was finally paid.")
    return amount


def bill_key(job: ImportJob, bill: str) -> str:
    """The import's key for a bill: one visit however often it is sent."""
    return f"import:{job.id}:{bill}"


RECORDS_FIELDS = {"completed_at": "visited_at", "items": "amount", "payments": "paid", "branch": "branch",
                  "kind": "kind", "doctor_id": "doctor", "bill_id": "bill_number"}
"""records' field (``ImportedBillSchema``) -> the sheet's, for the report."""

Line = tuple[int, dict[str, Any], dict[str, Any]]


def _bills(ready: list[Line]) -> list[list[Line]]:
    """The batch's lines by bill, in the file's order (a bill's lines follow each other)."""
    bills: list[list[Line]] = []
    for line in ready:
        if bills and bills[-1][0][1]["bill"] == line[1]["bill"]:
            bills[-1].append(line)
        else:
            bills.append([line])
    return bills


def _apart(session: Session, job: ImportJob, bills: list[list[Line]]) -> dict[int, int]:
    """Bills whose number came before in the file, with other bills between: first row -> the earlier row."""
    identity = {lines[0][0]: "bill:" + hashlib.sha256(lines[0][1]["bill"].encode()).hexdigest()[:24]
                for lines in bills}
    seen = dict(session.execute(select(ImportSeen.identity, ImportSeen.row).where(
        ImportSeen.job_id == job.id, ImportSeen.identity.in_(set(identity.values())))).all()) if identity else {}
    apart, first_seen = {}, []
    for first, key in identity.items():
        if key in seen and seen[key] != first:
            apart[first] = seen[key]
        elif key not in seen:
            seen[key] = first
            first_seen.append({"job_id": job.id, "identity": key, "row": first})
    if first_seen:  # a Core multi-row insert, as the members import's (``jobs._repeated``)
        session.execute(insert(ImportSeen.__table__), first_seen)
    return apart


def send(session: Session, job: ImportJob, phase: str, columns: cols.Columns, ready: list[Line],
         peers: dict[str, Any], config: dict[str, Any]) -> None:
    """A batch of bills: their members found by members in one call, then checked (dry run) or stored (commit)
    by records in one call."""
    from services.interfaces.imports import jobs  # jobs names this kind in its KINDS

    def refuse(lines: list[Line], message: str) -> None:
        job.invalid_rows += len(lines)
        for number, _row, _cells in lines:
            jobs._issue(session, job, phase, number, "", None, message)

    group = group_from_config(config)
    bills, whole = _bills(ready), []
    apart = _apart(session, job, bills)
    for lines in bills:
        first, bill = lines[0][0], lines[0][1]["bill"]
        if first in apart:
            refuse(lines, f"The lines of bill {bill} must follow each other: it began at row {apart[first]}.")
            continue
        bad = [(number, row, cells) for number, row, cells in lines if row["problems"]]
        for number, row, _cells in bad:
            for problem in row["problems"]:
                jobs._issue(session, job, phase, number, columns.headers.get(problem.field, problem.field),
                            problem.value, problem.message)
        if bad:
            job.invalid_rows += len(bad)
            refuse([line for line in lines if not line[1]["problems"]],
                   f"Bill {bill} is not imported: a line of it is wrong (row {bad[0][0]}).")
            continue
        whole.append(lines)
    if not whole:
        return
    found = {number: (member_id, branch) for number, _row, _cells, member_id, branch in jobs._located(
        session, job, phase, columns, [lines[0] for lines in whole], peers)}  # a bill's first line names its member
    sent, rows = [], []
    for lines in whole:
        first, bill = lines[0][0], lines[0][1]["bill"]
        if first not in found:  # that line reported and counted
            refuse(lines[1:], f"Bill {bill} is not imported: see row {first}.")
            continue
        member_id, branch = found[first]
        visit = lines[0][1]["visit"]
        completed_at = visit["at"].replace(tzinfo=group.zone).astimezone(UTC)  # the clinic's local time
        rows.append({"key": bill_key(job, bill), "bill_id": bill, "member_id": member_id, "branch": branch,
                     "doctor_id": visit["doctor_id"], "kind": visit["kind"], "completed_at": isoformat(completed_at),
                     "currency": group.currency,
                     "items": [row["item"] for _n, row, _c in lines if row["item"] is not None],
                     "payments": [row["payment"] for _n, row, _c in lines if row["payment"] is not None]})
        sent.append(lines)
    if not rows:
        return
    outcomes = peers["records"].import_visits({"dry_run": phase == "dry_run", "rows": rows})["items"]
    for lines, outcome in zip(sent, outcomes, strict=True):
        first, bill = lines[0][0], lines[0][1]["bill"]
        if outcome["status"] == "imported":
            job.imported_rows += len(lines)
        elif outcome["status"] == "valid":
            job.valid_rows += len(lines)
        elif outcome["status"] == "present":
            job.present_rows += len(lines)
            message = outcome.get("message") or f"Bill {bill} is in CareLoop already."
            for number, _row, _cells in lines:
                jobs._issue(session, job, phase, number, "", None, message)
        else:
            named = [RECORDS_FIELDS[name] for name in (outcome.get("errors") or {}) if name in RECORDS_FIELDS]
            column = columns.headers.get(named[0], "") if named else ""
            value = values.text(lines[0][2].get(named[0])) if named else None
            job.invalid_rows += 1
            jobs._issue(session, job, phase, first, column, value, outcome.get("message") or "Refused.")
            refuse(lines[1:], f"Bill {bill} is not imported: see row {first}.")

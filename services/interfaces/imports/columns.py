"""Which column of a sheet is which field: headers found by alias in the four languages, or by an explicit
mapping; and a row turned into the owning service's input (a members row into an enrolment as the members
API takes it; an opening balance into a points or stored-value opening). No I/O here."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from services.interfaces.imports import values

MEMBER_ALIASES: dict[str, tuple[str, ...]] = {
    "full_name": ("full_name", "name", "full name", "member name", "patient name", "姓名", "名字", "会员姓名",
                  "會員姓名", "客户姓名", "客戶姓名", "患者姓名", "nombre", "nombre completo", "nombre y apellidos"),
    "phone": ("phone", "mobile", "mobile phone", "phone number", "cell", "手机号", "手机", "手机号码", "手機",
              "手機號碼", "手機號", "电话", "電話", "联系电话", "聯絡電話", "teléfono", "telefono", "móvil", "movil",
              "celular"),
    "birth_date": ("birth_date", "birth date", "date of birth", "birthday", "dob", "出生日期", "生日", "出生年月日",
                   "fecha de nacimiento", "nacimiento"),
    "gender": ("gender", "sex", "性别", "性別", "sexo", "género", "genero"),
    "email": ("email", "e-mail", "mail", "邮箱", "电子邮件", "电子邮箱", "電子郵件", "電郵", "correo",
              "correo electrónico", "correo electronico"),
    "id_type": ("id_type", "id type", "document type", "证件类型", "證件類型", "tipo de documento"),
    "id_number": ("id_number", "id number", "id no", "document number", "身份证号", "身份证号码", "身份证", "身份證",
                  "身分證字號", "身分證號碼", "证件号码", "證件號碼", "证件号", "número de documento", "dni"),
    "home_branch": ("home_branch", "branch", "clinic", "门店", "分店", "门诊", "診所", "分院", "所属门店",
                    "所屬門店", "sucursal", "clínica", "clinica"),
    "preferred_language": ("preferred_language", "language", "语言", "語言", "idioma"),
    "card_number": ("card_number", "card number", "card", "card no", "member card", "membership number",
                    "会员卡号", "卡号", "會員卡號", "卡號", "número de tarjeta", "numero de tarjeta", "tarjeta"),
}
"""Each field of a members sheet and the headers it goes by (compared case-, width- and space-blind). The
card number is the member's card in the old system: kept as the member's card number when free
(``legacy_card``)."""
MEMBER_REQUIRED = ("full_name", "phone", "birth_date")

WHO_ALIASES: dict[str, tuple[str, ...]] = {
    "card_number": MEMBER_ALIASES["card_number"],
    "identifier": ("identifier", "patient id", "mrn", "medical record number", "病历号", "病歷號", "档案号",
                   "檔案號", "患者编号", "患者編號", "número de historia", "numero de historia", "historia clínica"),
    "phone": MEMBER_ALIASES["phone"],
    "branch": MEMBER_ALIASES["home_branch"],
}
"""How a balances (or visits) sheet names the member a row is about, and where it was kept."""
WHO = ("card_number", "identifier", "phone")

POINTS_ALIASES: dict[str, tuple[str, ...]] = {
    **WHO_ALIASES,
    "points": ("points", "point balance", "points balance", "积分", "积分余额", "可用积分", "積分", "積分餘額",
               "可用積分", "puntos", "saldo de puntos"),
    "expires_on": ("expires_on", "expires on", "expiry", "expiry date", "expires", "valid until", "到期日",
                   "到期日期", "有效期至", "过期日期", "過期日期", "fecha de caducidad", "caducidad", "vencimiento"),
}
WALLET_ALIASES: dict[str, tuple[str, ...]] = {
    **WHO_ALIASES,
    "principal": ("principal", "paid", "paid balance", "stored value", "balance", "本金", "储值余额", "充值余额",
                  "實儲餘額", "儲值餘額", "本金餘額", "saldo", "saldo pagado"),
    "bonus": ("bonus", "bonus balance", "gift balance", "赠送余额", "赠送金额", "贈送餘額", "贈送金額",
              "bonificación", "bonificacion", "saldo de regalo"),
    # CareLoop's own stored-value export (GET /v1/exports/wallets): whole minor units, not money as typed
    "principal_minor": ("principal_minor",),
    "bonus_minor": ("bonus_minor",),
}


def header_key(header: Any) -> str:
    """A header in the form aliases are compared in: NFKC, casefolded, no spaces, ``_`` or ``:``."""
    return re.sub(r"[\s_:：*]+", "", unicodedata.normalize("NFKC", values.text(header)).casefold())


_MEMBER_FIELD_OF = {header_key(alias): field for field, aliases in MEMBER_ALIASES.items() for alias in aliases}


@dataclass(frozen=True)
class Columns:
    """Position in the row -> field, and field -> the header as the file wrote it (for the report)."""

    fields: dict[int, str]
    headers: dict[str, str]
    ignored: tuple[str, ...]

    def missing(self, required: Iterable[str]) -> list[str]:
        return [field for field in required if field not in self.headers]


def resolve(header: list[Any], mapping: dict[str, str] | None = None,
            aliases: dict[str, tuple[str, ...]] = MEMBER_ALIASES) -> Columns:
    """Find each field's column: ``mapping`` (header as written -> field) first, then the aliases. A field
    found twice keeps its first column; headers matching nothing are ``ignored``."""
    given = {header_key(name): field for name, field in (mapping or {}).items()}
    unknown = set(given.values()) - set(aliases)
    if unknown:
        raise ValueError(f"The mapping names fields this import does not have: {', '.join(sorted(unknown))}.")
    field_of = {header_key(alias): field for field, spellings in aliases.items() for alias in spellings}
    fields: dict[int, str] = {}
    headers: dict[str, str] = {}
    ignored = []
    for position, cell in enumerate(header):
        key = header_key(cell)
        field = given.get(key) or field_of.get(key)
        if field is None or field in headers:
            if key:
                ignored.append(values.text(cell))
            continue
        fields[position] = field
        headers[field] = values.text(cell)
    return Columns(fields, headers, tuple(ignored))


def cells_of(columns: Columns, row: list[Any]) -> dict[str, Any]:
    """The row's cells by field (absent or blank cells left out)."""
    found = {}
    for position, field in columns.fields.items():
        cell = row[position] if position < len(row) else None
        if values.text(cell) != "":
            found[field] = cell
    return found


@dataclass(frozen=True)
class Issue:
    field: str
    value: str
    message: str


def enrolment(cells: dict[str, Any], day_first: bool | None, default_branch: str | None) -> tuple[dict[str, Any], list[Issue]]:
    """A members row as the enrolment the members API takes (``EnrolmentSchema``), and the cells that could
    not even be read (a date that is no date). A field left out is the API's to call missing."""
    member: dict[str, Any] = {"source": "import"}
    issues: list[Issue] = []

    def read(field: str, reader: Any, target: str | None = None) -> None:
        if field not in cells:
            return
        try:
            member[target or field] = reader(cells[field])
        except ValueError as error:
            issues.append(Issue(field, values.text(cells[field]), str(error)))

    read("full_name", values.text)
    read("phone", values.text)
    read("birth_date", lambda cell: values.parse_date(cell, day_first).isoformat())
    read("gender", values.parse_gender)
    read("email", values.text)
    read("preferred_language", values.text)
    read("home_branch", lambda cell: values.text(cell).upper())
    member.setdefault("home_branch", default_branch)
    if member["home_branch"] is None:
        del member["home_branch"]
    if "id_number" in cells:
        number = values.text(cells["id_number"])
        kind = "cn_resident_id" if "id_type" not in cells else None
        if kind is None:
            try:
                kind = values.parse_document_kind(cells["id_type"])
            except ValueError as error:
                issues.append(Issue("id_type", values.text(cells["id_type"]), str(error)))
        if kind is not None:
            member["id_document"] = {"type": kind, "number": number}
    return member, issues


def legacy_card(cells: dict[str, Any]) -> str | None:
    """The card number a members row brings from the old system (``members.enrol_batch`` keeps it as the
    member's card number when no member holds it, else draws one), or None."""
    return values.text(cells["card_number"]) if "card_number" in cells else None


def column_of(error_field: str, messages: Any) -> list[tuple[str, str]]:
    """The API's field errors (``{"id_document": {"number": [...]}}``) as (import field, message) pairs."""
    if isinstance(messages, dict):
        pairs = []
        for inner, inner_messages in messages.items():
            field = {"id_document.number": "id_number", "id_document.type": "id_type"}.get(
                f"{error_field}.{inner}", error_field)
            pairs += [(field, message) for _f, message in column_of(field, inner_messages)]
        return pairs
    if isinstance(messages, list):
        return [(error_field, str(message)) for message in messages]
    return [(error_field, str(messages))]


def _who(cells: dict[str, Any], identifier_system: str | None, default_branch: str | None,
         issues: list[Issue]) -> dict[str, Any]:
    """How a row names its member, as ``members.locate_members`` takes it (the first of card, identifier, phone)."""
    who: dict[str, Any] = {}
    if "card_number" in cells:
        who["card_number"] = values.text(cells["card_number"])
    elif "identifier" in cells:
        if identifier_system is None:
            issues.append(Issue("identifier", values.text(cells["identifier"]),
                                "Say which system issued these identifiers (identifier_system)."))
        else:
            who["identifier"] = {"system": identifier_system, "value": values.text(cells["identifier"])}
    elif "phone" in cells:
        who["phone"] = values.text(cells["phone"])
    else:
        issues.append(Issue("card_number", "", "Name the member: a card number, identifier or phone."))
    branch = values.text(cells["branch"]).upper() if "branch" in cells else default_branch
    who["branch"] = branch
    return who


def points_opening(cells: dict[str, Any], day_first: bool | None, default_branch: str | None,
                   identifier_system: str | None = None) -> tuple[dict[str, Any], list[Issue]]:
    """A points row (a lot: points and the day they expire) as ``points.open_balances`` takes it, with whom
    it names under ``who``."""
    issues: list[Issue] = []
    who = _who(cells, identifier_system, default_branch, issues)
    opening: dict[str, Any] = {"branch": who["branch"]}
    try:
        points = values.parse_points(cells.get("points", ""))
        if points <= 0:
            raise ValueError("An opening balance is a positive number of points.")
        opening["points"] = points
    except ValueError as error:
        issues.append(Issue("points", values.text(cells.get("points")), str(error)))
    try:
        opening["expires_on"] = values.parse_date(cells.get("expires_on", ""), day_first).isoformat()
    except ValueError as error:
        issues.append(Issue("expires_on", values.text(cells.get("expires_on")), str(error)))
    return {"who": who, "opening": opening}, issues


def wallet_opening(cells: dict[str, Any], day_first: bool | None, default_branch: str | None,
                   identifier_system: str | None = None) -> tuple[dict[str, Any], list[Issue]]:
    """A stored-value row (the paid part and the bonus part, money as typed) as ``points.open_balances``
    takes it, in minor units."""
    issues: list[Issue] = []
    who = _who(cells, identifier_system, default_branch, issues)
    opening: dict[str, Any] = {"branch": who["branch"]}
    for field, target in (("principal", "principal_minor"), ("bonus", "bonus_minor")):
        if target in cells and field not in cells:  # CareLoop's own export: whole minor units already
            field, parse = target, values.parse_points
        else:
            parse = values.parse_money
        try:
            amount = parse(cells[field]) if field in cells else 0
            if amount < 0:
                raise ValueError("A balance cannot be negative.")
            opening[target] = amount
        except ValueError as error:
            issues.append(Issue(field, values.text(cells.get(field)), str(error)))
    if not issues and opening["principal_minor"] + opening["bonus_minor"] == 0:
        issues.append(Issue("principal", "0", "An opening balance of nothing: leave the row out."))
    return {"who": who, "opening": opening}, issues

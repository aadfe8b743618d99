"""Reading the values clinics type into sheets: dates, money, genders, document kinds. No I/O here.

Each reader takes the cell as the file gave it (text from a CSV; text, number, date or datetime from an
``.xlsx``) and answers the value in the API's form, or raises ``ValueError`` with a message for the row's
report. What the value must then satisfy (a date of birth not in the future, a valid phone) is the owning
service's rule, checked by its own schema: not repeated here.
"""

from __future__ import annotations

import re
import unicodedata
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

EXCEL_EPOCH = date(1899, 12, 30)  # serial 1 is 1900-01-01 (Excel's 1900 leap-year bug included)
_YMD = re.compile(r"^(\d{4})\s*[-/.年]\s*(\d{1,2})\s*[-/.月]\s*(\d{1,2})\s*日?$")
_COMPACT = re.compile(r"^(\d{4})(\d{2})(\d{2})$")
_DMY = re.compile(r"^(\d{1,2})\s*[-/.]\s*(\d{1,2})\s*[-/.]\s*(\d{4})$")
_AMOUNT = re.compile(r"^-?\d{1,15}(\.\d+)?$")  # at most a trillion and more: past that it is a typo
_CURRENCY = re.compile(r"(NT\$|HK\$|US\$|RMB|CNY|TWD|HKD|EUR|USD|[¥￥$€£元圓])", re.IGNORECASE)


def text(cell: Any) -> str:
    """A cell as text: numbers without a trailing ``.0`` (a phone typed into a number cell), width-normalised."""
    if cell is None:
        return ""
    if isinstance(cell, float) and cell.is_integer():
        cell = int(cell)
    if isinstance(cell, datetime):
        return cell.date().isoformat() if cell.time() == datetime.min.time() else cell.isoformat()
    if isinstance(cell, date):
        return cell.isoformat()
    return unicodedata.normalize("NFKC", str(cell)).strip()


def excel_serial(serial: float) -> date:
    if not 1 <= serial < 2958466:
        raise ValueError(f"{serial} is not an Excel date.")
    return EXCEL_EPOCH + timedelta(days=int(serial))


def parse_date(cell: Any, day_first: bool | None) -> date:
    """``2024-03-05``, ``2024/3/5``, ``2024年3月5日``, ``20240305``, an Excel serial or date cell; ``05/03/2024``
    only with ``day_first`` stated (True: day/month/year; False: month/day/year), unless only one reading
    is a date."""
    if isinstance(cell, datetime):
        return cell.date()
    if isinstance(cell, date):
        return cell
    if isinstance(cell, (int, float)) and not isinstance(cell, bool):
        return excel_serial(float(cell))
    value = text(cell)
    if re.fullmatch(r"\d{1,5}(\.\d+)?", value) and not _COMPACT.match(value):
        return excel_serial(float(value))
    for pattern in (_YMD, _COMPACT):
        found = pattern.match(value)
        if found:
            year, month, day = (int(part) for part in found.groups())
            return _date(year, month, day, value)
    found = _DMY.match(value)
    if found:
        first, second, year = (int(part) for part in found.groups())
        if day_first is None:
            readings = {(y, m, d) for y, m, d in ((year, second, first), (year, first, second)) if _is_date(y, m, d)}
            if len(readings) != 1:
                raise ValueError(f"{value} could be day/month or month/day: state which (day_first).")
            return date(*readings.pop())
        return _date(year, second, first, value) if day_first else _date(year, first, second, value)
    raise ValueError(f"{value} is not a date (write 2024-03-05).")


def _is_date(year: int, month: int, day: int) -> bool:
    try:
        date(year, month, day)
    except ValueError:
        return False
    return True


def _date(year: int, month: int, day: int, value: str) -> date:
    try:
        return date(year, month, day)
    except ValueError:
        raise ValueError(f"{value} is not a date of the calendar.") from None


def parse_money(cell: Any, exponent: int = 2) -> int:
    """Money in major units as typed (``1,280.50``, ``¥1280.5``, ``NT$ 300``) in minor units, exactly."""
    if isinstance(cell, float):
        cell = repr(cell)  # the shortest text that is this float: 1280.5, not 1280.49999...
    value = _CURRENCY.sub("", text(cell)).replace(",", "").replace(" ", "")
    negative = value.startswith("(") and value.endswith(")")
    value = value.strip("()")
    if not _AMOUNT.match(value):
        raise ValueError(f"{text(cell)} is not an amount of money.")
    amount = Decimal(value)
    minor = amount.scaleb(exponent)
    if minor != minor.to_integral_value():
        raise ValueError(f"{text(cell)} has more than {exponent} decimals.")
    return -int(minor) if negative else int(minor)



def parse_points(cell: Any) -> int:
    """A whole number of points as typed (``1,280``, ``1280``, an Excel number ``1280.0``)."""
    if isinstance(cell, bool):
        raise ValueError(f"{text(cell)} is not a number of points.")
    if isinstance(cell, float):
        if not cell.is_integer():
            raise ValueError(f"{text(cell)} is not a whole number of points.")
        return int(cell)
    if isinstance(cell, int):
        return cell
    value = text(cell).replace(",", "").replace(" ", "")
    if not re.fullmatch(r"-?\d{1,12}(\.0+)?", value):
        raise ValueError(f"{text(cell)} is not a whole number of points.")
    return int(Decimal(value))

GENDERS = {
    "female": ("female", "f", "女", "w", "woman", "mujer", "femenino"),
    "male": ("male", "m", "男", "man", "hombre", "masculino", "varón"),
    "other": ("other", "其他", "otro"),
    "undisclosed": ("undisclosed", "unknown", "未知", "保密", "不詳", "不详", "no indica"),
}
_GENDER_OF = {spelling: gender for gender, spellings in GENDERS.items() for spelling in spellings}

DOCUMENT_KINDS = {
    "cn_resident_id": ("cn_resident_id", "身份证", "居民身份证", "身份證", "國民身分證", "身分證", "resident id", "id card"),
    "passport": ("passport", "护照", "護照", "pasaporte"),
    "hk_macau_permit": ("hk_macau_permit", "港澳通行证", "港澳通行證", "回乡证", "回鄉證"),
    "taiwan_permit": ("taiwan_permit", "台胞证", "台胞證", "台湾通行证", "台灣通行證"),
    "other": ("other", "其他", "otro"),
}
_DOCUMENT_OF = {spelling: kind for kind, spellings in DOCUMENT_KINDS.items() for spelling in spellings}


def parse_gender(cell: Any) -> str:
    value = text(cell).casefold()
    if value not in _GENDER_OF:
        raise ValueError(f"{text(cell)} is not a gender this import knows (男/女, male/female...).")
    return _GENDER_OF[value]


def parse_document_kind(cell: Any) -> str:
    value = text(cell).casefold()
    if value not in _DOCUMENT_OF:
        raise ValueError(f"{text(cell)} is not a kind of ID document this import knows.")
    return _DOCUMENT_OF[value]

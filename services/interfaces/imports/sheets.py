"""Rows out of the files clinics keep: CSV in UTF-8 (with or without BOM), GB18030 or Big5, and ``.xlsx``.

Rows stream: a CSV is read a record at a time, an ``.xlsx`` through openpyxl's read-only mode (the first
sheet or a named one), so memory stays flat however long the file. Each row comes with the number a person
sees beside it (the header is row 1); blank rows are skipped. A CSV's encoding is taken as stated or worked
out: a BOM says UTF-8; else the first bytes that decode as UTF-8 are UTF-8; else GB18030 or Big5, whichever
reads the header into more of the known column names (the two decode each other's bytes into nonsense
rather than failing).
"""

from __future__ import annotations

import codecs
import csv
import itertools
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from services.interfaces.imports.values import text

ENCODINGS = ("utf-8", "utf-8-sig", "gb18030", "big5")
SAMPLE_BYTES = 256 * 1024
Row = tuple[int, list[Any]]


def kind_of(filename: str) -> str:
    suffix = Path(filename).suffix.lower()
    if suffix in (".xlsx", ".xlsm"):
        return "xlsx"
    if suffix in (".csv", ".txt", ".tsv"):
        return "csv"
    raise ValueError(f"{filename}: only .csv and .xlsx files can be imported.")


def detect_encoding(path: Path, known_header: Callable[[str], int]) -> str:
    with open(path, "rb") as handle:
        sample = handle.read(SAMPLE_BYTES)
    if sample.startswith(codecs.BOM_UTF8):
        return "utf-8-sig"
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    first_line = sample.split(b"\n", 1)[0]
    scores = []
    for encoding in ("gb18030", "big5"):
        try:
            scores.append((known_header(first_line.decode(encoding)), encoding == "gb18030", encoding))
        except UnicodeDecodeError:
            continue
    if not scores:
        raise ValueError("The file is not in UTF-8, GB18030 or Big5; save it as UTF-8 CSV and try again.")
    return max(scores)[2]


def _csv_rows(path: Path, encoding: str) -> Iterator[Row]:
    with open(path, encoding=encoding, newline="", errors="strict") as handle:
        first = handle.readline()
        dialect = csv.excel_tab if first.count("\t") > first.count(",") else csv.excel
        if first.count(";") > first.count(",") and first.count(";") > first.count("\t"):
            dialect = type("semicolon", (csv.excel,), {"delimiter": ";"})
        reader = csv.reader(itertools.chain([first], handle), dialect)
        try:
            yield from enumerate(reader, start=1)
        except UnicodeDecodeError:
            raise ValueError(f"The file is not all in {encoding} (state its encoding).") from None


def _xlsx_rows(path: Path, sheet: str | None) -> Iterator[Row]:
    from openpyxl import load_workbook

    workbook = load_workbook(path, read_only=True, data_only=True)
    try:
        if sheet is not None and sheet not in workbook.sheetnames:
            raise ValueError(f"The workbook has no sheet {sheet!r} (it has {', '.join(workbook.sheetnames)}).")
        worksheet = workbook[sheet] if sheet is not None else workbook.worksheets[0]
        for number, row in enumerate(worksheet.iter_rows(values_only=True), start=1):
            yield number, list(row)
    finally:
        workbook.close()


def rows(path: Path, kind: str, encoding: str | None = None, sheet: str | None = None) -> Iterator[Row]:
    """Every non-blank row of the file, the header first."""
    source = _xlsx_rows(path, sheet) if kind == "xlsx" else _csv_rows(path, encoding or "utf-8")
    for number, row in source:
        if any(text(cell) for cell in row):
            yield number, row



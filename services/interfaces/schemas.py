"""What the interfaces service's RPCs take (input schemas, ``load``) and answer (output schemas, ``dump``);
the gateway's OpenAPI document is built from them."""

from __future__ import annotations

import json
from typing import Any

from marshmallow import fields, validate

from services.interfaces.models import IMPORT_STATES
from services.kit.clock import utcnow
from services.kit.schemas import Schema, StrictInteger, UtcTime, computed, page_of

IMPORT_KINDS = ("members",)
ENCODINGS = ("utf-8", "utf-8-sig", "gb18030", "big5")


class ImportSpecSchema(Schema):
    """A new import: what its rows are, the file's name, and how to read it (all optional but the two)."""

    kind = fields.String(required=True, validate=validate.OneOf(IMPORT_KINDS))
    filename = fields.String(required=True, validate=validate.Length(min=1, max=200))
    encoding = fields.String(load_default=None, allow_none=True, validate=validate.OneOf(ENCODINGS),
                             metadata={"description": "A CSV's encoding; worked out from the file if not given."})
    sheet = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=100),
                          metadata={"description": "The .xlsx sheet to read; the first if not given."})
    day_first = fields.Boolean(load_default=None, allow_none=True,
                               metadata={"description": "05/03/2024 is 5 March (true) or May 3 (false)."})
    mapping = fields.Dict(keys=fields.String(validate=validate.Length(max=100)),
                          values=fields.String(validate=validate.Length(max=40)), load_default=None,
                          allow_none=True, metadata={"description": "Header as written -> field, where the "
                                                                    "aliases do not find it."})
    default_branch = fields.String(load_default=None, allow_none=True, validate=validate.Length(min=1, max=16),
                                   metadata={"description": "The home branch of rows that name none."})


def _json(attribute: str) -> Any:
    return lambda job: json.loads(getattr(job, attribute)) if getattr(job, attribute) else None


def _rate(job: Any) -> float | None:
    if job.phase_started_at is None or not job.processed_rows:
        return None
    elapsed = ((job.finished_at or utcnow()) - job.phase_started_at).total_seconds()
    return round(job.processed_rows / elapsed, 1) if elapsed > 0 else None


def _percent(job: Any) -> float | None:
    if not job.total_rows:
        return 100.0 if job.finished_at and job.total_rows == 0 else None
    return round(100 * min(job.processed_rows, job.total_rows) / job.total_rows, 1)


def _estimate(job: Any) -> int | None:
    rate = _rate(job)
    if rate is None or job.total_rows is None or job.finished_at is not None:
        return None
    return int((job.total_rows - job.processed_rows) / rate) if rate else None


class ImportCountsSchema(Schema):
    valid = fields.Integer(attribute="valid_rows")
    invalid = fields.Integer(attribute="invalid_rows")
    present = fields.Integer(attribute="present_rows",
                             metadata={"description": "Rows an existing member matches (already present)."})
    repeated = fields.Integer(attribute="repeated_rows",
                              metadata={"description": "Rows that are the same person as an earlier row."})
    imported = fields.Integer(attribute="imported_rows")


class ImportJobSchema(Schema):
    id = fields.String()
    kind = fields.String()
    state = fields.String(validate=validate.OneOf(IMPORT_STATES))
    filename = fields.String()
    file_kind = fields.String()
    encoding = fields.String(allow_none=True)
    sheet = fields.String(allow_none=True)
    day_first = fields.Boolean(allow_none=True)
    default_branch = fields.String(allow_none=True)
    size_bytes = fields.Integer()
    columns = computed(fields.Dict(allow_none=True, metadata={
        "description": "found: field -> header as written; ignored: headers no field took"}), _json("columns"))
    total_rows = fields.Integer(allow_none=True)
    processed_rows = fields.Integer()
    percent = computed(fields.Float(allow_none=True), _percent)
    rows_per_second = computed(fields.Float(allow_none=True), _rate)
    seconds_left = computed(fields.Integer(allow_none=True, metadata={"description": "An estimate."}), _estimate)
    counts = computed(fields.Nested(ImportCountsSchema), lambda job: job)
    error = fields.String(allow_none=True)
    created_by = fields.String()
    created_at = UtcTime()
    updated_at = UtcTime()
    finished_at = UtcTime(allow_none=True)


ImportJobPageSchema = page_of(ImportJobSchema)


class ImportChunkSchema(Schema):
    offset = StrictInteger(required=True, validate=validate.Range(min=0))
    data = fields.Raw(required=True, metadata={"description": "The bytes of the file from offset on."})


class ImportIssueSchema(Schema):
    row = fields.Integer()
    column = fields.String()
    value = fields.String(allow_none=True)
    message = fields.String()


ImportIssuePageSchema = page_of(ImportIssueSchema)

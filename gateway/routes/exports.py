"""Exports for the group's data warehouse (issue 19): members as CSV, incremental from a cursor.

The export is written a page at a time (one RPC per page) into a spooled file that goes to disk past 8 MiB,
so the gateway's memory stays flat however many members there are; the answer carries the cursor the next
export starts from (``X-Export-Cursor``: what changed after this export). Personal fields are masked unless
the caller's role may see them (the members service decides, as for every answer)."""

from __future__ import annotations

import csv
import gzip
import io
import tempfile
from typing import Any

from marshmallow import fields
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from gateway.http import query_args, route
from gateway.upstream import Upstream
from services.kit.schemas import Schema, load

TAGS = ("exports",)
PAGE = 2000
MEMBER_COLUMNS = ("id", "card_number", "full_name", "phone", "email", "gender", "birth_date", "preferred_language",
                  "id_type", "id_number", "home_branch", "status", "tier", "source", "enrolled_at", "updated_at",
                  "merged_into")
"""The export's columns; the import (services/interfaces/imports/columns.py) reads these names back."""


class ExportQuerySchema(Schema):
    since = fields.String(metadata={"description": "The X-Export-Cursor of the previous export; none: everything."})
    gzip = fields.Boolean(load_default=False)


def _member_row(member: dict[str, Any]) -> list[Any]:
    document = member.get("id_document") or {}
    flat = {**member, "id_type": document.get("type"), "id_number": document.get("number")}
    return [flat.get(column) for column in MEMBER_COLUMNS]


class ExportRoutes:
    members = Upstream("members")

    @route("GET", "/v1/exports/members", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Members changed since the cursor, as CSV (UTF-8, a header; gzip=true to compress)",
           description="Keep the X-Export-Cursor header of the answer and send it as `since` next time: the "
                       "next export holds only what changed after this one.",
           responses={200: ("text/csv", "application/gzip")})
    def export_members(self, request: Request) -> Response:
        args = load(ExportQuerySchema(), query_args(request))
        spool = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)
        sink = gzip.GzipFile(fileobj=spool, mode="wb") if args["gzip"] else spool
        text = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(MEMBER_COLUMNS)
        cursor, more = args.get("since"), True
        while more:
            page = self.members.export_members({"since": cursor, "limit": PAGE})
            writer.writerows(_member_row(member) for member in page["items"])
            cursor, more = page["cursor"], page["more"]
        text.detach()
        if args["gzip"]:
            sink.close()
        size = spool.tell()
        spool.seek(0)
        headers = {"Content-Disposition": f'attachment; filename="members.csv{".gz" if args["gzip"] else ""}"',
                   "Cache-Control": "no-store", "Content-Length": str(size), "X-Export-Cursor": cursor or ""}
        return Response(wrap_file(request.environ, spool), headers=headers, direct_passthrough=True,
                        content_type="application/gzip" if args["gzip"] else "text/csv; charset=utf-8")

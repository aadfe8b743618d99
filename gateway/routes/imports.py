"""Imports (issue 19): create a job, stream its file up, dry run, read the report, commit, cancel, list. A job
is of one kind: members, points opening balances (``points_openings``), stored-value opening balances
(``wallet_openings``) or historical visits (``visits``); the routes are the same for every kind.

The file is read from the request a piece at a time and handed to interfaces as it comes (one RPC per
piece, ``IMPORT_CHUNK_BYTES``), so neither the gateway nor the broker ever holds the whole file. The report
is written a page at a time into a file spooled to disk past 8 MiB, then sent."""

from __future__ import annotations

import csv
import io
import tempfile
from collections.abc import Iterator
from typing import Any, BinaryIO

from marshmallow import fields, validate
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from gateway.http import idempotency_key, query_args, route
from gateway.upstream import Upstream
from services.interfaces.schemas import ImportJobPageSchema, ImportJobSchema, ImportSpecSchema
from services.kit.schemas import Schema, StrictInteger, load

TAGS = ("imports",)
IMPORT_CHUNK_BYTES = 1024 * 1024
REPORT_PAGE = 2000
REPORT_COLUMNS = ("row", "column", "value", "message")


class ImportListQuerySchema(Schema):
    limit = StrictInteger(validate=validate.Range(min=1, max=100))
    cursor = fields.String()


class ReportQuerySchema(Schema):
    phase = fields.String(load_default="dry_run", validate=validate.OneOf(("dry_run", "commit")))


def _csv_lines(rows: list[dict[str, Any]], header: bool) -> str:
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(REPORT_COLUMNS)
    writer.writerows([row.get(column) for column in REPORT_COLUMNS] for row in rows)
    return out.getvalue()


class ImportRoutes:
    interfaces = Upstream("interfaces")

    @route("POST", "/v1/imports", "imports:write", tags=TAGS, body=ImportSpecSchema,
           summary="A new import job (members, points_openings, wallet_openings or visits); then PUT its file",
           responses={201: ImportJobSchema})
    def create_import(self, request: Request) -> tuple[int, Any]:
        return 201, self.interfaces.create_import(request.json_body)

    @route("PUT", "/v1/imports/<import_id>/file", "imports:write", tags=TAGS, stream_body="application/octet-stream",
           summary="The job's file (.csv or .xlsx), streamed; sending it again writes it once",
           description="The body is the file as it is on disk. The largest accepted is the interfaces "
                       "service's IMPORT_MAX_BYTES (512 MiB unless configured).",
           responses={200: ImportJobSchema, 409: None})
    def upload_import_file(self, request: Request, import_id: str) -> Any:
        return self._send_import_file(import_id, request.stream)

    def _send_import_file(self, import_id: str, stream: BinaryIO) -> Any:
        """``stream`` handed to interfaces a piece at a time (the API's body, the console's uploaded file): the
        job as it stands after the last piece."""
        offset, job = 0, None
        while True:
            piece = stream.read(IMPORT_CHUNK_BYTES)
            if not piece:
                break
            job = self.interfaces.add_import_chunk(import_id, {"offset": offset, "data": piece})
            offset += len(piece)
        return job if job is not None else self.interfaces.get_import(import_id)

    @route("POST", "/v1/imports/<import_id>/check", "imports:write", tags=TAGS, idempotent=False,
           summary="Start the dry run: every row checked, nothing imported (poll the job for progress)",
           responses={202: ImportJobSchema, 409: None})
    def check_import(self, request: Request, import_id: str) -> tuple[int, Any]:
        return 202, self.interfaces.start_import_check(import_id)

    @route("POST", "/v1/imports/<import_id>/commit", "imports:write", tags=TAGS,
           summary="Import the rows that passed the dry run, in batches (poll the job for progress)",
           responses={202: ImportJobSchema, 409: None})
    def commit_import(self, request: Request, import_id: str) -> tuple[int, Any]:
        return 202, self.interfaces.commit_import(import_id, idempotency_key=idempotency_key(request))

    @route("POST", "/v1/imports/<import_id>/cancel", "imports:write", tags=TAGS, idempotent=False,
           summary="Stop a job (rows already imported stay)", responses={200: ImportJobSchema, 409: None})
    def cancel_import(self, request: Request, import_id: str) -> Any:
        return self.interfaces.cancel_import(import_id)

    @route("GET", "/v1/imports/<import_id>", "imports:read", tags=TAGS,
           summary="A job: state, percentage, rows per second, estimate, counts", responses={200: ImportJobSchema})
    def get_import(self, request: Request, import_id: str) -> Any:
        return self.interfaces.get_import(import_id)

    @route("GET", "/v1/imports", "imports:read", tags=TAGS, query=ImportListQuerySchema,
           summary="Import jobs, newest first (a branch manager: their own)", responses={200: ImportJobPageSchema})
    def list_imports(self, request: Request) -> Any:
        args = load(ImportListQuerySchema(), query_args(request))
        return self.interfaces.list_imports(args.get("limit"), args.get("cursor"))

    @route("GET", "/v1/imports/<import_id>/report", "imports:read", tags=TAGS, query=ReportQuerySchema,
           summary="The row-by-row report (row, column, value, message) as CSV (UTF-8 with a BOM, for Excel)",
           responses={200: "text/csv"})
    def import_report(self, request: Request, import_id: str) -> Any:
        args = load(ReportQuerySchema(), query_args(request))
        return self._report_download(request, import_id, args["phase"])

    def _report_download(self, request: Request, import_id: str, phase: str) -> Response:
        """The report of ``phase`` as a CSV download (the API's and the console's)."""
        pages = self._report_pages(import_id, phase)
        first = next(pages)  # errors (not found, forbidden) become answers before the download starts
        body = tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024)  # to disk past 8 MiB: memory stays flat
        body.write(_csv_lines(first, header=True).encode("utf-8-sig"))  # the BOM: Excel then reads it as UTF-8
        for rows in pages:
            body.write(_csv_lines(rows, header=False).encode("utf-8"))
        size = body.tell()
        body.seek(0)
        return Response(wrap_file(request.environ, body), direct_passthrough=True,
                        content_type="text/csv; charset=utf-8", headers={
                            "Content-Disposition": f'attachment; filename="import-{import_id}-{phase}.csv"',
                            "Cache-Control": "no-store", "Content-Length": str(size)})

    def _report_pages(self, import_id: str, phase: str) -> Iterator[list[dict[str, Any]]]:
        cursor = None
        while True:
            page = self.interfaces.import_report(import_id, phase, REPORT_PAGE, cursor)
            yield page["items"]
            cursor = page["next_cursor"]
            if cursor is None:
                return

"""Exports for the group's data warehouse (issue 19): members, visits, points postings, stored-value postings
and coupons as CSV (UTF-8, a header; gzip on request), each incremental from a cursor.

An export is written a page at a time (one RPC per page, the service's cursor carried from page to page)
into a spooled file that goes to disk past 8 MiB, so the gateway's memory stays flat however many rows
there are; the file is then streamed out. The answer carries the cursor the next export starts from
(``X-Export-Cursor``: what changed after this export), which is only known once the last page is read —
hence the spool rather than writing pages straight onto the wire. Which rows a cursor covers, and why it
is safe under concurrent writes, is ``services/kit/exports.py``'s docstring. Personal fields are masked
unless the caller's role may see them (the owning service decides, as for every answer)."""

from __future__ import annotations

import csv
import gzip
import io
import json
import tempfile
from collections.abc import Callable
from typing import Any

from marshmallow import fields
from werkzeug.wrappers import Request, Response
from werkzeug.wsgi import wrap_file

from gateway.http import query_args, route
from gateway.upstream import Upstream
from services.kit.schemas import Schema, load

TAGS = ("exports",)
PAGE = 2000
SPOOL_IN_MEMORY = 8 * 1024 * 1024
MEMBER_COLUMNS = ("id", "card_number", "full_name", "phone", "email", "gender", "birth_date", "preferred_language",
                  "id_type", "id_number", "home_branch", "status", "tier", "source", "enrolled_at", "updated_at",
                  "merged_into")
"""The export's columns; the import (services/interfaces/imports/columns.py) reads these names back."""
VISIT_COLUMNS = ("id", "member_id", "branch", "doctor_id", "kind", "status", "appointment_id", "bill_id", "currency",
                 "total_minor", "qualifying_minor", "refunded_minor", "treatment", "outpatient_surgery", "first_visit",
                 "first_paid_visit", "referral_source", "visit_at", "arrived_at", "completed_at", "updated_at",
                 "items", "payments", "refunds")
"""A visit a row; its bill lines, payments and refunds as JSON arrays in their columns."""
POSTING_COLUMNS = ("id", "member_id", "kind", "rule", "points", "balance_after", "source", "source_ref", "branch",
                   "operator", "reason", "reverses_posting_id", "redemption_id", "expires_on", "created_at")
WALLET_POSTING_COLUMNS = ("id", "member_id", "kind", "amount_minor", "principal_minor", "bonus_minor",
                          "balance_after_minor", "currency", "bill_id", "refunds_payment_id", "branch", "operator",
                          "reason", "created_at")
COUPON_COLUMNS = ("id", "code", "member_id", "source", "title", "category", "value_minor", "rate_bp",
                  "max_discount_minor", "min_spend_minor", "currency", "valid_from", "valid_until", "state",
                  "redemption_id", "issued_at", "redeemed_at", "redeemed_bill_id", "redeemed_branch", "discount_minor",
                  "voided_reason", "updated_at")
LOT_COLUMNS = ("id", "member_id", "phone", "branch", "points", "earned", "expires_on", "created_at",
               "account_updated_at")
"""A lot with points left a row; ``phone`` and ``branch`` (the member's home branch) are what the points
openings import (services/interfaces/imports/columns.py) finds the member by and posts at."""
WALLET_COLUMNS = ("member_id", "phone", "branch", "currency", "principal_minor", "bonus_minor", "created_at",
                  "updated_at")
"""A member's stored value a row, read back by the stored-value openings import."""
HOW = ("Keep the X-Export-Cursor header of the answer and send it as `since` next time: the next export holds "
       "only what changed after this one. A cursor of another kind of export, or a made-up one, is refused (422).")


class ExportQuerySchema(Schema):
    since = fields.String(metadata={"description": "The X-Export-Cursor of the previous export; none: everything."})
    gzip = fields.Boolean(load_default=False)


def _member_row(member: dict[str, Any]) -> dict[str, Any]:
    document = member.get("id_document") or {}
    return {**member, "id_type": document.get("type"), "id_number": document.get("number")}


def _flat(item: dict[str, Any]) -> dict[str, Any]:
    """An answer's item as one CSV row: money ``{"amount", "currency"}`` as ``<name>_minor`` and ``currency``,
    lists as JSON, booleans as ``true``/``false``."""
    row: dict[str, Any] = {}
    for key, value in item.items():
        if isinstance(value, dict) and set(value) == {"amount", "currency"}:
            row[f"{key}_minor"], row["currency"] = value["amount"], value["currency"]
        elif isinstance(value, (list, dict)):
            row[key] = json.dumps(value, ensure_ascii=False, separators=(",", ":"))
        elif isinstance(value, bool):
            row[key] = "true" if value else "false"
        else:
            row[key] = value
    return row


def with_members(fetch: Callable[[dict[str, Any]], dict], members: Any) -> Callable[[dict[str, Any]], dict]:
    """``fetch`` (an export RPC of rows naming a ``member_id``) with each row's member's phone and home branch,
    asked of members once per page (masked as the members export masks them)."""
    def page(query: dict[str, Any]) -> dict:
        answer = fetch(query)
        ids = sorted({item["member_id"] for item in answer["items"]})
        found = {member["id"]: member for member in members.export_members_by_id(ids)["items"]} if ids else {}
        answer["items"] = [{**item, "phone": found.get(item["member_id"], {}).get("phone"),
                            "branch": found.get(item["member_id"], {}).get("home_branch")} for item in answer["items"]]
        return answer
    return page


def export_csv(request: Request, name: str, columns: tuple[str, ...], fetch: Callable[[dict[str, Any]], dict],
               row: Callable[[dict[str, Any]], dict[str, Any]]) -> Response:
    """``fetch`` (an export RPC) page by page from ``since`` into a CSV file of ``columns``, sent as the answer."""
    args = load(ExportQuerySchema(), query_args(request))
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)
    try:
        sink = gzip.GzipFile(fileobj=spool, mode="wb") if args["gzip"] else spool
        text = io.TextIOWrapper(sink, encoding="utf-8", newline="", write_through=True)
        writer = csv.writer(text)
        writer.writerow(columns)
        cursor = _write_pages(writer, columns, fetch, row, args.get("since"))
        text.detach()
        if args["gzip"]:
            sink.close()
    except BaseException:
        spool.close()
        raise
    size = spool.tell()
    spool.seek(0)
    headers = {"Content-Disposition": f'attachment; filename="{name}.csv{".gz" if args["gzip"] else ""}"',
               "Cache-Control": "no-store", "Content-Length": str(size), "X-Export-Cursor": cursor or ""}
    return Response(wrap_file(request.environ, spool), headers=headers, direct_passthrough=True,
                    content_type="application/gzip" if args["gzip"] else "text/csv; charset=utf-8")


def _write_pages(writer: Any, columns: tuple[str, ...], fetch: Callable[[dict[str, Any]], dict],
                 row: Callable[[dict[str, Any]], dict[str, Any]], cursor: str | None) -> str | None:
    more = True
    while more:
        page = fetch({"since": cursor, "limit": PAGE})
        writer.writerows(_cells(row(item), columns) for item in page["items"])
        cursor, more = page["cursor"], page["more"]
    return cursor


def _cells(row: dict[str, Any], columns: tuple[str, ...]) -> list[Any]:
    """A CSV row's cells in the order of ``columns`` (its row made once, not once per column)."""
    return [row.get(column) for column in columns]


class ExportRoutes:
    members = Upstream("members")
    points = Upstream("points")
    records = Upstream("records")

    @route("GET", "/v1/exports/members", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Members changed since the cursor, as CSV (UTF-8, a header; gzip=true to compress)",
           description=HOW, responses={200: ("text/csv", "application/gzip")})
    def export_members(self, request: Request) -> Response:
        return export_csv(request, "members", MEMBER_COLUMNS, self.members.export_members, _member_row)

    @route("GET", "/v1/exports/visits", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Visits (with bill lines, payments, refunds) changed since the cursor, as CSV",
           description=HOW, responses={200: ("text/csv", "application/gzip")})
    def export_visits(self, request: Request) -> Response:
        return export_csv(request, "visits", VISIT_COLUMNS, self.records.export_visits, _flat)

    @route("GET", "/v1/exports/points-postings", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Points postings written since the cursor, as CSV", description=HOW,
           responses={200: ("text/csv", "application/gzip")})
    def export_points_postings(self, request: Request) -> Response:
        return export_csv(request, "points-postings", POSTING_COLUMNS, self.points.export_postings, _flat)

    @route("GET", "/v1/exports/wallet-postings", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Stored-value postings written since the cursor, as CSV (money in minor units)",
           description=HOW, responses={200: ("text/csv", "application/gzip")})
    def export_wallet_postings(self, request: Request) -> Response:
        return export_csv(request, "wallet-postings", WALLET_POSTING_COLUMNS, self.points.export_wallet_postings,
                          _flat)

    @route("GET", "/v1/exports/coupons", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Coupons issued or changed since the cursor, as CSV (money in minor units)", description=HOW,
           responses={200: ("text/csv", "application/gzip")})
    def export_coupons(self, request: Request) -> Response:
        return export_csv(request, "coupons", COUPON_COLUMNS, self.points.export_coupons, _flat)

    @route("GET", "/v1/exports/points-lots", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Points balances as lots (points left, expiry date) of members whose points changed since the "
                   "cursor, as CSV", description=HOW, responses={200: ("text/csv", "application/gzip")})
    def export_points_lots(self, request: Request) -> Response:
        return export_csv(request, "points-lots", LOT_COLUMNS, with_members(self.points.export_points_lots,
                                                                            self.members), _flat)

    @route("GET", "/v1/exports/wallets", "exports:read", tags=TAGS, query=ExportQuerySchema,
           summary="Stored-value balances (paid and bonus apart) changed since the cursor, as CSV (minor units)",
           description=HOW, responses={200: ("text/csv", "application/gzip")})
    def export_wallets(self, request: Request) -> Response:
        return export_csv(request, "wallets", WALLET_COLUMNS, with_members(self.points.export_wallets, self.members),
                          _flat)

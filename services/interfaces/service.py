"""The interfaces service: what CareLoop owes the outside world (the rooms: the package's docstring).

Entrypoints only. Inherited from ``kit.Service``: ``ping`` (the gateway's readiness), dead letters, the
metrics and log context; its own database (kit tables and ``models``) and outbox.
"""

from __future__ import annotations

from typing import Any

from nameko.timer import timer
from sqlalchemy import select

from services.interfaces import access
from services.interfaces.events import EVENTS
from services.interfaces.imports import jobs
from services.interfaces.imports.jobs import BatchPeer
from services.interfaces.models import IMPORTING, VALIDATING, ImportJob
from services.interfaces.schemas import (
    ImportChunkSchema,
    ImportIssuePageSchema,
    ImportJobPageSchema,
    ImportJobSchema,
    ImportSpecSchema,
)
from services.kit import Database, Invalid, Outbox, Service, idempotent, load, rpc
from services.kit.clock import utcnow
from services.kit.paging import keyset_page
from services.kit.schemas import page_limit


class InterfacesService(Service):
    name = "interfaces"
    db = Database()
    events = Outbox(EVENTS)
    members = BatchPeer("members")

    # --- imports (imports/jobs.py) ---------------------------------------------------------------------

    def _import(self, job_id: str, lock: bool = False) -> ImportJob:
        self.caller.require_role(*access.IMPORTERS, action="work with imports")
        return jobs.get(self.db.session, job_id, self.caller, lock=lock)

    def _job_view(self, job: ImportJob, action: str | None = None) -> dict[str, Any]:
        if action is not None:
            jobs.audit(self.db.session, job, action, self.caller, utcnow())
        return ImportJobSchema().dump(job)

    @rpc
    def create_import(self, spec: dict[str, Any]) -> dict[str, Any]:
        """A new import job, waiting for its file (``add_import_chunk``)."""
        self.caller.require_role(*access.IMPORTERS, action="import")
        job = jobs.create(self.db.session, load(ImportSpecSchema(), spec), self.caller, utcnow())
        return ImportJobSchema().dump(job)

    @rpc
    def add_import_chunk(self, job_id: str, chunk: dict[str, Any]) -> dict[str, Any]:
        """The next piece of the job's file (a piece sent twice is written once)."""
        data = load(ImportChunkSchema(), chunk)
        if not isinstance(data["data"], bytes):
            raise Invalid("data must be bytes.", {"data": ["Expected bytes."]})
        job = self._import(job_id, lock=True)
        jobs.append(job, data["offset"], data["data"], self.config, utcnow())
        return ImportJobSchema().dump(job)

    @rpc
    def start_import_check(self, job_id: str) -> dict[str, Any]:
        """The dry run: every row checked, nothing imported; the report fills as it goes."""
        job = self._import(job_id, lock=True)
        jobs.start(job, VALIDATING, utcnow())
        return self._job_view(job, "checked")

    @rpc
    @idempotent
    def commit_import(self, job_id: str, idempotency_key: str | None = None) -> dict[str, Any]:
        """Import the rows that passed, in batches; resumes after a crash where it stopped."""
        job = self._import(job_id, lock=True)
        jobs.start(job, IMPORTING, utcnow())
        return self._job_view(job, "committed")

    @rpc
    def cancel_import(self, job_id: str) -> dict[str, Any]:
        job = self._import(job_id, lock=True)
        jobs.cancel(job, utcnow())
        return self._job_view(job, "cancelled")

    @rpc
    def get_import(self, job_id: str) -> dict[str, Any]:
        return ImportJobSchema().dump(self._import(job_id))

    @rpc
    def list_imports(self, limit: int | None = None, cursor: str | None = None) -> dict[str, Any]:
        self.caller.require_role(*access.IMPORTERS, action="list imports")
        query = select(ImportJob)
        if not self.caller.all_branches:
            query = query.where(ImportJob.created_by == jobs.actor_of(self.caller))
        items, next_cursor = keyset_page(self.db.session, query, ImportJob.created_at, ImportJob.id,
                                         page_limit(limit, 20, 100), cursor)
        return ImportJobPageSchema().dump({"items": items, "next_cursor": next_cursor})

    @rpc
    def import_report(self, job_id: str, phase: str = "dry_run", limit: int | None = None,
                      cursor: str | None = None) -> dict[str, Any]:
        """The row-by-row report (row, column, value, message) of the dry run or the commit, a page at a time."""
        if phase not in ("dry_run", "commit"):
            raise Invalid("phase is dry_run or commit.", {"phase": ["Unknown phase."]})
        job = self._import(job_id)
        after = int(cursor) if cursor and cursor.isdigit() else None
        items, last = jobs.issues(self.db.session, job, phase, page_limit(limit, 500, 5000), after)
        if after is None:
            jobs.audit(self.db.session, job, "report_read", self.caller, utcnow())
        return ImportIssuePageSchema().dump({"items": items, "next_cursor": str(last) if last else None})

    @timer(interval=1)
    def import_tick(self) -> None:
        """Carry on every import being checked or committed (after a restart too)."""
        jobs.advance(self.db.store, self.members, self.config)

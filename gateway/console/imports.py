"""The console's imports (issue 21, "a long job shows a progress bar that follows the job's real state"): a group
admin or a branch manager uploads a sheet, runs the dry run, reads the report, imports, and watches each phase's
progress bar move with the job as the interfaces service records it.

The pages use the API's own upload and report code (``gateway.routes.imports``), so a file goes to interfaces a
piece at a time whichever door it came in by. The uploaded form is spooled to disk by the form parser past
500 KiB; its size is bounded by ``IMPORT_MAX_BYTES`` (the same limit interfaces applies). The bar is a
``<progress>`` that ``console.js`` refreshes from ``/console/imports/<id>/progress`` (the job's state,
percentage, rate and estimate) once a second while the job runs, and the page reloads when the phase ends.
"""

from __future__ import annotations

import json
import uuid
from typing import Any

from werkzeug.utils import redirect
from werkzeug.wrappers import Request, Response

from gateway.console.http import form, page, render
from gateway.idempotency import service_key
from gateway.paths import one_of
from gateway.upstream import Upstream
from services.interfaces.models import IMPORTING, VALIDATING
from services.interfaces.schemas import IMPORT_KINDS
from services.kit.errors import Invalid

RUNNING = (VALIDATING, IMPORTING)
ACTIONS = ("check", "commit", "cancel")
COUNTS = ("valid", "invalid", "present", "repeated", "imported")  # ImportCountsSchema's, in the page's order
PROGRESS_FIELDS = ("state", "percent", "processed_rows", "total_rows", "rows_per_second", "seconds_left")


class ConsoleImports:
    """The imports pages (``imports:read`` to look, ``imports:write`` to act, as the API). Composed into the
    gateway beside ``ImportRoutes``, whose upload (``_send_import_file``) and report (``_report_download``) they
    use."""

    interfaces = Upstream("interfaces")

    @page("GET", "/console/imports", "imports:read")
    def console_imports(self, request: Request) -> Response:
        cursor = request.args.get("cursor") or None
        jobs = self.interfaces.list_imports(20, cursor)
        return render(request, "imports.html", jobs=jobs, kinds=IMPORT_KINDS, problem=None, values={})

    @page("POST", "/console/imports", "imports:write", upload=True)
    def console_import_upload(self, request: Request) -> Response:
        values = form(request, "kind", "sheet", "day_first", "default_branch")
        upload = request.files.get("file")
        if upload is None or not upload.filename:
            raise Invalid(request.t("import_choose_file"), {"file": ["Required."]})
        spec: dict[str, Any] = {"kind": values["kind"], "filename": upload.filename[-200:],
                                "sheet": values["sheet"] or None, "default_branch": values["default_branch"] or None,
                                "day_first": {"yes": True, "no": False}.get(values["day_first"])}
        try:
            job = self.interfaces.create_import(spec)
        except Invalid as invalid:
            jobs = self.interfaces.list_imports(20, None)
            return render(request, "imports.html", 422, jobs=jobs, kinds=IMPORT_KINDS, problem=str(invalid),
                          values=values)
        self._send_import_file(job["id"], upload.stream)
        return redirect(f"/console/imports/{job['id']}", 303)

    @page("GET", "/console/imports/<import_id>", "imports:read")
    def console_import(self, request: Request, import_id: str) -> Response:
        job = self.interfaces.get_import(import_id)
        return render(request, "import.html", job=job, running=job["state"] in RUNNING, key=uuid.uuid4().hex,
                      counts=COUNTS)

    @page("GET", "/console/imports/<import_id>/progress", "imports:read")
    def console_import_progress(self, request: Request, import_id: str) -> Response:
        """What the bar shows, for the page's script: the job as interfaces has it now."""
        job = self.interfaces.get_import(import_id)
        body = {name: job.get(name) for name in PROGRESS_FIELDS}
        body["running"] = job["state"] in RUNNING
        return Response(json.dumps(body), content_type="application/json", headers={"Cache-Control": "no-store"})

    @page("POST", "/console/imports/<import_id>/<action>", "imports:write",
          path_types={"action": one_of("import action", ACTIONS)})
    def console_import_action(self, request: Request, import_id: str, action: str) -> Response:
        if action == "check":
            self.interfaces.start_import_check(import_id)
        elif action == "commit":  # the form's key: a double click or a resent form imports once
            key = form(request, "idempotency_key", required=("idempotency_key",))["idempotency_key"][:64]
            self.interfaces.commit_import(import_id, idempotency_key=service_key(request.principal.credential, key))
        else:
            self.interfaces.cancel_import(import_id)
        return redirect(f"/console/imports/{import_id}", 303)

    @page("GET", "/console/imports/<import_id>/report", "imports:read")
    def console_import_report(self, request: Request, import_id: str) -> Response:
        phase = request.args.get("phase", "dry_run")
        if phase not in ("dry_run", "commit"):
            raise Invalid("phase: dry_run or commit.", {"phase": ["Unknown phase."]})
        return self._report_download(request, import_id, phase)

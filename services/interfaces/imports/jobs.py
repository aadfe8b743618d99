"""Import jobs on the interfaces database: created, uploaded a piece at a time, checked (dry run) and
committed batch by batch, one RPC to the owning service per batch.

A job's phases run as ``kit.jobs.run_batches`` runs (``import_dry_run`` / ``import_commit``, keyed by the
job): each batch reads the next rows of the file, makes one RPC, and commits its report rows, the job's
counts and the run's cursor together. A process killed half-way leaves the cursor at the last batch that
committed; the next process continues from there, and the batch it sends again is harmless: every row
carries the idempotency key ``import:<job>:<row>``, so the owning service answers what it did the first time.
Members' batches overlap (``_step``): the next batch is read and sent before this one's answer is awaited, so
members works on one while interfaces records the other (two in flight at most, each recorded in file order).

One pipeline, a ``Kind`` per import type (``KINDS``): its columns (aliases, what is required), how a row is
read (``columns.py``) and what a batch of read rows becomes (``_send_members``: ``members.check_enrolments`` /
``enrol_batch``; ``_send_openings``: ``members.locate_members`` then ``points.open_balances``; ``visits.send``:
``members.locate_members`` then ``records.import_visits``, a batch never cutting a bill: ``Kind.together``).
"""

from __future__ import annotations

import itertools
import json
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import eventlet
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.interfaces import reviews
from services.interfaces.imports import columns as cols
from services.interfaces.imports import sheets, visits
from services.interfaces.models import (
    CANCELLED,
    DONE,
    FAILED,
    IMPORTING,
    UPLOADED,
    VALIDATED,
    VALIDATING,
    ImportIssue,
    ImportJob,
    ImportJobLog,
    ImportSeen,
)
from services.interfaces.settings import setting
from services.kit.caller import Identity
from services.kit.clock import utcnow
from services.kit.config import group_from_config
from services.kit.db import Store, fetch
from services.kit.errors import Conflict, Forbidden, Invalid, TooLarge
from services.kit.insert_batch import insert_rows
from services.kit.jobs import run_batches
from services.kit.peers import Peer
from services.kit.telemetry import counter

ROWS = counter("careloop_interfaces_import_rows_total", "Import rows read and handled", ("kind", "phase"))
PHASES = {VALIDATING: ("import_dry_run", "dry_run", VALIDATED), IMPORTING: ("import_commit", "commit", DONE)}


class BatchPeer(Peer):
    """A peer for batch RPCs: a batch may take longer than a desk's command (``IMPORT_RPC_TIMEOUT``)."""

    timeout_setting = "IMPORT_RPC_TIMEOUT"
    default_timeout = 120


def file_of(config: dict[str, Any], job: ImportJob) -> Path:
    return Path(setting(config, "IMPORT_DIR")) / f"{job.id}.{job.file_kind}"


def audit(session: Session, job: ImportJob, action: str, caller: Identity, now: datetime) -> None:
    session.add(ImportJobLog(job_id=job.id, action=action, actor=caller.actor, at=now))


def get(session: Session, job_id: Any, caller: Identity, lock: bool = False) -> ImportJob:
    job = fetch(session, ImportJob, job_id, "import", lock=lock)
    allowed = json.loads(job.branches) if job.branches else None
    if not caller.all_branches and (allowed is None or not set(allowed) <= set(caller.branches)):
        raise Forbidden("This import is of another branch's.")
    return job


def create(session: Session, spec: dict[str, Any], caller: Identity, now: datetime) -> ImportJob:
    try:
        kind = sheets.kind_of(spec["filename"])
        cols.resolve([], spec["mapping"], KINDS[spec["kind"]].aliases)
    except ValueError as error:
        raise Invalid(str(error), {"filename" if "file" in str(error) else "mapping": [str(error)]}) from None
    if spec["default_branch"]:
        caller.require_branch(spec["default_branch"], "import members of this branch")
    branches = None if caller.all_branches else list(caller.branches)
    job = ImportJob(id=uuid.uuid4(), kind=spec["kind"], state=UPLOADED, filename=spec["filename"], file_kind=kind,
                    encoding=spec["encoding"], sheet=spec["sheet"], day_first=spec["day_first"],
                    identifier_system=spec.get("identifier_system"),
                    mapping=json.dumps(spec["mapping"]) if spec["mapping"] else None,
                    default_branch=spec["default_branch"], branches=json.dumps(branches) if branches else None,
                    size_bytes=0, processed_rows=0, valid_rows=0, invalid_rows=0, present_rows=0, repeated_rows=0,
                    imported_rows=0, created_by=caller.actor, created_at=now, updated_at=now)
    session.add(job)
    session.flush()
    audit(session, job, "created", caller, now)
    return job


def append(job: ImportJob, offset: int, data: bytes, config: dict[str, Any], now: datetime) -> None:
    """Add a piece of the file at ``offset``; a piece sent again (a retry) changes nothing."""
    if job.state != UPLOADED:
        raise Conflict(f"The file of an import that is {job.state} cannot change.")
    if len(data) > setting(config, "IMPORT_CHUNK_MAX_BYTES"):
        raise TooLarge("Send the file in pieces of at most 4 MiB.")
    if offset + len(data) <= job.size_bytes:
        return
    if offset != job.size_bytes:
        raise Conflict(f"The next piece starts at byte {job.size_bytes}.", details={"size_bytes": job.size_bytes})
    limit = setting(config, "IMPORT_MAX_BYTES")
    if offset + len(data) > limit:
        raise TooLarge(f"An import file may be at most {limit // (1024 * 1024)} MiB.")
    path = file_of(config, job)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "ab") as handle:
        handle.truncate(offset)
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    job.size_bytes = offset + len(data)
    job.updated_at = now


def start(job: ImportJob, phase: str, now: datetime) -> None:
    """Begin the dry run (``VALIDATING``) or the commit (``IMPORTING``)."""
    before = {VALIDATING: (UPLOADED,), IMPORTING: (VALIDATED,)}[phase]
    if job.state == phase:
        return
    if job.state not in before:
        what = "checked" if phase == VALIDATING else "committed (run the dry run first)"
        raise Conflict(f"An import that is {job.state} cannot be {what}.")
    if phase == VALIDATING and job.size_bytes == 0:
        raise Conflict("Upload the file first.")
    job.state = phase
    job.processed_rows = job.valid_rows = job.invalid_rows = job.present_rows = job.repeated_rows = 0
    job.imported_rows = 0
    job.phase_started_at, job.finished_at, job.updated_at = now, None, now


def cancel(job: ImportJob, now: datetime) -> None:
    if job.state in (DONE, FAILED, CANCELLED):
        raise Conflict(f"An import that is {job.state} cannot be cancelled.")
    job.state, job.finished_at, job.updated_at = CANCELLED, now, now


# --- running the phases ----------------------------------------------------------------------------------


@dataclass
class _Reader:
    """A file open at data row ``next_index`` (0: the first row after the header)."""

    columns: cols.Columns
    rows: Iterator[sheets.Row]
    next_index: int = 0


@dataclass
class Readers:
    """The files this process has open, by job: a batch continues where the previous one stopped; a
    process that resumes someone else's job reopens the file and skips to the cursor."""

    open: dict[uuid.UUID, _Reader] = field(default_factory=dict)

    def take(self, job: ImportJob, path: Path, start: int, count: int) -> list[sheets.Row]:
        """The next ``count`` rows from ``start``, and past it the rest of a group the kind keeps together
        (``Kind.together``: a bill's lines), so that a batch never cuts one."""
        reader = self.open.get(job.id)
        if reader is None or reader.next_index != start:
            reader = self.open[job.id] = _open(job, path)
            for _ in range(start):
                next(reader.rows, None)
            reader.next_index = start
        together = KINDS[job.kind].together
        batch: list[sheets.Row] = []
        for row in reader.rows:
            if together is not None and len(batch) >= count:
                if together(reader.columns, row[1]) != together(reader.columns, batch[-1][1]):
                    reader.rows = itertools.chain([row], reader.rows)  # the next batch's first row
                    break
            batch.append(row)
            if together is None and len(batch) == count:
                break
        reader.next_index += len(batch)
        if len(batch) < count:
            del self.open[job.id]
        return batch

    def columns(self, job: ImportJob, path: Path) -> cols.Columns:
        return _open(job, path).columns


READERS = Readers()


def _open(job: ImportJob, path: Path) -> _Reader:
    kind = KINDS[job.kind]
    if job.file_kind == "csv" and job.encoding is None:
        job.encoding = sheets.detect_encoding(path, lambda line: len(cols.resolve(line.split(","), None,
                                                                                   kind.aliases).fields))
    rows = sheets.rows(path, job.file_kind, job.encoding, job.sheet)
    header = next(rows, None)
    if header is None:
        raise ValueError("The file has no rows.")
    columns = cols.resolve(header[1], json.loads(job.mapping) if job.mapping else None, kind.aliases)
    missing = columns.missing(kind.required)
    if kind.one_of and not set(kind.one_of) & set(columns.headers):
        missing.append(" or ".join(kind.one_of))
    if missing:
        raise ValueError(f"No column found for {', '.join(missing)}; name it in the mapping.")
    return _Reader(columns, rows)


def row_key(job: ImportJob, number: int) -> str:
    return f"import:{job.id}:{number}"


def _issue(session: Session, job: ImportJob, phase: str, number: int, column: str, value: Any, message: str) -> None:
    session.add(ImportIssue(job_id=job.id, phase=phase, row=number, column=column,
                            value=None if value in (None, "") else str(value)[:500], message=message[:500]))


@dataclass
class _Read:
    """A batch as read from the file (nothing written yet): its rows, those that read as the kind's input
    (row, input, cells), and the problems of the others."""

    start: int
    batch: list[sheets.Row]
    ready: list[tuple[int, dict[str, Any], dict[str, Any]]]
    problems: list[tuple[int, list[cols.Issue]]]


def _read(job: ImportJob, columns: cols.Columns, start: int, batch: list[sheets.Row]) -> _Read:
    kind = KINDS[job.kind]
    allowed = _allowed(job)
    ready, problems = [], []
    for number, row in batch:
        cells = cols.cells_of(columns, row)
        member, found = kind.read(cells, job)
        branch = kind.branch_of(member)
        if allowed is not None and branch not in (None, *allowed):
            found.append(cols.Issue(kind.branch_field, branch, "Not one of your branches."))
        if found:
            problems.append((number, found))
        else:
            ready.append((number, member, cells))
    return _Read(start, batch, ready, problems)


def _report_read(session: Session, job: ImportJob, phase: str, columns: cols.Columns, read: _Read) -> None:
    """The rows that did not read as the kind's input: reported and counted, in the batch's transaction."""
    for number, problems in read.problems:
        for problem in problems:
            _issue(session, job, phase, number, columns.headers.get(problem.field, problem.field), problem.value,
                   problem.message)
    job.invalid_rows += len(read.problems)


def _allowed(job: ImportJob) -> list[str] | None:
    """The branches a job's rows may name (None: all)."""
    return json.loads(job.branches) if job.branches else None


def _refused(session: Session, job: ImportJob, phase: str, columns: cols.Columns, number: int,
             cells: dict[str, Any], outcome: dict[str, Any]) -> None:
    """Report a row the owning service refused (``invalid``) or found already present (``present``)."""
    if outcome["status"] == "present":
        job.present_rows += 1
        _issue(session, job, phase, number, "", None, f"Already a member: {outcome.get('message', '')}")
        return
    job.invalid_rows += 1
    pairs = [pair for name, messages in (outcome.get("errors") or {}).items() for pair in cols.column_of(name, messages)]
    for name, message in pairs or [("", outcome.get("message", "Refused."))]:
        _issue(session, job, phase, number, columns.headers.get(name, name), cols.values.text(cells.get(name)), message)


def _probable(session: Session, job: ImportJob, phase: str, columns: cols.Columns, number: int,
              member: dict[str, Any], cells: dict[str, Any], outcome: dict[str, Any]) -> None:
    """A row that probably is an existing member (the identity rule is not sure): reported by the dry run;
    queued for a person to review by the commit (once per job and row: ``reviews.queue``), the job as source."""
    job.present_rows += 1
    if phase == "dry_run":
        _issue(session, job, phase, number, "", None, f"Probably an existing member (goes to the identity review "
                                                      f"queue on commit): {outcome.get('message', '')}")
        return
    original = json.dumps({columns.headers.get(name, name): cols.values.text(cell) for name, cell in cells.items()},
                          ensure_ascii=False)
    review = reviews.queue(session, {"patient": member, "source": f"import:{job.id}", "source_ref": str(number),
                                     "original": original, "original_format": "application/json"},
                           outcome.get("matches") or [], utcnow(), job.created_by)
    _issue(session, job, phase, number, "", None, f"Probably an existing member: sent to the identity review "
                                                  f"queue (review {review.id}).")


def _repeated(session: Session, job: ImportJob, checked: list[tuple[int, dict[str, Any]]]) -> dict[int, int]:
    """Rows that are the same person as an earlier row of the file: row -> that earlier row."""
    wanted = {identity for _number, outcome in checked for identity in outcome.get("identity", [])}
    seen = dict(session.execute(select(ImportSeen.identity, ImportSeen.row).where(
        ImportSeen.job_id == job.id, ImportSeen.identity.in_(wanted))).all()) if wanted else {}
    repeated, first_seen = {}, []
    for number, outcome in checked:
        earlier = [seen[identity] for identity in outcome.get("identity", []) if identity in seen]
        if earlier:
            repeated[number] = min(earlier)
            continue
        for identity in outcome.get("identity", []):
            seen[identity] = number
            first_seen.append({"job_id": job.id, "identity": identity, "row": number})
    # one multi-row insert without SQLAlchemy's per-value work (two or three identities a row): kit.insert_batch
    insert_rows(session, ImportSeen.__table__, first_seen)
    return repeated


def _ask_members(job: ImportJob, phase: str, ready: list[tuple[int, dict[str, Any], dict[str, Any]]],
                 peers: dict[str, Any]) -> Callable[[], list[dict[str, Any]]]:
    """The batch's one call to members: checked (dry run) or enrolled (commit), each row under its key."""
    rows = [{"key": row_key(job, number), "member": member, "card_number": cols.legacy_card(cells)}
            for number, member, cells in ready]
    members = peers["members"]
    call = members.check_enrolments if phase == "dry_run" else members.enrol_batch
    return lambda: call({"rows": rows})["items"]


def _apply_members(session: Session, job: ImportJob, phase: str, columns: cols.Columns,
                   ready: list[tuple[int, dict[str, Any], dict[str, Any]]], outcomes: list[dict[str, Any]]) -> None:
    """What members answered for each row of a batch: counted, and reported where refused or repeated."""
    checked = []
    for (number, member, cells), outcome in zip(ready, outcomes, strict=True):
        if outcome["status"] == "enrolled":
            job.imported_rows += 1
        elif outcome["status"] == "valid":
            checked.append((number, outcome))
        elif outcome["status"] == "present" and outcome.get("probable"):
            _probable(session, job, phase, columns, number, member, cells, outcome)
        else:
            _refused(session, job, phase, columns, number, cells, outcome)
    repeated = _repeated(session, job, checked)
    for number, earlier in repeated.items():
        _issue(session, job, phase, number, "", None, f"The same person as row {earlier}.")
    job.repeated_rows += len(repeated)
    job.valid_rows += len(checked) - len(repeated)


def _send_members(session: Session, job: ImportJob, phase: str, columns: cols.Columns,
                  ready: list[tuple[int, dict[str, Any], dict[str, Any]]], peers: dict[str, Any],
                  config: dict[str, Any]) -> None:
    """A batch of enrolments: checked (dry run) or enrolled (commit) by members in one call."""
    _apply_members(session, job, phase, columns, ready, _ask_members(job, phase, ready, peers)())


def _send_openings(ledger: str) -> Callable[..., None]:
    """A batch of opening balances on ``ledger``: the members they name found by members in one call, then
    checked (dry run) or posted (commit) by points in one call."""

    def send(session: Session, job: ImportJob, phase: str, columns: cols.Columns,
             ready: list[tuple[int, dict[str, Any], dict[str, Any]]], peers: dict[str, Any],
             config: dict[str, Any]) -> None:
        currency = group_from_config(config).currency
        openings, numbered = [], []
        for number, row, cells, member_id, branch in _located(session, job, phase, columns, ready, peers):
            opening = {**row["opening"], "key": row_key(job, number), "member_id": member_id, "branch": branch}
            if ledger == "wallet":
                opening["currency"] = currency
            openings.append(opening)
            numbered.append((number, cells))
        if not openings:
            return
        outcomes = peers["points"].open_balances({"ledger": ledger, "dry_run": phase == "dry_run",
                                                  "rows": openings})["items"]
        for (number, cells), outcome in zip(numbered, outcomes, strict=True):
            if outcome["status"] == "posted":
                job.imported_rows += 1
            elif outcome["status"] == "valid":
                job.valid_rows += 1
            elif outcome["status"] == "present":
                job.present_rows += 1
                _issue(session, job, phase, number, "", None, "This member's opening balance was imported already.")
            else:
                job.invalid_rows += 1
                fields_of = {"expires_on": "expires_on", "principal_minor": "principal", "bonus_minor": "bonus",
                             "points": "points", "branch": "branch"}
                named = [fields_of[name] for name in (outcome.get("errors") or {}) if name in fields_of]
                column = (columns.headers.get(named[0]) or columns.headers.get(f"{named[0]}_minor", "")) if named else ""
                _issue(session, job, phase, number, column, cols.values.text(cells.get(named[0])) if named else None,
                       outcome.get("message", "Refused."))

    return send


def _located(session: Session, job: ImportJob, phase: str, columns: cols.Columns,
             ready: list[tuple[int, dict[str, Any], dict[str, Any]]],
             peers: dict[str, Any]) -> list[tuple[int, dict[str, Any], dict[str, Any], str, str]]:
    """The rows (each naming its member under ``who``) whose member members finds, in one call, with the member
    and the branch (the row's, else the member's home branch); the others reported and counted invalid."""
    who_header = next((columns.headers[name] for name in cols.WHO if name in columns.headers), "")
    located = peers["members"].locate_members({"rows": [
        {"key": row_key(job, number), **{k: v for k, v in row["who"].items() if v is not None}}
        for number, row, _cells in ready]})["items"]
    allowed = _allowed(job)
    found_rows = []
    for (number, row, cells), found in zip(ready, located, strict=True):
        branch = row["who"]["branch"] or found.get("home_branch")
        if found["status"] != "found":
            job.invalid_rows += 1
            _issue(session, job, phase, number, who_header, _who_value(row["who"]), found["message"])
            continue
        if allowed is not None and branch not in allowed:
            job.invalid_rows += 1
            _issue(session, job, phase, number, who_header, _who_value(row["who"]), "A member of another branch's.")
            continue
        found_rows.append((number, row, cells, found["member_id"], branch))
    return found_rows


def _who_value(who: dict[str, Any]) -> str:
    for name in cols.WHO:
        if who.get(name):
            return who[name]["value"] if name == "identifier" else who[name]
    return ""


@dataclass(frozen=True)
class Kind:
    """One import type: its columns, how a row reads (``columns.py``), and what a batch becomes."""

    aliases: dict[str, tuple[str, ...]]
    required: tuple[str, ...]
    read: Callable[[dict[str, Any], ImportJob], tuple[dict[str, Any], list[cols.Issue]]]
    send: Callable[..., None]
    branch_field: str
    branch_of: Callable[[dict[str, Any]], str | None]
    one_of: tuple[str, ...] = ()
    together: Callable[[cols.Columns, list[Any]], Any] | None = None  # rows with the same value: one batch
    # a kind whose batch is one call may send the next batch while the owning service works on this one
    # (``_step``): ``ask`` makes the call (not yet made), ``apply`` records its answer
    ask: Callable[..., Callable[[], list[dict[str, Any]]]] | None = None
    apply: Callable[..., None] | None = None


def _opening_reader(reader: Callable[..., Any]) -> Callable[[dict[str, Any], ImportJob], Any]:
    return lambda cells, job: reader(cells, job.day_first, job.default_branch, job.identifier_system)


KINDS: dict[str, Kind] = {
    "members": Kind(cols.MEMBER_ALIASES, cols.MEMBER_REQUIRED,
                    lambda cells, job: cols.enrolment(cells, job.day_first, job.default_branch), _send_members,
                    "home_branch", lambda member: member.get("home_branch"), ask=_ask_members, apply=_apply_members),
    "points_openings": Kind(cols.POINTS_ALIASES, ("points", "expires_on"), _opening_reader(cols.points_opening),
                            _send_openings("points"), "branch", lambda row: row["who"]["branch"], cols.WHO),
    "wallet_openings": Kind(cols.WALLET_ALIASES, (), _opening_reader(cols.wallet_opening),
                            _send_openings("wallet"), "branch", lambda row: row["who"]["branch"], cols.WHO),
    "visits": Kind(visits.ALIASES, visits.REQUIRED, visits.read, visits.send, "branch", lambda _row: None, cols.WHO,
                   visits.bill_of),
}
"""Every import type: members, points opening balances (lots with their expiry dates), stored-value
opening balances (paid and bonus parts apart), visits (bills with their items and payments, ``visits.py``)."""


class _Reply:
    """A batch's call made in a green thread of its own: ``wait()`` answers its items or raises its error."""

    def __init__(self, call: Callable[[], list[dict[str, Any]]]) -> None:
        self.call = call
        self._thread = eventlet.spawn(self._run)

    def _run(self) -> tuple[bool, Any]:
        try:
            return True, self.call()
        except Exception as error:  # noqa: BLE001 - handed to whoever waits (raised there)
            return False, error

    def settle(self) -> None:
        """Until the call has answered (its answer or error kept for ``wait``)."""
        self._thread.wait()

    def wait(self) -> list[dict[str, Any]]:
        ok, value = self._thread.wait()
        if not ok:
            raise value
        return value


@dataclass
class _Ahead:
    """The next batch, read and sent while the previous one was answered: recorded by the next step."""

    read: _Read
    columns: cols.Columns
    reply: _Reply | None


def _step(job_id: uuid.UUID, phase_state: str, peers: dict[str, Any], config: dict[str, Any]) -> Any:
    """One batch of a job's phase, in ``run_batches``' transaction. For a kind whose batch is one call
    (``Kind.ask``), the next batch is read and sent before this one's answer is awaited, so that the owning
    service works on it meanwhile (two batches in flight at most); each batch's answer is still recorded by
    its own step, in file order, with its cursor. A batch sent ahead whose step never commits (the process
    killed, the step failed) is sent again by the step that resumes: its rows' keys answer what was done."""
    _run, phase, finished_state = PHASES[phase_state]
    size = int(setting(config, "IMPORT_BATCH_ROWS"))
    ahead: list[_Ahead] = []  # at most one: the batch after the one being recorded

    def step(session: Session, cursor: Any) -> tuple[Any, int]:
        job = session.get(ImportJob, job_id, with_for_update=True)
        start = cursor or 0
        sent = ahead.pop() if ahead else None
        if sent is not None and sent.read.start != start:
            sent = None
        if job is None or job.state != phase_state:
            if job is not None and sent is not None and sent.reply is not None:
                # sent before the job was cancelled: what the owning service did with it is recorded
                _record(session, job, phase, sent.columns, sent.read, sent.reply.wait())
            return None, 0
        path = file_of(config, job)
        now = utcnow()
        kind = KINDS[job.kind]
        if sent is not None:
            read, columns, reply = sent.read, sent.columns, sent.reply
        else:
            try:
                if cursor is None:
                    columns = READERS.columns(job, path)
                    job.columns = json.dumps({"found": columns.headers, "ignored": list(columns.ignored)})
                    job.total_rows = sum(1 for _ in sheets.rows(path, job.file_kind, job.encoding, job.sheet)) - 1
                batch = READERS.take(job, path, start, size)
                columns = READERS.open[job.id].columns if job.id in READERS.open else READERS.columns(job, path)
            except (ValueError, OSError) as error:
                job.state, job.error, job.finished_at, job.updated_at = FAILED, str(error)[:500], now, now
                return None, 0
            read = _read(job, columns, start, batch)
            reply = None
        if kind.ask is None:
            _report_read(session, job, phase, columns, read)
            if read.ready:
                kind.send(session, job, phase, columns, read.ready, peers, config)
            job.processed_rows += len(read.batch)
            ROWS.labels(job.kind, phase).inc(len(read.batch))
        else:
            if reply is None and read.ready:
                reply = _Reply(kind.ask(job, phase, read.ready, peers))
            if len(read.batch) == size:
                ahead.extend(_read_ahead(job, path, columns, start + size, size, phase, peers))
            outcomes = None
            if reply is not None:
                try:
                    outcomes = reply.wait()
                except Exception:
                    if sent is None:
                        raise
                    # sent beside another batch (the two may have waited on each other's rows, and the database
                    # given up one): once more, alone (the batch after it answered first, its answer kept)
                    for later in ahead:
                        if later.reply is not None:
                            later.reply.settle()
                    outcomes = kind.ask(job, phase, read.ready, peers)()
            _record(session, job, phase, columns, read, outcomes)
        batch = read.batch
        job.updated_at = now
        if len(batch) < size:
            job.state, job.finished_at = finished_state, now
            return None, len(batch)
        return start + len(batch), len(batch)

    return step


def _read_ahead(job: ImportJob, path: Path, columns: cols.Columns, start: int, size: int, phase: str,
                peers: dict[str, Any]) -> list[_Ahead]:
    """The next batch read and sent (none if it cannot be read now: its own step will say why)."""
    try:
        batch = READERS.take(job, path, start, size)
    except (ValueError, OSError):
        return []
    read = _read(job, columns, start, batch)
    kind = KINDS[job.kind]
    return [_Ahead(read, columns, _Reply(kind.ask(job, phase, read.ready, peers)) if read.ready else None)]


def _record(session: Session, job: ImportJob, phase: str, columns: cols.Columns, read: _Read,
            outcomes: list[dict[str, Any]] | None) -> None:
    """A batch's rows reported and counted: those that did not read, then the owning service's answers."""
    _report_read(session, job, phase, columns, read)
    if outcomes is not None:
        KINDS[job.kind].apply(session, job, phase, columns, read.ready, outcomes)
    job.processed_rows += len(read.batch)
    ROWS.labels(job.kind, phase).inc(len(read.batch))


def advance(store: Store, peers: dict[str, Any], config: dict[str, Any]) -> int:
    """Run every job that is being checked or committed to its end; the number of rows handled. ``peers``:
    the owning services' batch proxies by name (members, points)."""
    with store.transaction() as session:
        pending = session.execute(select(ImportJob.id, ImportJob.state).where(
            ImportJob.state.in_(tuple(PHASES))).order_by(ImportJob.updated_at)).all()
    handled = 0
    for job_id, state in pending:
        outcome = run_batches(store, PHASES[state][0], str(job_id), _step(job_id, state, peers, config))
        handled += outcome.processed
    return handled


def issues(session: Session, job: ImportJob, phase: str, limit: int, after: int | None) -> tuple[list[ImportIssue], int | None]:
    query = select(ImportIssue).where(ImportIssue.job_id == job.id, ImportIssue.phase == phase)
    if after is not None:
        query = query.where(ImportIssue.id > after)
    found = list(session.scalars(query.order_by(ImportIssue.id).limit(limit + 1)))
    return found[:limit], (found[limit - 1].id if len(found) > limit else None)

"""Import a sheet from the command line, through the running suite's interfaces service, with a progress bar:

    python -m services.interfaces.imports members.xlsx --dry-run        # check only; the report beside the file
    python -m services.interfaces.imports members.csv --branch SH01     # check, then commit what passed
    python -m services.interfaces.imports old.csv --encoding gb18030 --day-first --map "客人=full_name"

The broker is ``AMQP_URI`` (default the local one). The file is sent in pieces as the API's upload does, the
job is the same job (``GET /v1/imports/<id>`` shows it), and a commit interrupted here carries on in the
service: run ``--resume <job id>`` to watch it again.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from services.kit.serializer import NAMEKO_CONFIG

CHUNK = 1024 * 1024
ENDED = ("validated", "done", "failed", "cancelled")


def arguments(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m services.interfaces.imports", description=__doc__.split("\n")[0])
    parser.add_argument("file", type=Path, nargs="?", help=".csv or .xlsx")
    parser.add_argument("--kind", default="members", choices=("members", "points_openings", "wallet_openings",
                                                                         "visits"))
    parser.add_argument("--identifier-system", help="balances, visits: the system that issued the identifier column")
    parser.add_argument("--dry-run", action="store_true", help="check every row, import nothing")
    parser.add_argument("--encoding", choices=("utf-8", "utf-8-sig", "gb18030", "big5"))
    parser.add_argument("--sheet", help="the .xlsx sheet (default: the first)")
    order = parser.add_mutually_exclusive_group()
    order.add_argument("--day-first", dest="day_first", action="store_const", const=True, help="05/03 is 5 March")
    order.add_argument("--month-first", dest="day_first", action="store_const", const=False, help="05/03 is May 3")
    parser.add_argument("--map", action="append", default=[], metavar="HEADER=FIELD", help="name a column")
    parser.add_argument("--branch", help="home branch of rows that name none")
    parser.add_argument("--report", type=Path, help="where to write the report CSV (default: beside the file)")
    parser.add_argument("--resume", metavar="JOB_ID", help="follow a job already started")
    parsed = parser.parse_args(argv)
    if parsed.file is None and parsed.resume is None:
        parser.error("name a file (or --resume a job)")
    return parsed


def follow(proxy: Any, job_id: str, console: Console, label: str) -> dict[str, Any]:
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} rows/s"), TimeRemainingColumn())
    with Progress(*columns, console=console, transient=False) as progress:
        task = progress.add_task(label, total=None, rate="-")
        while True:
            job = proxy.interfaces.get_import(job_id)
            progress.update(task, total=job["total_rows"], completed=job["processed_rows"],
                            rate=job["rows_per_second"] or "-")
            if job["state"] in ENDED:
                return job
            time.sleep(0.5)


def write_report(proxy: Any, job_id: str, phase: str, path: Path) -> int:
    count, cursor = 0, None
    with open(path, "w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(("row", "column", "value", "message"))
        while True:
            page = proxy.interfaces.import_report(job_id, phase, 5000, cursor)
            writer.writerows((i["row"], i["column"], i["value"], i["message"]) for i in page["items"])
            count += len(page["items"])
            cursor = page["next_cursor"]
            if cursor is None:
                return count


def upload(proxy: Any, options: argparse.Namespace) -> dict[str, Any]:
    mapping = dict(item.split("=", 1) for item in options.map) or None
    job = proxy.interfaces.create_import({
        "kind": options.kind, "filename": options.file.name, "encoding": options.encoding, "sheet": options.sheet,
        "day_first": options.day_first, "mapping": mapping, "default_branch": options.branch,
        "identifier_system": options.identifier_system})
    offset = 0
    with open(options.file, "rb") as handle:
        while piece := handle.read(CHUNK):
            job = proxy.interfaces.add_import_chunk(job["id"], {"offset": offset, "data": piece})
            offset += len(piece)
    return job


def summary(console: Console, job: dict[str, Any]) -> None:
    counts = job["counts"]
    console.print(f"[bold]{job['state']}[/bold]: {job['total_rows']} rows; valid {counts['valid']}, invalid "
                  f"{counts['invalid']}, already present {counts['present']}, repeated in the file "
                  f"{counts['repeated']}, imported {counts['imported']}" + (f" — {job['error']}" if job["error"] else ""))


def main(argv: list[str] | None = None) -> int:
    from nameko.standalone.rpc import ClusterRpcProxy

    options = arguments(argv)
    console = Console(stderr=True)
    config = {"AMQP_URI": os.environ.get("AMQP_URI", "pyamqp://guest:guest@localhost"), **NAMEKO_CONFIG}
    with ClusterRpcProxy(config, timeout=120) as proxy:
        if options.resume:
            job = follow(proxy, options.resume, console, "following")
            summary(console, job)
            return 0 if job["state"] in ("validated", "done") else 1
        job = upload(proxy, options)
        console.print(f"import {job['id']}: {job['size_bytes']} bytes uploaded")
        proxy.interfaces.start_import_check(job["id"])
        job = follow(proxy, job["id"], console, "checking")
        report = options.report or options.file.with_name(f"{options.file.stem}.report.csv")
        issues = write_report(proxy, job["id"], "dry_run", report)
        summary(console, job)
        console.print(f"report: {report} ({issues} lines)")
        if job["state"] != "validated" or options.dry_run:
            return 0 if job["state"] == "validated" else 1
        proxy.interfaces.commit_import(job["id"], idempotency_key=f"cli-commit-{job['id']}")
        job = follow(proxy, job["id"], console, "importing")
        issues = write_report(proxy, job["id"], "commit", report.with_name(f"{report.stem}.commit.csv"))
        summary(console, job)
        return 0 if job["state"] == "done" else 1


if __name__ == "__main__":
    sys.exit(main())

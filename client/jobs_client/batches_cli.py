"""`jobs batch ...`: create a batch from a JSON file, show, watch, list and cancel batches.

The file holds the `POST /batches` body (`{"jobs": [...], "description", "callback_url",
"on_complete"}`), or just the list of jobs. `watch` exits 0 when every member finished, 1 otherwise.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from jobs_client._client import JobsClient
from jobs_client.batches import Batch

EXIT_OK, EXIT_BATCH_FAILED = 0, 1


def add_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """Register `batch` and its sub-commands on the `jobs` command's sub-parsers."""
    batch = sub.add_parser("batch", parents=[common], help="create, show, watch, list or cancel batches of jobs")
    actions = batch.add_subparsers(dest="batch_command", required=True, metavar="ACTION")

    p = actions.add_parser("create", parents=[common], help="submit a batch from a JSON file (- for stdin)")
    p.add_argument("file", help='a POST /batches body ({"jobs": [...], ...}) or a list of jobs')
    p.add_argument("--description")
    p.add_argument("--callback-url")
    p.add_argument("--wait", action="store_true", help="follow the batch to its end; exit 0 all finished, 1 otherwise")
    p.set_defaults(handler=cmd_create)

    for name, handler, text in (
        ("show", cmd_show, "show a batch"),
        ("watch", cmd_watch, "follow a batch to its end"),
        ("cancel", cmd_cancel, "cancel a batch: waiting members canceled, running ones stopped"),
    ):
        p = actions.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.set_defaults(handler=handler)

    p = actions.add_parser("list", parents=[common], help="list batches, newest first")
    p.add_argument("--limit", type=int, default=20)
    p.set_defaults(handler=cmd_list)


def read_body(path: str) -> dict[str, Any]:
    text = Path("/dev/stdin").read_text() if path == "-" else Path(path).read_text()
    body = json.loads(text)
    if isinstance(body, list):
        body = {"jobs": body}
    if not isinstance(body, dict) or not isinstance(body.get("jobs"), list):
        raise ValueError(f"{path}: expected a list of jobs or an object with a `jobs` list")
    return body


def _summary(batch: Batch) -> str:
    counts = ", ".join(f"{status} {n}" for status, n in batch.counts.items() if n)
    return f"{batch.id} {batch.status} {batch.progress:g}% of {batch.total} ({counts})"


def _show(batch: Batch, ui: Any) -> None:
    if ui.as_json:
        ui.data(batch.raw)
    else:
        ui.out.print(_summary(batch), markup=False)
        if batch.on_complete_job_id:
            ui.out.print(f"on_complete job: {batch.on_complete_job_id}", markup=False)


def cmd_create(client: JobsClient, ns: argparse.Namespace, ui: Any) -> int:
    body = read_body(ns.file)
    batch = client.batches.create(
        body["jobs"],
        description=ns.description or body.get("description"),
        callback_url=ns.callback_url or body.get("callback_url"),
        on_complete=body.get("on_complete"),
    )
    if ns.wait:
        return _watch(client, batch.id, ui)
    _show(batch, ui)
    return EXIT_OK


def cmd_show(client: JobsClient, ns: argparse.Namespace, ui: Any) -> int:
    _show(client.batches.get(ns.id), ui)
    return EXIT_OK


def cmd_watch(client: JobsClient, ns: argparse.Namespace, ui: Any) -> int:
    return _watch(client, ns.id, ui)


def _watch(client: JobsClient, batch_id: str, ui: Any) -> int:
    def on_progress(data: dict[str, Any]) -> None:
        if not ui.as_json:
            counts = ", ".join(f"{status} {n}" for status, n in data["counts"].items() if n)
            ui.note(f"{data['progress']:g}% ({counts})")

    batch = client.batches.wait(batch_id, on_progress=on_progress)
    _show(batch, ui)
    return EXIT_OK if batch.status == "finished" else EXIT_BATCH_FAILED


def cmd_cancel(client: JobsClient, ns: argparse.Namespace, ui: Any) -> int:
    _show(client.batches.cancel(ns.id), ui)
    return EXIT_OK


def cmd_list(client: JobsClient, ns: argparse.Namespace, ui: Any) -> int:
    found: list[Batch] = []
    for page in client.batches.list(limit=min(ns.limit, 200)):
        found.extend(page[: ns.limit - len(found)])
        if len(found) >= ns.limit:
            break
    if ui.as_json:
        ui.data([batch.raw for batch in found])
    else:
        for batch in found:
            ui.out.print(_summary(batch), markup=False)
    return EXIT_OK

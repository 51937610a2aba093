"""The `jobsvc` command: submit, watch, inspect and cancel jobs from a terminal or a script.

Named `jobsvc` because `jobs` is a builtin of every POSIX shell; `python -m jobs_client` runs it too.
Exit codes: 0 finished (or the command succeeded), 1 the job failed, was stopped or canceled,
or the API answered an error, 2 bad usage, 124 `--wait-timeout` passed, 130 interrupted (Ctrl-C).
`--wait`/`watch` show progress on stderr and the job's streamed output on stdout (`_follow`).
Results go to stdout; `--json` makes stdout machine-readable. Wherever a job id is taken, a unique
prefix of it will do. One module for the command's parser and its sub-commands (about 400 lines):
each sub-command is a short function over the client, and the parser reads best beside them.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from jobs_client import batches_cli
from jobs_client._client import JobsClient
from jobs_client._exceptions import Conflict, JobsError, NotFound, ValidationError, WaitTimeout
from jobs_client._models import Job
from jobs_client.schedules_cli import add_schedule_commands

try:
    from rich.console import Console
    from rich.prompt import Confirm
    from rich.table import Table

    from jobs_client._follow import OutputSink, ProgressSink, make_bar, progress_line
except ImportError:  # pragma: no cover - exercised only where the [cli] extra is missing
    Console = None  # type: ignore[assignment,misc]

PROG = "jobsvc"

DEFAULT_URL = "http://127.0.0.1:8000"
#: What `list --status` takes: the statuses the API reports.
LISTED_STATUSES = ("queued", "scheduled", "deferred", "started", "finished", "failed", "stopped", "canceled")
EXIT_OK, EXIT_JOB_FAILED, EXIT_USAGE, EXIT_TIMEOUT, EXIT_INTERRUPTED = 0, 1, 2, 124, 130


class UI:
    """Where output goes: results on stdout, progress and notes on stderr."""

    def __init__(self, as_json: bool) -> None:
        self.as_json = as_json
        self.out = Console(highlight=False, soft_wrap=True)
        self.err = Console(stderr=True, highlight=False)

    def data(self, value: Any) -> None:
        """Machine-readable output: JSON on stdout, nothing else on that line."""
        self.out.file.write(json.dumps(value, indent=2, ensure_ascii=False) + "\n")
        self.out.file.flush()

    def note(self, text: str) -> None:
        self.err.print(text)

    def problem(self, exc: JobsError) -> None:
        self.err.print(f"[red]error:[/red] {exc}", markup=True)
        if isinstance(exc, ValidationError):
            for field, msg in exc.fields.items():
                self.err.print(f"  {field or 'body'}: {msg}", markup=False)


# -- argument parsing --


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _json_value(text: str) -> Any:
    """`20` -> 20, `true` -> True, `[1,2]` -> list; anything that is not JSON stays a string."""
    try:
        return json.loads(text)
    except ValueError:
        return text


def build_args(ns: argparse.Namespace) -> dict[str, Any]:
    args: dict[str, Any] = {}
    if ns.args_json:
        raw = Path(ns.args_json[1:]).read_text() if ns.args_json.startswith("@") else ns.args_json
        loaded = json.loads(raw)
        if not isinstance(loaded, dict):
            raise argparse.ArgumentTypeError("--args must be a JSON object")
        args.update(loaded)
    for key, value in ns.arg or []:
        args[key] = _json_value(value)
    for key, path in ns.arg_file or []:
        args[key] = Path(path).read_text(encoding="utf-8")
    return args


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=f"service base URL (env JOBS_URL; {DEFAULT_URL})")
    common.add_argument("--api-key", default=argparse.SUPPRESS, help="API key (env JOBS_API_KEY)")
    common.add_argument("--json", action="store_true", default=argparse.SUPPRESS, help="JSON on stdout")
    common.add_argument("--http-timeout", type=float, default=argparse.SUPPRESS, help="seconds per HTTP request")

    parser = argparse.ArgumentParser(
        prog=PROG,
        description="Submit and follow jobs. Where a JOB_ID is taken, a unique prefix of it will do.",
        parents=[common],
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    def follow_options(p: argparse.ArgumentParser) -> None:
        p.add_argument("--wait-timeout", type=float, help="give up waiting after this many seconds (exit 124)")
        p.add_argument("--cancel-on-interrupt", action="store_true", help="on Ctrl-C cancel the job without asking")
        p.add_argument("--no-stream", action="store_true", help="poll instead of following the event stream")

    p = sub.add_parser("submit", parents=[common], help="submit a job (and --wait for it)")
    p.add_argument("type", help=f"a registered job type, e.g. demo.steps (see `{PROG} types`)")
    p.add_argument("--arg", action="append", type=_key_value, metavar="KEY=VALUE", help="one argument (JSON value)")
    p.add_argument("--arg-file", action="append", type=_key_value, metavar="KEY=PATH", help="argument from a file")
    p.add_argument("--args", dest="args_json", metavar="JSON", help="all arguments as a JSON object, or @file.json")
    p.add_argument("--queue", choices=["high", "default", "low"])
    p.add_argument("--timeout", type=int, help="run-time limit of the job (s)")
    p.add_argument("--retries", type=int)
    p.add_argument("--description")
    p.add_argument("--delay", type=float, help="run no earlier than this many seconds from now")
    p.add_argument("--run-at", help="run no earlier than this ISO 8601 time")
    p.add_argument("--depends-on", action="append", metavar="JOB_ID")
    p.add_argument("--callback-url")
    p.add_argument("--idempotency-key")
    p.add_argument(
        "--cache-ttl",
        type=int,
        metavar="SECONDS",
        help="reuse an identical job of yours that waits, runs or finished less than SECONDS ago",
    )
    p.add_argument("--refresh", action="store_true", help="a new job even where an identical one could be reused")
    p.add_argument("--wait", action="store_true", help="follow the job to its end; exit 0 finished, 1 otherwise")
    follow_options(p)
    p.set_defaults(handler=cmd_submit)

    p = sub.add_parser("watch", parents=[common], help="follow a job to its end")
    p.add_argument("id", metavar="JOB_ID", help="a job id or a unique prefix of one")
    follow_options(p)
    p.set_defaults(handler=cmd_watch)

    p = sub.add_parser("status", parents=[common], help="show a job")
    p.add_argument("id", metavar="JOB_ID", help="a job id or a unique prefix of one")
    p.set_defaults(handler=cmd_status)

    p = sub.add_parser("list", parents=[common], help="list jobs, newest first")
    p.add_argument("--status", choices=LISTED_STATUSES)
    p.add_argument("--queue", choices=["high", "default", "low"])
    p.add_argument("--type")
    p.add_argument("--limit", type=int, default=20, help="how many jobs to show in all (default 20)")
    p.add_argument("--page-size", type=int, default=50, help="jobs per API request (1-200)")
    p.set_defaults(handler=cmd_list)

    p = sub.add_parser("cancel", parents=[common], help="cancel a waiting job or stop a running one")
    p.add_argument("id", metavar="JOB_ID", help="a job id or a unique prefix of one")
    p.set_defaults(handler=cmd_cancel)

    p = sub.add_parser("types", parents=[common], help="list the job types the service runs")
    p.set_defaults(handler=cmd_types)
    batches_cli.add_commands(sub, common)
    add_schedule_commands(sub, common)
    return parser


# -- commands --

Handler = Callable[[JobsClient, argparse.Namespace, UI], int]


def cmd_submit(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    job = client.submit(
        ns.type,
        build_args(ns),
        queue=ns.queue,
        timeout=ns.timeout,
        retries=ns.retries,
        description=ns.description,
        delay=ns.delay,
        run_at=ns.run_at,
        depends_on=[client.resolve(parent) for parent in ns.depends_on] if ns.depends_on else None,
        callback_url=ns.callback_url,
        idempotency_key=ns.idempotency_key,
        cache_ttl=ns.cache_ttl,
        refresh=ns.refresh,
    )
    if job.reused:
        ui.note(f"reused job {job.id} ({job.type}, {job.status})")
    if ns.wait:
        if not job.reused:
            ui.note(f"job {job.id} ({job.type}) {job.status} on {job.queue}")
        return follow(client, job, ns, ui)
    if ui.as_json:
        ui.data(job.raw)
    else:
        if not job.reused:
            ui.note(f"{job.type} {job.status} on {job.queue}")
        ui.out.print(job.id)
    return EXIT_OK


def cmd_watch(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    return follow(client, client.get(client.resolve(ns.id)), ns, ui)


def cmd_status(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    job = client.get(client.resolve(ns.id))
    if ui.as_json:
        ui.data(job.raw)
        return EXIT_OK
    table = Table(show_header=False, box=None)
    for key in ("id", "type", "description", "status", "progress", "queue", "position", "waiting", "trace_id", "error"):
        value = job.raw.get(key)
        if value is not None:
            table.add_row(key, f"{value:g}%" if key == "progress" else str(value))
    for key in ("created_at", "started_at", "ended_at"):
        if job.raw.get(key):
            table.add_row(key, job.raw[key])
    ui.out.print(table)
    for event in job.messages[-5:]:
        ui.out.print(f"  {progress_line(event)}", markup=False)
    if job.ok:
        ui.data(job.result)
    return EXIT_OK


def cmd_list(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    jobs: list[Job] = []
    for page in client.list(status=ns.status, queue=ns.queue, type=ns.type, limit=min(ns.page_size, ns.limit)):
        jobs.extend(page.jobs[: ns.limit - len(jobs)])
        if len(jobs) >= ns.limit:
            break
    if ui.as_json:
        ui.data([job.raw for job in jobs])
        return EXIT_OK
    ui.out.print(jobs_table(jobs, ui.out.width, ui))
    return EXIT_OK


#: The columns of `list`, most important first: narrow terminals drop them from the end, never the id.
LIST_COLUMNS: list[tuple[str, Callable[[Job], str]]] = [
    ("id", lambda job: job.id),
    ("status", lambda job: job.status),
    ("progress", lambda job: f"{job.progress:g}%"),
    ("type", lambda job: job.type or ""),
    ("created", lambda job: str(job.raw.get("created_at") or "")),
    ("queue", lambda job: job.queue or ""),
]


def jobs_table(jobs: list[Job], width: int, ui: UI) -> Table:
    """Whole ids whatever the width (a cut id is a 404): the columns that do not fit are left out."""
    cells = [[value(job) for _, value in LIST_COLUMNS] for job in jobs]
    widths = [max([len(name), *(len(row[i]) for row in cells)]) for i, (name, _) in enumerate(LIST_COLUMNS)]
    shown = len(LIST_COLUMNS)
    while shown > 1 and sum(widths[:shown]) + 3 * shown + 1 > width:  # a cell's padding and rule: 3
        shown -= 1
    if shown < len(LIST_COLUMNS):
        left_out = ", ".join(name for name, _ in LIST_COLUMNS[shown:])
        ui.note(f"({left_out} left out to fit {width} columns; --json shows everything)")
    table = Table()
    for index, (name, _) in enumerate(LIST_COLUMNS[:shown]):
        if index == 0:
            table.add_column(name, no_wrap=True, min_width=widths[0], overflow="fold")
        else:
            table.add_column(name, overflow="fold")
    for row in cells:
        table.add_row(*row[:shown])
    return table


def cmd_cancel(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    job = client.cancel(client.resolve(ns.id))
    if ui.as_json:
        ui.data(job.raw)
    else:
        ui.out.print(f"{job.id} {job.status}" + ("" if job.ended else " (stop requested)"))
    return EXIT_OK


def cmd_types(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    types = client.types()
    if ui.as_json:
        ui.data([dataclasses.asdict(t) for t in types])
        return EXIT_OK
    table = Table("type", "queue", "timeout", "retries", "arguments", "description")
    for t in types:
        arguments = ", ".join(t.args_schema.get("properties", {}))
        table.add_row(t.type, t.queue, f"{t.timeout}s", str(t.retries), arguments, t.description)
    ui.out.print(table)
    return EXIT_OK


# -- following a job --


def follow(client: JobsClient, job: Job, ns: argparse.Namespace, ui: UI) -> int:
    """Wait for `job` with a live bar (terminal) or one line per message, its output as it comes; the outcome."""
    bar, task = make_bar(ui.err, job) if ui.err.is_terminal else (None, None)
    output = OutputSink.for_terminal(ui.as_json, bar)
    on_progress = ProgressSink(bar, task)
    try:
        if bar is not None and task is not None:
            with bar:
                done = _wait(client, job, ns, on_progress, output)
                if done.ok:
                    bar.update(task, completed=100)
                output.close()
        else:
            done = _wait(client, job, ns, on_progress, output)
            output.close()
    except KeyboardInterrupt:
        output.close()
        return interrupted(client, job.id, ns, ui)
    except WaitTimeout as exc:
        output.close()
        ui.problem(exc)
        return EXIT_TIMEOUT
    return report(done, ui)


def _wait(client: JobsClient, job: Job, ns: argparse.Namespace, on_progress: ProgressSink, output: OutputSink) -> Job:
    done = client.wait(job.id, ns.wait_timeout, on_progress, on_output=output, stream=not ns.no_stream)
    if ns.no_stream and not output.wrote_any:  # polling sees no output events: read it all at the end
        try:
            output.text(client.output(job.id))
        except NotFound:
            pass  # a service without streamed output
    return done


def report(job: Job, ui: UI) -> int:
    elapsed = ""
    if job.started_at and job.ended_at:
        elapsed = f" in {(job.ended_at - job.started_at).total_seconds():.1f}s"
    if ui.as_json:
        ui.data(job.raw)
    elif job.ok:
        ui.data(job.result)
    if job.ok:
        ui.note(f"[green]{job.status}[/green]{elapsed}")
        return EXIT_OK
    ui.note(f"[red]{job.status}[/red]{elapsed}: {job.error or 'no error recorded'}")
    return EXIT_JOB_FAILED


def interrupted(client: JobsClient, job_id: str, ns: argparse.Namespace, ui: UI) -> int:
    cancel = bool(ns.cancel_on_interrupt)
    if not cancel and sys.stdin.isatty():
        try:
            cancel = Confirm.ask(f"Cancel job {job_id}?", console=ui.err, default=False)
        except (KeyboardInterrupt, EOFError):
            cancel = False
    if not cancel:
        ui.note(f"job {job_id} keeps running: `{PROG} watch {job_id}` follows it, `{PROG} cancel {job_id}` stops it")
        return EXIT_INTERRUPTED
    try:
        job = client.cancel(job_id)
        ui.note(f"job {job_id}: {job.status}" + ("" if job.ended else " (stop requested)"))
    except Conflict:
        ui.note(f"job {job_id} had already ended")
    except JobsError as exc:
        ui.problem(exc)
    return EXIT_INTERRUPTED


def main(argv: Sequence[str] | None = None) -> int:
    if Console is None:
        print(f"the `{PROG}` command needs rich: pip install 'jobs-client[cli]'", file=sys.stderr)
        return EXIT_USAGE
    parser = build_parser()
    ns = parser.parse_args(argv)
    url = getattr(ns, "url", None) or os.environ.get("JOBS_URL") or DEFAULT_URL
    api_key = getattr(ns, "api_key", None) or os.environ.get("JOBS_API_KEY") or None
    ui = UI(as_json=getattr(ns, "json", False))
    handler: Handler = ns.handler
    try:
        with JobsClient(url, api_key, timeout=getattr(ns, "http_timeout", 10.0)) as client:
            return handler(client, ns, ui)
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except JobsError as exc:
        ui.problem(exc)
        return EXIT_JOB_FAILED
    except (argparse.ArgumentTypeError, OSError, ValueError) as exc:
        ui.note(f"[red]error:[/red] {exc}")
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

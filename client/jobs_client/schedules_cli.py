"""`jobsvc schedule ...`: create, list, show, change, pause, resume and delete schedules, and list runs.

jobsvc schedule create stats.collect --cron "0 3 * * *" --timezone Europe/Paris --arg day=1
jobsvc schedule create demo.noop --every 60
jobsvc schedule list | get ID | runs ID | pause ID | resume ID | delete ID
jobsvc schedule update ID --every 300          (switching between --cron and --every clears the other)
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from jobs_client._client import JobsClient
    from jobs_client._schedules import Schedule
    from jobs_client.cli import UI

EXIT_OK = 0


def add_schedule_commands(sub: Any, common: argparse.ArgumentParser) -> None:
    """The `schedule` command and its sub-commands, on the `jobsvc` parser's sub-parsers `sub`."""
    top = sub.add_parser("schedule", parents=[common], help="manage periodic schedules")
    commands = top.add_subparsers(dest="schedule_command", required=True, metavar="SUBCOMMAND")

    p = commands.add_parser("create", parents=[common], help="create a schedule")
    p.add_argument("type", help="a registered job type")
    _fields(p)
    p.set_defaults(handler=cmd_create)

    p = commands.add_parser("update", parents=[common], help="change a schedule's fields")
    p.add_argument("id")
    _fields(p)
    p.set_defaults(handler=cmd_update)

    p = commands.add_parser("list", parents=[common], help="list schedules, oldest first")
    p.set_defaults(handler=cmd_list)
    for name, handler, text in (
        ("get", cmd_get, "show a schedule"),
        ("pause", cmd_pause, "pause a schedule (enabled: false)"),
        ("resume", cmd_resume, "resume a paused schedule"),
        ("delete", cmd_delete, "delete a schedule"),
        ("runs", cmd_runs, "list a schedule's runs, newest first"),
    ):
        p = commands.add_parser(name, parents=[common], help=text)
        p.add_argument("id")
        p.set_defaults(handler=handler)


def _fields(p: argparse.ArgumentParser) -> None:
    from jobs_client.cli import _key_value

    when = p.add_mutually_exclusive_group()
    when.add_argument("--cron", help='5-field cron string, e.g. "0 3 * * mon-fri"')
    when.add_argument("--every", type=int, help="interval in seconds, counted from creation")
    p.add_argument("--timezone", help="IANA zone the cron string is read in (default UTC)")
    p.add_argument("--overlap", action=argparse.BooleanOptionalAction, default=None, help="allow overlapping runs")
    p.add_argument("--enabled", action=argparse.BooleanOptionalAction, default=None, help="fire runs (default on)")
    p.add_argument("--arg", action="append", type=_key_value, metavar="KEY=VALUE", help="one argument (JSON value)")
    p.add_argument("--arg-file", action="append", type=_key_value, metavar="KEY=PATH", help="argument from a file")
    p.add_argument("--args", dest="args_json", metavar="JSON", help="all arguments as a JSON object, or @file.json")
    p.add_argument("--queue", choices=["high", "default", "low"])
    p.add_argument("--timeout", type=int, help="run-time limit of each run (s)")
    p.add_argument("--retries", type=int)
    p.add_argument("--description")
    p.add_argument("--callback-url")


def _given(ns: argparse.Namespace) -> dict[str, Any]:
    """The fields given on the command line (arguments only when some were given)."""
    from jobs_client.cli import build_args

    names = ("cron", "every", "timezone", "overlap", "enabled", "queue", "timeout", "retries", "description")
    fields = {name: getattr(ns, name) for name in names if getattr(ns, name) is not None}
    if ns.callback_url is not None:
        fields["callback_url"] = ns.callback_url
    if ns.args_json or ns.arg or ns.arg_file:
        fields["args"] = build_args(ns)
    return fields


def _show(schedule: Schedule, ui: UI) -> int:
    if ui.as_json:
        ui.data(schedule.raw)
        return EXIT_OK
    when = f"cron {schedule.cron!r} ({schedule.timezone})" if schedule.cron else f"every {schedule.every} s"
    state = "enabled" if schedule.enabled else "paused"
    ui.out.print(f"{schedule.id}  {schedule.type}  {when}  {state}", markup=False)
    ui.out.print(
        f"  next run: {schedule.raw.get('next_run_at') or '-'}   runs: {schedule.runs}   skipped: {schedule.skipped}"
        f"   last job: {schedule.last_job_id or '-'}",
        markup=False,
    )
    return EXIT_OK


def cmd_create(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    fields = _given(ns)
    if "cron" not in fields and "every" not in fields:
        raise argparse.ArgumentTypeError("give --cron or --every")
    return _show(client.create_schedule(ns.type, **fields), ui)


def cmd_update(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    fields = _given(ns)
    if "cron" in fields:
        fields.setdefault("every", None)
    if "every" in fields and fields["every"] is not None:
        fields.setdefault("cron", None)
    return _show(client.update_schedule(ns.id, **fields), ui)


def cmd_list(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    found = list(client.schedules())
    if ui.as_json:
        ui.data([schedule.raw for schedule in found])
        return EXIT_OK
    if not found:
        ui.note("no schedules")
    for schedule in found:
        _show(schedule, ui)
    return EXIT_OK


def cmd_get(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    return _show(client.get_schedule(ns.id), ui)


def cmd_pause(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    return _show(client.pause_schedule(ns.id), ui)


def cmd_resume(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    return _show(client.resume_schedule(ns.id), ui)


def cmd_delete(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    client.delete_schedule(ns.id)
    ui.note(f"deleted schedule {ns.id}")
    return EXIT_OK


def cmd_runs(client: JobsClient, ns: argparse.Namespace, ui: UI) -> int:
    found = client.schedule_runs(ns.id)
    if ui.as_json:
        ui.data([job.raw for job in found])
        return EXIT_OK
    for job in found:
        ui.out.print(f"{job.id}  {job.status:<9} due {job.raw.get('scheduled_for')}", markup=False)
    return EXIT_OK

"""The `jobsvc` command the way a user runs it: by its name, in a fresh `bash -lc` (and dash) whose PATH is
set as the README says (`. .venv/bin/activate`), in a pseudo-terminal (pexpect) and in pipes, against the real
stack: the Procfile's uvicorn web line and real `rq worker` processes. Ctrl-C cancels the real job (DELETE
/jobs/{id} stops it in the worker); the API key comes from JOBS_API_KEY against a web process with API_KEYS
set."""

from __future__ import annotations

import json
import os
import re
import shlex
import signal
import subprocess
from collections.abc import Iterator

import pexpect
import pytest
from jobs_client import JobsClient

from tests.integration.conftest import TEST_ENV
from tests.support.procs import ROOT, ProcessFactory, wait_for

#: The README's step that puts the command on PATH, then the command by its name.
ACTIVATE = ". .venv/bin/activate && "
#: What a fresh login shell starts from: no virtualenv on PATH.
PLAIN_PATH = "/usr/local/bin:/usr/bin:/bin"
ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


API_KEY = "cli-key-0123456789"


def env(url: str | None = None, columns: int = 150, **extra: str) -> dict[str, str]:
    drop = ("PYTEST", "JOBS_", "VIRTUAL_ENV", "PYTHON")
    base = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    base.update(PATH=PLAIN_PATH, TERM="xterm-256color", COLUMNS=str(columns), LINES="40", PYTHONUNBUFFERED="1")
    base.update(extra)
    if url:
        base["JOBS_URL"] = url
    return base


def command_line(args: list[str]) -> str:
    return ACTIVATE + shlex.join(["jobsvc", *args])


def spawn(args: list[str], url: str | None, columns: int = 150, **extra: str) -> pexpect.spawn:
    """`jobsvc ARGS` typed into a fresh bash in a terminal, with Ctrl-C's default action as a terminal gives it
    (a suite started in the background by a shell without job control inherits SIGINT ignored, and Python
    then installs no KeyboardInterrupt handler)."""
    return pexpect.spawn(
        "bash",
        ["-lc", command_line(args)],
        env=env(url, columns, **extra),
        cwd=str(ROOT),
        dimensions=(40, columns),
        timeout=60,
        encoding="utf-8",
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )


def jobsvc(
    *args: str, url: str | None = None, shell: str = "bash", columns: int = 150, **extra: str
) -> subprocess.CompletedProcess[str]:
    """`jobsvc ARGS` run by `shell -c` (bash as a login shell) with pipes for stdin, stdout and stderr."""
    argv = ["bash", "-lc"] if shell == "bash" else [shell, "-c"]
    return subprocess.run(
        [*argv, command_line(list(args))],
        env=env(url, columns, **extra),
        cwd=str(ROOT),
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def status_of(url: str, job_id: str, api_key: str | None = None) -> str:
    with JobsClient(url, api_key) as client:
        return client.get(job_id).status


def finish(child: pexpect.spawn) -> tuple[int, str]:
    child.expect(pexpect.EOF)
    output = ANSI.sub("", child.before or "")
    child.close()
    assert child.exitstatus is not None, f"killed by signal {child.signalstatus}"
    return child.exitstatus, output


@pytest.fixture(scope="module")
def secured_url(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """One web process for this module that wants `Authorization: Bearer <API_KEY>` and allows 2 submissions
    a minute per key (Redis, and so the count, is flushed before each test)."""
    factory = ProcessFactory(redis_server_url, tmp_path_factory.mktemp("secured-web"), TEST_ENV)
    try:
        _, url = factory.web(API_KEYS=f"cli={API_KEY}", RATE_LIMIT="2/minute")
        yield url
    finally:
        factory.stop_all()


def test_submit_wait_draws_a_bar_then_prints_the_result(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(
        ["submit", "demo.steps", "--arg", "steps=20", "--arg", "delay=0.1", "--queue", "high", "--wait"], web_url
    )
    child.expect(r"job [\w-]+ \(demo.steps\) queued on high")
    child.expect(r"demo\.steps.*━.*\d+%.*0:00:\d\d.*step \d+/20")  # bar, percentage, elapsed, latest message
    child.expect("step 20/20")
    code, tail = finish(child)
    assert code == 0, tail
    assert '"steps": 20' in tail and '"attempt": 1' in tail and "finished in" in tail


def test_a_failed_job_exits_1(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(["submit", "demo.steps", "--args", '{"steps": 3, "delay": 0.05, "fail_at": 2}', "--wait"], web_url)
    code, output = finish(child)
    assert code == 1, output
    assert "failed" in output and "DemoFailure: failing at step 2" in output


def test_json_mode_without_a_tty_prints_one_line_per_message(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    run = jobsvc("--url", web_url, "--json", "submit", "demo.steps", "--arg", "steps=4", "--arg", "delay=0.1", "--wait")
    assert run.returncode == 0, run.stderr
    view = json.loads(run.stdout)
    assert view["status"] == "finished" and view["result"] == {"steps": 4, "attempt": 1}
    lines = [line for line in run.stderr.splitlines() if line.startswith("[")]
    assert lines == ["[ 25.0%] step 1/4", "[ 50.0%] step 2/4", "[ 75.0%] step 3/4", "[100.0%] step 4/4"]
    assert "\x1b[" not in run.stderr, "no bar or escape codes without a terminal"


def test_status_list_types_and_errors_as_json(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    def jobs(*args: str) -> subprocess.CompletedProcess[str]:
        return jobsvc(*args, url=web_url)

    submitted = jobs("submit", "demo.noop")
    assert submitted.returncode == 0, submitted.stderr
    job_id = submitted.stdout.strip()
    status = json.loads(jobs("status", job_id, "--json").stdout)
    assert status["id"] == job_id and status["status"] == "queued"
    listed = json.loads(jobs("list", "--json", "--limit", "5").stdout)
    assert [item["id"] for item in listed] == [job_id]
    types = {item["type"] for item in json.loads(jobs("types", "--json").stdout)}
    assert {"text.characters", "text.summarize", "demo.steps"} <= types
    invalid = jobs("submit", "demo.steps", "--arg", "steps=0")
    assert invalid.returncode == 1 and "args.steps" in invalid.stderr
    missing = jobs("status", "nope")
    assert missing.returncode == 1 and "404" in missing.stderr
    table = jobs("types")
    assert table.returncode == 0 and "text.characters" in table.stdout


def test_ctrl_c_asks_and_no_leaves_the_job_running(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(["submit", "demo.steps", "--arg", "steps=30", "--arg", "delay=0.1", "--wait"], web_url)
    child.expect(r"job ([\w-]+) \(demo.steps\)")
    job_id = child.match.group(1)
    child.expect(r"step \d+/30")
    child.sendintr()
    child.expect(r"Cancel job [\w-]+\?")
    child.sendline("n")
    code, output = finish(child)
    assert code == 130, output
    assert f"jobsvc watch {job_id}" in output and "Traceback" not in output
    with JobsClient(web_url) as client:
        wait_for(lambda: client.get(job_id).status == "finished", 30, what="the job to go on and finish")


def test_ctrl_c_with_cancel_on_interrupt_stops_the_real_job(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    child = spawn(
        ["submit", "demo.steps", "--args", '{"steps": 300, "delay": 0.1}', "--wait", "--cancel-on-interrupt"], web_url
    )
    child.expect(r"job ([\w-]+) \(demo.steps\)")
    job_id = child.match.group(1)
    child.expect(r"step \d+/300")  # the bar redraws 10 times a second, not at every step
    child.sendintr()
    code, output = finish(child)
    assert code == 130, output
    assert "Traceback" not in output
    assert f"job {job_id}: " in output and "Cancel job" not in output, "no question with --cancel-on-interrupt"
    wait_for(lambda: status_of(web_url, job_id) == "stopped", 30, what="the worker to stop the job")


def test_ctrl_c_then_yes_cancels_and_watch_and_cancel_see_it_ended(
    web_url: str, redis_url: str, procs: ProcessFactory
) -> None:
    procs.worker()
    child = spawn(["submit", "demo.steps", "--args", '{"steps": 300, "delay": 0.1}', "--wait"], web_url)
    child.expect(r"job ([\w-]+) \(demo.steps\)")
    job_id = child.match.group(1)
    child.expect(r"step \d+/300")
    child.sendintr()
    child.expect(rf"Cancel job {job_id}\?")
    child.sendline("y")
    code, output = finish(child)
    assert code == 130, output
    watch = jobsvc("watch", job_id, url=web_url)
    assert watch.returncode == 1 and "stopped" in watch.stderr, watch.stderr
    assert status_of(web_url, job_id) == "stopped"
    again = jobsvc("cancel", job_id, url=web_url)
    assert again.returncode == 1 and "409" in again.stderr


def test_api_key_from_jobs_api_key_with_bar_and_json(secured_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    denied = jobsvc("list", url=secured_url)
    assert denied.returncode == 1 and "401" in denied.stderr
    child = spawn(
        ["--json", "submit", "demo.steps", "--arg", "steps=5", "--arg", "delay=0.2", "--wait"],
        secured_url,
        JOBS_API_KEY=API_KEY,
    )
    child.expect(r"demo\.steps.*━.*\d+%.*step \d+/5")
    code, output = finish(child)
    assert code == 0, output
    view = json.loads(output[output.index("\n{") : output.rindex("}") + 1])
    assert view["status"] == "finished" and view["result"] == {"steps": 5, "attempt": 1}
    assert status_of(secured_url, view["id"], API_KEY) == "finished"
    second = jobsvc("submit", "demo.noop", url=secured_url, JOBS_API_KEY=API_KEY)
    assert second.returncode == 0, second.stderr
    third = jobsvc("submit", "demo.noop", url=secured_url, JOBS_API_KEY=API_KEY)
    assert third.returncode == 1 and "429" in third.stderr and "retry after" in third.stderr, third.stderr


def test_the_command_is_found_by_its_name_in_bash_and_dash(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    builtin = subprocess.run(["bash", "-lc", "type -t jobs"], env=env(), capture_output=True, text=True, timeout=30)
    assert builtin.stdout.strip() == "builtin", "why the command is not called `jobs`"
    absent = subprocess.run(["bash", "-lc", "command -v jobsvc"], env=env(), capture_output=True, text=True, timeout=30)
    assert absent.returncode != 0, "without the README's PATH step there is no jobsvc: the test proves that step"
    readme = (ROOT / "README.md").read_text()
    assert "\n" + ACTIVATE.removesuffix(" && ") + " " in readme and "\njobsvc submit " in readme, "the README's steps"
    module = subprocess.run(
        ["bash", "-lc", ACTIVATE + "python -m jobs_client --help"], env=env(), cwd=str(ROOT),
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert module.returncode == 0 and module.stdout.startswith("usage: jobsvc "), module
    procs.worker()
    for shell in ("bash", "dash"):
        found = subprocess.run(
            [shell, "-c" if shell == "dash" else "-lc", ACTIVATE + "command -v jobsvc"],
            env=env(), cwd=str(ROOT), capture_output=True, text=True, timeout=30,
        )  # fmt: skip
        assert found.returncode == 0 and found.stdout.strip().endswith("/.venv/bin/jobsvc"), (shell, found)
        run = jobsvc(
            "submit", "demo.steps", "--arg", "steps=3", "--arg", "delay=0.05", "--wait", url=web_url, shell=shell
        )
        assert run.returncode == 0, (shell, run.stderr)
        assert json.loads(run.stdout) == {"steps": 3, "attempt": 1}
        assert "[100.0%] step 3/3" in run.stderr and "finished in" in run.stderr


def test_list_in_80_columns_shows_whole_ids_and_any_unique_prefix_is_taken(web_url: str, redis_url: str) -> None:
    with JobsClient(web_url) as client:
        ids = [client.submit("text.characters", {"text": "Call me Ishmael."}).id for _ in range(20)]
    child = spawn(["list", "--limit", "20"], web_url, columns=80)
    code, table = finish(child)
    assert code == 0, table
    assert all(len(line) <= 80 for line in table.splitlines()), table
    for job_id in ids:
        assert job_id in table, f"{job_id} cut or missing:\n{table}"
    piped = jobsvc("list", "--limit", "20", url=web_url, columns=80)
    assert piped.returncode == 0 and all(job_id in piped.stdout for job_id in ids), piped.stdout
    by_first = {job_id[0]: [other for other in ids if other[0] == job_id[0]] for job_id in ids}
    unique = next(job_id for job_id in ids if all(o == job_id or not o.startswith(job_id[:8]) for o in ids))
    status = jobsvc("status", unique[:8], "--json", url=web_url)
    assert status.returncode == 0 and json.loads(status.stdout)["id"] == unique, status.stderr
    canceled = jobsvc("cancel", unique[:8], url=web_url)
    assert canceled.returncode == 0 and f"{unique} canceled" in canceled.stdout, canceled.stderr
    shared, candidates = next((c, same) for c, same in by_first.items() if len(same) > 1)  # 20 ids, 16 hex digits
    ambiguous = jobsvc("status", shared, url=web_url)
    assert ambiguous.returncode == 1 and f"job ids start with '{shared}'" in ambiguous.stderr, ambiguous.stderr
    assert all(job_id in ambiguous.stderr.replace("\n", "") for job_id in candidates[:10])
    unknown = jobsvc("watch", "zzz", url=web_url)
    assert unknown.returncode == 1 and "no job id starts with 'zzz'" in unknown.stderr and "404" in unknown.stderr


def test_ctrl_c_during_watch_exits_130_without_a_traceback(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    with JobsClient(web_url) as client:
        job_id = client.submit("demo.steps", {"steps": 300, "delay": 0.1}).id
    child = spawn(["watch", job_id[:10]], web_url)
    child.expect(r"step \d+/300")
    child.sendintr()
    child.expect(rf"Cancel job {job_id}\?")
    child.sendintr()  # a second Ctrl-C at the question: no, and out
    code, output = finish(child)
    assert code == 130, output
    assert "Traceback" not in output and "KeyboardInterrupt" not in output, output
    assert status_of(web_url, job_id) == "started", "not canceled: the answer was no"


def test_streamed_output_appears_while_the_job_runs(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    """`demo.tokens` streams `tok1 tok2 …`: the terminal shows them while the job still runs, a pipe gets them
    on stdout before the result."""
    procs.worker()
    child = spawn(["submit", "demo.tokens", "--arg", "count=40", "--arg", "delay=0.1", "--wait"], web_url)
    child.expect(r"job ([\w-]+) \(demo.tokens\)")
    job_id = child.match.group(1)
    child.expect("tok5 ")
    assert status_of(web_url, job_id) == "started", "the tokens arrived while the job ran, not at its end"
    child.expect(r"demo\.tokens.*━")  # the bar is drawn below the output
    code, output = finish(child)
    assert code == 0, output
    assert '"tokens": 40' in output and "finished in" in output and "Traceback" not in output
    tokens = re.findall(r"tok(\d+) ", output)
    assert [int(t) for t in dict.fromkeys(tokens)] == list(range(1, 41)), output
    with JobsClient(web_url) as client:
        assert client.output(job_id) == "".join(f"tok{i} " for i in range(1, 41))

    piped = jobsvc("submit", "demo.tokens", "--arg", "count=5", "--arg", "delay=0.02", "--wait", url=web_url)
    assert piped.returncode == 0, piped.stderr
    text, result = piped.stdout.split("\n", 1)
    assert text == "tok1 tok2 tok3 tok4 tok5 " and json.loads(result) == {"tokens": 5}


def test_ctrl_c_while_output_streams_exits_130(web_url: str, redis_url: str, procs: ProcessFactory) -> None:
    procs.worker()
    child = spawn(
        ["submit", "demo.tokens", "--args", '{"count": 500, "delay": 0.05}', "--wait", "--cancel-on-interrupt"],
        web_url,
    )
    child.expect(r"job ([\w-]+) \(demo.tokens\)")
    job_id = child.match.group(1)
    child.expect("tok3 ")
    child.sendintr()
    code, output = finish(child)
    assert code == 130 and "Traceback" not in output, output
    wait_for(lambda: status_of(web_url, job_id) in ("stopped", "canceled"), 30, what="the worker to stop the job")

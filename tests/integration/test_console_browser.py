"""The console and `<job-progress>` as a person uses them: headless Chromium against a real web process
and real `rq worker` processes.

One browser and one stack (a web process with CORS for a second origin, two workers) serve the whole
module; a second web process with API keys joins for the test that needs one. With
`UPDATE_SCREENSHOTS=1` the tests save the PNGs in docs/images/ that README and docs/console.md show.
One module above 300 lines on purpose: its module-scoped browser and stack are what keep these tests fast.
"""

from __future__ import annotations

import functools
import http.server
import json
import os
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
from selenium.webdriver import Chrome as WebDriver
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webelement import WebElement
from selenium.webdriver.support.ui import WebDriverWait

from stack.redis_server import free_port
from tests.factories import steps_job
from tests.integration.conftest import TEST_ENV
from tests.support.browser import CHROMEDRIVER, CHROMIUM, MISSING, chromium
from tests.support.procs import ROOT, ProcessFactory, wait_for

IMAGES = ROOT / "docs" / "images"
SCREENSHOTS = os.environ.get("UPDATE_SCREENSHOTS") == "1"
KEY = "console-key-0123456789abcdef"
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 2, "mobile": True}

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason=MISSING,
)


class Stack:
    def __init__(self, factory: ProcessFactory, url: str, origin: str, site: Path) -> None:
        self.factory = factory
        self.url = url
        self.origin = origin  # the other site's origin, allowed by CORS_ORIGINS
        self.site = site  # the other site's files
        self.api = httpx.Client(base_url=url, timeout=10)

    def submit(self, body: dict[str, Any], headers: dict[str, str] | None = None) -> str:
        response = self.api.post("/jobs", json=body, headers=headers)
        assert response.status_code == 202, response.text
        job_id: str = response.json()["id"]
        return job_id

    def view(self, job_id: str) -> dict[str, Any]:
        response = self.api.get(f"/jobs/{job_id}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


#: A flow-control limit on a type no other test here submits: the held-back test sees it in the header.
LIMIT = "demo.sleep=1"


@pytest.fixture(scope="module")
def stack(redis_server_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    client = redis.Redis.from_url(redis_server_url)
    client.flushdb()
    site = tmp_path_factory.mktemp("site")
    handler = functools.partial(_QuietHandler, directory=str(site))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), handler)
    origin = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    factory = ProcessFactory(redis_server_url, tmp_path_factory.mktemp("console"), TEST_ENV)
    try:
        _, url = factory.web(CORS_ORIGINS=origin, TYPE_CONCURRENCY=LIMIT)
        factory.worker(TYPE_CONCURRENCY=LIMIT)
        factory.worker(TYPE_CONCURRENCY=LIMIT)
        stack = Stack(factory, url, origin, site)
        yield stack
        stack.api.close()
    finally:
        factory.stop_all()
        server.shutdown()
        server.server_close()
        client.flushdb()
        client.close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WebDriver]:
    profile = tmp_path_factory.mktemp("chromium")
    logging = {"goog:loggingPrefs": {"performance": "ALL", "browser": "ALL"}}
    with chromium(
        profile, "--window-size=1280,900", "--force-color-profile=srgb", "--lang=en-GB", capabilities=logging
    ) as driver:
        yield driver


@pytest.fixture
def page(browser: WebDriver) -> Iterator[WebDriver]:
    """The shared browser, with no key stored and no script errors left behind by a test."""
    yield browser
    errors = [
        entry for entry in logs(browser, "browser") if entry["level"] == "SEVERE" and entry["source"] != "network"
    ]  # a 401 or a 404 the page handles is logged by the network, not by a script
    browser.execute_script("sessionStorage.clear()")
    assert not errors, errors


def logs(driver: WebDriver, kind: str) -> list[dict[str, Any]]:
    """Chromium's log entries of `kind` since the last call ("browser": the console; "performance": requests)."""
    entries: list[dict[str, Any]] = driver.get_log(kind)  # type: ignore[no-untyped-call]
    return entries


def waiter(driver: WebDriver, timeout: float = 30) -> WebDriverWait[WebDriver]:
    return WebDriverWait(driver, timeout, poll_frequency=0.1)


def css(driver: WebDriver, selector: str) -> WebElement:
    return driver.find_element(By.CSS_SELECTOR, selector)


def button(driver: WebDriver, name: str) -> WebElement:
    """A visible button by its accessible name (its text)."""
    for element in driver.find_elements(By.TAG_NAME, "button"):
        if element.text.strip() == name and element.is_displayed():
            return element
    raise AssertionError(f"no visible button named {name!r}")


def has_button(driver: WebDriver, name: str) -> bool:
    try:
        button(driver, name)
    except AssertionError:
        return False
    return True


def job_status(driver: WebDriver) -> str:
    return str(css(driver, ".status-line .badge").text)


def job_progress(driver: WebDriver) -> str:
    return str(css(driver, ".progress-card [role=progressbar]").get_attribute("aria-valuenow"))


def fill(driver: WebDriver, field_id: str, value: str) -> None:
    element = css(driver, f"#{field_id}")
    element.clear()
    element.send_keys(value)


def job_id_from_url(driver: WebDriver) -> str:
    return str(driver.current_url.rsplit("/", 1)[1])


def until(driver: WebDriver, condition: Callable[[WebDriver], object], timeout: float = 30) -> None:
    waiter(driver, timeout).until(lambda d: _quietly(condition, d))


def _quietly(condition: Callable[[WebDriver], object], driver: WebDriver) -> object:
    try:
        return condition(driver)
    except Exception:  # an element redrawn between find and read: look again
        return False


def screenshot(driver: WebDriver, name: str, phone: bool = False, dark: bool = False) -> None:
    """Save docs/images/<name>.png when UPDATE_SCREENSHOTS=1 (CI leaves the tree clean): the whole page
    at laptop width (up to 1,500 px tall), or the first screen of a phone."""
    if not SCREENSHOTS:
        return
    IMAGES.mkdir(parents=True, exist_ok=True)
    driver.execute_script("window.scrollTo(0, 0); document.activeElement?.blur()")
    if phone:
        metrics = PHONE
    else:
        height = int(driver.execute_script("return document.documentElement.scrollHeight"))
        metrics = {"width": 1280, "height": min(max(height, 800), 1500), "deviceScaleFactor": 1, "mobile": False}
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", metrics)
    if dark:
        driver.execute_cdp_cmd(
            "Emulation.setEmulatedMedia", {"features": [{"name": "prefers-color-scheme", "value": "dark"}]}
        )
    try:
        driver.execute_script("return new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)))")
        driver.save_screenshot(str(IMAGES / f"{name}.png"))
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
        driver.execute_cdp_cmd("Emulation.setEmulatedMedia", {"features": []})


def submit_through_form(driver: WebDriver, url: str, description: str = "", **args: str) -> str:
    driver.get(f"{url}/console/new?type=demo.steps")
    until(driver, lambda d: css(d, "#f-args-steps"))
    for name, value in args.items():
        fill(driver, f"f-args-{name}", value)
    if description:
        css(driver, "details.options summary").click()
        fill(driver, "f-description", description)
    button(driver, "Submit job").click()
    until(driver, lambda d: "/console/jobs/" in d.current_url and job_status(d))
    return job_id_from_url(driver)


def test_a_job_submitted_through_the_generated_form_runs_to_finished(page: WebDriver, stack: Stack) -> None:
    description = "Generate learning path for python"
    job_id = submit_through_form(page, stack.url, description=description, steps="4", delay="0.4")
    until(page, lambda d: job_progress(d) == "100" and job_status(d) == "finished")
    assert stack.view(job_id)["result"] == {"steps": 4, "attempt": 1}
    assert stack.view(job_id)["description"] == description
    assert '"steps": 4' in css(page, "pre.result").text
    assert [m.text for m in page.find_elements(By.CSS_SELECTOR, ".tl-item .tl-label")][-1] == "finished"
    assert "step 4/4" in css(page, "table.messages").text
    screenshot(page, "console-job-phone", phone=True)


def test_a_refused_argument_is_shown_next_to_its_field(page: WebDriver, stack: Stack) -> None:
    before = len(stack.api.get("/jobs").json()["jobs"])
    page.get(f"{stack.url}/console/new?type=demo.steps")
    until(page, lambda d: css(d, "#f-args-steps"))
    fill(page, "f-args-steps", "0")
    button(page, "Submit job").click()
    error = css(page, "#f-args-steps-error")
    until(page, lambda d: error.is_displayed())
    assert "greater than or equal to 1" in error.text
    assert css(page, "#f-args-steps").get_attribute("aria-invalid") == "true"
    assert "f-args-steps-error" in str(css(page, "#f-args-steps").get_attribute("aria-describedby"))
    assert not css(page, "#f-args-delay-error").is_displayed()
    assert page.current_url.endswith("/console/new?type=demo.steps")  # nothing was submitted
    assert len(stack.api.get("/jobs").json()["jobs"]) == before


def test_cancel_stops_a_running_job(page: WebDriver, stack: Stack) -> None:
    job_id = stack.submit(steps_job(steps=200, delay=0.2, description="Transcribe a two-hour interview"))
    page.get(f"{stack.url}/console/jobs/{job_id}")
    until(page, lambda d: job_status(d) == "started" and float(job_progress(d)) > 0)
    button(page, "Cancel").click()
    until(page, lambda d: job_status(d) == "stopped")
    assert not has_button(page, "Cancel") and has_button(page, "Retry")
    assert stack.view(job_id)["status"] == "stopped"


def test_a_held_back_job_says_why_and_the_header_shows_the_limit(page: WebDriver, stack: Stack) -> None:
    running = stack.submit({"type": "demo.sleep", "args": {"seconds": 60}})
    held = stack.submit({"type": "demo.sleep", "args": {"seconds": 60}})
    try:
        wait_for(lambda: stack.view(running)["status"] == "started", timeout=30, what="the first sleep to start")
        page.get(f"{stack.url}/console/jobs/{held}")
        until(page, lambda d: "demo.sleep: 1 of 1 running" in css(d, ".details").text)
        until(page, lambda d: "1/1" in css(d, "#vitals .limit").text and "1 held back" in css(d, "#vitals .limit").text)
        assert stack.view(running)["status"] == "started" and stack.view(held)["status"] == "queued"
    finally:
        for job_id in (held, running):
            stack.api.delete(f"/jobs/{job_id}")


def test_retry_runs_a_failed_job_again(page: WebDriver, stack: Stack) -> None:
    description = "Recognise characters on page 7 (fails once)"
    job_id = stack.submit(
        steps_job(steps=3, delay=0.2, args={"fail_at": 2, "fail_attempts": 1}, description=description)
    )
    page.get(f"{stack.url}/console/jobs/{job_id}")
    until(page, lambda d: job_status(d) == "failed")
    assert "failing at step 2" in css(page, ".outcome").text
    button(page, "Retry").click()
    until(page, lambda d: job_status(d) == "finished" and job_progress(d) == "100")
    assert stack.view(job_id)["result"] == {"steps": 3, "attempt": 2}
    attempts = page.find_element(By.XPATH, "//dt[.='Attempts']/following-sibling::dd[1]")
    assert attempts.text == "2"
    labels = [m.text for m in page.find_elements(By.CSS_SELECTOR, ".tl-item .tl-label")]
    assert any(label.startswith("attempt 1 ended") for label in labels) and "attempt 2 started" in labels, labels
    screenshot(page, "console-job")


def test_run_again_opens_the_form_with_the_jobs_arguments_to_edit(page: WebDriver, stack: Stack) -> None:
    first = submit_through_form(page, stack.url, description="Summarise chapter 3", steps="2", delay="0.1")
    until(page, lambda d: job_status(d) == "finished")
    button(page, "Run again").click()
    until(page, lambda d: "/console/new" in d.current_url and css(d, "#f-args-steps").get_attribute("value") == "2")
    assert css(page, "#f-args-delay").get_attribute("value") == "0.1"
    fill(page, "f-args-steps", "3")
    button(page, "Submit job").click()
    until(page, lambda d: "/console/jobs/" in d.current_url and job_id_from_url(d) != first)
    until(page, lambda d: job_status(d) == "finished")
    assert stack.view(job_id_from_url(page))["result"] == {"steps": 3, "attempt": 1}


def test_streamed_output_appears_while_the_job_runs(page: WebDriver, stack: Stack) -> None:
    types = {spec["type"] for spec in stack.api.get("/job-types").json()}
    if "demo.tokens" not in types:
        pytest.skip("this server has no demo.tokens job type (streamed output is not merged here)")
    body = {
        "type": "demo.tokens",
        "args": {"count": 40, "delay": 0.1},
        "description": "Answer the question, token by token",
    }
    response = stack.api.post("/jobs", json=body)
    assert response.status_code == 202, response.text
    job_id = response.json()["id"]
    page.get(f"{stack.url}/console/jobs/{job_id}")
    until(page, lambda d: "tok3 " in css(d, "pre.output").text and job_status(d) == "started")
    if SCREENSHOTS:
        until(page, lambda d: "tok20 " in css(d, "pre.output").text)
        screenshot(page, "console-output")
    until(page, lambda d: job_status(d) == "finished")
    assert css(page, "pre.output").text.split() == [f"tok{i}" for i in range(1, 41)]


def test_jobs_list_follows_changes_live(page: WebDriver, stack: Stack) -> None:
    page.get(f"{stack.url}/console/")
    until(page, lambda d: css(d, ".vitals .workers"))
    assert "2 workers" in css(page, ".vitals").text
    ok = stack.submit(steps_job(steps=3, delay=0.3, description="Generate learning path for python"))
    until(page, lambda d: ok[:8] in d.find_element(By.TAG_NAME, "tbody").text)
    until(page, lambda d: "finished" in _row(d, ok).text)  # no reload: the page follows the event stream
    if SCREENSHOTS:
        _fill_for_screenshots(stack)
        until(
            page,
            lambda d: (
                len(d.find_elements(By.CSS_SELECTOR, "tbody tr")) >= 6
                and "started" in d.find_element(By.TAG_NAME, "tbody").text
            ),
        )
        screenshot(page, "console-jobs")
        screenshot(page, "console-jobs-phone", phone=True)
        screenshot(page, "console-jobs-dark", dark=True)
    css(page, "#filter-status option[value=finished]").click()
    until(page, lambda d: "status=finished" in d.current_url)
    until(page, lambda d: all("finished" in row.text for row in d.find_elements(By.CSS_SELECTOR, "tbody tr")))


def _row(driver: WebDriver, job_id: str) -> WebElement:
    return driver.find_element(By.XPATH, f"//tbody/tr[.//code[@title='{job_id}']]")


def _fill_for_screenshots(stack: Stack) -> None:
    stack.submit(steps_job(steps=2, delay=0.1, args={"fail_at": 2}, description="Recognise characters on page 12"))
    stack.submit(steps_job(steps=5, delay=0.1, description="Summarise the support conversation"))
    stack.submit(steps_job(steps=3, delay=0.1, queue="high", description="Memory step for session 42"))
    stack.submit(steps_job(steps=400, delay=0.25, description="Generate learning path for rust"))
    later = steps_job(steps=5, delay=0.5, description="Nightly vocabulary refresh")
    later["delay"] = 3600  # the submission's own delay: scheduled an hour from now
    stack.submit(later)


def test_with_api_keys_the_console_asks_for_a_key_and_keeps_it_out_of_urls(
    page: WebDriver, stack: Stack, tmp_path: Path
) -> None:
    factory = ProcessFactory(stack.factory.redis_url, tmp_path, TEST_ENV)
    try:
        _, url = factory.web(API_KEYS=f"console={KEY}")
        logs(page, "performance")  # start the request log here
        page.get(f"{url}/console/")
        dialog = css(page, "#key-dialog")
        until(page, lambda d: dialog.is_displayed())
        css(page, "#key-input").send_keys(KEY)
        button(page, "Use key").click()
        until(page, lambda d: not dialog.is_displayed() and css(d, ".vitals .workers"))
        job_id = submit_through_form(page, url, steps="2", delay="0.2")
        until(page, lambda d: job_status(d) == "finished" and job_progress(d) == "100")
        assert page.execute_script("return sessionStorage.getItem('jobsvc.apiKey')") == KEY
        assert page.execute_script("return localStorage.length") == 0
        assert stack.view(job_id)["owner"] == "console"
        urls = _request_urls(page)
        assert any(f"/jobs/{job_id}/events" in u for u in urls), urls  # the log saw the event stream
        assert not [u for u in urls if KEY in u], urls
        assert KEY not in page.current_url
    finally:
        factory.stop_all()


def _request_urls(driver: WebDriver) -> list[str]:
    urls = []
    for entry in logs(driver, "performance"):
        message = json.loads(entry["message"])["message"]
        if message["method"] == "Network.requestWillBeSent":
            urls.append(str(message["params"]["request"]["url"]))
    return urls


EMBED = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>An application's own page</title></head>
<body>
<h1>Your learning path is being generated</h1>
<script type="module" src="{base}/console/job-progress.js"></script>
<job-progress job-id="{job_id}" base-url="{base}"></job-progress>
<script>
  document.addEventListener("job-ended", (event) => {{ window.ended = event.detail; }});
</script>
</body></html>
"""


def test_job_progress_element_on_another_origins_page(page: WebDriver, stack: Stack) -> None:
    job_id = stack.submit(steps_job(steps=4, delay=0.3))
    (stack.site / "embed.html").write_text(EMBED.format(base=stack.url, job_id=job_id))
    page.get(f"{stack.origin}/embed.html")
    script = "return document.querySelector('job-progress')?.shadowRoot?.querySelector('[role=progressbar]')"
    until(page, lambda d: d.execute_script(script) is not None)
    until(page, lambda d: d.execute_script("return window.ended") is not None)
    ended = page.execute_script("return window.ended")
    assert ended["id"] == job_id and ended["status"] == "finished" and ended["result"] == {"steps": 4, "attempt": 1}
    bar = page.execute_script(script)
    assert bar.get_attribute("aria-valuenow") == "100"
    message = page.execute_script("return document.querySelector('job-progress').shadowRoot.querySelector('.message')")
    assert message.text == "step 4/4"
    # the module and the stream are served to that origin only
    response = stack.api.get("/console/job-progress.js", headers={"Origin": stack.origin})
    assert response.headers["access-control-allow-origin"] == stack.origin
    other = stack.api.get("/console/job-progress.js", headers={"Origin": "http://elsewhere.example"})
    assert "access-control-allow-origin" not in other.headers

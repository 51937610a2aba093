"""rq-dashboard as a person sees it: headless Chromium (Debian's chromium + chromedriver) loads /dashboard/.

`make browser` (part of `make test`) installs the two Debian packages; without them the test is
skipped with that reason. Screenshots are saved in the test's tmp dir.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.remote.webdriver import WebDriver
from selenium.webdriver.support.ui import WebDriverWait

from tests.factories import steps_job
from tests.support.browser import CHROMEDRIVER, CHROMIUM, MISSING, chromium
from tests.support.procs import ProcessFactory

USER, PASSWORD = "ops", "browser-pw"

pytestmark = pytest.mark.skipif(
    not (CHROMIUM and CHROMEDRIVER),
    reason=MISSING,
)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[WebDriver]:
    with chromium(tmp_path, "--window-size=1280,1000") as driver:
        yield driver


def page_text(driver: WebDriver) -> str:
    return str(driver.find_element(By.TAG_NAME, "body").text)


def test_dashboard_in_headless_chromium_shows_queues_and_a_submitted_job(
    browser: WebDriver, procs: ProcessFactory, tmp_path: Path
) -> None:
    _, url = procs.web(DASHBOARD_USERNAME=USER, DASHBOARD_PASSWORD=PASSWORD)
    description = "Generate learning path for python"
    with httpx.Client(base_url=url, timeout=10) as api:
        response = api.post("/jobs", json=steps_job(steps=3, description=description))
        assert response.status_code == 202, response.text
        job_id = response.json()["id"]
        assert api.get("/dashboard/").status_code == 401

    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    browser.execute_cdp_cmd("Network.enable", {})
    browser.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}})

    browser.get(f"{url}/dashboard/")
    wait = WebDriverWait(browser, 30, poll_frequency=0.2)
    # the queue table is filled by the page's own script from data/queues.json
    wait.until(lambda d: all(f"\n{name} " in f"\n{page_text(d)}" for name in ("high", "default", "low")))
    rows = {row.text.split()[0]: row.text for row in browser.find_elements(By.CSS_SELECTOR, "#queues tbody tr")}
    assert set(rows) == {"high", "default", "low"}, rows
    assert rows["default"].split()[1] == "1", rows  # the queued job
    browser.save_screenshot(str(tmp_path / "dashboard-queues.png"))

    browser.get(f"{url}/dashboard/0/view/jobs/default/queued/8/asc/1")
    wait.until(lambda d: job_id in page_text(d))
    assert description in page_text(browser)
    browser.save_screenshot(str(tmp_path / "dashboard-jobs.png"))

    browser.get(f"{url}/dashboard/0/view/job/{job_id}")
    wait.until(lambda d: description in page_text(d) and "queued" in page_text(d))
    browser.save_screenshot(str(tmp_path / "dashboard-job.png"))
    for name in ("dashboard-queues.png", "dashboard-jobs.png", "dashboard-job.png"):
        assert (tmp_path / name).stat().st_size > 10_000, name

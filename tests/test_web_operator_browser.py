"""The operator dashboard in Debian chromium (Playwright): failed jobs shown as failed with
their error, labelled counts, the Redis-down banner, a phone viewport, the confirmed bulk
actions, pausing a type, cancel, the repeats view, dependency links, the workers view and the
activity charts. Every action is confirmed in the page's dialog and its effect read back from
Redis through the Python API."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kueatomic import JobNotFound, Queue
from kueatomic.web import create_app

from .redis_server import RedisServer, redis_server_binary
from .web_helpers import CHROMIUM, CHROMIUM_ARGS, serve

pytestmark = pytest.mark.browser

WAIT_MS = 15000
FAST_WORKERS = {"claim_batch": 1, "heartbeat_interval_ms": 200, "upkeep_interval_ms": 100,
                "block_timeout_ms": 100}


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
        if os.environ.get("KUEATOMIC_REQUIRE_REDIS") == "1":
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield instance
        instance.close()


@pytest.fixture
def dashboard(browser: Any, real_redis_url: str) -> Iterator[tuple[Queue, Any, str, list[str]]]:
    """A queue on the session's redis-server, the dashboard serving it, and a page (with the
    page's script errors collected: each test ends with none)."""
    queue = Queue(redis=real_redis_url)
    errors: list[str] = []
    try:
        with serve(create_app(queue, poll_interval_ms=300)) as base:
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            yield queue, page, base, errors
    finally:
        queue.shutdown(0)
        queue.close()


def accept(page: Any, says: str) -> None:
    """The confirm dialog is open and names what will happen; confirm it."""
    from playwright.sync_api import expect

    expect(page.locator("#confirm")).to_be_visible()
    expect(page.locator("#confirm-text")).to_contain_text(says)
    page.click("#confirm-ok")
    expect(page.locator("#confirm")).to_be_hidden()


def wait_until(check: Any, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def broken_upload(job: Any) -> None:
    raise RuntimeError("moov atom not found\nthe upload is truncated")


def test_failed_jobs_show_their_error_and_counts_are_labelled(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    failed_id = queue.create("video", {"title": "clip"}).save().id
    queue.create("email", {}).save()
    queue.create("email", {}).save().set_state("complete")
    queue.configure_workers(**FAST_WORKERS)
    queue.process("video", 1, broken_upload)
    wait_until(lambda: queue.get_job(failed_id).state == "failed")

    page.goto(base + "failed")
    row = page.locator(f'.job[data-id="{failed_id}"]')
    expect(row.locator(".error-line")).to_contain_text("moov atom not found", timeout=WAIT_MS)
    expect(row.locator(".error-line")).not_to_contain_text("truncated")  # the first line only
    expect(row.locator(".pct-text")).to_have_text("failed")
    red = row.locator(".bar").evaluate("e => getComputedStyle(e).backgroundColor")
    assert red == "rgb(221, 75, 75)"  # --failed, not the green of a completed bar
    row.click()
    expect(page.locator("#d-state")).to_have_text("Failed")
    expect(page.locator("#d-error")).to_contain_text("RuntimeError")
    expect(page.locator("#d-error")).to_contain_text("the upload is truncated")
    expect(page.locator("#d-error")).to_contain_text("Traceback")
    expect(page.locator("#d-progress-box")).to_have_class("progress large failed")
    expect(page.locator("#a-cancel")).to_be_hidden()

    # Each type's counts name their state; states without jobs are left out.
    shown = '.type-list li[data-type="{}"] .type-counts > span:visible'
    expect(page.locator(shown.format("email"))).to_have_text(["1 queued", "1 complete"])
    expect(page.locator(shown.format("video"))).to_have_text(["1 failed"])
    assert errors == []


def test_banner_while_redis_is_down_and_gone_when_it_returns(browser: Any) -> None:
    from playwright.sync_api import expect

    if redis_server_binary() is None:
        pytest.skip("redis-server is not installed")
    server = RedisServer().start()  # this test's own server: it is stopped below
    queue = Queue(redis=server.url)
    try:
        queue.create("email", {"title": "hello"}).save()
        with serve(create_app(server.url, poll_interval_ms=300)) as base:
            page = browser.new_page()
            page.goto(base + "inactive")
            expect(page.locator("#job-list .job")).to_have_count(1, timeout=WAIT_MS)
            expect(page.locator("#outage")).to_be_hidden()
            server.stop()
            expect(page.locator("#outage")).to_be_visible(timeout=WAIT_MS)
            expect(page.locator("#outage-title")).to_have_text("Redis is unreachable")
            expect(page.locator("#outage-detail")).to_contain_text("unreachable")
            expect(page.locator("#live")).to_have_text("Redis down")
            page.click('.view-link[data-view="workers"]')  # every view says so
            expect(page.locator("#outage")).to_be_visible()
            page.click('.state[data-state="inactive"]')
            server.start()  # empty again (no persistence)
            expect(page.locator("#outage")).to_be_hidden(timeout=WAIT_MS)
            queue.create("email", {"title": "after"}).save()
            expect(page.locator("#job-list .job .title")).to_have_text(["after"], timeout=WAIT_MS)
            expect(page.locator("#live")).to_have_text("live")
    finally:
        queue.close()
        server.cleanup()


def test_banner_when_the_server_points_at_a_dead_port(browser: Any) -> None:
    from playwright.sync_api import expect

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = sock.getsockname()[1]  # closed again: nothing listens there
    with serve(create_app(f"redis://127.0.0.1:{dead}/0", poll_interval_ms=300)) as base:
        page = browser.new_page()
        page.goto(base + "failed")
        expect(page.locator("#outage")).to_be_visible(timeout=WAIT_MS)
        expect(page.locator("#outage-title")).to_have_text("Redis is unreachable")


def no_horizontal_overflow(page: Any) -> None:
    """The page does not scroll sideways, and no visible element sticks out of the screen
    (tables may scroll inside their own box)."""
    widths = page.evaluate("() => [document.documentElement.scrollWidth, window.innerWidth]")
    assert widths == [390, 390]  # a mobile browser would zoom out to fit a wider page
    outside = page.evaluate("""() => {
        const out = (r) => r.width > 0 && (r.right > innerWidth + 1 || r.left < -1);
        const clipped = (e) => {  // inside a box that hides or scrolls its overflow, itself on screen
            for (let p = e.parentElement; p && p !== document.body; p = p.parentElement) {
                if (getComputedStyle(p).overflowX !== "visible") return !out(p.getBoundingClientRect());
            }
            return false;
        };
        return [...document.querySelectorAll("body *")]
            .filter((e) => e.getClientRects().length && !e.closest("dialog, .toasts"))
            .filter((e) => out(e.getBoundingClientRect()) && !clipped(e))
            .map((e) => e.tagName + "#" + e.id + "." + e.className);
    }""")
    assert outside == []


def test_phone_viewport_has_no_horizontal_scrolling(browser: Any, real_redis_url: str) -> None:
    from playwright.sync_api import expect

    queue = Queue(redis=real_redis_url)
    for n in range(6):
        queue.create("a-rather-long-job-type-name", {"title": "x" * 120}).save()
    failed = queue.create("email", {"title": "failed one"}).save().set_state("failed").id
    queue.repeat("report", cron="*/5 * * * *", name="every five minutes, all day long")
    try:
        with serve(create_app(queue, poll_interval_ms=300)) as base:
            page = browser.new_page(viewport={"width": 390, "height": 844}, is_mobile=True,
                                    has_touch=True)
            page.goto(base + "inactive")
            expect(page.locator("#job-list .job")).to_have_count(6, timeout=WAIT_MS)
            no_horizontal_overflow(page)
            # Navigation within the first screen: every state and view link.
            for link in page.locator(".state, .view-link").all():
                box = link.bounding_box()
                assert box and box["x"] >= 0 and box["x"] + box["width"] <= 390
                assert box["y"] + box["height"] <= 844
            page.click('.state[data-state="failed"]')
            page.locator(f'.job[data-id="{failed}"]').click()
            expect(page.locator("#detail")).to_be_visible()
            no_horizontal_overflow(page)
            for view in ("workers", "activity", "repeats"):
                page.click(f'.view-link[data-view="{view}"]')
                expect(page.locator(f'[data-view-pane="{view}"]')).to_be_visible()
                no_horizontal_overflow(page)
    finally:
        queue.close()


def test_bulk_retry_failed_and_clean_old_jobs(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    videos = [queue.create("video", {}).save().set_state("failed").id for _ in range(2)]
    emails = [queue.create("email", {}).save().set_state("failed").id for _ in range(3)]
    done = [queue.create("email", {}).save().set_state("complete").id for _ in range(3)]

    # Retry the failed jobs of one type, then of every type.
    page.goto(base + "failed?type=video")
    expect(page.locator("#retry-failed")).to_have_text("Retry all video failed", timeout=WAIT_MS)
    page.click("#retry-failed")
    accept(page, "Retry 2 video failed jobs?")
    wait_until(lambda: all(queue.get_job(i).state == "inactive" for i in videos))
    assert all(queue.get_job(i).state == "failed" for i in emails)
    page.select_option("#type-filter", "")
    expect(page.locator("#job-list .job")).to_have_count(3, timeout=WAIT_MS)
    page.click("#retry-failed")
    page.click('#confirm button[value="cancel"]')  # cancelled: nothing happens
    assert queue.failed_count() == 3
    page.click("#retry-failed")
    accept(page, "Retry 3 failed jobs?")
    wait_until(lambda: queue.failed_count() == 0)
    expect(page.locator("#job-list .job")).to_have_count(0, timeout=WAIT_MS)

    # Remove completed jobs older than an age: a day removes none, any age all three.
    page.click('.state[data-state="complete"]')
    expect(page.locator("#job-list .job")).to_have_count(3, timeout=WAIT_MS)
    page.click("#clean-run")
    accept(page, "Remove completed jobs that ended more than 1 day ago (up to 3)?")
    expect(page.locator(".toast").last).to_contain_text("removed 0 jobs", timeout=WAIT_MS)
    assert queue.complete_count() == 3
    page.select_option("#clean-age", "0")
    page.click("#clean-run")
    accept(page, "Remove completed jobs of any age (3)?")
    # The toast comes with the answer; an empty list alone may be the reload before it.
    expect(page.locator(".toast").last).to_contain_text("removed 3 jobs", timeout=WAIT_MS)
    expect(page.locator("#job-list .job")).to_have_count(0, timeout=WAIT_MS)
    for job_id in done:
        with pytest.raises(JobNotFound):
            queue.get_job(job_id)
    assert errors == []


def test_pause_and_resume_a_type(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    queue.create("email", {}).save()
    page.goto(base + "inactive")
    item = page.locator('.type-list li[data-type="email"]')
    expect(item.locator(".pause-toggle")).to_have_text("Pause", timeout=WAIT_MS)
    expect(item.locator(".paused-badge")).to_be_hidden()
    item.locator(".pause-toggle").click()
    accept(page, "Pause type email for every worker?")
    expect(item.locator(".paused-badge")).to_be_visible()
    assert queue.paused_types() == ["email"]
    # A worker started now leaves the job queued.
    queue.configure_workers(**FAST_WORKERS)
    queue.process("email", 1, lambda job: None)
    time.sleep(0.6)
    assert queue.inactive_count() == 1
    expect(item.locator(".pause-toggle")).to_have_text("Resume")
    item.locator(".pause-toggle").click()
    accept(page, "Resume type email?")
    expect(item.locator(".paused-badge")).to_be_hidden()
    assert queue.paused_types() == []
    wait_until(lambda: queue.complete_count() == 1)
    assert errors == []


def test_cancel_from_the_card(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    waiting = queue.create("email", {"title": "not yet"}).delay(60_000).save().id
    done = queue.create("email", {}).save().set_state("complete").id
    page.goto(base + f"complete?job={done}")
    expect(page.locator("#d-id")).to_have_text(f"#{done}", timeout=WAIT_MS)
    expect(page.locator("#a-cancel")).to_be_hidden()
    page.goto(base + f"delayed?job={waiting}")
    expect(page.locator("#a-cancel")).to_be_visible(timeout=WAIT_MS)
    page.click("#a-cancel")
    accept(page, f"Cancel job #{waiting}?")
    expect(page.locator("#d-state")).to_have_text("Failed")
    expect(page.locator("#d-error")).to_contain_text("Cancelled", timeout=WAIT_MS)
    job = queue.get_job(waiting)
    assert job.state == "failed" and "Cancelled" in (job.error or "")
    assert errors == []


def test_repeats_view_lists_and_removes(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    queue.repeat("report", every=3_600_000, name="hourly-report")
    queue.repeat("cleanup", cron="30 3 * * *", tz="Europe/Paris", name="nightly")
    page.goto(base + "inactive")
    page.click('.view-link[data-view="repeats"]')
    rows = page.locator("#repeats-body tr")
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    hourly = page.locator('#repeats-body tr[data-key="hourly-report"] td')
    expect(hourly.nth(1)).to_have_text("report")
    expect(hourly.nth(2)).to_have_text("every 1h 0m")
    expect(hourly.nth(3)).to_contain_text("in ")
    nightly = page.locator('#repeats-body tr[data-key="nightly"] td')
    expect(nightly.nth(2)).to_have_text("cron 30 3 * * * (Europe/Paris)")
    assert page.url.endswith("?view=repeats")
    nightly.nth(5).locator("button").click()
    accept(page, "Stop repeatable job nightly?")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    assert [r["name"] for r in queue.repeats()] == ["hourly-report"]
    page.reload()  # the view is in the URL
    expect(page.locator('[data-view-pane="repeats"]')).to_be_visible()
    expect(rows).to_have_count(1, timeout=WAIT_MS)

    # The form adds one; a bad cron is refused with the server's message and adds nothing.
    page.fill("#r-type", "digest")
    page.select_option("#r-kind", "cron")
    page.fill("#r-when", "not a cron")
    page.click('#repeat-form button[type="submit"]')
    expect(page.locator(".toast.bad")).to_contain_text("cron", timeout=WAIT_MS)
    assert len(queue.repeats()) == 1
    refused = "Failed to load resource: the server responded with a status of 400 (Bad Request)"
    assert errors == [refused]  # the refused POST, as the browser logs it
    errors.clear()
    page.fill("#r-when", "*/5 * * * *")
    page.fill("#r-tz", "Europe/Paris")
    page.fill("#r-name", "digest-5m")
    page.fill("#r-data", '{"scope": "sales"}')
    page.click('#repeat-form button[type="submit"]')
    expect(rows).to_have_count(2, timeout=WAIT_MS)
    added = {r["name"]: r for r in queue.repeats()}["digest-5m"]
    assert (added["type"], added["cron"], added["tz"], added["data"]) == (
        "digest", "*/5 * * * *", "Europe/Paris", {"scope": "sales"})
    expect(page.locator('#repeats-body tr[data-key="digest-5m"] td').nth(2)).to_have_text(
        "cron */5 * * * * (Europe/Paris)")
    assert errors == []


def test_dependency_links_open_the_other_jobs(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    parent = queue.create("build", {"title": "build"}).save().id
    other = queue.create("build", {"title": "lint"}).save().id
    child = queue.create("deploy", {"title": "deploy"}).depends_on([parent, other]).save().id
    page.goto(base + f"delayed?job={child}")
    links = page.locator("#d-depends .job-link")
    expect(links).to_have_text([f"#{parent}", f"#{other}"], timeout=WAIT_MS)
    expect(page.locator("#d-dependents-box")).to_be_hidden()
    links.first.click()
    expect(page.locator("#d-id")).to_have_text(f"#{parent}")
    expect(page.locator("#d-dependents .job-link")).to_have_text([f"#{child}"])
    page.locator("#d-dependents .job-link").click()
    expect(page.locator("#d-id")).to_have_text(f"#{child}")
    assert errors == []


def flaky(job: Any) -> None:
    time.sleep(0.05)
    if job.data["n"] % 3 == 0:
        raise ValueError("every third one fails")


def test_workers_view_and_activity_charts(dashboard: Any) -> None:
    from playwright.sync_api import expect

    queue, page, base, errors = dashboard
    for n in range(12):
        queue.create("email", {"n": n}).save()
    queue.configure_workers(**FAST_WORKERS)
    queue.process("email", 2, flaky)
    wait_until(lambda: queue.complete_count() == 8 and queue.failed_count() == 4)
    # The counts travel with the next heartbeats.
    wait_until(lambda: sum(m["completed"] for m in queue.activity(60)) == 8
               and sum(m["failed"] for m in queue.activity(60)) == 4)

    page.goto(base + "active?view=workers")
    rows = page.locator("#workers-body tr")
    expect(rows).to_have_count(1, timeout=WAIT_MS)
    cells = rows.first.locator("td")
    expect(cells.nth(1)).to_have_text(socket.gethostname())
    expect(cells.nth(2)).to_have_text(str(os.getpid()))
    expect(cells.nth(3)).to_have_text("email")
    expect(cells.nth(4)).to_have_text("0 / 2")
    expect(page.locator("#workers-summary")).to_have_text("1 worker, 0 of 2 slots busy")

    page.click('.view-link[data-view="activity"]')
    expect(page.locator("#activity-summary")).to_have_text(
        "8 completed, 4 failed in the last hour", timeout=WAIT_MS)
    # The bars add up to the counts; the latency lines have a point for each minute with runs.
    values = page.evaluate("""() => Object.fromEntries(["completed", "failed"].map((key) => [key,
        [...document.querySelectorAll('#chart-throughput [data-series="' + key + '"] rect')]
          .reduce((sum, rect) => sum + Number(rect.dataset.value), 0)]))""")
    assert values == {"completed": 8, "failed": 4}
    minutes_with_runs = sum(1 for m in queue.activity(60) if m["run_ms_avg"] is not None)
    assert minutes_with_runs >= 1
    for series in ("run", "wait"):
        expect(page.locator(f'#chart-latency [data-series="{series}"] circle')).to_have_count(
            sum(1 for m in queue.activity(60) if m[f"{series}_ms_avg"] is not None))
    expect(page.locator('#chart-latency [data-series="run"] path')).to_have_count(1)
    run_avg = [m["run_ms_avg"] for m in queue.activity(60) if m["run_ms_avg"] is not None]
    assert all(v >= 50 for v in run_avg)  # the handler sleeps 50 ms
    assert errors == []

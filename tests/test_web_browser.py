"""The dashboard in a real browser: Debian chromium driven by Playwright's Python package.

The app is served by uvicorn on a free port over the session's private redis-server; a real
worker (``queue.process``) moves jobs while the page is open. The test watches counts and
lists change, opens a job, changes a priority, restarts and removes jobs (each confirmed in
the page's dialog, each checked in Redis), checks that markup in job data stays text and
that rows are patched in place, and keeps a screenshot in tests/artifacts/."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from kueatomic import JobNotFound, Queue
from kueatomic.web import create_app

from .web_helpers import CHROMIUM, CHROMIUM_ARGS, serve

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
XSS_TITLE = '<img src=x onerror="window.__xss=1"><script>window.__xss=2</script>'
WAIT_MS = 15000


@pytest.fixture
def browser() -> Iterator[Any]:
    if not Path(CHROMIUM).exists():
        message = f"{CHROMIUM} is missing; install it with: apt-get install -y chromium"
        if os.environ.get("KUEATOMIC_REQUIRE_REDIS") == "1":  # set by .ci/run
            pytest.fail(message)
        pytest.skip(message)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                              args=CHROMIUM_ARGS)
        yield instance
        instance.close()


def slow_email(job: Any) -> dict[str, Any]:
    for step in range(1, 4):
        job.progress(step, 3)
        job.log("step %d", step)
        time.sleep(0.25)
    return {"sent": True}


def test_dashboard_follows_jobs_and_acts_on_them(browser: Any, real_redis_url: str) -> None:
    from playwright.sync_api import expect

    queue = Queue(redis=real_redis_url, disable_search=False)
    emails = [queue.create("email", {"title": f"email {n}", "to": f"u{n}@x"}).save().id
              for n in range(5)]
    xss_id = queue.create("email", {"title": XSS_TITLE, "body": XSS_TITLE}).save().id
    video_id = queue.create("video", {"title": "transcode clip.mp4"}).save().id
    broken_id = queue.create("video", {"title": "broken upload"}).save().set_state("failed").id

    app = create_app(real_redis_url, title="Browser test", disable_search=False,
                     poll_interval_ms=300)
    page_errors: list[str] = []
    try:
        with serve(app) as base:
            page = browser.new_page(viewport={"width": 1360, "height": 900})
            page.on("pageerror", lambda exc: page_errors.append(str(exc)))
            page.on("console", lambda msg: page_errors.append(msg.text) if msg.type == "error" else None)
            page.goto(base + "inactive")

            # Counts and the list, with markup in job data shown as text.
            expect(page.locator('[data-count="inactive"]')).to_have_text("7", timeout=WAIT_MS)
            expect(page.locator('[data-count="failed"]')).to_have_text("1")
            expect(page.locator("#job-list .job")).to_have_count(7)
            expect(page.locator(f'.job[data-id="{xss_id}"] .title')).to_have_text(XSS_TITLE)
            assert page.locator("#job-list img, #job-list script").count() == 0
            expect(page.locator(".type-list li")).to_have_count(2)
            expect(page.locator("#live")).to_have_text("live")

            # A row that does not change keeps its element across polls (no re-render).
            page.evaluate(f'document.querySelector(\'.job[data-id="{video_id}"]\').__kept = 1')

            # A real worker moves the email jobs; the page follows.
            queue.configure_workers(claim_batch=1)
            queue.process("email", 1, slow_email)
            expect(page.locator('[data-count="active"]')).to_have_text("1", timeout=WAIT_MS)
            # (functions, not expression strings: the page's CSP forbids eval)
            page.wait_for_function(
                "() => Number(document.querySelector('[data-count=\"complete\"]').textContent) >= 2",
                timeout=WAIT_MS)
            page.wait_for_function(
                "() => document.querySelectorAll('#job-list .job').length < 7", timeout=WAIT_MS)
            assert page.evaluate(
                f'document.querySelector(\'.job[data-id="{video_id}"]\').__kept') == 1

            # Open a finished job: its card shows the fields, the result and the log.
            page.click('.state[data-state="complete"]')
            first_done = page.locator("#job-list .job").first
            first_done.click()
            expect(page.locator("#detail")).to_be_visible()
            expect(page.locator("#d-state")).to_have_text("Complete")
            expect(page.locator("#d-log li")).to_have_count(3)
            expect(page.locator("#d-result")).to_contain_text('"sent": true')
            expect(page.locator("#d-fields")).to_contain_text("Duration")
            expect(page.locator("#d-progress")).to_have_text("100%")

            # The XSS job's card, after the worker ran it: still text.
            page.goto(base + f"complete?job={xss_id}")
            expect(page.locator("#d-title")).to_have_text(XSS_TITLE, timeout=WAIT_MS)
            expect(page.locator("#d-data")).to_contain_text("onerror")
            assert page.locator("#detail img, #detail script").count() == 0

            # Change a priority: confirmed in the dialog, shown at once, written to Redis.
            page.click('.state[data-state="inactive"]')
            page.locator(f'.job[data-id="{video_id}"]').click()
            expect(page.locator("#d-id")).to_have_text(f"#{video_id}")
            page.select_option("#a-priority-value", "critical")
            page.click("#a-priority")
            expect(page.locator("#confirm")).to_be_visible()
            expect(page.locator("#confirm-text")).to_contain_text("critical (-15)")
            page.click("#confirm-ok")
            expect(page.locator("#d-priority")).to_have_text("critical (-15)")
            expect(page.locator(f'.job[data-id="{video_id}"] .chip.priority')).to_have_text(
                "critical (-15)")
            assert queue.get_job(video_id).priority_value == -15

            # Remove: cancelling keeps the job; confirming removes it from the page and Redis.
            page.click("#a-remove")
            page.click('#confirm button[value="cancel"]')
            expect(page.locator("#confirm")).to_be_hidden()
            assert queue.get_job(video_id).id == video_id
            page.click("#a-remove")
            page.click("#confirm-ok")
            expect(page.locator(f'.job[data-id="{video_id}"]')).to_have_count(0)
            expect(page.locator("#detail")).to_be_hidden()
            with pytest.raises(JobNotFound):
                queue.get_job(video_id)

            # Restart a failed job: a same-origin PUT job/:id/state/inactive, which the
            # guard lets through (not Kue's GET /inactive/:id).
            page.click('.state[data-state="failed"]')
            page.locator(f'.job[data-id="{broken_id}"]').click()
            page.click("#a-restart")
            with page.expect_response(
                    lambda r: r.url.endswith(f"/job/{broken_id}/state/inactive")) as restarted:
                page.click("#confirm-ok")
            assert restarted.value.request.method == "PUT" and restarted.value.status == 200
            expect(page.locator("#d-state")).to_have_text("Queued")
            expect(page.locator(f'.job[data-id="{broken_id}"]')).to_have_count(0)
            assert queue.get_job(broken_id).state == "inactive"
            expect(page.locator('[data-count="failed"]')).to_have_text("0", timeout=WAIT_MS)

            # Search (enabled here) lists the matching jobs, with their state.
            page.fill("#search", "broken upload")
            expect(page.locator("#job-list .job")).to_have_count(1, timeout=WAIT_MS)
            expect(page.locator(f'.job[data-id="{broken_id}"] .state-chip')).to_have_text("Queued")
            page.fill("#search", "")

            # Every email done; the dashboard says so.
            expect(page.locator('[data-count="complete"]')).to_have_text(str(len(emails) + 1),
                                                                       timeout=WAIT_MS)
            page.click('.state[data-state="complete"]')
            expect(page.locator("#job-list .job")).to_have_count(len(emails) + 1, timeout=WAIT_MS)
            page.locator("#job-list .job").first.click()
            expect(page.locator("#d-log li")).to_have_count(3)
            ARTIFACTS.mkdir(exist_ok=True)
            page.screenshot(path=str(ARTIFACTS / "dashboard.png"), full_page=True)
            assert page.evaluate("window.__xss") is None
            assert page_errors == []
    finally:
        queue.shutdown(0)
        queue.close()


@pytest.mark.parametrize("layout", ["one redis", "cluster", "sharded over a cluster"])
def test_dashboard_pages_filters_and_sorts(browser: Any, layout: str,
                                           request: pytest.FixtureRequest) -> None:
    """The same pages and order on one Redis, on a cluster ({dash}: one slot) and for a
    queue sharded over 4 slots of the cluster (merged lists)."""
    from playwright.sync_api import expect

    if layout == "one redis":
        queue = Queue(redis=request.getfixturevalue("real_redis_url"))
    elif layout == "cluster":
        queue = Queue("{dash}", redis=request.getfixturevalue("cluster_url"))
    else:
        queue = Queue("dash", redis=request.getfixturevalue("cluster_url"), shards=4)
    for n in range(25):
        queue.create("email", {"title": f"email {n}"}).save()
    for n in range(3):
        queue.create("video", {"title": f"video {n}"}).save()
    try:
        with serve(create_app(queue)) as base:
            page = browser.new_page(viewport={"width": 1200, "height": 700})
            page.goto(base + "inactive")
            expect(page.locator("#search")).to_be_disabled()
            expect(page.locator("#search-off")).to_have_text("Search is disabled on this queue")
            expect(page.locator("#job-list .job")).to_have_count(20, timeout=WAIT_MS)
            expect(page.locator("#list-summary")).to_have_text("showing 20 of 28")
            page.locator("#list-end").scroll_into_view_if_needed()  # infinite scroll
            expect(page.locator("#job-list .job")).to_have_count(28, timeout=WAIT_MS)
            expect(page.locator("#job-list .job").first).to_have_attribute("data-id", "1")
            page.select_option("#sort", "desc")
            expect(page.locator("#job-list .job").first).to_have_attribute("data-id", "28")
            page.select_option("#type-filter", "video")
            expect(page.locator("#job-list .job")).to_have_count(3, timeout=WAIT_MS)
            expect(page.locator("#list-title")).to_have_text("Queued · video")
            assert page.url.endswith("inactive?type=video&sort=desc")
            page.reload()  # the view is in the URL
            expect(page.locator("#job-list .job")).to_have_count(3, timeout=WAIT_MS)
            expect(page.locator("#job-list .job").first).to_have_attribute("data-id", "28")
    finally:
        queue.close()


@contextmanager
def attacker_site(html: str) -> Iterator[int]:
    """Another site: a plain HTTP server on a port of its own serving ``html`` at ``/``."""
    body = html.encode()

    class Page(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


def recording(app: Any, seen: list[tuple[str, str, int]]) -> Any:
    """``app``, noting (method, path, status) of every HTTP answer it gives."""
    async def wrapped(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await app(scope, receive, send)
            return

        async def noting(message: Any) -> None:
            if message["type"] == "http.response.start":
                seen.append((scope["method"], scope["path"], message["status"]))
            await send(message)

        await app(scope, receive, noting)
    return wrapped


def test_other_sites_and_rebound_names_change_nothing(real_redis_url: str) -> None:
    """A page on another site fires at the dashboard every state change a browser lets it
    send without a CORS preflight; a rebinding DNS name (evil.example mapped to 127.0.0.1 in
    the browser's resolver) cannot even load the page. The server refuses them all (seen on
    its side: the browser hides the answers from the other site) and nothing changes."""
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing; install it with: apt-get install -y chromium")
    from playwright.sync_api import sync_playwright

    queue = Queue(redis=real_redis_url)
    done_id = queue.create("email", {"title": "sent"}).save().set_state("complete").id
    seen: list[tuple[str, str, int]] = []
    try:
        with serve(recording(create_app(queue), seen)) as base, \
                sync_playwright() as playwright:
            port = int(base.rstrip("/").rsplit(":", 1)[1])
            evil = f"""<!doctype html><title>evil</title>
<img src="{base}inactive/{done_id}">
<iframe name="sink"></iframe>
<form id="f" method="POST" action="{base}job" enctype="text/plain" target="sink">
<input name='{{"type":"evil","x":"' value='"}}'></form>
<script>
fetch("{base}job", {{method: "POST", mode: "no-cors", body: '{{"type":"evil"}}',
                     headers: {{"Content-Type": "text/plain"}}}});
fetch("{base}job/{done_id}/state/inactive", {{method: "PUT"}}).catch(() => {{}});
fetch("{base}job/{done_id}", {{method: "DELETE"}}).catch(() => {{}});
document.getElementById("f").submit();
</script>"""
            browser = playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True,
                args=[*CHROMIUM_ARGS, "--host-resolver-rules=MAP evil.example 127.0.0.1"])
            try:
                with attacker_site(evil) as attacker_port:
                    page = browser.new_page()
                    page.goto(f"http://localhost:{attacker_port}/")
                    deadline = time.monotonic() + 10
                    while len(seen) < 5 and time.monotonic() < deadline:
                        time.sleep(0.05)
                    page.wait_for_timeout(300)
                    assert sorted(seen) == sorted([
                        ("GET", f"/inactive/{done_id}", 403), ("POST", "/job", 403),
                        ("POST", "/job", 403),
                        # PUT and DELETE need a CORS preflight, which the app never grants.
                        ("OPTIONS", f"/job/{done_id}/state/inactive", 405),
                        ("OPTIONS", f"/job/{done_id}", 405)])

                    # The page itself is refused: no script of this server's runs under the
                    # rebound name, and the answer's CSP lets nothing load either.
                    rebound = browser.new_page()
                    response = rebound.goto(f"http://evil.example:{port}/")
                    assert response is not None and response.status == 400
                    assert "is not allowed" in response.text()
                    assert seen[-1] == ("GET", "/", 400)
            finally:
                browser.close()
        job = queue.get_job(done_id)
        assert job.state == "complete" and queue.inactive_count() == 0
        assert queue.types() == ["email"]
    finally:
        queue.close()

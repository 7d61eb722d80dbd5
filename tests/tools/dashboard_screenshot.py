"""Make the README's dashboard screenshots: a private redis-server, jobs of each kind (some
failing with a real traceback, one waiting for another), repeatable jobs, a paused type,
workers running for a few minutes so the activity charts have data, and the dashboard in
headless Debian chromium. Writes docs/dashboard-{overview,failed-card,workers,charts,
repeats,phone,banner}.png (the banner last: it stops the redis-server).

    .venv/bin/python -m tests.tools.dashboard_screenshot [out_dir] [minutes]
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, sync_playwright

from kueatomic import Queue
from kueatomic.web import create_app
from tests.redis_server import RedisServer
from tests.web_helpers import CHROMIUM, CHROMIUM_ARGS, serve

TITLES = ["welcome email for tj", "password reset for ana", "weekly digest #42",
          "invoice 2024-118 to acme", "receipt for order 7731", "reminder: trial ends"]
WIDE = {"width": 1360, "height": 820}
PHONE = {"width": 390, "height": 844}


def populate(queue: Queue, rng: random.Random, count: int) -> None:
    for n in range(count):
        queue.create("email", {"title": TITLES[n % len(TITLES)], "to": f"user{n}@example.com"}) \
            .priority(rng.choice(["normal", "normal", "high", "low", "critical"])).attempts(2).save()
    for n in range(max(1, count // 4)):
        queue.create("video", {"title": f"transcode upload {900 + n}.mp4", "width": 1080}) \
            .priority("medium").save()


def email(job: Any) -> dict[str, Any]:
    for step in range(1, 4):
        job.progress(step, 3, {"stage": step})
        job.log("step %d of 3 for %s", step, job.data.get("to", "?"))
        time.sleep(random.uniform(0.1, 0.5))
    if random.random() < 0.15:
        raise ConnectionError(f"SMTP server refused {job.data.get('to')}: 421 too many connections")
    return {"sent": True}


def transcode(job: Any) -> None:
    job.log("ffmpeg -i upload.mp4 -vf scale=-2:1080 out.mp4")
    time.sleep(0.3)
    raise RuntimeError("ffmpeg exited with status 1: moov atom not found\n"
                       "(the upload is truncated; ask the user to upload it again)")


def shoot(page: Page, path: Path) -> None:
    page.wait_for_timeout(800)
    page.screenshot(path=str(path))
    print(f"{path}: {path.stat().st_size // 1024} KB")


def main(out_dir: str, minutes: float) -> None:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    server = RedisServer().start()
    queue = Queue(redis=server.url)
    rng = random.Random(7)
    try:
        populate(queue, rng, 40)
        build = queue.create("build", {"title": "build release 2.4.0"}).save()
        queue.create("deploy", {"title": "deploy 2.4.0 to production"}).depends_on([build.id]).save()
        queue.create("report", {"title": "monthly report"}).delay(3_600_000).save()
        queue.repeat("report", every=3_600_000, name="hourly-report", data={"scope": "sales"})
        queue.repeat("cleanup", cron="30 3 * * *", tz="Europe/Paris", name="nightly-cleanup")
        queue.pause_type("report")
        queue.configure_workers(claim_batch=1, heartbeat_interval_ms=1000)
        queue.process("email", 3, email)
        queue.process("video", 1, transcode)
        # Load that changes from minute to minute, so the charts show a shape.
        deadline = time.monotonic() + minutes * 60
        while time.monotonic() < deadline:
            populate(queue, rng, rng.randint(2, 12))
            time.sleep(10)
        populate(queue, rng, 40)  # a backlog for the overview: queued jobs and active ones
        time.sleep(2)
        with serve(create_app(server.url, title="Kue")) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport=WIDE, device_scale_factor=1)
            active = page.context.request.get(base + "jobs/active/0..0").json()
            page.goto(base + "inactive" + (f"?job={active[0]['id']}" if active else ""))
            page.wait_for_selector("#job-list .job")
            shoot(page, out / "dashboard-overview.png")

            failed = page.context.request.get(base + "jobs/video/failed/0..0").json()[0]["id"]
            page.goto(base + f"failed?job={failed}")
            page.wait_for_selector("#detail:not([hidden]) #d-error")
            shoot(page, out / "dashboard-failed-card.png")

            for view in ("workers", "activity", "repeats"):
                page.goto(base + f"active?view={view}")
                page.wait_for_selector(f'[data-view-pane="{view}"]:not([hidden])')
                name = "charts" if view == "activity" else view
                if view == "activity":
                    page.wait_for_selector("#chart-throughput rect")
                shoot(page, out / f"dashboard-{name}.png")

            phone = browser.new_page(viewport=PHONE, device_scale_factor=1)
            phone.goto(base + "failed")
            phone.wait_for_selector("#job-list .job")
            shoot(phone, out / "dashboard-phone.png")

            queue.shutdown(0)
            server.stop()
            page.goto(base + "inactive")
            page.wait_for_selector("#outage:not([hidden])")
            shoot(page, out / "dashboard-banner.png")
            browser.close()
    finally:
        queue.shutdown(0)
        queue.close()
        server.cleanup()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/artifacts",
         float(sys.argv[2]) if len(sys.argv) > 2 else 3.0)

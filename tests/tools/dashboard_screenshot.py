"""Make the README's dashboard screenshot: a private redis-server, a few jobs of each kind,
a worker running, and the dashboard in headless Debian chromium.

    /work/venv/bin/python -m tests.tools.dashboard_screenshot docs/dashboard.png
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path
from typing import Any

from playwright.sync_api import sync_playwright

from kueatomic import Queue
from kueatomic.web import create_app
from tests.redis_server import RedisServer
from tests.web_helpers import CHROMIUM, CHROMIUM_ARGS, serve

TITLES = ["welcome email for tj", "password reset for ana", "weekly digest #42",
          "invoice 2024-118 to acme", "receipt for order 7731", "reminder: trial ends"]


def populate(queue: Queue) -> None:
    rng = random.Random(7)
    for n in range(24):
        queue.create("email", {"title": TITLES[n % len(TITLES)], "to": f"user{n}@example.com"}) \
            .priority(rng.choice(["normal", "normal", "high", "low", "critical"])).attempts(3).save()
    for n in range(6):
        queue.create("video", {"title": f"transcode upload {900 + n}.mp4", "width": 1080}) \
            .priority("medium").save()
    for n in range(3):
        queue.create("report", {"title": f"monthly report {n + 1}"}).delay(3_600_000).save()
    for n in range(2):
        job = queue.create("video", {"title": f"thumbnail {n + 1}"}).save()
        job.log("ffmpeg exited with status 1")
        job.set_state("failed")


def handler(job: Any) -> dict[str, Any]:
    for step in range(1, 5):
        job.progress(step, 4, {"stage": step})
        job.log("step %d of %d for %s", step, 4, job.data.get("to", "?"))
        time.sleep(0.6)
    return {"sent": True}


def main(out: str) -> None:
    server = RedisServer().start()
    queue = Queue(redis=server.url)
    try:
        populate(queue)
        queue.configure_workers(claim_batch=1)
        queue.process("email", 2, handler)
        time.sleep(4)
        with serve(create_app(server.url, title="Kue")) as base, sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": 1360, "height": 820}, device_scale_factor=1)
            active = page.context.request.get(base + "jobs/active/0..0").json()[0]["id"]
            page.goto(base + f"inactive?job={active}")
            page.wait_for_selector("#job-list .job")
            page.wait_for_selector("#detail:not([hidden]) #d-log li")
            time.sleep(1.5)
            Path(out).parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=out)
            browser.close()
    finally:
        queue.shutdown(0)
        queue.close()
        server.cleanup()


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "tests/artifacts/dashboard-readme.png")

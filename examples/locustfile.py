"""A locust user creating single jobs through Kue's JSON API (POST /job).

    kueatomic dashboard -r redis://127.0.0.1:6380/0 --port 3000 &    # or any app serving create_app
    locust -f examples/locustfile.py --headless -u 20 -r 5 -t 30s --host http://127.0.0.1:3000

Each request is one Lua script call on the server. For the full mix (Python producers, bulk
creates, a worker, API reads) and a private Redis started for you, see bench/locustfile.py
and bench/locust_run.py.
"""

from __future__ import annotations

import random
import time
from typing import Any

from locust import HttpUser, between, task

JOB_TYPE = "locust"
PRIORITIES = ["low", "normal", "normal", "normal", "medium", "high", "critical"]


def payload() -> dict[str, Any]:
    return {"title": f"locust job {random.randrange(10**6)}", "t": time.time()}


class ApiProducerUser(HttpUser):
    """A service enqueueing one job per request over HTTP."""

    wait_time = between(0.01, 0.05)

    @task
    def create_job(self) -> None:
        with self.client.post("/job", json={"type": JOB_TYPE, "data": payload(),
                                            "options": {"priority": random.choice(PRIORITIES),
                                                        "attempts": 2}},
                              name="POST /job", catch_response=True) as response:
            if response.status_code != 200 or "id" not in response.json():
                response.failure(f"{response.status_code}: {response.text[:200]}")

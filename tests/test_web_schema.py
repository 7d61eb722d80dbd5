"""schemathesis against /openapi.json, in the suite: generated requests for every operation
(a bounded number of examples each) must get no 5xx and responses that conform to the
document (status codes, content types, body schemas). The app's guard is on: requests come
as a same-origin page's would (schemathesis's Host, allowed, and a matching Origin)."""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, assume, given, settings
from schemathesis.generation.modes import GenerationMode

from kueatomic import Queue
from kueatomic.web import create_app
from kueatomic.web.openapi import document

EXAMPLES_PER_OPERATION = 20
HOST = "testserver"  # the Host schemathesis's ASGI client sends
SAME_ORIGIN = {"Origin": f"http://{HOST}", "Sec-Fetch-Site": "same-origin"}
OPERATIONS = [(path, method) for path, item in document("Kue", False)["paths"].items()
              for method in item]


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE],
                         ids=["valid", "invalid"])
@pytest.mark.parametrize("path, method", OPERATIONS, ids=[f"{m.upper()} {p}" for p, m in OPERATIONS])
def test_api_matches_its_openapi_document(make_queue: Any, path: str, method: str,
                                          mode: GenerationMode) -> None:
    """Valid requests are accepted and answered as documented; invalid ones are refused with
    a documented 4xx, never a 5xx."""
    queue: Queue = make_queue(disable_search=False)
    # A few jobs, so generated ids and ranges hit existing jobs as well as missing ones.
    for n in range(1, 6):
        queue.create("email" if n % 2 else "video", {"title": f"job {n}"}).save()
    queue.get_job(2).set_state("failed")
    schema = schemathesis.openapi.from_asgi("/openapi.json",
                                           create_app(queue, allowed_hosts=[HOST]))
    operation = schema[path][method]
    if mode is GenerationMode.NEGATIVE and not (operation.path_parameters or operation.query
                                                 or operation.body):
        pytest.skip("no parameters or body to make invalid")

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    def check(case: Any) -> None:
        if mode is GenerationMode.POSITIVE:
            # The document says a dependency must exist (else 400), which no schema can say.
            assume(not names_missing_dependencies(case.body, existing=range(1, 6)))
        case.call_and_validate(headers=SAME_ORIGIN)

    check()


def names_missing_dependencies(body: Any, existing: range) -> bool:
    """Whether a generated body's job options depend on a job that does not exist."""
    if isinstance(body, list):
        return any(names_missing_dependencies(item, existing) for item in body)
    if not isinstance(body, dict):
        return False
    for key in ("dependsOn", "depends_on"):
        ids = body.get(key)
        if isinstance(ids, list) and any(i not in existing for i in ids):
            return True
    return any(names_missing_dependencies(v, existing) for v in body.values())

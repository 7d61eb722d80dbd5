"""Kue's JSON API (docs/redis-layout.md §7), route by route, with Kue's bodies.

Where Kue answers an error with status 200, these handlers raise the typed error instead and
the app's one exception handler answers ``{"error": message}`` with the error's
``http_status`` (see the README's list of deliberate differences).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from ..codec import MAX_MS
from ..errors import InvalidArgument, KueError
from ..presence import parse_minutes
from ..states import parse_state
from .body import is_empty, read_json
from .errors import RepeatNotFound, SearchDisabled
from .gateway import Gateway, job_number, parse_api_priority, parse_bound, parse_order
from .responses import KueJSONResponse


def _gateway(request: Request) -> Gateway:
    return request.app.state.kue  # type: ignore[no-any-return]


def _json(body: Any, status_code: int = 200) -> Response:
    return KueJSONResponse(body, status_code=status_code)


async def stats(request: Request) -> Response:
    return _json(await _gateway(request).stats())


async def type_stats(request: Request) -> Response:
    """kueatomic's addition: every type's counts per state in one request (the dashboard's
    sidebar), instead of one ``/jobs/:type/:state/stats`` call per type and state."""
    return _json(await _gateway(request).type_stats())


async def workers(request: Request) -> Response:
    """kueatomic's addition: the live workers (``queue.workers()``, kueatomic/presence.py)."""
    return _json(await _gateway(request).workers())


async def activity(request: Request) -> Response:
    """kueatomic's addition: the last ``?minutes=`` (1..1440, default 60) minutes' counts,
    oldest first (``queue.activity()``); other values are a 400."""
    minutes = parse_minutes(request.query_params.get("minutes"))
    return _json(await _gateway(request).activity(minutes))


async def search(request: Request) -> Response:
    gateway = _gateway(request)
    if not gateway.search_enabled:
        raise SearchDisabled(
            "search is disabled on this queue; create it with disable_search=False "
            "(kueatomic dashboard --search) and index jobs with search enabled"
        )
    return _json(await gateway.search(request.query_params.get("q", "")))


def _range_args(request: Request) -> tuple[int, int, str]:
    params = request.path_params
    return parse_bound(params["start"]), parse_bound(params["stop"]), parse_order(params.get("order"))


async def job_range(request: Request) -> Response:
    gateway = _gateway(request)
    return _json(await gateway.range(None, None, *_range_args(request)))


async def job_type_range(request: Request) -> Response:
    gateway = _gateway(request)
    params = request.path_params
    return _json(await gateway.range(parse_state(params["state"]), params["type"],
                                     *_range_args(request)))


async def job_type_state_stats(request: Request) -> Response:
    params = request.path_params
    return _json({"count": await _gateway(request).count(params["type"], params["state"])})


async def job_state_range(request: Request) -> Response:
    gateway = _gateway(request)
    state = parse_state(request.path_params["state"])
    return _json(await gateway.range(state, None, *_range_args(request)))


async def types(request: Request) -> Response:
    return _json(await _gateway(request).types())


async def job(request: Request) -> Response:
    text = request.path_params["id"]
    return _json(await _gateway(request).job(job_number(text), text))


async def job_log(request: Request) -> Response:
    text = request.path_params["id"]
    return _json(await _gateway(request).log(job_number(text), text))


async def update_state(request: Request) -> Response:
    job_id = job_number(request.path_params["id"])
    await _gateway(request).set_state(job_id, parse_state(request.path_params["state"]))
    return _json({"message": "updated state"})


async def update_priority(request: Request) -> Response:
    priority = parse_api_priority(request.path_params["priority"])
    job_id = job_number(request.path_params["id"])
    await _gateway(request).set_priority(job_id, priority)
    return _json({"message": "updated priority"})


async def remove(request: Request) -> Response:
    text = request.path_params["id"]
    await _gateway(request).remove(job_number(text))
    return _json({"message": f"job {text} removed"})


async def inactive(request: Request) -> Response:
    """Kue's "restart": move the job to inactive (queued) again."""
    text = request.path_params["id"]
    await _gateway(request).set_state(job_number(text), "inactive")
    return _json({"message": f"job {text} inactive"})


async def create_job(request: Request) -> Response:
    """One job (an object) or many (an array, answered in order with per-element errors;
    the status is the first error's, as Kue does). Valid jobs are created in one round trip."""
    body = await read_json(request, request.app.state.max_body_bytes)
    if is_empty(body):
        return Response(status_code=204)
    gateway = _gateway(request)
    if not isinstance(body, list):
        (outcome,) = await gateway.create([body])
        if isinstance(outcome, KueError):
            raise outcome
        return _json({"message": "job created", "id": outcome})
    outcomes = await gateway.create(body)
    answer: list[dict[str, Any]] = []
    status = 200
    for outcome in outcomes:
        if isinstance(outcome, KueError):
            answer.append({"error": str(outcome)})
            if status == 200:
                status = outcome.http_status
        else:
            answer.append({"message": "job created", "id": outcome})
    return _json(answer, status)


# --- operator actions (kueatomic's additions: bulk retry and clean, pausing a type, cancel,
# repeatable jobs); each is one engine plan (kueatomic/lifecycle.py, kueatomic/repeats.py),
# whose own checks answer bad values with InvalidArgument (400).

async def _options(request: Request, allowed: tuple[str, ...]) -> dict[str, Any]:
    """The body as an object with only ``allowed`` keys; an empty body is ``{}``."""
    body = await read_json(request, request.app.state.max_body_bytes)
    if is_empty(body):
        return {}
    if not isinstance(body, dict):
        raise InvalidArgument(f"the body must be a JSON object, not {type(body).__name__}")
    unknown = sorted(set(body) - set(allowed))
    if unknown:
        raise InvalidArgument(f"unknown fields {unknown}; this route takes {', '.join(allowed)}")
    return body


async def retry_failed(request: Request) -> Response:
    """Failed jobs (of ``type``, or of every type) back to inactive, ``limit`` at most."""
    body = await _options(request, ("type", "limit"))
    retried = await _gateway(request).retry_failed(body.get("type"), body.get("limit", 1000))
    return _json({"retried": retried})


async def clean(request: Request) -> Response:
    """Remove jobs in ``state`` that entered it at least ``older_than_ms`` ago."""
    body = await _options(request, ("state", "older_than_ms", "limit", "type"))
    if "state" not in body:
        raise InvalidArgument("clean needs a state: inactive, delayed, complete or failed")
    older = body.get("older_than_ms", 0)
    if isinstance(older, int) and older > MAX_MS:  # the engine checks the rest
        raise InvalidArgument(f"older_than_ms must be at most {MAX_MS}, not {older}")
    removed = await _gateway(request).clean(body["state"], older,
                                            body.get("limit", 1000), body.get("type"))
    return _json({"removed": removed})


def _paused_type(request: Request) -> str:
    job_type: str = request.path_params["type"]
    if ":" in job_type:  # create() refuses such a type, so no job of it can exist
        raise InvalidArgument(f"{job_type!r} is not a job type (types have no ':')")
    return job_type


async def pause_type(request: Request) -> Response:
    job_type = _paused_type(request)
    await _gateway(request).set_paused(job_type, True)
    return _json({"type": job_type, "paused": True})


async def resume_type(request: Request) -> Response:
    job_type = _paused_type(request)
    await _gateway(request).set_paused(job_type, False)
    return _json({"type": job_type, "paused": False})


async def paused_types(request: Request) -> Response:
    return _json(await _gateway(request).paused_types())


async def cancel(request: Request) -> Response:
    text = request.path_params["id"]
    job = await _gateway(request).cancel(job_number(text), text)
    return _json({"message": f"job {text} cancelled", "state": job.get("state")})


async def list_repeats(request: Request) -> Response:
    return _json(await _gateway(request).repeats())


REPEAT_FIELDS = ("name", "type", "every", "cron", "tz", "data", "options", "catch_up_ms")


async def add_repeat(request: Request) -> Response:
    body = await _options(request, REPEAT_FIELDS)
    nulls = [key for key in REPEAT_FIELDS if key != "data" and key in body and body[key] is None]
    if nulls:  # the document gives none of them null: leave a field out for its default
        raise InvalidArgument(f"{', '.join(nulls)} must not be null (leave it out instead)")
    if "type" not in body:
        raise InvalidArgument("a repeat needs a job type")
    args = {key: body[key] for key in REPEAT_FIELDS if key in body}
    return _json(await _gateway(request).repeat(args.pop("type"), **args))


async def remove_repeat(request: Request) -> Response:
    name = request.path_params["name"]
    if not await _gateway(request).remove_repeat(name):
        raise RepeatNotFound(f"no repeatable job named {name!r}")
    return _json({"message": f"repeat {name} removed"})


# Kue's registration order (docs/redis-layout.md §7); the first match wins, so /job/search and
# /job/types come before /job/{id}. A range is "<from>..<to>" inside one path segment.
ROUTES = [
    Route("/stats", stats, methods=["GET"]),
    Route("/stats/types", type_stats, methods=["GET"]),
    Route("/stats/activity", activity, methods=["GET"]),
    Route("/workers", workers, methods=["GET"]),
    Route("/job/search", search, methods=["GET"]),
    Route("/jobs/{start}..{stop}", job_range, methods=["GET"]),
    Route("/jobs/{start}..{stop}/{order}", job_range, methods=["GET"]),
    Route("/jobs/{type}/{state}/{start}..{stop}", job_type_range, methods=["GET"]),
    Route("/jobs/{type}/{state}/{start}..{stop}/{order}", job_type_range, methods=["GET"]),
    Route("/jobs/{type}/{state}/stats", job_type_state_stats, methods=["GET"]),
    Route("/jobs/{state}/{start}..{stop}", job_state_range, methods=["GET"]),
    Route("/jobs/{state}/{start}..{stop}/{order}", job_state_range, methods=["GET"]),
    Route("/job/types", types, methods=["GET"]),
    Route("/job/{id}", job, methods=["GET"]),
    Route("/job/{id}/log", job_log, methods=["GET"]),
    Route("/job/{id}/state/{state}", update_state, methods=["PUT"]),
    Route("/job/{id}/priority/{priority}", update_priority, methods=["PUT"]),
    Route("/job/{id}", remove, methods=["DELETE"]),
    Route("/job", create_job, methods=["POST"]),
    Route("/inactive/{id}", inactive, methods=["GET"]),
    Route("/jobs/failed/retry", retry_failed, methods=["POST"]),
    Route("/jobs/clean", clean, methods=["POST"]),
    Route("/types/paused", paused_types, methods=["GET"]),
    Route("/types/{type}/pause", pause_type, methods=["POST"]),
    Route("/types/{type}/resume", resume_type, methods=["POST"]),
    Route("/job/{id}/cancel", cancel, methods=["POST"]),
    Route("/repeats", list_repeats, methods=["GET"]),
    Route("/repeats", add_repeat, methods=["POST"]),
    Route("/repeats/{name:path}", remove_repeat, methods=["DELETE"]),
]
# Routes that change state on a safe method (Kue's restart): the guard (web/guard.py) holds
# them to the same-origin rule of unsafe methods.
STATE_CHANGING_GETS = [route for route in ROUTES
                       if isinstance(route, Route) and route.endpoint is inactive]

"""The OpenAPI 3.0 document of the JSON API, served at ``/openapi.json``.

It describes the bodies recorded from real Kue (docs/redis-layout.md §7) and kueatomic's status codes;
the test suite runs schemathesis against it, so a route that drifts from it fails a test.
"""

from __future__ import annotations

from typing import Any

from .. import __version__
from ..codec import MAX_MS
from ..states import MAX_PRIORITY, PRIORITIES, STATES
from .api import STATE_CHANGING_GETS

_REF = "#/components/schemas/"


def _ref(name: str) -> dict[str, str]:
    return {"$ref": _REF + name}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description,
            "content": {"application/json": {"schema": schema}}}


def _error(description: str) -> dict[str, Any]:
    return _json(_ref("Error"), description)


_SHARD_KEY = {"type": "string", "minLength": 1,
              "description": "on a sharded queue, jobs with the same key share a shard (and "
                             "keep their order); ignored by a queue of one layout"}
_SEARCH_KEYS = {"type": "array", "items": {"type": "string"},
                "description": "dotted paths into data to index for search"}
_TIMESTAMP = {"type": "string", "pattern": "^-?[0-9]+$", "description": "ms, as Redis holds it"}

_RETENTION = {
    "type": "object", "additionalProperties": False, "minProperties": 1,
    "description": "kueatomic addition: keep such jobs at most `age` ms, and the newest `count`",
    "properties": {"age": {"type": "integer", "minimum": 0, "maximum": MAX_MS},
                   "count": {"type": "integer", "minimum": 0, "maximum": MAX_MS}},
}
_REMOVE_ON_COMPLETE = {"anyOf": [{"not": {"type": "object"}}, _RETENTION],
                       "description": "truthy: remove the job once complete; or a retention policy"}
_REMOVE_ON_FAIL = {"anyOf": [{"type": "boolean"}, _RETENTION],
                   "description": "kueatomic addition: true removes the job once it failed for "
                                  "good; or a retention policy"}
_DEPENDS_ON = {"type": "array", "minItems": 1, "maxItems": 100, "uniqueItems": True,
               "items": {"type": "integer", "minimum": 1, "maximum": MAX_PRIORITY},
               "description": "kueatomic addition: ids of jobs that must complete first "
                              "(each must exist: else 400)"}

# Fields of the plain form: a number, "*" or "*/step" (a day of the month <= 28, so every
# expression matching has a tick soon).
_CRON_FIELDS = ("[1-5]?[0-9]", "(1?[0-9]|2[0-3])", "([1-9]|1[0-9]|2[0-8])", "([1-9]|1[0-2])",
                "[0-6]")
_CRON = "^" + " ".join(f"(\\*(/[1-9])?|{field})" for field in _CRON_FIELDS) + "$"


def _repeat_spec(schedule: str, schema: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["type", schedule],
        "additionalProperties": False,
        "properties": {
            "name": {"type": "string", "minLength": 1, "maxLength": 200,
                     "description": "default: from the type and schedule; the same name "
                                    "replaces the repeat"},
            "type": {"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[^:]+$"},
            schedule: schema,
            "tz": {"type": "string", "enum": ["UTC", "Europe/Paris", "America/New_York"],
                   "default": "UTC", "description": "an IANA time zone (any zoneinfo has)"},
            "data": {"description": "each job's data"},
            "options": {"type": "object", "additionalProperties": False,
                        "description": "job options",
                        "properties": {"priority": {"type": "integer", "minimum": -15,
                                                    "maximum": 15},
                                       "attempts": {"type": "integer", "minimum": 1,
                                                    "maximum": 100}}},
            "catch_up_ms": {"type": "integer", "minimum": 1000, "maximum": MAX_MS},
        },
    }


_SCHEMAS: dict[str, Any] = {
    "Error": {
        "type": "object",
        "required": ["error"],
        "properties": {"error": {"type": "string"}},
    },
    "Message": {
        "type": "object",
        "required": ["message"],
        "properties": {"message": {"type": "string"}},
    },
    "Created": {
        "type": "object",
        "required": ["message", "id"],
        "properties": {"message": {"type": "string", "enum": ["job created"]},
                       "id": {"type": "integer", "minimum": 1}},
    },
    "Stats": {
        "type": "object",
        "required": ["inactiveCount", "completeCount", "activeCount", "failedCount",
                     "delayedCount", "workTime"],
        "properties": {
            **{f"{s}Count": {"type": "integer", "minimum": 0} for s in STATES},
            "workTime": {"type": "integer", "nullable": True,
                         "description": "total ms spent by completed jobs; null before any"},
        },
    },
    "Attempts": {
        "type": "object",
        "required": ["made", "remaining", "max"],
        "properties": {"made": {"type": "integer"}, "remaining": {"type": "integer"},
                       "max": {"type": "integer"}},
    },
    "Job": {
        "type": "object",
        "description": "Kue's toJSON. Keys without a value are left out.",
        "required": ["id", "type", "data", "priority", "progress", "attempts"],
        "properties": {
            "id": {"anyOf": [{"type": "integer"}, {"type": "string"}],
                   "description": "a number in ranges, a string from GET /job/{id} (as Kue)"},
            "type": {"type": "string"},
            "data": {"description": "the job's data as given"},
            "result": {"description": "what the handler returned"},
            "priority": {"type": "integer"},
            "progress": {"anyOf": [{"type": "string", "pattern": "^[0-9]+$"},
                                   {"type": "integer", "enum": [0]}],
                         "description": "percent as a string; the number 0 when never set"},
            "progress_data": {},
            "state": {"type": "string"},
            "error": {"type": "string"},
            **{name: _TIMESTAMP for name in ("created_at", "promote_at", "updated_at",
                                             "failed_at", "started_at", "duration", "delay",
                                             "ttl")},
            "workerId": {"type": "string"},
            "attempts": _ref("Attempts"),
        },
    },
    "JobSpec": {
        "type": "object",
        "required": ["type"],
        "properties": {
            "type": {"type": "string", "minLength": 1, "pattern": "^[^:]+$"},
            "data": {"description": "any JSON value; {} when left out"},
            "options": {"nullable": True, "allOf": [_ref("JobOptions")]},
        },
    },
    "JobOptions": {
        "type": "object",
        "description": "Kue's job options; the snake_case spellings are accepted too.",
        "additionalProperties": False,
        "properties": {
            "attempts": {"anyOf": [{"type": "integer", "minimum": 1},
                                   {"type": "string", "pattern": "^\\s*0*[1-9][0-9]*\\s*$"}]},
            "priority": {"anyOf": [{"type": "integer", "minimum": -MAX_PRIORITY,
                                    "maximum": MAX_PRIORITY},
                                   {"type": "string", "enum": list(PRIORITIES)},
                                   {"type": "string", "pattern": "^\\s*-?[0-9]{1,15}\\s*$"}]},
            "delay": {"type": "number", "minimum": 0, "maximum": MAX_MS,
                      "description": "ms; the job starts delayed"},
            "ttl": {"type": "number", "minimum": 1, "maximum": MAX_MS,
                    "description": "ms a run may take"},
            "backoff": _ref("Backoff"),
            "searchKeys": _SEARCH_KEYS,
            "search_keys": _SEARCH_KEYS,
            "removeOnComplete": _REMOVE_ON_COMPLETE,
            "remove_on_complete": _REMOVE_ON_COMPLETE,
            "removeOnFail": _REMOVE_ON_FAIL,
            "remove_on_fail": _REMOVE_ON_FAIL,
            "unique": {"type": "string", "minLength": 1, "maxLength": 256,
                       "description": "kueatomic addition: while a job with this key is inactive, "
                                      "delayed or active, the same key answers that job"},
            "dependsOn": _DEPENDS_ON,
            "depends_on": _DEPENDS_ON,
            "shardKey": _SHARD_KEY,
            "shard_key": _SHARD_KEY,
        },
    },
    "Worker": {
        "type": "object",
        "description": "kueatomic addition: a live worker process (its heartbeat's entry)",
        "required": ["id", "host", "pid", "types", "slots", "busy", "started_at",
                     "heartbeat_at"],
        "properties": {
            "id": {"type": "string", "description": "kue:<host>:<pid>:<n>"},
            "host": {"type": "string"},
            "pid": {"type": "integer", "minimum": 0},
            "types": {"type": "array", "items": {"type": "string"}},
            "slots": {"type": "integer", "minimum": 0, "description": "jobs it may run at once"},
            "busy": {"type": "integer", "minimum": 0, "description": "handlers running"},
            **{name: {"type": "integer", "description": "ms, the Redis clock"}
               for name in ("started_at", "heartbeat_at")},
        },
    },
    "ActivityMinute": {
        "type": "object",
        "description": "kueatomic addition: what the workers counted in one minute",
        "required": ["minute", "completed", "failed", "wait_ms_avg", "run_ms_avg"],
        "properties": {
            "minute": {"type": "integer", "description": "the minute's start, ms"},
            "completed": {"type": "integer", "minimum": 0},
            "failed": {"type": "integer", "minimum": 0},
            "wait_ms_avg": {"type": "number", "nullable": True,
                            "description": "claimed jobs' mean wait; null without one"},
            "run_ms_avg": {"type": "number", "nullable": True,
                           "description": "handlers' mean duration; null without one"},
        },
    },
    "RepeatSpec": {
        "description": "kueatomic addition: queue.repeat's arguments; exactly one of every "
                       "and cron",
        "oneOf": [_repeat_spec("every", {
            "type": "integer", "minimum": 1000, "maximum": MAX_MS,
            "description": "ms; ticks at multiples of it since the epoch"}),
                  _repeat_spec("cron", {
            "type": "string", "pattern": _CRON,
            "description": "a cron expression (any that cronsim takes: ranges, lists, names; "
                           "the pattern shows the plain forms)"})],
    },
    "Repeat": {
        "type": "object",
        "description": "kueatomic addition: a repeatable job (times in ms)",
        "required": ["name", "type"],
        "properties": {
            "name": {"type": "string"}, "type": {"type": "string", "nullable": True},
            "every": {"type": "integer", "nullable": True},
            "cron": {"type": "string", "nullable": True},
            "tz": {"type": "string", "nullable": True},
            "data": {}, "options": {"type": "object", "nullable": True},
            **{name: {"type": "integer", "nullable": True}
               for name in ("catch_up_ms", "next_at", "last_at", "created_at")},
        },
    },
    "Backoff": {
        "nullable": True,
        "description": "retry delay: true (the job's own delay), {type, delay, maxDelay}, or "
                       "a Python function's stored name. JavaScript source is refused (Node "
                       "Kue would evaluate it).",
        "anyOf": [
            {"type": "boolean"},
            {"type": "object", "required": ["type", "name"], "additionalProperties": False,
             "properties": {"type": {"type": "string", "enum": ["function"]},
                            "name": {"type": "string",
                                     "pattern": "^[A-Za-z_][A-Za-z0-9_.]*:[A-Za-z0-9_.<>]+$"}}},
            {"type": "object", "additionalProperties": False,
             "properties": {
                 "type": {"type": "string", "enum": ["fixed", "exponential"]},
                 **{name: {"type": "number", "minimum": 0, "maximum": MAX_MS, "nullable": True}
                    for name in ("delay", "maxDelay")}}},
        ],
    },
}

_ID = {"name": "id", "in": "path", "required": True,
       "description": "a job id (Kue ids are decimal numbers)",
       "schema": {"type": "string", "pattern": "^[1-9][0-9]{0,15}$"}}
_STATE = {"name": "state", "in": "path", "required": True,
          "schema": {"type": "string", "enum": list(STATES)}}
_TYPE = {"name": "type", "in": "path", "required": True,
         "description": "a job type (any text; one without '/' can be reached)",
         "schema": {"type": "string", "minLength": 1}}
_ORDER = {"name": "order", "in": "path", "required": True,
          "schema": {"type": "string", "enum": ["asc", "desc"]}}
_RANGE = [{"name": name, "in": "path", "required": True,
           "description": "rank in the sorted set (0-based, inclusive, negative from the end)",
           "schema": {"type": "integer", "minimum": -(2**63 - 1), "maximum": 2**63 - 1}}
          for name in ("from", "to")]

_JOBS = _json({"type": "array", "items": _ref("Job")},
              "jobs of the slice (by score), sorted by id")
_BAD = _error("bad range, state or order")
_NO_ROUTE = _error("no such route (a type containing '/' cannot be addressed)")
_NOT_FOUND = _error("no job with this id")
_MESSAGE = _json(_ref("Message"), "done")
_BULK = {"type": "array", "items": {"anyOf": [_ref("Created"), _ref("Error")]}}


def _get(summary: str, responses: dict[str, Any], parameters: list[Any] | None = None,
         **extra: Any) -> dict[str, Any]:
    operation = {"summary": summary, "responses": responses, **extra}
    if parameters:
        operation["parameters"] = parameters
    return operation


def _ranges(prefix: str, params: list[Any], summary: str) -> dict[str, Any]:
    responses = {"200": _JOBS, "400": _BAD}
    if _TYPE in params:
        responses["404"] = _NO_ROUTE
    return {
        f"{prefix}/{{from}}..{{to}}": {"get": _get(summary, responses, params + _RANGE)},
        f"{prefix}/{{from}}..{{to}}/{{order}}": {
            "get": _get(summary + " (asc or desc by id)", responses, params + _RANGE + [_ORDER])},
    }


def _paths() -> dict[str, Any]:
    return {
        "/stats": {"get": _get("counts per state and total work time",
                               {"200": _json(_ref("Stats"), "counts")})},
        "/stats/types": {"get": _get(
            "kueatomic addition: counts per type and state",
            {"200": _json({"type": "object", "additionalProperties": {
                "type": "object", "additionalProperties": {"type": "integer"}}},
                "{type: {state: count}}")})},
        "/stats/activity": {"get": _get(
            "kueatomic addition: the workers' counts per minute, oldest first, zero-filled",
            {"200": _json({"type": "array", "items": _ref("ActivityMinute")}, "one per minute"),
             "400": _error("minutes is not an integer 1..1440")},
            [{"name": "minutes", "in": "query", "required": False,
              "schema": {"type": "integer", "minimum": 1, "maximum": 1440, "default": 60}}])},
        "/metrics": {"get": _get(
            "kueatomic addition: Prometheus metrics in the text exposition format (README, "
            "Metrics: the names and labels)",
            {"200": {"description": "the metrics",
                     "content": {"text/plain": {"schema": {"type": "string"}}}},
             "501": _error("prometheus_client is not installed (the metrics extra)")})},
        "/workers": {"get": _get(
            "kueatomic addition: the live workers",
            {"200": _json({"type": "array", "items": _ref("Worker")}, "the workers")})},
        "/job/search": {"get": _get(
            "ids of jobs whose indexed text has every query word (reds)",
            {"200": _json({"type": "array", "items": {"type": "string"}}, "ids, best first"),
             "409": _error("search is disabled on this queue")},
            [{"name": "q", "in": "query", "required": False, "schema": {"type": "string"}}])},
        **_ranges("/jobs", [], "jobs of every state"),
        **_ranges("/jobs/{type}/{state}", [_TYPE, _STATE], "jobs of one type in one state"),
        "/jobs/{type}/{state}/stats": {"get": _get(
            "how many jobs of a type are in a state",
            {"200": _json({"type": "object", "required": ["count"],
                           "properties": {"count": {"type": "integer", "minimum": 0}}},
                          "the count"), "400": _BAD, "404": _NO_ROUTE}, [_TYPE, _STATE])},
        **_ranges("/jobs/{state}", [_STATE], "jobs in one state"),
        "/job/types": {"get": _get("every job type ever saved",
                                   {"200": _json({"type": "array", "items": {"type": "string"}},
                                                 "types")})},
        "/job/{id}": {
            "get": _get("one job (id as a string, as Kue)",
                        {"200": _json(_ref("Job"), "the job"), "404": _NOT_FOUND}, [_ID]),
            "delete": _get("remove the job, its log and index entries",
                           {"200": _MESSAGE, "404": _NOT_FOUND}, [_ID]),
        },
        "/job/{id}/log": {"get": _get(
            "the job's log lines",
            {"200": _json({"type": "array", "items": {"type": "string"}}, "lines"),
             "404": _NOT_FOUND}, [_ID])},
        "/job/{id}/state/{state}": {"put": _get(
            "move the job to a state", {"200": _MESSAGE, "400": _BAD, "404": _NOT_FOUND},
            [_ID, _STATE])},
        "/job/{id}/priority/{priority}": {"put": _get(
            "change the job's priority (an integer or a name; lower runs first)",
            {"200": _MESSAGE, "400": _error("invalid priority"), "404": _NOT_FOUND},
            [_ID, {"name": "priority", "in": "path", "required": True,
                   "schema": {"type": "string",
                              "pattern": "^(-?[0-9]{1,15}|low|normal|medium|high|critical)$"}}])},
        "/job": {"post": _get(
            "create one job (an object) or many (an array, answered in order)",
            {"200": _json({"anyOf": [_ref("Created"), _BULK]}, "created"),
             "204": {"description": "an empty body, {} or []: nothing to do"},
             "400": _json({"anyOf": [_ref("Error"), _BULK]},
                          "a bad job (for an array: the first error's status)"),
             "413": _json({"anyOf": [_ref("Error"), _BULK]}, "body or job data too large"),
             "415": _error("the body is not declared as application/json")},
            requestBody={"required": False, "content": {"application/json": {"schema": {
                "anyOf": [_ref("JobSpec"), {"type": "array", "items": _ref("JobSpec")},
                          {"type": "object", "maxProperties": 0,
                           "description": "{}: nothing to create (204)"}]}}}})},
        "/inactive/{id}": {"get": _get("restart: move the job to inactive (queued)",
                                       {"200": _MESSAGE, "404": _NOT_FOUND}, [_ID])},
        **_operator_paths(),
    }


_TYPE_NAME = {"type": "string", "minLength": 1, "pattern": "^[^:]+$"}
_PAUSED_TYPE = {**_TYPE, "description": "a job type (one without '/' can be reached)",
                "schema": {"type": "string", "minLength": 1, "pattern": "^[^/:]+$"}}
_LIMIT = {"type": "integer", "minimum": 1, "default": 1000}
_BAD_BODY = _error("a bad field or value in the body")


def _body(schema: dict[str, Any], required: bool) -> dict[str, Any]:
    return {"required": required, "content": {"application/json": {"schema": schema}}}


def _counted(name: str, description: str) -> dict[str, Any]:
    return _json({"type": "object", "required": [name],
                  "properties": {name: {"type": "integer", "minimum": 0}}}, description)


def _paused(description: str) -> dict[str, Any]:
    return _json({"type": "object", "required": ["type", "paused"],
                  "properties": {"type": {"type": "string"}, "paused": {"type": "boolean"}}},
                 description)


def _operator_paths() -> dict[str, Any]:
    """kueatomic's additions for operators (the dashboard's bulk actions, pause, cancel and
    repeats)."""
    return {
        "/jobs/failed/retry": {"post": _get(
            "kueatomic addition: failed jobs (of a type, or all) back to inactive",
            {"200": _counted("retried", "how many went back"), "400": _BAD_BODY},
            requestBody=_body({"type": "object", "additionalProperties": False, "properties": {
                "type": _TYPE_NAME, "limit": _LIMIT}}, False))},
        "/jobs/clean": {"post": _get(
            "kueatomic addition: remove jobs that entered a state at least older_than_ms ago",
            {"200": _counted("removed", "how many were removed"), "400": _BAD_BODY},
            requestBody=_body({"type": "object", "required": ["state"],
                               "additionalProperties": False, "properties": {
                                   "state": {"type": "string", "enum": ["inactive", "delayed",
                                                                        "complete", "failed"]},
                                   "older_than_ms": {"type": "integer", "minimum": 0, "maximum": MAX_MS},
                                   "limit": _LIMIT, "type": _TYPE_NAME}}, True))},
        "/types/paused": {"get": _get(
            "kueatomic addition: the types no worker starts jobs of",
            {"200": _json({"type": "array", "items": {"type": "string"}}, "paused types")})},
        "/types/{type}/pause": {"post": _get(
            "kueatomic addition: no worker starts jobs of this type (running ones finish)",
            {"200": _paused("paused"), "400": _error("not a job type"), "404": _NO_ROUTE}, [_PAUSED_TYPE])},
        "/types/{type}/resume": {"post": _get(
            "kueatomic addition: workers start jobs of this type again",
            {"200": _paused("running"), "400": _error("not a job type"), "404": _NO_ROUTE},
            [_PAUSED_TYPE])},
        "/job/{id}/cancel": {"post": _get(
            "kueatomic addition: cancel a job that has not ended (it ends failed, "
            "\"Cancelled\", never retried)",
            {"200": _json({"type": "object", "required": ["message", "state"],
                           "properties": {"message": {"type": "string"},
                                          "state": {"type": "string"}}}, "cancelled"),
             "404": _NOT_FOUND, "409": _error("the job has already ended")}, [_ID])},
        "/repeats": {
            "get": _get("kueatomic addition: every repeatable job, by name",
                        {"200": _json({"type": "array", "items": _ref("Repeat")}, "repeats")}),
            "post": _get(
                "kueatomic addition: create (or replace, by name) a repeatable job",
                {"200": _json(_ref("Repeat"), "the repeat as listed"), "400": _BAD_BODY,
                 "413": _error("data too large")},
                requestBody=_body(_ref("RepeatSpec"), True)),
        },
        "/repeats/{name}": {"delete": _get(
            "kueatomic addition: stop a repeatable job (the jobs it made stay)",
            {"200": _MESSAGE, "404": _error("no repeat of this name")},
            [{"name": "name", "in": "path", "required": True,
              "schema": {"type": "string", "minLength": 1, "maxLength": 1000}}])},
    }


_HOST = "a Host header this server does not answer to (the DNS rebinding guard)"
_CROSS_SITE = _error("a state change that Origin or Sec-Fetch-Site says another site sent")
_NOT_JSON = _error("a body not declared as application/json")
_UNSAFE = ("post", "put", "delete", "patch")


def _guarded(paths: dict[str, Any]) -> dict[str, Any]:
    """The guard's refusals (web/guard.py) on every operation they can answer."""
    state_changing = {route.path for route in STATE_CHANGING_GETS}
    for path, item in paths.items():
        for method, operation in item.items():
            responses = operation["responses"] = dict(operation["responses"])  # may be shared
            if "400" in responses:
                responses["400"] = {**responses["400"], "description":
                                    f"{responses['400']['description']}; or {_HOST}"}
            else:
                responses["400"] = _error(_HOST)
            if method in _UNSAFE or path in state_changing:
                responses.setdefault("403", _CROSS_SITE)
            if method in _UNSAFE:
                responses.setdefault("415", _NOT_JSON)
    return paths


def document(title: str, basic_auth: bool) -> dict[str, Any]:
    """The document for one app (its title; a basic-auth requirement when it has one)."""
    doc: dict[str, Any] = {
        "openapi": "3.0.3",
        "info": {"title": f"{title} JSON API", "version": __version__,
                 "description": "Kue 0.11.6's JSON API served by kueatomic. Errors answer "
                                "{\"error\": message} with a real status code."},
        "paths": _guarded(_paths()),
        "components": {"schemas": _SCHEMAS},
    }
    if basic_auth:
        doc["components"]["securitySchemes"] = {"basic": {"type": "http", "scheme": "basic"}}
        doc["security"] = [{"basic": []}]
        for item in doc["paths"].values():
            for operation in item.values():
                operation["responses"]["401"] = _error("missing or wrong credentials")
    return doc

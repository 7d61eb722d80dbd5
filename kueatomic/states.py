"""Job states, priorities and which script may move a job from where to where, as data."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from .errors import InvalidPriority, InvalidState

STATES: Final = ("inactive", "active", "complete", "failed", "delayed")

# Kue's priority map: a lower score is more urgent.
PRIORITIES: Final = {"low": 10, "normal": 0, "medium": -5, "high": -10, "critical": -15}

# Scores are doubles in Redis and Lua: beyond 2^53 integers stop being exact.
MAX_PRIORITY: Final = 2**53 - 1

ANY: Final = "any"
NEW: Final = "new"
SAME: Final = "same"
REMOVED: Final = "removed"

# script name -> (from states, to states). Each script header's `transition:` line must say
# the same; tests check both directions.
TRANSITIONS: Final[dict[str, tuple[tuple[str, ...], tuple[str, ...]]]] = {
    "create_jobs": ((NEW,), ("inactive", "delayed", "failed")),
    "update_job": ((ANY,), (SAME,)),
    "set_job_state": ((ANY,), STATES),
    "set_job_priority": ((ANY,), (SAME,)),
    "remove_job": ((ANY,), (REMOVED,)),
    "add_job_log": ((ANY,), (SAME,)),
    "set_job_progress": ((ANY,), (SAME,)),
    "search_jobs": ((), ()),
    "open_queue": ((), ()),
    "register_worker": ((), ()),  # the workers registry (kueatomic/presence.py): no job
    # repeatable jobs (kueatomic/repeats.py)
    "add_repeat": ((), ()),
    "scan_repeats": ((), ()),
    "remove_repeat": ((), ()),
    "fire_repeat": ((NEW,), ("inactive", "delayed")),
    "cancel_job": (("inactive", "delayed", "active"), ("failed",)),
    "clean_jobs": (("inactive", "delayed", "complete", "failed"), (REMOVED,)),
    "retry_jobs": (("failed",), ("inactive",)),
    "set_type_paused": ((), ()),
    # worker transitions (kueatomic/worker)
    "activate_jobs": (("inactive",), ("active",)),
    "complete_jobs": (("active",), ("complete", REMOVED)),
    "fail_jobs": (("active",), ("inactive", "delayed", "failed")),
    "renew_leases": (("active",), (SAME,)),
    "promote_delayed_jobs": (("delayed",), ("inactive",)),
    "recover_jobs": (("active",), ("inactive", "delayed", "failed")),
    "reclaim_jobs": (("active",), (SAME,)),
    "release_jobs": (("active",), ("inactive",)),
}


# The moves set_job_state makes by hand (Kue's job.inactive()...delayed(), the API's
# PUT /job/:id/state/:state): from a job's state to the states it may be put in. NO_STATE is a
# hash without a known state (written oddly, e.g. by hand); it may go anywhere, which repairs
# it. active -> active is refused: it would take the job from the worker holding its lease.
NO_STATE: Final = "none"
MANUAL_MOVES: Final[dict[str, tuple[str, ...]]] = {
    source: tuple(target for target in STATES if not source == target == "active")
    for source in (*STATES, NO_STATE)
}

# Data-format version of a queue's keys (lease, stalls, leases, claim records, meta), kept in
# <prefix>:meta field `format`. Bump it when a change would confuse an older version.
DATA_FORMAT: Final = 1


def lua_table() -> str:
    """``lua/lib/states.lua``: this module's tables as Lua, so the scripts enforce them. The
    tables are built by functions, on use, so a script pays only for the one it reads."""

    def states_set(states: Iterable[str]) -> str:
        states = tuple(states)
        return "{ " + ", ".join(f"{s} = true" for s in states) + " }" if states else "{}"

    def chooser(name: str, arg: str, cases: dict[str, str]) -> list[str]:
        lines = [f"local function {name}({arg})"]
        for n, (case, value) in enumerate(cases.items()):
            lines.append(f"  {'if' if n == 0 else 'elseif'} {arg} == '{case}' then return {value}")
        return [*lines, "  end", "  return {}", "end"]

    sources = {name: states_set(s for s in frm if s in STATES)
               for name, (frm, _) in TRANSITIONS.items()
               if frm and ANY not in frm and NEW not in frm}
    moves = {source: states_set(targets) for source, targets in MANUAL_MOVES.items()}
    return "\n".join([
        "-- lib/states.lua: GENERATED from kueatomic/states.py by kueatomic.states.lua_table()",
        "-- (tests/test_script_headers.py checks it is current). Do not edit by hand.",
        "",
        f"local STATES = {states_set(STATES)}",
        f"local NO_STATE = '{NO_STATE}'",
        f"local DATA_FORMAT = {DATA_FORMAT}",
        "-- The states a job must be in for the named script to move it.",
        *chooser("moves_from", "script", sources),
        "-- set_job_state: the states a job in `state` (or NO_STATE) may be moved to by hand.",
        *chooser("manual_moves", "state", moves),
        "",
    ])


def parse_state(state: str) -> str:
    if state not in STATES:
        raise InvalidState(f"unknown state {state!r}; use one of {', '.join(STATES)}")
    return state


def parse_priority(priority: object) -> int:
    """A priority name from Kue's map, or an integer (also an integer given as text)."""
    if isinstance(priority, bool):
        raise InvalidPriority(f"priority must be a name or an integer, not {priority!r}")
    if isinstance(priority, int):
        if abs(priority) > MAX_PRIORITY:
            raise InvalidPriority(f"priority must be within ±{MAX_PRIORITY}, not {priority}")
        return priority
    if isinstance(priority, str):
        if priority in PRIORITIES:
            return PRIORITIES[priority]
        text = priority.strip()
        digits = text[1:] if text[:1] == "-" else text
        if digits.isascii() and digits.isdigit():  # not "²" or "--5", which int() refuses
            return parse_priority(int(text))
    raise InvalidPriority(
        f"unknown priority {priority!r}; use one of {', '.join(PRIORITIES)} or an integer"
    )


def priority_name(value: int) -> str | None:
    for name, number in PRIORITIES.items():
        if number == value:
            return name
    return None

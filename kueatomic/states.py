"""Job states, priorities and which script may move a job from where to where, as data."""

from __future__ import annotations

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
    "create_jobs": ((NEW,), ("inactive", "delayed")),
    "update_job": ((ANY,), (SAME,)),
    "set_job_state": ((ANY,), STATES),
    "set_job_priority": ((ANY,), (SAME,)),
    "remove_job": ((ANY,), (REMOVED,)),
    "add_job_log": ((ANY,), (SAME,)),
    "set_job_progress": ((ANY,), (SAME,)),
    "search_jobs": ((), ()),
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

"""Every script's header is parsed and checked against its body and the Python side:
name = file name, KEYS/ARGV numbering matches what the body reads, error code words and
published events match what the body does, transitions match kueatomic.states.TRANSITIONS."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from kueatomic import scripts
from kueatomic.errors import SCRIPT_ERROR_CODES
from kueatomic.states import ANY, NEW, REMOVED, SAME, STATES, TRANSITIONS

REGISTRY = scripts.registry()
NAMES = sorted(REGISTRY)


def body_of(script: scripts.Script) -> str:
    """The expanded text minus comment lines (headers mention KEYS in prose)."""
    return "\n".join(
        line for line in script.text.splitlines() if not line.lstrip().startswith("--")
    )


def own_body(script: scripts.Script) -> str:
    """The script's own code, without the included libraries."""
    return "\n".join(
        line for line in script.source.splitlines() if not line.lstrip().startswith("--")
    )


def test_the_registry_reads_the_lua_folder() -> None:
    files = sorted(p.stem for p in scripts.lua_dir().glob("*.lua"))
    assert NAMES == files and len(NAMES) >= 8


@pytest.mark.parametrize("name", NAMES)
def test_header_names_file_and_version(name: str) -> None:
    header = REGISTRY[name].header
    assert header.name == name
    assert header.version >= 1
    assert re.fullmatch(r"[a-z]+(_[a-z]+)+", name), "verb-first snake_case names"
    assert header.purpose and header.returns


@pytest.mark.parametrize("name", NAMES)
def test_keys_and_argv_match_the_body(name: str) -> None:
    script = REGISTRY[name]
    body = own_body(script)
    for kind, params in (("KEYS", script.header.keys), ("ARGV", script.header.argv)):
        numbers = [p.index for p in params]
        assert numbers == list(range(1, len(params) + 1)), f"{kind} numbered 1..n"
        used = {int(n) for n in re.findall(kind + r"\[(\d+)\]", body)}
        variadic = any(p.variadic for p in params) or f"unpack({kind})" in body or f"#{kind}" in body
        assert used <= set(numbers) or variadic, f"body reads {kind} it does not declare"
        if kind == "KEYS":
            assert set(numbers) <= used | {1}, "every declared key is used"


@pytest.mark.parametrize("name", NAMES)
def test_error_codes_match(name: str) -> None:
    script = REGISTRY[name]
    body = own_body(script)
    raised = set(re.findall(r"'(KUE_[A-Z_]+)", body))
    if "not_found(" in body:
        raised.add("KUE_NOT_FOUND")  # lib/kue.lua's not_found() raises it
    if re.search(r"\bbad_args\(|\bcheck_(prefix|keys)\(", body):
        raised.add("KUE_BAD_ARGS")  # lib/checks.lua's refusals raise it
    declared = set(script.header.errors)
    assert declared <= SCRIPT_ERROR_CODES, "every code word maps to a KueError class"
    assert raised == declared


PUBLISHED = r"publish\([^,]+,[^,]+,\s*'([a-z ]+)'"
# lib/lifecycle.lua's end rules publish on behalf of the scripts that include it.
LIFECYCLE_EVENTS = set(re.findall(PUBLISHED, (scripts.lua_dir() / "lib" / "lifecycle.lua").read_text()))


@pytest.mark.parametrize("name", NAMES)
def test_published_events_match(name: str) -> None:
    script = REGISTRY[name]
    published = set(re.findall(PUBLISHED, own_body(script)))
    if "--@include lib/lifecycle.lua" in script.source:
        published |= LIFECYCLE_EVENTS
    assert published == set(script.header.publishes)


@pytest.mark.parametrize("name", NAMES)
def test_transition_matches_states_table(name: str) -> None:
    header = REGISTRY[name].header
    assert name in TRANSITIONS, "add the script to kueatomic.states.TRANSITIONS"
    sources, targets = TRANSITIONS[name]
    if header.transition == "-":
        assert sources == () and targets == ()
        return
    left, arrow, right = header.transition.partition("->")
    assert arrow, "transition reads 'from -> to'"
    parse = lambda side: tuple(s.strip() for s in side.split("|"))
    assert set(parse(left)) == set(sources)
    assert set(parse(right)) == set(targets)
    allowed = set(STATES) | {ANY, NEW, SAME, REMOVED}
    assert set(sources) | set(targets) <= allowed


def test_every_transition_entry_has_a_script() -> None:
    assert set(TRANSITIONS) <= set(NAMES)


@pytest.mark.parametrize("name", NAMES)
def test_sha_is_of_the_text_sent(name: str) -> None:
    import hashlib

    script = REGISTRY[name]
    assert not re.search(r"^--@include", script.text, re.MULTILINE)
    assert hashlib.sha1(script.text.encode()).hexdigest() == script.sha


def test_lua_is_portable() -> None:
    banned = ["cmsgpack", "struct.", "bit.", "BLMOVE", "setresp", "redis.set_repl"]
    for path in Path(scripts.lua_dir()).rglob("*.lua"):
        text = path.read_text()
        for word in banned:
            assert word not in text, f"{path.name} uses {word}"
        # Top-level globals would leak between scripts on some servers: everything is local.
        declared = set(re.findall(r"\blocal\s+function\s+(\w+)", text))
        for names in re.findall(r"\blocal\s+(?!function)([\w\s,]+?)\s*(?:=|$)", text, re.MULTILINE):
            declared.update(n.strip() for n in names.split(","))
        declared.update(re.findall(r"\bfor\s+([\w\s,]+?)\s+(?:in|=)", text))
        declared.update(n.strip() for args in re.findall(r"function\s*\w*\(([^)]*)\)", text)
                        for n in args.split(","))
        # Column-0 statements only: indented "name =" lines may be table-constructor fields.
        assigned = re.findall(r"^([A-Za-z_]\w*)\s*=[^=]", text, re.MULTILINE)
        undeclared = {n for n in assigned if n not in declared and not {*n.split(",")} <= declared}
        assert not undeclared, f"{path.name} assigns globals {undeclared}"
        assert not re.search(r"^function\b", text, re.MULTILINE), path.name


def test_python_calls_match_headers(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every script call the Python side builds passes the KEYS and ARGV its header lists."""
    from kueatomic import Queue, driver
    from kueatomic.ops import Call

    seen: list[Call] = []
    original = driver.command_of

    def record(request: object) -> tuple[object, ...]:
        if isinstance(request, Call):
            seen.append(request)
        return original(request)  # type: ignore[arg-type]

    monkeypatch.setattr(driver, "command_of", record)
    queue = Queue(redis="memory://headers-check", disable_search=False)
    job = queue.create("email", {"title": "hi"}).priority("high").save()
    queue.create_bulk([{"type": "email"}, {"type": "video", "options": {"delay": 100}}])
    job.log("x").progress(1, 2, {"a": 1}).set_priority(3)
    job.update()
    job.complete()
    queue.search("hi")
    job.remove()
    assert {call.script for call in seen} >= {
        "create_jobs", "add_job_log", "set_job_progress", "set_job_priority", "update_job",
        "set_job_state", "search_jobs", "remove_job"}
    for call in seen:
        header = REGISTRY[call.script].header
        for given, params in ((call.keys, header.keys), (call.args, header.argv)):
            fixed = [p for p in params if not p.variadic]
            if any(p.variadic for p in params):
                assert len(given) >= len(fixed), call.script
            else:
                assert len(given) == len(fixed), call.script


def test_states_lua_is_generated_from_states_py() -> None:
    """The scripts enforce kueatomic/states.py's tables: lib/states.lua is their Lua text."""
    from kueatomic.states import lua_table

    path = Path(scripts.lua_dir()) / "lib" / "states.lua"
    assert path.read_text() == lua_table(), (
        "regenerate: python -c 'from kueatomic import states; "
        "open(\"lua/lib/states.lua\", \"w\").write(states.lua_table())'")


@pytest.mark.parametrize("name", [n for n in NAMES if n in TRANSITIONS and TRANSITIONS[n][0]
                                  and ANY not in TRANSITIONS[n][0] and NEW not in TRANSITIONS[n][0]])
def test_scripts_with_source_states_read_them_from_the_table(name: str) -> None:
    """A worker script's "is the job in a state I may move?" is the table's, not its own."""
    body = own_body(REGISTRY[name])
    assert f"moves_from('{name}')" in body
    assert not re.search(r"(job\.state|f\[\d\])\s*[~=]=\s*'(inactive|active|complete|failed|delayed)'",
                         body), "compare against FROM, not a literal state"


def test_lock_file_records_every_version_and_sha() -> None:
    """lua/scripts.lock: a script whose text (or an included library) changed must bump its
    version; `kueatomic scripts --write-lock` then records the new SHA."""
    problems = scripts.lock_problems(REGISTRY, scripts.read_lock())
    assert problems == []


def test_lock_check_catches_a_change_without_a_bump() -> None:
    locked = scripts.read_lock()
    name = NAMES[0]
    version, _sha = locked[name]
    stale = {**locked, name: (version, "0" * 40)}
    assert "bump" in scripts.lock_problems(REGISTRY, stale)[0]
    bumped = {**locked, name: (version - 1, "0" * 40)}
    assert "--write-lock" in scripts.lock_problems(REGISTRY, bumped)[0]

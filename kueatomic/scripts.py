"""The script registry: built from the ``lua/`` folder, never from a hand-kept list.

Each ``lua/<name>.lua`` is parsed for its header (grammar in ``lua/README.md``), its
``--@include lib/x.lua`` lines are expanded, and the SHA1 is computed on that exact text, which
is what is sent to Redis with SCRIPT LOAD and called with EVALSHA.
"""

from __future__ import annotations

import hashlib
import itertools
import re
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path

from .errors import ConfigError

_INCLUDE = re.compile(r"^--@include\s+(\S+)\s*$", re.MULTILINE)
_HEADER_LINE = re.compile(r"^-- ?(.*)$")
_NUMBERED = re.compile(r"^(\d+)(\.\.)?\s+(\w+):\s*(.*)$")


def lua_dir() -> Path:
    """``kueatomic/lua`` inside a wheel, the repo's top-level ``lua/`` in a checkout."""
    here = Path(__file__).resolve().parent
    for candidate in (here / "lua", here.parent / "lua"):
        if (candidate / "lib").is_dir():
            return candidate
    raise ConfigError(f"cannot find the lua/ scripts folder next to {here}")


@dataclass(frozen=True)
class Param:
    """One KEYS or ARGV entry of a header: position, name, description, variadic or not."""

    index: int
    name: str
    doc: str
    variadic: bool = False


@dataclass(frozen=True)
class Header:
    name: str
    version: int
    transition: str
    purpose: str
    keys: tuple[Param, ...]
    argv: tuple[Param, ...]
    derived_keys: str
    returns: str
    errors: tuple[str, ...]
    publishes: tuple[str, ...]


@dataclass(frozen=True)
class Script:
    name: str
    header: Header
    source: str  # the file as written
    text: str = field(repr=False)  # after include expansion: what Redis runs
    sha: str = ""

    @property
    def version(self) -> int:
        return self.header.version


def _split_list(value: str) -> tuple[str, ...]:
    value = value.strip()
    if value in ("", "none", "-"):
        return ()
    return tuple(part.strip() for part in value.split(",") if part.strip())


def parse_header(source: str, path: str = "<script>") -> Header:
    """Parse the fixed comment header at the top of a script (see lua/README.md)."""
    sections: dict[str, list[str]] = {}
    current: str | None = None
    for line in source.splitlines():
        if line.startswith("--@include"):
            break
        match = _HEADER_LINE.match(line)
        if not match:
            break
        body = match.group(1)
        if body.startswith("  ") and current is not None:
            sections[current].append(body.strip())
            continue
        name, sep, value = body.partition(":")
        if not sep:
            raise ConfigError(f"{path}: header line without 'field:' -> {line!r}")
        current = name.strip()
        sections[current] = [value.strip()] if value.strip() else []
    required = ("name", "version", "transition", "purpose", "KEYS", "ARGV",
                "Derived keys", "Returns", "Errors", "Publishes")
    missing = [key for key in required if key not in sections]
    if missing:
        raise ConfigError(f"{path}: header lacks {', '.join(missing)}")

    def params(lines: list[str]) -> tuple[Param, ...]:
        out = []
        for entry in _join_continuations(lines):
            m = _NUMBERED.match(entry)
            if not m:
                raise ConfigError(f"{path}: bad KEYS/ARGV line {entry!r}")
            out.append(Param(int(m.group(1)), m.group(3), m.group(4), bool(m.group(2))))
        return tuple(out)

    def text(key: str) -> str:
        return " ".join(sections[key])

    return Header(
        name=text("name"),
        version=int(text("version")),
        transition=text("transition"),
        purpose=text("purpose"),
        keys=params(sections["KEYS"]),
        argv=params(sections["ARGV"]),
        derived_keys=text("Derived keys"),
        returns=text("Returns"),
        errors=_split_list(text("Errors")),
        publishes=_split_list(text("Publishes")),
    )


def _join_continuations(lines: list[str]) -> list[str]:
    """KEYS/ARGV entries start with a number; other lines continue the previous entry."""
    joined: list[str] = []
    for line in lines:
        if line == "none":
            continue
        if line[:1].isdigit() or not joined:
            joined.append(line)
        else:
            joined[-1] += " " + line
    return joined


def expand_includes(source: str, folder: Path) -> str:
    """Replace the ``--@include lib/x.lua`` lines with the library code the script uses.

    Libraries are lists of top-level definitions (lua/README.md, "Libraries"). Redis runs a
    script's whole top level on every EVALSHA, so each ``local function`` costs a closure and
    each table a constructor per call, used or not: only the definitions the script's own code
    reaches (directly or through other kept definitions) are kept, in library order, each with
    its comment. A library included twice anywhere is an error."""
    units: list[_Unit] = []
    body = _flatten(source, folder, set(), units, _LIBRARIES)
    wanted = _identifiers(_code_of(body))
    kept: set[int] = set()
    changed = True
    while changed:  # a kept unit may need units defined before it
        changed = False
        for index, unit in enumerate(units):
            if index not in kept and (unit.always or unit.names & wanted):
                kept.add(index)
                wanted |= unit.uses
                changed = True
    libraries = "\n\n".join(unit.text for index, unit in enumerate(units) if index in kept)
    return body.replace(_LIBRARIES, libraries) if libraries else body.replace(_LIBRARIES + "\n", "")


@dataclass(frozen=True)
class _Unit:
    """One top-level definition of a library, with the comment above it."""

    text: str
    names: frozenset[str] = frozenset()
    uses: frozenset[str] = frozenset()
    always: bool = False


_LIBRARIES = "\0libraries\0"  # where the kept library code goes: the first include's line


_DEFINITION = re.compile(r"^local\s+(?:function\s+([A-Za-z_]\w*)|([A-Za-z_][\w\s,]*?)\s*(?:=|$))")
_WORD = re.compile(r"[A-Za-z_]\w*")
_LONG_STRING = re.compile(r"\[(=*)\[.*?\]\1\]", re.DOTALL)
_STRING = re.compile(r"'(?:\\.|[^'\\\n])*'|\"(?:\\.|[^\"\\\n])*\"")


def _code_of(text: str) -> str:
    """Lua text without comments and string literals (a name inside them is no use)."""
    text = re.sub(r"--\[(=*)\[.*?\]\1\]", " ", text, flags=re.DOTALL)
    out = []
    for line in text.splitlines():
        line = _STRING.sub(" ", line)
        out.append(line.split("--", 1)[0])
    return _LONG_STRING.sub(" ", "\n".join(out))


def _identifiers(code: str) -> set[str]:
    return set(_WORD.findall(code))


def _flatten(source: str, folder: Path, seen: set[str], units: list[_Unit],
             marker: str = "") -> str:
    """Append the units of every library `source` includes (depth first, in order) to
    `units`, and return `source` with its include lines removed (the first one replaced by
    `marker` when given)."""
    kept_lines: list[str] = []
    for line in source.splitlines():
        match = _INCLUDE.match(line)
        if not match:
            kept_lines.append(line)
            continue
        if marker:
            kept_lines.append(marker)
            marker = ""
        name = match.group(1)
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"include {name} not found in {folder}")
        if name in seen:
            raise ConfigError(f"include {name} is included twice")
        seen.add(name)
        library = _flatten(path.read_text(encoding="utf-8").rstrip("\n"), folder, seen, units)
        units.extend(_units_of(library, name))
    return "\n".join(kept_lines)


def _units_of(library: str, name: str) -> list[_Unit]:
    """Split a library into its definitions. A definition starts at a column-0 ``local``
    (with the comment lines right above it) and runs to the next; anything else at column 0
    that is code (not a comment, not ``end``) is top-level work and is always kept."""
    lines = library.splitlines()
    starts = []
    for number, line in enumerate(lines):
        if line.startswith("local ") or (line and not line[0].isspace()
                                         and not line.startswith(("--", "end", "}", ")"))):
            first = number
            while first > 0 and lines[first - 1].startswith("--"):
                first -= 1
            starts.append(first)
    if not starts:
        return []
    out = []
    header = "\n".join(lines[: starts[0]]).strip("\n")
    bounds = [*starts, len(lines)]
    for first, after in itertools.pairwise(bounds):
        text = "\n".join(lines[first:after]).rstrip("\n")
        code = _code_of(text)
        head = next(line for line in code.splitlines() if line.strip())
        match = _DEFINITION.match(head)
        if match:
            defined = {match.group(1)} if match.group(1) else {
                word.strip() for word in match.group(2).split(",")}
            out.append(_Unit(text=text, names=frozenset(defined),
                             uses=frozenset(_identifiers(code) - defined)))
        else:
            out.append(_Unit(text=text, uses=frozenset(_identifiers(code)), always=True))
    if header:  # the library's own comment: kept when any of its code is
        out.insert(0, _Unit(text=header, names=frozenset().union(*(u.names for u in out)),
                            uses=frozenset()))
    return out


def load_script(path: Path) -> Script:
    source = path.read_text(encoding="utf-8")
    header = parse_header(source, str(path))
    text = expand_includes(source, path.parent)
    sha = hashlib.sha1(text.encode("utf-8")).hexdigest()
    return Script(name=path.stem, header=header, source=source, text=text, sha=sha)


@cache
def registry() -> dict[str, Script]:
    """Every script in ``lua/``, by name. Computed once per process."""
    folder = lua_dir()
    return {path.stem: load_script(path) for path in sorted(folder.glob("*.lua"))}


def get(name: str) -> Script:
    try:
        return registry()[name]
    except KeyError:
        raise ConfigError(f"no script lua/{name}.lua") from None


# --- the lock file: name -> version -> SHA1, committed beside the scripts -----------------

LOCK_FILE = "scripts.lock"


def read_lock(folder: Path | None = None) -> dict[str, tuple[int, str]]:
    """``lua/scripts.lock``: one ``name version sha1`` line per script."""
    path = (folder or lua_dir()) / LOCK_FILE
    out: dict[str, tuple[int, str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            name, version, sha = line.split()
            out[name] = (int(version), sha)
    return out


def lock_problems(current: dict[str, Script], locked: dict[str, tuple[int, str]]) -> list[str]:
    """What differs between the scripts and the lock. A changed SHA under the same version is
    the error the lock exists for: the script (or a library it includes) changed and its
    version was not bumped, so a running worker could not tell the two apart."""
    problems = []
    for name, script in current.items():
        if name not in locked:
            problems.append(f"{name}: not in {LOCK_FILE}")
            continue
        version, sha = locked[name]
        if script.sha != sha and script.version == version:
            problems.append(f"{name}: its text changed (SHA {sha[:12]} -> {script.sha[:12]}) "
                            f"but its version is still {version}: bump `-- version:`")
        elif script.sha != sha or script.version != version:
            problems.append(f"{name}: version {version} -> {script.version}; update "
                            f"{LOCK_FILE} with `kueatomic scripts --write-lock`")
    problems.extend(f"{name}: in {LOCK_FILE} but no lua/{name}.lua" for name in locked
                    if name not in current)
    return problems


def lock_text(current: dict[str, Script]) -> str:
    lines = ["# name version sha1 -- written by `kueatomic scripts --write-lock`; a test checks",
             "# that a script whose SHA1 changed also changed its version."]
    lines += [f"{name} {script.version} {script.sha}" for name, script in sorted(current.items())]
    return "\n".join(lines) + "\n"


def write_lock(folder: Path | None = None) -> list[str]:
    """Rewrite the lock from the scripts, unless a script changed without a version bump
    (those problems are returned and nothing is written)."""
    folder = folder or lua_dir()
    current = registry()
    locked = read_lock(folder) if (folder / LOCK_FILE).is_file() else {}
    refused = [p for p in lock_problems(current, locked) if "bump" in p]
    if not refused:
        (folder / LOCK_FILE).write_text(lock_text(current), encoding="utf-8")
    return refused

"""The script registry: built from the ``lua/`` folder, never from a hand-kept list.

Each ``lua/<name>.lua`` is parsed for its header (grammar in ``lua/README.md``), its
``--@include lib/x.lua`` lines are expanded, and the SHA1 is computed on that exact text, which
is what is sent to Redis with SCRIPT LOAD and called with EVALSHA.
"""

from __future__ import annotations

import hashlib
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


def expand_includes(source: str, folder: Path, seen: set[str] | None = None) -> str:
    """Replace each ``--@include lib/x.lua`` line with that file, expanded the same way. A
    file included a second time anywhere in the expansion is an error, so no library's code
    runs twice."""
    seen = set() if seen is None else seen

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        path = folder / name
        if not path.is_file():
            raise ConfigError(f"include {name} not found in {folder}")
        if name in seen:
            raise ConfigError(f"include {name} is included twice")
        seen.add(name)
        return expand_includes(path.read_text(encoding="utf-8").rstrip("\n"), folder, seen)

    return _INCLUDE.sub(replace, source)


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

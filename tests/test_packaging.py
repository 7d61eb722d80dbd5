"""The wheel ships lua/ inside the package, and the installed copy finds its scripts;
`kueatomic scripts` lists every script with its version and SHA1."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

from kueatomic import scripts
from kueatomic.cli import main

ROOT = Path(__file__).resolve().parent.parent


def test_wheel_contains_the_lua_scripts(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps", "--no-build-isolation",
         "-q", "-w", str(tmp_path)],
        check=True,
    )
    (wheel,) = tmp_path.glob("kueatomic-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for name in scripts.registry():
        assert f"kueatomic/lua/{name}.lua" in names
    assert "kueatomic/lua/lib/kue.lua" in names and "kueatomic/lua/lib/search.lua" in names
    assert "kueatomic/py.typed" in names
    for asset in ("index.html", "app.js", "app.css"):
        assert f"kueatomic/web/static/{asset}" in names
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--target",
                    str(target), str(wheel)], check=True)
    probe = ("import kueatomic.scripts as s; "
             "print(s.lua_dir()); print(sorted((n, x.sha) for n, x in s.registry().items()))")
    out = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env={"PYTHONPATH": str(target)},
                         capture_output=True, text=True, check=True).stdout.splitlines()
    assert out[0] == str(target / "kueatomic" / "lua")
    assert out[1] == str(sorted((n, x.sha) for n, x in scripts.registry().items()))


def test_cli_scripts_lists_name_version_sha(capsys: object) -> None:
    assert main(["scripts"]) == 0
    out = capsys.readouterr().out.splitlines()  # type: ignore[attr-defined]
    rows = {line.split()[0]: line.split()[1:] for line in out[1:]}
    for name, script in scripts.registry().items():
        assert rows[name] == [str(script.version), script.sha]
    assert main(["scripts", "--show", "create_jobs"]) == 0
    assert "redis.call('INCRBY'" in capsys.readouterr().out  # type: ignore[attr-defined]


def test_user_code_passes_mypy_strict(tmp_path: Path) -> None:
    """kueatomic/py.typed ships (the wheel test checks the wheel; this checks the effect): a
    user's ``mypy --strict`` on a file importing kueatomic finds its types."""
    assert (ROOT / "kueatomic" / "py.typed").is_file()
    user = tmp_path / "user.py"
    user.write_text(
        "from kueatomic import ConfigError, KueError, Queue\n"
        "import kueatomic.aio\n\n\n"
        "def enqueue(queue: Queue) -> int | None:\n"
        "    job = queue.create('email', {'to': 'tj'}).priority('high').save()\n"
        "    return job.id\n\n\n"
        "def is_config(exc: KueError) -> bool:\n"
        "    return isinstance(exc, ConfigError)\n\n\n"
        "async def aenqueue(queue: kueatomic.aio.Queue) -> None:\n"
        "    await queue.create('email', {}).save()\n"
    )
    done = subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental", str(user)],
        cwd=tmp_path, capture_output=True, text=True, check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def _lock() -> dict[str, int]:
    rows = [line.split() for line in (ROOT / "lua" / "scripts.lock").read_text().splitlines()
            if line.strip() and not line.startswith("#")]
    return {name: int(version) for name, version, _sha in rows}


def test_changelog_lists_the_locked_script_versions_of_this_release() -> None:
    """The CHANGELOG entry of the current version lists exactly the scripts and versions of
    lua/scripts.lock (a script bumped without a CHANGELOG line fails here)."""
    import importlib.metadata
    import re

    version = importlib.metadata.version("kueatomic")
    text = (ROOT / "CHANGELOG.md").read_text()
    sections = re.split(r"^## ", text, flags=re.MULTILINE)
    (entry,) = [s for s in sections if s.split("\n", 1)[0].strip() == version]
    rows = re.findall(r"^- `(\w+)` (\d+)\s*$", entry, flags=re.MULTILINE)
    listed = {name: int(version) for name, version in rows}
    assert listed == _lock()


def test_metadata_license_and_classifiers() -> None:
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "MIT" and project["license-files"] == ["LICENSE"]
    assert "MIT License" in (ROOT / "LICENSE").read_text()
    for classifier in ("License :: OSI Approved :: MIT License", "Framework :: AsyncIO",
                       "Programming Language :: Python :: 3.11",
                       "Topic :: System :: Distributed Computing"):
        assert classifier in project["classifiers"]
    assert project["keywords"]

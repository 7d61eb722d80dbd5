"""The wheel ships lua/ inside the package, and the installed copy finds its scripts;
`kueatomic scripts` lists every script with its version and SHA1; installed with no extra,
the wheel needs only its core dependencies and a worker runs."""

from __future__ import annotations

import importlib.metadata
import os
import signal
import subprocess
import sys
import textwrap
import tomllib
import zipfile
from pathlib import Path

import pytest

from kueatomic import Queue, extras, scripts
from kueatomic.cli import main

from .redis_server import free_port

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
    for asset in ("index.html", "kit.js", "app.js", "charts.js", "views.js", "app.css"):
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


def _project() -> dict[str, object]:
    return dict(tomllib.loads((ROOT / "pyproject.toml").read_text())["project"])


def _name(requirement: str) -> str:
    """The distribution a requirement names ("fakeredis[lua]>=2.26" -> "fakeredis")."""
    for stop in "[<>=!~; ":
        requirement = requirement.split(stop, 1)[0]
    return requirement.lower().replace("_", "-")


def test_the_core_needs_only_redis_and_all_is_every_feature_extra() -> None:
    project = _project()
    extras_table: dict[str, list[str]] = project["optional-dependencies"]  # type: ignore[assignment]
    # redis-py; each feature needing more is an extra (cron schedules: the cron extra)
    core = {_name(r) for r in project["dependencies"]}  # type: ignore[attr-defined]
    assert core == {"redis"}
    features = set(extras.MODULES)
    assert features <= set(extras_table)
    union = sorted({r for extra in features for r in extras_table[extra]})
    assert sorted(extras_table["all"]) == union
    assert set(union) <= set(extras_table["test"])  # the suite exercises every extra
    assert "opentelemetry-sdk" in {_name(r) for r in extras_table["test"]}
    assert "fakeredis[lua]" in str(extras_table["embedded"])  # lupa: fakeredis runs the scripts


def _run(args: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, capture_output=True, text=True, timeout=120, check=False,
                          **kwargs)  # type: ignore[call-overload, no-any-return]


@pytest.mark.real_redis
def test_a_core_install_runs_a_worker_without_the_extras(tmp_path: Path,
                                                         real_redis_url: str) -> None:
    """A fresh venv (no system site-packages) gets the wheel with no extra, resolved from a
    folder holding only that wheel and redis-py's: the core needs nothing else. There a
    ``kueatomic worker`` processes a job on the session's redis-server, none of starlette,
    uvicorn, fakeredis, lupa, prometheus_client or opentelemetry can be imported, and the
    commands that need an extra say which to install."""
    dist = tmp_path / "dist"
    built = _run([sys.executable, "-m", "pip", "wheel", str(ROOT), "--no-deps",
                  "--no-build-isolation", "-q", "-w", str(dist)])
    assert built.returncode == 0, built.stderr
    # The core dependencies' wheels, at the versions this venv runs, from the configured
    # index (or its offline wheel cache); the install below may use nothing else.
    core = [_name(r) for r in _project()["dependencies"]]  # type: ignore[attr-defined]
    pins = [f"{name}=={importlib.metadata.version(name)}" for name in core]
    fetched = _run([sys.executable, "-m", "pip", "download", "-q", "--no-deps", "-d", str(dist),
                    *pins])
    assert fetched.returncode == 0, f"cannot get the wheels of {pins}: {fetched.stderr}"
    venv = tmp_path / "venv"
    made = _run([sys.executable, "-m", "venv", "--without-pip", str(venv)])
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q",
                      "--no-index", "--find-links", str(dist), "kueatomic"])
    assert installed.returncode == 0, installed.stdout + installed.stderr

    env = {"PATH": os.environ.get("PATH", ""), "REDIS_URL": real_redis_url}
    probe = _run([str(python), "-c", textwrap.dedent("""
        import importlib.util, sys
        import kueatomic, kueatomic.aio
        from kueatomic import Worker
        print(kueatomic.__file__)
        print(sorted(name for name in ("starlette", "uvicorn", "fakeredis", "lupa",
                                       "prometheus_client", "opentelemetry")
                     if importlib.util.find_spec(name) is not None))
    """)], cwd=tmp_path, env=env)
    assert probe.returncode == 0, probe.stderr
    where, importable = probe.stdout.splitlines()
    assert where.startswith(str(venv)), where  # the wheel, not this checkout
    assert importable == "[]"

    (tmp_path / "tasks.py").write_text(textwrap.dedent("""
        import os
        from kueatomic import Queue

        queue = Queue("core-install", os.environ["REDIS_URL"])

        @queue.process("email")
        def send(job):
            return {"sent": job.data["to"]}
    """))
    kueatomic = str(venv / "bin" / "kueatomic")
    for command, extra in ((["dashboard"], "web"), (["demo"], "embedded"),
                           (["worker", "tasks:queue", "--metrics-port", str(free_port())], "metrics")):
        # no REDIS_URL: the demo would use it instead of the embedded engine
        refused = _run([kueatomic, *command], cwd=tmp_path,
                       env={**env, "REDIS_URL": ""} if command == ["demo"] else env)
        assert refused.returncode == 2, refused.stdout + refused.stderr
        assert f"pip install 'kueatomic[{extra}]'" in refused.stderr
        assert "Traceback" not in refused.stderr

    worker = subprocess.Popen([kueatomic, "worker", "tasks:queue"], cwd=tmp_path, env=env,
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    queue = Queue("core-install", real_redis_url)
    try:
        job = queue.create("email", {"to": "tj@example.com"}).save()
        assert job.wait(30) == {"sent": "tj@example.com"}
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(20) == 0
    finally:
        queue.close()
        if worker.poll() is None:
            worker.kill()
        worker.communicate()


def test_the_readme_commands_install_what_they_need_and_ci_runs_the_test_command() -> None:
    readme = (ROOT / "README.md").read_text()
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    commands = [line for line in block.splitlines() if line and not line.startswith("#")]
    demo, suite = commands
    assert "pip install -e '.[all]'" in demo and demo.endswith("kueatomic demo")
    assert "pip install -e '.[test]'" in suite and suite.endswith("python -m pytest")
    ci = (ROOT / ".ci" / "run").read_text().replace("pip install -q ", "pip install ")
    assert suite in ci.splitlines()  # the same command, pip told to be quiet

"""Shared fixtures. Tests never touch the user's model store: BENTOML_HOME points at a temporary folder,
set here before anything imports bentoml."""

from __future__ import annotations

import functools
import json
import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

BENTOML_HOME = tempfile.mkdtemp(prefix="penguin-serve-test-home-")
CREATED_BY = os.getpid()
os.environ["BENTOML_HOME"] = BENTOML_HOME
# The record of documented commands the tests ran (tests/readme.py): one file for the run, its workers included.
os.environ.setdefault("PENGUIN_DOCS_LEDGER", str(Path(BENTOML_HOME).with_name(Path(BENTOML_HOME).name + "-ledger")))
os.environ["PENGUIN_WORKERS"] = "1"
# Labelled observations (POST /feedback) of in-process services and of the servers tests start.
os.environ["PENGUIN_FEEDBACK_DIR"] = str(Path(BENTOML_HOME) / "feedback")

REPO_ROOT = Path(__file__).resolve().parent.parent

# Known birds of the table, one of each species, with the species each must get.
KNOWN_RECORDS = [
    (
        {
            "bill_length_mm": 39.1,
            "bill_depth_mm": 18.7,
            "flipper_length_mm": 181,
            "body_mass_g": 3750,
            "sex": "male",
            "island": "Torgersen",
        },
        "Adelie",
    ),
    (
        {
            "bill_length_mm": 46.5,
            "bill_depth_mm": 17.9,
            "flipper_length_mm": 192,
            "body_mass_g": 3500,
            "sex": "female",
            "island": "Dream",
        },
        "Chinstrap",
    ),
    (
        {
            "bill_length_mm": 46.1,
            "bill_depth_mm": 13.2,
            "flipper_length_mm": 211,
            "body_mass_g": 4500,
            "sex": "female",
            "island": "Biscoe",
        },
        "Gentoo",
    ),
    (
        {
            "bill_length_mm": 50.0,
            "bill_depth_mm": 19.5,
            "flipper_length_mm": 196,
            "body_mass_g": 3900,
            "sex": "male",
            "island": "Dream",
        },
        "Chinstrap",
    ),
]
ADELIE = {**KNOWN_RECORDS[0][0], "year": 2009}


def required(program: str) -> str:
    """An external program's path from the one helper that installs it (scripts/dev/tools.py); a test skips, with
    the command to run, where this user cannot install it (a skip fails the run under CI=true)."""
    from scripts.dev.tools import ToolMissing, require

    try:
        return require(program)
    except ToolMissing as missing:
        pytest.skip(str(missing))


TEST_TIMINGS = REPO_ROOT / "docs" / "test-timings.json"
FILE_SECONDS: dict[str, float] = {}  # this run's time in each test file, set-up and tear-down included


def pytest_runtest_logreport(report):
    file = report.nodeid.split("::")[0]
    FILE_SECONDS[file] = FILE_SECONDS.get(file, 0) + report.duration


def record_duration(session) -> None:
    """PENGUIN_TEST_TIMINGS=FILE (set by `make timings`, which then moves it to docs/test-timings.json) records
    this run's wall time under its tier, the figure the README quotes for `make test` and `make test-fast`, and
    the time in each test file, longest first (the order `make test` hands them out)."""
    path = os.environ.get("PENGUIN_TEST_TIMINGS")
    if not path or session.testsfailed or getattr(session.config, "workerinput", None) is not None:
        return
    from datetime import date

    tier = "test-fast" if session.config.getoption("markexpr") == "not slow" else "test"
    timings = json.loads(Path(path).read_text()) if Path(path).exists() else {}
    passed = len(session.config.pluginmanager.get_plugin("terminalreporter").stats.get("passed", []))
    timings[tier] = {
        "measured_on": date.today().isoformat(),
        "seconds": round(time.monotonic() - session.started),
        "tests": passed,
        "files": {file: round(seconds) for file, seconds in sorted(FILE_SECONDS.items(), key=lambda f: -f[1])},
    }
    Path(path).write_text(json.dumps(timings, indent=2) + "\n")


# The slow tier: tests that start a server, an emulator, a container, a browser or a benchmark. `make test`
# runs everything; `make test-fast` (-m "not slow") the code, data and model tests alone.
# Of those, the emulator's tests run in this process (the emulator is a local binary that starts in a second), so
# `make mutate` runs them too.
EMULATOR_FIXTURES = {"gcs_emulator", "bucket", "fault_proxy"}
SLOW_FIXTURES = {"served", "image", "make_image", "prometheus", "browser", *EMULATOR_FIXTURES}


def pytest_collection_modifyitems(config, items):
    for item in items:
        if SLOW_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.slow)
        if EMULATOR_FIXTURES & set(item.fixturenames):
            item.add_marker(pytest.mark.emulator)
    # The longest test files first, by the last `make timings`: `--dist loadfile --no-loadscope-reorder` hands
    # out whole files in this order, so the Cloud Run modules start at once. xdist's own order (most tests first)
    # puts those few-test, several-minute files last, where one core idles while the other finishes them. The
    # sort is stable: pytest-randomly's shuffle stays within each file and among files with no record. Without
    # xdist the files run in the order given (make mutate's first test must stay first).
    if config.getoption("dist", "no") != "loadfile":
        return
    seconds = json.loads(TEST_TIMINGS.read_text())["test"].get("files", {})
    items.sort(key=lambda item: -seconds.get(item.nodeid.split("::")[0], 0))


def pytest_sessionstart(session):
    session.started = time.monotonic()


def check_documented_commands_ran(session) -> None:
    """At the end of a whole run (nothing deselected), every documented command of a section whose test runners
    all passed must have been run by one of them (tests/readme.py's ledger)."""
    from readme import commands_not_run

    stats = session.config.pluginmanager.get_plugin("terminalreporter").stats
    if getattr(session.config, "workerinput", None) is not None or session.exitstatus != 0 or stats.get("deselected"):
        return
    files = lambda outcome: {report.nodeid.split("::")[0] for report in stats.get(outcome, [])}  # noqa: E731
    missing = commands_not_run(Path(os.environ["PENGUIN_DOCS_LEDGER"]), files("passed") - files("skipped") - files("failed"))
    Path(os.environ["PENGUIN_DOCS_LEDGER"]).unlink(missing_ok=True)
    if missing:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print("\ndocumented commands that no test ran (run them in their section's runner, or give a reason in "
              "tests/readme.py's NOT_AS_TYPED):\n  " + "\n  ".join(missing))  # fmt: skip


def pytest_sessionfinish(session, exitstatus):
    if os.getpid() == CREATED_BY:  # not in a forked run (mutmut's), which shares the folder with others
        shutil.rmtree(BENTOML_HOME, ignore_errors=True)
    record_duration(session)
    check_documented_commands_ran(session)
    # CI is root and can install everything: there, a skipped test is a test that did not run, and fails the run.
    # The exceptions: the real gcloud, which no registry reachable here carries (tests/real_gcloud.py), and a
    # Docker 23+ CLI, which Debian 12 does not have (troubleshooting 11's failure cannot happen there).
    from containers import NO_DOCKER_23
    from real_gcloud import MISSING

    skipped = session.config.pluginmanager.get_plugin("terminalreporter").stats.get("skipped", [])
    skipped = [report for report in skipped if not any(allowed in str(report.longrepr) for allowed in (MISSING, NO_DOCKER_23))]
    if os.environ.get("CI") == "true" and skipped and session.exitstatus == 0:
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
        print(f"\nCI=true: {len(skipped)} skipped test(s) fail the run (see the skip reasons above)")


@pytest.fixture(scope="session")
def exported_model(tmp_path_factory) -> Path:
    """Train once per session into the temporary model store; returns the models/ export folder, where
    training's printout is kept too (printout.txt)."""
    import contextlib
    import io

    import train

    export_dir = tmp_path_factory.mktemp("models")
    store = Path(os.environ["BENTOML_HOME"]) / "models"
    # PENGUIN_TEST_MODEL_CACHE (set by `make mutate`): one training for its thousands of pytest runs.
    cache = Path(os.environ["PENGUIN_TEST_MODEL_CACHE"]) if "PENGUIN_TEST_MODEL_CACHE" in os.environ else None
    if cache and (cache / "export" / "printout.txt").exists():
        shutil.copytree(cache / "store", store, dirs_exist_ok=True)
        shutil.copytree(cache / "export", export_dir, dirs_exist_ok=True)
        return export_dir
    printout = io.StringIO()
    with contextlib.redirect_stdout(printout):
        assert train.main(["--export-dir", str(export_dir)]) == 0
    (export_dir / "printout.txt").write_text(printout.getvalue())
    if cache:
        shutil.copytree(store, cache / "store", dirs_exist_ok=True)
        shutil.copytree(export_dir, cache / "export", dirs_exist_ok=True)
    return export_dir


def wait_until_ready(get, timeout_s: float = 30.0) -> list[int]:
    """Poll /readyz until it answers 200; returns every status seen, in order."""
    statuses: list[int] = []
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        statuses.append(get("/readyz").status_code)
        if statuses[-1] == 200:
            return statuses
        time.sleep(0.02)
    raise AssertionError(f"not ready after {timeout_s}s; statuses seen: {statuses[-5:]}")


@functools.cache
def service_app():
    """The service's ASGI app, built once per process: building it registers BentoML's metrics, which a second
    build in the same process (mutmut runs pytest several times in one) would register again."""
    import service

    return service.PenguinClassifier.to_asgi()


@pytest.fixture(scope="session")
def api(exported_model):
    """The service in-process over HTTP (ASGI), with its lifespan run, ready to answer."""
    from starlette.testclient import TestClient

    with TestClient(service_app()) as client:
        wait_until_ready(client.get)
        yield client


@pytest.fixture(scope="session")
def served(exported_model, tmp_path_factory):
    """One real `bentoml serve` process of 2 workers for the session (as on a 2-core machine, whatever this one
    has), stopped by PID at the end."""
    from server import ServeProcess

    server = ServeProcess(tmp_path_factory.mktemp("serve") / "serve.log", PENGUIN_WORKERS="2")
    try:
        server.readiness = server.readyz_history()
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def gcs_emulator():
    """A real fake-gcs-server on a free port, stopped at the end (and by the kernel if pytest is killed)."""
    from scripts.dev.gcs_emulator import FakeGcsServer

    server = FakeGcsServer()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def bucket(gcs_emulator) -> str:
    """A fresh bucket for each test."""
    import uuid

    name = f"penguin-test-{uuid.uuid4().hex[:12]}"
    gcs_emulator.create_bucket(name)
    return name


@pytest.fixture
def fault_proxy(gcs_emulator):
    from fault_proxy import FaultProxy

    proxy = FaultProxy(gcs_emulator.port)
    try:
        yield proxy
    finally:
        proxy.close()

"""Docker helpers for the image tests: build once, run containers that are removed even when a test fails."""

from __future__ import annotations

import contextlib
import functools
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import requests
from conftest import REPO_ROOT, required

from scripts.dev.processes import die_with_parent, free_port

SERVICE_UID = 1034  # the user BentoML's Dockerfile runs the service as (docs/image.md and OPERATIONS quote it)
# Debian 12's docker.io is 20.10, whose BuildKit is built in: troubleshooting 11's failure cannot happen with it.
NO_DOCKER_23 = "no Docker CLI 23+ on this machine (Debian 12's docker.io is 20.10), so the failure cannot happen here"


@functools.cache
def docker_cli() -> str:
    """The Docker CLI that scripts/image/container-engine.sh prints once an engine answers (it installs and starts
    one where it may); a CalledProcessError says why it could not."""
    engine = subprocess.run(["scripts/image/container-engine.sh"], cwd=REPO_ROOT, capture_output=True, text=True, timeout=300)
    if engine.returncode != 0:
        raise subprocess.CalledProcessError(engine.returncode, engine.args, engine.stdout, engine.stderr)
    return engine.stdout.strip().splitlines()[-1]


def docker(*args: str, check: bool = True, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([docker_cli(), *args], capture_output=True, text=True, check=check, timeout=timeout)


def engine_unavailable_reason() -> str | None:
    """Why the image tests cannot run here, or None."""
    try:
        docker_cli()
    except subprocess.CalledProcessError as failed:
        return failed.stderr.strip().splitlines()[-1] if failed.stderr.strip() else "no Docker engine"
    return None


def build_image(bentoml_home: str) -> str:
    """`make image`'s script; the image name it prints."""
    result = subprocess.run(
        ["scripts/image/image.sh"],
        cwd=REPO_ROOT,
        env={**os.environ, "BENTOML_HOME": bentoml_home, "PENGUIN_IMAGE": "penguin-serve-test"},
        capture_output=True,
        text=True,
        timeout=1800,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout.strip().splitlines()[-1]


def user_environment(bentoml_home: str) -> dict[str, str]:
    """A machine where `docker` builds with BuildKit, as on a developer's desk (docker_cli first on PATH), with
    the engine started and the base image present (a stand-in built from Debian packages when python:3.11-slim
    cannot be pulled)."""
    env = {**os.environ, "BENTOML_HOME": bentoml_home, "PATH": f"{os.path.dirname(docker_cli())}:{os.environ['PATH']}"}
    base = "python:3.11-slim"
    if (
        docker("image", "inspect", base, check=False).returncode != 0
        and docker("pull", base, check=False, timeout=300).returncode != 0
    ):
        subprocess.run(
            ["scripts/image/base-image.sh", base], cwd=REPO_ROOT, env=env, check=True, capture_output=True, timeout=900
        )
    return env


class Container:
    """`docker run -d` with a unique name; .remove() in a finally block."""

    def __init__(self, image: str, *run_args: str) -> None:
        self.name = f"penguin-test-{uuid.uuid4().hex[:10]}"
        docker("run", "-d", "--name", self.name, *run_args, image)

    def logs(self) -> str:
        result = docker("logs", self.name, check=False)
        return result.stdout + result.stderr

    def state(self) -> dict:
        import json

        return json.loads(docker("inspect", "--format", "{{json .State}}", self.name).stdout)

    def wait_ready(self, url: str, timeout_s: float = 60) -> float:
        started = time.monotonic()
        while time.monotonic() - started < timeout_s:
            if not self.state()["Running"]:
                raise AssertionError(f"container exited:\n{self.logs()[-3000:]}")
            try:
                if requests.get(url + "/readyz", timeout=2).status_code == 200:
                    return time.monotonic() - started
            except requests.RequestException:  # refused while starting, or held until the worker is up
                pass
            time.sleep(0.1)
        raise AssertionError(f"not ready after {timeout_s}s:\n{self.logs()[-3000:]}")

    def remove(self) -> None:
        docker("rm", "-f", self.name, check=False)


@contextlib.contextmanager
def local_registry(folder: Path) -> Iterator[str]:
    """Debian's docker-registry (the CNCF distribution registry) on 127.0.0.1, stopped by PID; its host:port."""
    port = free_port()
    config = folder / "registry.yml"
    config.write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {folder / 'data'}\n"
        f"http:\n  addr: 127.0.0.1:{port}\nlog:\n  level: error\n"
    )
    process = subprocess.Popen(
        [required("docker-registry"), "serve", str(config)],
        preexec_fn=die_with_parent,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                requests.get(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except requests.ConnectionError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(10)

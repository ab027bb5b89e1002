"""A real `bentoml serve` process on a free 127.0.0.1 port, stopped by its PID even when a test fails."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import requests

from scripts.dev.processes import die_with_parent, free_port, stop

REPO_ROOT = Path(__file__).resolve().parent.parent
BENTOML = Path(sys.executable).with_name("bentoml")


class ServeProcess:
    def __init__(self, log_path: Path, **env: str) -> None:
        # Each server gets a BENTOML_HOME of its own over the shared model store: `bentoml serve` empties
        # $BENTOML_HOME/prometheus_multiproc_dir when it starts, which would wipe a running server's metrics.
        home = log_path.parent / "bentoml-home"
        home.mkdir(exist_ok=True)
        if not (home / "models").exists():
            (home / "models").symlink_to(Path(os.environ["BENTOML_HOME"]) / "models")
        env = {"BENTOML_HOME": str(home), **env}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [str(BENTOML), "serve", "service:PenguinClassifier", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=REPO_ROOT,
            env={**os.environ, **env},
            stdout=self._log,
            stderr=subprocess.STDOUT,
            preexec_fn=die_with_parent,
        )

    def get(self, path: str) -> requests.Response:
        return requests.get(self.url + path, timeout=5)

    def readyz_history(self, timeout_s: float = 60.0) -> list[int]:
        """Poll /readyz from the start until 200; every answer in order (0: connection refused)."""
        statuses: list[int] = []
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"server exited with {self.process.returncode}:\n{self.log()}")
            try:
                statuses.append(self.get("/readyz").status_code)
            except (requests.ConnectionError, requests.Timeout):  # refused, or queued until a worker is up
                statuses.append(0)
            if statuses[-1] == 200:
                return statuses
            time.sleep(0.02)
        raise AssertionError(f"not ready after {timeout_s}s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self, timeout_s: float = 15.0) -> int:
        """SIGTERM to the server's PID (BentoML's arbiter stops its workers), SIGKILL if it hangs."""
        returncode = stop(self.process, timeout_s)
        self._log.close()
        return returncode

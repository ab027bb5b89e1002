"""docs/troubleshooting.md: each quoted message is what the code prints when the failure happens. Entries 7, 9
and 10 (Cloud Run) are produced by tests/test_cloud_run_journey.py, against the same page."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import bentoml
import pytest
from conftest import REPO_ROOT
from readme import troubleshooting

from penguin_serve.contract import MODEL_NAME, Penguin
from penguin_serve.settings import Settings

BIN = REPO_ROOT / ".venv" / "bin"
pytestmark = pytest.mark.slow  # starts servers, Locust and `bentoml serve`


def locust_against(handler: type[BaseHTTPRequestHandler]) -> subprocess.CompletedProcess:
    """A short Locust run, without a token, against a local server that answers as `handler` does."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        return subprocess.run(
            [str(BIN / "locust"), "-f", "locustfile.py", "--headless", "--host", url, "-u", "1", "-r", "1", "-t", "5s"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            timeout=120,
            env={key: value for key, value in os.environ.items() if key != "LOCUST_ID_TOKEN"},
        )
    finally:
        server.shutdown()


def test_1_locust_against_a_private_service_without_a_token():
    class Private(BaseHTTPRequestHandler):  # what Cloud Run answers a request without a token
        def log_message(self, *args):
            pass

        def do_GET(self):
            self.send_response(403, "Forbidden")
            self.send_header("Content-Length", "0")
            self.end_headers()

    result = locust_against(Private)
    assert result.returncode != 0
    assert troubleshooting(1).search(result.stdout + result.stderr), result.stderr[-2000:]


def test_2_serving_on_a_port_that_is_taken(exported_model):
    """The message, and an exit: on its own, or where the entry says it waits (Python 3.13, BentoML's usage
    reports unreachable, as on these machines), on Ctrl-C."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        command = [
            str(BIN / "bentoml"),
            "serve",
            "service:PenguinClassifier",
            "--host",
            "127.0.0.1",
            "--port",
            str(taken.getsockname()[1]),
        ]
        env = {name: value for name, value in os.environ.items() if name != "BENTOML_DO_NOT_TRACK"}
        server = subprocess.Popen(command, cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        printed: list[str] = []
        reader = threading.Thread(target=lambda: printed.extend(server.stdout), daemon=True)
        reader.start()
        try:
            try:
                server.wait(timeout=120)
            except subprocess.TimeoutExpired:
                assert sys.version_info >= (3, 13) and troubleshooting(2).search("".join(printed)), "".join(printed)[-2000:]
                server.send_signal(signal.SIGINT)
                server.wait(timeout=30)
        finally:
            server.kill()
        reader.join(10)
    assert server.returncode != 0
    assert troubleshooting(2).search("".join(printed)), "".join(printed)[-2000:]


@pytest.mark.parametrize("version", [(3, 10), (3, 14)], ids=["3.10", "3.14"])
def test_3_make_with_another_python(tmp_path, version):
    """A clean checkout's Makefile, given interpreters that report Python 3.10 and 3.14, just outside what the locks
    hold (this machine's Python with its version changed, so that the test needs no second Python)."""
    for name in ("Makefile", "requirements.txt", "requirements-dev.txt"):
        shutil.copy(REPO_ROOT / name, tmp_path / name)
    other = tmp_path / "python{}.{}".format(*version)
    other.write_text(
        f"#!/bin/sh\nexec {sys.executable} -c 'import sys; sys.version_info = {(*version, 0)}; exec(sys.argv[1])' \"$2\"\n"
    )
    other.chmod(other.stat().st_mode | stat.S_IEXEC)
    result = subprocess.run(["make", "install", f"PYTHON={other}"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert result.returncode != 0 and not (tmp_path / ".venv").exists()
    assert troubleshooting(3).search(result.stderr), result.stderr


def test_4_no_container_engine_for_this_user():
    """A user who may not use the engine's socket (nobody), with the script as a clone has it."""
    if os.getuid() != 0:
        pytest.skip("needs root, to run the script as another user")
    clone = Path(tempfile.mkdtemp())  # under /tmp, which nobody may enter (pytest's own folders are root's)
    try:
        clone.chmod(0o755)
        script = Path("scripts", "image", "container-engine.sh")
        (clone / script.parent).mkdir(parents=True)
        shutil.copy(REPO_ROOT / script, clone / script)
        result = subprocess.run(
            ["runuser", "-u", "nobody", "--", "bash", str(clone / script)],
            cwd=clone,
            capture_output=True,
            text=True,
            timeout=60,
        )
    finally:
        shutil.rmtree(clone)
    assert result.returncode != 0
    assert troubleshooting(4).search(result.stderr), result.stderr


def test_5_serving_from_an_empty_model_store(tmp_path):
    result = subprocess.run(
        [str(BIN / "bentoml"), "serve", "service:PenguinClassifier", "--port", "0"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "BENTOML_HOME": str(tmp_path)},
    )
    assert result.returncode != 0
    assert troubleshooting(5).search(result.stdout + result.stderr), result.stderr[-2000:]


def test_6_cloud_storage_refuses_the_service_account(gcs_emulator, bucket, fault_proxy, exported_model, caplog):
    from penguin_serve.loading import load_serving_model

    fault_proxy.forbidden_to = "penguin-serve@my-project.iam.gserviceaccount.com"
    settings = Settings(gcs_bucket=bucket, storage_emulator_host=fault_proxy.url, gcs_deadline_s=5)
    with caplog.at_level("WARNING", logger="penguin_serve.loading"):
        model = load_serving_model(settings, bentoml.models.get(f"{MODEL_NAME}:latest").path)
    assert model.source == "fallback"
    assert any(troubleshooting(6).search(record.getMessage()) for record in caplog.records), caplog.text


def test_8_locust_against_a_model_below_the_calibration_bar():
    spec = json.dumps({"components": {"schemas": {"Penguin": Penguin.model_json_schema()}}}).encode()

    class AlwaysGentoo(BaseHTTPRequestHandler):  # a wrong model: every bird a Gentoo
        def log_message(self, *args):
            pass

        def reply(self, payload: bytes) -> None:
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            self.reply(spec)

        def do_POST(self):
            rows = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            self.reply(json.dumps([{"prediction": "Gentoo"} for _ in rows]).encode())

    result = locust_against(AlwaysGentoo)
    assert result.returncode != 0
    assert troubleshooting(8).search(result.stdout + result.stderr), result.stderr[-2000:]

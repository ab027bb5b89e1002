"""The README's commands, run as written: the curl examples of "Try it" and of the explanations against a real
`bentoml serve` (answers compared with the ones shown, the model version aside), the BentoML client example,
and `make run`. The image and load-test commands are run by tests/test_image.py and tests/test_loadtest.py."""

import json
import os
import re
import signal
import subprocess
import sys
import time

import pytest
import requests
from conftest import REPO_ROOT, required
from readme import blocks, commands, section

from scripts.processes import free_port

pytestmark = pytest.mark.slow  # starts servers or processes of its own

README_URL = "http://127.0.0.1:3000"
API = REPO_ROOT / "docs" / "api.md"
EXPLANATIONS = REPO_ROOT / "docs" / "explanations.md"


def comparable(text: str):
    """A JSON answer with every model version blanked and floats rounded: the README shows a model trained
    earlier with the same seed."""

    def normalize(value):
        if isinstance(value, dict):
            return {k: "<version>" if k == "model_version" else normalize(v) for k, v in value.items()}
        if isinstance(value, list):
            return [normalize(v) for v in value]
        return round(value, 6) if isinstance(value, float) else value

    return normalize(json.loads(text))


@pytest.mark.parametrize(
    "command",
    commands(section("Call it")) + commands(section("Try it", API)) + commands(EXPLANATIONS.read_text()),
    ids=lambda c: c.text.split("\n")[0][:70],
)
def test_curl_examples_answer_as_shown(served, command):
    curl = required("curl")  # a fresh machine may have none
    result = subprocess.run(
        ["bash", "-c", command.text.replace(README_URL, served.url)],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, "PATH": f"{os.path.dirname(curl)}:{os.environ['PATH']}"},
    )
    assert result.returncode == 0, result.stderr
    assert comparable(result.stdout) == comparable(command.output)


def test_client_example_prints_what_the_readme_shows(served):
    text = section("Call it")
    [code] = blocks(text, "python")
    [printed] = blocks(text, "text")
    result = subprocess.run(
        [sys.executable, "-c", code.replace(README_URL, served.url)], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout == printed


def test_make_run_serves_on_the_port_it_is_given(exported_model):
    """The first of the two set-up commands, on a free port (the model store already holds a model here, so it
    does not train); stopped with its whole process group, which this test started."""
    port = free_port()
    process = subprocess.Popen(
        ["make", "run"],
        cwd=REPO_ROOT,
        env={**os.environ, "PORT": str(port)},
        start_new_session=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                if requests.get(f"http://127.0.0.1:{port}/health", timeout=2).status_code == 200:
                    break
            except (requests.ConnectionError, requests.Timeout):  # refused, or queued until a worker is up
                time.sleep(0.2)
        answer = requests.post(
            f"http://127.0.0.1:{port}/predict",
            json=json.loads(re.search(r"-d '(\{.*?\})'", section("Call it")).group(1)),
            timeout=5,
        )
        assert answer.json()["prediction"] == "Adelie"
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        output = process.communicate(timeout=30)[0]
    assert "Model store already holds" in output

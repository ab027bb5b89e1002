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
from readme import Shell, blocks, commands, ran, section

from scripts.dev.processes import free_port

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
    ran(command.text)  # on the test server's URL
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
    ran("make run")
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


TRAINING = REPO_ROOT / "docs" / "training.md"


def working_copy(tmp_path):
    """A folder of one's own that sees the project's files (linked), so that what the commands write (models/,
    a table of one's own) stays out of the repository."""
    import shutil

    work = tmp_path / "work"
    # A copy, not links: BentoML refuses to read files (requirements.txt) that resolve outside its working folder.
    shutil.copytree(
        REPO_ROOT, work, symlinks=True, ignore=shutil.ignore_patterns(".git", ".venv*", "models", "load_results", ".*cache*")
    )
    (work / ".venv").symlink_to(REPO_ROOT / ".venv")
    return work


def test_training_commands_as_typed(exported_model, gcs_emulator, bucket, tmp_path):
    """The README's own-table and push-without-training lines and docs/training.md's training run."""
    from importlib import resources

    import pandas as pd

    from penguin_serve.contract import MODEL_NAME

    work = working_copy(tmp_path)
    pd.read_csv(resources.files("palmerpenguins").joinpath("data/penguins.csv")).to_csv(work / "my_penguins.csv", index=False)
    env = {**os.environ, "STORAGE_EMULATOR_HOST": gcs_emulator.url, "GCS_BUCKET_NAME": bucket}
    shell = Shell(env, tmp_path / "variables.sh", cwd=work)
    own_table, push_stored = [c.text for c in commands(section("Set up: two commands")) if "train.py" in c.text]
    assert "Saved penguin_classifier:" in shell.ok(own_table)
    assert json.loads((work / "models" / "metadata.json").read_text())["dataset"]["name"] == "my_penguins.csv"
    pushed = shell.ok(push_stored)
    stored = __import__("bentoml").models.get(MODEL_NAME).tag.version
    assert f"Pushed to gs://{bucket}/{MODEL_NAME}/{stored}/ and moved latest." in pushed

    [run] = [c for c in commands(section("Train", TRAINING)) if c.text == ".venv/bin/python train.py"]
    printed = shell.ok(run.text)
    assert printed.splitlines()[:-1] == run.output.splitlines()[:-1]


def test_trying_cloud_storage_without_a_google_account_as_typed(exported_model, tmp_path):
    """docs/training.md's block as one terminal types it (each `&` job waited for before the next command, as a
    person would), on free ports instead of 4443 and 3000; the background jobs end with their process group."""
    block = commands(section("The model in Google Cloud Storage", TRAINING))
    emulator_port, service_port = free_port(), free_port()
    lines = []
    for command in block:
        ran(command.text)  # on free ports
        text = command.text.replace("4443", str(emulator_port)).replace("127.0.0.1:3000", f"127.0.0.1:{service_port}")
        lines.append(text)
        if text.startswith(".venv/bin/python -m scripts.dev.gcs_emulator"):
            lines.append(
                f"timeout 60 bash -c 'until curl -s 127.0.0.1:{emulator_port}/storage/v1/b >/dev/null; do sleep 0.1; done'"
            )
        if text.startswith("make run"):
            lines.append(f"timeout 120 bash -c 'until curl -sf 127.0.0.1:{service_port}/readyz >/dev/null; do sleep 0.2; done'")
        lines.append(f"echo '--- {len(lines)}'")
    curl = required("curl")
    log = tmp_path / "terminal.txt"  # a file, not a pipe: the background jobs outlive the script
    with log.open("w") as terminal:
        process = subprocess.Popen(
            ["bash", "-c", "set -e\n" + "\n".join(lines)],
            cwd=working_copy(tmp_path),
            env={**os.environ, "PORT": str(service_port), "PATH": f"{os.path.dirname(curl)}:{os.environ['PATH']}"},
            start_new_session=True,
            stdout=terminal,
            stderr=subprocess.STDOUT,
        )
        try:
            process.wait(timeout=240)
        finally:
            os.killpg(process.pid, signal.SIGTERM)
    output = log.read_text()
    assert process.returncode == 0, output[-3000:]
    assert re.search(r"Pushed to gs://penguin-models/penguin_classifier/(\w+)/ and moved latest\.", output), output[-3000:]
    version = re.search(r"penguin_classifier/(\w+)/ and moved latest", output).group(1)
    assert '"source":"gcs"' in output.replace(" ", "") and f'penguin_model_info{{source="gcs",version="{version}"}} 1.0' in output

"""docs/cloud-run.md as a user types it, against the local Cloud Run of tests/stand_in (real image per revision,
a router that splits traffic by percent, the private token), a local registry and the Cloud Storage emulator;
the project is set up by the page's "Set up a project (once)" and "Deploy" (tests/cloud_project.py). Where
traffic went is read from the answers: each revision's /health names it (K_REVISION, as Cloud Run sets).
"""

from __future__ import annotations

import csv
import json
import os
import re
import shlex
import shutil
import subprocess
from collections import Counter
from pathlib import Path

import pytest
import real_gcloud
import requests
from cloud_project import DESCRIBE, SAMPLE, cloud, latest_ready, project, served_by, token, typed, usual_birds  # noqa: F401 - fixtures by name
from conftest import REPO_ROOT
from containers import docker, docker_cli
from readme import README, Shell, commands, troubleshooting
from traffic import SHARED_CORES_LATENCY_RATIO, PredictionLoad

BULK_SCORING = REPO_ROOT / "docs" / "bulk-scoring.md"
SPLIT_SAMPLE = 800  # requests per measured split: at 10 %, a standard deviation of 1.1 points


def canary(shell: Shell, command: str, url: str, birds: list[dict], kill_at: int | None = None) -> tuple[int, str, dict]:
    """Runs a canary under prediction traffic, measuring the traffic split at each step below 100 % while the
    gate waits; with kill_at, the new revision's container is killed as that step starts instead, as an instance
    that crashes under traffic. Its exit status, its output, and (revision, shares) per step."""
    with PredictionLoad(url, lambda: token(shell), birds):
        return watched(shell, shell.popen(command), url, kill_at)


def watched(shell: Shell, process, url: str, kill_at: int | None) -> tuple[int, str, dict]:
    output, shares = [], {}
    for line in process.stdout:
        output.append(line)
        step = re.search(r"^(\S+) takes (\d+) % of traffic", line)
        if step and int(step[2]) == kill_at:
            docker("kill", cloud.container_of(Path(shell.env["GCLOUD_STAND_IN_STATE"]), step[1]))
            shares[int(step[2])] = (step[1], None)
        elif step and int(step[2]) < 100:  # a token per 200 requests: they last 10 s in the quick canary
            shares[int(step[2])] = (
                step[1],
                sum((served_by(url, token(shell), 200) for _ in range(SPLIT_SAMPLE // 200)), Counter()),
            )
    return process.wait(timeout=300), "".join(output), shares


def test_the_image_is_linux_amd64_and_pushed_by_digest(project):
    shell, _, built, pushed = project
    image = built.stdout.strip().splitlines()[-1]
    assert docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout.strip() == "linux/amd64"
    registry = shell.env["REGISTRY"]
    assert re.search(rf"^pushed {re.escape(registry)}/penguin-serve:model-\w+-[0-9a-f]{{12}}$", pushed.stderr, re.MULTILINE)
    assert re.fullmatch(rf"{re.escape(registry)}/penguin-serve@sha256:[0-9a-f]{{64}}\n", pushed.stdout)


def test_the_cloud_journey_deploy_canary_rollback_deploy_again_locust_score_and_clean_up(project, gcs_emulator, usual_birds):
    shell, state, _, _ = project
    deploy_all, _, _, deploy = typed("Deploy")
    _, url_query, curl, readme_canary = typed("Deploy to Cloud Run", README)
    canary_command, rollback, deploy_again = typed("Roll out in steps, roll back")
    assert readme_canary == canary_command  # the README's line is the one run here

    # Deploy: smoke-tested, then all traffic; the URL printed; private.
    printed = shell.ok(deploy)
    assert re.search(r"smoke test of http://127\.0\.0\.1:\d+: passed", printed)
    first = latest_ready(shell)
    assert f"{first} serves 100 % of traffic" in printed
    shell.ok(url_query)
    url = shell.value("URL")
    assert f"Service URL: {url}" in printed
    health = json.loads(shell.ok(curl).strip().splitlines()[-1])
    assert health["status"] == "ok" and health["revision"] == first
    assert requests.get(f"{url}/health", timeout=10).status_code == 403
    assert requests.get(f"{url}/health", headers={"Authorization": "Bearer forged"}, timeout=10).status_code == 401
    assert served_by(url, token(shell)) == Counter({first: SAMPLE})
    template = json.loads(shell.ok(f"{DESCRIBE} --format=json"))["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["app", "collector"]
    assert template["metadata"]["annotations"]["run.googleapis.com/cpu-throttling"] == "false"

    # Canary at 10, 50, 100 %: shares measured at each step (binomial bounds far outside chance). Its identity
    # tokens last 10 s, shorter than a step, as an hour is shorter than a long rollout's steps.
    quick = f"GCLOUD_STAND_IN_TOKEN_LIFETIME_S=10 {SHARED_CORES_LATENCY_RATIO} " + canary_command.replace(
        "--step-wait-s 300", "--step-wait-s 20"
    )
    status, printed, shares = canary(shell, quick, url, usual_birds)
    assert status == 0, printed
    assert re.search(r"^decision: promoted: \S+ passed every check at 10 %, 50 % and serves all traffic$", printed, re.MULTILINE)
    second = latest_ready(shell)
    assert shares[10][0] == shares[50][0] == second != first
    # 10 % within 5 points and 50 % within 8, over 800 requests: each bound more than 4.5 standard deviations out.
    assert shares[10][1].keys() <= {first, second} and 0.05 <= shares[10][1][second] / SPLIT_SAMPLE <= 0.15, shares[10]
    assert shares[50][1].keys() <= {first, second} and 0.42 <= shares[50][1][second] / SPLIT_SAMPLE <= 0.58, shares[50]
    assert served_by(url, token(shell)) == Counter({second: SAMPLE})

    # A canary whose instance dies at 10 %: its series stop, the step's traffic never reaches the minimum by the
    # deadline, and traffic goes back as it was.
    status, printed, shares = canary(shell, quick, url, usual_birds, kill_at=10)
    third = shares[10][0]
    assert status == 1 and "rollout stopped at 10 %" in printed and "traffic: the canary served" in printed, printed
    assert third not in (first, second)
    assert served_by(url, token(shell)) == Counter({second: SAMPLE})

    # A revision with too little memory (Cloud Run's minimum) dies at start: no traffic, deploy exits 1 and says
    # where traffic stays.
    starved = shell.run(f"CLOUD_RUN_MEMORY=128Mi {deploy}")
    assert starved.returncode == 1 and troubleshooting(7).search(starved.stderr), starved.stderr[-3000:]
    assert "out of memory" in starved.stderr
    assert served_by(url, token(shell)) == Counter({second: SAMPLE})

    # Rollback pins traffic to the ready revision before the serving one, and says how to undo the pin.
    printed = shell.ok(rollback)
    assert "--to-latest" in printed
    assert served_by(url, token(shell)) == Counter({first: SAMPLE})
    # `rollback REVISION` pins the one named.
    printed = shell.ok(f"{rollback} {second}")
    assert f"all traffic is pinned to {second}" in printed
    assert served_by(url, token(shell)) == Counter({second: SAMPLE})

    # Deploy again: the pin would give the new revision no traffic; deploy says so and moves all of it.
    assert deploy_again == deploy_all == "make deploy"
    printed = shell.ok(deploy_again, timeout=1800)
    fourth = latest_ready(shell)
    assert fourth not in (first, second, third)
    assert f"traffic was pinned ({second} 100 %)" in printed and troubleshooting(10).search(printed)
    assert served_by(url, token(shell)) == Counter({fourth: SAMPLE})

    # Locust against the private URL with the token flag: every request answered as checked.
    locust, make_loadtest = typed("Load test the URL", README)
    printed = shell.ok(locust, timeout=300)
    aggregated = re.search(r"^\s*Aggregated\s+(\d+)\s+(\d+)\(", printed, re.MULTILINE)
    assert aggregated and int(aggregated[1]) > 50 and int(aggregated[2]) == 0, printed[-3000:]
    printed = shell.ok(make_loadtest, timeout=600)
    assert "is private: using `gcloud auth print-identity-token`" in printed
    report = Path(re.findall(r"^(/\S+LOAD_TEST_REPORT\.md)$", printed, re.MULTILINE)[-1])
    try:
        history = list(csv.DictReader((report.parent / "baseline_stats.csv").open()))
        total = next(row for row in history if row["Name"] == "Aggregated")
        assert int(total["Request Count"]) > 0 and int(total["Failure Count"]) == 0
    finally:
        shutil.rmtree(report.parent)

    # Bulk scoring: a job over two files, every row scored once, with the model train.py pushed.
    from penguin_serve.storage import make_client
    from penguin_serve.training.dataset import load_dataset

    columns = ["id", "island", "bill_length_mm", "bill_depth_mm", "flipper_length_mm", "body_mass_g", "sex", "year"]
    birds = [p.model_dump(mode="json") for p in load_dataset().penguins]
    surveys = Path(shell.env["HOME"]) / "surveys"
    surveys.mkdir(exist_ok=True)
    for name, part in (("north", birds[::2]), ("south", birds[1::2])):
        with (surveys / f"{name}.csv").open("w", newline="") as file:
            writer = csv.writer(file, lineterminator="\n")
            writer.writerow(columns)
            for index, bird in enumerate(part):
                writer.writerow([f"p{index}", *("" if bird[c] is None else bird[c] for c in columns[1:])])
            writer.writerow(["bad", "Atlantis", 1, 1, 1, 1, "male", 2009])  # a row the API rejects

    commands_typed = [command.text for command in commands(BULK_SCORING.read_text())]
    for command in commands_typed[:-2]:
        shell.ok(command, timeout=600)
    manifest = json.loads(shell.ok(commands_typed[-2]))
    assert (manifest["files"], manifest["rows_in"], manifest["rows_out"], manifest["rejects"]) == (
        2,
        len(birds) + 2,
        len(birds),
        2,
    )
    pushed = make_client(gcs_emulator.url).bucket("my-project-penguin-models").blob("penguin_classifier/latest")
    assert manifest["model_version"] == json.loads(pushed.download_as_text())["version"]  # train.py --push's model
    head = shell.ok(commands_typed[-1]).splitlines()
    assert head[0].startswith("key,prediction,probability_Adelie") and head[1].startswith("p0,Adelie,")

    # Clean up: the service, its revisions and its URL are gone.
    for command in typed("Clean up"):
        shell.ok(command)
    assert shell.run(f"{DESCRIBE} --format=json").returncode == 1
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/health", timeout=5)
    assert docker("ps", "-q", "--filter", f"label={cloud.LABEL}={state}", "--filter", "name=penguin-serve").stdout == ""

    # Every gcloud line of the journey is one the real gcloud accepts, where it is installed.
    if real_gcloud.unavailable_reason() is None:
        lines = [shlex.split(line) for line in (state / "calls.log").read_text().splitlines()]
        refused = [verdict for verdict in real_gcloud.judge(lines) if not verdict.parsed]
        assert not refused, "\n".join(map(str, refused))


def test_cloud_run_refuses_an_arm64_image(project, tmp_path):
    """An image built for arm64 (here: one file on scratch, which needs no emulator to build) is refused before
    any revision exists, with Cloud Run's message."""
    shell, _, _, _ = project
    (tmp_path / "file").write_text("arm64")
    (tmp_path / "Dockerfile").write_text("FROM scratch\nCOPY file /file\n")
    image = f"{shell.env['REGISTRY']}/arm64-only:1"
    build = subprocess.run(
        [docker_cli(), "build", "-q", "--platform", "linux/arm64", "-t", image, str(tmp_path)],
        env={**os.environ, "DOCKER_BUILDKIT": "1"}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert build.returncode == 0, build.stderr
    docker("push", image)
    # This registry's reference (an identical image built by an earlier run keeps that run's references too).
    references = docker("image", "inspect", "--format", "{{range .RepoDigests}}{{println .}}{{end}}", image).stdout.split()
    [digest] = [reference for reference in references if reference.startswith(shell.env["REGISTRY"])]
    docker("rmi", "-f", docker("image", "inspect", "--format", "{{.Id}}", image).stdout.strip())
    # No model bucket: the image is refused before any model matters (the journey may have removed the bucket).
    refused = shell.run(
        f"CLOUD_RUN_SERVICE=arm64-only GCS_BUCKET_NAME= .venv/bin/python -m scripts.deploy.cloudrun deploy {digest}"
    )
    assert refused.returncode == 1 and troubleshooting(9).search(refused.stderr), refused.stderr
    assert shell.run(DESCRIBE.replace("penguin-serve", "arm64-only", 1) + " --format=json").returncode == 1

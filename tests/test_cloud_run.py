"""docs/cloud-run.md as a user types it, against the local Cloud Run of tests/stand_in (real image per revision,
a router that splits traffic by percent, the private token), a local registry and the Cloud Storage emulator.
Where traffic went is read from the answers: each revision's /health names it (K_REVISION, as Cloud Run sets).
"""

from __future__ import annotations

import csv
import json
import os
import re
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT
from containers import docker, docker_cli, engine_unavailable_reason, local_registry
from readme import Shell, commands, section

sys.path.insert(0, str(REPO_ROOT / "tests" / "stand_in"))
import cloud  # noqa: E402 - the stand-in's own module, for teardown and fault injection

PAGE = REPO_ROOT / "docs" / "cloud-run.md"
STAND_IN = REPO_ROOT / "tests" / "stand_in"
SAMPLE = 200  # requests per traffic measurement


def typed(title: str) -> list[str]:
    return [command.text for command in commands(section(title, PAGE))]


@pytest.fixture(scope="module")
def project(tmp_path_factory, gcs_emulator):
    """A Google Cloud project of one's own, set up by the page's first section, with the image built and pushed
    (`make image`, then scripts/push-image.sh) once for every test here, on a machine that builds arm64 by
    default, as an Apple-silicon Mac does."""
    if reason := engine_unavailable_reason():
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("home")
    state = home / "gcloud-state"
    state.mkdir()
    with local_registry(tmp_path_factory.mktemp("registry")) as registry:
        env = {
            **os.environ,
            "PATH": f"{STAND_IN}:{os.path.dirname(docker_cli())}:{os.environ['PATH']}",
            "HOME": str(home),
            "BENTOML_HOME": str(home / "bentoml"),
            "GCLOUD_STAND_IN_STATE": str(state),
            "GCLOUD_STAND_IN_DOCKER": docker_cli(),
            "STORAGE_EMULATOR_HOST": gcs_emulator.url,
            "REGISTRY": f"{registry}/penguin-serve",  # Artifact Registry's place
            "PENGUIN_IMAGE": "penguin-cloud-run-test",
            "DOCKER_DEFAULT_PLATFORM": "linux/arm64",
        }
        shell = Shell(env, home / "variables.sh")
        try:
            for command in typed("Set up a project (once)"):
                shell.ok(command)
            _, make_image, push, *_ = typed("Deploy")
            built, pushed = shell.run(make_image, timeout=1800), shell.run(push)
            assert built.returncode == pushed.returncode == 0, built.stderr[-3000:] + pushed.stderr[-3000:]
            yield shell, state, built, pushed
        finally:
            cloud.teardown(state)
            for image in docker("images", "-q", "penguin-cloud-run-test", check=False).stdout.split():
                docker("rmi", "-f", image, check=False)


def token(shell: Shell) -> str:
    return shell.ok("gcloud auth print-identity-token").strip()


def served_by(url: str, identity_token: str, count: int = SAMPLE) -> Counter:
    """Which revision answered each of `count` requests to the service URL."""
    with requests.Session() as session:
        session.headers["Authorization"] = f"Bearer {identity_token}"
        return Counter(session.get(f"{url}/health", timeout=30).json()["revision"] for _ in range(count))


def latest_ready(shell: Shell) -> str:
    return shell.ok("gcloud run services describe penguin-serve --format='value(status.latestReadyRevisionName)'").strip()


def canary(shell: Shell, command: str, url: str, kill_at: int | None = None) -> tuple[int, str, dict]:
    """Runs a canary, measuring the traffic split at each step below 100 % while it waits; with kill_at, the new
    revision's container is killed at that step, as an instance that crashes under traffic. Its exit status,
    its output, and the revisions' shares per step."""
    process = shell.popen(command)
    output, shares = [], {}
    for line in process.stdout:
        output.append(line)
        step = re.search(r"^(\S+) takes (\d+) % of traffic", line)
        if step and int(step[2]) < 100:
            shares[int(step[2])] = (step[1], served_by(url, token(shell)))
            if int(step[2]) == kill_at:
                docker("kill", cloud.container_of(Path(shell.env["GCLOUD_STAND_IN_STATE"]), step[1]))
    return process.wait(timeout=300), "".join(output), shares


def test_the_image_is_linux_amd64_and_pushed_by_digest(project):
    shell, _, built, pushed = project
    image = built.stdout.strip().splitlines()[-1]
    assert docker("image", "inspect", "--format", "{{.Os}}/{{.Architecture}}", image).stdout.strip() == "linux/amd64"
    registry = shell.env["REGISTRY"]
    assert re.search(rf"^pushed {re.escape(registry)}/penguin-serve:model-\w+-[0-9a-f]{{12}}$", pushed.stderr, re.MULTILINE)
    assert re.fullmatch(rf"{re.escape(registry)}/penguin-serve@sha256:[0-9a-f]{{64}}\n", pushed.stdout)


def test_deploy_canary_failed_canary_rollback_then_deploy_again_and_locust(project):
    shell, state, _, _ = project
    deploy_all, _, _, deploy, url_query, curl = typed("Deploy")
    canary_command, rollback, deploy_again = typed("Roll out in steps, roll back")

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

    # Canary at 10, 50, 100 %: shares measured at each step (binomial bounds far outside chance).
    quick = canary_command.replace("--step-wait-s 300", "--step-wait-s 10")  # the steps' pause, shortened
    status, printed, shares = canary(shell, quick, url)
    assert status == 0, printed
    second = latest_ready(shell)
    assert shares[10][0] == shares[50][0] == second != first
    assert shares[10][1].keys() <= {first, second} and 6 <= shares[10][1][second] <= 40, shares[10]
    assert shares[50][1].keys() <= {first, second} and 60 <= shares[50][1][second] <= 140, shares[50]
    assert served_by(url, token(shell)) == Counter({second: SAMPLE})

    # A canary whose instance dies at 10 %: the next smoke test fails and traffic goes back as it was.
    status, printed, shares = canary(shell, quick, url, kill_at=10)
    third = shares[10][0]
    assert status == 1 and "rollout stopped before 50 %" in printed, printed
    assert third not in (first, second) and shares[10][1][third] > 0
    assert served_by(url, token(shell)) == Counter({second: SAMPLE})

    # Rollback pins traffic to the ready revision before the serving one, and says how to undo the pin.
    printed = shell.ok(rollback)
    assert "--to-latest" in printed
    assert served_by(url, token(shell)) == Counter({first: SAMPLE})

    # Deploy again: the pin would give the new revision no traffic; deploy says so and moves all of it.
    assert deploy_again == deploy_all == "make deploy"
    printed = shell.ok(deploy_again, timeout=1800)
    fourth = latest_ready(shell)
    assert fourth not in (first, second, third)
    assert f"traffic was pinned ({first} 100 %)" in printed
    assert served_by(url, token(shell)) == Counter({fourth: SAMPLE})

    # Locust against the private URL with the token flag: every request answered as checked.
    locust, make_loadtest = typed("Load-test the URL")
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
        import shutil

        shutil.rmtree(report.parent)
    assert (state / "state.json").exists()


def test_the_scoring_job_scores_every_row_once_with_the_pushed_model(project, gcs_emulator):
    shell, _, _, _ = project
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

    commands_typed = typed("Score files in bulk")
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

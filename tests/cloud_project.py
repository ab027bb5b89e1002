"""One Google Cloud project of the local Cloud Run (tests/stand_in) for a test module: set up as docs/cloud-run.md
says, with the image built and pushed, a real Prometheus as its Managed Service for Prometheus, and helpers that
read from the answers which revision served them."""

from __future__ import annotations

import os
import sys
from collections import Counter
from pathlib import Path

import pytest
import requests
from conftest import REPO_ROOT, required
from containers import docker, docker_cli, engine_unavailable_reason, local_registry
from readme import Shell, commands, section

from penguin_serve.storage import make_client

sys.path.insert(0, str(REPO_ROOT / "tests" / "stand_in"))
import cloud  # noqa: E402 - the stand-in's own module, for teardown and fault injection

PAGE = REPO_ROOT / "docs" / "cloud-run.md"
STAND_IN = REPO_ROOT / "tests" / "stand_in"
SAMPLE = 100  # requests per check of which revision serves


@pytest.fixture(scope="module")
def usual_birds(exported_model) -> list[dict]:
    """The table's birds within the model's training ranges: traffic whose out-of-distribution share is 0 on
    every revision, so that a canary's few dozen requests do not differ from the stable one's by chance."""
    from penguin_serve.contract import encode
    from penguin_serve.model import PenguinModel
    from penguin_serve.training.dataset import load_dataset

    penguins = load_dataset().penguins
    outside = PenguinModel.from_files(exported_model, source="test", nthread=1).outside_training_ranges(encode(penguins))
    return [penguin.model_dump(mode="json") for penguin, flags in zip(penguins, outside) if not flags.any()]


def typed(title: str, page: Path = PAGE) -> list[str]:
    return [command.text for command in commands(section(title, page))]


@pytest.fixture(scope="module")
def project(request, tmp_path_factory, gcs_emulator):
    """A Google Cloud project of one's own, set up by the page's first section, with the image built and pushed
    (`make image`, then scripts/image/push-image.sh) once for every test here, on a machine that builds arm64 by
    default, as an Apple-silicon Mac does. Its image is named after the module, so that modules running at once
    on two cores remove only their own."""
    if reason := engine_unavailable_reason():
        pytest.skip(reason)
    required("curl")  # the page's commands call the service with it; a fresh machine may have none
    home = tmp_path_factory.mktemp("home")
    state = home / "gcloud-state"
    state.mkdir()
    monitoring = cloud.start_prometheus(state)
    image_name = f"penguin-cloud-run-test-{request.module.__name__.removeprefix('test_cloud_run_')}"
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
            "PENGUIN_IMAGE": image_name,
            "DOCKER_DEFAULT_PLATFORM": "linux/arm64",
            # The project's Managed Service for Prometheus, and a gate that decides on a test's traffic: steps of
            # seconds, a few dozen requests each side unless a test asks for more (docs/configuration.md has the defaults).
            "CANARY_PROMETHEUS_URL": monitoring,
            "CANARY_MIN_REQUESTS": "30",
            "CANARY_STEP_DEADLINE_S": "25",
            "CANARY_POLL_S": "1",
            "CANARY_RECORD_DIR": str(home / "canary-records"),
        }
        for make_variable in ("MAKEFLAGS", "MAKELEVEL", "MFLAGS"):  # a terminal, not a `make test` recipe
            env.pop(make_variable, None)
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
            # The emulator outlives the module: a test that failed before the page's clean-up leaves its bucket,
            # which the next module's set-up would find taken (409).
            if bucket_name := shell.run('printf %s "$GCS_BUCKET_NAME"').stdout:
                if bucket := make_client(gcs_emulator.url).lookup_bucket(bucket_name):
                    bucket.delete(force=True)
            for image in docker("images", "-q", image_name, check=False).stdout.split():
                docker("rmi", "-f", image, check=False)


def token(shell: Shell) -> str:
    return shell.ok("gcloud auth print-identity-token").strip()


def served_by(url: str, identity_token: str, count: int = SAMPLE) -> Counter:
    """Which revision answered each of `count` requests to the service URL (sent 8 at a time, so that a
    measurement fits in a rollout step's pause even on a busy machine)."""
    from concurrent.futures import ThreadPoolExecutor

    def revision(_: int) -> str:
        answer = requests.get(f"{url}/health", headers={"Authorization": f"Bearer {identity_token}"}, timeout=30)
        return answer.json()["revision"] if answer.status_code == 200 else f"HTTP {answer.status_code}: {answer.text}"

    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(revision, range(count)))


DESCRIBE = "gcloud run services describe penguin-serve --region $CLOUD_RUN_REGION --project $GCP_PROJECT"


def latest_ready(shell: Shell) -> str:
    return shell.ok(f"{DESCRIBE} --format='value(status.latestReadyRevisionName)'").strip()

"""Cloud Run operations against a stand-in `gcloud` that records its arguments: the exact command lines and
their order. Smoke tests of the "canary revision" hit a real local `bentoml serve`."""

import json
import os
import subprocess
import sys

import pytest
import yaml

from conftest import REPO_ROOT
from scripts.processes import free_port

IMAGE = "europe-west1-docker.pkg.dev/demo/penguin-serve/penguin-serve@sha256:" + "ab" * 32
WHERE = ["--project", "demo", "--region", "europe-west1"]
DEPLOY = [
    "run", "deploy", "penguin-serve", *WHERE, "--image", IMAGE, "--port", "8080", "--cpu", "1", "--memory", "1Gi",
    "--concurrency", "80", "--min-instances", "0", "--max-instances", "10", "--timeout", "30",
    "--cpu-boost", "--service-account", "penguin-serve@demo.iam.gserviceaccount.com",
    "--set-env-vars", "GCS_BUCKET_NAME=penguin-models,GCS_MODEL_PREFIX=penguin_classifier",
    "--startup-probe", "httpGet.path=/readyz,httpGet.port=8080,periodSeconds=1,timeoutSeconds=1,failureThreshold=30",
    "--liveness-probe", "httpGet.path=/livez,httpGet.port=8080,periodSeconds=10,timeoutSeconds=1,failureThreshold=3",
]
PREVIOUS = "penguin-serve-00001-old"


def traffic(*args):
    return ["run", "services", "update-traffic", "penguin-serve", *WHERE, *args]


def cloudrun(tmp_path, *args, canary_url="http://127.0.0.1:9"):
    calls = tmp_path / "calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{REPO_ROOT / 'tests' / 'stand_in'}{os.pathsep}{os.environ['PATH']}",
        "GCLOUD_CALLS": str(calls), "GCLOUD_PREVIOUS_REVISION": PREVIOUS, "GCLOUD_CANARY_URL": canary_url,
        "GCLOUD_REVISIONS": "penguin-serve-00002-new,penguin-serve-00001-old",
        "GCP_PROJECT": "demo", "GCS_BUCKET_NAME": "penguin-models",
    }
    result = subprocess.run([sys.executable, "scripts/cloudrun.py", *args], cwd=REPO_ROOT, env=env,
                            capture_output=True, text=True, timeout=120)
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return result, recorded


def test_deploy_is_private_by_digest_with_probes_and_settings(tmp_path):
    result, calls = cloudrun(tmp_path, "deploy", IMAGE)
    assert result.returncode == 0, result.stderr
    assert calls == [[*DEPLOY, "--no-allow-unauthenticated", "--quiet"]]


def test_public_only_when_asked(tmp_path):
    _, calls = cloudrun(tmp_path, "deploy", IMAGE, "--public")
    assert calls == [[*DEPLOY, "--allow-unauthenticated", "--quiet"]]


def test_deploy_refuses_a_tag(tmp_path):
    result, calls = cloudrun(tmp_path, "deploy", "europe-west1-docker.pkg.dev/demo/r/penguin-serve:latest")
    assert result.returncode != 0 and "by digest" in result.stderr and calls == []


def test_canary_rollout_in_steps_then_promote(tmp_path, served):
    result, calls = cloudrun(tmp_path, "canary", IMAGE, "--step-wait-s", "0", canary_url=served.url)
    assert result.returncode == 0, result.stderr
    assert calls == [
        ["run", "services", "describe", "penguin-serve", *WHERE, "--format=value(status.latestReadyRevisionName)"],
        [*DEPLOY, "--no-allow-unauthenticated", "--quiet", "--no-traffic", "--tag", "canary"],
        ["run", "services", "describe", "penguin-serve", *WHERE, "--format=json"],
        ["auth", "print-identity-token"],
        traffic("--to-tags", "canary=10"),
        traffic("--to-tags", "canary=50"),
        traffic("--to-tags", "canary=100"),
        traffic("--to-latest"),
    ]
    assert result.stdout.count("smoke test of " + served.url + ": passed") == 3


def test_failed_smoke_test_stops_the_rollout_and_restores_the_previous_revision(tmp_path):
    dead_url = f"http://127.0.0.1:{free_port()}"  # nothing listens: the new revision does not answer
    result, calls = cloudrun(tmp_path, "canary", IMAGE, "--step-wait-s", "0", canary_url=dead_url)
    assert result.returncode == 1
    assert calls[-1] == traffic("--to-revisions", f"{PREVIOUS}=100")
    assert not any(call[:4] == traffic()[:4] and "--to-tags" in call for call in calls)
    assert "rollout stopped before 10 %" in result.stderr


def test_rollback_to_the_previous_revision(tmp_path):
    result, calls = cloudrun(tmp_path, "rollback")
    assert result.returncode == 0
    assert calls == [
        ["run", "revisions", "list", "--service", "penguin-serve", *WHERE, "--sort-by=~metadata.creationTimestamp",
         "--limit=2", "--format=value(metadata.name)"],
        traffic("--to-revisions", "penguin-serve-00001-old=100"),
    ]


def test_rollback_to_a_named_revision(tmp_path):
    _, calls = cloudrun(tmp_path, "rollback", "penguin-serve-00007-abc")
    assert calls == [traffic("--to-revisions", "penguin-serve-00007-abc=100")]


def test_dry_run_prints_the_exact_commands_and_runs_none(tmp_path):
    result, calls = cloudrun(tmp_path, "canary", IMAGE, "--dry-run")
    assert result.returncode == 0 and calls == []
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]
    assert printed[1].startswith("+ gcloud run deploy penguin-serve --project demo --region europe-west1 --image " + IMAGE)
    assert printed[-1] == "+ gcloud run services update-traffic penguin-serve --project demo --region europe-west1 --to-latest"
    assert len(printed) == 8


def test_service_yaml_matches_the_deploy_settings(tmp_path):
    result, _ = cloudrun(tmp_path, "service-yaml", IMAGE)
    service = yaml.safe_load(result.stdout)
    template = service["spec"]["template"]
    container = template["spec"]["containers"][0]
    assert service["metadata"]["name"] == "penguin-serve" and container["image"] == IMAGE
    assert container["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert container["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert {e["name"]: e["value"] for e in container["env"]} == {"GCS_BUCKET_NAME": "penguin-models", "GCS_MODEL_PREFIX": "penguin_classifier"}
    assert template["spec"]["containerConcurrency"] == 80 and template["spec"]["timeoutSeconds"] == 30
    assert template["spec"]["serviceAccountName"] == "penguin-serve@demo.iam.gserviceaccount.com"
    assert template["metadata"]["annotations"] == {"autoscaling.knative.dev/minScale": "0", "autoscaling.knative.dev/maxScale": "10",
                                                   "run.googleapis.com/startup-cpu-boost": "true"}
    for probe, flag in (("startupProbe", "--startup-probe"), ("livenessProbe", "--liveness-probe")):
        spec = container[probe]
        as_flag = (f"httpGet.path={spec['httpGet']['path']},httpGet.port={spec['httpGet']['port']},periodSeconds={spec['periodSeconds']},"
                   f"timeoutSeconds={spec['timeoutSeconds']},failureThreshold={spec['failureThreshold']}")
        assert DEPLOY[DEPLOY.index(flag) + 1] == as_flag

"""Cloud Run operations against a stand-in `gcloud` that records its arguments: the exact command lines and
their order. Smoke tests of the "canary revision" hit a real local `bentoml serve`."""

import json
import os
import shlex
import subprocess
import sys

import yaml
from conftest import REPO_ROOT

from scripts.processes import free_port

IMAGE = "europe-west1-docker.pkg.dev/demo/penguin-serve/penguin-serve@sha256:" + "ab" * 32
WHERE = ["--project", "demo", "--region", "europe-west1"]
SERVICE = [
    "run",
    "deploy",
    "penguin-serve",
    *WHERE,
    "--concurrency",
    "80",
    "--min-instances",
    "0",
    "--max-instances",
    "10",
    "--timeout",
    "30",
    "--cpu-boost",
    "--service-account",
    "penguin-serve@demo.iam.gserviceaccount.com",
]
APP = [
    "--image",
    IMAGE,
    "--port",
    "8080",
    "--cpu",
    "1",
    "--memory",
    "1Gi",
    "--set-env-vars",
    "GCS_BUCKET_NAME=penguin-models,GCS_MODEL_PREFIX=penguin_classifier",
    "--startup-probe",
    "httpGet.path=/readyz,httpGet.port=8080,periodSeconds=1,timeoutSeconds=1,failureThreshold=30",
    "--liveness-probe",
    "httpGet.path=/livez,httpGet.port=8080,periodSeconds=10,timeoutSeconds=1,failureThreshold=3",
]
SIDECAR = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
COLLECTOR = [
    "--image",
    SIDECAR,
    "--depends-on",
    "app",
    "--set-secrets",
    "/etc/rungmp/config.yaml=penguin-serve-run-monitoring:latest",
]
# The default deploy: the service and the Managed Service for Prometheus sidecar, CPU kept between requests.
DEPLOY = [*SERVICE, "--no-cpu-throttling", "--container", "app", *APP, "--container", "collector", *COLLECTOR]
PREVIOUS = "penguin-serve-00001-old"


def traffic(*args):
    return ["run", "services", "update-traffic", "penguin-serve", *WHERE, *args]


def cloudrun(tmp_path, *args, canary_url="http://127.0.0.1:9", **env_vars):
    tmp_path.mkdir(parents=True, exist_ok=True)
    calls = tmp_path / "calls.jsonl"
    env = {
        **os.environ,
        "PATH": f"{REPO_ROOT / 'tests' / 'stand_in'}{os.pathsep}{os.environ['PATH']}",
        "GCLOUD_CALLS": str(calls),
        "GCLOUD_PREVIOUS_REVISION": PREVIOUS,
        "GCLOUD_CANARY_URL": canary_url,
        "GCLOUD_REVISIONS": "penguin-serve-00002-new,penguin-serve-00001-old",
        "GCP_PROJECT": "demo",
        "GCS_BUCKET_NAME": "penguin-models",
        **env_vars,
    }
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cloudrun", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    recorded = [json.loads(line) for line in calls.read_text().splitlines()] if calls.exists() else []
    return result, recorded


def test_deploy_is_private_by_digest_with_probes_and_settings(tmp_path):
    result, calls = cloudrun(tmp_path, "deploy", IMAGE)
    assert result.returncode == 0, result.stderr
    assert calls == [[*DEPLOY, "--no-allow-unauthenticated", "--quiet"]]


def test_deploy_without_the_sidecar_when_opted_out(tmp_path):
    result, calls = cloudrun(tmp_path, "deploy", IMAGE, CLOUD_RUN_PROMETHEUS_SIDECAR="false")
    assert result.returncode == 0, result.stderr
    assert calls == [[*SERVICE, *APP, "--no-allow-unauthenticated", "--quiet"]]


def test_monitoring_config_creates_the_secret_once_then_adds_versions(tmp_path):
    from_file = f"--data-file={REPO_ROOT / 'monitoring' / 'run-monitoring.yaml'}"
    grant = [
        "secrets",
        "add-iam-policy-binding",
        "penguin-serve-run-monitoring",
        "--project",
        "demo",
        "--member",
        "serviceAccount:penguin-serve@demo.iam.gserviceaccount.com",
        "--role",
        "roles/secretmanager.secretAccessor",
    ]
    describe = ["secrets", "describe", "penguin-serve-run-monitoring", "--project", "demo"]
    _, first = cloudrun(tmp_path / "first", "monitoring-config")
    assert first == [describe, ["secrets", "create", "penguin-serve-run-monitoring", "--project", "demo", from_file], grant]
    _, later = cloudrun(tmp_path / "later", "monitoring-config", GCLOUD_SECRET_EXISTS="1")
    assert later == [
        describe,
        ["secrets", "versions", "add", "penguin-serve-run-monitoring", "--project", "demo", from_file],
        grant,
    ]


def test_alert_policies_and_dashboard_from_the_files_in_monitoring(tmp_path):
    _, calls = cloudrun(tmp_path / "alerts", "alert-policies")
    assert calls == [
        [
            "monitoring",
            "policies",
            "migrate",
            f"--policies-from-prometheus-alert-rules-yaml={REPO_ROOT / 'monitoring' / 'alert-rules.yaml'}",
            "--project",
            "demo",
        ]
    ]
    _, calls = cloudrun(tmp_path / "dashboard", "dashboard")
    assert calls == [
        [
            "monitoring",
            "dashboards",
            "create",
            f"--config-from-file={REPO_ROOT / 'monitoring' / 'dashboard.json'}",
            "--project",
            "demo",
        ]
    ]


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
        [
            "run",
            "revisions",
            "list",
            "--service",
            "penguin-serve",
            *WHERE,
            "--sort-by=~metadata.creationTimestamp",
            "--limit=2",
            "--format=value(metadata.name)",
        ],
        traffic("--to-revisions", "penguin-serve-00001-old=100"),
    ]


def test_rollback_to_a_named_revision(tmp_path):
    _, calls = cloudrun(tmp_path, "rollback", "penguin-serve-00007-abc")
    assert calls == [traffic("--to-revisions", "penguin-serve-00007-abc=100")]


def test_dry_run_prints_the_exact_commands_and_runs_none(tmp_path):
    result, calls = cloudrun(tmp_path, "canary", IMAGE, "--dry-run")
    assert result.returncode == 0 and calls == []
    printed = [line for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]
    assert printed[1] == "+ " + shlex.join(
        ["gcloud", *DEPLOY, "--no-allow-unauthenticated", "--quiet", "--no-traffic", "--tag", "canary"]
    )
    assert printed[-1] == "+ gcloud run services update-traffic penguin-serve --project demo --region europe-west1 --to-latest"
    assert len(printed) == 8


def test_service_yaml_matches_the_deploy_settings(tmp_path):
    result, _ = cloudrun(tmp_path, "service-yaml", IMAGE)
    service = yaml.safe_load(result.stdout)
    template = service["spec"]["template"]
    app, collector = template["spec"]["containers"]
    assert service["metadata"]["name"] == "penguin-serve" and (app["name"], app["image"]) == ("app", IMAGE)
    assert app["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert app["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert {e["name"]: e["value"] for e in app["env"]} == {
        "GCS_BUCKET_NAME": "penguin-models",
        "GCS_MODEL_PREFIX": "penguin_classifier",
    }
    assert template["spec"]["containerConcurrency"] == 80 and template["spec"]["timeoutSeconds"] == 30
    assert template["spec"]["serviceAccountName"] == "penguin-serve@demo.iam.gserviceaccount.com"
    assert template["metadata"]["annotations"] == {
        "autoscaling.knative.dev/minScale": "0",
        "autoscaling.knative.dev/maxScale": "10",
        "run.googleapis.com/startup-cpu-boost": "true",
        "run.googleapis.com/container-dependencies": '{"collector":["app"]}',  # = --depends-on app
        "run.googleapis.com/cpu-throttling": "false",  # = --no-cpu-throttling
    }
    for probe, flag in (("startupProbe", "--startup-probe"), ("livenessProbe", "--liveness-probe")):
        spec = app[probe]
        as_flag = (
            f"httpGet.path={spec['httpGet']['path']},httpGet.port={spec['httpGet']['port']},periodSeconds={spec['periodSeconds']},"
            f"timeoutSeconds={spec['timeoutSeconds']},failureThreshold={spec['failureThreshold']}"
        )
        assert APP[APP.index(flag) + 1] == as_flag
    # The collector as deploy runs it: the same image, its configuration from the same secret at the same path.
    assert (collector["name"], collector["image"]) == ("collector", SIDECAR)
    [mount] = collector["volumeMounts"]
    [volume] = template["spec"]["volumes"]
    assert volume["name"] == mount["name"] and volume["secret"]["secretName"] == "penguin-serve-run-monitoring"
    path = f"{mount['mountPath']}/{volume['secret']['items'][0]['path']}"
    assert (
        COLLECTOR[COLLECTOR.index("--set-secrets") + 1]
        == f"{path}=penguin-serve-run-monitoring:{volume['secret']['items'][0]['key']}"
    )


def test_service_yaml_without_the_sidecar_when_opted_out(tmp_path):
    result, _ = cloudrun(tmp_path, "service-yaml", IMAGE, CLOUD_RUN_PROMETHEUS_SIDECAR="false")
    template = yaml.safe_load(result.stdout)["spec"]["template"]
    assert [c["name"] for c in template["spec"]["containers"]] == ["app"] and "volumes" not in template["spec"]
    assert set(template["metadata"]["annotations"]) == {
        "autoscaling.knative.dev/minScale",
        "autoscaling.knative.dev/maxScale",
        "run.googleapis.com/startup-cpu-boost",
    }


def test_job_deploy_grants_read_on_the_input_and_create_on_the_output_prefix_then_deploys(tmp_path):
    _, calls = cloudrun(
        tmp_path,
        "job-deploy",
        IMAGE,
        "gs://survey-data/2026/penguins",
        "gs://scores/penguins/run-1",
        "--tasks",
        "20",
        "--parallelism",
        "8",
        "--max-retries",
        "2",
        "--task-timeout",
        "1800",
        "--key-column",
        "id",
    )
    member = "serviceAccount:penguin-score@demo.iam.gserviceaccount.com"

    def on_prefix(bucket, prefix, title):
        return (
            f'--condition=expression=resource.type == "storage.googleapis.com/Bucket" || '
            f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}/"),title={title}'
        )

    def grant(bucket, role, *condition):
        return ["storage", "buckets", "add-iam-policy-binding", f"gs://{bucket}", "--member", member, "--role", role, *condition]

    assert calls == [
        grant("survey-data", "roles/storage.objectViewer", on_prefix("survey-data", "2026/penguins", "penguin-score-input")),
        grant("scores", "roles/storage.objectCreator", on_prefix("scores", "penguins/run-1", "penguin-score-output")),
        grant("scores", "roles/storage.objectViewer", on_prefix("scores", "penguins/run-1", "penguin-score-output")),
        grant("penguin-models", "roles/storage.objectViewer"),
        [
            "run",
            "jobs",
            "deploy",
            "penguin-score",
            *WHERE,
            "--image",
            IMAGE,
            "--command",
            "python",
            "--args=-m,penguin_serve.jobs.score",
            "--tasks",
            "20",
            "--parallelism",
            "8",
            "--max-retries",
            "2",
            "--task-timeout",
            "1800s",
            "--cpu",
            "1",
            "--memory",
            "2Gi",
            "--service-account",
            "penguin-score@demo.iam.gserviceaccount.com",
            "--set-env-vars",
            "^;^SCORE_INPUT=gs://survey-data/2026/penguins;SCORE_OUTPUT=gs://scores/penguins/run-1;"
            "GCS_BUCKET_NAME=penguin-models;GCS_MODEL_PREFIX=penguin_classifier;PYTHONPATH=/home/bentoml/bento/src;SCORE_KEY_COLUMN=id",
            "--quiet",
        ],
    ]


def test_job_run_waits_and_may_point_this_run_elsewhere(tmp_path):
    _, calls = cloudrun(tmp_path / "plain", "job-run")
    assert calls == [["run", "jobs", "execute", "penguin-score", *WHERE, "--wait"]]
    _, calls = cloudrun(tmp_path / "other", "job-run", "gs://survey-data/2027", "gs://scores/run-2", "--tasks", "4")
    assert calls == [
        [
            "run",
            "jobs",
            "execute",
            "penguin-score",
            *WHERE,
            "--update-env-vars",
            "^;^SCORE_INPUT=gs://survey-data/2027;SCORE_OUTPUT=gs://scores/run-2",
            "--tasks",
            "4",
            "--wait",
        ]
    ]

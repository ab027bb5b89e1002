"""Cloud Run operations, fast: the exact gcloud command lines (--dry-run prints them), the rendered YAML, and the
monitoring resources they leave in the stand-in project (tests/stand_in). The journey with containers, traffic
and rollbacks is tests/test_cloud_run.py."""

import json
import os
import shlex
import subprocess
import sys

import yaml
from conftest import REPO_ROOT
from readme import Shell, commands, section

STAND_IN = REPO_ROOT / "tests" / "stand_in"
MONITORING = REPO_ROOT / "docs" / "monitoring.md"

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


DESCRIBE = ["run", "services", "describe", "penguin-serve", *WHERE, "--format=json"]


def cloudrun(tmp_path, *args, **env_vars):
    """scripts.cloudrun against the stand-in gcloud, with a project state of its own under tmp_path; the result
    and the gcloud commands it printed (each `+ gcloud ...` line, as arguments)."""
    state = tmp_path / "gcloud-state"
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{STAND_IN}{os.pathsep}{os.environ['PATH']}",
        "GCLOUD_STAND_IN_STATE": str(state),
        "GCP_PROJECT": "demo",
        "GCS_BUCKET_NAME": "penguin-models",
        **env_vars,
    }
    result = subprocess.run(
        [sys.executable, "-m", "scripts.cloudrun", *args], cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    printed = [shlex.split(line[2:])[1:] for line in result.stdout.splitlines() if line.startswith("+ gcloud ")]
    return result, printed


def stand_in_state(tmp_path) -> dict:
    return json.loads((tmp_path / "gcloud-state" / "state.json").read_text())


def test_deploy_is_private_by_digest_with_probes_and_settings_then_takes_traffic(tmp_path):
    result, printed = cloudrun(tmp_path, "deploy", IMAGE, "--dry-run")
    assert result.returncode == 0, result.stderr
    assert printed == [
        DESCRIBE,
        [*DEPLOY, "--no-allow-unauthenticated", "--quiet", "--no-traffic", "--tag", "candidate"],
        DESCRIBE,
        traffic("--to-latest"),
        DESCRIBE,
    ]


def test_deploy_without_the_sidecar_when_opted_out(tmp_path):
    result, printed = cloudrun(tmp_path, "deploy", IMAGE, "--dry-run", CLOUD_RUN_PROMETHEUS_SIDECAR="false")
    assert result.returncode == 0, result.stderr
    assert printed[1] == [*SERVICE, *APP, "--no-allow-unauthenticated", "--quiet", "--no-traffic", "--tag", "candidate"]


def test_public_only_when_asked(tmp_path):
    _, printed = cloudrun(tmp_path, "deploy", IMAGE, "--public", "--dry-run")
    assert printed[1] == [*DEPLOY, "--allow-unauthenticated", "--quiet", "--no-traffic", "--tag", "candidate"]


def test_deploy_with_no_traffic_sends_it_none(tmp_path):
    _, printed = cloudrun(tmp_path, "deploy", IMAGE, "--no-traffic", "--dry-run")
    assert not any(command[:3] == traffic()[:3] for command in printed)


def test_deploy_refuses_a_tag(tmp_path):
    result, printed = cloudrun(tmp_path, "deploy", "europe-west1-docker.pkg.dev/demo/r/penguin-serve:latest")
    assert result.returncode != 0 and "by digest" in result.stderr and printed == []


def test_monitoring_config_creates_the_secret_once_then_adds_versions_readable_by_the_service(tmp_path):
    for _ in range(2):
        result, _ = cloudrun(tmp_path, "monitoring-config")
        assert result.returncode == 0, result.stderr
    state = stand_in_state(tmp_path)
    assert (
        state["secrets"]["penguin-serve-run-monitoring"] == [(REPO_ROOT / "monitoring" / "run-monitoring.yaml").read_text()] * 2
    )
    assert {
        "resource": "penguin-serve-run-monitoring",
        "member": "serviceAccount:penguin-serve@demo.iam.gserviceaccount.com",
        "role": "roles/secretmanager.secretAccessor",
    } in state["iam"]


def alerting_rules() -> list[dict]:
    groups = yaml.safe_load((REPO_ROOT / "monitoring" / "alert-rules.yaml").read_text())["groups"]
    return [rule for group in groups for rule in group["rules"] if "alert" in rule]


def test_alert_policies_and_dashboard_as_typed_notify_the_channel_and_a_second_run_changes_nothing(tmp_path):
    state_dir = tmp_path / "gcloud-state"
    env = {**os.environ, "PATH": f"{STAND_IN}{os.pathsep}{os.environ['PATH']}", "GCLOUD_STAND_IN_STATE": str(state_dir)}
    shell = Shell({**env, "GCP_PROJECT": "demo"}, tmp_path / "variables.sh")
    channel, export, policies, dashboard = [c.text for c in commands(section("Install the alerts and the dashboard", MONITORING))]
    shell.ok(channel)
    shell.ok(export)
    [channel_name] = stand_in_state(tmp_path)["channels"]
    assert shell.value("ALERT_NOTIFICATION_CHANNELS") == channel_name
    first = shell.ok(policies) + shell.ok(dashboard)
    assert "notify nobody" not in first
    state = stand_in_state(tmp_path)
    rules = alerting_rules()
    assert sorted(p["displayName"] for p in state["policies"].values()) == sorted(r["alert"] for r in rules)
    for policy in state["policies"].values():
        rule = next(r for r in rules if r["alert"] == policy["displayName"])
        [condition] = policy["conditions"]
        assert condition["conditionPrometheusQueryLanguage"]["query"] == " ".join(rule["expr"].split())
        assert policy["notificationChannels"] == [channel_name]
    assert [d["displayName"] for d in state["dashboards"].values()] == ["penguin-serve"]

    again = shell.ok(policies) + shell.ok(dashboard)
    assert again.count("unchanged: ") == len(rules) + 1
    assert stand_in_state(tmp_path) == state  # nothing created, updated or deleted

    # A policy of ours whose rule left the file goes; anyone else's stays.
    for name, labels in (("PenguinRetiredRule", {"managed-by": "penguin-serve"}), ("SomeoneElses", {})):
        policy = tmp_path / f"{name}.json"
        policy.write_text(json.dumps({"displayName": name, "userLabels": labels}))
        shell.ok(f"gcloud alpha monitoring policies create --policy-from-file={policy} --project demo")
    shell.ok(policies)
    names = shell.ok("gcloud alpha monitoring policies list --project demo --format='value(displayName)'").split()
    assert sorted(names) == sorted([*(r["alert"] for r in rules), "SomeoneElses"])


def test_alert_policies_without_channels_warn_and_an_unknown_channel_stops(tmp_path):
    result, _ = cloudrun(tmp_path, "alert-policies")
    assert result.returncode == 0 and "these policies notify nobody" in result.stderr
    assert all(p["notificationChannels"] == [] for p in stand_in_state(tmp_path)["policies"].values())
    result, _ = cloudrun(tmp_path, "alert-policies", "--channels", "projects/demo/notificationChannels/404")
    assert result.returncode != 0 and "notification channel projects/demo/notificationChannels/404 not found" in result.stderr


def test_dry_run_prints_the_exact_commands_and_runs_none(tmp_path):
    result, printed = cloudrun(tmp_path, "canary", IMAGE, "--dry-run")
    assert result.returncode == 0
    assert not (tmp_path / "gcloud-state" / "state.json").exists()
    assert printed == [
        DESCRIBE,
        [*DEPLOY, "--no-allow-unauthenticated", "--quiet", "--no-traffic", "--tag", "canary"],
        DESCRIBE,
        ["auth", "print-identity-token"],
        traffic("--to-tags", "canary=10"),
        traffic("--to-tags", "canary=50"),
        traffic("--to-tags", "canary=100"),
        traffic("--to-latest"),
    ]


def test_rollback_dry_run_names_the_revision_before_the_serving_one(tmp_path):
    result, printed = cloudrun(tmp_path, "rollback", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert printed[-1] == traffic("--to-revisions", "<older-revision>=100")
    assert "--to-latest" in result.stdout  # how to undo the pin


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
        "--dry-run",
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
    _, calls = cloudrun(tmp_path / "plain", "job-run", "--dry-run")
    assert calls == [["run", "jobs", "execute", "penguin-score", *WHERE, "--wait"]]
    _, calls = cloudrun(tmp_path / "other", "job-run", "gs://survey-data/2027", "gs://scores/run-2", "--tasks", "4", "--dry-run")
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

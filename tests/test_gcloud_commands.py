"""Cloud Run operations, fast: the exact gcloud command lines (--dry-run prints them) and the real gcloud's
verdict on each, and on every gcloud line of the README and docs; the rendered YAML; the revision templates the
deploy lines make; and the monitoring resources they leave in the stand-in project (tests/stand_in). The journey
with containers, traffic and rollbacks is tests/test_cloud_run_journey.py."""

import json
import os
import shlex
import subprocess
import sys

import pytest
import real_gcloud
import yaml
from conftest import REPO_ROOT
from readme import README, Shell, commands, documented_gcloud_lines, section

sys.path.insert(0, str(REPO_ROOT / "tests" / "stand_in"))
import cloud  # noqa: E402 - the stand-in's own module: its parser and revision templates

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
PRIVATE, PUBLIC = ["--no-allow-unauthenticated", "--quiet"], ["--allow-unauthenticated", "--quiet"]
APP = [
    "--container",
    "app",
    "--image",
    IMAGE,
    "--port",
    "8080",
    "--cpu",
    "1",
    "--memory",
    "1Gi",
    "--set-env-vars",
    "GCS_BUCKET_NAME=penguin-models,GCS_MODEL_PREFIX=penguin_classifier,GCS_MODEL_VERSION=<model-version>",
    "--startup-probe",
    "httpGet.path=/readyz,httpGet.port=8080,periodSeconds=1,timeoutSeconds=1,failureThreshold=30",
    "--liveness-probe",
    "httpGet.path=/livez,httpGet.port=8080,periodSeconds=10,timeoutSeconds=1,failureThreshold=3",
]
SIDECAR = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"
COLLECTOR = [
    "--container",
    "collector",
    "--image",
    SIDECAR,
    "--depends-on",
    "app",
    "--set-secrets",
    "/etc/rungmp/config.yaml=penguin-serve-run-monitoring:latest",
]
HOLD = ["--no-traffic", "--tag", "candidate"]
# The default deploy: the service's flags (all before the first --container, as gcloud requires), then the
# service container and the Managed Service for Prometheus sidecar, CPU kept between requests.
DEPLOY = [*SERVICE, *PRIVATE, *HOLD, "--no-cpu-throttling", *APP, *COLLECTOR]
# The same deploy with the service flags after the containers: what gcloud 528 refuses.
MISORDERED = [*SERVICE, "--no-cpu-throttling", *APP, *COLLECTOR, *PRIVATE, *HOLD]
PREVIOUS = "penguin-serve-00001-old"


def traffic(*args):
    return ["run", "services", "update-traffic", "penguin-serve", *WHERE, *args]


DESCRIBE = ["run", "services", "describe", "penguin-serve", *WHERE, "--format=json"]
# The model a new revision serves, resolved once (a dry run's placeholder version): `latest` now, and its folder.
PIN = [
    ["storage", "cat", "gs://penguin-models/penguin_classifier/latest"],
    ["storage", "ls", "gs://penguin-models/penguin_classifier/<model-version>/metadata.json"],
]


def cloudrun(tmp_path, *args, **env_vars):
    """scripts.deploy.cloudrun against the stand-in gcloud, with a project state of its own under tmp_path; the result
    and the gcloud commands it printed (each `+ gcloud ...` line, as arguments)."""
    state = tmp_path / "gcloud-state"
    state.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PATH": f"{STAND_IN}{os.pathsep}{os.environ['PATH']}",
        "GCLOUD_STAND_IN_STATE": str(state),
        "GCP_PROJECT": "demo",
        "GCS_BUCKET_NAME": "penguin-models",
        "TMPDIR": str(tmp_path),  # where a dry run keeps the documents it names
        **env_vars,
    }
    result = subprocess.run(
        [sys.executable, "-m", "scripts.deploy.cloudrun", *args],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
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
        *PIN,
        DEPLOY,
        DESCRIBE,
        traffic("--to-latest"),
        DESCRIBE,
    ]
    assert "the revision serves model <model-version> from gs://penguin-models/penguin_classifier/" in result.stdout


def test_deploy_without_the_sidecar_when_opted_out(tmp_path):
    result, printed = cloudrun(tmp_path, "deploy", IMAGE, "--dry-run", CLOUD_RUN_PROMETHEUS_SIDECAR="false")
    assert result.returncode == 0, result.stderr
    assert printed[3] == [*SERVICE, *PRIVATE, *HOLD, "--remove-containers", "collector", "--cpu-throttling", *APP]


def test_public_only_when_asked(tmp_path):
    _, printed = cloudrun(tmp_path, "deploy", IMAGE, "--public", "--dry-run")
    assert printed[3] == [*SERVICE, *PUBLIC, *HOLD, "--no-cpu-throttling", *APP, *COLLECTOR]


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
    assert all(p.get("notificationChannels", []) == [] for p in stand_in_state(tmp_path)["policies"].values())
    result, _ = cloudrun(tmp_path, "alert-policies", "--channels", "projects/demo/notificationChannels/404")
    assert result.returncode != 0 and "notification channel projects/demo/notificationChannels/404 not found" in result.stderr


def test_dry_run_prints_the_exact_commands_and_runs_none(tmp_path):
    result, printed = cloudrun(tmp_path, "canary", IMAGE, "--dry-run")
    assert result.returncode == 0
    assert not (tmp_path / "gcloud-state" / "state.json").exists()
    assert printed == [
        DESCRIBE,
        *PIN,
        [*SERVICE, *PRIVATE, "--no-traffic", "--tag", "canary", "--no-cpu-throttling", *APP, *COLLECTOR],
        DESCRIBE,
        *(
            line
            for percent in (10, 50, 100)
            for line in (
                ["auth", "print-identity-token"],
                traffic("--to-tags", f"canary={percent}"),
                *([["auth", "print-access-token"]] if percent < 100 else []),  # the gate's query token
            )
        ),
        traffic("--to-latest"),
    ]


@pytest.mark.parametrize("steps", ["50,10,100", "10,50", "0,100", "10,10,100", "ten,100", "100"])
def test_canary_refuses_steps_that_do_not_rise_to_100(tmp_path, steps):
    result, printed = cloudrun(tmp_path, "canary", IMAGE, "--steps", steps, "--dry-run")
    assert result.returncode == 2 and "rising percentages that end at 100" in result.stderr and printed == []


def test_canary_refuses_to_run_without_the_sidecar_whose_series_its_gate_reads(tmp_path):
    result, printed = cloudrun(tmp_path, "canary", IMAGE, "--dry-run", CLOUD_RUN_PROMETHEUS_SIDECAR="false")
    assert result.returncode == 1 and "CLOUD_RUN_PROMETHEUS_SIDECAR is off" in result.stderr and printed == []


def test_rollback_dry_run_names_the_revision_before_the_serving_one(tmp_path):
    result, printed = cloudrun(tmp_path, "rollback", "--dry-run")
    assert result.returncode == 0, result.stderr
    assert printed[-1] == traffic("--to-revisions", "<older-revision>=100")
    assert "--to-latest" in result.stdout  # how to undo the pin


@pytest.fixture
def pushed_model(gcs_emulator, bucket, exported_model) -> tuple[dict, str]:
    """A model train.py --push put in a bucket of the emulator: the settings that name it, and its version."""
    from penguin_serve.contract import MODEL_NAME
    from penguin_serve.storage import make_client
    from penguin_serve.training.publish import push_model

    version = push_model(make_client(gcs_emulator.url), bucket, MODEL_NAME, exported_model)
    return {"GCS_BUCKET_NAME": bucket, "STORAGE_EMULATOR_HOST": gcs_emulator.url}, version


def test_service_yaml_matches_the_deploy_settings(tmp_path, pushed_model):
    settings, version = pushed_model
    result, _ = cloudrun(tmp_path, "service-yaml", IMAGE, **settings)
    assert result.returncode == 0, result.stderr
    service = yaml.safe_load(result.stdout)
    template = service["spec"]["template"]
    app, collector = template["spec"]["containers"]
    assert service["metadata"]["name"] == "penguin-serve" and (app["name"], app["image"]) == ("app", IMAGE)
    assert app["ports"] == [{"name": "http1", "containerPort": 8080}]
    assert app["resources"]["limits"] == {"cpu": "1", "memory": "1Gi"}
    assert {e["name"]: e["value"] for e in app["env"]} == {
        "GCS_BUCKET_NAME": settings["GCS_BUCKET_NAME"],
        "GCS_MODEL_PREFIX": "penguin_classifier",
        "GCS_MODEL_VERSION": version,  # pinned: the one `latest` pointed to when the YAML was made
    }
    assert f"the revision serves model {version} from gs://{settings['GCS_BUCKET_NAME']}/penguin_classifier/" in result.stderr
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


def test_service_yaml_without_the_sidecar_when_opted_out(tmp_path, pushed_model):
    result, _ = cloudrun(tmp_path, "service-yaml", IMAGE, CLOUD_RUN_PROMETHEUS_SIDECAR="false", **pushed_model[0])
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
    pinned = "GCS_MODEL_VERSION=<model-version>"  # every task, a retried one too, with one model
    assert calls == [*PIN, ["run", "jobs", "execute", "penguin-score", *WHERE, "--update-env-vars", f"^;^{pinned}", "--wait"]]
    _, calls = cloudrun(tmp_path / "other", "job-run", "gs://survey-data/2027", "gs://scores/run-2", "--tasks", "4", "--dry-run")
    assert calls == [
        *PIN,
        [
            "run",
            "jobs",
            "execute",
            "penguin-score",
            *WHERE,
            "--update-env-vars",
            f"^;^SCORE_INPUT=gs://survey-data/2027;SCORE_OUTPUT=gs://scores/run-2;{pinned}",
            "--tasks",
            "4",
            "--wait",
        ],
    ]


# --- the real gcloud as the judge ---------------------------------------------------------------------------

OFF = {"CLOUD_RUN_PROMETHEUS_SIDECAR": "false"}
CHANNEL = "projects/demo/notificationChannels/1"
# Each subcommand in its main configurations: sidecar on and off, private and public, canary, rollback, the
# smoke tests' impersonated token, jobs and monitoring.
DRY_RUNS = [
    *(
        (args, env)
        for env in ({}, OFF)
        for args in (["deploy", IMAGE], ["deploy", IMAGE, "--public"], ["deploy", IMAGE, "--no-traffic"])
    ),
    (["deploy", IMAGE, "--model-version", "v20261203-abc"], {}),
    (["canary", IMAGE], {}),
    (["canary", IMAGE, "--public", "--steps", "25,100"], {}),
    (["canary", IMAGE], {"CLOUD_RUN_TOKEN_SERVICE_ACCOUNT": "deployer@demo.iam.gserviceaccount.com"}),
    (["rollback"], {}),
    (["rollback", "penguin-serve-00002-abc"], {}),
    (["monitoring-config"], {}),
    (["alert-policies"], {}),
    (["alert-policies", "--channels", CHANNEL], {}),
    (["dashboard"], {}),
    (["job-deploy", IMAGE, "gs://survey-data/2026", "gs://scores/2026"], {}),
    (["job-deploy", IMAGE, "gs://survey-data/2026", "gs://scores/2026", "--tasks", "2", "--key-column", "id"], {}),
    (["job-run"], {}),
    (["job-run", "gs://survey-data/2027", "gs://scores/2027", "--tasks", "4"], {}),
]


def dry_run_lines(tmp_path) -> list[list[str]]:
    lines = []
    for index, (args, env) in enumerate(DRY_RUNS):
        result, printed = cloudrun(tmp_path / str(index), *args, "--dry-run", **env)
        assert result.returncode == 0 and printed, (args, result.stderr)
        lines += printed
    return lines


def documented_lines() -> list[tuple[str, ...]]:
    """Every page's gcloud lines, with the variables of docs/cloud-run.md's set-up and a pushed image's."""
    [export] = [c.text for c in commands(section("Set up a project (once)", REPO_ROOT / "docs" / "cloud-run.md"))][:1]
    variables = dict(pair.split("=", 1) for pair in export.removeprefix("export ").split())
    variables |= {"IMAGE": IMAGE, "URL": "https://penguin-serve-xyz.a.run.app", "REVISION": "penguin-serve-00001-abc"}
    pages = [README, *sorted((REPO_ROOT / "docs").glob("*.md"))]
    return [line for page in pages for line in documented_gcloud_lines(page, variables)]


@pytest.fixture(scope="module")
def judge():
    if reason := real_gcloud.unavailable_reason():
        pytest.skip(reason)
    return real_gcloud.judge


def test_the_real_gcloud_parses_every_line_the_scripts_build_and_the_docs_show(tmp_path, judge):
    scripted, documented = dry_run_lines(tmp_path), documented_lines()
    assert len(documented) > 30 and any(line[:2] == ("run", "deploy") for line in map(tuple, scripted))
    verdicts = judge([*scripted, *documented], cwd=REPO_ROOT)
    refused = [verdict for verdict in verdicts if not verdict.parsed]
    print(f"the real gcloud parsed {len(verdicts) - len(refused)} of {len(verdicts)} distinct lines")
    assert not refused, f"{len(refused)} of {len(verdicts)} lines refused:\n" + "\n".join(map(str, refused))


def test_the_real_gcloud_refuses_the_deploy_line_with_service_flags_after_a_container(judge):
    """The line `make deploy` built before: the judge can fail, and fails it as gcloud does."""
    [verdict] = judge([MISORDERED])
    assert verdict.returncode == 2 and "unrecognized arguments" in verdict.message, verdict
    assert "--no-allow-unauthenticated" in verdict.message and "--no-traffic" in verdict.message


def test_the_forked_judge_says_what_gcloud_run_as_typed_says(judge):
    """The judge runs lines in processes forked after one import of gcloud (tests/gcloud_forks.py): each verdict,
    exit status and every word, is the one of gcloud run as typed, for lines it accepts, refuses, or runs."""
    lines = [MISORDERED, ["run", "services", "describe", "penguin-serve", "--project", "demo"],
             ["run", "services", "update-traffic", "penguin-serve", "--to-latest", "--region", "europe-west1", "--project", "demo"],
             ["auth", "configure-docker", "europe-west1-docker.pkg.dev", "--quiet"], ["auth", "print-identity-token"]]  # fmt: skip
    forked = judge(lines)
    assert [verdict.parsed for verdict in forked] == [False, False, True, True, True]
    assert forked == [real_gcloud.judge_one(line) for line in lines]


# Lines both the real gcloud and the stand-in refuse, with what each says.
REFUSED = [
    (MISORDERED, 2, "unrecognized arguments: --no-allow-unauthenticated --quiet --no-traffic --tag"),
    (["run", "services", "describe", "penguin-serve", "--project", "demo"], 1, "You must specify a region"),
]


@pytest.mark.parametrize(("line", "status", "message"), REFUSED, ids=["misordered-deploy", "no-region"])
def test_the_stand_in_refuses_what_the_real_gcloud_refuses(tmp_path, line, status, message):
    env = {**os.environ, "GCLOUD_STAND_IN_STATE": str(tmp_path)}
    result = subprocess.run([str(STAND_IN / "gcloud"), *line], env=env, capture_output=True, text=True, timeout=60)
    assert (result.returncode, message in result.stderr) == (status, True), result.stderr
    if real_gcloud.unavailable_reason() is None:
        [verdict] = real_gcloud.judge([line])
        assert verdict.returncode == status and not verdict.parsed, verdict


def test_the_stand_in_refuses_what_the_cloud_run_api_refuses(tmp_path):
    """Values gcloud passes on and the API refuses before anything exists: too little memory, more tasks at once
    than tasks."""
    env = {**os.environ, "GCLOUD_STAND_IN_STATE": str(tmp_path)}
    starved = [*SERVICE, *PRIVATE, *APP[:-10], "--memory", "24Mi"]
    crowded = ["run", "jobs", "deploy", "penguin-score", *WHERE, "--image", IMAGE, "--tasks", "2", "--parallelism", "10"]
    for line, message in ((starved, "Memory must be at least 128Mi"), (crowded, "must not exceed the task count")):
        result = subprocess.run([str(STAND_IN / "gcloud"), *line], env=env, capture_output=True, text=True, timeout=60)
        assert result.returncode == 1 and message in result.stderr, result.stderr


def test_job_deploy_runs_no_more_tasks_at_once_than_it_has(tmp_path):
    _, printed = cloudrun(tmp_path / "two", "job-deploy", IMAGE, "gs://a/in", "gs://b/out", "--tasks", "2", "--dry-run")
    assert printed[-1][printed[-1].index("--parallelism") + 1] == "2"
    result, printed = cloudrun(
        tmp_path / "too-many", "job-deploy", IMAGE, "gs://a/in", "gs://b/out", "--tasks", "2", "--parallelism", "5"
    )
    assert result.returncode != 0 and "--parallelism 5" in result.stderr and printed == []


def test_a_failed_describe_is_not_read_as_no_service(tmp_path):
    """A transient error describing an existing service stops the deploy with gcloud's message: a deploy that took
    it for a new service would drop --no-traffic and give an untested revision all traffic."""
    fault = "run services describe=UNAVAILABLE: the service is currently unavailable"
    result, printed = cloudrun(tmp_path, "deploy", IMAGE, GCLOUD_STAND_IN_FAULT=fault)
    assert result.returncode == 1 and "UNAVAILABLE: the service is currently unavailable" in result.stderr, result.stderr
    assert printed == [DESCRIBE] and not (tmp_path / "gcloud-state" / "state.json").exists()  # nothing was created


def test_the_sidecar_turned_off_and_on_again_leaves_the_named_containers_gcloud_would(tmp_path):
    """The revision templates the deploy lines make, as gcloud builds them from the service's last template:
    turning the sidecar off removes the collector and its CPU setting; turning it on beside a service deployed
    without it adds the collector beside the same `app` container, never beside an unnamed one."""
    on = cloudrun(tmp_path / "on", "deploy", IMAGE, "--dry-run")[1][3]
    off = cloudrun(tmp_path / "off", "deploy", IMAGE, "--dry-run", **OFF)[1][3]

    def shape(template):
        return sorted(template["containers"]), template["cpu_throttling"]

    with_sidecar = cloud.next_template(None, on)
    assert shape(with_sidecar) == (["app", "collector"], False)
    assert shape(cloud.next_template(with_sidecar, off)) == (["app"], True)
    without = cloud.next_template(None, off)
    assert shape(without) == (["app"], True)
    assert shape(cloud.next_template(without, on)) == (["app", "collector"], False)


@pytest.mark.parametrize(
    "ipam",
    [
        [{"Subnet": "172.17.0.0/16", "Gateway": "172.17.0.1"}],  # Docker's own engine
        [{"Subnet": "172.17.0.0/16"}],  # Debian's docker.io 20.10: the subnet alone
    ],
)
def test_the_stand_in_finds_the_hosts_bridge_address_on_every_engine(ipam):
    assert cloud.bridge_address(ipam) == "172.17.0.1"


def test_service_yaml_without_a_bucket_pins_no_model(tmp_path):
    result, printed = cloudrun(tmp_path, "service-yaml", IMAGE, GCS_BUCKET_NAME="")
    [app, _] = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]["containers"]
    assert "GCS_MODEL_VERSION" not in {e["name"] for e in app["env"]} and printed == []


def test_a_deploy_pins_the_version_named_or_stops_where_there_is_none(tmp_path, pushed_model):
    """Where `latest` points to nothing, or the version named does not exist, nothing is deployed."""
    settings, version = pushed_model
    result, printed = cloudrun(tmp_path / "named", "deploy", IMAGE, "--model-version", "no-such-version", **settings)
    assert result.returncode == 1 and printed[-1][:2] == ["storage", "ls"]
    assert f"no model version no-such-version in gs://{settings['GCS_BUCKET_NAME']}/penguin_classifier/" in result.stderr
    result, printed = cloudrun(tmp_path / "empty", "deploy", IMAGE, **{**settings, "GCS_MODEL_PREFIX": "nothing-here"})
    assert result.returncode == 1 and printed[-1][:2] == ["storage", "cat"]
    assert f"no model at gs://{settings['GCS_BUCKET_NAME']}/nothing-here/latest: push one first" in result.stderr
    result, _ = cloudrun(tmp_path / "yaml", "service-yaml", IMAGE, "--model-version", version, **settings)
    [app, _] = yaml.safe_load(result.stdout)["spec"]["template"]["spec"]["containers"]
    assert {e["name"]: e["value"] for e in app["env"]}["GCS_MODEL_VERSION"] == version

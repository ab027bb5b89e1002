"""Cloud Run operations: deploy by digest (with the Managed Service for Prometheus sidecar), canary rollout with
smoke tests, rollback, the Knative YAML, and monitoring: the sidecar's scrape configuration, alerting policies
and the dashboard.

    .venv/bin/python -m scripts.deploy.cloudrun monitoring-config [--dry-run]    # once, before the first deploy
    .venv/bin/python -m scripts.deploy.cloudrun deploy   IMAGE@sha256:...  [--model-version V] [--public] [--no-traffic] [--dry-run]
    .venv/bin/python -m scripts.deploy.cloudrun canary   IMAGE@sha256:...  [--model-version V] [--steps 10,50,100] [--step-wait-s 300]
                                     [--dry-run]
    .venv/bin/python -m scripts.deploy.cloudrun rollback [REVISION] [--dry-run]
    .venv/bin/python -m scripts.deploy.cloudrun service-yaml IMAGE@sha256:... [--model-version V]
    .venv/bin/python -m scripts.deploy.cloudrun alert-policies [--channels projects/P/notificationChannels/ID,...] [--dry-run]
    .venv/bin/python -m scripts.deploy.cloudrun dashboard [--dry-run]
    .venv/bin/python -m scripts.deploy.cloudrun job-deploy IMAGE@sha256:... gs://IN/prefix gs://OUT/prefix [--tasks 10]
                                     [--parallelism N] [--max-retries 3] [--task-timeout 3600] [--key-column id] [--dry-run]
    .venv/bin/python -m scripts.deploy.cloudrun job-run [gs://IN/prefix gs://OUT/prefix] [--tasks N] [--dry-run]

Settings come from the environment: scripts/deploy/settings.py's Deploy, listed with their defaults in
docs/configuration.md (GCP_PROJECT is required). The service is private unless --public. A revision serves one
model for its whole life: deploy, canary and service-yaml pin the version `latest` points to (or --model-version)
as GCS_MODEL_VERSION, so an instance that starts later loads that model too, and a rollback restores it.
"""

from __future__ import annotations

import argparse
import json
import posixpath
import re
import shlex
import shutil
import string
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from penguin_serve.contract import EXAMPLE, SPECIES
from penguin_serve.jobs.locations import split_gs_url
from penguin_serve.model import METADATA_FILE
from penguin_serve.storage import LATEST, version_prefix
from scripts.deploy import canary_gate
from scripts.deploy.settings import Canary, Deploy

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICE_YAML = REPO_ROOT / "deploy" / "service.yaml"
RUN_MONITORING = REPO_ROOT / "monitoring" / "run-monitoring.yaml"
ALERT_RULES = REPO_ROOT / "monitoring" / "alert-rules.yaml"
DASHBOARD = REPO_ROOT / "monitoring" / "dashboard.json"
GCLOUD_MIN_VERSION = 473  # the first gcloud with `run deploy`'s probe flags (README and docs/cloud-run.md quote it)
SIDECAR_CONFIG_PATH = "/etc/rungmp/config.yaml"  # where the sidecar reads its RunMonitoring configuration
# The probes, once: deploy passes them as gcloud flags, service-yaml as the YAML's startupProbe and livenessProbe.
# Traffic only once every worker's model passed its self-check; liveness while the model still loads.
PROBES = {
    "startup": {"httpGet": {"path": "/readyz", "port": 8080}, "periodSeconds": 1, "timeoutSeconds": 1, "failureThreshold": 30},
    "liveness": {"httpGet": {"path": "/livez", "port": 8080}, "periodSeconds": 10, "timeoutSeconds": 1, "failureThreshold": 3},
}


def probe_flag(probe: dict) -> str:
    """gcloud's form: httpGet.path=/readyz,httpGet.port=8080,periodSeconds=1,..."""
    return ",".join(
        f"{key}.{inner}={value}" if isinstance(values, dict) else f"{key}={values}"
        for key, values in probe.items()
        for inner, value in (values.items() if isinstance(values, dict) else [(None, values)])
    )


def probe_yaml(probe: dict, indent: int) -> str:
    """The YAML form, for a mapping nested `indent` spaces deep."""
    lines = []
    for key, values in probe.items():
        if isinstance(values, dict):
            lines += [f"{key}:", *(f"  {inner}: {value}" for inner, value in values.items())]
        else:
            lines.append(f"{key}: {values}")
    return "\n".join(" " * indent + line for line in lines)


SMOKE_RECORD, SMOKE_SPECIES = EXAMPLE, SPECIES[0]  # the API's example: the table's first Adelie


class Gcloud:
    """Runs gcloud, echoing each command (to stdout, or stderr where stdout is a document); with dry_run only
    prints it and answers with a placeholder."""

    def __init__(self, dry_run: bool, echo_to_stderr: bool = False) -> None:
        self.dry_run = dry_run
        self.echo_to = sys.stderr if echo_to_stderr else sys.stdout

    def echo(self, args: tuple[str, ...]) -> None:
        print("+ " + shlex.join(["gcloud", *args]), file=self.echo_to, flush=True)

    def __call__(self, *args: str, placeholder: str = "") -> str:
        self.echo(args)
        if self.dry_run:
            return placeholder
        return subprocess.run(["gcloud", *args], check=True, stdout=subprocess.PIPE, text=True).stdout.strip()

    def find(self, *args: str, missing: str, placeholder: str = "") -> str | None:
        """A describe's output, or None when gcloud says the resource does not exist (its message holds
        `missing`). Any other failure (a transient error, no permission) stops the command with gcloud's own
        message: it is not an answer. --dry-run answers the placeholder."""
        self.echo(args)
        if self.dry_run:
            return placeholder
        result = subprocess.run(["gcloud", *args], capture_output=True, text=True)
        if result.returncode == 0:
            return result.stdout.strip()
        if missing in result.stderr:
            return None
        sys.stderr.write(result.stderr)
        raise subprocess.CalledProcessError(result.returncode, ["gcloud", *args])

    def tries(self, *args: str) -> bool:
        """Runs a command whose failure the caller handles (gcloud's error is shown); whether it succeeded."""
        self.echo(args)
        return self.dry_run or subprocess.run(["gcloud", *args]).returncode == 0


NOT_FOUND = "NOT_FOUND"  # how the Secret Manager and Monitoring APIs say that a resource does not exist
NO_OBJECT = "matched no objects"  # how `gcloud storage` says that an object does not exist


def pinned_model(config: Deploy, gcloud: Gcloud, requested: str, serves: str = "the revision serves") -> str | None:
    """The model version a new revision serves for its whole life, or a job execution's every task scores with
    (GCS_MODEL_VERSION): `requested`, or the one `latest` points to now, resolved here and not when each
    instance or task starts. None without a bucket (the bento's model)."""
    if not config.gcs_bucket:
        return None
    folder = f"gs://{config.gcs_bucket}/{config.gcs_prefix}"
    if requested == LATEST:
        latest = f"gs://{config.gcs_bucket}/{posixpath.join(config.gcs_prefix, LATEST)}"  # storage.py's layout
        pointer = gcloud.find("storage", "cat", latest, missing=NO_OBJECT, placeholder='{"version": "<model-version>"}')
        if pointer is None:
            sys.exit(f"no model at {latest}: push one first (`train.py --push`)")
        requested = json.loads(pointer)["version"]
    metadata = f"gs://{config.gcs_bucket}/{version_prefix(config.gcs_prefix, requested)}/{METADATA_FILE}"
    if gcloud.find("storage", "ls", metadata, missing=NO_OBJECT, placeholder=metadata) is None:
        sys.exit(f"no model version {requested} in {folder}/ ({metadata} does not exist)")
    print(f"{serves} model {requested} from {folder}/ (GCS_MODEL_VERSION={requested})", file=gcloud.echo_to, flush=True)
    return requested


def require_digest(image: str) -> str:
    if "@sha256:" not in image:
        sys.exit(f"deploy by digest (IMAGE@sha256:...), not by tag: {image}")
    return image


def deploy_args(config: Deploy, image: str, public: bool, model_version: str | None, *service_flags: str) -> list[str]:
    """`gcloud run deploy`: the service's flags first, then each container's after its `--container`. gcloud
    takes only container flags after a `--container` ("Flags that are not container-specific must be
    specified before --container", `gcloud run deploy --help`)."""
    env_vars = f"GCS_BUCKET_NAME={config.gcs_bucket},GCS_MODEL_PREFIX={config.gcs_prefix}"
    if model_version:
        env_vars += f",GCS_MODEL_VERSION={model_version}"
    service = [
        "run",
        "deploy",
        config.service,
        *config.where,
        "--concurrency",
        config.concurrency,
        "--min-instances",
        config.min_instances,
        "--max-instances",
        config.max_instances,
        "--timeout",
        config.timeout_s,
        "--cpu-boost",  # start-up CPU boost: cold start is CPU-bound imports (docs/PERFORMANCE.md)
        "--service-account",
        config.service_account,
        "--allow-unauthenticated" if public else "--no-allow-unauthenticated",
        "--quiet",
        *service_flags,
    ]
    # The service container is always named, so that adding or removing the collector beside it never leaves
    # an unnamed container (gcloud adds a container for each name it has not seen).
    app = [
        "--container",
        "app",
        "--image",
        require_digest(image),
        "--port",
        "8080",
        "--cpu",
        config.cpu,
        "--memory",
        config.memory,
        "--set-env-vars",
        env_vars,
        "--startup-probe",
        probe_flag(PROBES["startup"]),
        "--liveness-probe",
        probe_flag(PROBES["liveness"]),
    ]
    if not config.prometheus_sidecar:
        # A deploy changes only what it names: a service that ran the collector keeps it, and its CPU, unless
        # told otherwise (gcloud ignores the removal of a container the service does not have).
        return [*service, "--remove-containers", "collector", "--cpu-throttling", *app]
    # Google's shape for the Managed Service for Prometheus sidecar: the collector starts after the service
    # container (--depends-on), reads its scrape configuration from Secret Manager, and the instance keeps its
    # CPU between requests (instance-based billing) so that scrapes at low traffic are not throttled away.
    collector = [
        "--container",
        "collector",
        "--image",
        config.sidecar_image,
        "--depends-on",
        "app",
        "--set-secrets",
        f"{SIDECAR_CONFIG_PATH}={config.monitoring_secret}:latest",
    ]
    return [*service, "--no-cpu-throttling", *app, *collector]


def monitoring_config(config: Deploy, gcloud: Gcloud) -> int:
    """The sidecar's scrape configuration as a new version of its secret, readable by the service account."""
    found = gcloud.find("secrets", "describe", config.monitoring_secret, "--project", config.project, missing=NOT_FOUND)
    add = ["versions", "add"] if found is not None else ["create"]
    gcloud("secrets", *add, config.monitoring_secret, "--project", config.project, f"--data-file={RUN_MONITORING}")
    gcloud(
        "secrets",
        "add-iam-policy-binding",
        config.monitoring_secret,
        "--project",
        config.project,
        "--member",
        f"serviceAccount:{config.service_account}",
        "--role",
        "roles/secretmanager.secretAccessor",
    )
    return 0


MANAGED = {"managed-by": "penguin-serve"}  # the label on the policies alert-policies keeps in step with its file
POLICIES = ["alpha", "monitoring", "policies"]  # list, create and update are in gcloud's alpha track only
DASHBOARDS = ["monitoring", "dashboards"]


def seconds(duration: str) -> int:
    """A Prometheus duration (90s, 5m, 1h) in seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    return int(duration[:-1]) * units[duration[-1]]


# Prometheus template constructs as Cloud Monitoring's documentation variables, which is all it renders: gcloud's
# `policies migrate` rule (googlecloudsdk/command_lib/monitoring/util.py), also for a value piped to a formatter.
TEMPLATE_VALUE = re.compile(r"\{\{ *(?:humanize )? *\$value *(\| *(\w+)[^}]*)?\}\}")
TEMPLATE_LABEL = re.compile(r"\{\{ *(?:humanize )? *\$labels\.([A-Za-z_]\w*) *\}\}")
VALUE_UNITS = {"humanizePercentage": " (a fraction)", "humanizeDuration": " s"}


def documentation(summary: str) -> str:
    text = TEMPLATE_LABEL.sub(r"${metric_or_resource.label.\1}", summary)
    return TEMPLATE_VALUE.sub(lambda m: "${metric.label.value}" + VALUE_UNITS.get(m[2] or "", ""), text)


def alert_policy_documents(channels: tuple[str, ...]) -> list[dict]:
    """monitoring/alert-rules.yaml as Cloud Monitoring alerting policies: one PromQL condition per alerting rule,
    what `gcloud alpha monitoring policies migrate` makes of it, with the notification channels attached."""
    import yaml

    policies = []
    for group in yaml.safe_load(ALERT_RULES.read_text())["groups"]:
        for rule in (rule for rule in group["rules"] if "alert" in rule):
            condition = {
                "query": " ".join(rule["expr"].split()),
                "duration": f"{seconds(rule.get('for', '0s'))}s",
                "evaluationInterval": "60s",
                "labels": rule.get("labels", {}),
                "ruleGroup": group["name"],
                "alertRule": rule["alert"],
            }
            policies.append({
                "displayName": rule["alert"],
                "combiner": "OR",
                "conditions": [{"displayName": rule["alert"], "conditionPrometheusQueryLanguage": condition}],
                "documentation": {"content": documentation(rule["annotations"]["summary"]), "mimeType": "text/markdown"},
                "notificationChannels": list(channels),
                "userLabels": MANAGED,
                "enabled": True,
            })  # fmt: skip
    return policies


def proto_default(value: object) -> bool:
    """A value that proto3 JSON leaves out of an API's answer: false, zero, empty."""
    return value is None or (not isinstance(value, bool) and value in ("", 0, [], {})) or value is False


def owned_equal(desired: object, current: object) -> bool:
    """Whether a resource as the API returns it holds what we sent: fields the server adds (names, etags,
    records) are not ours to compare, and a default we sent comes back omitted."""
    if proto_default(desired):
        return proto_default(current) or current == desired
    if isinstance(desired, dict):
        current = current if isinstance(current, dict) else {}
        return all(owned_equal(value, current.get(key)) for key, value in desired.items())
    if isinstance(desired, list):
        current = current if isinstance(current, list) else []
        return len(desired) == len(current) and all(map(owned_equal, desired, current))
    if isinstance(desired, int | float) and not isinstance(desired, bool) and isinstance(current, str):
        return str(desired) == current  # proto3 JSON writes 64-bit integers as strings
    return desired == current


def put(gcloud: Gcloud, group: list[str], project: str, desired: list[dict], file_flag: str, prune: bool) -> None:
    """Brings the named resources of one kind in step with `desired`, matched by display name: creates the
    missing, updates the changed, leaves the equal alone; with prune, deletes ours that are no longer desired.
    Each document goes to gcloud as a file; a dry run keeps the files and says where they are."""
    import tempfile

    existing = {
        item["displayName"]: item
        for item in json.loads(gcloud(*group, "list", "--project", project, "--format=json", placeholder="[]") or "[]")
    }
    folder = Path(tempfile.mkdtemp(prefix="penguin-serve-"))
    for index, document in enumerate(desired):
        current = existing.get(document["displayName"])
        if current and owned_equal(document, current):
            print(f"unchanged: {document['displayName']}")
            continue
        file = folder / f"{index:02d}.json"
        file.write_text(json.dumps({**document, **({"etag": current["etag"]} if current and "etag" in current else {})}))
        if current:
            gcloud(*group, "update", current["name"], f"{file_flag}={file}", "--project", project)
        else:
            gcloud(*group, "create", f"{file_flag}={file}", "--project", project)
    if gcloud.dry_run:
        print(f"the documents are in {folder}")
    else:
        shutil.rmtree(folder)
    wanted = {document["displayName"] for document in desired}
    for name, item in existing.items():
        if prune and item.get("userLabels") == MANAGED and name not in wanted:
            gcloud(*group, "delete", item["name"], "--project", project, "--quiet")


def alert_policies(config: Deploy, gcloud: Gcloud, channels: tuple[str, ...]) -> int:
    """monitoring/alert-rules.yaml as alerting policies, updated in place: a second run changes nothing."""
    for channel in channels:
        if (
            gcloud.find("alpha", "monitoring", "channels", "describe", channel, "--project", config.project, missing=NOT_FOUND)
            is None
        ):
            sys.exit(f"notification channel {channel} not found in project {config.project}")
    if not channels:
        print(
            "warning: no notification channels, so these policies notify nobody. Create one (gcloud alpha monitoring "
            "channels create --display-name=on-call --type=email --channel-labels=email_address=...) and pass "
            "--channels or set ALERT_NOTIFICATION_CHANNELS.",
            file=sys.stderr,
        )
    put(gcloud, POLICIES, config.project, alert_policy_documents(channels), "--policy-from-file", prune=True)
    return 0


def dashboard(config: Deploy, gcloud: Gcloud) -> int:
    """monitoring/dashboard.json as a Cloud Monitoring dashboard, updated in place."""
    put(gcloud, DASHBOARDS, config.project, [json.loads(DASHBOARD.read_text())], "--config-from-file", prune=False)
    return 0


BENTO_SRC = "/home/bentoml/bento/src"  # where the image holds the bento's code (BentoML's layout)


def split_gs(url: str) -> tuple[str, str]:
    if not url.startswith("gs://"):
        sys.exit(f"a Cloud Storage prefix (gs://BUCKET/PREFIX), not {url}")
    return split_gs_url(url)


def prefix_condition(bucket: str, prefix: str, title: str) -> str:
    """An IAM condition for the objects under a prefix, plus the bucket itself (listing is checked on it)."""
    expression = (
        f'resource.type == "storage.googleapis.com/Bucket" || '
        f'resource.name.startsWith("projects/_/buckets/{bucket}/objects/{prefix}/")'
    )
    return f"--condition=expression={expression},title={title}"


def job_env(config: Deploy, source: str, output: str, key_column: str | None) -> str:
    pairs = {
        "SCORE_INPUT": source,
        "SCORE_OUTPUT": output,
        "GCS_BUCKET_NAME": config.gcs_bucket,
        "GCS_MODEL_PREFIX": config.gcs_prefix,
        "PYTHONPATH": BENTO_SRC,
    }
    if key_column:
        pairs["SCORE_KEY_COLUMN"] = key_column
    return "^;^" + ";".join(f"{k}={v}" for k, v in pairs.items())  # gcloud's alternate delimiter: values hold commas


MAX_PARALLELISM = 10  # the default cap on tasks at once: each task holds the model and a chunk in memory


def job_deploy(
    config: Deploy,
    gcloud: Gcloud,
    image: str,
    source: str,
    output: str,
    tasks: int,
    parallelism: int,
    max_retries: int,
    task_timeout_s: int,
    key_column: str | None,
) -> int:
    """The scoring job, on the service's image, and its service account's access: read the input prefix, create
    objects under the output prefix (never overwrite or delete them), read the model bucket."""
    if not 0 <= parallelism <= tasks:
        sys.exit(f"--parallelism {parallelism}: Cloud Run takes 0 (as many as it can) up to --tasks ({tasks})")
    (in_bucket, in_prefix), (out_bucket, out_prefix) = split_gs(source), split_gs(output)
    member = f"serviceAccount:{config.job_service_account}"

    def grant(bucket: str, role: str, *condition: str) -> None:
        gcloud("storage", "buckets", "add-iam-policy-binding", f"gs://{bucket}", "--member", member, "--role", role, *condition)

    grant(in_bucket, "roles/storage.objectViewer", prefix_condition(in_bucket, in_prefix, "penguin-score-input"))
    for role in ("roles/storage.objectCreator", "roles/storage.objectViewer"):
        grant(out_bucket, role, prefix_condition(out_bucket, out_prefix, "penguin-score-output"))
    if config.gcs_bucket:
        grant(config.gcs_bucket, "roles/storage.objectViewer")
    gcloud(
        "run", "jobs", "deploy", config.job, *config.where,
        "--image", require_digest(image),
        "--command", "python", "--args=-m,penguin_serve.jobs.score",
        "--tasks", str(tasks), "--parallelism", str(parallelism), "--max-retries", str(max_retries),
        "--task-timeout", f"{task_timeout_s}s",
        "--cpu", "1", "--memory", config.job_memory,
        "--service-account", config.job_service_account,
        "--set-env-vars", job_env(config, source, output, key_column),
        "--quiet",
    )  # fmt: skip
    return 0


def job_run(config: Deploy, gcloud: Gcloud, source: str | None, output: str | None, tasks: int | None) -> int:
    """Execute the job and wait for it; another input and output, or another task count, for this run only. Every
    task of the execution, a retried one too, scores with the model `latest` points to as it starts."""
    variables = {}
    if source and output:
        split_gs(source), split_gs(output)
        variables |= {"SCORE_INPUT": source, "SCORE_OUTPUT": output}
    if model := pinned_model(config, gcloud, LATEST, serves="every task scores with"):
        variables["GCS_MODEL_VERSION"] = model
    overrides = ["--update-env-vars", "^;^" + ";".join(f"{k}={v}" for k, v in variables.items())] if variables else []
    if tasks:
        overrides += ["--tasks", str(tasks)]
    gcloud("run", "jobs", "execute", config.job, *config.where, *overrides, "--wait")
    return 0


def describe(config: Deploy, gcloud: Gcloud, placeholder: dict | None = None) -> dict | None:
    """The service as `gcloud run services describe` shows it, or None when it does not exist (gcloud's
    "Cannot find service"); any other failure stops with gcloud's message."""
    text = gcloud.find(
        "run", "services", "describe", config.service, *config.where, "--format=json",
        missing="Cannot find service", placeholder=json.dumps(placeholder) if placeholder else "",
    )  # fmt: skip
    return json.loads(text) if text else None


def serving(service: dict) -> dict[str, int]:
    """Percent of traffic per revision now."""
    shares: dict[str, int] = {}
    for target in service["status"].get("traffic", []):
        if target.get("percent"):
            shares[target["revisionName"]] = shares.get(target["revisionName"], 0) + target["percent"]
    return shares


def follows_latest(service: dict) -> bool:
    """Whether a deploy's new revision would get all traffic: one target, the latest revision, at 100 %."""
    targets = [t for t in service["status"].get("traffic", []) if t.get("percent")]
    return len(targets) == 1 and bool(targets[0].get("latestRevision"))


def split_text(shares: dict[str, int]) -> str:
    return ", ".join(f"{name} {percent} %" for name, percent in shares.items()) or "no revision"


def tagged(service: dict, tag: str) -> tuple[str, str]:
    """The revision a tag names and the tag's own URL."""
    entry = next(t for t in service["status"]["traffic"] if t.get("tag") == tag)
    return entry["revisionName"], entry["url"]


def where_traffic_stays(service: dict | None) -> str:
    if service is None:
        return "no service was created"
    return f"traffic stays on {split_text(serving(service))}"


def identity_token(config: Deploy, gcloud: Gcloud, public: bool, audience: str) -> str | None:
    """A fresh identity token for a private service: one lasts an hour, so each smoke test fetches its own. With
    CLOUD_RUN_TOKEN_SERVICE_ACCOUNT, that account's, for the service URL (Workload Identity Federation gives no
    token without an audience: google-github-actions/auth#291)."""
    if public:
        return None
    impersonated = (
        [f"--impersonate-service-account={config.token_service_account}", f"--audiences={audience}", "--include-email"]
        if config.token_service_account
        else []
    )
    return gcloud("auth", "print-identity-token", *impersonated, placeholder="<identity-token>")


CANDIDATE = "candidate"  # the tag deploy gives a new revision: its own URL, smoke-tested before it takes traffic
DRY_RUN_SERVICE = {
    "status": {
        "url": "<service-url>",
        "traffic": [
            {"revisionName": "<previous-revision>", "percent": 100, "latestRevision": True},
            *({"revisionName": "<new-revision>", "tag": tag, "url": f"<{tag}-url>"} for tag in (CANDIDATE, "canary")),
        ],
    }
}


def deploy(config: Deploy, gcloud: Gcloud, image: str, model_version: str, public: bool, no_traffic: bool) -> int:
    """Deploys a revision without traffic, smoke-tests it at its own URL, then sends all traffic to it and
    leaves the service following its latest revision (unless --no-traffic). A revision that does not become
    ready or fails the smoke test takes no traffic, and the exit status is 1."""
    require_digest(image)
    before = describe(config, gcloud, DRY_RUN_SERVICE)
    model = pinned_model(config, gcloud, model_version)
    # Cloud Run refuses --no-traffic for a service's first revision, which takes all traffic as it becomes ready.
    # A service that exists holds its traffic, also when none of its revisions is ready.
    hold = ["--no-traffic"] if before is not None else []
    if not gcloud.tries(*deploy_args(config, image, public, model, *hold, "--tag", CANDIDATE)):
        print(f"deploy failed (gcloud's message is above): {where_traffic_stays(before)}", file=sys.stderr)
        return 1
    after = describe(config, gcloud, DRY_RUN_SERVICE)
    revision, revision_url = tagged(after, CANDIDATE)
    if not gcloud.dry_run and not smoke_test(revision_url, identity_token(config, gcloud, public, after["status"]["url"])):
        print(f"deploy stopped: {revision} failed its smoke test; traffic stays on {split_text(serving(after))}", file=sys.stderr)
        return 1
    if no_traffic:
        print(f"{revision} takes no traffic (--no-traffic); it answers at {revision_url}")
        return 0
    if before and not follows_latest(before):
        print(
            f"traffic was pinned ({split_text(serving(before))}), as a rollback or a split leaves it, so a new revision "
            "would have taken none: it now follows the latest revision again"
        )
    gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-latest")
    now = describe(config, gcloud, DRY_RUN_SERVICE)
    print(f"{revision} serves {serving(now).get(revision, 0) if not gcloud.dry_run else 100} % of traffic")
    print(f"Service URL: {now['status']['url']}")
    return 0


def smoke_test(url: str, token: str | None) -> bool:
    """The revision answers ready and classifies a known Adelie correctly."""
    import requests

    headers = {"Authorization": f"Bearer {token}"} if token else {}
    try:
        ready = requests.get(f"{url}/readyz", headers=headers, timeout=10).status_code == 200
        answer = requests.post(f"{url}/predict", json=SMOKE_RECORD, headers=headers, timeout=10).json()
    except (requests.RequestException, ValueError) as exc:
        print(f"smoke test of {url} failed: {exc}", file=sys.stderr)
        return False
    passed = ready and answer.get("prediction") == SMOKE_SPECIES
    print(f"smoke test of {url}: {'passed' if passed else f'failed (ready={ready}, answer={answer})'}", flush=True)
    return passed


def traffic_steps(text: str) -> list[int]:
    """--steps: rising percentages of traffic that end at 100 (the last step promotes; straight to 100 % is
    `deploy`)."""
    try:
        steps = [int(step) for step in text.split(",")]
    except ValueError:
        steps = []
    if len(steps) < 2 or steps != sorted(set(steps)) or not 0 < steps[0] or steps[-1] != 100:
        raise argparse.ArgumentTypeError(
            f"{text!r}: rising percentages that end at 100, at least one below it to judge, such as 10,50,100"
        )
    return steps


def canary(
    config: Deploy,
    gcloud: Gcloud,
    image: str,
    model_version: str,
    steps: list[int],
    tag: str,
    step_wait_s: float,
    public: bool,
    limits: Canary,
) -> int:
    """The new revision takes each step's share of traffic after a smoke test at its own URL. At each step below
    100 %, the gate (scripts/deploy/canary_gate.py) compares it with the stable revision on live metrics once both
    have served enough requests; a failed smoke test or check puts traffic back as it was before the rollout.
    The last step is followed by --to-latest. Each judged step and the decision go to the decision record."""
    require_digest(image)
    if not config.prometheus_sidecar:
        sys.exit("the canary's gate reads the series the Prometheus sidecar collects: CLOUD_RUN_PROMETHEUS_SIDECAR is off")
    before = describe(config, gcloud, DRY_RUN_SERVICE)
    if before is None:
        sys.exit(f"no service {config.service} yet: deploy its first revision with `deploy`")
    model = pinned_model(config, gcloud, model_version)
    previous = serving(before)
    restore = ",".join(f"{name}={percent}" for name, percent in previous.items())
    if not gcloud.tries(*deploy_args(config, image, public, model, "--no-traffic", "--tag", tag)):
        print(f"rollout stopped (gcloud's message is above): traffic stays on {split_text(previous)}", file=sys.stderr)
        return 1
    service = describe(config, gcloud, DRY_RUN_SERVICE)
    revision, url = tagged(service, tag)
    stable = [name for name in previous if name != revision]
    record = None if gcloud.dry_run else canary_gate.Record(limits, revision)
    if record:
        print(f"decision record: {record.path}", flush=True)

    def roll_back(where: str, reason: str) -> int:
        print(f"rollout stopped {where}: traffic back to {split_text(previous)}", file=sys.stderr)
        gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-revisions", restore)
        if record:
            print(record.decide("rolled back", f"{revision} {where}: {reason}; traffic is back on {split_text(previous)}"))
        return 1

    for percent in steps:
        token = identity_token(config, gcloud, public, service["status"]["url"])
        if not gcloud.dry_run and not smoke_test(url, token):
            return roll_back(f"before {percent} %", "its smoke test failed")
        gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-tags", f"{tag}={percent}")
        print(f"{revision} takes {percent} % of traffic", flush=True)
        if percent == 100:
            break
        access_token = gcloud("auth", "print-access-token", placeholder="<access-token>")
        if gcloud.dry_run:
            continue
        prometheus = canary_gate.Prometheus(limits.prometheus_url, access_token)
        try:
            step = canary_gate.judge_step(prometheus, limits, percent, revision, stable, step_wait_s)
        except BaseException as error:  # an unreadable gate, or Ctrl-C while a step waits: the canary keeps nothing
            roll_back(f"at {percent} %", f"the gate could not judge the step ({type(error).__name__}: {error})")
            if isinstance(error, Exception):
                return 1
            raise
        record.step(step)
        if not step.passed:
            return roll_back(f"at {percent} %", canary_gate.failure_words(step))
        print(f"{revision} passed every check at {percent} % over {step.window_s} s", flush=True)
    # Promote: the service follows its newest revision again, so the next deploy is not pinned to this one.
    gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-latest")
    if record:
        judged = [f"{percent} %" for percent in steps if percent < 100]
        print(record.decide("promoted", f"{revision} passed every check at {', '.join(judged)} and serves all traffic"))
    return 0


def rollback(config: Deploy, gcloud: Gcloud, revision: str | None) -> int:
    """All traffic to a revision: by default the newest ready one older than the revision serving most."""
    if revision is None:
        service = describe(config, gcloud, DRY_RUN_SERVICE)
        listed = gcloud(
            "run", "revisions", "list", "--service", config.service, *config.where, "--format=json",
            placeholder=json.dumps([  # the revision serving in DRY_RUN_SERVICE, and a ready one before it
                {"metadata": {"name": name, "creationTimestamp": created}, "status": {"conditions": [{"type": "Ready", "status": "True"}]}}
                for name, created in (("<previous-revision>", "1"), ("<older-revision>", "0"))
            ]),
        )  # fmt: skip
        shares = serving(service) if service else {}
        current = max(shares, key=shares.get) if shares else None
        revisions = sorted(json.loads(listed), key=lambda r: r["metadata"]["creationTimestamp"], reverse=True)
        names = [r["metadata"]["name"] for r in revisions]
        older = names[names.index(current) + 1 :] if current in names else names
        ready = [
            r["metadata"]["name"]
            for r in revisions
            if r["metadata"]["name"] in older
            and any(c["type"] == "Ready" and c["status"] == "True" for c in r["status"]["conditions"])
        ]
        if not ready:
            sys.exit(f"no ready revision older than {current} to roll back to")
        revision = ready[0]
    gcloud("run", "services", "update-traffic", config.service, *config.where, "--to-revisions", f"{revision}=100")
    print(
        f"all traffic is pinned to {revision}. A pin outlasts later deploys until traffic follows the latest revision "
        f"again: `deploy` does that once its smoke test passes, or run\n"
        f"  gcloud run services update-traffic {config.service} {shlex.join(config.where)} --to-latest"
    )
    return 0


def service_yaml(config: Deploy, image: str, model_version: str | None) -> str:
    """deploy/service.yaml filled with the same settings as deploy; without the collector when the sidecar is off,
    without GCS_MODEL_VERSION when no model is pinned."""
    rendered = string.Template(SERVICE_YAML.read_text()).substitute(
        **asdict(config),
        image=require_digest(image),
        model_version=model_version or "",
        startup_probe=probe_yaml(PROBES["startup"], 12),
        liveness_probe=probe_yaml(PROBES["liveness"], 12),
    )
    if config.prometheus_sidecar and model_version:
        return rendered
    import yaml

    service = yaml.safe_load(rendered)
    template = service["spec"]["template"]
    if not model_version:
        [app] = [c for c in template["spec"]["containers"] if c["name"] == "app"]
        app["env"] = [variable for variable in app["env"] if variable["name"] != "GCS_MODEL_VERSION"]
    if config.prometheus_sidecar:
        return yaml.safe_dump(service, sort_keys=False)
    for annotation in ("run.googleapis.com/container-dependencies", "run.googleapis.com/cpu-throttling"):
        del template["metadata"]["annotations"][annotation]
    template["spec"]["containers"] = [c for c in template["spec"]["containers"] if c["name"] != "collector"]
    del template["spec"]["volumes"]
    return yaml.safe_dump(service, sort_keys=False)


def main(argv: list[str] | None = None) -> int:
    try:
        return run_command(argv)
    except subprocess.CalledProcessError as failed:  # gcloud has printed why
        print(f"stopped: `{shlex.join(failed.cmd)}` failed (exit status {failed.returncode})", file=sys.stderr)
        return failed.returncode


def run_command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in ("deploy", "canary", "service-yaml"):
        command = commands.add_parser(name)
        command.add_argument("image", help="IMAGE@sha256:... as printed by scripts/image/push-image.sh")
        command.add_argument(
            "--model-version",
            default=LATEST,
            help="the model version the revision serves (default: the one latest points to now)",
        )
        if name != "service-yaml":
            command.add_argument("--public", action="store_true", help="allow unauthenticated requests")
            command.add_argument("--dry-run", action="store_true", help="print the gcloud commands only")
    commands.choices["deploy"].add_argument(
        "--no-traffic", action="store_true", help="deploy and smoke-test the revision, but send it no traffic"
    )
    canary_parser = commands.choices["canary"]
    canary_parser.add_argument("--steps", type=traffic_steps, default="10,50,100", help="traffic percentages, rising to 100")
    canary_parser.add_argument("--tag", default="canary", help="revision tag (its URL is smoke-tested)")
    canary_parser.add_argument(
        "--step-wait-s", type=float, default=300, help="the least time a step lasts before the gate judges it"
    )
    rollback_parser = commands.add_parser("rollback")
    rollback_parser.add_argument(
        "revision", nargs="?", help="revision to send all traffic to (default: the ready one before the serving one)"
    )
    for name in ("monitoring-config", "alert-policies", "dashboard"):
        commands.add_parser(name)
    commands.choices["alert-policies"].add_argument(
        "--channels", help="comma-separated notification channels to notify (default: ALERT_NOTIFICATION_CHANNELS)"
    )
    job_deploy_parser = commands.add_parser("job-deploy")
    job_deploy_parser.add_argument("image", help="IMAGE@sha256:... (the service's image)")
    job_deploy_parser.add_argument("input", help="gs://BUCKET/PREFIX holding the CSV files")
    job_deploy_parser.add_argument("output", help="gs://BUCKET/PREFIX for predictions, rejects and the manifest")
    job_deploy_parser.add_argument("--tasks", type=int, default=10, help="tasks (each takes every N-th input file)")
    job_deploy_parser.add_argument(
        "--parallelism", type=int, help=f"tasks running at once, at most --tasks (default: --tasks, up to {MAX_PARALLELISM})"
    )
    job_deploy_parser.add_argument("--max-retries", type=int, default=3, help="retries of a failed task")
    job_deploy_parser.add_argument("--task-timeout", type=int, default=3600, help="seconds per task attempt")
    job_deploy_parser.add_argument("--key-column", help="the input column that identifies a row (default: its row number)")
    job_run_parser = commands.add_parser("job-run")
    job_run_parser.add_argument("input", nargs="?", help="another gs:// input for this run")
    job_run_parser.add_argument("output", nargs="?", help="another gs:// output for this run")
    job_run_parser.add_argument("--tasks", type=int, help="another task count for this run")
    for name in ("rollback", "monitoring-config", "alert-policies", "dashboard", "job-deploy", "job-run"):
        commands.choices[name].add_argument("--dry-run", action="store_true", help="print the gcloud commands only")
    args = parser.parse_args(argv)

    config = Deploy.from_env()
    if args.command == "service-yaml":
        require_digest(args.image)
        model = pinned_model(config, Gcloud(False, echo_to_stderr=True), args.model_version)
        print(service_yaml(config, args.image, model), end="")
        return 0
    gcloud = Gcloud(args.dry_run)
    if args.command == "deploy":
        return deploy(config, gcloud, args.image, args.model_version, args.public, args.no_traffic)
    if args.command == "canary":
        return canary(
            config, gcloud, args.image, args.model_version, args.steps, args.tag, args.step_wait_s, args.public, Canary.from_env()
        )
    if args.command == "rollback":
        return rollback(config, gcloud, args.revision)
    if args.command == "job-deploy":
        return job_deploy(
            config,
            gcloud,
            args.image,
            args.input,
            args.output,
            args.tasks,
            min(args.tasks, MAX_PARALLELISM) if args.parallelism is None else args.parallelism,
            args.max_retries,
            args.task_timeout,
            args.key_column,
        )
    if args.command == "job-run":
        return job_run(config, gcloud, args.input, args.output, args.tasks)
    if args.command == "alert-policies":
        channels = tuple(args.channels.split(",")) if args.channels else config.notification_channels
        return alert_policies(config, gcloud, channels)
    return {"monitoring-config": monitoring_config, "dashboard": dashboard}[args.command](config, gcloud)


if __name__ == "__main__":
    sys.exit(main())

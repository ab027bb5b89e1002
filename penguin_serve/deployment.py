"""The settings of the Cloud Run deploy (scripts/cloudrun.py) and of the bulk scoring job's tasks
(penguin_serve/jobs/score.py), each an environment variable declared once (variable, default, type, meaning),
and the variables that the build, test and load-test tools read. docs/configuration.md is generated from
here and from penguin_serve/settings.py (scripts/configuration.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from .configuration import from_env, setting
from .contract import MODEL_NAME

SIDECAR_IMAGE = "us-docker.pkg.dev/cloud-ops-agents-artifacts/cloud-run-gmp-sidecar/cloud-run-gmp-sidecar:1.2.0"


def _account(name: str):
    return lambda env: f"{name}@{env.get('GCP_PROJECT', '')}.iam.gserviceaccount.com"


@dataclass(frozen=True)
class Deploy:
    project: str = setting("GCP_PROJECT", "the Google Cloud project (required)", "", shown="required")
    region: str = setting("CLOUD_RUN_REGION", "the Cloud Run region", "europe-west1")
    service: str = setting("CLOUD_RUN_SERVICE", "the Cloud Run service", "penguin-serve")
    service_account: str = setting(
        "CLOUD_RUN_SERVICE_ACCOUNT",
        "the service's runtime identity",
        from_env=_account("penguin-serve"),
        shown="penguin-serve@PROJECT.iam.gserviceaccount.com",
    )
    token_service_account: str = setting(
        "CLOUD_RUN_TOKEN_SERVICE_ACCOUNT",
        "a service account to impersonate for the smoke tests' identity tokens, with the service URL as their "
        "audience (CI under Workload Identity Federation, where a token without an audience fails); "
        "empty: your own account's token",
        "",
    )
    cpu: str = setting("CLOUD_RUN_CPU", "vCPUs per instance (one worker each)", "1")
    memory: str = setting("CLOUD_RUN_MEMORY", "memory per instance", "1Gi")
    concurrency: str = setting("CLOUD_RUN_CONCURRENCY", "requests at once per instance", "80")
    min_instances: str = setting("CLOUD_RUN_MIN_INSTANCES", "instances kept warm", "0")
    max_instances: str = setting("CLOUD_RUN_MAX_INSTANCES", "the autoscaler's ceiling", "10")
    timeout_s: str = setting("CLOUD_RUN_TIMEOUT_S", "Cloud Run's request timeout, seconds", "30")
    gcs_bucket: str = setting("GCS_BUCKET_NAME", "passed to the service: serve the model from this bucket", "")
    gcs_prefix: str = setting("GCS_MODEL_PREFIX", "passed to the service: the model's folder in the bucket", MODEL_NAME)
    prometheus_sidecar: bool = setting(
        "CLOUD_RUN_PROMETHEUS_SIDECAR",
        "run the Managed Service for Prometheus collector beside the service (instance-based billing)",
        True,
    )
    sidecar_image: str = setting("CLOUD_RUN_SIDECAR_IMAGE", "the collector's image", SIDECAR_IMAGE)
    monitoring_secret: str = setting(
        "CLOUD_RUN_MONITORING_SECRET",
        "the Secret Manager secret holding the collector's configuration",
        "penguin-serve-run-monitoring",
    )
    notification_channels: tuple[str, ...] = setting(
        "ALERT_NOTIFICATION_CHANNELS",
        "comma-separated notification channels (projects/P/notificationChannels/ID) the alerting policies notify",
        (),
    )
    job: str = setting("CLOUD_RUN_JOB", "the scoring job's Cloud Run job", "penguin-score")
    job_service_account: str = setting(
        "CLOUD_RUN_JOB_SERVICE_ACCOUNT",
        "the scoring job's runtime identity",
        from_env=_account("penguin-score"),
        shown="penguin-score@PROJECT.iam.gserviceaccount.com",
    )
    job_memory: str = setting("CLOUD_RUN_JOB_MEMORY", "memory per scoring task", "2Gi")

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Deploy:
        deploy = from_env(cls, env)
        if not deploy.project:
            sys.exit("set GCP_PROJECT")
        return deploy

    @property
    def where(self) -> list[str]:
        return ["--project", self.project, "--region", self.region]


def _managed_prometheus(env: Mapping[str, str]) -> str:
    return f"https://monitoring.googleapis.com/v1/projects/{env.get('GCP_PROJECT', '')}/location/global/prometheus"


@dataclass(frozen=True)
class Canary:
    """The canary's gate (scripts/canary_gate.py): at each step below 100 %, the canary revision against the
    stable one over the same window, on the service's own Prometheus series."""

    prometheus_url: str = setting(
        "CANARY_PROMETHEUS_URL",
        "the Prometheus HTTP API the gate queries (with `gcloud auth print-access-token`); any Prometheus-compatible server",
        from_env=_managed_prometheus,
        shown="https://monitoring.googleapis.com/v1/projects/PROJECT/location/global/prometheus",
    )
    min_requests: int = setting(
        "CANARY_MIN_REQUESTS", "prediction requests each side (canary, stable) must have served before a step is judged", 200
    )
    deadline_s: float = setting(
        "CANARY_STEP_DEADLINE_S",
        "seconds a step waits for that traffic (at least --step-wait-s); too little by then fails the step",
        1800.0,
    )
    poll_s: float = setting("CANARY_POLL_S", "seconds between the gate's queries while a step waits", 10.0)
    max_error_ratio: float = setting(
        "CANARY_MAX_ERROR_RATIO", "the canary's 5xx share may reach this whatever the stable one's", 0.005
    )
    max_error_ratio_increase: float = setting(
        "CANARY_MAX_ERROR_RATIO_INCREASE", "or the stable revision's 5xx share plus this", 0.002
    )
    max_latency_ratio: float = setting(
        "CANARY_MAX_LATENCY_RATIO", "the canary's p50 and p99 latency at most this times the stable one's", 1.2
    )
    significance: float = setting(
        "CANARY_SIGNIFICANCE",
        "a latency check fails when the canary's answers slower than its limit are significantly more than 50 % "
        "(p50) or 1 % (p99) of them (one-sided binomial test at this level)",
        0.001,
    )
    max_out_of_distribution_increase: float = setting(
        "CANARY_MAX_OUT_OF_DISTRIBUTION_INCREASE",
        "the canary's share of rows out of the training range at most the stable one's plus this",
        0.01,
    )
    max_species_divergence: float = setting(
        "CANARY_MAX_SPECIES_DIVERGENCE",
        "Jensen-Shannon divergence (base 2) between the canary's and the stable predicted-species mix, at most",
        0.05,
    )
    max_confidence_drop: float = setting(
        "CANARY_MAX_CONFIDENCE_DROP", "the canary's mean confidence at least the stable one's minus this", 0.02
    )
    record_dir: str = setting(
        "CANARY_RECORD_DIR", "where each rollout's decision record (JSON lines, one per step) is written", "canary-records"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Canary:
        return from_env(cls, env)

    def thresholds(self) -> dict[str, float]:
        """What a step is judged by, as its decision record lists it."""
        return {name: getattr(self, name) for name in CANARY_THRESHOLDS}


CANARY_THRESHOLDS = (
    "min_requests", "deadline_s", "max_error_ratio", "max_error_ratio_increase", "max_latency_ratio", "significance",
    "max_out_of_distribution_increase", "max_species_divergence", "max_confidence_drop",
)  # fmt: skip


@dataclass(frozen=True)
class Job:
    input: str | None = setting("SCORE_INPUT", "the scoring job's input: a CSV file, a folder, or gs://BUCKET/PREFIX")
    output: str | None = setting("SCORE_OUTPUT", "the scoring job's output: a folder or gs://BUCKET/PREFIX")
    key_column: str | None = setting(
        "SCORE_KEY_COLUMN", "the input column that identifies a row in the output; unset: its row number in its file"
    )
    task_index: int = setting("CLOUD_RUN_TASK_INDEX", "this task's index (set by Cloud Run Jobs)", 0)
    task_count: int = setting("CLOUD_RUN_TASK_COUNT", "the job's number of tasks (set by Cloud Run Jobs)", 1)
    bento_path: str | None = setting(
        "BENTO_PATH", "where the bento lies in its image (set by BentoML's image): the job's model is the one it packs"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Job:
        return from_env(cls, env)


# Read by the build, test and load-test tools, outside Python's settings: (variable, default, meaning, read by).
TOOLS = (
    (
        "PORT",
        "3000",
        "the port `make run` serves on; in the image, the port the server listens on (Cloud Run sets 8080)",
        "Makefile, the image's entrypoint",
    ),
    ("PYTHON", "python3", "the interpreter `make` builds the virtual environments with: 3.11, 3.12 or 3.13", "Makefile"),
    ("BENTOML_HOME", "~/bentoml", "BentoML's model and bento store", "train.py, bentoml, scripts/image.sh"),
    ("LOADTEST_ARGS", "unset", "arguments for `make loadtest` (python -m scripts.loadtest --help)", "Makefile"),
    ("PENGUIN_IMAGE", "penguin-serve", "the image name `make image` builds", "scripts/image.sh"),
    (
        "REGISTRY",
        "AR_REGION-docker.pkg.dev/GCP_PROJECT/AR_REPOSITORY",
        "where scripts/push-image.sh pushes",
        "scripts/push-image.sh",
    ),
    ("AR_REGION", "europe-west1", "the Artifact Registry region", "scripts/push-image.sh"),
    ("AR_REPOSITORY", "penguin-serve", "the Artifact Registry repository", "scripts/push-image.sh"),
    ("IMAGE_NAME", "penguin-serve", "the image's name in the repository", "scripts/push-image.sh"),
    ("DOCKER", "docker", "the Docker CLI to run", "scripts/base-image.sh, scripts/image_breakdown.py"),
    ("DISTRO", "bookworm", "the Debian release `make test-fresh` runs on: bookworm (12) or trixie (13)", "scripts/test-fresh.sh"),
    ("SUITE", "bookworm", "the Debian release scripts/base-image.sh bootstraps", "scripts/base-image.sh"),
    (
        "PACKAGES",
        "python3,python3-venv,python3-pip,ca-certificates",
        "the packages scripts/base-image.sh puts in its root",
        "scripts/base-image.sh",
    ),
    ("DOCKERD_LOG", "/var/log/penguin-dockerd.log", "where a dockerd started by the scripts logs", "scripts/container-engine.sh"),
    ("SOURCE_COMMIT", "`git rev-parse HEAD`", "the commit recorded in the model's metadata", "train.py"),
    ("LOCUST_HOST", "http://127.0.0.1:3000", "the server to load-test (Locust's own --host)", "locustfile.py"),
    ("LOCUST_ID_TOKEN", "unset", "an identity token for a private Cloud Run service", "locustfile.py"),
    ("LOCUST_SCENARIO", "unset", "a load shape instead of -u/-r/-t: baseline, normal, stress, spike, step", "locustfile.py"),
    ("LOCUST_TIME_SCALE", "1.0", "multiply every scenario duration by this", "locustfile.py"),
    ("LOCUST_INVALID_SHARE", "0.05", "share of requests that are deliberately invalid (must get 422)", "locustfile.py"),
    ("LOCUST_BATCH_SHARE", "0.05", "share of requests sent to /predict_batch", "locustfile.py"),
    ("LOCUST_BATCH_SIZE", "100", "records per batch request", "locustfile.py"),
    ("LOCUST_P95_LIMIT_MS", "500", "step scenario: saturated when p95 latency exceeds this", "locustfile.py"),
    ("LOCUST_FAILURE_LIMIT", "0.01", "step scenario: saturated when this share of requests fails", "locustfile.py"),
    (
        "MODEL_DIR",
        "models",
        "the exported model the benchmark's FastAPI peers serve",
        "benchmarks/numpy_app.py, benchmarks/reference_app.py",
    ),
    (
        "PENGUIN_PROBE_DIR",
        "unset",
        "set by `make bench` for its memory phase: where each process writes its samples",
        "benchmarks/probe/sitecustomize.py",
    ),
    (
        "MUTATE_STARTED",
        "now",
        "set by `make mutate`: when the run began, for the report's duration",
        "scripts/mutation_report.py",
    ),
    ("CI", "unset", "`true` on CI: a skipped test fails the run", "tests/conftest.py, scripts/test-fresh.sh"),
    ("PENGUIN_TEST_TIMINGS", "unset", "set by `make timings`: where the test run records its duration", "tests/conftest.py"),
    (
        "PENGUIN_WRITE_EXAMPLES",
        "unset",
        "set: the Cloud Run test writes its good rollout's decision record to docs/canary-record.example.jsonl",
        "tests/test_cloud_run_releases.py",
    ),
    ("FAULT_ERROR_SHARE", "0", "the test wrapper image's share of prediction requests answered 500", "tests/faulty_image"),
    ("FAULT_DELAY_S", "0", "the test wrapper image's delay added to each prediction request", "tests/faulty_image"),
    ("FAULT_SPARED", "5", "the test wrapper image: prediction requests per worker spared the fault", "tests/faulty_image"),
    ("PENGUIN_SCREENSHOT", "unset", "where the browser test saves the front page's picture", "tests/test_front_page.py"),
    ("PENGUIN_DASHBOARD_PNG", "unset", "where the monitoring test draws the dashboard", "tests/test_monitoring.py"),
)

"""The settings of the Cloud Run deploy (scripts/deploy/cloudrun.py) and of the canary's gate
(scripts/deploy/canary_gate.py), each an environment variable declared once (variable, default, type, meaning).
docs/configuration.md is generated from here and from the product's settings (scripts/dev/configuration.py)."""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass

from penguin_serve.configuration import from_env, setting
from penguin_serve.contract import MODEL_NAME

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
    """The canary's gate (scripts/deploy/canary_gate.py): at each step below 100 %, the canary revision against the
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

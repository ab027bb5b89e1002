"""The service's settings: each an environment variable with a safe default, declared once below (variable,
default, type, meaning); docs/configuration.md is generated from these fields."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from .configuration import from_env, setting
from .contract import MODEL_NAME


def available_cpus() -> int:
    """The whole CPUs this process may use: its CPU quota where one is set (Cloud Run's vCPUs, docker --cpus;
    cgroup v2), else the CPUs it may run on. At least 1."""
    cpus = len(os.sched_getaffinity(0))
    try:
        quota, period = Path("/sys/fs/cgroup/cpu.max").read_text().split()
        if quota != "max":
            cpus = min(cpus, int(quota) // int(period))
    except (OSError, ValueError):
        pass
    return max(cpus, 1)


@dataclass(frozen=True)
class Settings:
    model_tag: str = setting("PENGUIN_MODEL_TAG", "which model-store entry the bento packs and serves", f"{MODEL_NAME}:latest")
    workers: int = setting(
        "PENGUIN_WORKERS",
        "API worker processes, each predicting on one XGBoost thread; the instance is ready once all are",
        factory=available_cpus,
        shown="one per CPU (the CPU quota where one is set)",
    )
    xgboost_threads: int = setting("PENGUIN_XGBOOST_THREADS", "XGBoost threads per prediction", 1)
    request_timeout_s: int = setting("PENGUIN_REQUEST_TIMEOUT_S", "504 past this many seconds", 30)
    max_body_bytes: int = setting(
        "PENGUIN_MAX_BODY_BYTES", "413 past this request body size (a full 10,000-record batch is about 1.5 MB)", 4 * 2**20
    )
    max_in_flight: int = setting(
        "PENGUIN_MAX_IN_FLIGHT", "429 past this many requests in flight per worker (above Cloud Run's 80 per instance)", 100
    )
    gc_young_allocations: int = setting(
        "PENGUIN_GC_YOUNG_ALLOCATIONS",
        "allocations between young garbage collections (CPython: 700), set when each worker starts (docs/PERFORMANCE.md)",
        10_000,
    )
    load_wait_s: float = setting(
        "PENGUIN_LOAD_WAIT_S",
        "how long a prediction that reaches a worker still loading its model waits for it before its 503",
        10.0,
    )
    cors_origins: tuple[str, ...] = setting(
        "PENGUIN_CORS_ORIGINS", "comma-separated origins allowed by CORS; CORS is off when unset", ()
    )
    log_level: str = setting(
        "PENGUIN_LOG_LEVEL", "request log level; DEBUG adds each request body (input values)", "INFO", parse=str.upper
    )
    log_successes: bool = setting(
        "PENGUIN_LOG_SUCCESSES",
        "a request log line for each successful request too (errors always get one)",
        True,
        from_env=lambda env: "K_SERVICE" not in env,
        shown="on; off where K_SERVICE is set (Cloud Run, whose own request log has every request)",
    )
    revision: str | None = setting("K_REVISION", "the Cloud Run revision (set by Cloud Run); /health names it")
    google_cloud_project: str | None = setting(
        "GOOGLE_CLOUD_PROJECT", "prefixes trace ids in the request log (projects/P/traces/T) so Cloud Logging links them"
    )
    gcs_bucket: str | None = setting(
        "GCS_BUCKET_NAME", "serve the model from this Cloud Storage bucket; unset: the bento's model"
    )
    gcs_prefix: str = setting(
        "GCS_MODEL_PREFIX", "the model's folder in the bucket", MODEL_NAME, parse=lambda value: value.strip("/")
    )
    gcs_model_version: str = setting(
        "GCS_MODEL_VERSION", "a version folder under the prefix, or latest (the pointer train.py --push moves)", "latest"
    )
    gcs_deadline_s: float = setting(
        "GCS_LOAD_DEADLINE_S", "start-up budget for Cloud Storage, retries included; past it the bento's model serves", 10.0
    )
    gcs_strict: bool = setting("GCS_STRICT", "on a Cloud Storage failure refuse to become ready instead of falling back", False)
    feedback_prefix: str = setting(
        "GCS_FEEDBACK_PREFIX",
        "where POST /feedback stores labelled observations in the model bucket (GCS_BUCKET_NAME): one object each",
        "labels",
        parse=lambda value: value.strip("/"),
    )
    feedback_dir: str = setting(
        "PENGUIN_FEEDBACK_DIR", "where POST /feedback stores labelled observations without a bucket: one file each", "feedback"
    )
    feedback_deadline_s: float = setting(
        "PENGUIN_FEEDBACK_DEADLINE_S", "seconds, retries included, to store one observation in Cloud Storage; past it: 503", 5.0
    )
    storage_emulator_host: str | None = setting(
        "STORAGE_EMULATOR_HOST", "a Cloud Storage emulator's URL (anonymous credentials); unset: Application Default Credentials"
    )

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        return from_env(cls, env)


SETTINGS = Settings.from_env()

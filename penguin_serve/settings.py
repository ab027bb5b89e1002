"""Service configuration from environment variables, each with a safe default (see the README)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .model import MODEL_NAME

_TRUE = {"1", "true", "yes", "on"}


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
    # Which model store entry the bento packs and serves (and falls back to).
    model_tag: str = f"{MODEL_NAME}:latest"
    # API worker processes, one per CPU by default; each predicts on one XGBoost thread. The instance is ready
    # once this many workers are (serving/readiness.py).
    workers: int = field(default_factory=available_cpus)
    xgboost_threads: int = 1
    request_timeout_s: int = 30  # 504 past this
    max_body_bytes: int = 4 * 2**20  # 413 past this; a full 10,000-record batch is about 1.5 MB
    max_in_flight: int = 100  # per worker; 429 past this (above Cloud Run's per-instance concurrency of 80)
    # Allocations between young garbage collections; CPython's 700 makes full collections, which pause every
    # request in flight, many times more frequent under load (docs/PERFORMANCE.md).
    gc_young_allocations: int = 10_000
    # A prediction that reaches a worker still loading its model waits this long for it before its 503.
    load_wait_s: float = 10.0
    cors_origins: tuple[str, ...] = ()  # CORS is off unless origins are listed
    log_level: str = "INFO"  # DEBUG adds request bodies (input values) to the request log
    # One line per successful request. Cloud Run (which sets K_SERVICE) writes its own request log entry for
    # every request, so there the default is off: 4xx and 5xx lines, which say more, are always written.
    log_successes: bool = True
    google_cloud_project: str | None = None  # prefixes trace ids so Cloud Logging links them to traces
    # Cloud Storage: unset bucket means "serve the model in the bento".
    gcs_bucket: str | None = None
    gcs_prefix: str = MODEL_NAME
    gcs_model_version: str = "latest"  # a version folder under the prefix, or "latest" (the pointer)
    gcs_blob_name: str | None = None  # an explicit booster object, as older deployments configure it
    gcs_deadline_s: float = 10.0  # start-up budget for Cloud Storage, retries included
    gcs_strict: bool = False  # on failure: refuse to become ready instead of serving the bento's model
    storage_emulator_host: str | None = None  # e.g. http://127.0.0.1:4443 for fake-gcs-server

    @classmethod
    def from_env(cls, env: Mapping[str, str] = os.environ) -> Settings:
        default = cls()
        return cls(
            model_tag=env.get("PENGUIN_MODEL_TAG", default.model_tag),
            workers=int(env["PENGUIN_WORKERS"]) if env.get("PENGUIN_WORKERS") else default.workers,
            xgboost_threads=int(env.get("PENGUIN_XGBOOST_THREADS", default.xgboost_threads)),
            request_timeout_s=int(env.get("PENGUIN_REQUEST_TIMEOUT_S", default.request_timeout_s)),
            max_body_bytes=int(env.get("PENGUIN_MAX_BODY_BYTES", default.max_body_bytes)),
            max_in_flight=int(env.get("PENGUIN_MAX_IN_FLIGHT", default.max_in_flight)),
            gc_young_allocations=int(env.get("PENGUIN_GC_YOUNG_ALLOCATIONS", default.gc_young_allocations)),
            load_wait_s=float(env.get("PENGUIN_LOAD_WAIT_S", default.load_wait_s)),
            cors_origins=tuple(o.strip() for o in env.get("PENGUIN_CORS_ORIGINS", "").split(",") if o.strip()),
            log_level=env.get("PENGUIN_LOG_LEVEL", default.log_level).upper(),
            log_successes=env["PENGUIN_LOG_SUCCESSES"].lower() in _TRUE
            if env.get("PENGUIN_LOG_SUCCESSES")
            else "K_SERVICE" not in env,
            google_cloud_project=env.get("GOOGLE_CLOUD_PROJECT") or None,
            gcs_bucket=env.get("GCS_BUCKET_NAME") or None,
            gcs_prefix=env.get("GCS_MODEL_PREFIX", default.gcs_prefix).strip("/"),
            gcs_model_version=env.get("GCS_MODEL_VERSION", default.gcs_model_version),
            gcs_blob_name=env.get("GCS_BLOB_NAME") or None,
            gcs_deadline_s=float(env.get("GCS_LOAD_DEADLINE_S", default.gcs_deadline_s)),
            gcs_strict=env.get("GCS_STRICT", "").lower() in _TRUE,
            storage_emulator_host=env.get("STORAGE_EMULATOR_HOST") or None,
        )


SETTINGS = Settings.from_env()

"""Which model the service serves: the one in Cloud Storage when configured, else the one in the bento.

If Cloud Storage fails (unreachable, slow past the deadline, missing or corrupt object), the service serves
the model packed in the bento, the last known good one, and says so in a WARNING and in the model's
`source` and `fallback_reason` (shown on /model and in the penguin_model_info metric). With GCS_STRICT it
refuses to become ready instead. A model that fails its checksum or self-check is never served.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from pathlib import Path

from .model import PenguinModel
from .settings import Settings

logger = logging.getLogger(__name__)


def load_serving_model(settings: Settings, bento_model_path: str | Path) -> PenguinModel:
    if settings.gcs_bucket is None:
        return PenguinModel.from_files(bento_model_path, source="bento", nthread=settings.xgboost_threads)
    from .storage import fetch_model, make_client  # google-cloud-storage only where a bucket is configured

    where = f"gs://{settings.gcs_bucket}/{settings.gcs_prefix}"
    started = time.monotonic()
    try:
        return fetch_model(
            make_client(settings.storage_emulator_host),
            settings.gcs_bucket,
            settings.gcs_prefix,
            settings.gcs_model_version,
            settings.gcs_deadline_s,
            settings.xgboost_threads,
        )
    except Exception as exc:
        reason = f"{type(exc).__name__}: {exc}"
        elapsed = time.monotonic() - started
        if settings.gcs_strict:
            logger.error("loading the model from %s failed after %.1fs (%s); GCS_STRICT: not serving", where, elapsed, reason)
            raise
        logger.warning(
            "loading the model from %s failed after %.1fs (%s); serving the model in the bento instead",
            where,
            elapsed,
            reason,
        )
        fallback = PenguinModel.from_files(bento_model_path, source="fallback", nthread=settings.xgboost_threads)
        return dataclasses.replace(fallback, fallback_reason=reason)

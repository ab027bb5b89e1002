"""Service configuration from environment variables, each with a safe default (see the README)."""

from __future__ import annotations

import os

from .model import MODEL_NAME

# Which model store entry the bento packs and serves.
MODEL_TAG = os.environ.get("PENGUIN_MODEL_TAG", f"{MODEL_NAME}:latest")

# API worker processes: one per core by default. Each predicts on one XGBoost thread.
WORKERS: int | str = int(os.environ["PENGUIN_WORKERS"]) if os.environ.get("PENGUIN_WORKERS") else "cpu_count"
XGBOOST_THREADS = int(os.environ.get("PENGUIN_XGBOOST_THREADS", "1"))

# Seconds a request may take before BentoML answers 504.
REQUEST_TIMEOUT_S = int(os.environ.get("PENGUIN_REQUEST_TIMEOUT_S", "30"))

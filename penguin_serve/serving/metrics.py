"""The service's own Prometheus metrics, exported on /metrics next to BentoML's HTTP metrics."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Iterable

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from ..contract import SPECIES, Penguin

# 1 for the model a worker serves. source: bento, gcs, or fallback (Cloud Storage failed, bento model served).
MODEL_INFO = Gauge(
    "penguin_model_info",
    "The model this service serves",
    ["version", "source"],
    multiprocess_mode="livemax",
)
PREDICTIONS = Counter("penguin_predictions", "Penguins classified, by predicted species", ["species"])
CONFIDENCE = Histogram(
    "penguin_prediction_confidence",
    "Probability of the predicted species",
    buckets=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
OUT_OF_DISTRIBUTION = Counter(
    "penguin_out_of_distribution", "Measurements outside the training range, by field", ["field"]
)
MODEL_CALL_ROWS = Histogram(
    "penguin_model_call_rows",
    "Rows per model call: concurrent requests share one call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 1000, 10000),
)
VALIDATION_FAILURES = Counter(
    "penguin_validation_failures", "Invalid request fields (422 answers), by field", ["field"]
)
_KNOWN_FIELDS = frozenset(Penguin.model_fields) | {"body"}


def record_model_call(probabilities: np.ndarray) -> None:
    """Counts one model call's rows (all the requests that shared it) by predicted species and confidence."""
    MODEL_CALL_ROWS.observe(len(probabilities))
    for index, count in enumerate(np.bincount(probabilities.argmax(axis=1), minlength=len(SPECIES)).tolist()):
        if count:
            PREDICTIONS.labels(species=SPECIES[index]).inc(count)
    # One observe() per row: prometheus_client has no public bulk observation (the cost per row is in
    # docs/PERFORMANCE.md).
    for confidence in probabilities.max(axis=1).tolist():
        CONFIDENCE.observe(confidence)


def record_out_of_distribution(fields_per_row: list[list[str]]) -> None:
    for name, count in Tally(field for fields in fields_per_row for field in fields).items():
        OUT_OF_DISTRIBUTION.labels(field=name).inc(count)


def record_validation_failures(field_names: Iterable[str]) -> None:
    # Unknown field names come from clients: one label for all of them keeps the series count bounded.
    for name in field_names:
        VALIDATION_FAILURES.labels(field=name if name in _KNOWN_FIELDS else "(unknown field)").inc()

"""The service's own Prometheus metrics, exported on /metrics next to BentoML's HTTP metrics."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Any, Iterable

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from .contract import Penguin

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


def record_predictions(answers: dict[str, Any]) -> None:
    """Counts answers shaped like contract.PredictionColumns: one metric update per label, not per row."""
    for name, count in Tally(answers["prediction"]).items():
        PREDICTIONS.labels(species=name).inc(count)
    for name, count in Tally(field for fields in answers["out_of_distribution"] for field in fields).items():
        OUT_OF_DISTRIBUTION.labels(field=name).inc(count)
    observe_all(CONFIDENCE, answers["confidence"])


def observe_all(histogram: Histogram, values: list[float]) -> None:
    """histogram.observe(value) for each value, as one increment per bucket: per value it cost more than the
    model on a 1,000-row batch. Uses the Histogram's bucket internals (pinned prometheus-client; a test
    checks the result against observe)."""
    bounds = histogram._upper_bounds
    counts = np.bincount(np.searchsorted(bounds, values, side="left"), minlength=len(bounds))
    for bucket, count in zip(histogram._buckets, counts.tolist()):
        if count:
            bucket.inc(count)
    histogram._sum.inc(float(np.sum(values)))


def record_validation_failures(field_names: Iterable[str]) -> None:
    # Unknown field names come from clients: one label for all of them keeps the series count bounded.
    for name in field_names:
        VALIDATION_FAILURES.labels(field=name if name in _KNOWN_FIELDS else "(unknown field)").inc()

"""The service's own Prometheus metrics, exported on /metrics next to BentoML's HTTP metrics."""

from __future__ import annotations

from collections import Counter as Tally
from typing import Iterable

from prometheus_client import Counter, Gauge, Histogram

from .contract import Penguin, Prediction

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
VALIDATION_FAILURES = Counter(
    "penguin_validation_failures", "Invalid request fields (422 answers), by field", ["field"]
)
_KNOWN_FIELDS = frozenset(Penguin.model_fields) | {"body"}


def record_predictions(predictions: Iterable[Prediction]) -> None:
    species, fields = Tally(), Tally()
    for prediction in predictions:
        species[prediction.prediction] += 1
        fields.update(prediction.out_of_distribution)
        CONFIDENCE.observe(prediction.confidence)
    for name, count in species.items():
        PREDICTIONS.labels(species=name).inc(count)
    for name, count in fields.items():
        OUT_OF_DISTRIBUTION.labels(field=name).inc(count)


def record_validation_failures(field_names: Iterable[str]) -> None:
    # Unknown field names come from clients: one label for all of them keeps the series count bounded.
    for name in field_names:
        VALIDATION_FAILURES.labels(field=name if name in _KNOWN_FIELDS else "(unknown field)").inc()

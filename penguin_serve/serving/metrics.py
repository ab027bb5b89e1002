"""The service's own Prometheus metrics, exported on /metrics next to BentoML's HTTP metrics."""

from __future__ import annotations

import atexit
import itertools
import logging
import math
import threading
import time
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from prometheus_client import Counter, Gauge, Histogram

from ..contract import MEASUREMENTS, SPECIES, Penguin
from ..model import PenguinModel, decile_bins

# 1 for the model a worker serves. source: bento, gcs, or fallback (Cloud Storage failed, bento model served).
MODEL_INFO = Gauge(
    "penguin_model_info",
    "The model this service serves",
    ["version", "source"],
    multiprocess_mode="livemax",
)
PREDICTIONS = Counter("penguin_predictions", "Penguins classified, by predicted species", ["species"])
# prometheus_client has no public bulk observation, and one observe() per row cost more than the model's own
# work per row (one in 16 still cost a sixth of it): one row in CONFIDENCE_SAMPLE_EVERY is observed, by a
# stride that runs across model calls, so every row has the same chance whatever the size of its call and
# the quantiles keep their meaning.
CONFIDENCE_SAMPLE_EVERY = 64
CONFIDENCE = Histogram(
    "penguin_prediction_confidence",
    f"Probability of the predicted species, one prediction in {CONFIDENCE_SAMPLE_EVERY}",
    buckets=(0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0),
)
OUT_OF_DISTRIBUTION = Counter("penguin_out_of_distribution", "Measurements outside the training range, by field", ["field"])
# Exact shares per revision for the canary's gate (scripts/deploy/canary_gate.py), one increment per model call each:
# with penguin_predictions_total, the share of rows out of distribution and the mean confidence.
OUT_OF_DISTRIBUTION_ROWS = Counter("penguin_out_of_distribution_rows", "Rows with a measurement outside the training range")
CONFIDENCE_SUM = Counter("penguin_confidence_sum", "Sum over all rows of the predicted species' probability")
MODEL_CALL_ROWS = Histogram(
    "penguin_model_call_rows",
    "Rows per model call: concurrent requests share one call",
    buckets=(1, 2, 4, 8, 16, 32, 64, 128, 1000, 10000),
)
# Drift: each measurement's rows counted in the ten bins that the training deciles cut (bin 0 below the first
# decile, bin 9 above the last), next to the share of the training rows in each bin and the training species
# mix. Rules turn them into a population stability index per feature and for the predictions
# (monitoring/recording-rules.yaml). Labels are bounded: 4 features x 10 bins, 3 species.
INPUT_ROWS = Counter("penguin_input_rows", "Rows by measurement and training-decile bin", ["feature", "bin"])
TRAINING_BIN_SHARE = Gauge(
    "penguin_training_bin_share", "Share of the training rows in each bin", ["feature", "bin"], multiprocess_mode="livemax"
)
TRAINING_CLASS_PRIOR = Gauge(
    "penguin_training_class_prior", "Share of each species in the training rows", ["species"], multiprocess_mode="livemax"
)
MODEL_READY = Gauge(
    "penguin_model_ready", "1 once this worker's model loaded and passed its self-check", multiprocess_mode="livemin"
)
# Answers against the truth (POST /feedback): each stored observation once, by the model version that answered
# it, its confirmed species and the predicted one (a live confusion matrix), and the log-loss of the served
# probabilities. Accuracy per version: penguin_labelled_correct_total / penguin_labelled_observations_total.
LABELLED = Counter(
    "penguin_labelled_observations",
    "Labelled observations stored, by the model version that answered, the confirmed and the predicted species",
    ["model_version", "species", "predicted"],
)
LABELLED_CORRECT = Counter(
    "penguin_labelled_correct", "Labelled observations whose prediction was the confirmed species", ["model_version"]
)
LABELLED_COVERED = Counter(
    "penguin_labelled_covered",
    "Labelled observations whose prediction set held the confirmed species (live coverage)",
    ["model_version"],
)
LABELLED_LOG_LOSS = Counter(
    "penguin_labelled_log_loss_sum",
    "Sum over labelled observations of -ln(the served probability of the confirmed species)",
    ["model_version"],
)
LOG_LOSS_FLOOR = 1e-15  # a probability of 0 costs ln(1e15), not infinity (scikit-learn's clip)
VALIDATION_FAILURES = Counter("penguin_validation_failures", "Invalid request fields (422 answers), by field", ["field"])
_KNOWN_FIELDS = frozenset(Penguin.model_fields) | {"body"}
# The labelled series the per-call counting touches, looked up once.
_PREDICTED = [PREDICTIONS.labels(species=species) for species in SPECIES]
_OUTSIDE = [OUT_OF_DISTRIBUTION.labels(field=feature) for feature in MEASUREMENTS]
_INPUT_BINS = [INPUT_ROWS.labels(feature=feature, bin=str(index)) for feature in MEASUREMENTS for index in range(10)]
_BIN_OFFSETS = np.arange(len(MEASUREMENTS)) * 10


class EveryNth:
    """One row in every `n` across calls of any size: the rows 0, n, 2n, ... of all the rows it was shown."""

    def __init__(self, n: int) -> None:
        self.n, self.skip = n, 0  # rows to skip before the next picked one

    def rows(self, count: int) -> slice | None:
        """The picked rows of the next `count`, None where none is (most calls: no slicing)."""
        picked = slice(self.skip, None, self.n) if self.skip < count else None
        self.skip = (self.skip - count) % self.n
        return picked


_CONFIDENCE_ROWS = EveryNth(CONFIDENCE_SAMPLE_EVERY)
logger = logging.getLogger(__name__)


def record_model_loaded(model: PenguinModel) -> None:
    """What the served model contributes to /metrics: its identity and the drift reference from its training."""
    MODEL_INFO.labels(version=model.version, source=model.source).set(1)
    for feature, shares in model.metadata["training_bin_shares"].items():
        for index, share in enumerate(shares):
            TRAINING_BIN_SHARE.labels(feature=feature, bin=str(index)).set(share)
    for species, share in model.metadata["class_prior"].items():
        TRAINING_CLASS_PRIOR.labels(species=species).set(share)
    # Every labelled series exists from the start at 0 (the prediction and bin counters above too): a rate or
    # increase over a series that appears with its first increment would miss that increment.
    for feature in MEASUREMENTS:
        OUT_OF_DISTRIBUTION.labels(field=feature)
    for field in sorted(_KNOWN_FIELDS) + ["(unknown field)"]:
        VALIDATION_FAILURES.labels(field=field)
    for species, predicted in itertools.product(SPECIES, SPECIES):
        LABELLED.labels(model_version=model.version, species=species, predicted=predicted)
    LABELLED_CORRECT.labels(model_version=model.version)
    LABELLED_COVERED.labels(model_version=model.version)
    LABELLED_LOG_LOSS.labels(model_version=model.version)
    MODEL_READY.set(1)


class ModelCalls:
    """A worker's model calls, counted into their series (rows per call, species, confidence, measurements out
    of the training ranges, drift bins) by a thread every `every_s` seconds, all the calls since the last time
    in one pass. Counted call by call, the numpy steps' fixed costs and a file write per series touched
    (multiprocess mode) added a sizeable share of a one-row call's cost (docs/PERFORMANCE.md). So /metrics is
    at most `every_s` behind the answers; a worker that exits counts what it holds first."""

    def __init__(self, every_s: float) -> None:
        self.every_s = every_s
        self._pending: list[tuple[PenguinModel, np.ndarray, np.ndarray]] = []
        self._taking = threading.Lock()  # guards _pending: the event loop adds, the counting thread takes
        self._counting = threading.Lock()  # one pass at a time: the confidence stride runs across passes
        self._thread: threading.Thread | None = None

    def add(self, model: PenguinModel, features: np.ndarray, probabilities: np.ndarray) -> None:
        """One model call's rows and probabilities (arrays nobody changes afterwards), counted soon."""
        with self._taking:
            self._pending.append((model, features, probabilities))
            if self._thread is None:
                self._thread = threading.Thread(target=self._count_every_period, name="model-call-metrics", daemon=True)
                self._thread.start()
                atexit.register(self.count)

    def count(self) -> None:
        """Counts every call added so far into the series."""
        with self._counting:
            with self._taking:
                pending, self._pending = self._pending, []
            for _, calls in itertools.groupby(pending, key=lambda call: id(call[0])):  # one model, but in tests
                models, features, probabilities = zip(*calls)
                record_model_calls(models[0], features, probabilities)

    def _count_every_period(self) -> None:
        while True:
            time.sleep(self.every_s)
            try:
                self.count()
            except Exception:  # the next pass counts afresh; an answer never waits for its metrics
                logger.exception("counting model calls into /metrics failed")


def record_model_calls(model: PenguinModel, features: Sequence[np.ndarray], probabilities: Sequence[np.ndarray]) -> None:
    """Counts model calls' rows (each call: all the requests that shared it) by predicted species,
    confidence, measurements outside the training ranges and training-decile bin of each measurement: one
    counter increment per species, field and bin that occurred, and one confidence observation per
    CONFIDENCE_SAMPLE_EVERY rows. All in one pass, so that the shares the rules and the canary's gate divide
    (out-of-distribution rows, confidence sum, per prediction) never see one counted before the other."""
    for call in probabilities:
        MODEL_CALL_ROWS.observe(len(call))
    rows, every = np.concatenate(features), np.concatenate(probabilities)
    _count(_PREDICTED, every.argmax(axis=1))
    CONFIDENCE_SUM.inc(float(every.max(axis=1).sum()))
    if (picked := _CONFIDENCE_ROWS.rows(len(every))) is not None:
        for confidence in every[picked].max(axis=1).tolist():
            CONFIDENCE.observe(confidence)
    _count(_INPUT_BINS, decile_bins(model.drift_edges, rows) + _BIN_OFFSETS)  # feature * 10 + bin
    outside = model.outside_training_ranges(rows)
    if flagged := int(outside.any(axis=1).sum()):
        OUT_OF_DISTRIBUTION_ROWS.inc(flagged)
        _count(_OUTSIDE, np.flatnonzero(outside) % len(MEASUREMENTS))  # row-major: the flag's field


# Counted once a second: far below any scrape interval (Managed Prometheus' sidecar: 30 s).
MODEL_CALLS = ModelCalls(every_s=1.0)


def _count(series: list, indexes: np.ndarray) -> None:
    """series[i].inc(number of times i occurs in indexes), for the i that occur."""
    counts = np.bincount(indexes.ravel(), minlength=len(series))
    for index in np.flatnonzero(counts).tolist():
        series[index].inc(int(counts[index]))


def record_labelled(species: str, answer: dict[str, Any]) -> None:
    """One stored labelled observation and the answer (a Prediction) it got: its cell of the confusion matrix,
    whether it was right, whether its prediction set held the species, its log-loss."""
    model_version, predicted = answer["model_version"], answer["prediction"]
    LABELLED.labels(model_version=model_version, species=species, predicted=predicted).inc()
    LABELLED_CORRECT.labels(model_version=model_version).inc(predicted == species)
    LABELLED_COVERED.labels(model_version=model_version).inc(species in answer["prediction_set"])
    LABELLED_LOG_LOSS.labels(model_version=model_version).inc(-math.log(max(answer["probabilities"][species], LOG_LOSS_FLOOR)))


def record_validation_failures(field_names: Iterable[str]) -> None:
    # Unknown field names come from clients: one label for all of them keeps the series count bounded.
    for name in field_names:
        VALIDATION_FAILURES.labels(field=name if name in _KNOWN_FIELDS else "(unknown field)").inc()

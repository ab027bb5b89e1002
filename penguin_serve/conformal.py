"""Split-conformal prediction sets: the species that cannot be ruled out at a coverage (default 90 %).

The score is that of adaptive prediction sets (APS; Romano, Sesia and Candès, "Classification with Valid and
Adaptive Coverage", NeurIPS 2020): a species' score is the total probability of the species at least as likely
as it. Training computes the true species' scores on a calibration split the booster never saw and keeps
their ceil((n + 1) * coverage)-th smallest as the threshold; a species is in a set when its score is at most
the threshold. For a new bird exchangeable with the calibration rows the true species is then in its set with
probability at least the coverage. Not randomised, so an answer is the same every time; the most likely species
is always in the set (it is never empty), which can only add coverage.
"""

from __future__ import annotations

import math

import numpy as np

COVERAGE = 0.9  # the default target: train.py --coverage
# The quality gate refuses a model whose test coverage is below the target minus this: with about 70 test rows
# the empirical coverage of a set that covers 90 % has a standard deviation of about 3.6 points.
COVERAGE_TOLERANCE = 0.05


def species_scores(probabilities: np.ndarray) -> np.ndarray:
    """Rows x species: each species' score, the total probability of the species at least as likely as it."""
    at_least_as_likely = probabilities[:, None, :] >= probabilities[:, :, None]  # [row, species, other]
    return (at_least_as_likely * probabilities[:, None, :]).sum(axis=2, dtype=np.float64)


def threshold(probabilities: np.ndarray, labels: np.ndarray, coverage: float) -> float:
    """The calibration rows' conformal threshold: the ceil((n + 1) * coverage)-th smallest true-species score."""
    scores = np.sort(species_scores(probabilities)[np.arange(len(labels)), labels])
    rank = math.ceil((len(scores) + 1) * coverage)
    if rank > len(scores):
        raise ValueError(f"{len(scores)} calibration rows cannot give a coverage of {coverage:g}: it needs at least {rank}")
    return float(scores[rank - 1])


def membership(probabilities: np.ndarray, limit: float) -> np.ndarray:
    """Rows x species: True where the species is in the row's prediction set."""
    inside = species_scores(probabilities) <= limit
    inside[np.arange(len(probabilities)), probabilities.argmax(axis=1)] = True
    return inside


def evaluate(probabilities: np.ndarray, labels: np.ndarray, limit: float) -> dict:
    """Empirical coverage, mean set size and the count of each set size on these labelled rows."""
    inside = membership(probabilities, limit)
    sizes = inside.sum(axis=1)
    return {
        "coverage": float(inside[np.arange(len(labels)), labels].mean()),
        "mean_set_size": float(sizes.mean()),
        "set_sizes": {str(size): int((sizes == size).sum()) for size in range(1, probabilities.shape[1] + 1)},
        "rows": int(len(labels)),
    }

"""Classification metrics and the readable summary train.py prints."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, log_loss

from ..contract import SPECIES


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    predicted = probabilities.argmax(axis=1)
    classes = list(range(len(SPECIES)))
    return {
        "accuracy": float(accuracy_score(labels, predicted)),
        "macro_f1": float(f1_score(labels, predicted, average="macro", labels=classes)),
        "log_loss": float(log_loss(labels, probabilities, labels=classes)),
        "confusion_matrix": confusion_matrix(labels, predicted, labels=classes).tolist(),
        "rows": int(len(labels)),
    }


CONFIDENCE_BINS = (1 / 3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)


def reliability(labels: np.ndarray, probabilities: np.ndarray) -> list[dict]:
    """Per confidence bin with predictions in it: rows, mean confidence and accuracy (a reliability diagram)."""
    confidence, predicted = probabilities.max(axis=1), probabilities.argmax(axis=1)
    bins = np.clip(np.searchsorted(CONFIDENCE_BINS, confidence, side="left") - 1, 0, len(CONFIDENCE_BINS) - 2)
    return [
        {
            "low": round(CONFIDENCE_BINS[index], 4),
            "high": CONFIDENCE_BINS[index + 1],
            "rows": int((bins == index).sum()),
            "mean_confidence": float(confidence[bins == index].mean()),
            "accuracy": float((predicted == labels)[bins == index].mean()),
        }
        for index in range(len(CONFIDENCE_BINS) - 1)
        if (bins == index).any()
    ]


def summarize(cv_folds: list[dict], holdout: dict) -> dict:
    """Cross-validation folds reduced to mean and standard deviation, next to the held-out metrics."""
    cross_validation = {
        name: {
            "mean": float(np.mean([fold[name] for fold in cv_folds])),
            "std": float(np.std([fold[name] for fold in cv_folds])),
        }
        for name in ("accuracy", "macro_f1", "log_loss")
    }
    cross_validation["folds"] = len(cv_folds)
    return {"holdout": holdout, "cross_validation": cross_validation}


def format_report(metrics: dict, sets: dict) -> str:
    holdout, cv, covered = metrics["holdout"], metrics["cross_validation"], sets["test"]
    lines = [
        f"{'metric':<10} {'held-out':>9}   {cv['folds']}-fold CV (mean ± std)",
        *(
            f"{name:<10} {holdout[name]:>9.4f}   {cv[name]['mean']:.4f} ± {cv[name]['std']:.4f}"
            for name in ("accuracy", "macro_f1", "log_loss")
        ),
        "",
        f"Confusion matrix, held-out ({holdout['rows']} rows; rows = true, columns = predicted):",
        " " * 10 + "".join(f"{name:>10}" for name in SPECIES),
        *(f"{name:<10}" + "".join(f"{count:>10}" for count in row) for name, row in zip(SPECIES, holdout["confusion_matrix"])),
        "",
        f"Prediction sets at {sets['coverage_target']:.0%} coverage, calibrated on {sets['calibration_rows']} rows:",
        f"held-out coverage {covered['coverage']:.4f}, mean set size {covered['mean_set_size']:.3f} ("
        + ", ".join(f"{count} of size {size}" for size, count in covered["set_sizes"].items())
        + ")",
    ]
    return "\n".join(lines)

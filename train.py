"""Train the penguin classifier, evaluate it, and save it only if it passes the quality gate.

Saves the booster into the BentoML model store (BENTOML_HOME) and exports it under models/ as XGBoost JSON
plus a metadata JSON. Run `python train.py --help` for the options.
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path

import bentoml
import numpy as np
import xgboost as xgb
from sklearn.model_selection import StratifiedKFold, train_test_split

from penguin_serve import conformal
from penguin_serve.conformal import COVERAGE, COVERAGE_TOLERANCE
from penguin_serve.contract import FEATURE_NAMES, FIELD_COLUMNS, ISLANDS, MEASUREMENTS, MODEL_NAME, SPECIES, encode
from penguin_serve.model import PenguinModel, decile_bins, decile_edges, field_contributions
from penguin_serve.settings import Settings
from penguin_serve.storage import PushConflict, UploadCorrupted, make_client, version_prefix
from penguin_serve.training.dataset import DatasetError, load_dataset
from penguin_serve.training.evaluate import classification_metrics, format_report, reliability, summarize
from penguin_serve.training.publish import push_model


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    parser.add_argument("--model-name", default=MODEL_NAME, help="name in the BentoML model store")
    parser.add_argument(
        "--data",
        type=Path,
        help="train on this CSV instead of the palmerpenguins table: columns species, bill_length_mm, bill_depth_mm, "
        "flipper_length_mm, body_mass_g, island, and optionally sex and year",
    )
    parser.add_argument("--seed", type=int, default=42, help="seed for the split, the folds and XGBoost")
    parser.add_argument("--test-size", type=float, default=0.2, help="share of rows held out for the gate")
    parser.add_argument(
        "--calibration-size",
        type=float,
        default=0.25,
        help="share of the rows not held out for the gate that calibrates the prediction sets instead of training",
    )
    parser.add_argument(
        "--coverage", type=float, default=COVERAGE, help="prediction sets hold the true species at least this often"
    )
    parser.add_argument(
        "--coverage-tolerance",
        type=float,
        default=COVERAGE_TOLERANCE,
        help="quality gate: a held-out coverage below --coverage minus this saves nothing and exits 1",
    )
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds on the training split")
    parser.add_argument("--rounds", type=int, default=100, help="boosting rounds")
    parser.add_argument("--max-depth", type=int, default=3, help="maximum tree depth")
    parser.add_argument("--learning-rate", type=float, default=0.1, help="XGBoost eta")
    parser.add_argument(
        "--min-macro-f1",
        type=float,
        default=0.95,
        help="quality gate: below this held-out macro-F1 nothing is saved and the exit status is 1",
    )
    parser.add_argument("--export-dir", type=Path, default=Path("models"), help="where booster and metadata JSON go")
    parser.add_argument(
        "--if-missing",
        action="store_true",
        help="do nothing when the model store already holds a model of this name",
    )
    gcs = Settings.from_env()
    parser.add_argument(
        "--push",
        action="store_true",
        help="after saving, upload the export to gs://BUCKET/PREFIX/VERSION/ and move PREFIX/latest to it",
    )
    parser.add_argument(
        "--no-train",
        action="store_true",
        help="with --push: push the model store's latest model of this name as it is, without training",
    )
    parser.add_argument("--bucket", default=gcs.gcs_bucket, help="Cloud Storage bucket (env GCS_BUCKET_NAME)")
    parser.add_argument("--prefix", default=gcs.gcs_prefix, help="object prefix in the bucket (env GCS_MODEL_PREFIX)")
    return parser


def xgboost_params(args: argparse.Namespace) -> dict:
    return {
        "objective": "multi:softprob",
        "num_class": len(SPECIES),
        "eval_metric": "mlogloss",
        "tree_method": "hist",  # deterministic for a fixed seed, whatever the thread count
        "max_depth": args.max_depth,
        "eta": args.learning_rate,
        "seed": args.seed,
        # A few hundred rows: one thread is as fast as several, and trainings that run at once (the test suite's
        # processes) do not spin against each other over the same cores (minutes instead of seconds).
        "nthread": 1,
    }


def fit(features: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> xgb.Booster:
    matrix = xgb.DMatrix(features, label=labels, feature_names=list(FEATURE_NAMES))
    return xgb.train(xgboost_params(args), matrix, num_boost_round=args.rounds)


def predict_probabilities(booster: xgb.Booster, features: np.ndarray) -> np.ndarray:
    return booster.inplace_predict(features).reshape(len(features), len(SPECIES))


def cross_validate(features: np.ndarray, labels: np.ndarray, args: argparse.Namespace) -> tuple[list[dict], np.ndarray]:
    """Each fold's metrics, and the out-of-fold probabilities: every row predicted by the fold model that did not
    see it (for calibration)."""
    folds = StratifiedKFold(n_splits=args.folds, shuffle=True, random_state=args.seed)
    out_of_fold = np.empty((len(labels), len(SPECIES)), dtype=np.float32)
    fold_metrics = []
    for train, test in folds.split(features, labels):
        out_of_fold[test] = predict_probabilities(fit(features[train], labels[train], args), features[test])
        fold_metrics.append(classification_metrics(labels[test], out_of_fold[test]))
    return fold_metrics, out_of_fold


def split_rows(labels: np.ndarray, args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training, calibration and test rows, each stratified by species."""
    rest, test = train_test_split(np.arange(len(labels)), test_size=args.test_size, stratify=labels, random_state=args.seed)
    train, calibration = train_test_split(rest, test_size=args.calibration_size, stratify=labels[rest], random_state=args.seed)
    return train, calibration, test


def prediction_sets(booster, features, labels, calibration_rows, test_rows, coverage: float) -> dict:
    """The conformal threshold fitted on the calibration rows, and how its sets do on the test rows."""
    limit = conformal.threshold(predict_probabilities(booster, features[calibration_rows]), labels[calibration_rows], coverage)
    return {
        "method": "split-conformal, adaptive prediction sets (APS), not randomised",
        "coverage_target": coverage,
        "threshold": limit,
        "calibration_rows": int(len(calibration_rows)),
        "test": conformal.evaluate(predict_probabilities(booster, features[test_rows]), labels[test_rows], limit),
    }


def gate_failures(holdout: dict, sets: dict, args: argparse.Namespace) -> list[str]:
    """Why the quality gate refuses this model; nothing when it passes."""
    failures = []
    if holdout["macro_f1"] < args.min_macro_f1:
        failures.append(f"held-out macro-F1 {holdout['macro_f1']:.4f} < {args.min_macro_f1}")
    if (coverage := sets["test"]["coverage"]) < args.coverage - args.coverage_tolerance:
        failures.append(f"held-out coverage of the prediction sets {coverage:.4f} < {args.coverage} - {args.coverage_tolerance}")
    return failures


def self_check_reference(penguins: list, labels: np.ndarray, booster: xgb.Booster) -> dict:
    """A few records (one per species, one of unknown sex) and the probabilities this booster gives them.

    The service recomputes them at start-up: a model that was damaged or misread is never served.
    """
    picks = [int(np.flatnonzero(labels == cls)[0]) for cls in range(len(SPECIES))]
    picks.append(next(i for i, p in enumerate(penguins) if p.sex is None))
    chosen = [penguins[i] for i in picks]
    return {
        "records": [p.model_dump(mode="json") for p in chosen],
        "probabilities": predict_probabilities(booster, encode(chosen)).tolist(),
    }


def global_importance(booster: xgb.Booster, features: np.ndarray) -> dict:
    """Mean |TreeSHAP contribution| of each request field to each species' margin over these rows."""
    _, fields = field_contributions(booster, features, nthread=1)
    means = np.abs(fields).mean(axis=0)  # fields x species
    return {field: dict(zip(SPECIES, row)) for field, row in zip(FIELD_COLUMNS, means.round(6).tolist())}


def build_metadata(args, dataset, booster, train_features, train_labels, metrics, sets, self_check) -> dict:
    measured = train_features[:, : len(MEASUREMENTS)]
    years = [p.year for p in dataset.penguins if p.year is not None]
    deciles = {
        name: np.quantile(measured[:, i], np.linspace(0.1, 0.9, 9)).round(4).tolist() for i, name in enumerate(MEASUREMENTS)
    }
    return {
        "model_name": args.model_name,
        "classes": list(SPECIES),
        "feature_names": list(FEATURE_NAMES),
        "encoding": {
            "sex_male": "1 for male, 0 for female, missing (NaN) when unknown",
            **{f"island_{island}": f"1 when island is {island}, else 0" for island in ISLANDS},
        },
        "training_ranges": {
            name: [float(measured[:, i].min()), float(measured[:, i].max())] for i, name in enumerate(MEASUREMENTS)
        },
        # The nine inner deciles of each measurement over the training rows cut the ten bins the service counts
        # its inputs in; without drift each bin gets about a tenth of the traffic, exactly the training share
        # recorded next to them (ties make it differ from 0.1).
        "training_deciles": deciles,
        "training_bin_shares": {
            name: (np.bincount(bins, minlength=10) / len(bins)).round(6).tolist()
            for name, bins in zip(MEASUREMENTS, decile_bins(decile_edges(deciles), train_features).T)
        },
        "class_prior": dict(
            zip(SPECIES, (np.bincount(train_labels, minlength=len(SPECIES)) / len(train_labels)).round(6).tolist())
        ),
        "metrics": metrics,
        "prediction_sets": sets,
        "global_importance": global_importance(booster, train_features),
        "params": {
            **xgboost_params(args),
            "rounds": args.rounds,
            "test_size": args.test_size,
            "calibration_size": args.calibration_size,
        },
        "dataset": {
            "name": dataset.name,
            "sha256": dataset.sha256,
            "rows_total": dataset.rows_total,
            "rows_used": len(dataset.penguins),
            "rows_dropped_missing_measurements": dataset.rows_dropped,
            "years": [min(years), max(years)],
        },
        "versions": {
            "python": platform.python_version(),
            **{package: version(package) for package in ("xgboost-cpu", "bentoml", "numpy", "scikit-learn")},
        },
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        **({"source_commit": commit} if (commit := source_commit()) else {}),
        "self_check": self_check,
    }


def source_commit() -> str | None:
    """The git commit the training code came from: SOURCE_COMMIT, else `git rev-parse HEAD`, else unknown."""
    if os.environ.get("SOURCE_COMMIT"):
        return os.environ["SOURCE_COMMIT"]
    try:
        result = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=Path(__file__).parent, capture_output=True, text=True, timeout=5
        )
    except OSError:
        return None
    return result.stdout.strip() if result.returncode == 0 else None


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.push and not args.bucket:
        parser.error("--push needs a bucket: --bucket or GCS_BUCKET_NAME")
    if args.no_train:
        if not args.push:
            parser.error("--no-train only makes sense with --push")
        try:
            stored = bentoml.models.get(args.model_name)
        except bentoml.exceptions.NotFound:
            parser.error(f"the model store ({os.environ.get('BENTOML_HOME', '~/bentoml')}) has no {args.model_name}: train first")
        return push(args, Path(stored.path), stored.tag.version)
    if args.if_missing:
        try:
            print(f"Model store already holds {bentoml.models.get(args.model_name).tag}; not training.")
            return 0
        except bentoml.exceptions.NotFound:
            pass

    try:
        dataset = load_dataset(args.data)
    except (DatasetError, OSError) as error:
        parser.error(str(error))
    features = encode(dataset.penguins)
    train_rows, calibration_rows, test_rows = split_rows(dataset.labels, args)
    cv_folds, out_of_fold = cross_validate(features[train_rows], dataset.labels[train_rows], args)
    booster = fit(features[train_rows], dataset.labels[train_rows], args)
    test_probabilities = predict_probabilities(booster, features[test_rows])
    holdout = classification_metrics(dataset.labels[test_rows], test_probabilities)
    metrics = {**summarize(cv_folds, holdout), "calibration": reliability(dataset.labels[train_rows], out_of_fold)}
    try:
        sets = prediction_sets(booster, features, dataset.labels, calibration_rows, test_rows, args.coverage)
    except ValueError as error:
        parser.error(str(error))
    print(
        f"Trained on {len(train_rows)} of {len(features)} rows ({dataset.rows_dropped} dropped: no measurements), "
        f"{len(calibration_rows)} calibrate the prediction sets, {len(test_rows)} are held out."
    )
    print(format_report(metrics, sets))

    if failed := gate_failures(holdout, sets, args):
        print(f"Quality gate failed: {'; '.join(failed)}; nothing saved.", file=sys.stderr)
        return 1

    self_check = self_check_reference(dataset.penguins, dataset.labels, booster)
    metadata = build_metadata(args, dataset, booster, features[train_rows], dataset.labels[train_rows], metrics, sets, self_check)
    # bentoml.xgboost.save_model cannot be used: it looks up the `xgboost` distribution, which the
    # CUDA-free `xgboost-cpu` wheel does not provide. The framework-neutral store entry holds the same
    # files as the export and the Cloud Storage copy, so one loader serves all three.
    # The store's own metadata (shown by `bentoml models get`) cannot hold nulls, so the self-check
    # records stay in metadata.json only.
    store_metadata = {key: value for key, value in metadata.items() if key != "self_check"}
    with bentoml.models.create(
        args.model_name, labels={"dataset": "palmerpenguins" if args.data is None else "own"}, metadata=store_metadata
    ) as saved:
        model = PenguinModel.checked(booster, metadata, saved.tag.version, "bento", nthread=1)
        model.write_files(Path(saved.path))
    model.write_files(args.export_dir)
    print(f"Saved {saved.tag} to the model store; exported to {args.export_dir}/.")
    return push(args, args.export_dir, model.version) if args.push else 0


def push(args: argparse.Namespace, folder: Path, model_version: str) -> int:
    """Uploads a model's files (an export, or a model store entry: the same files) as a new version."""
    client = make_client(Settings.from_env().storage_emulator_host)
    try:
        push_model(client, args.bucket, args.prefix, folder)
    except (PushConflict, UploadCorrupted) as exc:
        print(f"Push failed: {exc}", file=sys.stderr)
        return 1
    print(f"Pushed to gs://{args.bucket}/{version_prefix(args.prefix, model_version)}/ and moved latest.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

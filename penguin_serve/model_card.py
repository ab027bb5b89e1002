"""The model card (in the spirit of Mitchell et al., "Model Cards for Model Reporting", 2019), rendered from
the model's metadata alone: train.py writes it next to the exported model, the push uploads it with the
version, and the service renders the one of the model it serves (GET /model/card). Never written by hand."""

from __future__ import annotations

from typing import Any

MODEL_CARD_FILE = "MODEL_CARD.md"
LIMITS = (
    "Three species only (Adelie, Chinstrap, Gentoo): any other penguin is classified as one of them.",
    "The islands of the Palmer archipelago only (Biscoe, Dream, Torgersen), as the API enforces.",
    "Birds measured in the 2007-2009 seasons by one team and protocol (Gorman, Williams and Fraser 2014); other "
    "protocols, other seasons or other populations may differ. `year` is not a feature.",
    "A small table: {used} birds, of which {held_out} were held out, so the held-out scores carry wide "
    "uncertainty; the cross-validation spread is the better guide.",
    "Measurements outside the training ranges above are answered with an out-of-distribution warning; "
    "probabilities there are extrapolations, not evidence.",
)


def render(metadata: dict[str, Any]) -> str:
    species = metadata["classes"]
    metrics, dataset = metadata["metrics"], metadata["dataset"]
    holdout, cv = metrics["holdout"], metrics["cross_validation"]
    params, sets = metadata["params"], metadata["prediction_sets"]
    covered = sets["test"]
    lines = [
        f"# Model card: {metadata['model_name']} {metadata['model_version']}",
        "",
        f"Trained {metadata['trained_at']} from commit `{metadata.get('source_commit', 'unknown')}` with "
        + ", ".join(f"{name} {version}" for name, version in metadata["versions"].items())
        + ". Generated from the model's metadata by `penguin_serve/model_card.py`.",
        "",
        "## Model",
        "",
        f"XGBoost gradient-boosted trees (`{params['objective']}`, {params['rounds']} rounds, depth "
        f"{params['max_depth']}, learning rate {params['eta']}, seed {params['seed']}) over "
        f"{len(metadata['feature_names'])} columns; it answers a probability for each of {', '.join(species)}. "
        f"The booster's sha256 is `{metadata['artifact']['sha256']}`; at start-up the service replays "
        f"{len(metadata['self_check']['records'])} recorded predictions and serves the model only if they match.",
        "",
        "## Intended use",
        "",
        "Telling Adelie, Chinstrap and Gentoo penguins of the Palmer archipelago apart from bill length and depth, "
        "flipper length, body mass, island and (when known) sex, for field researchers and applications that "
        "record these measurements. Each answer carries its probabilities, an out-of-distribution warning when a "
        "measurement is outside the training range, and on request (POST /explain) each field's contribution.",
        "",
        "## Data",
        "",
        f"`{dataset['name']}` from the `palmerpenguins` package, sha256 `{dataset['sha256']}`: {dataset['rows_total']} "
        f"rows, {dataset['rows_dropped_missing_measurements']} dropped for missing measurements, "
        f"{dataset['rows_used']} used; seasons {dataset['years'][0]}-{dataset['years'][1]}. A stratified "
        f"{params['test_size']:.0%} ({holdout['rows']} rows) is held out; of the rest, {params['calibration_size']:.0%} "
        f"({sets['calibration_rows']} rows) calibrates the prediction sets and the others train the model.",
        "",
        "Species mix of the training rows (the prior the drift monitoring compares with):",
        "",
        _table(["species", "share"], [[name, f"{share:.3f}"] for name, share in metadata["class_prior"].items()]),
        "",
        "## Features and their encoding",
        "",
        _table(["column", "meaning"], [[name, metadata["encoding"].get(name, "as measured")] for name in metadata["feature_names"]]),
        "",
        "## Performance",
        "",
        _table(
            ["metric", "held-out", f"{cv['folds']}-fold CV mean ± std"],
            [[name, f"{holdout[name]:.4f}", f"{cv[name]['mean']:.4f} ± {cv[name]['std']:.4f}"] for name in ("accuracy", "macro_f1", "log_loss")],
        ),
        "",
        f"Confusion matrix, held-out ({holdout['rows']} rows; rows = true, columns = predicted):",
        "",
        _table(["", *species], [[name, *map(str, row)] for name, row in zip(species, holdout["confusion_matrix"])]),
        "",
        "## Calibration",
        "",
        f"Log-loss {holdout['log_loss']:.4f} held out, {cv['log_loss']['mean']:.4f} ± {cv['log_loss']['std']:.4f} in "
        "cross-validation. Reliability of the out-of-fold predictions (each training row predicted by the fold "
        "model that did not see it): when the model says a confidence in this range, how often it is right "
        "(bins without predictions are left out).",
        "",
        _table(["confidence", "rows", "mean confidence", "accuracy"],
               [[f"{b['low']:.2f}-{b['high']:.2f}", str(b["rows"]), f"{b['mean_confidence']:.3f}", f"{b['accuracy']:.3f}"]
                for b in metrics["calibration"]]),
        "",
        "## Prediction sets",
        "",
        f"Each answer's `prediction_set` holds the species that cannot be ruled out at {sets['coverage_target']:.0%} "
        f"coverage ({sets['method']}; threshold {sets['threshold']:.6f} from {sets['calibration_rows']} calibration "
        f"rows). On the {covered['rows']} held-out rows the true species was in the set in "
        f"{covered['coverage']:.1%} of them, and a set held {covered['mean_set_size']:.3f} species on average:",
        "",
        _table(["set size", "held-out rows"], [[size, str(count)] for size, count in covered["set_sizes"].items()]),
        "",
        "## What the model looks at",
        "",
        "Mean absolute TreeSHAP contribution of each request field to each species' margin (log-odds) over the "
        "training rows:",
        "",
        _table(["field", *species], [[field, *(f"{by_species[name]:.3f}" for name in species)]
                                     for field, by_species in metadata["global_importance"].items()]),
        "",
        "## Training ranges",
        "",
        _table(["measurement", "min", "max"], [[name, f"{low:g}", f"{high:g}"] for name, (low, high) in metadata["training_ranges"].items()]),
        "",
        "## Known limits",
        "",
        *(f"- {limit.format(used=dataset['rows_used'], held_out=holdout['rows'])}" for limit in LIMITS),
        "",
    ]  # fmt: skip
    return "\n".join(lines)


def _table(header: list[str], rows: list[list[str]]) -> str:
    return "\n".join(
        ["| " + " | ".join(header) + " |", "|" + "---|" * len(header), *("| " + " | ".join(row) + " |" for row in rows)]
    )

"""The model's figures for the README, drawn from its metadata alone: global importance and reliability.

.venv/bin/python -m penguin_serve.training.figures models/metadata.json docs/images
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402


def draw(metadata: dict, out_dir: Path) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    species = metadata["classes"]
    importance = metadata["global_importance"]
    fields = sorted(importance, key=lambda field: sum(importance[field].values()))
    figure, axis = plt.subplots(figsize=(7, 3.6))
    left = [0.0] * len(fields)
    for name in species:
        values = [importance[field][name] for field in fields]
        axis.barh(fields, values, left=left, label=name)
        left = [a + b for a, b in zip(left, values)]
    axis.set_xlabel("mean |contribution| to the species' margin (log-odds), training rows")
    axis.set_title(f"What model {metadata['model_version']} looks at (TreeSHAP)")
    axis.legend(loc="lower right")
    figure.tight_layout()
    importance_path = out_dir / "global-importance.png"
    figure.savefig(importance_path, dpi=90)

    bins = metadata["metrics"]["calibration"]
    figure, axis = plt.subplots(figsize=(4.2, 4.2))
    axis.plot([1 / 3, 1], [1 / 3, 1], color="grey", linestyle="--", label="perfectly calibrated")
    axis.scatter(
        [b["mean_confidence"] for b in bins],
        [b["accuracy"] for b in bins],
        s=[10 + b["rows"] for b in bins],
        label="out-of-fold predictions (size: rows)",
    )
    axis.set_xlabel("confidence")
    axis.set_ylabel("accuracy")
    axis.set_title("Reliability")
    axis.legend(loc="upper left", fontsize=8)
    figure.tight_layout()
    reliability_path = out_dir / "reliability.png"
    figure.savefig(reliability_path, dpi=90)
    plt.close("all")
    return [importance_path, reliability_path]


if __name__ == "__main__":
    for path in draw(json.loads(Path(sys.argv[1]).read_text()), Path(sys.argv[2])):
        print(path)

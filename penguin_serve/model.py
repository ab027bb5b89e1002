"""The trained model as the service uses it: an XGBoost booster plus the metadata written by train.py."""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import google_crc32c
import numpy as np

from . import conformal
from .contract import FEATURE_NAMES, FIELD_COLUMNS, MEASUREMENTS, MODEL_NAME, SPECIES, Penguin, encode
from .model_card import MODEL_CARD_FILE
from .model_card import render as render_model_card

if TYPE_CHECKING:
    import xgboost as xgb

logger = logging.getLogger(__name__)

BOOSTER_FILE = "booster.json"
METADATA_FILE = "metadata.json"
SELF_CHECK_TOLERANCE = 1e-5


class ModelCheckError(RuntimeError):
    """The model does not match the contract or fails its self-check: it must not be served."""


def crc32c_base64(data: bytes) -> str:
    """CRC32C as Cloud Storage reports it: big-endian bytes, base64."""
    return base64.b64encode(google_crc32c.Checksum(data).digest()).decode()


def artifact_digest(data: bytes) -> dict[str, Any]:
    """Size and checksums of the booster file: sha256 for our own check, crc32c as Cloud Storage reports it."""
    return {
        "file": BOOSTER_FILE,
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "crc32c": crc32c_base64(data),
    }


def field_contributions(booster: xgb.Booster, features: np.ndarray, nthread: int) -> tuple[np.ndarray, np.ndarray]:
    """Exact TreeSHAP (XGBoost's pred_contribs) folded into the request's fields: the base values (rows x
    species) and the fields' contributions (rows x FIELD_COLUMNS x species), in margin space (log-odds)."""
    import xgboost as xgb

    matrix = xgb.DMatrix(features, feature_names=list(FEATURE_NAMES), nthread=nthread)
    raw = booster.predict(matrix, pred_contribs=True)  # rows x species x (features + bias)
    fields = np.stack([raw[:, :, list(columns)].sum(axis=2) for columns in FIELD_COLUMNS.values()], axis=1)
    return raw[:, :, -1], fields


def decile_edges(deciles: dict[str, list[float]]) -> np.ndarray:
    """The training deciles as a matrix: MEASUREMENTS x 9 bin edges."""
    return np.array([deciles[name] for name in MEASUREMENTS], dtype=np.float32)


def decile_bins(edges: np.ndarray, features: np.ndarray) -> np.ndarray:
    """Rows x MEASUREMENTS: each measurement's bin among the ten that its nine training deciles cut, 0 below the
    first, 9 at or above the last (the number of edges at or below it). Training and serving count drift with
    it; measurements are never missing (the contract requires them, training drops rows without them)."""
    return np.stack(
        [np.searchsorted(column_edges, features[:, index], side="right") for index, column_edges in enumerate(edges)], axis=1
    )


@dataclass(frozen=True)
class PenguinModel:
    booster: xgb.Booster
    metadata: dict[str, Any]
    version: str
    source: str  # "bento", "gcs" or "fallback": reported by the model-info endpoint and a metric
    location: str = ""  # where exactly it came from
    fallback_reason: str | None = None
    nthread: int = 1  # XGBoost threads per call

    @classmethod
    def from_files(cls, directory: str | Path, source: str, nthread: int) -> PenguinModel:
        """Load the booster and metadata that write_files() wrote (model store entry or models/ export)."""
        directory = Path(directory)
        metadata = json.loads((directory / METADATA_FILE).read_bytes())
        return cls.from_bytes((directory / BOOSTER_FILE).read_bytes(), metadata, source, nthread, str(directory))

    @classmethod
    def from_bytes(cls, booster_raw: bytes, metadata: dict, source: str, nthread: int, location: str) -> PenguinModel:
        """Verify the booster bytes against the metadata's sha256, load them, and run the self-check."""
        expected = metadata.get("artifact", {})
        actual = artifact_digest(booster_raw)
        if (actual["sha256"], actual["size"]) != (expected.get("sha256"), expected.get("size")):
            raise ModelCheckError(
                f"booster sha256 {actual['sha256'][:12]}… ({actual['size']} bytes) does not match the "
                f"metadata's {str(expected.get('sha256'))[:12]}… ({expected.get('size')} bytes)"
            )
        # Imported here, in the model loader: bentoml serve's parent process imports the service only to
        # read its configuration, and should not pay for XGBoost (docs/PERFORMANCE.md, cold start).
        import xgboost as xgb

        booster = xgb.Booster()
        booster.load_model(bytearray(booster_raw))
        return cls.checked(booster, metadata, metadata["model_version"], source, nthread, location)

    @classmethod
    def checked(
        cls, booster: xgb.Booster, metadata: dict, version: str, source: str, nthread: int, location: str = ""
    ) -> PenguinModel:
        """A model that matches this code's contract and reproduces its training-time predictions."""
        # One thread per prediction: the service scales with workers, and XGBoost's default of all cores
        # costs ~10 ms per row under concurrent requests.
        booster.set_param({"nthread": nthread})
        model = cls(booster, dict(metadata), version, source, location, nthread=nthread)
        model.check()
        return model

    def check(self) -> None:
        if tuple(self.metadata.get("feature_names", ())) != FEATURE_NAMES:
            raise ModelCheckError(f"model features {self.metadata.get('feature_names')} != contract {list(FEATURE_NAMES)}")
        if tuple(self.metadata.get("classes", ())) != SPECIES:
            raise ModelCheckError(f"model classes {self.metadata.get('classes')} != {list(SPECIES)}")
        if not isinstance(self.metadata.get("prediction_sets", {}).get("threshold"), float):
            raise ModelCheckError("model has no calibrated prediction sets: train it with this version")
        reference = self.metadata["self_check"]
        penguins = [Penguin.model_validate(record) for record in reference["records"]]
        expected = np.asarray(reference["probabilities"], dtype=np.float32)
        actual = self.probabilities(encode(penguins))
        if actual.shape != expected.shape or not np.allclose(actual, expected, atol=SELF_CHECK_TOLERANCE):
            raise ModelCheckError("self-check predictions differ from those recorded at training time")
        logger.info("model %s from %s passed its self-check", self.version, self.source)

    def probabilities(self, features: np.ndarray) -> np.ndarray:
        """Class probabilities, one row per input row, columns in SPECIES order."""
        return self.booster.inplace_predict(features).reshape(len(features), len(SPECIES))

    def prediction_sets(self, probabilities: np.ndarray) -> np.ndarray:
        """Rows x SPECIES: True where the species is in the row's conformal prediction set."""
        return conformal.membership(probabilities, self.metadata["prediction_sets"]["threshold"])

    def contributions(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return field_contributions(self.booster, features, self.nthread)

    def outside_training_ranges(self, features: np.ndarray) -> np.ndarray:
        """Rows x MEASUREMENTS: True where a measurement lies outside the range seen in training."""
        low, high = self._training_ranges
        measurements = features[:, : len(MEASUREMENTS)]
        return (measurements < low) | (measurements > high)

    @cached_property
    def drift_edges(self) -> np.ndarray:
        """decile_edges of this model's training deciles."""
        return decile_edges(self.metadata["training_deciles"])

    @cached_property
    def _training_ranges(self) -> tuple[np.ndarray, np.ndarray]:
        ranges = self.metadata["training_ranges"]
        bounds = np.array([ranges[name] for name in MEASUREMENTS], dtype=np.float32)
        return bounds[:, 0], bounds[:, 1]

    def write_files(self, directory: str | Path) -> None:
        """The model's portable form: XGBoost JSON plus a metadata JSON that records the booster's size and
        checksums, and the model card rendered from that metadata. The same files make the model store entry,
        the models/ export and the Cloud Storage copy."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        booster_raw = bytes(self.booster.save_raw(raw_format="json"))
        metadata = {**self.metadata, "model_version": self.version, "artifact": artifact_digest(booster_raw)}
        (directory / BOOSTER_FILE).write_bytes(booster_raw)
        (directory / METADATA_FILE).write_text(json.dumps(metadata, indent=2) + "\n")
        (directory / MODEL_CARD_FILE).write_text(render_model_card(metadata))

    def info(self) -> dict[str, Any]:
        """What the model-info endpoint reports."""
        keys = (
            "classes",
            "feature_names",
            "encoding",
            "metrics",
            "prediction_sets",
            "global_importance",
            "training_ranges",
            "training_deciles",
            "dataset",
            "trained_at",
        )
        return {
            "name": self.metadata.get("model_name", MODEL_NAME),
            "version": self.version,
            "source": self.source,
            "location": self.location,
            "fallback_reason": self.fallback_reason,
            "source_commit": self.metadata.get("source_commit"),
            **{key: self.metadata.get(key) for key in keys},
            "versions": self.metadata.get("versions"),
        }

"""Model: a damaged or mismatched model file is refused before it can be served."""

import json
import logging
import re
import shutil

import numpy as np
import pytest

from penguin_serve.contract import FEATURE_NAMES, MEASUREMENTS, MODEL_NAME, SPECIES
from penguin_serve.model import (
    BOOSTER_FILE,
    METADATA_FILE,
    SELF_CHECK_TOLERANCE,
    ModelCheckError,
    PenguinModel,
    artifact_digest,
    decile_bins,
    decile_edges,
)


@pytest.fixture
def model_dir(exported_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(exported_model, copy)
    return copy


def edit_metadata(model_dir, edit):
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    edit(metadata)
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata))


def shift_first_tree(model_dir):
    """Change the first tree's split values: a different model in valid XGBoost JSON."""
    booster = json.loads((model_dir / BOOSTER_FILE).read_text())
    tree = booster["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["split_conditions"] = [c + 1.0 for c in tree["split_conditions"]]
    (model_dir / BOOSTER_FILE).write_text(json.dumps(booster))


def test_intact_model_loads(model_dir, caplog):
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    with caplog.at_level(logging.INFO, logger="penguin_serve.model"):
        model = PenguinModel.from_files(model_dir, source="test", nthread=2)
    assert (model.version, model.source, model.location, model.nthread) == (metadata["model_version"], "test", str(model_dir), 2)
    assert json.loads(model.booster.save_config())["learner"]["generic_param"]["nthread"] == "2"
    assert model.metadata == metadata and model.metadata["artifact"] == artifact_digest((model_dir / BOOSTER_FILE).read_bytes())
    assert caplog.messages == [f"model {model.version} from test passed its self-check"]


def test_model_info_reports_the_metadata_and_where_the_model_came_from(model_dir):
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    reported = (
        "classes",
        "feature_names",
        "encoding",
        "metrics",
        "prediction_sets",
        "global_importance",
        "training_ranges",
        "training_deciles",
    )
    info = PenguinModel.from_files(model_dir, source="test", nthread=1).info()
    assert info == {
        "name": metadata["model_name"],
        "version": metadata["model_version"],
        "source": "test",
        "location": str(model_dir),
        "fallback_reason": None,
        "source_commit": metadata["source_commit"],
        **{key: metadata[key] for key in (*reported, "dataset", "trained_at")},
        "versions": metadata["versions"],
    }
    assert all(info[key] is not None for key in (*reported, "dataset", "trained_at", "versions"))


def test_model_info_names_the_model_its_metadata_names_or_the_contracts(model_dir):
    edit_metadata(model_dir, lambda m: m.update(model_name="penguin_classifier_v2"))
    assert PenguinModel.from_files(model_dir, source="test", nthread=1).info()["name"] == "penguin_classifier_v2"
    edit_metadata(model_dir, lambda m: m.pop("model_name"))
    assert PenguinModel.from_files(model_dir, source="test", nthread=1).info()["name"] == MODEL_NAME


def test_a_prediction_within_the_self_check_tolerance_passes(model_dir):
    """Recorded probabilities may differ from today's by the tolerance (other XGBoost builds, other CPUs)."""
    nudge = SELF_CHECK_TOLERANCE * 0.9

    def nudge_probabilities(metadata):
        metadata["self_check"]["probabilities"] = [[p + nudge for p in row] for row in metadata["self_check"]["probabilities"]]

    edit_metadata(model_dir, nudge_probabilities)
    PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_a_self_check_with_other_records_fails(model_dir):
    edit_metadata(model_dir, lambda m: m["self_check"]["probabilities"].pop())
    with pytest.raises(ModelCheckError, match="^self-check predictions differ from those recorded at training time$"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_a_loaded_model_writes_back_the_very_files_it_was_loaded_from(model_dir, tmp_path):
    """The files training exports are write_files' output: loading them and writing again gives the same bytes."""
    from penguin_serve.model import MODEL_CARD_FILE

    PenguinModel.from_files(model_dir, source="test", nthread=1).write_files(tmp_path / "again" / "model")
    for name in (BOOSTER_FILE, METADATA_FILE, MODEL_CARD_FILE):
        assert (tmp_path / "again" / "model" / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_booster_changed_behind_its_metadata_is_refused(model_dir):
    expected = json.loads((model_dir / METADATA_FILE).read_text())["artifact"]
    shift_first_tree(model_dir)
    actual = artifact_digest((model_dir / BOOSTER_FILE).read_bytes())
    message = (
        f"booster sha256 {actual['sha256'][:12]}… ({actual['size']} bytes) does not match the "
        f"metadata's {expected['sha256'][:12]}… ({expected['size']} bytes)"
    )
    with pytest.raises(ModelCheckError, match=f"^{re.escape(message)}$"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_metadata_without_the_booster_digest_is_refused(model_dir):
    edit_metadata(model_dir, lambda m: m.pop("artifact"))
    with pytest.raises(ModelCheckError, match=re.escape("does not match the metadata's None… (None bytes)")):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_truncated_booster_is_refused(model_dir):
    data = (model_dir / BOOSTER_FILE).read_bytes()
    (model_dir / BOOSTER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(ModelCheckError, match="does not match"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_consistent_files_of_a_different_model_fail_the_self_check(model_dir):
    # sha256 matches (the metadata was rewritten for the changed booster), but the booster no longer
    # reproduces the predictions recorded at training time.
    shift_first_tree(model_dir)
    digest = artifact_digest((model_dir / BOOSTER_FILE).read_bytes())
    edit_metadata(model_dir, lambda m: m.update(artifact=digest))
    with pytest.raises(ModelCheckError, match="self-check"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_feature_order_mismatch_is_refused(model_dir):
    edit_metadata(model_dir, lambda m: m["feature_names"].reverse())
    message = f"model features {list(reversed(FEATURE_NAMES))} != contract {list(FEATURE_NAMES)}"
    with pytest.raises(ModelCheckError, match=f"^{re.escape(message)}$"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_class_mismatch_is_refused(model_dir):
    edit_metadata(model_dir, lambda m: m.update(classes=["Gentoo", "Adelie", "Chinstrap"]))
    message = f"model classes ['Gentoo', 'Adelie', 'Chinstrap'] != {list(SPECIES)}"
    with pytest.raises(ModelCheckError, match=f"^{re.escape(message)}$"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


@pytest.mark.parametrize(
    ("key", "message"),
    [
        ("feature_names", f"model features None != contract {list(FEATURE_NAMES)}"),
        ("classes", f"model classes None != {list(SPECIES)}"),
    ],
)
def test_metadata_without_features_or_classes_is_refused(model_dir, key, message):
    edit_metadata(model_dir, lambda m: m.pop(key))
    with pytest.raises(ModelCheckError, match=f"^{re.escape(message)}$"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_training_ranges_include_their_bounds(model_dir):
    model = PenguinModel.from_files(model_dir, source="test", nthread=1)
    low, high = (
        np.array([model.metadata["training_ranges"][name][i] for name in MEASUREMENTS], dtype=np.float32) for i in (0, 1)
    )
    features = np.zeros((4, len(FEATURE_NAMES)), dtype=np.float32)
    features[:, : len(MEASUREMENTS)] = [low, high, np.nextafter(low, -np.inf), np.nextafter(high, np.inf)]
    assert model.outside_training_ranges(features).tolist() == [[False] * 4, [False] * 4, [True] * 4, [True] * 4]


def test_a_measurement_on_a_decile_edge_falls_in_the_bin_above(model_dir):
    model = PenguinModel.from_files(model_dir, source="test", nthread=1)
    edges = decile_edges(model.metadata["training_deciles"])
    assert edges.dtype == np.float32 and edges.shape == (len(MEASUREMENTS), 9)
    features = np.zeros((2, len(FEATURE_NAMES)), dtype=np.float32)
    features[:, : len(MEASUREMENTS)] = [edges[:, 0], np.nextafter(edges[:, 0], -np.inf)]
    assert decile_bins(edges, features).tolist() == [[1] * 4, [0] * 4]

"""Model: a damaged or mismatched model file is refused before it can be served."""

import json
import shutil

import pytest

from penguin_serve.model import BOOSTER_FILE, METADATA_FILE, ModelCheckError, PenguinModel, artifact_digest


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


def test_intact_model_loads(model_dir):
    model = PenguinModel.from_files(model_dir, source="test", nthread=1)
    assert model.info()["source"] == "test" and model.info()["version"] == model.version
    assert model.metadata["artifact"] == artifact_digest((model_dir / BOOSTER_FILE).read_bytes())


def test_a_loaded_model_writes_back_the_very_files_it_was_loaded_from(model_dir, tmp_path):
    """The files training exports are write_files' output: loading them and writing again gives the same bytes."""
    from penguin_serve.model import MODEL_CARD_FILE

    PenguinModel.from_files(model_dir, source="test", nthread=1).write_files(tmp_path / "again" / "model")
    for name in (BOOSTER_FILE, METADATA_FILE, MODEL_CARD_FILE):
        assert (tmp_path / "again" / "model" / name).read_bytes() == (model_dir / name).read_bytes(), name


def test_booster_changed_behind_its_metadata_is_refused(model_dir):
    shift_first_tree(model_dir)
    with pytest.raises(ModelCheckError, match="sha256 .* does not match"):
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
    with pytest.raises(ModelCheckError, match="features"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_class_mismatch_is_refused(model_dir):
    edit_metadata(model_dir, lambda m: m.update(classes=["Gentoo", "Adelie", "Chinstrap"]))
    with pytest.raises(ModelCheckError, match="classes"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)

"""Model: a damaged or mismatched model file is refused before it can be served."""

import json
import shutil

import pytest

from penguin_serve.model import BOOSTER_FILE, METADATA_FILE, ModelCheckError, PenguinModel


@pytest.fixture
def model_dir(exported_model, tmp_path):
    copy = tmp_path / "model"
    shutil.copytree(exported_model, copy)
    return copy


def edit_metadata(model_dir, edit):
    metadata = json.loads((model_dir / METADATA_FILE).read_text())
    edit(metadata)
    (model_dir / METADATA_FILE).write_text(json.dumps(metadata))


def test_intact_model_loads(model_dir):
    model = PenguinModel.from_files(model_dir, source="test", nthread=1)
    assert model.info()["source"] == "test" and model.info()["version"] == model.version


def test_changed_tree_fails_the_self_check(model_dir):
    booster = json.loads((model_dir / BOOSTER_FILE).read_text())
    tree = booster["learner"]["gradient_booster"]["model"]["trees"][0]
    tree["base_weights"] = [w + 0.5 for w in tree["base_weights"]]
    tree["split_conditions"] = [c + 0.5 if leaf == -1 else c for c, leaf in zip(tree["split_conditions"], tree["left_children"])]
    (model_dir / BOOSTER_FILE).write_text(json.dumps(booster))
    with pytest.raises(ModelCheckError, match="self-check"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_truncated_booster_is_refused(model_dir):
    data = (model_dir / BOOSTER_FILE).read_bytes()
    (model_dir / BOOSTER_FILE).write_bytes(data[: len(data) // 2])
    with pytest.raises(Exception):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_feature_order_mismatch_is_refused(model_dir):
    edit_metadata(model_dir, lambda m: m["feature_names"].reverse())
    with pytest.raises(ModelCheckError, match="features"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)


def test_class_mismatch_is_refused(model_dir):
    edit_metadata(model_dir, lambda m: m.update(classes=["Gentoo", "Adelie", "Chinstrap"]))
    with pytest.raises(ModelCheckError, match="classes"):
        PenguinModel.from_files(model_dir, source="test", nthread=1)

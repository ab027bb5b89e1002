"""Code and model: train.py's gate, determinism, saved metadata, export and options."""

import json

import bentoml
import numpy as np
import pytest

import train
from penguin_serve.contract import FEATURE_NAMES, MODEL_NAME, SPECIES, encode
from penguin_serve.model import PenguinModel
from penguin_serve.training.dataset import load_dataset


def stored_versions(name=MODEL_NAME):
    try:
        return {model.tag.version for model in bentoml.models.list(name)}
    except bentoml.exceptions.NotFound:
        return set()


def test_export_holds_booster_and_complete_metadata(exported_model):
    metadata = json.loads((exported_model / "metadata.json").read_text())
    assert metadata["classes"] == list(SPECIES)
    assert metadata["feature_names"] == list(FEATURE_NAMES)
    assert metadata["model_version"] in stored_versions()
    assert metadata["dataset"]["sha256"] == load_dataset().sha256
    assert metadata["dataset"]["rows_used"] == 342
    assert set(metadata["versions"]) == {"python", "xgboost-cpu", "bentoml", "numpy", "scikit-learn"}
    holdout = metadata["metrics"]["holdout"]
    assert holdout["macro_f1"] >= 0.95 and sum(map(sum, holdout["confusion_matrix"])) == holdout["rows"] == 69
    assert metadata["metrics"]["cross_validation"]["folds"] == 5
    for low, high in metadata["training_ranges"].values():
        assert 0 < low < high
    assert json.loads((exported_model / "booster.json").read_text())["learner"]


def test_store_entry_and_export_are_the_same_model(exported_model):
    exported = PenguinModel.from_files(exported_model, "export", nthread=1)
    stored = bentoml.models.get(f"{MODEL_NAME}:{exported.version}")
    from_store = PenguinModel.from_files(stored.path, "bento", nthread=1)
    assert exported.version == from_store.version == stored.tag.version
    rows = encode(load_dataset().penguins)
    np.testing.assert_array_equal(exported.probabilities(rows), from_store.probabilities(rows))
    assert stored.info.metadata["dataset"]["sha256"] == load_dataset().sha256


def test_training_is_deterministic(exported_model, tmp_path):
    assert train.main(["--export-dir", str(tmp_path)]) == 0
    again = PenguinModel.from_files(tmp_path, "retrain", nthread=1)
    first = PenguinModel.from_files(exported_model, "first", nthread=1)
    rows = encode(load_dataset().penguins)
    np.testing.assert_array_equal(first.probabilities(rows), again.probabilities(rows))
    assert again.version != first.version  # a new store entry, same predictions


def test_quality_gate_saves_nothing_and_fails(exported_model, tmp_path, capsys):
    before = stored_versions()
    assert train.main(["--min-macro-f1", "1.01", "--export-dir", str(tmp_path / "out")]) == 1
    assert "Quality gate failed" in capsys.readouterr().err
    assert stored_versions() == before
    assert not (tmp_path / "out").exists()


def test_coverage_gate_saves_nothing_and_names_the_coverage(exported_model, tmp_path, capsys):
    """A held-out coverage under the target minus the tolerance (here a tolerance that asks for more than every
    row) is refused like a low macro-F1."""
    before = stored_versions()
    assert train.main(["--coverage-tolerance", "-0.2", "--export-dir", str(tmp_path / "out")]) == 1
    assert "held-out coverage of the prediction sets 1.0000 < 0.9 - -0.2; nothing saved" in capsys.readouterr().err
    assert stored_versions() == before and not (tmp_path / "out").exists()


@pytest.mark.parametrize(("coverage", "refused"), [(0.85, False), (0.8499, True)])
def test_the_coverage_gate_holds_at_the_target_minus_the_tolerance(coverage, refused):
    args = train.build_parser().parse_args(["--coverage", "0.9", "--coverage-tolerance", "0.05"])
    failures = train.gate_failures({"macro_f1": 1.0}, {"test": {"coverage": coverage}}, args)
    assert bool(failures) is refused, failures


def test_if_missing_skips_when_a_model_exists(exported_model, tmp_path, capsys):
    before = stored_versions()
    assert train.main(["--if-missing", "--export-dir", str(tmp_path)]) == 0
    assert "not training" in capsys.readouterr().out
    assert stored_versions() == before and not any(tmp_path.iterdir())


def test_if_missing_trains_when_the_store_has_none(tmp_path):
    assert stored_versions("penguin_fresh") == set()
    assert train.main(["--if-missing", "--model-name", "penguin_fresh", "--export-dir", str(tmp_path)]) == 0
    assert len(stored_versions("penguin_fresh")) == 1


def test_summary_is_readable(exported_model, tmp_path, capsys):
    train.main(["--export-dir", str(tmp_path)])
    out = capsys.readouterr().out
    for text in ("accuracy", "macro_f1", "log_loss", "5-fold CV", "Confusion matrix", "Chinstrap"):
        assert text in out


def test_help_documents_every_option(capsys):
    parser = train.build_parser()
    with pytest.raises(SystemExit) as exit_info:
        parser.parse_args(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for action in parser._actions:
        assert action.help, action.dest
        assert all(option in out for option in action.option_strings)


def test_the_model_figures_are_drawn_from_the_metadata(exported_model, tmp_path):
    import json

    from penguin_serve.training.figures import draw

    paths = draw(json.loads((exported_model / "metadata.json").read_text()), tmp_path)
    assert [p.name for p in paths] == ["global-importance.png", "reliability.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 5000 for p in paths)


def own_table(tmp_path, edit=lambda frame: frame):
    """The palmerpenguins table as a CSV of one's own (rows reversed, so nothing depends on the package's copy)."""
    from importlib import resources

    import pandas as pd

    frame = pd.read_csv(resources.files("palmerpenguins").joinpath("data/penguins.csv"))[::-1]
    path = tmp_path / "my_penguins.csv"
    edit(frame).to_csv(path, index=False)
    return path


def test_trains_on_a_csv_of_ones_own(exported_model, tmp_path, capsys):
    table = own_table(tmp_path)
    assert train.main(["--data", str(table), "--model-name", "penguin_own", "--export-dir", str(tmp_path / "out")]) == 0
    metadata = json.loads((tmp_path / "out" / "metadata.json").read_text())
    assert metadata["dataset"]["name"] == "my_penguins.csv" and metadata["dataset"]["rows_used"] == 342
    assert "Trained on 204 of 342 rows (2 dropped: no measurements), 69 calibrate" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda f: f.drop(columns=["body_mass_g"]), "missing column(s) body_mass_g"),
        (lambda f: f.assign(colour="black"), "unknown column(s) colour"),
        (lambda f: f.drop(columns=["island"]).assign(region="x"), "missing column(s) island; unknown column(s) region"),
        (lambda f: f.assign(species="Emperor"), "unknown species Emperor"),
    ],
)
def test_a_csv_with_other_columns_is_refused_by_name(tmp_path, capsys, edit, message):
    before = stored_versions()
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--data", str(own_table(tmp_path, edit)), "--export-dir", str(tmp_path / "out")])
    error = capsys.readouterr().err
    assert exit_info.value.code == 2 and message in error and "my_penguins.csv" in error, error
    assert stored_versions() == before


def test_push_without_training_uploads_the_stored_model_as_it_is(exported_model, gcs_emulator, bucket, monkeypatch, capsys):
    from penguin_serve.storage import make_client

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", gcs_emulator.url)
    before = stored_versions()
    latest = bentoml.models.get(MODEL_NAME)
    assert train.main(["--push", "--no-train", "--bucket", bucket]) == 0
    assert stored_versions() == before  # nothing trained
    assert f"gs://{bucket}/{MODEL_NAME}/{latest.tag.version}/" in capsys.readouterr().out
    pushed = make_client(gcs_emulator.url).bucket(bucket).blob(f"{MODEL_NAME}/{latest.tag.version}/booster.json")
    with open(latest.path_of("booster.json"), "rb") as stored:
        assert pushed.download_as_bytes() == stored.read()


def test_no_train_needs_push(capsys):
    with pytest.raises(SystemExit) as exit_info:
        train.main(["--no-train"])
    assert exit_info.value.code == 2 and "--no-train only makes sense with --push" in capsys.readouterr().err

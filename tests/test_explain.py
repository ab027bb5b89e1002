"""Model: explanations are correct by construction (contributions + base = margin, softmax of the margins =
the probabilities /predict answers, for every dataset row), move with the field that changed, fold encoded
columns back into the request's fields, and reach clients over HTTP with /predict's contract."""

import asyncio
from pathlib import Path

import numpy as np
import pytest
import xgboost as xgb
from conftest import ADELIE

from penguin_serve.contract import FEATURE_NAMES, FIELD_COLUMNS, MEASUREMENTS, SPECIES, encode
from penguin_serve.training.dataset import load_dataset


@pytest.fixture(scope="module")
def predictor(exported_model, tmp_path_factory):
    from penguin_serve.serving.predictor import Predictor
    from penguin_serve.serving.readiness import InstanceReadiness
    from penguin_serve.settings import SETTINGS

    loaded = Predictor(InstanceReadiness(1, tmp_path_factory.mktemp("ready")), load_wait_s=0.0)
    loaded.load(SETTINGS, exported_model)
    return loaded


@pytest.fixture(scope="module")
def penguins():
    return load_dataset().penguins


def explain(predictor, penguin):
    from penguin_serve.serving.endpoints import explain as explain_answer

    return asyncio.run(explain_answer(predictor, penguin))


def test_contributions_add_up_to_the_margins_and_their_softmax_to_the_probabilities(predictor, penguins):
    model = predictor.checked_model()
    features = encode(penguins)
    margins = model.booster.predict(xgb.DMatrix(features, feature_names=list(FEATURE_NAMES)), output_margin=True)
    base, fields = model.contributions(features)
    np.testing.assert_allclose(base + fields.sum(axis=1), margins, atol=1e-4)
    softmax = np.exp(margins) / np.exp(margins).sum(axis=1, keepdims=True)
    np.testing.assert_allclose(softmax, model.probabilities(features), atol=1e-5)


def test_every_dataset_row_explains_its_own_prediction(predictor, penguins):
    from penguin_serve.serving.endpoints import predict

    for penguin in penguins:
        answer = explain(predictor, penguin)
        assert {key: answer[key] for key in asyncio.run(predict(predictor, penguin))} == asyncio.run(predict(predictor, penguin))
        margins = np.array([answer["base_value"][s] + sum(answer["contributions"][f][s] for f in FIELD_COLUMNS) for s in SPECIES])
        probabilities = np.exp(margins) / np.exp(margins).sum()
        np.testing.assert_allclose(probabilities, [answer["probabilities"][s] for s in SPECIES], atol=1e-5)
        assert set(answer["contributions"]) == {*MEASUREMENTS, "sex", "island"}  # fields, never encoded columns


def test_explanations_asked_together_share_one_treeshap_call_and_equal_those_asked_alone(predictor, penguins):
    from penguin_serve.serving.endpoints import explain as explain_answer

    calls = []
    model = predictor.checked_model()
    original = model.contributions

    def counted(features):
        calls.append(len(features))
        return original(features)

    object.__setattr__(model, "contributions", counted)  # a spy on this test's own model object
    try:

        async def together():
            return await asyncio.gather(*(explain_answer(predictor, penguin) for penguin in penguins[:20]))

        answers = asyncio.run(together())
        assert calls == [20]
        alone = [explain(predictor, penguin) for penguin in penguins[:20]]
    finally:
        object.__delattr__(model, "contributions")
    assert answers == alone


def test_changing_one_field_moves_mainly_that_fields_contribution(predictor, penguins):
    """Each measurement in turn raised by a quarter of its training range, on every dataset row: on average its
    own contributions move more than twice as much as any other field's (interactions move the others a
    little), and for most rows it is the field that moved most. (The explanations of all rows in one call each:
    the endpoint's are these, folded into dicts, as the first test shows.)"""
    model = predictor.checked_model()
    ranges = model.metadata["training_ranges"]
    fields = list(FIELD_COLUMNS)
    features = encode(penguins)
    _, before = model.contributions(features)  # rows x fields x species
    for name in MEASUREMENTS:
        stepped = features.copy()
        stepped[:, FEATURE_NAMES.index(name)] += (ranges[name][1] - ranges[name][0]) / 4
        _, after = model.contributions(stepped)
        moved = np.abs(after - before).sum(axis=2)  # rows x fields
        mean, own = moved.mean(axis=0), fields.index(name)
        assert all(mean[own] > 2 * mean[other] for other in range(len(fields)) if other != own), (name, dict(zip(fields, mean)))
        changed = moved[moved.max(axis=1) > 1e-3]  # some steps cross no split at all
        assert (changed.argmax(axis=1) == own).mean() >= 0.8, name


def test_a_missing_sex_is_explained_as_unknown(predictor, penguins):
    """An unknown sex is reported under `sex` like a known one. The trees send a missing sex down their default
    branches, so for every bird its contribution is that of the sex the trees default to there. (All rows in one
    call each, as in the test above.)"""
    model, features = predictor.checked_model(), encode(penguins)
    column, field = FEATURE_NAMES.index("sex_male"), list(FIELD_COLUMNS).index("sex")

    def sex_contributions(code: float) -> np.ndarray:  # rows x species
        rows = features.copy()
        rows[:, column] = code
        return model.contributions(rows)[1][:, field, :]

    unknown, female, male = (sex_contributions(code) for code in (np.nan, 0.0, 1.0))
    assert np.isfinite(unknown).all()
    assert all((u == f).all() or (u == m).all() for u, f, m in zip(unknown, female, male))


def test_explain_over_http_names_the_model_and_keeps_predicts_contract(api):
    answer = api.post("/explain", json=ADELIE)
    assert answer.status_code == 200
    body = answer.json()
    assert body["prediction"] == "Adelie" and body["model_version"] == api.get("/model").json()["version"]
    assert body["contributions"]["bill_length_mm"]["Adelie"] > 0  # a short bill speaks for Adelie
    invalid = api.post("/explain", json={**ADELIE, "island": "Atlantis"})
    assert invalid.status_code == 422 and invalid.json()["detail"][0]["field"] == "island"
    assert api.post("/explain", content=b"x", headers={"Content-Type": "text/plain"}).status_code == 415


def test_model_info_shows_global_importance_and_links_the_model_card(api):
    info = api.get("/model").json()
    importance = info["global_importance"]
    assert set(importance) == {*MEASUREMENTS, "sex", "island"} and all(set(v) == set(SPECIES) for v in importance.values())
    assert max(importance, key=lambda field: importance[field]["Gentoo"]) in ("flipper_length_mm", "bill_depth_mm")
    card = api.get(info["model_card"])
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/markdown")
    # The served model's own card, as training wrote it beside its booster (other tests may train newer ones).
    import bentoml

    from penguin_serve.contract import MODEL_NAME

    assert card.text == (Path(bentoml.models.get(f"{MODEL_NAME}:{info['version']}").path) / "MODEL_CARD.md").read_text()

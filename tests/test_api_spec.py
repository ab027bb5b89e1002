"""Code: the spec the service serves is the published one (docs/openapi.json), to the last description."""

import json

from conftest import REPO_ROOT

PUBLISHED = REPO_ROOT / "docs" / "openapi.json"


def test_the_served_spec_is_the_published_one(api):
    """Every field, rule, example and answer the API documents. make mutate runs this file first: code that runs
    once, at import or start-up (the contract's models, the spec's parts), is attributed to the first test."""
    served = api.get("/docs.json").json()
    model = api.get("/model").json()["version"]
    assert served["info"]["version"] == f"bento none (source), model {model}"
    served["info"]["version"] = "bento BENTO, model MODEL"
    assert served == json.loads(PUBLISHED.read_text()), "regenerate: .venv/bin/python -m scripts.dev.openapi > docs/openapi.json"

"""docs/openapi.json: the OpenAPI spec the service serves at /docs.json, for readers and client generators, and
the reference tests/test_api_spec.py holds the served spec to. Its version names the bento and the model that
answer, so here it reads `bento BENTO, model MODEL`.

    .venv/bin/python -m scripts.dev.openapi > docs/openapi.json
"""

import json

from penguin_serve.serving.get_app import published_spec
from service import ROUTES

if __name__ == "__main__":
    print(json.dumps(published_spec(ROUTES, "BENTO", "MODEL"), indent=2, ensure_ascii=False))

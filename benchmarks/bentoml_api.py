"""penguin-serve's own methods on BentoML's own `@bentoml.api` path: the same service, model and answers, but
BentoML reads, validates and serializes each request (no ApiRoutes in front), and each method returns its
return type's objects, as that path needs. `make bench` compares it with penguin-serve: what the lane in
front of BentoML's path buys (docs/PERFORMANCE.md, "One front door").

    BENTOML_HOME=... .venv-serve/bin/bentoml serve benchmarks.bentoml_api:PenguinClassifier --port 8004
"""

import functools

from pydantic import TypeAdapter

from penguin_serve.serving.fast_lane import ApiRoutes
from service import ROUTES, PenguinClassifier


def returning_objects(func, response_type):
    adapter = TypeAdapter(response_type)

    @functools.wraps(func)
    async def method(self, request, /):
        return adapter.validate_python(await func(self, request))

    return method


for api in PenguinClassifier.apis.values():
    api.func = returning_objects(api.func, ROUTES[api.route].response)
PenguinClassifier.middlewares[:] = [entry for entry in PenguinClassifier.middlewares if entry[0] is not ApiRoutes]

__all__ = ["PenguinClassifier"]

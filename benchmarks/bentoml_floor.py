"""BentoML's own per-request floor: a BentoML service configured like penguin-serve (access log off, tracing
excluded for the route, the same traffic timeout with its timer cancelled, the same garbage-collector
setting), whose only middleware answers POST /predict with the HTTP
ceiling's fixed JSON. What it costs is what every request to penguin-serve pays before any of our code runs.

    BENTOML_HOME=... .venv-serve/bin/bentoml serve benchmarks.bentoml_floor:BentoMLFloor --port 8003
"""

import bentoml

from benchmarks import ceiling_app
from penguin_serve.serving import bentoml_timeout
from penguin_serve.serving.worker import configure_garbage_collector
from penguin_serve.settings import SETTINGS

bentoml_timeout.install()


class FixedAnswer:
    def __init__(self, app) -> None:
        self.app = app

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] == "/predict":
            return await ceiling_app.app(scope, receive, send)
        await self.app(scope, receive, send)


@bentoml.service(
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.request_timeout_s},
    logging={"access": {"enabled": False}},
    tracing={"excluded_urls": ["/predict"]},
)
class BentoMLFloor:
    def __init__(self) -> None:
        configure_garbage_collector(SETTINGS.gc_young_allocations)

    @bentoml.api
    def predict(self, value: int) -> int:
        return value


BentoMLFloor.add_asgi_middleware(FixedAnswer)

"""The penguin classifier API: typed predict endpoints over the model packed into the bento."""

from __future__ import annotations

import threading

import bentoml
from starlette.middleware.cors import CORSMiddleware

from penguin_serve.contract import BatchRequest, Explanation, Penguin, Prediction, PredictionColumns
from penguin_serve.serving import bentoml_timeout, pages, request_log
from penguin_serve.serving.endpoints import ENDPOINTS, EXPLAIN, PREDICT, PREDICT_BATCH
from penguin_serve.serving.predictor import Predictor
from penguin_serve.serving.readiness import InstanceReadiness
from penguin_serve.serving.routes import ApiRoutes, unserved_apis
from penguin_serve.serving.worker import start_worker
from penguin_serve.settings import SETTINGS

bentoml_timeout.install()  # before BentoML builds this worker's app

# What `bentoml build` packs and `bentoml containerize` builds (README, "The container image"). The distro is
# outside BentoML's table on purpose: BentoML then adds no apt-get layer (build-essential, git, ~630 MB) to a
# base image that already has everything the service needs. The venv's skeleton, which BentoML hands to the
# service user, goes back to root, so the service cannot change the packages it runs.
IMAGE = (
    bentoml.images.Image(base_image="python:3.11-slim", distro="python-slim", python_version="3.11", lock_python_packages=False)
    .requirements_file("requirements.txt")
    .run("find /app/.venv -user bentoml -exec chown -h root:root {} +")
)

# Request latency buckets 20 % apart, 1 ms to 33 s: BentoML's default first bucket (5 ms) holds every ordinary
# answer, so a quantile could not tell 2 ms from 4 ms, and the canary's gate compares p50 and p99 at 1.2 x.
LATENCY_BUCKETS_S = tuple(round(0.001 * 1.2**index, 6) for index in range(58))

# One per worker process: the typed methods below and the HTTP routes (penguin_serve/serving/routes.py) both
# answer through it.
PREDICTOR = Predictor(InstanceReadiness(SETTINGS.workers), SETTINGS.load_wait_s)


@bentoml.service(
    image=IMAGE,
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.request_timeout_s},
    logging={"access": {"enabled": False}},  # replaced by request_log's JSON lines
    metrics={"duration": {"buckets": list(LATENCY_BUCKETS_S)}},
    # BentoML's OpenTelemetry middleware cost more CPU than the prediction itself. Its spans are exported only
    # where an exporter is configured; to trace these routes too, set BENTOML_CONFIG_OVERRIDES to
    # {"services": {"PenguinClassifier": {"tracing": {"excluded_urls": []}}}}.
    tracing={"excluded_urls": list(ENDPOINTS)},
)
@bentoml.asgi_app(pages.create_app(PREDICTOR), path="/")
class PenguinClassifier:
    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        # Load in the background: /livez answers at once, /readyz says 503 until every worker's model has
        # loaded and passed its self-check.
        start_worker(SETTINGS)
        self.predictor = PREDICTOR
        threading.Thread(
            target=self.predictor.load, args=(SETTINGS, self.bento_model.path), name="model-loader", daemon=True
        ).start()

    def __is_ready__(self) -> bool:
        return self.predictor.instance_ready

    # HTTP requests to these routes never reach the methods below: ApiRoutes answers them in one ASGI step,
    # without BentoML's per-request overhead. The methods are the typed API (BentoML's clients and schema) and
    # serve in-process callers (`.local`); both call the same endpoint answers.
    @bentoml.api(route=PREDICT.path)
    async def predict(self, penguin: Penguin, /) -> Prediction:
        """Classify one penguin. Invalid input: 422 listing each field and reason."""
        return PREDICT.typed(await PREDICT.answer(self.predictor, penguin))

    @bentoml.api(route=PREDICT_BATCH.path)
    async def predict_batch(self, penguins: BatchRequest, /) -> list[Prediction] | PredictionColumns:
        """Classify up to 10,000 penguins, sent as records or as columns; answers in order, in the same form."""
        return PREDICT_BATCH.typed(await PREDICT_BATCH.answer(self.predictor, penguins))

    @bentoml.api(route=EXPLAIN.path)
    async def explain(self, penguin: Penguin, /) -> Explanation:
        """Classify one penguin and say why: each field's contribution to each species' margin (log-odds)."""
        return EXPLAIN.typed(await EXPLAIN.answer(self.predictor, penguin))


# Every typed API is served the same way (the HTTP routes, the spec) or the service does not start.
if problems := unserved_apis({api.route for api in PenguinClassifier.apis.values()}, ENDPOINTS):
    raise RuntimeError("; ".join(problems))

# Outermost first: the request log sees every answer, CORS (off unless origins are configured) covers the API
# routes' answers too, and ApiRoutes answers the prediction endpoints.
PenguinClassifier.add_asgi_middleware(
    request_log.RequestLog, project=SETTINGS.google_cloud_project, log_successes=SETTINGS.log_successes
)
if SETTINGS.cors_origins:
    PenguinClassifier.add_asgi_middleware(
        CORSMiddleware,
        allow_origins=list(SETTINGS.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Authorization"],
    )
PenguinClassifier.add_asgi_middleware(
    ApiRoutes,
    predictor=PREDICTOR,
    endpoints=ENDPOINTS,
    max_body_bytes=SETTINGS.max_body_bytes,
    max_in_flight=SETTINGS.max_in_flight,
)

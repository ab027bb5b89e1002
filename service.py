"""The penguin classifier API: typed predict endpoints over the model packed into the bento."""

from __future__ import annotations

import threading

import bentoml
from starlette.middleware.cors import CORSMiddleware

from penguin_serve.contract import BatchRequest, Explanation, FeedbackRequest, Penguin, Prediction, PredictionColumns, Receipt
from penguin_serve.labels import open_label_store
from penguin_serve.serving import bentoml_timeout, endpoints, get_app, inference_protocol, request_log
from penguin_serve.serving.fast_lane import ApiRoutes
from penguin_serve.serving.inference_protocol import InferenceRequest, InferenceResponse
from penguin_serve.serving.predictor import Predictor
from penguin_serve.serving.readiness import InstanceReadiness
from penguin_serve.serving.worker import configure_worker
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

# One per worker process: the model the methods below answer with, and its readiness.
PREDICTOR = Predictor(InstanceReadiness(SETTINGS.workers), SETTINGS.load_wait_s)


@bentoml.service(
    image=IMAGE,
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.request_timeout_s},
    logging={"access": {"enabled": False}},  # replaced by request_log's JSON lines
    metrics={"duration": {"buckets": list(LATENCY_BUCKETS_S)}},
)
class PenguinClassifier:
    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        # Load in the background: /livez answers at once, /readyz says 503 until every worker's model has
        # loaded and passed its self-check.
        configure_worker(SETTINGS)
        self.predictor = PREDICTOR
        self.labels = open_label_store(SETTINGS)
        threading.Thread(
            target=self.predictor.load, args=(SETTINGS, self.bento_model.path), name="model-loader", daemon=True
        ).start()

    def __is_ready__(self) -> bool:
        return self.predictor.instance_ready

    # The API: each method is an endpoint (POST to its name), its docstring the spec's summary and description.
    # HTTP requests reach it through penguin_serve/serving/fast_lane.py, which validates the body as the
    # parameter's type; it answers with its return type's JSON data (penguin_serve/serving/endpoints.py).
    @bentoml.api
    async def predict(self, penguin: Penguin, /) -> Prediction:
        """Classify one penguin

        A flat JSON object with the penguin's measurements. Invalid input: 422 naming each field and reason.
        """
        return await endpoints.predict(self.predictor, penguin)

    @bentoml.api
    async def predict_batch(self, penguins: BatchRequest, /) -> list[Prediction] | PredictionColumns:
        """Classify up to 10,000 penguins

        A JSON array of records, or an object of columns (one array per field, as pandas'
        `df.to_dict(orient="list")` writes them; several times cheaper to serve). Answers come in order, in the
        same form. One invalid value fails the whole request with 422 naming its index and field.
        """
        return await endpoints.predict_batch(self.predictor, penguins)

    @bentoml.api
    async def explain(self, penguin: Penguin, /) -> Explanation:
        """Classify one penguin and say why

        The same body as /predict; the answer adds each field's contribution to each species' margin (log-odds,
        exact TreeSHAP) and the base value. It costs about two predictions; there is no batch form (per row, a
        batch of explanations costs many times a batch of predictions: docs/PERFORMANCE.md gives both).
        """
        return await endpoints.explain(self.predictor, penguin)

    # The list first: BentoML 1.4's own spec (written by `bentoml build`) fails on a union that starts with a
    # model (KeyError 'ents/schemas/...', bentoml/BentoML#5636).
    @bentoml.api
    async def feedback(self, observations: FeedbackRequest, /) -> list[Receipt] | Receipt:
        """Report penguins whose species was confirmed

        One observation (a penguin's fields plus its confirmed `species` and your `id`), or a JSON array of up to
        10,000. Each is stored once for retraining (the same id again is not stored twice: its receipt says
        `duplicate`), and its receipt says what the serving model predicts for it. 503 with Retry-After when the
        store cannot be reached: nothing is lost, and a retry stores what is missing.
        """
        return await endpoints.feedback(self.predictor, self.labels, observations)

    # The Open Inference Protocol v2 (KServe, Triton, MLServer): the same model and answers as tensors.
    @bentoml.api(route="/v2/models/{model}/infer")
    async def infer(self, request: InferenceRequest, /) -> InferenceResponse:
        """Classify penguins as Open Inference Protocol tensors

        One input tensor of shape [N] per field (GET /v2/models/penguin_classifier lists them); the answer is
        `probabilities` (FP32, [N, 3]) and `label` (BYTES, [N]). Invalid input: 400 naming the tensor and reason.
        """
        return await inference_protocol.infer(self.predictor, request)

    @bentoml.api(route="/v2/models/{model}/versions/{version}/infer")
    async def infer_version(self, request: InferenceRequest, /) -> InferenceResponse:
        """Classify penguins as Open Inference Protocol tensors, with a named model version

        As infer; 404 unless the version is the one this instance serves.
        """
        return await inference_protocol.infer(self.predictor, request)


ROUTES = endpoints.routes_of(PenguinClassifier.apis)  # a method the HTTP lane cannot serve stops the service here
# BentoML's OpenTelemetry middleware cost more CPU than the prediction itself. Its spans are exported only where
# an exporter is configured; to trace these routes too, set BENTOML_CONFIG_OVERRIDES to
# {"services": {"PenguinClassifier": {"tracing": {"excluded_urls": []}}}}.
PenguinClassifier.config["tracing"] = {"excluded_urls": [route.traced_as for route in ROUTES.values()]}
PenguinClassifier.mount_asgi_app(get_app.create_app(PREDICTOR, ROUTES), path="/")

# Outermost first: the request log sees every answer, CORS (off unless origins are configured) covers the API
# routes' answers too, and ApiRoutes answers the typed methods' routes.
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
    routes=ROUTES,
    service=bentoml.get_current_service,
    max_body_bytes=SETTINGS.max_body_bytes,
    max_in_flight=SETTINGS.max_in_flight,
)

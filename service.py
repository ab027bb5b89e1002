"""The penguin classifier API: typed predict endpoints over the model packed into the bento."""

from __future__ import annotations

import gc
import logging
import threading

import bentoml
import numpy as np
from starlette.applications import Starlette
from starlette.middleware.cors import CORSMiddleware
from starlette.requests import Request
from starlette.responses import JSONResponse, RedirectResponse
from starlette.routing import Route

from penguin_serve import request_log
from penguin_serve.batching import MicroBatcher
from penguin_serve.contract import (
    Penguin,
    PenguinBatch,
    PenguinColumns,
    Prediction,
    PredictionColumns,
    encode,
    encode_columns,
    prediction_records,
)
from penguin_serve.limits import RequestLimits
from penguin_serve.loading import load_serving_model
from penguin_serve.metrics import record_model_call, record_out_of_distribution
from penguin_serve.model import PenguinModel
from penguin_serve.openapi import DocumentedSpec
from penguin_serve.routes import PredictionRoutes
from penguin_serve.settings import SETTINGS

logger = logging.getLogger("penguin_serve.service")
logging.getLogger("penguin_serve").setLevel(logging.INFO)


async def model_info(_: Request) -> JSONResponse:
    service = bentoml.get_current_service()
    if service.model is None:
        return JSONResponse({"error": "model not loaded yet"}, status_code=503)
    return JSONResponse(service.model.info())


async def docs(_: Request) -> RedirectResponse:
    return RedirectResponse("/")  # BentoML serves Swagger UI at / and the spec at /docs.json


API_PATHS = ("/predict", "/predict_batch")
info_routes = Starlette(routes=[Route("/model", model_info), Route("/docs", docs)])


@bentoml.service(
    workers=SETTINGS.workers,
    traffic={"timeout": SETTINGS.request_timeout_s},
    logging={"access": {"enabled": False}},  # replaced by request_log's JSON lines
    # BentoML's OpenTelemetry middleware cost more CPU than the prediction itself. Its spans are exported only
    # where an exporter is configured; to trace these routes too, set BENTOML_CONFIG_OVERRIDES to
    # {"services": {"PenguinClassifier": {"tracing": {"excluded_urls": []}}}}.
    tracing={"excluded_urls": list(API_PATHS)},
)
@bentoml.asgi_app(info_routes, path="/")
class PenguinClassifier:
    bento_model = bentoml.models.BentoModel(SETTINGS.model_tag)

    def __init__(self) -> None:
        # Load in the background so that /livez answers at once and /readyz says 503 until the model has
        # loaded and passed its self-check.
        self.model: PenguinModel | None = None
        self.batcher = MicroBatcher(self._model_call)
        threading.Thread(target=self._load_model, name="model-loader", daemon=True).start()

    def _load_model(self) -> None:
        try:
            self.model = load_serving_model(SETTINGS, self.bento_model.path)
        except Exception:
            logger.exception("no model could be loaded: staying unready")
        # The ~100k objects of start-up (BentoML, pydantic, XGBoost) leave the garbage collector's scans: a
        # full collection over them paused every request in flight for ~50 ms (docs/PERFORMANCE.md).
        gc.freeze()

    def __is_ready__(self) -> bool:
        return self.model is not None

    # HTTP requests to these two routes are answered by PredictionRoutes (penguin_serve/routes.py) with the
    # same types and contract, without BentoML's per-request overhead. The methods define the API and its
    # OpenAPI spec, and serve in-process callers.
    @bentoml.api(route="/predict")
    async def predict(self, penguin: Penguin, /) -> Prediction:
        """Classify one penguin. Invalid input: 422 listing each field and reason."""
        return Prediction.model_construct(**prediction_records(await self.classify(encode([penguin])))[0])

    @bentoml.api(route="/predict_batch")
    async def predict_batch(
        self, penguins: PenguinBatch | PenguinColumns, /
    ) -> list[Prediction] | PredictionColumns:
        """Classify up to 10,000 penguins, sent as a list of records or as columns (one array per field);
        answers in order, in the same form. One invalid value fails the whole request with 422 naming its
        index and field."""
        if isinstance(penguins, PenguinColumns):
            return PredictionColumns.model_construct(**await self.classify(encode_columns(penguins)))
        answers = prediction_records(await self.classify(encode(penguins)))
        return [Prediction.model_construct(**answer) for answer in answers]

    async def classify(self, features: np.ndarray) -> dict:
        """Answers shaped like PredictionColumns, one per feature row; concurrent requests share one model
        call."""
        if self.model is None:
            raise bentoml.exceptions.ServiceUnavailable("model is still loading; retry shortly")
        answers = self.model.answer_columns(features, await self.batcher.submit(features))
        record_out_of_distribution(answers["out_of_distribution"])
        return answers

    def _model_call(self, rows: np.ndarray) -> np.ndarray:
        probabilities = self.model.probabilities(rows)
        record_model_call(probabilities)
        return probabilities


# Outermost first: the request log sees every answer, CORS (off unless origins are configured) covers the
# prediction routes' answers too, the limits act before any parsing, the prediction routes answer
# /predict and /predict_batch, and the spec patch rewrites /docs.json.
request_log.configure(SETTINGS.log_level)
PenguinClassifier.add_asgi_middleware(request_log.RequestLog, project=SETTINGS.google_cloud_project)
if SETTINGS.cors_origins:
    PenguinClassifier.add_asgi_middleware(
        CORSMiddleware,
        allow_origins=list(SETTINGS.cors_origins),
        allow_methods=["GET", "POST"],
        allow_headers=["Content-Type", "Authorization"],
    )
PenguinClassifier.add_asgi_middleware(
    RequestLimits, api_paths=API_PATHS, max_body_bytes=SETTINGS.max_body_bytes, max_in_flight=SETTINGS.max_in_flight
)
PenguinClassifier.add_asgi_middleware(PredictionRoutes, classifier=bentoml.get_current_service)
PenguinClassifier.add_asgi_middleware(
    DocumentedSpec, api_paths=API_PATHS, alternatives={"/predict_batch": (PenguinColumns, PredictionColumns)}
)

"""The service's GET pages: its front page (Swagger UI with this service's own header, whose spec documents
/predict, /predict_batch and /explain), the OpenAPI spec, model information, the model card and the health
endpoint existing clients poll, and the Open Inference Protocol's GET routes. Mounted at / by service.py."""

from __future__ import annotations

import html
import json
from typing import Any

import bentoml
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Route

from ..contract import EXAMPLE
from ..model_card import render as render_model_card
from ..settings import SETTINGS
from .endpoints import ApiRoute
from .inference_protocol import GetRoutes
from .openapi import build_spec
from .predictor import NOT_READY_MESSAGE, Predictor

NAME = "penguin-serve"
DESCRIPTION = (
    "Classifies Palmer penguins (Adelie, Chinstrap, Gentoo) from body measurements with an XGBoost model. "
    "POST a penguin's measurements as JSON to `/predict`, or up to 10,000 of them to `/predict_batch`, or one to "
    "`/explain` to see why; invalid input is answered 422 naming each field and reason. Expand an endpoint below and use "
    "*Try it out*: the examples are real penguins."
)
PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
  <meta charset="UTF-8">
  <title>{name}</title>
  <link rel="stylesheet" href="/static_content/swagger-ui.css">
  <style>
    body {{ margin: 0; font-family: sans-serif; }}
    header {{ padding: 16px 24px; background: #1b3a4b; color: #fff; }}
    header h1 {{ margin: 0 0 4px; font-size: 24px; }}
    header p {{ margin: 4px 0; }}
    header code {{ background: rgba(255,255,255,0.15); padding: 1px 4px; }}
    header a {{ color: #cde; }}
  </style>
</head>
<body>
  <header>
    <h1>{name}</h1>
    <p id="versions">bento {bento} &middot; model {model}</p>
    <p><code>curl -X POST {origin}/predict -H 'Content-Type: application/json' -d '{example}'</code></p>
    <p><a href="/docs.json">OpenAPI spec</a> &middot; <a href="/model">model</a> &middot; <a href="/model/card">model card</a> &middot; <a href="/health">health</a> &middot; <a href="/metrics">metrics</a></p>
  </header>
  <div id="swagger-ui"></div>
  <script src="/static_content/swagger-ui-bundle.js"></script>
  <script>
    window.ui = SwaggerUIBundle({{url: "/docs.json", dom_id: "#swagger-ui", deepLinking: true, tryItOutEnabled: true}});
  </script>
</body>
</html>
"""


def published_spec(routes: dict[str, ApiRoute], bento: str, model: str) -> dict[str, Any]:
    """The OpenAPI spec served at /docs.json, naming the bento and the model (docs/openapi.json: BENTO, MODEL)."""
    return build_spec(routes, NAME, f"bento {bento}, model {model}", DESCRIPTION)


class Pages:
    """The GET routes over one predictor. Methods, not closures in create_app: each request calls them, so a
    test that requests a page is known to cover it (make mutate runs that test for each change to it)."""

    def __init__(self, predictor: Predictor, routes: dict[str, ApiRoute]) -> None:
        self.predictor = predictor
        self.routes = routes

    def versions(self) -> tuple[str, str]:
        """The bento (none under `bentoml serve service:...`, which serves the source) and the model."""
        context, model = bentoml.server_context, self.predictor.model
        bento = f"{context.bento_name}:{context.bento_version}" if context.bento_version != "not available" else "none (source)"
        return bento, model.version if model else "loading"

    async def front_page(self, request: Request) -> HTMLResponse:
        bento, model = self.versions()
        origin = f"{request.url.scheme}://{request.url.netloc}"
        return HTMLResponse(
            PAGE.format(
                name=NAME, bento=html.escape(bento), model=html.escape(model),
                origin=html.escape(origin), example=html.escape(json.dumps(EXAMPLE)),
            )
        )  # fmt: skip

    async def spec(self, _: Request) -> JSONResponse:
        return JSONResponse(published_spec(self.routes, *self.versions()))

    async def model_info(self, _: Request) -> JSONResponse:
        if self.predictor.model is None:
            return JSONResponse({"error": NOT_READY_MESSAGE}, status_code=503)
        return JSONResponse({**self.predictor.model.info(), "model_card": "/model/card"})

    async def model_card(self, _: Request) -> Response:
        if self.predictor.model is None:
            return JSONResponse({"error": NOT_READY_MESSAGE}, status_code=503)
        return PlainTextResponse(render_model_card(self.predictor.model.metadata), media_type="text/markdown")

    async def health(self, _: Request) -> JSONResponse:
        model, ready = self.predictor.model, self.predictor.instance_ready
        body: dict[str, Any] = {"status": "ok" if ready else "loading", "model_version": model.version if model else None}
        if SETTINGS.revision:  # which revision answered: traffic splits and canaries can be checked from outside
            body["revision"] = SETTINGS.revision
        return JSONResponse(body, status_code=200 if ready else 503)

    async def docs(self, _: Request) -> RedirectResponse:
        return RedirectResponse("/")


def create_app(predictor: Predictor, routes: dict[str, ApiRoute]) -> Starlette:
    pages = Pages(predictor, routes)
    return Starlette(
        routes=[
            Route("/", pages.front_page),
            Route("/docs", pages.docs),
            Route("/docs.json", pages.spec),
            Route("/model", pages.model_info),
            Route("/model/card", pages.model_card),
            Route("/health", pages.health),
            *GetRoutes(predictor, NAME, lambda: pages.versions()[0]).routes(),
        ]
    )

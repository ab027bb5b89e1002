"""The model a worker serves and the one way to ask it: readiness, one shared model call per moment, metrics.

Both entry points use it: the HTTP routes (fast_lane.py) and the typed BentoML methods in service.py. It knows
nothing about either.
"""

from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
from bentoml.exceptions import ServiceUnavailable

from .. import answers
from ..loading import load_serving_model
from ..model import PenguinModel
from ..settings import Settings
from .batching import MicroBatcher, slice_rows
from .metrics import MODEL_CALLS, MODEL_READY, record_model_loaded
from .readiness import InstanceReadiness

logger = logging.getLogger(__name__)

NOT_READY_MESSAGE = "model is still loading; retry shortly"


class NotReady(ServiceUnavailable):
    """No model has loaded and passed its self-check yet: 503, for HTTP and in-process callers alike."""

    def __init__(self) -> None:
        super().__init__(NOT_READY_MESSAGE)


class Predictor:
    def __init__(self, instance: InstanceReadiness, load_wait_s: float) -> None:
        self.model: PenguinModel | None = None  # set once, when loaded and checked
        self.instance = instance
        self.load_wait_s = load_wait_s
        self.loading = True  # until load() has finished, with a model or without one
        self._batcher = MicroBatcher(self._predict_rows, answers.rows)
        self._explainer = MicroBatcher(self._contribution_rows, slice_rows)
        MODEL_READY.set(0)

    @property
    def ready(self) -> bool:
        """This worker's model has loaded and passed its self-check."""
        return self.model is not None

    @property
    def instance_ready(self) -> bool:
        """Every worker of the instance is ready: what /readyz and /health answer."""
        return self.ready and self.instance.all_ready()

    def load(self, settings: Settings, bento_model_path: str | Path) -> None:
        """Blocking: the service runs it in a background thread, so /livez answers at once meanwhile."""
        try:
            model = load_serving_model(settings, bento_model_path)
        except Exception:
            logger.exception("no model could be loaded: staying unready")
        else:
            record_model_loaded(model)
            self.model = model
            self.instance.worker_ready()
        finally:
            self.loading = False

    def checked_model(self) -> PenguinModel:
        if self.model is None:
            raise NotReady()
        return self.model

    async def loaded_model(self) -> PenguinModel:
        """The model, waiting up to load_wait_s while this worker still loads it: another worker of the instance
        may have said the instance is ready, or a restarted worker may take a request before its model is in."""
        if self.model is None and self.loading:
            deadline = time.monotonic() + self.load_wait_s
            while self.model is None and self.loading and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
        return self.checked_model()

    async def predict(self, features: np.ndarray) -> dict[str, Any]:
        """The answers for these feature rows, shaped like contract.PredictionColumns. Requests that arrive
        together share one model call and one pass of answer building."""
        if self.model is None:
            await self.loaded_model()
        return await self._batcher.submit(features)

    async def contributions(self, features: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The base values and each field's contributions for these feature rows (model.field_contributions).
        TreeSHAP has a fixed cost per call too: explanations that arrive together share one."""
        if self.model is None:
            await self.loaded_model()
        return await self._explainer.submit(features)

    def _contribution_rows(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        return self.checked_model().contributions(rows)

    def _predict_rows(self, rows: np.ndarray) -> dict[str, Any]:
        model = self.checked_model()
        probabilities = model.probabilities(rows)
        built = answers.build(model, rows, probabilities)
        MODEL_CALLS.add(model, rows, probabilities)
        return built

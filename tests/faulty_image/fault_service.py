"""The real service with a fault in front of its prediction routes: the bad canary revisions of
tests/test_cloud_run_releases.py. FAULT_ERROR_SHARE of the prediction requests are answered 500 and FAULT_DELAY_S
is added to each, inside BentoML's metrics middleware, so that the revision's own series show what its clients
see. A worker's first FAULT_SPARED requests are spared, as a fault that shows under load: the rollout's smoke
tests pass and the gate is what finds it."""

import asyncio
import json
import os
import random

from service import ROUTES, PenguinClassifier


class Fault:
    def __init__(self, app, error_share: float, delay_s: float, spared: int) -> None:
        self.app, self.error_share, self.delay_s, self.spared = app, error_share, delay_s, spared

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "http" and scope["path"] in ROUTES and self.spared > 0:
            self.spared -= 1
        elif scope["type"] == "http" and scope["path"] in ROUTES:
            await asyncio.sleep(self.delay_s)
            if random.random() < self.error_share:
                body = json.dumps({"detail": "injected fault"}).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 500, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


# Outermost of the service's own middlewares: in front of the routes that answer predictions.
FAULT = {
    "error_share": float(os.environ.get("FAULT_ERROR_SHARE") or 0),
    "delay_s": float(os.environ.get("FAULT_DELAY_S") or 0),
    "spared": int(os.environ.get("FAULT_SPARED") or 5),
}
PenguinClassifier.middlewares.insert(0, (Fault, FAULT))

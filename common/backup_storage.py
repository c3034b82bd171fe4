"""Where encrypted backups are kept: a local directory (the default) or object storage.

``BACKUP_STORAGE_URL`` picks the place: empty or a path means a directory (``BACKUP_DIR``
when empty); ``s3://bucket/prefix`` means Amazon S3 or any S3-compatible store (MinIO,
Cloudflare R2, Backblaze B2, DigitalOcean Spaces, Ceph) through boto3, with
``BACKUP_S3_ENDPOINT_URL`` for the latter. Credentials and region come the usual AWS ways
(``AWS_ACCESS_KEY_ID``/``AWS_SECRET_ACCESS_KEY``/``AWS_SESSION_TOKEN``, ``AWS_REGION``, a
profile, an instance or task role), read by boto3 itself.

Both kinds offer the same few operations on backup file names, so backup, retention, listing
and restore (common/backups.py) do not care where the files are. The files are encrypted
before they leave the machine; the store only ever holds ciphertext.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from django.conf import settings

# Called with the number of bytes moved since the last call (boto3's Callback contract).
Transferred = Callable[[int], None]


class StorageError(Exception):
    """The backup store cannot be reached or refused an operation; the message says why."""


class LocalStorage:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    def location(self, name: str) -> str:
        return str(self.directory / name)

    def local_path(self, name: str) -> Path | None:
        """Where a backup can be written or read in place (no transfer needed)."""
        return self.directory / name

    def names(self) -> list[str]:
        if not self.directory.is_dir():
            return []
        return sorted(path.name for path in self.directory.iterdir() if path.is_file())

    def upload(self, source: Path, name: str, *, transferred: Transferred | None = None) -> int:
        target = self.directory / name
        if source != target:
            self.directory.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return target.stat().st_size

    def download(self, name: str, target: Path, *, transferred: Transferred | None = None) -> None:
        source = self.directory / name
        if not source.is_file():
            raise StorageError(f"no backup {name} in {self.directory}")
        shutil.copyfile(source, target)

    def size(self, name: str) -> int:
        return (self.directory / name).stat().st_size

    def delete(self, name: str) -> None:
        (self.directory / name).unlink(missing_ok=True)


class S3Storage:
    def __init__(self, *, bucket: str, prefix: str, endpoint_url: str = "") -> None:
        import boto3

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.client = boto3.client("s3", endpoint_url=endpoint_url or None)

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def location(self, name: str) -> str:
        return f"s3://{self.bucket}/{self._key(name)}"

    def local_path(self, name: str) -> Path | None:
        return None

    def names(self) -> list[str]:
        start = f"{self.prefix}/" if self.prefix else ""
        names = []
        with _errors("list the backups in", self.location("")):
            for page in self.client.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=start
            ):
                for item in page.get("Contents", []):
                    name = item["Key"][len(start) :]
                    if name and "/" not in name:
                        names.append(name)
        return sorted(names)

    def upload(self, source: Path, name: str, *, transferred: Transferred | None = None) -> int:
        key = self._key(name)
        with _errors("upload", self.location(name)):
            # Multipart above 8 MB, with retries per part: large databases upload reliably.
            self.client.upload_file(str(source), self.bucket, key, Callback=transferred)
            size = self.client.head_object(Bucket=self.bucket, Key=key)["ContentLength"]
        if size != source.stat().st_size:
            raise StorageError(
                f"{self.location(name)} holds {size} bytes after the upload, "
                f"not the {source.stat().st_size} that were sent"
            )
        return size

    def download(self, name: str, target: Path, *, transferred: Transferred | None = None) -> None:
        with _errors("download", self.location(name)):
            self.client.download_file(
                self.bucket, self._key(name), str(target), Callback=transferred
            )

    def size(self, name: str) -> int:
        with _errors("read", self.location(name)):
            return self.client.head_object(Bucket=self.bucket, Key=self._key(name))["ContentLength"]

    def delete(self, name: str) -> None:
        with _errors("delete", self.location(name)):
            self.client.delete_object(Bucket=self.bucket, Key=self._key(name))


class _errors:
    """boto3's errors as StorageError, naming what was being done to which object."""

    def __init__(self, action: str, location: str) -> None:
        self.action = action
        self.location = location

    def __enter__(self):
        return self

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            return False
        from boto3.exceptions import Boto3Error
        from botocore.exceptions import BotoCoreError, ClientError

        if isinstance(error, ClientError):
            detail = error.response.get("Error", {})
            message = f"{detail.get('Code', 'error')}: {detail.get('Message', '')}".strip(": ")
        elif isinstance(error, BotoCoreError | Boto3Error):
            message = str(error)
        else:
            return False
        raise StorageError(f"cannot {self.action} {self.location}: {message}") from None


def storage_from_settings() -> LocalStorage | S3Storage:
    return storage_from_url(settings.BACKUP_STORAGE_URL)


def storage_from_url(url: str) -> LocalStorage | S3Storage:
    if not url:
        return LocalStorage(Path(settings.BACKUP_DIR))
    if url.startswith("s3://"):
        parts = urlsplit(url)
        return S3Storage(
            bucket=parts.netloc,
            prefix=parts.path,
            endpoint_url=settings.BACKUP_S3_ENDPOINT_URL,
        )
    return LocalStorage(Path(url.removeprefix("file://")))

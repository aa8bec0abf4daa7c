"""The S3 side of the store: boto3 with two layers of retries, multipart for large files, atomic writes.

Retries happen twice on purpose. botocore retries single HTTP requests (standard or adaptive mode);
this module retries whole operations with exponential backoff and full jitter, because some failures
botocore never sees as retryable: a connection dropped while a GET body streams, a multipart upload
whose part failed after botocore gave up, a read that timed out mid-body. Every write is a single PUT
or a completed multipart upload, so a reader never sees a partial object, and a failed multipart
upload is aborted by the transfer manager.

Settings: see `stseg_core.s3client` (`S3Settings.from_env`).

Bounded and audible: no new attempt of an operation starts once its deadline has passed, and its first retry
logs one warning (logger `stseg.store`) naming the endpoint (without any `user:pass@`) and what is retried.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

from stseg_core.errors import BackendError, MissingArtifactError, StsegError
from stseg_core.s3client import (
    MISSING_CODES,
    MULTIPART_THRESHOLD,
    MiB,
    S3Client,
    S3Settings,
    error_code,
    is_retryable,
    one_line,
    redact,
    unwrap,
)
from stseg_core.store import Store, _atomic_dest, join_key

T = TypeVar("T")
log = logging.getLogger("stseg.store")

_DELETE_BATCH = 1000  # the S3 DeleteObjects limit
__all__ = ["S3Settings", "S3Store"]  # a store's settings are part of its API (they live in s3client)


class _KeyNotFound(MissingArtifactError):
    """A missing key (not a missing bucket): `exists` turns it into False."""


class S3Store(Store):
    """`s3://bucket/prefix`: keys live under `prefix/` in `bucket`."""

    def __init__(
        self, bucket: str, prefix: str = "", settings: S3Settings | None = None, _client: S3Client | None = None
    ) -> None:
        self.bucket = bucket
        self.prefix = join_key(prefix)
        self.root = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = _client or S3Client(settings or S3Settings.from_env())

    @property
    def settings(self) -> S3Settings:
        return self._client.settings

    # -- plumbing -------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return join_key(self.prefix, self._key(key))

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1 :] if self.prefix else full_key

    def _call(self, what: str, key: str, fn: Callable[[], T]) -> T:
        """Run `fn`, retrying whole-operation failures with exponential backoff and full jitter until the
        deadline (or the optional retry cap); the first retry logs one warning."""
        from botocore.exceptions import ClientError, NoCredentialsError

        s = self.settings
        uri = self.uri(key)
        start = time.monotonic()
        attempt = 0
        while True:
            try:
                return fn()
            except StsegError:
                raise
            except Exception as raw:
                err = unwrap(raw)
                if isinstance(err, NoCredentialsError):
                    raise BackendError(
                        f"{uri}: {what} failed: no AWS credentials found "
                        "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
                    ) from None
                if isinstance(err, ClientError):
                    code, status = error_code(err)
                    if code == "NoSuchBucket":
                        raise MissingArtifactError(f"{uri}: bucket {self.bucket!r} does not exist") from None
                    if code in MISSING_CODES or status == 404:
                        raise _KeyNotFound(f"{uri}: not found") from None
                    if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                        raise BackendError(
                            f"{uri}: {what} refused ({code or status}); check the AWS credentials and bucket policy"
                        ) from None
                if not is_retryable(err):
                    raise BackendError(f"{uri}: {what} failed: {one_line(err)}") from None
                left = s.deadline_s - (time.monotonic() - start)
                if left <= 0 or (s.retries is not None and attempt >= s.retries):
                    raise BackendError(
                        f"{uri}: {what} failed after {attempt + 1} attempts in "
                        f"{time.monotonic() - start:.0f} s (each up to {s.max_attempts} requests; "
                        f"STSEG_S3_DEADLINE_S={s.deadline_s:g}): {one_line(err)}"
                    ) from None
                if attempt == 0:
                    log.warning(
                        "stseg: S3 endpoint %s: %s of %s failed (%s); retrying for up to %.0f s",
                        self.endpoint_name,
                        what,
                        uri,
                        one_line(err, 160),
                        left,
                    )
                attempt += 1
                time.sleep(min(left, random.uniform(0, min(s.max_backoff_s, s.backoff_s * 2 ** (attempt - 1)))))

    @property
    def endpoint_name(self) -> str:
        """The endpoint requests go to, for messages: never with credentials."""
        client = self._client.get()
        return redact(self.settings.endpoint or client.meta.endpoint_url)

    # -- Store API ------------------------------------------------------------------------------
    def read_bytes(self, key: str) -> bytes:
        client = self._client.get()
        full = self._full(key)

        def get() -> bytes:
            response = client.get_object(Bucket=self.bucket, Key=full)
            body = response["Body"]  # botocore's StreamingBody: checks length (and checksum when sent)
            try:
                data: bytes = body.read()
            finally:
                body.close()
            expected = response.get("ContentLength")
            if expected is not None and len(data) != expected:
                from botocore.exceptions import IncompleteReadError

                raise IncompleteReadError(actual_bytes=len(data), expected_bytes=expected)
            return data

        return self._call("read", key, get)

    def write_bytes(self, key: str, data: bytes) -> None:
        client = self._client.get()
        full = self._full(key)
        data = bytes(data)
        if len(data) > MULTIPART_THRESHOLD:
            import io

            def put() -> None:
                client.upload_fileobj(io.BytesIO(data), self.bucket, full, Config=self._client.transfer_config)
        else:

            def put() -> None:
                client.put_object(Bucket=self.bucket, Key=full, Body=data)

        self._call("write", key, put)

    def write_file(self, key: str, src: str | Path) -> None:
        src = Path(src)
        if src.stat().st_size <= MULTIPART_THRESHOLD:
            self.write_bytes(key, src.read_bytes())
            return
        client = self._client.get()
        full = self._full(key)
        self._call(
            "upload", key, lambda: client.upload_file(str(src), self.bucket, full, Config=self._client.transfer_config)
        )

    def read_file(self, key: str, dest: str | Path) -> None:
        client = self._client.get()
        full = self._full(key)
        dest = Path(dest)

        def fetch() -> None:
            response = client.get_object(Bucket=self.bucket, Key=full)
            body = response["Body"]
            try:
                if response.get("ContentLength", 0) > MULTIPART_THRESHOLD:
                    # Large: parallel ranged GETs; s3transfer writes a temp file and renames it.
                    body.close()
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(self.bucket, full, str(dest), Config=self._client.transfer_config)
                    return
                with _atomic_dest(dest) as tmp, open(tmp, "wb") as fh:
                    for chunk in body.iter_chunks(1 * MiB):
                        fh.write(chunk)
                    if fh.tell() != response.get("ContentLength", fh.tell()):
                        from botocore.exceptions import IncompleteReadError

                        raise IncompleteReadError(actual_bytes=fh.tell(), expected_bytes=response["ContentLength"])
            finally:
                body.close()

        self._call("download", key, fetch)

    def exists(self, key: str) -> bool:
        client = self._client.get()
        full = self._full(key)
        try:
            self._call("exists", key, lambda: client.head_object(Bucket=self.bucket, Key=full))
        except _KeyNotFound:
            return False
        return True

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key under `prefix` with its size in bytes; pages past the 1,000-key limit of one request."""
        client = self._client.get()
        prefix = self._key(prefix)
        full = self._full(prefix)
        # "a" matches "a" itself and "a/…", never "ab".
        search = f"{full}/" if full else ""

        def page_all() -> dict[str, int]:
            out: dict[str, int] = {}
            paginator = client.get_paginator("list_objects_v2")
            for page in paginator.paginate(Bucket=self.bucket, Prefix=search):
                for obj in page.get("Contents", []):
                    out[self._rel(obj["Key"])] = int(obj["Size"])
            return out

        sizes = self._call("list", prefix, page_all)
        if full:
            try:
                head = self._call("list", prefix, lambda: client.head_object(Bucket=self.bucket, Key=full))
                sizes[prefix] = int(head["ContentLength"])
            except _KeyNotFound:
                pass
        return dict(sorted(sizes.items()))

    def has_any(self, prefix: str) -> bool:
        """One request of at most one key, however many lie under `prefix`."""
        client = self._client.get()
        full = self._full(self._key(prefix))
        page = self._call(
            "list",
            prefix,
            lambda: client.list_objects_v2(Bucket=self.bucket, Prefix=f"{full}/" if full else "", MaxKeys=1),
        )
        return bool(page.get("Contents"))

    def list(self, prefix: str = "") -> list[str]:
        return list(self.list_sizes(prefix))

    def delete(self, prefix: str) -> None:
        client = self._client.get()
        keys = [self._full(k) for k in self.list(prefix)]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start : start + _DELETE_BATCH]

            def delete_batch(batch: list[str] = batch) -> None:
                response = client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True}
                )
                errors = response.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise BackendError(
                        f"s3://{self.bucket}/{first.get('Key')}: delete failed "
                        f"({first.get('Code')}: {first.get('Message')}); {len(errors)} keys left"
                    )

            self._call("delete", prefix, delete_batch)

    def child(self, prefix: str) -> S3Store:
        return S3Store(self.bucket, join_key(self.prefix, self._key(prefix)), _client=self._client)

"""The S3 side of the store: boto3 with two layers of retries, multipart for large files, atomic writes.

Retries happen twice on purpose. botocore retries single HTTP requests (standard or adaptive mode);
this module retries whole operations with exponential backoff and full jitter, because some failures
botocore never sees as retryable: a connection dropped while a GET body streams, a multipart upload
whose part failed after botocore gave up, a read that timed out mid-body. Every write is a single PUT
or a completed multipart upload, so a reader never sees a partial object, and a failed multipart
upload is aborted by the transfer manager.

Settings (read when a store is built, never at import): `STSEG_S3_ENDPOINT` (else the standard AWS
variables/config, e.g. `AWS_ENDPOINT_URL_S3`), `STSEG_S3_MAX_ATTEMPTS` (botocore attempts per request,
default 5), `STSEG_S3_RETRY_MODE` (else `AWS_RETRY_MODE`, default `standard`), `STSEG_S3_DEADLINE_S`
(seconds an operation keeps retrying, default 120), `STSEG_S3_RETRIES` (at most this many whole-operation
retries within the deadline, default no cap), `STSEG_S3_READ_TIMEOUT` (seconds, default 60; capped so that
one attempt's requests fit in half the deadline). Credentials come from the standard AWS chain.

Bounded and audible: no new attempt of an operation starts once its deadline has passed, and its first retry
logs one warning (logger `stseg.store`) naming the endpoint (without any `user:pass@`) and what is retried.
"""

from __future__ import annotations

import logging
import os
import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from stseg_core.errors import BackendError, BadInputError, MissingArtifactError, StsegError
from stseg_core.store import Store, _atomic_dest, join_key

T = TypeVar("T")
log = logging.getLogger("stseg.store")

MiB = 1024 * 1024
# Objects larger than this go up as multipart uploads (and come down as parallel ranged GETs).
MULTIPART_THRESHOLD = 8 * MiB
MULTIPART_CHUNKSIZE = 8 * MiB
_DELETE_BATCH = 1000  # the S3 DeleteObjects limit

_RETRYABLE_CODES = frozenset({
    "SlowDown", "Throttling", "ThrottlingException", "RequestThrottled", "TooManyRequestsException",
    "RequestLimitExceeded", "InternalError", "ServiceUnavailable", "RequestTimeout", "RequestTimeTooSkewed",
    "BadDigest", "IncompleteBody", "XAmzContentSHA256Mismatch",
})
_MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})


@dataclass(frozen=True)
class S3Settings:
    """How an S3Store talks to its endpoint; `from_env` reads the variables named in the module docstring."""

    endpoint: str | None = None
    max_attempts: int = 5  # botocore attempts per HTTP request
    retry_mode: str = "standard"  # botocore: "standard" or "adaptive" (client-side rate limiting)
    deadline_s: float = 120.0  # an operation starts no new attempt after this many seconds
    retries: int | None = None  # optional cap on whole-operation retries within the deadline
    backoff_s: float = 0.25  # first whole-operation backoff; doubles each retry, full jitter
    max_backoff_s: float = 20.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    max_pool_connections: int = 32

    @classmethod
    def from_env(cls, **overrides) -> S3Settings:
        env = os.environ

        def num(name: str, default, kind):
            raw = env.get(name)
            if raw in (None, ""):
                return default
            try:
                return kind(raw)
            except ValueError:
                raise BadInputError(f"{name}={raw!r}: not a number") from None

        base = cls(
            endpoint=env.get("STSEG_S3_ENDPOINT") or None,
            max_attempts=num("STSEG_S3_MAX_ATTEMPTS", cls.max_attempts, int),
            retry_mode=env.get("STSEG_S3_RETRY_MODE") or env.get("AWS_RETRY_MODE") or cls.retry_mode,
            deadline_s=num("STSEG_S3_DEADLINE_S", cls.deadline_s, float),
            retries=num("STSEG_S3_RETRIES", cls.retries, int),
            read_timeout_s=num("STSEG_S3_READ_TIMEOUT", cls.read_timeout_s, float),
        )
        settings = cls(**{**base.__dict__, **overrides})
        if settings.retry_mode not in ("standard", "adaptive"):
            raise BadInputError(f"S3 retry mode {settings.retry_mode!r}: use standard or adaptive")
        if settings.deadline_s <= 0:
            raise BadInputError(f"STSEG_S3_DEADLINE_S={settings.deadline_s:g}: must be more than 0 seconds")
        return settings

    def request_timeout_s(self, configured: float) -> float:
        """A request timeout capped so that one attempt (up to `max_attempts` requests) fits in half the
        deadline: a server that accepts connections but never answers fails the operation in time."""
        return min(configured, self.deadline_s / (2 * max(1, self.max_attempts)))


class _Client:
    """One boto3 client (thread-safe) and transfer config, shared by a store and its children."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client = None
        self._transfer_config = None

    def get(self):
        with self._lock:
            if self._client is None:
                import boto3
                from boto3.s3.transfer import TransferConfig
                from botocore.config import Config

                s = self.settings
                config = Config(
                    retries={"mode": s.retry_mode, "total_max_attempts": s.max_attempts},
                    connect_timeout=s.request_timeout_s(s.connect_timeout_s),
                    read_timeout=s.request_timeout_s(s.read_timeout_s),
                    max_pool_connections=s.max_pool_connections,
                    # Non-AWS endpoints (moto, MinIO, Ceph) rarely resolve bucket sub-domains.
                    s3={"addressing_style": "path"} if s.endpoint else None,
                )
                try:
                    self._client = boto3.session.Session().client("s3", endpoint_url=s.endpoint, config=config)
                except ValueError as err:  # botocore: "Invalid endpoint: …"
                    raise BadInputError(f"S3 endpoint {redact(s.endpoint or '')!r}: not a valid URL (e.g. "
                                        f"http://host:9000; STSEG_S3_ENDPOINT): {redact(str(err))}") from None
                self._transfer_config = TransferConfig(
                    multipart_threshold=MULTIPART_THRESHOLD + 1,  # "> 8 MiB is multipart"
                    multipart_chunksize=MULTIPART_CHUNKSIZE,
                    max_concurrency=4,
                    use_threads=True,
                )
            return self._client

    @property
    def transfer_config(self):
        self.get()
        return self._transfer_config


def _unwrap(err: BaseException) -> BaseException:
    """The error underneath boto3's transfer wrappers (S3UploadFailedError, RetriesExceededError)."""
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError

    if isinstance(err, RetriesExceededError) and err.last_exception is not None:
        return _unwrap(err.last_exception)
    if isinstance(err, S3UploadFailedError) and err.__context__ is not None:
        return _unwrap(err.__context__)
    return err


class _KeyNotFound(MissingArtifactError):
    """A missing key (not a missing bucket): `exists` turns it into False."""


def _error_code(err: BaseException) -> tuple[str, int]:
    response = getattr(err, "response", None) or {}
    code = str(response.get("Error", {}).get("Code", ""))
    status = int(response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def is_retryable(err: BaseException) -> bool:
    """Throttling, 5xx, timeouts and dropped connections are worth another try; anything else is not."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError,
        HTTPClientError,
        IncompleteReadError,
        NoCredentialsError,
    )

    err = _unwrap(err)
    if isinstance(err, NoCredentialsError):
        return False
    if isinstance(err, ClientError):
        code, status = _error_code(err)
        return code in _RETRYABLE_CODES or status >= 500 or status == 429
    if isinstance(err, ConnectionError | HTTPClientError | IncompleteReadError | ConnectionResetError):
        return True
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(err, Urllib3Error)


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """`text` without the `user:pass@` of any URL in it (an endpoint may carry credentials)."""
    return _USERINFO.sub("", text)


def _one_line(err: BaseException, limit: int = 240) -> str:
    text = redact(" ".join(str(err).split())) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"


class S3Store(Store):
    """`s3://bucket/prefix`: keys live under `prefix/` in `bucket`."""

    def __init__(self, bucket: str, prefix: str = "", settings: S3Settings | None = None,
                 _client: _Client | None = None) -> None:
        self.bucket = bucket
        self.prefix = join_key(prefix)
        self.root = f"s3://{bucket}/{self.prefix}" if self.prefix else f"s3://{bucket}"
        self._client = _client or _Client(settings or S3Settings.from_env())

    @property
    def settings(self) -> S3Settings:
        return self._client.settings

    # -- plumbing -------------------------------------------------------------------------------
    def _full(self, key: str) -> str:
        return join_key(self.prefix, self._key(key))

    def _rel(self, full_key: str) -> str:
        return full_key[len(self.prefix) + 1:] if self.prefix else full_key

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
                err = _unwrap(raw)
                if isinstance(err, NoCredentialsError):
                    raise BackendError(f"{uri}: {what} failed: no AWS credentials found "
                                       "(set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)") from None
                if isinstance(err, ClientError):
                    code, status = _error_code(err)
                    if code == "NoSuchBucket":
                        raise MissingArtifactError(f"{uri}: bucket {self.bucket!r} does not exist") from None
                    if code in _MISSING_CODES or status == 404:
                        raise _KeyNotFound(f"{uri}: not found") from None
                    if status == 403 or code in ("AccessDenied", "InvalidAccessKeyId", "SignatureDoesNotMatch"):
                        raise BackendError(f"{uri}: {what} refused ({code or status}); "
                                           "check the AWS credentials and bucket policy") from None
                if not is_retryable(err):
                    raise BackendError(f"{uri}: {what} failed: {_one_line(err)}") from None
                left = s.deadline_s - (time.monotonic() - start)
                if left <= 0 or (s.retries is not None and attempt >= s.retries):
                    raise BackendError(f"{uri}: {what} failed after {attempt + 1} attempts in "
                                       f"{time.monotonic() - start:.0f} s (each up to {s.max_attempts} requests; "
                                       f"STSEG_S3_DEADLINE_S={s.deadline_s:g}): {_one_line(err)}") from None
                if attempt == 0:
                    log.warning("stseg: S3 endpoint %s: %s of %s failed (%s); retrying for up to %.0f s",
                                self.endpoint_name, what, uri, _one_line(err, 160), left)
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
                data = body.read()
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
        self._call("upload", key, lambda: client.upload_file(
            str(src), self.bucket, full, Config=self._client.transfer_config))

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
        page = self._call("list", prefix, lambda: client.list_objects_v2(
            Bucket=self.bucket, Prefix=f"{full}/" if full else "", MaxKeys=1))
        return bool(page.get("Contents"))

    def list(self, prefix: str = "") -> list[str]:
        return list(self.list_sizes(prefix))

    def delete(self, prefix: str) -> None:
        client = self._client.get()
        keys = [self._full(k) for k in self.list(prefix)]
        for start in range(0, len(keys), _DELETE_BATCH):
            batch = keys[start:start + _DELETE_BATCH]

            def delete_batch(batch=batch) -> None:
                response = client.delete_objects(
                    Bucket=self.bucket, Delete={"Objects": [{"Key": k} for k in batch], "Quiet": True})
                errors = response.get("Errors") or []
                if errors:
                    first = errors[0]
                    raise BackendError(f"s3://{self.bucket}/{first.get('Key')}: delete failed "
                                       f"({first.get('Code')}: {first.get('Message')}); {len(errors)} keys left")

            self._call("delete", prefix, delete_batch)

    def child(self, prefix: str) -> S3Store:
        return S3Store(self.bucket, join_key(self.prefix, self._key(prefix)), _client=self._client)

"""The S3 client side: settings from the environment, one shared boto3 client, and which errors are retryable.

Settings (read when a store is built, never at import): `STSEG_S3_ENDPOINT` (else the standard AWS
variables/config, e.g. `AWS_ENDPOINT_URL_S3`), `STSEG_S3_MAX_ATTEMPTS` (botocore attempts per request,
default 5), `STSEG_S3_RETRY_MODE` (else `AWS_RETRY_MODE`, default `standard`), `STSEG_S3_DEADLINE_S`
(seconds an operation keeps retrying, default 120), `STSEG_S3_RETRIES` (at most this many whole-operation
retries within the deadline, default no cap), `STSEG_S3_READ_TIMEOUT` (seconds, default 60; capped so that
one attempt's requests fit in half the deadline). Credentials come from the standard AWS chain.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, replace
from typing import Any

from stseg_core.errors import BadInputError
from stseg_core.settings import from_env as read_env
from stseg_core.settings import integer, number, setting

MiB = 1024 * 1024
# Objects larger than this go up as multipart uploads (and come down as parallel ranged GETs).
MULTIPART_THRESHOLD = 8 * MiB
MULTIPART_CHUNKSIZE = 8 * MiB
_RETRYABLE_CODES = frozenset(
    {
        "SlowDown",
        "Throttling",
        "ThrottlingException",
        "RequestThrottled",
        "TooManyRequestsException",
        "RequestLimitExceeded",
        "InternalError",
        "ServiceUnavailable",
        "RequestTimeout",
        "RequestTimeTooSkewed",
        "BadDigest",
        "IncompleteBody",
        "XAmzContentSHA256Mismatch",
    }
)
MISSING_CODES = frozenset({"NoSuchKey", "NotFound", "404"})


@dataclass(frozen=True)
class S3Settings:
    """How an S3Store talks to its endpoint; `from_env` reads the variables named in the module docstring."""

    endpoint: str | None = setting("STSEG_S3_ENDPOINT", default=None)
    max_attempts: int = setting("STSEG_S3_MAX_ATTEMPTS", parse=integer, default=5)  # botocore attempts per request
    # botocore: "standard" or "adaptive" (client-side rate limiting); from STSEG_S3_RETRY_MODE, else AWS_RETRY_MODE
    retry_mode: str = "standard"
    # an operation starts no new attempt after this many seconds
    deadline_s: float = setting("STSEG_S3_DEADLINE_S", parse=number, default=120.0)
    # optional cap on whole-operation retries within the deadline
    retries: int | None = setting("STSEG_S3_RETRIES", parse=integer, default=None)
    backoff_s: float = 0.25  # first whole-operation backoff; doubles each retry, full jitter
    max_backoff_s: float = 20.0
    connect_timeout_s: float = 10.0
    read_timeout_s: float = setting("STSEG_S3_READ_TIMEOUT", parse=number, default=60.0)
    max_pool_connections: int = 32

    @classmethod
    def from_env(cls, **overrides: Any) -> S3Settings:
        """The settings the variables give (parsed as every setting is, `stseg_core.settings`), then `overrides`."""
        env = os.environ
        retry_mode = env.get("STSEG_S3_RETRY_MODE") or env.get("AWS_RETRY_MODE") or cls.retry_mode
        settings = replace(read_env(cls, env), **{"retry_mode": retry_mode, **overrides})
        if settings.retry_mode not in ("standard", "adaptive"):
            raise BadInputError(f"S3 retry mode {settings.retry_mode!r}: use standard or adaptive")
        if settings.deadline_s <= 0:
            raise BadInputError(f"STSEG_S3_DEADLINE_S={settings.deadline_s:g}: must be more than 0 seconds")
        return settings

    def request_timeout_s(self, configured: float) -> float:
        """A request timeout capped so that one attempt (up to `max_attempts` requests) fits in half the
        deadline: a server that accepts connections but never answers fails the operation in time."""
        return min(configured, self.deadline_s / (2 * max(1, self.max_attempts)))


class S3Client:
    """One boto3 client (thread-safe) and transfer config, shared by a store and its children."""

    def __init__(self, settings: S3Settings) -> None:
        self.settings = settings
        self._lock = threading.Lock()
        self._client: Any = None  # boto3's clients are built at run time: no static type
        self._transfer_config: Any = None

    def get(self) -> Any:
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
                    raise BadInputError(
                        f"S3 endpoint {redact(s.endpoint or '')!r}: not a valid URL (e.g. "
                        f"http://host:9000; STSEG_S3_ENDPOINT): {redact(str(err))}"
                    ) from None
                self._transfer_config = TransferConfig(
                    multipart_threshold=MULTIPART_THRESHOLD + 1,  # "> 8 MiB is multipart"
                    multipart_chunksize=MULTIPART_CHUNKSIZE,
                    max_concurrency=4,
                    use_threads=True,
                )
            return self._client

    @property
    def transfer_config(self) -> Any:
        self.get()
        return self._transfer_config


def unwrap(err: BaseException) -> BaseException:
    """The error underneath boto3's transfer wrappers (S3UploadFailedError, RetriesExceededError)."""
    from boto3.exceptions import RetriesExceededError, S3UploadFailedError

    if isinstance(err, RetriesExceededError) and err.last_exception is not None:
        return unwrap(err.last_exception)
    if isinstance(err, S3UploadFailedError) and err.__context__ is not None:
        return unwrap(err.__context__)
    return err


def error_code(err: BaseException) -> tuple[str, int]:
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

    err = unwrap(err)
    if isinstance(err, NoCredentialsError):
        return False
    if isinstance(err, ClientError):
        code, status = error_code(err)
        return code in _RETRYABLE_CODES or status >= 500 or status == 429
    if isinstance(err, ConnectionError | HTTPClientError | IncompleteReadError | ConnectionResetError):
        return True
    from urllib3.exceptions import HTTPError as Urllib3Error

    return isinstance(err, Urllib3Error)


_USERINFO = re.compile(r"(?<=://)[^/@\s]+@")


def redact(text: str) -> str:
    """`text` without the `user:pass@` of any URL in it (an endpoint may carry credentials)."""
    return _USERINFO.sub("", text)


def one_line(err: BaseException, limit: int = 240) -> str:
    text = redact(" ".join(str(err).split())) or type(err).__name__
    return text if len(text) <= limit else text[: limit - 1] + "…"

"""One interface over `file://` and `s3://` locations, so every stage runs unchanged on a laptop and in a cluster.

Keys are `/`-separated paths relative to a store's root URI. Writes are atomic (a reader never sees a
half-written object): temp file + rename on disk, a single PUT or a completed multipart upload on S3.
"""

from __future__ import annotations

import os
import re
import shutil
import tempfile
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import unquote, urlparse

from stseg_core.errors import BadInputError, MissingArtifactError


def _clean_key(key: str) -> str:
    """Normalise a key and refuse ones that climb out of the store (`..`) or are absolute."""
    key = key.replace("\\", "/").strip("/")
    parts = [p for p in key.split("/") if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise BadInputError(f"key {key!r} leaves the store (path traversal)")
    return "/".join(parts)


def join_key(*parts: str) -> str:
    """Join key fragments with `/`, normalised."""
    return _clean_key("/".join(p for p in parts if p))


class Store(ABC):
    """A root URI plus operations on keys below it."""

    root: str

    def _key(self, key: str) -> str:
        """`_clean_key`, with the store's URI in the error so the message says where."""
        try:
            return _clean_key(key)
        except BadInputError:
            raise BadInputError(f"{self.root}: key {key!r} leaves the store (path traversal)") from None

    @abstractmethod
    def read_bytes(self, key: str) -> bytes: ...

    @abstractmethod
    def write_bytes(self, key: str, data: bytes) -> None: ...

    @abstractmethod
    def exists(self, key: str) -> bool: ...

    @abstractmethod
    def list(self, prefix: str = "") -> list[str]:
        """Every key under `prefix` (recursive), relative to the root, sorted."""

    @abstractmethod
    def delete(self, prefix: str) -> None:
        """Delete the key `prefix` and everything below it; missing keys are fine."""

    @abstractmethod
    def child(self, prefix: str) -> Store:
        """A store rooted at `prefix` below this one."""

    def local_path(self, key: str) -> Path | None:
        """The file behind `key` when the store is a local folder, else None."""
        return None

    def read_file(self, key: str, dest: str | Path) -> None:
        """Copy `key` into the local file `dest`, atomically (a temp file renamed into place)."""
        _atomic_write(Path(dest), self.read_bytes(key))

    def write_file(self, key: str, src: str | Path) -> None:
        """Copy the local file `src` to `key`; S3 stores send large files as multipart uploads."""
        self.write_bytes(key, Path(src).read_bytes())

    def uri(self, key: str = "") -> str:
        key = self._key(key)
        return f"{self.root.rstrip('/')}/{key}" if key else self.root

    def read_text(self, key: str) -> str:
        return self.read_bytes(key).decode("utf-8")

    def write_text(self, key: str, text: str) -> None:
        self.write_bytes(key, text.encode("utf-8"))

    def read_json(self, key: str) -> Any:
        import json

        try:
            return json.loads(self.read_bytes(key))
        except ValueError as err:
            raise BadInputError(f"{self.uri(key)}: not valid JSON ({err})") from None

    def write_json(self, key: str, obj: Any) -> None:
        import json

        self.write_bytes(key, (json.dumps(obj, indent=1, sort_keys=True) + "\n").encode("utf-8"))

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        """Every key under `prefix` with its size in bytes (sorted like `list`)."""
        return {key: len(self.read_bytes(key)) for key in self.list(prefix)}

    def has_any(self, prefix: str) -> bool:
        """Whether any key lies under `prefix` (a layout check that must not list a whole dataset)."""
        return bool(self.list(prefix))

    def upload_dir(self, local_dir: str | Path, prefix: str = "", workers: int = 8, progress: bool = False) -> int:
        """Copy every file under `local_dir` to `prefix/…`; returns the number of files."""
        local_dir = Path(local_dir)
        if not local_dir.is_dir():
            raise BadInputError(f"{local_dir}: not a folder")
        files = sorted(p for p in local_dir.rglob("*") if p.is_file())
        jobs = {join_key(prefix, p.relative_to(local_dir).as_posix()): p for p in files}
        _run_parallel(
            lambda key: self.write_file(key, jobs[key]),
            {k: p.stat().st_size for k, p in jobs.items()},
            workers,
            progress,
            f"upload → {self.uri(prefix)}",
        )
        return len(jobs)

    def download_dir(self, prefix: str, local_dir: str | Path, workers: int = 8, progress: bool = False) -> int:
        """Copy every key under `prefix` into `local_dir`, keeping the relative layout; returns the count."""
        local_dir = Path(local_dir)
        prefix = self._key(prefix)
        sizes = self.list_sizes(prefix)

        def fetch(key: str) -> None:
            rel = key[len(prefix) :].lstrip("/") if prefix else key
            self.read_file(key, local_dir / (rel or key_name(key)))

        _run_parallel(fetch, sizes, workers, progress, f"download ← {self.uri(prefix)}")
        return len(sizes)


def _run_parallel(fn: Callable[[str], None], sizes: dict[str, int], workers: int, progress: bool, desc: str) -> None:
    """Run `fn(key)` for every key on a thread pool, with a byte-count progress bar on stderr.

    The first failure cancels the copies not yet started and is raised.
    """
    from concurrent.futures import FIRST_EXCEPTION, ThreadPoolExecutor, wait

    from tqdm import tqdm

    pool = ThreadPoolExecutor(max_workers=max(1, workers))
    try:
        with tqdm(
            total=sum(sizes.values()),
            desc=desc,
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            disable=not progress or not sizes,
            leave=False,
        ) as bar:
            futures = {pool.submit(fn, key): key for key in sizes}
            pending = set(futures)
            while pending:
                done, pending = wait(pending, return_when=FIRST_EXCEPTION)
                for future in done:
                    future.result()  # raises the first failure
                    bar.update(sizes[futures[future]])
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


@contextmanager
def _atomic_dest(path: Path) -> Iterator[Path]:
    """A temp path beside `path` that is renamed onto it when the block succeeds, removed when it fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    os.close(fd)
    try:
        yield Path(tmp)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _atomic_write(path: Path, data: bytes) -> None:
    with _atomic_dest(path) as tmp:
        tmp.write_bytes(data)


class FileStore(Store):
    """A local folder."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path).resolve()
        self.root = self.path.as_uri()

    def _p(self, key: str) -> Path:
        return self.path / self._key(key)

    def _file_in_the_way(self, key: str) -> BadInputError:
        """A key whose folders cross a regular file (e.g. `--run` or `--out` naming a file): name that file."""
        path = self._p(key)
        blocker = next((p for p in path.parents if p.is_file()), path)
        return BadInputError(f"{blocker}: is a file, not a folder (needed for {self.uri(key)})")

    def read_bytes(self, key: str) -> bytes:
        try:
            return self._p(key).read_bytes()
        except FileNotFoundError:
            raise MissingArtifactError(f"{self.uri(key)}: not found") from None
        except IsADirectoryError:
            raise BadInputError(f"{self.uri(key)}: is a folder, not a file") from None
        except NotADirectoryError:
            raise self._file_in_the_way(key) from None

    def write_bytes(self, key: str, data: bytes) -> None:
        try:
            _atomic_write(self._p(key), data)
        except (FileExistsError, NotADirectoryError):
            raise self._file_in_the_way(key) from None

    def write_file(self, key: str, src: str | Path) -> None:
        try:
            with _atomic_dest(self._p(key)) as tmp:
                shutil.copyfile(src, tmp)
        except (FileExistsError, NotADirectoryError):
            raise self._file_in_the_way(key) from None

    def read_file(self, key: str, dest: str | Path) -> None:
        src = self._p(key)
        if not src.is_file():
            raise MissingArtifactError(f"{self.uri(key)}: not found")
        with _atomic_dest(Path(dest)) as tmp:
            shutil.copyfile(src, tmp)

    def exists(self, key: str) -> bool:
        return self._p(key).is_file()

    def list_sizes(self, prefix: str = "") -> dict[str, int]:
        return {key: (self.path / key).stat().st_size for key in self.list(prefix)}

    def has_any(self, prefix: str) -> bool:
        base = self._p(prefix)
        return base.is_file() or (base.is_dir() and any(base.iterdir()))

    def list(self, prefix: str = "") -> list[str]:
        base = self._p(prefix)
        if base.is_file():
            return [self._key(prefix)]
        if not base.is_dir():
            return []
        out = []
        for dirpath, _dirs, names in os.walk(base):
            for name in names:
                if name.endswith(".part") and name.startswith("."):
                    continue  # an atomic write in flight
                out.append(Path(dirpath, name).relative_to(self.path).as_posix())
        return sorted(out)

    def delete(self, prefix: str) -> None:
        p = self._p(prefix)
        if p.is_dir():
            shutil.rmtree(p)
        else:
            p.unlink(missing_ok=True)

    def child(self, prefix: str) -> FileStore:
        return FileStore(self._p(prefix))

    def local_path(self, key: str) -> Path | None:
        return self._p(key)


# S3 bucket naming rules: 3-63 characters, lower-case letters, digits, dots and hyphens.
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")


def open_store(uri: str | Path) -> Store:
    """`s3://bucket/prefix`, `file:///abs/path` or a plain path → a Store."""
    uri = str(uri)
    parsed = urlparse(uri)
    if parsed.scheme == "s3":
        if not parsed.netloc:
            raise BadInputError(f"{uri}: an S3 URI needs a bucket (s3://bucket/prefix)")
        if not _BUCKET.match(parsed.netloc):
            raise BadInputError(f"{uri}: {parsed.netloc!r} is not a valid S3 bucket name")
        try:
            prefix = _clean_key(unquote(parsed.path))
        except BadInputError:
            raise BadInputError(f"{uri}: '..' in an S3 prefix (path traversal)") from None
        from stseg_core.s3store import S3Store

        return S3Store(parsed.netloc, prefix)
    if parsed.scheme == "file":
        if parsed.netloc not in ("", "localhost"):
            raise BadInputError(f"{uri}: file URIs name a local path (file:///abs/path), not host {parsed.netloc!r}")
        return FileStore(unquote(parsed.path))
    if parsed.scheme in ("",) or (len(parsed.scheme) == 1 and os.name == "nt"):
        return FileStore(uri)
    raise BadInputError(f"{uri}: unsupported store scheme {parsed.scheme!r} (use a path, file:// or s3://)")


def key_name(key: str) -> str:
    """Last component of a key."""
    return PurePosixPath(key).name

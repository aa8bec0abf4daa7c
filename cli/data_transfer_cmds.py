"""`stseg data upload` / `stseg data download`: copy a folder to or from any store URI, in parallel."""

from __future__ import annotations

import time
from pathlib import Path

import click

from stseg_cli.data_cmds import data


def _size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


@data.command("upload")
@click.argument("local", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.argument("uri")
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 256), help="Files copied at once.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def upload(local: Path, uri: str, workers: int, progress: bool) -> None:
    """Copy every file under the folder LOCAL to URI (s3://bucket/prefix, file:///… or a path).

    The relative layout is kept. Each object is written whole (files over 8 MiB as S3 multipart
    uploads), so readers never see a partial file; throttling, 5xx replies and dropped connections
    are retried with backoff. S3 endpoint and credentials come from STSEG_S3_ENDPOINT and the
    standard AWS environment.
    """
    from stseg_core.store import open_store

    store = open_store(uri)
    start = time.monotonic()
    count = store.upload_dir(local, "", workers=workers, progress=progress)
    seconds = time.monotonic() - start
    click.echo(
        f"uploaded {count} files ({_size(local) / 2**20:.1f} MiB) from {local} to {store.root} in {seconds:.1f} s"
    )


@data.command("download")
@click.argument("uri")
@click.argument("local", type=click.Path(file_okay=False, path_type=Path))
@click.option("--workers", default=8, show_default=True, type=click.IntRange(1, 256), help="Files copied at once.")
@click.option("--progress/--no-progress", default=True, show_default=True, help="Show a progress bar on stderr.")
def download(uri: str, local: Path, workers: int, progress: bool) -> None:
    """Copy every object under URI into the folder LOCAL, keeping the relative layout.

    Each file is written to a temporary name and renamed into place, so an interrupted download
    never leaves a truncated file under its real name. Fails if nothing is stored under URI.
    """
    from stseg_core.errors import MissingArtifactError
    from stseg_core.store import open_store

    store = open_store(uri)
    start = time.monotonic()
    count = store.download_dir("", local, workers=workers, progress=progress)
    if count == 0:
        raise MissingArtifactError(f"{store.root}: nothing stored there to download")
    seconds = time.monotonic() - start
    click.echo(f"downloaded {count} files from {store.root} to {local} in {seconds:.1f} s")

"""`stseg data …`: synthesise, validate, shard, upload and download MOSE-layout splits."""

from __future__ import annotations

from stseg_cli.main import cli


@cli.group()
def data() -> None:
    """Work with MOSE-layout data sets (JPEGImages/ + Annotations/)."""

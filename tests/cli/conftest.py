"""Fixtures shared by the CLI tests."""

from __future__ import annotations

from collections import Counter

import pytest

from stseg_core.store import FileStore


@pytest.fixture()
def store_calls(monkeypatch) -> Counter:
    """Counts the file store's per-key probes (`exists`), listings (`list`; `list_sizes` counts one of each)
    and reads (`read_bytes`): what status and waits cost, request by request, on S3."""
    counts: Counter = Counter()
    for name in ("exists", "list", "list_sizes", "read_bytes"):
        original = getattr(FileStore, name)

        def counted(self, *args, _name=name, _original=original, **kw):
            counts[_name] += 1
            return _original(self, *args, **kw)

        monkeypatch.setattr(FileStore, name, counted)
    return counts

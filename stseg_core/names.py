"""Comma-separated name lists (models, videos, splits) as people type them in flags, config and Job env."""

from __future__ import annotations


def split_names(text: str | None) -> tuple[str, ...]:
    """"a, b,,a" → ("a", "b"): blanks and repeats dropped, first-seen order kept."""
    return tuple(dict.fromkeys(part.strip() for part in (text or "").split(",") if part.strip()))

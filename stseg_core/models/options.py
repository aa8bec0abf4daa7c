"""Typed model options from registry overrides that arrive as values or strings (`--set k=v`, Job env JSON)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from stseg_core.errors import BadInputError
from stseg_core.settings import convert_fields

T = TypeVar("T")


def parse_options(cls: type[T], overrides: dict[str, Any], *, model: str, note: str = "") -> T:
    """`cls(**overrides)` with every value converted to its field's declared type (`stseg_core.settings`).

    One-line errors name the model and option: unknown names (listing the known ones, then `note`), values
    that are not of the option's type, and "none" for an option that cannot be None.
    """
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise BadInputError(f"{model} has no option(s) {', '.join(unknown)} (options: {', '.join(known)}){note}")
    return cls(**convert_fields(cls, overrides, lambda name: f"{model} option {name}"))

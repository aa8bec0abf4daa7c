"""Typed model options from registry overrides that arrive as values or strings (`--set k=v`, Job env JSON)."""

from __future__ import annotations

from dataclasses import fields
from typing import Any, TypeVar

from stseg_core.errors import BadInputError

T = TypeVar("T")
_NONE_WORDS = ("", "none", "null")
_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
_KINDS = {"int": (int, "an integer"), "float": (float, "a number"), "str": (str, "a string")}


def parse_options(cls: type[T], overrides: dict[str, Any], *, model: str, note: str = "") -> T:
    """`cls(**overrides)` with every value converted to its field's declared type.

    One-line errors name the model and option: unknown names (listing the known ones, then `note`), values
    that are not of the option's type, and "none" for an option that cannot be None.
    """
    known = [f.name for f in fields(cls)]
    unknown = sorted(set(overrides) - set(known))
    if unknown:
        raise BadInputError(f"{model} has no option(s) {', '.join(unknown)} (options: {', '.join(known)}){note}")
    types = {f.name: _annotation(f.type) for f in fields(cls)}
    return cls(**{name: _convert(model, name, value, types[name]) for name, value in overrides.items()})


def _annotation(tp: Any) -> str:
    """A field's type as text ("int", "str | None"), whether or not the module postpones annotations."""
    return tp if isinstance(tp, str) else tp.__name__ if isinstance(tp, type) else str(tp)


def _convert(model: str, name: str, value: Any, annotation: str) -> Any:
    optional = "None" in annotation
    if value is None or (isinstance(value, str) and value.strip().lower() in _NONE_WORDS and optional):
        if not optional:
            raise BadInputError(f"{model} option {name} needs a value")
        return None
    kind = annotation.split("|")[0].strip()
    if kind == "bool":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise BadInputError(f"{model} option {name}={value!r} is not a boolean")
    if kind not in _KINDS:
        return value
    convert, what = _KINDS[kind]
    try:
        return convert(value)
    except (TypeError, ValueError):
        raise BadInputError(f"{model} option {name}={value!r} is not {what}") from None

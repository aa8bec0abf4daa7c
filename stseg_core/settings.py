"""Text → typed settings: one parser per type and one error shape for every place settings arrive as text.

Job environment fields (`setting` + `from_env`), model options (`stseg_core.models.options`), finetune recipe
options and the CLI's stseg.yaml / `STSEG_*` / flag settings (`stseg_cli.config`) all parse through `convert`,
so "yes" is a boolean, "12" an integer and "none" an unset optional in the same way everywhere. A parser
raises ValueError with a short reason ("not an integer"); `bad_setting` turns that into the one-line
`BadInputError` "FIELD='text': reason" that names the field (a variable, a flag, a file's key, a model option).
"""

from __future__ import annotations

import dataclasses
import json
import os
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from stseg_core.errors import BadInputError

T = TypeVar("T")
Parser = Callable[[str], Any]
_META = "stseg_setting"
TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")
NONE_WORDS = ("", "none", "null")


# ---- one parser per type: text → value, ValueError with a short reason -------------------------------------
def integer(text: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise ValueError("not an integer") from None


def non_negative_int(text: str) -> int:
    value = integer(text)
    if value < 0:
        raise ValueError("must be ≥ 0")
    return value


def positive_int(text: str) -> int:
    value = non_negative_int(text)
    if value < 1:
        raise ValueError("must be ≥ 1")
    return value


def number(text: str) -> float:
    try:
        return float(text)
    except (TypeError, ValueError):
        raise ValueError("not a number") from None


def seconds(text: str) -> float:
    """A duration in seconds, 0 or more."""
    value = number(text)
    if value < 0:
        raise ValueError("must be ≥ 0 seconds")
    return value


def boolean(text: str) -> bool:
    """The one boolean rule: 1/true/yes/on and 0/false/no/off, any case."""
    low = str(text).strip().lower()
    if low in TRUE_WORDS:
        return True
    if low in FALSE_WORDS:
        return False
    raise ValueError("not a boolean (use true/false)")


def json_object(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"not valid JSON ({err.msg} at column {err.colno})") from None
    if not isinstance(value, dict):
        raise ValueError('must be a JSON object like {"key": value}')
    return value


def key_value(
    item: str, field: str, *, form: str = "KEY=VALUE", example: str = "", need_value: bool = False
) -> tuple[str, str]:
    """`KEY=VALUE` text (`--option`, `--set`, `checkpoints: MODEL=URI,…`) → (key, value), both stripped of the
    key's surrounding blanks; a missing `=` or key (or value, with `need_value`) is refused naming `field`."""
    key, sep, value = item.partition("=")
    if not sep or not key.strip() or (need_value and not value.strip()):
        raise BadInputError(f"{field} {item!r}: use {form}" + (f" (e.g. {example})" if example else ""))
    return key.strip(), value.strip() if need_value else value


def flag_set(name: str, env: Mapping[str, str] | None = None) -> bool:
    """A boolean switch variable (STSEG_DEBUG): set to a true word; anything else, or unset, is off."""
    return str((os.environ if env is None else env).get(name, "")).strip().lower() in TRUE_WORDS


def bad_setting(field: str, raw: object, reason: str) -> BadInputError:
    """The one error shape: `FIELD='text': reason` (field = variable, flag, `file: key` or `model option x`)."""
    return BadInputError(f"{field}={raw!r}: {reason}")


# ---- declared types → parsers -------------------------------------------------------------------------------
_BY_NAME: dict[str, Parser] = {"int": integer, "float": number, "bool": boolean, "str": str}


def _members(annotation: Any) -> tuple[Any, bool]:
    """(the non-None type of a declaration, whether None is allowed); works on postponed (string) annotations."""
    if isinstance(annotation, str):
        parts = [p.strip() for p in annotation.split("|")]
        kinds = [p for p in parts if p != "None"]
        return (kinds[0] if len(kinds) == 1 else annotation), len(kinds) < len(parts)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        kinds = [a for a in args if a is not type(None)]
        return (kinds[0] if len(kinds) == 1 else annotation), len(kinds) < len(args)
    return annotation, False


def convert(value: Any, annotation: Any) -> Any:
    """`value` as its declared type: text is parsed (int, float, bool, str, `tuple[X, ...]` written
    comma-separated, or ';'-separated for strings, which may hold commas); a value already of the type, or of a
    type no parser is declared for, is kept. "none"/"null"/"" is None for an optional; a required setting
    refuses None ("needs a value"). Raises ValueError with the reason."""
    kind, optional = _members(annotation)
    if value is None or (optional and isinstance(value, str) and value.strip().lower() in NONE_WORDS):
        if not optional:
            raise ValueError("needs a value")
        return None
    if typing.get_origin(kind) is tuple and isinstance(value, str):
        inner = typing.get_args(kind)[0]
        parts = [p for p in (s.strip() for s in value.split(";" if inner is str else ",")) if p]
        return tuple(convert(p, inner) for p in parts)
    name = kind if isinstance(kind, str) else getattr(kind, "__name__", "")
    parse = _BY_NAME.get(name)
    if parse is None or (isinstance(kind, type) and type(value) is kind):
        return value
    return parse(str(value))


def convert_fields(cls: type[T], values: Mapping[str, Any], field: Callable[[str], str]) -> dict[str, Any]:
    """Each of `values` converted to the type `cls` declares for it; `field(name)` names it in an error."""
    hints = typing.get_type_hints(cls)
    out = {}
    for name, value in values.items():
        try:
            out[name] = convert(value, hints[name])
        except ValueError as err:
            if value is None:
                raise BadInputError(f"{field(name)} {err}") from None
            raise bad_setting(field(name), value, str(err)) from None
    return out


# ---- settings read from an environment (Job variables) ------------------------------------------------------
def setting(
    var: str,
    *,
    parse: Parser = str,
    default: Any = dataclasses.MISSING,
    default_factory: Callable[[], Any] | Any = dataclasses.MISSING,
    doc: str = "",
) -> Any:
    """A dataclass field read from the variable `var` by `from_env`; `parse` turns the text into the value.
    Without a default the variable is required."""
    return dataclasses.field(default=default, default_factory=default_factory, metadata={_META: (var, parse, doc)})


def from_env(cls: type[T], env: Mapping[str, str] | None = None) -> T:
    """Build `cls` from `env` (default: os.environ, read now, never at import). Empty values count as unset."""
    env = os.environ if env is None else env
    values = {}
    for f in dataclasses.fields(cls):  # type: ignore[arg-type]
        if _META not in f.metadata:
            continue
        var, parse, doc = f.metadata[_META]
        raw = env.get(var, "")
        if raw == "":
            if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
                raise BadInputError(f"{var} is not set" + (f" ({doc})" if doc else ""))
            continue
        try:
            values[f.name] = parse(raw)
        except (ValueError, TypeError) as err:
            raise bad_setting(var, raw, str(err)) from None
    return cls(**values)

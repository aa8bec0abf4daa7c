"""stseg_core.settings: one parser per type, one boolean rule and one error shape for every text setting."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from stseg_core import settings as st
from stseg_core.errors import BadInputError


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("1", True),
        (" Yes ", True),
        ("ON", True),
        ("true", True),
        ("0", False),
        ("no", False),
        ("Off", False),
        ("FALSE", False),
    ],
)
def test_the_one_boolean_rule(text: str, value: bool) -> None:
    assert st.boolean(text) is value
    assert st.convert(text, bool) is value and st.convert(text, "bool") is value


@pytest.mark.parametrize(
    ("parse", "text", "reason"),
    [
        (st.integer, "1.5", "not an integer"),
        (st.non_negative_int, "-1", "must be ≥ 0"),
        (st.positive_int, "0", "must be ≥ 1"),
        (st.number, "fast", "not a number"),
        (st.seconds, "-2", "must be ≥ 0 seconds"),
        (st.boolean, "maybe", "not a boolean (use true/false)"),
        (st.json_object, "[1]", 'must be a JSON object like {"key": value}'),
        (st.json_object, "{", "not valid JSON (Expecting property name enclosed in double quotes at column 2)"),
    ],
)
def test_each_parser_refuses_with_a_short_reason(parse, text: str, reason: str) -> None:
    with pytest.raises(ValueError) as err:
        parse(text)
    assert str(err.value) == reason


@pytest.mark.parametrize(
    ("value", "annotation", "expect"),
    [
        ("12", "int", 12),
        ("12", int, 12),
        (3, float, 3.0),
        (7, "str", "7"),
        ("none", "int | None", None),
        ("", int | None, None),
        ("none", "str", "none"),
        ("0.1, 2", tuple[float, ...], (0.1, 2.0)),
        ("a=1,b; c", tuple[str, ...], ("a=1,b", "c")),
        ([1, 2], tuple[int, ...], [1, 2]),
        (True, bool, True),
    ],
)
def test_convert_follows_the_declared_type(value, annotation, expect) -> None:
    got = st.convert(value, annotation)
    assert got == expect and type(got) is type(expect)


def test_a_required_setting_refuses_none() -> None:
    with pytest.raises(ValueError, match=r"^needs a value$"):
        st.convert(None, "int")


@dataclass(frozen=True)
class _Env:
    root: str = st.setting("X_ROOT", doc="the run root")
    shards: int = st.setting("X_SHARDS", parse=st.positive_int, default=1)
    debug: bool = st.setting("X_DEBUG", parse=st.boolean, default=False)


def test_from_env_reads_typed_fields_and_names_the_variable() -> None:
    assert st.from_env(_Env, {"X_ROOT": "s3://b/r", "X_DEBUG": "yes", "X_SHARDS": ""}) == _Env("s3://b/r", 1, True)
    with pytest.raises(BadInputError, match=r"^X_ROOT is not set \(the run root\)$"):
        st.from_env(_Env, {})
    with pytest.raises(BadInputError) as err:
        st.from_env(_Env, {"X_ROOT": "r", "X_SHARDS": "0"})
    assert str(err.value) == "X_SHARDS='0': must be ≥ 1"


def test_convert_fields_names_the_field_in_one_line() -> None:
    assert st.convert_fields(_Env, {"shards": "3", "debug": "off"}, str) == {"shards": 3, "debug": False}
    with pytest.raises(BadInputError) as err:
        st.convert_fields(_Env, {"shards": "three"}, lambda name: f"m option {name}")
    assert str(err.value) == "m option shards='three': not an integer"


def test_key_value_pairs() -> None:
    assert st.key_value(" flow =farneback", "--set") == ("flow", "farneback")
    assert st.key_value("sam2= s3://b/w.pt ", "checkpoints:", form="MODEL=URI", need_value=True) == (
        "sam2",
        "s3://b/w.pt",
    )
    with pytest.raises(BadInputError, match=r"^--option 'epochs': use KEY=VALUE \(e\.g\. --option epochs=2\)$"):
        st.key_value("epochs", "--option", example="--option epochs=2")
    with pytest.raises(BadInputError, match=r"^checkpoints: 'sam2=': use MODEL=URI$"):
        st.key_value("sam2=", "checkpoints:", form="MODEL=URI", need_value=True)


def test_flag_set_is_on_only_for_a_true_word() -> None:
    assert st.flag_set("D", {"D": "Yes"}) and not st.flag_set("D", {"D": "2"}) and not st.flag_set("D", {})

"""Model options arrive as strings (CLI, Job env) and become typed; finetuned checkpoints set inference defaults."""

from dataclasses import dataclass

import pytest

from stseg_core.errors import BadInputError
from stseg_core.models.options import parse_options


@dataclass(frozen=True)
class _Opts:
    size: int = 8
    ratio: float = 0.5
    flag: bool = True
    name: str = "a"
    uri: str | None = None
    limit: int | None = None


def test_strings_become_the_declared_types() -> None:
    got = parse_options(
        _Opts, {"size": "32", "ratio": "0.25", "flag": "off", "name": 7, "uri": "none", "limit": "12"}, model="m"
    )
    assert got == _Opts(size=32, ratio=0.25, flag=False, name="7", uri=None, limit=12)
    assert parse_options(_Opts, {"flag": True, "limit": None}, model="m") == _Opts(flag=True, limit=None)


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"colour": 1}, "m has no option(s) colour (options: size, ratio, flag, name, uri, limit); see docs"),
        ({"size": "big"}, "m option size='big': not an integer"),
        ({"size": 2.5}, "m option size=2.5: not an integer"),
        ({"ratio": "x"}, "m option ratio='x': not a number"),
        ({"flag": "maybe"}, "m option flag='maybe': not a boolean (use true/false)"),
        ({"size": None}, "m option size needs a value"),
    ],
)
def test_bad_values_are_one_line_errors(overrides, message) -> None:
    with pytest.raises(BadInputError) as err:
        parse_options(_Opts, overrides, model="m", note="; see docs")
    assert str(err.value) == message


def test_sam2_runs_at_the_config_and_resolution_its_checkpoint_was_trained_at(tmp_path) -> None:
    import torch

    from stseg_core.models.sam2 import build, save_random_checkpoint

    plain = save_random_checkpoint(tmp_path / "upstream.pt", config="t")
    assert build(checkpoint=str(plain)).default_size == 1024  # upstream releases carry no arch
    finetuned = tmp_path / "epoch_2.pt"
    torch.save(
        {**torch.load(plain, weights_only=True), "arch": {"model": "sam2", "config": "t", "resolution": 128}}, finetuned
    )
    assert build(checkpoint=str(finetuned)).default_size == 128
    assert build(checkpoint=str(finetuned), size="256").default_size == 256  # an explicit option wins

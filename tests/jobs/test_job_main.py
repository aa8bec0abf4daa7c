"""job_main: one summary line, or one error line and the error's exit code."""

import pytest

from stseg_core.errors import MissingArtifactError
from stseg_jobs._env import job_main


def test_summary_line(capsys) -> None:
    assert job_main("infer", lambda: "3 frames") == 0
    assert capsys.readouterr().out == "stseg-infer: 3 frames\n"


@pytest.mark.parametrize(("error", "code"), [(MissingArtifactError("s3://b/k: not found"), 3), (KeyError("x"), 1)])
def test_failure_is_one_line_with_its_exit_code(error, code, capsys) -> None:
    def body() -> str:
        raise error

    assert job_main("fuse", body) == code
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("stseg-fuse: error: ")

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


def test_sigterm_unwinds_the_body_so_scratch_is_removed(tmp_path) -> None:
    """`stseg cancel` and a Job's deadline send SIGTERM: the job's temporary folders must not outlive it."""
    import signal
    import subprocess
    import sys
    import time

    script = (
        "import sys, tempfile, time\n"
        "from stseg_jobs._env import job_main\n"
        "def body():\n"
        f"    with tempfile.TemporaryDirectory(prefix='stseg-infer-', dir={str(tmp_path)!r}):\n"
        "        print('ready', flush=True)\n"
        "        time.sleep(60)\n"
        "sys.exit(job_main('infer', body))\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "ready\n"
    assert [p.name.startswith("stseg-infer-") for p in tmp_path.iterdir()] == [True]
    start = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=20) == 128 + signal.SIGTERM and time.monotonic() - start < 5
    assert list(tmp_path.iterdir()) == []

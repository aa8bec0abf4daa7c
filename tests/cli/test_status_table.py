"""`stseg status`: columns stay aligned whatever the length of job and model names; `--watch` costs one status
per tick."""

from __future__ import annotations

import time
from types import SimpleNamespace

from click.testing import CliRunner

from stseg_cli.backends import base
from stseg_cli.backends.base import JobStatus, RunStatus
from stseg_cli.main import cli
from stseg_cli.run_watch import print_status


def test_columns_align_with_a_long_model_name(capsys) -> None:
    jobs = (
        JobStatus("stseg-r-infer-flowprop-farneback", "infer", "flowprop-farneback", 64, frozenset(range(3))),
        JobStatus("stseg-r-infer-sam2", "infer", "sam2", 64, frozenset(range(64)), frames=1000, elapsed_s=10.0),
        JobStatus("stseg-r-fuse", "fuse", "", 64, failed={2: "exit 3: pred/sam2/x.png: missing"}),
    )
    print_status(RunStatus("r", jobs))
    lines = capsys.readouterr().out.splitlines()
    header, rows = lines[1], lines[2:5]
    for column in ("STAGE", "MODEL", "DONE", "RUNNING", "FAILED", "FRAMES/S", "ETA"):
        # text columns start under their heading, number columns end under it, in every row
        start, end = header.index(column), header.index(column) + len(column)
        for row in rows:
            if column in ("STAGE", "MODEL"):
                assert row[start - 1] == " " and row[start] != " ", (column, row)
            else:
                assert row[end - 1] != " " and (end == len(row) or row[end] == " "), (column, row)
    assert rows[0].split()[:4] == ["stseg-r-infer-flowprop-farneback", "infer", "flowprop-farneback", "3/64"]
    assert rows[1].split()[6] == "100.0" and lines[5] == "    shard 2: exit 3: pred/sam2/x.png: missing"


def test_watch_computes_one_status_per_tick_and_prints_the_last_one(monkeypatch) -> None:
    """Each status lists every job's done markers: the bars and the final table show the one the loop fetched."""
    fetched: list[RunStatus] = []

    def status(run: str) -> RunStatus:  # one more shard done on each call
        done = frozenset(range(min(4, len(fetched))))
        fetched.append(RunStatus(run, (JobStatus("stseg-r1-infer-sam2", "infer", "sam2", 4, done),)))
        return fetched[-1]

    monkeypatch.setattr(base, "get_backend", lambda name, cfg, **kw: SimpleNamespace(status=status))
    monkeypatch.setattr(time, "sleep", lambda _s: None)
    result = CliRunner().invoke(cli, ["status", "r1", "--watch"], env={"STSEG_CONFIG": ""})
    assert result.exit_code == 0, result.output
    assert len(fetched) == 5  # 0, 1, 2, 3 and 4 of 4 shards done: no second fetch for the bars or the table
    assert result.output.splitlines()[-1].split()[:4] == ["stseg-r1-infer-sam2", "infer", "sam2", "4/4"]

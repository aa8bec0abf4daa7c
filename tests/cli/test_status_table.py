"""`stseg status`: columns stay aligned whatever the length of job and model names."""

from __future__ import annotations

from stseg_cli.backends.base import JobStatus, RunStatus
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

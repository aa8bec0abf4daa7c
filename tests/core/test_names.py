"""split_names (the one parser of comma-separated name lists) and the run-id rule."""

import pytest

from stseg_core.errors import BadInputError
from stseg_core.names import check_run_id, run_id_of, run_root, split_names, store_of_run_root


def test_blanks_and_repeats_dropped_order_kept() -> None:
    assert split_names(" sam2, tmo,,sam2 ,flowprop ") == ("sam2", "tmo", "flowprop")
    assert split_names("") == () and split_names(None) == () and split_names(" , ") == ()


@pytest.mark.parametrize("bad", ["Run1", "-r", "r-", "a" * 31, "", "r_1"])
def test_a_run_id_is_a_short_dns_label(bad: str) -> None:
    assert check_run_id("run-20261203-0105") == "run-20261203-0105"
    with pytest.raises(BadInputError, match=r"^run id .*: use 1-30 characters of a-z, 0-9 and '-'"):
        check_run_id(bad)


def test_run_root_and_back() -> None:
    root = run_root("s3://bucket/stseg/", "r1")
    assert root == "s3://bucket/stseg/runs/r1"
    assert (run_id_of(root + "/"), store_of_run_root(root)) == ("r1", "s3://bucket/stseg")
    with pytest.raises(BadInputError, match=r"^run root /tmp/x/r1: expected <store>/runs/<run-id>"):
        store_of_run_root("/tmp/x/r1")
    with pytest.raises(BadInputError, match=r"^run id 'R1'"):
        run_root("/tmp/store", "R1")

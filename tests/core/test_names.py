"""split_names: the one parser of comma-separated name lists."""

from stseg_core.names import split_names


def test_blanks_and_repeats_dropped_order_kept() -> None:
    assert split_names(" sam2, tmo,,sam2 ,flowprop ") == ("sam2", "tmo", "flowprop")
    assert split_names("") == () and split_names(None) == () and split_names(" , ") == ()

"""`bench/gpu_check.py --cpu-smoke`: the GPU check's every row runs, at tiny sizes on the CPU, so it cannot rot
before a GPU is lent (~15-25 s on the shared 2-core box)."""

from __future__ import annotations

import gpu_check


def test_gpu_check_cpu_smoke(capsys) -> None:
    rows = gpu_check.main(["--cpu-smoke"])
    labels = [what for what, _m, _p in rows]
    assert labels == [
        "SAM2.1 tiny @128 bf16",
        "SAM2.1 tiny @128 fp32",
        "TMO rn18 @64",
        "finetune SAM2.1 tiny @128, 3 frames",
        "finetune TMO rn18 @64, batch 4",
        labels[-1],
    ] and labels[-1].startswith("J&F evaluator")
    for _what, measured, _p in rows:
        value = float(measured.split()[0])
        assert value > 0, measured
    assert rows[0][2] == "91.2 frames/s"  # the published A100 figure printed beside the tiny model
    captured = capsys.readouterr()
    assert "stseg gpu check on CPU smoke" in captured.out and "published A100" in captured.out
    assert "propagate in video" not in captured.err  # upstream's per-video bars are silenced

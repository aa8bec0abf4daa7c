"""The synthetic benchmark the fuse stage's tests start from (see `stseg_testing.fusion_bench`)."""

import pytest

from stseg_testing.fusion_bench import FusionBench, make_fusion_bench


@pytest.fixture(scope="module")
def fusion_bench(tmp_path_factory: pytest.TempPathFactory) -> FusionBench:
    """Per module (the tests fuse into its runs): 4 valid and 4 test videos of 10–14 frames at 112×72, the
    fixture predictors' runs `valid` and `test`, and the database built on `valid`."""
    from stseg_core.data.synth import SynthConfig

    cfg = SynthConfig(
        seed=3, height=72, width=112, min_frames=10, max_frames=14, videos=4, min_objects=2, max_objects=3, noise=1.0
    )
    return make_fusion_bench(
        tmp_path_factory.mktemp("fusion-bench"), cfg, {"valid": "valid", "test": "test"}, database=True
    )

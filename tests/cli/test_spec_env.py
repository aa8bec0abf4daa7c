"""What build_specs puts in a job's environment (per-model checkpoints, the fuse job's ground truth, the typed
roots), and how stseg.yaml / STSEG_* / flag text becomes typed settings."""

import pytest

from stseg_cli.config import Config
from stseg_cli.spec import StageRequest, build_specs
from stseg_core.errors import BadInputError


def _env(spec) -> dict[str, str]:
    return dict(spec.env)


def test_checkpoint_goes_to_its_models_infer_job_only() -> None:
    cfg = Config(
        store="s3://b/stseg",
        data_root="s3://b/mose/valid",
        checkpoints="sam2=s3://b/checkpoints/sam2/r1/epoch_40.pt, tmo=/ckpt/tmo.pt",
    )
    specs = build_specs(
        cfg, "r1", StageRequest("infer", models=("sam2", "tmo", "flowprop"), shards=2), default_gpus=False
    )
    envs = {s.model: _env(s) for s in specs}
    assert envs["sam2"]["STSEG_CHECKPOINT"] == "s3://b/checkpoints/sam2/r1/epoch_40.pt"
    assert envs["tmo"]["STSEG_CHECKPOINT"] == "/ckpt/tmo.pt"
    assert "STSEG_CHECKPOINT" not in envs["flowprop"]
    fin = build_specs(cfg, "r1", StageRequest("finetune", models=("sam2",)), default_gpus=False)
    assert "STSEG_CHECKPOINT" not in _env(fin[0])


def test_malformed_checkpoints_setting_is_one_line() -> None:
    cfg = Config(store="/s", data_root="/d", checkpoints="sam2")
    with pytest.raises(BadInputError, match=r"^checkpoints: 'sam2': use MODEL=URI$"):
        build_specs(cfg, "r1", StageRequest("infer", models=("sam2",)), default_gpus=False)


def test_fuse_job_gets_the_ground_truth_only_when_it_is_known(tmp_path) -> None:
    from stseg_cli.spec import fuse_specs

    req = StageRequest("fuse", models=("flowprop",))
    data = tmp_path / "valid"
    data.mkdir()
    no_gt = fuse_specs(
        Config(store=str(tmp_path / "s"), data_root=str(data)), "r1", req, infer_shards=2, default_gpus=False
    )
    assert "STSEG_GT_ROOT" not in _env(no_gt[0])
    (tmp_path / "valid_gt").mkdir()
    sibling = fuse_specs(
        Config(store=str(tmp_path / "s"), data_root=str(data)), "r1", req, infer_shards=2, default_gpus=False
    )
    assert _env(sibling[0])["STSEG_GT_ROOT"] == str(tmp_path / "valid_gt")
    s3 = fuse_specs(
        Config(store="s3://b/s", data_root="s3://b/mose/valid"), "r1", req, infer_shards=2, default_gpus=False
    )
    assert "STSEG_GT_ROOT" not in _env(s3[0])
    explicit = fuse_specs(
        Config(store="s3://b/s", data_root="s3://b/mose/valid", gt_root="s3://b/mose/valid_gt"),
        "r1",
        req,
        infer_shards=2,
        default_gpus=False,
    )
    assert _env(explicit[0])["STSEG_GT_ROOT"] == "s3://b/mose/valid_gt"


def test_jobs_run_without_progress_bars_in_their_logs() -> None:
    cfg = Config(store="/s", data_root="/d")
    for stage in ("infer", "finetune", "eval"):
        spec = build_specs(cfg, "r1", StageRequest(stage, models=("sam2",)), default_gpus=False)[0]
        assert _env(spec)["TQDM_DISABLE"] == "1"


def test_weight_free_trackers_get_no_gpu_and_the_light_image() -> None:
    cfg = Config(store="s3://b/stseg", data_root="s3://b/mose/valid", image_registry="reg", image_tag="t")
    specs = build_specs(
        cfg, "r1", StageRequest("infer", models=("oneshot", "stm", "flowprop", "sam2")), default_gpus=True
    )
    gpus = {s.model: s.resources.gpus for s in specs}
    assert gpus == {"oneshot": 0, "stm": 0, "flowprop": 0, "sam2": 1}
    assert {s.model: s.image for s in specs}["stm"] == "reg/stseg-fusion:t"


def test_typed_roots_match_the_env_and_survive_the_state_file() -> None:
    from stseg_cli.spec import JobSpec

    cfg = Config(store="s3://b/stseg", data_root="s3://b/mose/valid", gt_root="s3://b/mose/valid_gt")
    infer, ev = (
        build_specs(cfg, "r1", StageRequest(stage, models=("flowprop",)), default_gpus=False)[0]
        for stage in ("infer", "eval")
    )
    assert (infer.run_root, infer.data_root) == ("s3://b/stseg/runs/r1", "s3://b/mose/valid")
    assert (_env(infer)["STSEG_RUN_ROOT"], _env(infer)["STSEG_DATA_ROOT"]) == (infer.run_root, infer.data_root)
    assert ev.data_root == "s3://b/mose/valid_gt" == _env(ev)["STSEG_DATA_ROOT"]  # eval reads the ground truth
    assert JobSpec.from_dict(infer.to_dict()) == infer
    old = {k: v for k, v in infer.to_dict().items() if k not in ("run_root", "data_root")}  # state before the fields
    assert JobSpec.from_dict(old) == infer


@pytest.mark.parametrize(
    ("yaml_text", "env", "flags", "message"),
    [
        ("workers: many\n", {}, {}, "stseg.yaml: workers='many': not an integer"),
        ("", {"STSEG_TTL_SECONDS": "1.5"}, {}, "STSEG_TTL_SECONDS='1.5': not an integer"),
        ("", {}, {"workers": "x"}, "--workers='x': not an integer"),
        ("ttl_seconds:\n", {}, {}, "stseg.yaml: ttl_seconds=None: needs a value"),
    ],
)
def test_config_values_parse_through_the_one_settings_module(tmp_path, yaml_text, env, flags, message) -> None:
    from stseg_cli.config import load_config

    path = tmp_path / "stseg.yaml"
    path.write_text(yaml_text)
    with pytest.raises(BadInputError) as err:
        load_config(path, env=env, flags=flags)
    assert str(err.value) == message.replace("stseg.yaml", str(path))


def test_config_text_becomes_typed_values(tmp_path) -> None:
    from stseg_cli.config import load_config

    path = tmp_path / "stseg.yaml"
    path.write_text("workers: 3\ngt_root:\nnamespace: 7\n")
    cfg = load_config(path, env={"STSEG_TTL_SECONDS": "60"}, flags={"workers": "2"})
    assert (cfg.workers, cfg.ttl_seconds, cfg.gt_root, cfg.namespace) == (2, 60, "", "7")

"""SAM2.1 finetuning on MOSE-layout data: the upstream training config, model, loss and VOS dataset, our loop.

Why our loop and not upstream's `training.trainer.Trainer`: the Trainer owns checkpointing (a local
`save_dir/checkpoint.pt`), resume, logging (TensorBoard) and distributed start-up (always a process group,
SLURM/submitit launcher), and builds its optimizer from fvcore schedulers; none of that fits a Job that must
write `epoch_<n>.pt` + `val.json` + `best` to S3, resume from the store and score with the project's J&F.
So the recipe composes upstream's `configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml` with hydra
overrides and instantiates exactly its parts — `SAM2Train`, `MultiStepMultiMasksAndIous`, `VOSDataset` over
`PNGRawDataset` with `RandomUniformSampler` and the config's video transforms, `collate_fn` — and runs them
in `stseg_core.train.loop`. What the loop takes from the config: the two learning rates (decoder side /
image encoder), cosine decay to lr/10, weight decay 0.1 (0 on biases and LayerNorms), gradient clipping
at 0.1, bf16 autocast on CUDA; upstream's layer-wise lr decay in the Hiera trunk is not applied (the
trunk is frozen by default).

Other sizes than b+: the trunk and neck widths of `configs/sam2.1/sam2.1_hiera_<size>.yaml` replace the
config's, as overrides, so `size=l` (STSeg's init) trains hiera-L with the same recipe.

Notation: T = num_frames sampled per clip, K ≤ max_objects objects per clip, S = resolution (square).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from stseg_core.errors import BadInputError
from stseg_core.train.distributed import (
    DistEnv,
    epoch_loader,
    init_distributed,
    rank_sampler,
    seed_rank,
    steps_per_epoch,
    sync_skipper,
    wrap_ddp,
)
from stseg_core.train.loop import TrainParts, TrainResult, prepare_run, run_epochs
from stseg_core.train.split import VideoSplit

if TYPE_CHECKING:
    import torch
    from omegaconf import DictConfig
    from torch.utils.data import DataLoader

    from stseg_core.data.mose import MoseSplit
    from stseg_core.telemetry import JobMetrics

TRAIN_CONFIG = "configs/sam2.1_training/sam2.1_hiera_b+_MOSE_finetune.yaml"
OPTIMIZERS = ("adamw", "adam")
_TRUNK_KEYS = (
    "embed_dim",
    "num_heads",
    "stages",
    "global_att_blocks",
    "window_pos_embed_bkg_spatial_size",
    "window_spec",
)
_PLAIN_TRANSFORMS = ("RandomResizeAPI", "ToTensorAPI", "NormalizeAPI")


@dataclass(frozen=True)
class Sam2Recipe:
    """STSeg's SAM2 finetune settings (defaults = the paper's recipe).

    init: checkpoint URI of the starting weights (`{"model": state_dict}`, e.g. sam2.1_hiera_large.pt), or
    "random" for random weights (smoke tests only). config: t | s | b+ | l — must match `init`.
    resolution: S, a multiple of 32. optimizer: adamw (default: the decoupled weight decay that upstream's
    MOSE config was tuned with; with `adam` the same 0.1 decay would act as an L2 term in the gradient and
    be scaled by Adam's normaliser, so `adam` runs with weight decay 0). grad_accum: batches per optimizer
    step. loss_weights: focal (mask), dice, IoU, object-class. checkpoint_every: epochs between saved,
    validated checkpoints (the last epoch always is). augment=False keeps only resize + normalise.
    overrides: extra hydra overrides for the composed config (e.g.
    "trainer.model.prob_to_use_pt_input_for_train=0.0").
    """

    init: str
    config: str = "l"
    resolution: int = 1024
    epochs: int = 40
    num_frames: int = 8
    max_objects: int = 3
    batch_size: int = 1
    grad_accum: int = 1
    base_lr: float = 5e-6
    vision_lr: float = 3e-6
    optimizer: str = "adamw"
    weight_decay: float = 0.1
    freeze_image_encoder: bool = True
    loss_weights: tuple[float, float, float, float] = (20.0, 1.0, 1.0, 1.0)
    checkpoint_every: int = 5
    val_fraction: float = 0.15
    multiplier: int = 2
    augment: bool = True
    seed: int = 123
    workers: int = 0
    device: str = "auto"
    overrides: tuple[str, ...] = field(default=())

    def check(self) -> None:
        """Refuse impossible settings before anything is read or built."""
        from stseg_core.models.sam2 import config_path

        config_path(self.config)
        if self.resolution <= 0 or self.resolution % 32:
            raise BadInputError(f"sam2 finetune resolution {self.resolution}: must be a positive multiple of 32")
        if self.optimizer not in OPTIMIZERS:
            raise BadInputError(f"sam2 finetune optimizer {self.optimizer!r}: use one of {', '.join(OPTIMIZERS)}")
        for name in (
            "epochs",
            "num_frames",
            "max_objects",
            "batch_size",
            "grad_accum",
            "checkpoint_every",
            "multiplier",
        ):
            if getattr(self, name) < 1:
                raise BadInputError(f"sam2 finetune {name}={getattr(self, name)}: must be at least 1")
        if len(self.loss_weights) != 4:
            raise BadInputError("sam2 finetune loss_weights: give four numbers (focal, dice, iou, class)")


def _trunk_overrides(config: str) -> list[str]:
    """Overrides that give the training config the trunk/neck of `sam2.1_hiera_<config>.yaml`."""
    from importlib.resources import files

    import yaml

    from stseg_core.models.sam2 import config_path

    model = yaml.safe_load(files("sam2").joinpath(config_path(config)).read_text())["model"]
    trunk = model["image_encoder"]["trunk"]
    # The b+ training config sets only embed_dim/num_heads; every size's file sets those and adds the rest.
    out = [f"++trainer.model.image_encoder.trunk.{k}={_hydra_value(trunk[k])}" for k in _TRUNK_KEYS if k in trunk]
    channels = model["image_encoder"]["neck"]["backbone_channel_list"]
    return [*out, f"trainer.model.image_encoder.neck.backbone_channel_list={_hydra_value(channels)}"]


def _hydra_value(value: Any) -> str:
    return "[" + ",".join(map(str, value)) + "]" if isinstance(value, list) else str(value)


def _quoted(path: str) -> str:
    """A path as a hydra override value: quoted, so spaces, '=' or commas in it stay part of the string."""
    return "'" + path.replace("\\", "\\\\").replace("'", "\\'") + "'"


def compose_config(
    recipe: Sam2Recipe, img_folder: str, gt_folder: str, file_list: str | None, device: str = "cpu"
) -> DictConfig:
    """Upstream's MOSE finetune config with the recipe's values as hydra overrides (an OmegaConf DictConfig)."""
    import sam2  # noqa: F401  (importing sam2 initialises hydra's config search path on the sam2 package)
    from hydra import compose
    from omegaconf import OmegaConf

    _register_resolvers()
    cuda = device.startswith("cuda")
    w = recipe.loss_weights
    overrides = [
        f"scratch.resolution={recipe.resolution}",
        f"scratch.num_frames={recipe.num_frames}",
        f"scratch.max_num_objects={recipe.max_objects}",
        f"scratch.train_batch_size={recipe.batch_size}",
        f"scratch.base_lr={recipe.base_lr}",
        f"scratch.vision_lr={recipe.vision_lr}",
        f"scratch.num_epochs={recipe.epochs}",
        f"scratch.num_train_workers={recipe.workers}",
        f"dataset.img_folder={_quoted(img_folder)}",
        f"dataset.gt_folder={_quoted(gt_folder)}",
        f"dataset.file_list_txt={_quoted(file_list) if file_list else 'null'}",
        f"dataset.multiplier={recipe.multiplier}",
        f"trainer.accelerator={'cuda' if cuda else 'cpu'}",
        f"trainer.seed_value={recipe.seed}",
        f"trainer.distributed.backend={'nccl' if cuda else 'gloo'}",
        f"trainer.optim.amp.enabled={cuda}",
        "trainer.checkpoint.model_weight_initializer=null",
        f"++trainer.model.freeze_image_encoder={recipe.freeze_image_encoder}",
        f"trainer.loss.all.weight_dict.loss_mask={w[0]}",
        f"trainer.loss.all.weight_dict.loss_dice={w[1]}",
        f"trainer.loss.all.weight_dict.loss_iou={w[2]}",
        f"trainer.loss.all.weight_dict.loss_class={w[3]}",
        *_trunk_overrides(recipe.config),
        *recipe.overrides,
    ]
    try:
        cfg = compose(config_name=TRAIN_CONFIG, overrides=overrides)
    except Exception as err:  # hydra's override/config errors
        raise BadInputError(f"sam2 finetune config: {' '.join(str(err).split())[:300]}") from None
    if not recipe.augment:
        plain = [
            t for t in cfg.vos.train_transforms[0].transforms if t["_target_"].rsplit(".", 1)[-1] in _PLAIN_TRANSFORMS
        ]
        cfg.vos.train_transforms[0].transforms = OmegaConf.create(plain)
    return cfg


@functools.cache
def _register_resolvers() -> None:
    """Upstream's `${times:…}`/`${divide:…}` resolvers, once per process (OmegaConf refuses a second time)."""
    from omegaconf import OmegaConf
    from training.utils.train_utils import register_omegaconf_resolvers

    if not OmegaConf.has_resolver("times"):
        register_omegaconf_resolvers()


def build_model(cfg: DictConfig, recipe: Sam2Recipe) -> torch.nn.Module:
    """`SAM2Train` from the composed config, with the `init` weights loaded strictly."""
    from hydra.utils import instantiate

    from stseg_core.models.checkpoint import load_checkpoint
    from stseg_core.models.sam2 import config_path

    model: torch.nn.Module = instantiate(cfg.trainer.model, _convert_="all")
    if recipe.init != "random":
        load_checkpoint(model, recipe.init, model=f"sam2 {Path(config_path(recipe.config)).stem}")
    # freeze_image_encoder is applied in SAM2Train.__init__; loading weights keeps requires_grad
    return model


def param_groups(
    model: torch.nn.Module, recipe: Sam2Recipe
) -> tuple[list[dict[str, Any]], tuple[tuple[str, float], ...]]:
    """Two lr groups (decoder side at base_lr, image encoder at vision_lr), each split by weight decay
    (none on biases and LayerNorm weights, as upstream)."""
    import torch

    no_decay: set[int] = set()
    for module in model.modules():
        if isinstance(module, torch.nn.LayerNorm):
            no_decay.update(id(p) for p in module.parameters(recurse=False))
    decay = recipe.weight_decay if recipe.optimizer == "adamw" else 0.0
    buckets: dict[tuple[str, bool], list[torch.nn.Parameter]] = {}
    for name, p in model.named_parameters():
        if not p.requires_grad:
            continue
        group = "vision" if name.startswith("image_encoder.") else "decoder"
        nd = name.endswith(".bias") or id(p) in no_decay
        buckets.setdefault((group, nd), []).append(p)
    lrs = {"decoder": recipe.base_lr, "vision": recipe.vision_lr}
    groups, names = [], []
    for (group, nd), params in sorted(buckets.items()):
        groups.append({"params": params, "lr": lrs[group], "weight_decay": 0.0 if nd else decay})
        names.append((group + ("_no_decay" if nd else ""), lrs[group]))
    if not groups:
        raise BadInputError("sam2 finetune: no trainable parameters (everything is frozen)")
    return groups, tuple(names)


def validate(
    model: torch.nn.Module, recipe: Sam2Recipe, data: MoseSplit, videos: tuple[str, ...], device: str
) -> dict[str, float]:
    """J&F of the current weights on `videos` through the `sam2` inference adapter (first-frame masks in,
    every later frame scored against the ground truth, first and last frame dropped as DAVIS does)."""
    from stseg_core.models.checkpoint import load_strict
    from stseg_core.models.sam2 import Sam2Model, build_predictor
    from stseg_core.train.val import jf_on_videos

    predictor = build_predictor(recipe.config, recipe.resolution, device="cpu")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    load_strict(predictor, state, source="(training weights)", model=f"sam2 {recipe.config}")
    predictor.to(device).eval()
    adapter = Sam2Model(predictor, device=device, bf16=device.startswith("cuda"))
    return jf_on_videos(adapter, data, videos)


def _local_split_dirs(data_root: str, scratch: Path) -> Path:
    """A local folder holding JPEGImages/ and Annotations/ of the training split (upstream's dataset reads
    plain folders): the split itself when it is on disk, else a copy from the store in `scratch`."""
    from stseg_core.store import open_store

    store = open_store(data_root)
    local = store.local_path("")
    if local is not None:
        return local
    dest = scratch / "train-data"
    for top in ("JPEGImages", "Annotations"):
        store.download_dir(top, dest / top)
    return dest


def finetune_sam2(
    recipe: Sam2Recipe,
    *,
    data_root: str,
    store: str,
    run_id: str,
    scratch: str | Path,
    metrics: JobMetrics | None = None,
    dist: DistEnv | None = None,
) -> TrainResult:
    """Finetune SAM2 on the training split at `data_root`; checkpoints go to
    `<store>/checkpoints/sam2/<run_id>/`. Inputs (settings, store, data, init weights) are checked before
    the first step; a run with checkpoints already in the store resumes from the latest."""

    run = prepare_run(
        recipe, "sam2", data_root=data_root, store=store, run_id=run_id, dist=dist, min_frames=recipe.num_frames
    )
    dist, ckpts, data, split, device = run.dist, run.ckpts, run.data, run.split, run.device
    scratch = Path(scratch)
    scratch.mkdir(parents=True, exist_ok=True)
    folder = _local_split_dirs(data_root, scratch)
    file_list = scratch / f"train-videos-{run_id}.txt"
    file_list.write_text("".join(v + "\n" for v in split.train))
    cfg = compose_config(recipe, str(folder / "JPEGImages"), str(folder / "Annotations"), str(file_list), device)
    seed_rank(recipe.seed, dist)
    model = build_model(cfg, recipe).to(device)
    init_distributed(dist, device)
    parts = _parts(cfg, recipe, model, data, split, device, dist)
    return run_epochs(parts, ckpts, recipe, dist, metrics)


def _parts(
    cfg: DictConfig,
    recipe: Sam2Recipe,
    model: torch.nn.Module,
    data: MoseSplit,
    split: VideoSplit,
    device: str,
    dist: DistEnv,
) -> TrainParts:
    import torch
    from hydra.utils import instantiate
    from training.utils.data_utils import collate_fn

    dataset = instantiate(cfg.trainer.data.train.datasets[0], _convert_="all")  # RepeatFactorWrapper(VOSDataset)
    dataset.set_epoch(0)
    sampler = rank_sampler(dataset, dist, recipe.seed)
    steps = steps_per_epoch(dataset, sampler, recipe, dist, what="sam2 finetune", unit="clips")
    loss_fn = instantiate(cfg.trainer.loss.all, _convert_="all")
    groups, group_lrs = param_groups(model, recipe)
    opt_cls = torch.optim.AdamW if recipe.optimizer == "adamw" else torch.optim.Adam
    optimizer = opt_cls(groups)
    runner = wrap_ddp(model, dist, device, find_unused_parameters=bool(cfg.trainer.distributed.find_unused_parameters))

    def batches(epoch: int) -> DataLoader[Any]:
        dataset.set_epoch(epoch)
        collate = functools.partial(collate_fn, dict_key="all")
        return epoch_loader(
            dataset,
            sampler,
            epoch,
            batch_size=recipe.batch_size,
            workers=recipe.workers,
            device=device,
            collate_fn=collate,
        )

    return TrainParts(
        model=model,
        optimizer=optimizer,
        forward=_batch_loss(cfg, runner, loss_fn, device),
        no_sync=sync_skipper(runner),
        batches=batches,
        steps_per_epoch=steps,
        validate=lambda m: validate(m, recipe, data, split.val, device),
        group_lrs=group_lrs,
        arch={"model": "sam2", "config": recipe.config, "resolution": recipe.resolution},
        recipe=_plain(asdict(recipe)),
        grad_clip=float(cfg.trainer.optim.gradient_clip.max_norm),
    )


def _batch_loss(
    cfg: DictConfig, runner: torch.nn.Module, loss_fn: Callable[..., dict[str, torch.Tensor]], device: str
) -> Callable[[Any], torch.Tensor]:
    """The loop's `forward`: one batch through the model and upstream's multi-step loss, under the config's
    mixed precision on a GPU; → `core_loss`, what is minimised (the other terms are not read: each would cost a
    device sync)."""
    import torch

    amp = bool(cfg.trainer.optim.amp.enabled) and device.startswith("cuda")
    amp_dtype = getattr(torch, str(cfg.trainer.optim.amp.amp_dtype))

    def forward(batch: Any) -> torch.Tensor:
        batch = batch.to(device, non_blocking=True)
        with torch.autocast(device_type="cuda" if amp else "cpu", dtype=amp_dtype, enabled=amp):
            return loss_fn(runner(batch), batch.masks)["core_loss"]

    return forward


def _plain(d: dict[str, Any]) -> dict[str, Any]:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}

"""`stseg finetune`: finetune a model with a recipe (SAM2, TMO) on a training split, in this process (the
finetune Job's code)."""

from __future__ import annotations

import click

from stseg_cli.main import cli
from stseg_core.models import registry


@cli.command("finetune")
@click.option("--model", required=True, type=click.Choice(registry.finetunable()), help="Which model to finetune.")
@click.option(
    "--data",
    "data_root",
    required=True,
    help="Training split root (JPEGImages/ + Annotations/ with every frame annotated).",
)
@click.option(
    "--out",
    "store",
    required=True,
    help="Store root URI; checkpoints go to <out>/checkpoints/<model>/<run>/ (and TMO's flow cache to <out>/flow/).",
)
@click.option(
    "--run",
    "run_id",
    default="finetune",
    show_default=True,
    help="Run id; running again with the same id resumes from its latest checkpoint.",
)
@click.option(
    "--init",
    default=None,
    help="Initial checkpoint URI (sam2: an upstream SAM2.1 checkpoint of --size; tmo: a TMO "
    "checkpoint), or 'random'. Required.",
)
@click.option("--epochs", type=click.IntRange(min=1), default=None, help="Epochs (recipe default 40).")
@click.option(
    "--size", default=None, help="sam2: model size t|s|b+|l (default l); tmo: input side in pixels (default 384)."
)
@click.option(
    "--resolution",
    type=click.IntRange(min=32),
    default=None,
    help="sam2 only: input side in pixels, a multiple of 32 (default 1024).",
)
@click.option(
    "--set",
    "sets",
    multiple=True,
    metavar="KEY=VALUE",
    help="Any other recipe field, repeatable (e.g. --set batch_size=8 --set optimizer=adam; "
    'sam2 overrides="a=1;b=2" passes hydra overrides).',
)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default=None, help="Force the device.")
@click.option(
    "--scratch",
    default=None,
    type=click.Path(file_okay=False),
    help="Local folder for a downloaded copy of the split (default: the system temp folder).",
)
def finetune(
    model: str,
    data_root: str,
    store: str,
    run_id: str,
    init: str | None,
    epochs: int | None,
    size: str | None,
    resolution: int | None,
    sets: tuple[str, ...],
    device: str | None,
    scratch: str | None,
) -> None:
    """Finetune MODEL on the training split at DATA with STSeg's recipe.

    85% of the videos train and 15% score each saved checkpoint (every 5 epochs and the last) with J&F
    through the model's own inference adapter; epoch_<n>.pt, val.json (scores) and best (the top
    checkpoint) land under <out>/checkpoints/<model>/<run>/. SAM2 keeps its image encoder frozen and
    trains the decoder side with AdamW (5e-6 / 3e-6); TMO trains with Adam 1e-5, batch 16, BatchNorm
    frozen. `stseg submit finetune` runs the same code as a Kubernetes Job (torchrun over the pod's GPUs).
    """
    from stseg_cli.infer_cmd import _parse_sets
    from stseg_core.errors import BadInputError
    from stseg_core.stages import finetune as stage

    options: dict[str, object] = dict(_parse_sets(sets))
    if init is None and "init" not in options:
        raise BadInputError("--init is required: a checkpoint URI, or 'random' for random weights")
    named = {
        "init": init,
        "epochs": epochs,
        "device": device,
        registry.recipe_of(model).size_option: size,
        "resolution": resolution,
    }
    options.update({k: v for k, v in named.items() if v is not None})
    result = stage.run(
        stage.FinetuneConfig(
            model=model, data_root=data_root, store=store, run_id=run_id, options=options, scratch=scratch
        )
    )
    click.echo(result.summary())
    for line in result.scores():
        click.echo(f"  {line}")

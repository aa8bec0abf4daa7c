"""Save randomly initialised weights for an upstream program, in its own checkpoint format.

Run as a script by `stseg_core.models.upstream.randomweights` inside the program's checkout (cwd and
PYTHONPATH = the checkout): `python random_weights.py <cutie|xmem|livos> <dest.pth>`. It builds the program's
own network class and saves its state dict. The networks build ImageNet ResNets with `pretrained=True` at
construction; here each requested file (named as the program asks for it) is written to `$TORCH_HOME` from a
randomly initialised torchvision ResNet of that architecture, so later runs of the program find it there and
nothing is downloaded. Imports only torch, torchvision and the program.
"""

import os
import sys
from pathlib import Path
from typing import Any

import torch
import torch.utils.model_zoo
import torchvision


def _random_resnet(url: str, model_dir: str | None = None, *args: Any, **kwargs: Any) -> dict[str, torch.Tensor]:
    name = url.rsplit("/", 1)[-1]  # e.g. resnet50-19c8e357.pth
    folder = Path(model_dir) if model_dir else Path(torch.hub.get_dir()) / "checkpoints"
    dest = folder / name
    if not dest.is_file():
        folder.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_suffix(f".{os.getpid()}.tmp")
        torch.save(getattr(torchvision.models, name.split("-")[0])().state_dict(), tmp)
        tmp.replace(dest)
    state: dict[str, torch.Tensor] = torch.load(dest, map_location="cpu")
    return state


def _network(which: str, home: Path) -> torch.nn.Module:
    if which == "cutie":
        from hydra import compose, initialize_config_dir

        with initialize_config_dir(config_dir=str(home / "cutie" / "config"), version_base="1.3.2"):
            cfg = compose("eval_config.yaml")
        from cutie.model.cutie import CUTIE

        cutie: torch.nn.Module = CUTIE(cfg)
        return cutie
    if which == "xmem":
        from model.network import XMem

        xmem: torch.nn.Module = XMem({})  # the default dimensions eval.py reads back from the weights
        return xmem
    if which == "livos":
        from livos.model.livos_wrapper import LIVOS

        livos: torch.nn.Module = LIVOS(model_type="base")  # as livos/eval.py builds it
        return livos
    raise SystemExit(f"unknown program {which!r}")


def main() -> None:
    which, dest = sys.argv[1], Path(sys.argv[2])
    torch.manual_seed(0)
    torch.hub.load_state_dict_from_url = _random_resnet
    # model_zoo re-exports hub's loader without listing it in __all__
    torch.utils.model_zoo.load_url = _random_resnet  # type: ignore[attr-defined]
    net = _network(which, Path.cwd())
    tmp = dest.with_suffix(f".{os.getpid()}.tmp")
    torch.save(net.state_dict(), tmp)
    tmp.replace(dest)


if __name__ == "__main__":
    main()

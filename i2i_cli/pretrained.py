"""Released checkpoints of the reference implementations, converted into i2i run folders.

Each official file is a state_dict of the reference's module tree; i2i's networks follow those trees, so the
conversion is an explicit, strict key mapping (tested with state_dicts generated in the official layouts).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from i2i_cli.config import apply_values, parse_set
from i2i_cli.download import download
from i2i_cli.engine import checkpoint as ckpt
from i2i_cli.errors import CheckpointError, ConfigError
from i2i_cli.weights import i2i_home, load_state_dict

JZ = "http://efrosgans.eecs.berkeley.edu"


@dataclass(frozen=True)
class Pretrained:
    name: str
    url: str
    method: str
    layout: str  # jz_generator | sg2_nets
    licence: str
    config: dict[str, Any] = field(default_factory=dict)
    domains: tuple[str, ...] = ("A", "B")
    note: str = ""


PRETRAINED: dict[str, Pretrained] = {}
for _n in ("edges2shoes", "sat2map", "map2sat", "facades_label2photo", "day2night"):
    PRETRAINED[f"pix2pix_{_n}"] = Pretrained(f"pix2pix_{_n}", f"{JZ}/pix2pix/models-pytorch/{_n}.pth", "pix2pix",
                                             "jz_generator", "BSD (pytorch-CycleGAN-and-pix2pix)")
for _n in ("apple2orange", "orange2apple", "summer2winter_yosemite", "winter2summer_yosemite", "horse2zebra",
           "zebra2horse", "monet2photo", "style_monet", "style_cezanne", "style_ukiyoe", "style_vangogh", "sat2map",
           "map2sat", "cityscapes_photo2label", "cityscapes_label2photo", "facades_photo2label",
           "facades_label2photo", "iphone2dslr_flower"):
    PRETRAINED[f"cyclegan_{_n}"] = Pretrained(f"cyclegan_{_n}", f"{JZ}/cyclegan/pretrained_models/{_n}.pth",
                                              "cyclegan", "jz_generator", "BSD (pytorch-CycleGAN-and-pix2pix)",
                                              note="one direction (AtoB) only")
PRETRAINED["starganv2_afhq"] = Pretrained(
    "starganv2_afhq", "https://www.dropbox.com/s/etwm810v25h42sn/stargan_v2_afhq.zip?dl=1", "starganv2", "sg2_nets",
    "CC BY-NC 4.0 (clovaai/stargan-v2)", {"lambda_ds": 2.0}, ("cat", "dog", "wild"),
    note="the URL is a zip holding checkpoints/afhq/100000_nets_ema.ckpt: unzip it and use `i2i pretrained import`")


def _clean(state: dict[str, torch.Tensor], target: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Drop DataParallel prefixes, and the InstanceNorm running statistics that old checkpoints carry and
    the reference's own test code deletes."""
    out = {}
    for key, value in state.items():
        key = key[len("module."):] if key.startswith("module.") else key
        if key not in target and key.rsplit(".", 1)[-1] in ("running_mean", "running_var", "num_batches_tracked"):
            continue
        out[key] = value
    return out


def _load_strict(module: torch.nn.Module, state: dict[str, torch.Tensor], what: str) -> None:
    state = _clean(state, module.state_dict())
    try:
        missing, unexpected = module.load_state_dict(state, strict=False)
    except RuntimeError as exc:  # shapes differ: another width or size than the release
        detail = str(exc).splitlines()[1].strip() if len(str(exc).splitlines()) > 1 else str(exc)[:200]
        raise CheckpointError(f"{what}: does not match the network ({detail}); check --as and --set "
                              "(e.g. ngf, n_blocks, size)") from exc
    if missing or unexpected:
        raise CheckpointError(f"{what}: does not match the network (missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]}); check --as and --set (e.g. ngf, n_blocks, size)")


def convert(state: dict[str, Any], method_name: str, *, overrides: dict[str, Any] | None = None,
            domains: list[str] | None = None, what: str = "checkpoint") -> Any:
    """An i2i method holding the official weights (networks the release lacks keep their initialisation)."""
    from models import registry

    try:
        cls = registry.method_class(method_name)
    except KeyError:
        raise ConfigError(f"--as {method_name}: unknown method; known: {', '.join(registry.list_methods())}") from None
    config = apply_values(cls.config_class(), overrides or {}, "--set")
    method = cls(config, domains=domains)
    if method_name == "starganv2":
        nets = {"generator": method.G, "mapping_network": method.F, "style_encoder": method.E}
        for key, net in nets.items():
            if key not in state:
                raise CheckpointError(f"{what}: no '{key}' (expected StarGAN v2's *_nets_ema.ckpt)")
            _load_strict(net, state[key], f"{what} [{key}]")
    else:
        target = {"pix2pix": "G", "cyclegan": "G_A", "cut": "G", "fastcut": "G", "fsesim": "G", "lsesim": "G"}.get(method_name)
        if target is None:
            raise ConfigError(f"--as {method_name}: importing released checkpoints is not supported for it")
        generator = state.get("state_dict", state)
        _load_strict(getattr(method, target), generator, what)
    return method


def write_run(method: Any, out: Path, source: str, directions: list[str]) -> Path:
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists: choose another --out or remove it")
    run_config = ckpt.RunConfig(method.name, method.config.to_dict(), method.domains, {"source": source},
                                {"imported_from": source, "directions": directions})
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_run_config(out, run_config)
    ckpt.save_checkpoint(out, run_config, 0, method.saved_state_dict(), None, None)
    return out


def import_file(file: str | os.PathLike[str], method_name: str, out: str | os.PathLike[str],
                sets: list[str] | None = None, domains: list[str] | None = None) -> Path:
    path = Path(file)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    state = load_state_dict(path)
    overrides = parse_set(sets or [])
    method = convert(state, method_name, overrides=overrides, domains=domains, what=str(path))
    directions = ["AtoB"] if method_name == "cyclegan" else []
    return write_run(method, Path(out), str(path), directions)


def get(name: str, out: str | os.PathLike[str] | None = None, progress: Any = None) -> Path:
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model '{name}'; see `i2i pretrained list`")
    entry = PRETRAINED[name]
    if entry.layout == "sg2_nets":
        raise ConfigError(f"{name}: {entry.note} ({entry.url})")
    file = i2i_home() / "pretrained" / Path(entry.url).name
    if not file.exists():
        download(entry.url, file, progress=progress,
                 offline_hint=f"download it by hand and run `i2i pretrained import FILE --as {entry.method}`")
    method = convert(load_state_dict(file), entry.method, overrides=dict(entry.config), what=str(file))
    directions = ["AtoB"] if entry.method == "cyclegan" else []
    return write_run(method, Path(out or Path("runs") / name), entry.url, directions)

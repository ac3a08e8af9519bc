"""Released checkpoints of the reference implementations, converted into i2i run folders.

Each official file is a state_dict of the reference's module tree, and i2i's networks follow those trees on
purpose (pix2pix U-Net `model.model.N...`, JZ/CUT ResnetGenerator `model.N...`, StarGAN v2 generator /
mapping_network / style_encoder), so the conversion is an explicit map from the official dict's parts to our
networks (the method's `release_parts()`, models/base.py OfficialRelease) plus the clean-ups the reference's own loaders do: a DataParallel `module.`
prefix is removed, InstanceNorm running statistics / counters that old releases carry are dropped when the
module at that path is an InstanceNorm (the reference's `__patch_instance_norm_state_dict`), and a BatchNorm
step counter missing from a pre-PyTorch-0.4 file is set to 0 (what PyTorch's loader does). Everything
else must match exactly: `load_state_dict(strict)` semantics, any missing/unexpected key or shape is an error.
Fixed buffers a release saves and i2i computes (StarGAN v2's high-pass `hpf.filter`, named by the network's
`release_buffers()`) are checked against their expected value and not loaded.
Files are read with torch.load(weights_only=True). None of the hosts publish hashes: the sha256 of the file
that was converted is recorded in the run's config.json (train.imported_sha256).

One-direction releases (every CycleGAN .pth is one generator: the method's `release_directions`) become a
`cyclegan` run whose G_A holds the release and whose config.json lists `train.directions = ["AtoB"]`; inference refuses BtoA on it (G_B is
untrained). Translate, export and eval take the run like any other.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from i2i_cli.config import apply_values, parse_set
from i2i_cli.download import download, sha256_file
from i2i_cli.engine import checkpoint as ckpt
from i2i_cli.errors import CheckpointError, ConfigError, I2IError
from i2i_cli.models.base import OfficialRelease
from i2i_cli.weights import i2i_home, load_state_dict, resolve

JZ = "http://efrosgans.eecs.berkeley.edu"
JZ_LICENCE = "BSD (junyanz/pytorch-CycleGAN-and-pix2pix)"
CUT_LICENCE = "BSD (taesungp/contrastive-unpaired-translation)"
SG2_LICENCE = "CC BY-NC 4.0 (clovaai/stargan-v2): non-commercial"
FLSESIM_PAGE = "https://github.com/lyndonzheng/F-LSeSim"
ProgressFn = Callable[[int, int | None], None]

INSTANCE_NORM_EXTRAS = ("running_mean", "running_var", "num_batches_tracked")
# The reference code's whole training state: network name N (attribute `netN`, file `<epoch>_net_N.pth`) ->
# i2i attribute. The module trees match, so each file loads strictly (load_official); CUT's netF is built
# lazily there and eagerly here, with the same `mlp_<layer>.<0|2>` keys. fyu/drn's segmentation DRNSeg is "net".
OFFICIAL_NETWORKS: dict[str, dict[str, str]] = {
    "pix2pix": {"G": "G", "D": "D"},
    "cyclegan": {"G_A": "G_A", "G_B": "G_B", "D_A": "D_A", "D_B": "D_B"},
    "cut": {"G": "G", "D": "D", "F": "F"},
    "fastcut": {"G": "G", "D": "D", "F": "F"},
    "segmenter": {"DRNSeg": "net"},
}


@dataclass(frozen=True)
class Pretrained:
    name: str
    method: str
    url: str  # the file (or archive) to download; a web page when `import_only`
    file: str  # the cache file name under $I2I_HOME/pretrained/
    licence: str
    translates: str  # what goes in and what comes out
    config: dict[str, Any] = field(default_factory=dict)
    domains: tuple[str, ...] = ()
    member: str = ""  # for a release archive: the checkpoint inside it
    sha256: str = ""  # none of the hosts publishes one; kept for a future release that does
    import_only: bool = False  # no scriptable download (Google Drive): download by hand, then `import`
    note: str = ""


def _build_registry() -> dict[str, Pretrained]:
    entries: list[Pretrained] = []
    pix2pix = {"edges2shoes": ("edge maps -> shoe photos", "AtoB"), "sat2map": ("aerial photos -> maps", "AtoB"),
               "map2sat": ("maps -> aerial photos", "BtoA"), "facades_label2photo": ("facade labels -> photos", "BtoA"),
               "day2night": ("day photos -> night photos", "AtoB")}
    for name, (translates, direction) in pix2pix.items():
        entries.append(Pretrained(f"pix2pix_{name}", "pix2pix", f"{JZ}/pix2pix/models-pytorch/{name}.pth",
                                  f"pix2pix_{name}.pth", JZ_LICENCE, translates,
                                  {"num_downs": 8, "ngf": 64, "norm": "batch", "direction": direction}))
    cyclegan = {"apple2orange": "apples -> oranges", "orange2apple": "oranges -> apples",
                "summer2winter_yosemite": "summer -> winter (Yosemite)",
                "winter2summer_yosemite": "winter -> summer (Yosemite)", "horse2zebra": "horses -> zebras",
                "zebra2horse": "zebras -> horses", "monet2photo": "Monet paintings -> photos",
                "style_monet": "photos -> Monet style", "style_cezanne": "photos -> Cezanne style",
                "style_ukiyoe": "photos -> Ukiyo-e style", "style_vangogh": "photos -> Van Gogh style",
                "sat2map": "aerial photos -> maps", "map2sat": "maps -> aerial photos",
                "cityscapes_photo2label": "street photos -> label colours",
                "cityscapes_label2photo": "label colours -> street photos",
                "facades_photo2label": "facade photos -> labels", "facades_label2photo": "facade labels -> photos",
                "iphone2dslr_flower": "iPhone flower photos -> DSLR look"}
    for name, translates in cyclegan.items():
        entries.append(Pretrained(f"cyclegan_{name}", "cyclegan", f"{JZ}/cyclegan/pretrained_models/{name}.pth",
                                  f"cyclegan_{name}.pth", JZ_LICENCE, translates,
                                  {"ngf": 64, "n_blocks": 9, "norm": "instance", "dropout": False},
                                  note="one generator: AtoB only"))
    cut = {"horse2zebra": ("horses -> zebras", "AtoB"), "cat2dog": ("cats -> dogs (AFHQ)", "AtoB"),
           "cityscapes": ("label colours -> street photos", "BtoA")}
    for dataset, (translates, direction) in cut.items():
        for method in ("cut", "fastcut"):
            run = f"{dataset}_{method}_pretrained"
            entries.append(Pretrained(f"{method}_{dataset}", method, f"{JZ}/CUT/pretrained_models.tar",
                                      "cut_pretrained_models.tar", CUT_LICENCE, translates,
                                      {"ngf": 64, "n_blocks": 9, "norm": "instance", "antialias": True,
                                       "antialias_up": True, "direction": direction},
                                      member=f"checkpoints/{run}/latest_net_G.pth",
                                      note="from the CUT release tar (one download for all six)"))
    for data, domains, ds, hpf, url in (
            ("afhq", ("cat", "dog", "wild"), 2.0, 0.0, "https://www.dropbox.com/s/etwm810v25h42sn/100000_nets_ema.ckpt?dl=1"),
            ("celeba_hq", ("female", "male"), 1.0, 1.0,
             "https://www.dropbox.com/s/96fmei6c93o8b8t/100000_nets_ema.ckpt?dl=1")):
        note = "" if not hpf else ("w_hpf 1: FAN face-mask high-pass skips; needs the 'wing' weights (wing.ckpt, "
                                   "fetched first)")
        entries.append(Pretrained(f"starganv2_{data}", "starganv2", url, f"starganv2_{data}_100000_nets_ema.ckpt",
                                  SG2_LICENCE, f"any of {', '.join(domains)} -> any other (reference or latent style)",
                                  {"size": 256, "style_dim": 64, "latent_dim": 16, "max_conv_dim": 512,
                                   "w_hpf": hpf, "lambda_ds": ds}, domains, note=note))
    for method in ("fsesim", "lsesim"):
        entries.append(Pretrained(f"{method}_release", method, FLSESIM_PAGE, "latest_net_G.pth",
                                  "see the F-LSeSim repository", "the release's own direction",
                                  {"ngf": 64, "n_blocks": 9, "antialias": True}, import_only=True,
                                  note=f"Google Drive links in the README: download latest_net_G.pth, then "
                                       f"`i2i pretrained import FILE --as {method} --out runs/NAME`"))
    return {e.name: e for e in entries}


PRETRAINED: dict[str, Pretrained] = _build_registry()


def entry(name: str) -> Pretrained:
    if name not in PRETRAINED:
        raise ConfigError(f"unknown pretrained model '{name}'; see `i2i pretrained list`")
    return PRETRAINED[name]


def official_keys_cleaned(state: dict[str, torch.Tensor], module: nn.Module) -> dict[str, torch.Tensor]:
    """The official state_dict with the reference loaders' two clean-ups applied (see the module docstring)."""
    instance_norms = {name for name, m in module.named_modules() if isinstance(m, nn.modules.instancenorm._InstanceNorm)}
    expected = module.state_dict()
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        key = key.removeprefix("module.")
        owner, _, leaf = key.rpartition(".")
        if key not in expected and owner in instance_norms and leaf in INSTANCE_NORM_EXTRAS:
            continue
        out[key] = value
    # files saved before PyTorch 0.4 lack BatchNorm's step counter; PyTorch's own loader fills it with 0 for them
    for name, m in module.named_modules():
        counter = f"{name}.num_batches_tracked" if name else "num_batches_tracked"
        if isinstance(m, nn.modules.batchnorm._BatchNorm) and counter in expected and counter not in out:
            out[counter] = torch.tensor(0, dtype=torch.long)
    return out


DEFAULT_HINT = "check --as and --set (ngf, n_blocks, num_downs, antialias)"


def load_official(module: nn.Module, state: Any, what: str, hint: str = DEFAULT_HINT) -> None:
    """Load an official state_dict into `module` strictly, with a one-line error naming what differs."""
    if not isinstance(state, dict) or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise CheckpointError(f"{what}: not a state_dict of tensors; check --as (StarGAN v2 files hold several "
                              "networks: --as starganv2)")
    cleaned = official_keys_cleaned(state, module)
    fixed = module.release_buffers() if hasattr(module, "release_buffers") else {}
    for key, value in fixed.items():
        if key in cleaned:
            saved = cleaned.pop(key)
            if saved.shape != value.shape or not torch.allclose(saved.float(), value.float().cpu(), atol=1e-6):
                raise CheckpointError(f"{what}: '{key}' is {saved.flatten().tolist()[:9]}, not the fixed "
                                      f"{value.flatten().tolist()[:9]}; {hint}")
    expected = module.state_dict()
    missing = [k for k in expected if k not in cleaned]
    unexpected = [k for k in cleaned if k not in expected]
    if missing or unexpected:
        raise CheckpointError(f"{what}: keys do not match the network ({len(missing)} missing, e.g. {missing[:3]}; "
                              f"{len(unexpected)} unexpected, e.g. {unexpected[:3]}); {hint}")
    for key, value in cleaned.items():
        if value.shape != expected[key].shape:
            raise CheckpointError(f"{what}: '{key}' has shape {tuple(value.shape)}, the network wants "
                                  f"{tuple(expected[key].shape)}; {hint}")
    module.load_state_dict(cleaned, strict=True)


def load_official_networks(method: nn.Module, states: dict[str, Any], what: str = "official networks") -> None:
    """Load the reference code's networks ({name N of `netN`: state_dict}, see OFFICIAL_NETWORKS) into an i2i
    method strictly, e.g. a training state saved by the reference code, or a golden fixture's weights."""
    name = getattr(method, "name", "")
    if name not in OFFICIAL_NETWORKS:
        raise ConfigError(f"{what}: no reference network layout is known for method '{name}' "
                          f"(known: {', '.join(OFFICIAL_NETWORKS)})")
    mapping = OFFICIAL_NETWORKS[name]
    for net, state in states.items():
        if net not in mapping:
            raise CheckpointError(f"{what}: the reference {name} has no network '{net}' ({', '.join(mapping)})")
        load_official(getattr(method, mapping[net]), state, f"{what} [net{net}]")


def convert(state: dict[str, Any], method_name: str, *, overrides: dict[str, Any] | None = None,
            domains: list[str] | None = None, what: str = "checkpoint") -> Any:
    """An i2i method holding the official weights. Networks a release lacks (discriminators, CUT's netF, the
    second CycleGAN generator) keep their initialisation; inference does not use them."""
    return load_release(build_method(method_name, overrides, domains), state, what)


def build_method(method_name: str, overrides: dict[str, Any] | None = None, domains: list[str] | None = None) -> Any:
    """The i2i method a release of `method_name` converts into (initial weights)."""
    from i2i_cli.models import registry

    known = [n for n in registry.list_methods() if issubclass(registry.method_class(n), OfficialRelease)]
    if method_name not in known:
        raise ConfigError(f"--as {method_name}: no released checkpoint layout is known for it (known: {', '.join(known)})")
    cls = registry.method_class(method_name)
    config = apply_values(cls.config_class(), overrides or {}, "--set")
    return cls(config, domains=domains)


def require_inference_weights(method: Any) -> None:
    """Fetch (or refuse, offline, with where to put it) the fixed networks the converted run will translate
    with, e.g. StarGAN v2 CelebA-HQ's wing.ckpt, before the release is downloaded or converted."""
    for name in method.inference_weights().values():
        resolve(name)


def load_release(method: OfficialRelease, state: dict[str, Any], what: str) -> Any:
    """Load a release's networks (the method's release_parts()) into `method` strictly."""
    hint = method.release_hint or DEFAULT_HINT
    for part, module in method.release_parts().items():
        if part and (not isinstance(state, dict) or part not in state):
            have = ", ".join(map(str, state)) if isinstance(state, dict) and len(state) < 10 else "other keys"
            raise CheckpointError(f"{what}: no '{part}' network (it has {have}); expected the reference's "
                                  f"*_nets_ema.ckpt for --as {getattr(method, 'name', '')}")
        load_official(module, state[part] if part else state, f"{what} [{part or type(module).__name__}]", hint)
    return method


def write_run(method: Any, out: Path, provenance: dict[str, Any], directions: list[str]) -> Path:
    """An i2i run folder (config.json + checkpoints/step_00000000/weights.safetensors), no trainer state."""
    if out.exists() and any(out.iterdir()):
        raise ConfigError(f"{out} exists and is not empty: choose another --out or remove it")
    run_config = ckpt.RunConfig(method.name, method.config.to_dict(), list(method.domains), {},
                                {**provenance, "directions": directions})
    out.mkdir(parents=True, exist_ok=True)
    ckpt.write_run_config(out, run_config)
    ckpt.save_checkpoint(out, run_config, 0, method.saved_state_dict(), None, None)
    return out


def import_file(file: str | os.PathLike[str], method_name: str, out: str | os.PathLike[str],
                sets: list[str] | None = None, domains: list[str] | None = None) -> Path:
    """Convert a local official checkpoint (.pth / .ckpt) into a run folder at `out`."""
    path = Path(file)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file")
    method = build_method(method_name, parse_set(sets or []), domains)
    require_inference_weights(method)
    method = load_release(method, load_state_dict(path), str(path))
    provenance = {"imported_from": str(path), "imported_sha256": sha256_file(path)}
    return write_run(method, Path(out), provenance, list(method.release_directions))


def _load_bytes(data: bytes, what: str) -> Any:
    try:
        return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
        raise CheckpointError(f"{what}: cannot load weights ({type(exc).__name__}: {str(exc).splitlines()[0][:160]})") from exc


def fetch(e: Pretrained, progress: ProgressFn | None = None) -> Path:
    """The release file in the cache ($I2I_HOME/pretrained/), downloaded (resumable, verified if hashed) if absent."""
    if e.import_only:
        raise I2IError(f"{e.name}: no scriptable download ({e.url}). {e.note}")
    file = i2i_home() / "pretrained" / e.file
    if not file.exists():
        download(e.url, file, sha256=e.sha256 or None, progress=progress,
                 offline_hint=f"Download it by hand from {e.url} and place it at {file}, or run "
                              f"`i2i pretrained import FILE --as {e.method} --out runs/{e.name}`")
    return file


def get(name: str, out: str | os.PathLike[str] | None = None, progress: ProgressFn | None = None) -> Path:
    """Download a released checkpoint (cached) and convert it into the run folder `out` (default runs/NAME)."""
    e = entry(name)
    target = Path(out) if out else Path("runs") / name
    if target.exists() and any(target.iterdir()):
        raise ConfigError(f"{target} exists and is not empty: choose another --out or remove it")
    method = build_method(e.method, dict(e.config), list(e.domains) or None)
    require_inference_weights(method)
    file = fetch(e, progress)
    if e.member:
        from i2i_cli.archive import read_member

        data = read_member(file, e.member)
        what = f"{file}:{e.member}"
    else:
        data = file.read_bytes()
        what = str(file)
    method = load_release(method, _load_bytes(data, what), what)
    provenance = {"imported_from": e.url + (f"#{e.member}" if e.member else ""), "pretrained": e.name,
                  "imported_sha256": hashlib.sha256(data).hexdigest(), "licence": e.licence, "translates": e.translates}
    return write_run(method, target, provenance, list(method.release_directions))

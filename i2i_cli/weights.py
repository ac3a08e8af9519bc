"""Pretrained-weight registry: official URL, file name, sha256, a cache under $I2I_HOME, a local override.

Resolution order for a weights file NAME:
1. `I2I_WEIGHTS_DIR` (or an explicit `weights_dir`): a file there under the official file name is used as is;
   if its hash differs from the known one it is still used, reported as unverified.
2. The cache `$I2I_HOME/weights` (default `~/.cache/i2i/weights`).
3. torch's own cache, `$TORCH_HOME/hub/checkpoints` (default `~/.cache/torch/hub/checkpoints`), where
   torchvision and pytorch-fid put the same files: used in place, never downloaded a second time.
4. A download from the official URL (resumable, hash-checked) into the cache, unless `I2I_OFFLINE=1`.
Missing and offline: a one-line WeightsError with the URL, the file name and where to put it.
"""

from __future__ import annotations

import os
import warnings
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from i2i_cli.download import DownloadError, HashMismatchError, ProgressFn, download, hash_matches, sha256_file
from i2i_cli.errors import WeightsError


@dataclass(frozen=True)
class WeightsEntry:
    name: str
    filename: str
    url: str
    sha256: str | None  # full digest, or the prefix the publisher put in the file name, or None if unpublished
    purpose: str
    licence: str = ""


def _tv(name: str, filename: str, purpose: str) -> WeightsEntry:
    prefix = filename.rsplit("-", 1)[-1].split(".")[0]
    return WeightsEntry(name, filename, f"https://download.pytorch.org/models/{filename}", prefix, purpose, "BSD-3-Clause")


REGISTRY: dict[str, WeightsEntry] = {
    entry.name: entry
    for entry in [
        _tv("vgg16", "vgg16-397923af.pth", "VGG16 ImageNet features: F/LSeSim loss, perceptual error maps, LPIPS-vgg"),
        _tv("vgg19", "vgg19-dcbb9e9d.pth", "VGG19 ImageNet features: perceptual losses"),
        _tv("alexnet", "alexnet-owt-7be5be79.pth", "AlexNet ImageNet features: LPIPS-alex backbone"),
        _tv("inception_v3", "inception_v3_google-0cc3c7bd.pth", "torchvision Inception-v3 (StarGAN v2's own FID mode)"),
        _tv("fcn_resnet50", "fcn_resnet50_coco-1167a1af.pth", "FCN-ResNet50 (COCO/VOC 21 classes) segmenter"),
        _tv("deeplabv3_resnet50", "deeplabv3_resnet50_coco-cd0a2569.pth", "DeepLabv3-ResNet50 (COCO/VOC 21 classes)"),
        WeightsEntry(
            "drn_d_22",
            "drn_d_22-4bd2f8ea.pth",
            "http://dl.yf.io/drn/drn_d_22-4bd2f8ea.pth",
            "4bd2f8ea",  # the hash prefix in the publisher's file name (no full digest is published)
            "DRN-D-22 ImageNet weights: the segmenter's optional backbone pretraining (fyu/drn)",
            "BSD-3-Clause",
        ),
        WeightsEntry(
            "drn_d_22_cityscapes",
            "drn_d_22_cityscapes.pth",
            # fyu/drn's README points at http://go.yf.io/drn-cityscapes-models (a shared folder); this is the
            # direct link to the same file that downstream projects download.
            "https://www.dropbox.com/s/i6v54gng0rao6ff/drn_d_22_cityscapes.pth?dl=1",
            None,
            "DRN-D-22 trained on Cityscapes (19 train ids, 68.0% mIoU): `i2i eval fcn --segmenter drn-cityscapes`",
            "BSD-3-Clause",
        ),
        WeightsEntry(
            "wing",
            "wing.ckpt",
            # StarGAN v2's download.sh (`bash download.sh wing`), its ?dl=0 page link as a direct download
            "https://www.dropbox.com/s/tjxpypwpt38926e/wing.ckpt?dl=1",
            None,
            "FAN face-landmark network (98 WFLW landmarks): StarGAN v2 CelebA-HQ's face masks (w_hpf 1)",
            "CC BY-NC 4.0 (clovaai/stargan-v2's release)",
        ),
        WeightsEntry(
            "celeba_lm_mean",
            "celeba_lm_mean.npz",
            "https://www.dropbox.com/s/91fth49gyb7xksk/celeba_lm_mean.npz?dl=1",
            None,
            "CelebA-HQ mean face landmarks (StarGAN v2): the target of `i2i data align-faces`",
            "CC BY-NC 4.0 (clovaai/stargan-v2's release)",
        ),
        WeightsEntry(
            "dino_vitb8",
            "dino_vitbase8_pretrain.pth",
            # facebookresearch/dino hubconf.py's dino_vitb8 (what img2img-turbo's dino_struct.py loads)
            "https://dl.fbaipublicfiles.com/dino/dino_vitbase8_pretrain/dino_vitbase8_pretrain.pth",
            None,
            "DINO ViT-B/8 (self-supervised, ImageNet): the DINO-Struct distance (`i2i eval --metrics dino_struct`)",
            "Apache-2.0",
        ),
        WeightsEntry(
            "clip_vit_b32",
            "ViT-B-32.pt",
            # openai/CLIP clip.py's _MODELS["ViT-B/32"] (a TorchScript archive; float16 weights)
            "https://openaipublic.azureedge.net/clip/models/"
            "40d3657591a8d1f8cd0bbb5bf4b1e0cbb3b7db7e63d59f2ecf6c9b4d4b6d1f29/ViT-B-32.pt",
            "40d3657591a8d1f8cd0bbb5bf4b1e0cbb3b7db7e63d59f2ecf6c9b4d4b6d1f29",  # the URL's folder is its sha256
            "OpenAI CLIP ViT-B/32: img2img-turbo's CLIP-similarity loss and vision-aided discriminator backbone",
            "MIT",
        ),
        WeightsEntry(
            "inception_fid",
            "inception-2015-12-05.pt",
            "https://nvlabs-fi-cdn.nvidia.com/stylegan2-ada-pytorch/pretrained/metrics/inception-2015-12-05.pt",
            None,
            "TF-2015 Inception (TorchScript) for FID/KID, clean and legacy_tensorflow modes (clean-fid's file)",
            "Apache-2.0",
        ),
        WeightsEntry(
            "inception_fid_pytorch",
            "pt_inception-2015-12-05-6726825d.pth",
            "https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/pt_inception-2015-12-05-6726825d.pth",
            "6726825d",
            "pytorch-fid Inception for FID/KID legacy_pytorch mode",
            "Apache-2.0",
        ),
    ]
}


def register(entry: WeightsEntry) -> None:
    REGISTRY[entry.name] = entry


def i2i_home() -> Path:
    return Path(os.environ.get("I2I_HOME") or Path.home() / ".cache" / "i2i")


def cache_dir() -> Path:
    return i2i_home() / "weights"


def torch_cache_dir() -> Path:
    """torch.hub's checkpoint folder, found as torch.hub.get_dir() does (without importing torch)."""
    if os.environ.get("TORCH_HOME"):
        torch_home = Path(os.environ["TORCH_HOME"])
    else:
        torch_home = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "torch"
    return torch_home.expanduser() / "hub" / "checkpoints"


def override_dir(weights_dir: str | os.PathLike[str] | None = None) -> Path | None:
    value = weights_dir or os.environ.get("I2I_WEIGHTS_DIR")
    return Path(value) if value else None


def offline() -> bool:
    return os.environ.get("I2I_OFFLINE", "") not in ("", "0", "false", "False")


@dataclass
class ResolvedWeights:
    name: str
    path: Path
    sha256: str
    verified: bool  # the hash matched the known one (False when none is published or it differs)
    source: str  # "override", "cache", "torch cache" or "download"
    note: str = ""

    def protocol(self) -> dict[str, Any]:
        record = asdict(self)
        record["path"] = str(self.path)
        return record


def entry(name: str) -> WeightsEntry:
    try:
        return REGISTRY[name]
    except KeyError:
        raise WeightsError(f"unknown weights '{name}'; known: {', '.join(sorted(REGISTRY))}") from None


def _judge(e: WeightsEntry, path: Path, source: str) -> ResolvedWeights:
    digest = sha256_file(path)
    if e.sha256 is None:
        return ResolvedWeights(e.name, path, digest, False, source, "no hash is published for this file")
    if hash_matches(digest, e.sha256):
        return ResolvedWeights(e.name, path, digest, True, source)
    return ResolvedWeights(
        e.name, path, digest, False, source, f"sha256 {digest[:12]} differs from the official {e.sha256[:12]}: used unverified"
    )


def missing_message(e: WeightsEntry, why: str = "") -> str:
    where = override_dir() or cache_dir()
    return (
        f"weights '{e.name}' ({e.filename}) are not available{': ' + why.rstrip('.') if why else ''}; download {e.url} "
        f"and place it at {where / e.filename} (or set I2I_WEIGHTS_DIR to the folder holding it)"
    )


def resolve(
    name: str,
    *,
    weights_dir: str | os.PathLike[str] | None = None,
    allow_download: bool = True,
    progress: ProgressFn | None = None,
) -> ResolvedWeights:
    """Find (or fetch) the weights file NAME; see the module docstring for the order."""
    e = entry(name)
    local = override_dir(weights_dir)
    if local is not None and (local / e.filename).is_file():
        return _judge(e, local / e.filename, "override")
    cached = cache_dir() / e.filename
    if cached.is_file():
        return _judge(e, cached, "cache")
    shared = torch_cache_dir() / e.filename
    if shared.is_file():
        return _judge(e, shared, "torch cache")
    if not allow_download or offline():
        raise WeightsError(missing_message(e, "offline"))
    try:
        download(e.url, cached, sha256=e.sha256, progress=progress)
    except HashMismatchError as exc:
        raise WeightsError(f"weights '{e.name}': {exc}") from exc
    except DownloadError as exc:
        raise WeightsError(missing_message(e, str(exc).split(". ")[0])) from exc
    return _judge(e, cached, "download")


def status(name: str, weights_dir: str | os.PathLike[str] | None = None) -> tuple[str, Path | None]:
    """('override'|'cache'|'torch cache'|'missing', path) without downloading or hashing."""
    e = entry(name)
    local = override_dir(weights_dir)
    if local is not None and (local / e.filename).is_file():
        return "override", local / e.filename
    if (cache_dir() / e.filename).is_file():
        return "cache", cache_dir() / e.filename
    if (torch_cache_dir() / e.filename).is_file():
        return "torch cache", torch_cache_dir() / e.filename
    return "missing", None


def _is_torchscript(file: Path) -> bool:
    """A TorchScript archive (torch.jit.save): a zip whose records hold constants.pkl (torch's own test)."""
    if not zipfile.is_zipfile(file):
        return False
    with zipfile.ZipFile(file) as archive:
        return any(name.split("/", 1)[-1] == "constants.pkl" for name in archive.namelist())


def load_state_dict(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Load tensors without unpickling arbitrary objects: safetensors, torch.load(weights_only=True), or the
    state dict of a TorchScript archive (OpenAI's CLIP files; torch.jit.load's restricted unpickler, on the CPU)."""
    file = Path(path)
    try:
        if file.suffix == ".safetensors":
            from safetensors.torch import load_file

            return load_file(str(file))
        import torch

        if _is_torchscript(file):
            with warnings.catch_warnings():  # torch >= 2.9 marks torch.jit deprecated; the files stay TorchScript
                warnings.simplefilter("ignore", FutureWarning)
                module = torch.jit.load(str(file), map_location="cpu")
            return {key: value.detach() for key, value in module.state_dict().items()}
        return torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
        raise WeightsError(f"{file}: cannot load weights ({type(exc).__name__}: {str(exc).splitlines()[0][:200]})") from exc

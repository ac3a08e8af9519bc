"""The protocol that travels with every metric: numbers of different protocols are not comparable.

One `Protocol` per evaluation records what changes a number: the clean-fid mode and its resize, sample
counts, KID subsets and seed, LPIPS version and backbone, FCN segmenter and resolution, every weights file
(name, file, sha256, whether it matched the published hash), how images were decoded, library versions.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

from i2i_cli.weights import ResolvedWeights

DECODING = "i2i load_image: EXIF orientation applied, RGB uint8, alpha composited on white, 16-bit scaled to 8"

RESIZE = {
    "clean": "PIL bicubic to 299x299 per channel in float32, no re-quantisation (cleanfid.resize.make_resizer)",
    "legacy_tensorflow": "none outside the network: the TF-2015 graph resizes bilinearly to 299x299 (TF style)",
    "legacy_pytorch": "torch bilinear (align_corners=False, no antialias) to 299x299; pytorch-fid network",
    "stargan_v2": "PIL bilinear to {size}x{size} (StarGAN v2's img_size), then PIL bilinear to 299x299, uint8 in "
                  "between (StarGAN v2's evaluation loader)",
}

NETWORKS = {
    "clean": "TF-2015 Inception-v3 (TorchScript inception-2015-12-05.pt), pool_3 features, input (x - 128) / 128",
    "legacy_tensorflow": "TF-2015 Inception-v3 (TorchScript inception-2015-12-05.pt) with its own resize",
    "legacy_pytorch": "pytorch-fid Inception-v3 (pt_inception-2015-12-05-6726825d.pth), input x / 255",
    "stargan_v2": "torchvision ImageNet Inception-v3 (inception_v3_google-0cc3c7bd.pth) to Mixed_7c + average pool, "
                  "ImageNet-normalised input: StarGAN v2's FID, not comparable with clean-fid's",
}

PACKAGES = ("torch", "torchvision", "clean-fid", "lpips", "numpy", "scipy", "pillow")


def library_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for package in PACKAGES:
        try:
            out[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            out[package] = "absent"
    return out


def weights_record(weights: ResolvedWeights) -> dict[str, Any]:
    """File name, path, sha256, verified (matched the published hash) and where it came from."""
    return {"file": weights.path.name, **weights.protocol()}


@dataclass
class Protocol:
    """Everything that makes two numbers comparable; `to_dict()` is what --json writes under "protocol"."""

    real: str | None = None
    fake: str | None = None
    decoding: str = DECODING
    mode: str | None = None  # clean-fid mode of FID/KID
    resize: str | None = None
    network: str | None = None
    n_real: int | None = None
    n_fake: int | None = None
    kid: dict[str, Any] | None = None
    lpips: dict[str, Any] | None = None
    fcn: dict[str, Any] | None = None
    seeds: dict[str, int] = field(default_factory=dict)
    weights: dict[str, dict[str, Any]] = field(default_factory=dict)
    versions: dict[str, str] = field(default_factory=library_versions)
    extra: dict[str, Any] = field(default_factory=dict)  # e.g. the run, step and data of `eval --checkpoint`

    def set_fid_mode(self, mode: str, image_size: int = 256) -> None:
        """`image_size`: stargan_v2's first resize (the run's size for a run, else StarGAN v2's default 256)."""
        self.mode, self.resize, self.network = mode, RESIZE[mode].format(size=image_size), NETWORKS[mode]

    def add_weights(self, role: str, weights: ResolvedWeights) -> None:
        self.weights[role] = weights_record(weights)

    def unverified(self) -> list[tuple[str, dict[str, Any]]]:
        return [(role, w) for role, w in self.weights.items() if not w["verified"]]

    def to_dict(self) -> dict[str, Any]:
        fixed = {k: v for k, v in self.__dict__.items() if k != "extra" and v is not None}
        return {**fixed, **self.extra}

    def __getitem__(self, key: str) -> Any:  # read access like the JSON it becomes
        return self.to_dict()[key]

    def update(self, values: dict[str, Any]) -> None:
        self.extra.update(values)


@dataclass
class EvalResult:
    """Metric values (None when not computed), their protocol, files skipped as unreadable, and warnings."""

    values: dict[str, float | None]
    protocol: Protocol
    bad: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # what a user must know to read the numbers (printed too)

    def to_json(self) -> dict[str, Any]:
        return {**self.values, "protocol": self.protocol.to_dict(),
                "bad_files": [{"file": f, "problem": p} for f, p in self.bad], "warnings": list(self.warnings)}

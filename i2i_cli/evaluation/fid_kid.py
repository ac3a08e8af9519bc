"""FID and KID with clean-fid's exact protocols, on features we extract ourselves.

Why not call clean-fid's compute_fid directly: it downloads its Inception to /tmp on every fresh machine,
globs .npy and zip files inside image folders, and draws KID subsets from the unseeded global NumPy RNG. We
use its preprocessing (cleanfid.resize.build_resizer) and its formulas, with the network file from i2i's
weights registry, our image listing and decoding, and a seeded RNG, so the numbers are clean-fid's numbers.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli.data.images import list_images, load_image
from i2i_cli.errors import BadImageError, ConfigError, I2IError, WeightsError
from i2i_cli.weights import ResolvedWeights, resolve

MODES = ("clean", "legacy_tensorflow", "legacy_pytorch")
FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) in [0, 255] -> (N, 2048)


class _TorchScriptInception(torch.nn.Module):
    """clean-fid's InceptionV3W behaviour on the TF-2015 TorchScript file."""

    def __init__(self, base: Any, resize_inside: bool) -> None:
        super().__init__()
        self.base = base
        self.resize_inside = resize_inside

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n = x.shape[0]
        if self.resize_inside:
            return self.base(x, return_features=True).view(n, -1)
        return self.base.layers.forward((x - 128) / 128).view(n, -1)


def inception(mode: str, device: torch.device | str = "cpu",
              weights_dir: str | os.PathLike[str] | None = None) -> tuple[FeatureFn, ResolvedWeights]:
    """The feature network of a clean-fid mode, loaded from the weights registry."""
    if mode not in MODES:
        raise ConfigError(f"--mode {mode}: choose {', '.join(MODES)}")
    if mode in ("clean", "legacy_tensorflow"):
        weights = resolve("inception_fid", weights_dir=weights_dir)
        try:
            base = torch.jit.load(str(weights.path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001
            raise WeightsError(f"{weights.path}: not the TorchScript Inception clean-fid uses ({exc})") from exc
        net = _TorchScriptInception(base, resize_inside=mode == "legacy_tensorflow").to(device).eval()
        return net, weights
    weights = resolve("inception_fid_pytorch", weights_dir=weights_dir)
    from cleanfid.inception_pytorch import InceptionV3

    hub = Path(weights.path).parent.parent / "torch-hub-view"
    (hub / "checkpoints").mkdir(parents=True, exist_ok=True)
    link = hub / "checkpoints" / weights.path.name
    if not link.exists():
        link.symlink_to(weights.path.resolve())
    previous = torch.hub.get_dir()
    torch.hub.set_dir(str(hub))  # pytorch-fid's loader looks there; the file is ours, verified
    try:
        model = InceptionV3(output_blocks=[3], resize_input=False).to(device).eval()
    finally:
        torch.hub.set_dir(previous)

    def features(x: torch.Tensor) -> torch.Tensor:
        return model(x / 255)[0].squeeze(-1).squeeze(-1)

    return features, weights


def folder_features(folder: str | os.PathLike[str], model: FeatureFn, mode: str = "clean", *, batch_size: int = 32,
                    device: torch.device | str = "cpu", threads: int = 4,
                    progress: Callable[[int, int], None] | None = None) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(N, 2048) features of every readable image under `folder`, and the unreadable ones."""
    from cleanfid.resize import build_resizer

    files = list_images(folder)
    if not files:
        raise I2IError(f"{folder}: no images found")
    resize = build_resizer(mode)

    def prepare(path: Path) -> np.ndarray | BadImageError:
        try:
            return np.asarray(resize(load_image(path)), dtype=np.float32)
        except BadImageError as exc:
            return exc

    feats, bad, done = [], [], 0
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        for start in range(0, len(files), batch_size):
            chunk = files[start : start + batch_size]
            arrays = list(pool.map(prepare, chunk))
            good = [a for a in arrays if isinstance(a, np.ndarray)]
            bad += [(e.path, e.reason) for e in arrays if isinstance(e, BadImageError)]
            if good:
                x = torch.from_numpy(np.stack(good)).permute(0, 3, 1, 2).to(device)
                with torch.no_grad():
                    feats.append(model(x).float().cpu().numpy().astype(np.float64))
            done += len(chunk)
            if progress:
                progress(done, len(files))
    if not feats:
        raise I2IError(f"{folder}: no readable images")
    return np.concatenate(feats), bad


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    from cleanfid.fid import frechet_distance

    mu1, sigma1 = real.mean(axis=0), np.cov(real, rowvar=False)
    mu2, sigma2 = fake.mean(axis=0), np.cov(fake, rowvar=False)
    return float(frechet_distance(mu1, sigma1, mu2, sigma2))


def kid_from_features(real: np.ndarray, fake: np.ndarray, subsets: int = 100, subset_size: int = 1000,
                      seed: int = 0) -> tuple[float, float, int]:
    """Unbiased MMD^2 with the cubic polynomial kernel, clean-fid's draw order; (mean, std, subset size)."""
    rng = np.random.RandomState(seed)
    d = real.shape[1]
    m = min(real.shape[0], fake.shape[0], subset_size)
    if m < 2:
        raise I2IError("KID needs at least 2 images in each folder")
    values = []
    for _ in range(subsets):
        x = fake[rng.choice(fake.shape[0], m, replace=False)]
        y = real[rng.choice(real.shape[0], m, replace=False)]
        a = (x @ x.T / d + 1) ** 3 + (y @ y.T / d + 1) ** 3
        b = (x @ y.T / d + 1) ** 3
        values.append(((a.sum() - np.diag(a).sum()) / (m - 1) - b.sum() * 2 / m) / m)
    return float(np.mean(values)), float(np.std(values)), m

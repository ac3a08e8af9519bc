"""FID and KID with clean-fid's exact protocols, on features we extract ourselves.

Why not call clean-fid's compute_fid directly: it downloads its Inception to /tmp on every fresh machine,
globs .npy and zip files inside image folders, and draws KID subsets from the unseeded global NumPy RNG. We
use its preprocessing (cleanfid.resize.build_resizer) and its formulas, with the network file from i2i's
weights registry, our image listing and decoding, and a seeded RNG, so the numbers are clean-fid's numbers.
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import torch

from i2i_cli.data.images import list_images, load_image
from i2i_cli.errors import BadImageError, ConfigError, DataError, I2IError, WeightsError
from i2i_cli.weights import ResolvedWeights, load_state_dict, resolve

MODES = ("clean", "legacy_tensorflow", "legacy_pytorch", "stargan_v2")
IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)
FeatureFn = Callable[[torch.Tensor], torch.Tensor]  # (N, 3, H, W) in [0, 255] -> (N, 2048)
STARGAN_V2_SIZE = 256  # StarGAN v2's default img_size: the first of its two resizes


def canonical_mode(mode: str) -> str:
    """A FID mode's name as MODES spells it (`stargan-v2` is accepted for `stargan_v2`), or a ConfigError."""
    name = mode.replace("-", "_")
    if name not in MODES:
        raise ConfigError(f"--mode {mode}: choose {', '.join(MODES)}")
    return name


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
    """The feature network of a clean-fid mode, its file resolved by i2i's weights registry (never /tmp)."""
    mode = canonical_mode(mode)
    if mode in ("clean", "legacy_tensorflow"):
        weights = resolve("inception_fid", weights_dir=weights_dir)
        try:
            base = torch.jit.load(str(weights.path), map_location=device).eval()
        except Exception as exc:  # noqa: BLE001 - any failure to parse is the file's fault
            raise WeightsError(f"{weights.path}: not the TorchScript Inception clean-fid uses ({exc})") from exc
        net = _TorchScriptInception(base, resize_inside=mode == "legacy_tensorflow").to(device).eval()
        return net, weights
    if mode == "stargan_v2":
        return _stargan_v2_inception(device, weights_dir)
    weights = resolve("inception_fid_pytorch", weights_dir=weights_dir)
    model = _pytorch_fid_inception(load_state_dict(weights.path)).to(device).eval()

    def features(x: torch.Tensor) -> torch.Tensor:  # clean-fid's legacy_pytorch model_fn
        return model(x / 255)[0].squeeze(-1).squeeze(-1)

    return features, weights


def _stargan_v2_inception(device: torch.device | str, weights_dir: str | os.PathLike[str] | None
                          ) -> tuple[FeatureFn, ResolvedWeights]:
    """StarGAN v2's FID network: torchvision's ImageNet Inception-v3 from Conv2d_1a to Mixed_7c, then global
    average pooling (2048 features), on ImageNet-normalised input (its own transform_input is not applied)."""
    import torchvision

    weights = resolve("inception_v3", weights_dir=weights_dir)
    net = torchvision.models.inception_v3(weights=None, aux_logits=True, init_weights=False)
    try:
        net.load_state_dict(load_state_dict(weights.path))
    except RuntimeError as exc:
        raise WeightsError(f"{weights.path}: not torchvision's Inception-v3 state dict ({str(exc)[:200]})") from exc
    pool = torch.nn.MaxPool2d(3, 2)
    blocks = torch.nn.Sequential(net.Conv2d_1a_3x3, net.Conv2d_2a_3x3, net.Conv2d_2b_3x3, pool, net.Conv2d_3b_1x1,
                                 net.Conv2d_4a_3x3, pool, net.Mixed_5b, net.Mixed_5c, net.Mixed_5d, net.Mixed_6a,
                                 net.Mixed_6b, net.Mixed_6c, net.Mixed_6d, net.Mixed_6e, net.Mixed_7a, net.Mixed_7b,
                                 net.Mixed_7c, torch.nn.AdaptiveAvgPool2d(1)).to(device).eval()
    mean = torch.tensor(IMAGENET_MEAN, device=device).view(1, 3, 1, 1)
    std = torch.tensor(IMAGENET_STD, device=device).view(1, 3, 1, 1)

    def features(x: torch.Tensor) -> torch.Tensor:  # x in [0, 255], already 299 x 299
        # contiguous NCHW as torchvision's loader gives: channels-last input takes other conv kernels (1e-5 apart)
        return blocks(((x / 255 - mean) / std).contiguous()).flatten(1)

    return features, weights


def _stargan_v2_resize(array: np.ndarray, size: int = STARGAN_V2_SIZE) -> np.ndarray:
    """StarGAN v2's evaluation loader (torchvision Resize on PIL images): PIL bilinear to its img_size, then to
    299 x 299, uint8 in between (PIL returns a copy when the size already matches, as for its own outputs)."""
    from PIL import Image

    image = Image.fromarray(array).resize((size, size), Image.BILINEAR).resize((299, 299), Image.BILINEAR)
    return np.asarray(image, dtype=np.float32)


def _pytorch_fid_inception(state: dict[str, Any]) -> torch.nn.Module:
    """clean-fid's copy of pytorch-fid's InceptionV3 with our verified file instead of its URL download."""
    from cleanfid import inception_pytorch

    original = inception_pytorch.load_state_dict_from_url
    inception_pytorch.load_state_dict_from_url = lambda *args, **kwargs: state  # its only weights source
    try:
        return inception_pytorch.InceptionV3(output_blocks=[3], resize_input=False)
    except RuntimeError as exc:
        raise WeightsError(f"pt_inception weights do not fit pytorch-fid's InceptionV3 ({str(exc)[:200]})") from exc
    finally:
        inception_pytorch.load_state_dict_from_url = original


def _decoded_batches(files: list[Path], prepare: Callable[[Path], Any], batch_size: int, threads: int,
                     ahead: int = 2) -> Iterator[list[Any]]:
    """Yield prepared batches in order while the next `ahead` batches decode in a thread pool, so decoding
    and resizing (Pillow releases the GIL) overlap the network's forward passes."""
    starts = iter(range(0, len(files), batch_size))
    with ThreadPoolExecutor(max_workers=max(1, threads)) as pool:
        pending: deque[list[Future[Any]]] = deque()

        def submit() -> None:
            start = next(starts, None)
            if start is not None:
                pending.append([pool.submit(prepare, f) for f in files[start : start + batch_size]])

        for _ in range(ahead + 1):
            submit()
        while pending:
            futures = pending.popleft()
            submit()
            yield [f.result() for f in futures]


def default_threads() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def folder_features(folder: str | os.PathLike[str], model: FeatureFn, mode: str = "clean", *, batch_size: int = 32,
                    device: torch.device | str = "cpu", threads: int | None = None,
                    progress: Callable[[int, int], None] | None = None,
                    image_size: int = STARGAN_V2_SIZE) -> tuple[np.ndarray, list[tuple[str, str]]]:
    """(N, 2048) float64 features of every readable image under `folder` (i2i's listing: image extensions
    only), and the unreadable files as (path, reason). Preprocessing is clean-fid's resizer of `mode`, or for
    stargan_v2 StarGAN v2's two bilinear resizes (to `image_size`, its img_size, then to 299)."""
    from functools import partial

    from cleanfid.resize import build_resizer

    mode = canonical_mode(mode)
    if not Path(folder).is_dir():
        raise DataError(f"{folder}: not a folder of images")
    files = list_images(folder)
    if not files:
        raise DataError(f"{folder}: no images found (extensions: png, jpg, jpeg, bmp, tif, webp, ppm, pgm, gif)")
    # clean: make_resizer("PIL", False, "bicubic", (299, 299))
    resize = partial(_stargan_v2_resize, size=image_size) if mode == "stargan_v2" else build_resizer(mode)

    def prepare(path: Path) -> np.ndarray | BadImageError:
        try:
            return np.asarray(resize(load_image(path)), dtype=np.float32)
        except BadImageError as exc:
            return exc

    feats, bad, done = [], [], 0
    for arrays in _decoded_batches(files, prepare, batch_size, threads or default_threads()):
        good = [a for a in arrays if isinstance(a, np.ndarray)]
        bad += [(e.path, e.reason) for e in arrays if isinstance(e, BadImageError)]
        if good:
            x = torch.from_numpy(np.stack(good)).permute(0, 3, 1, 2).to(device)
            with torch.no_grad():
                feats.append(model(x).float().cpu().numpy().astype(np.float64))
        done += len(arrays)
        if progress:
            progress(done, len(files))
    if not feats:
        raise DataError(f"{folder}: none of its {len(files)} images could be read")
    return np.concatenate(feats), bad


def fid_from_features(real: np.ndarray, fake: np.ndarray) -> float:
    from cleanfid.fid import frechet_distance

    """clean-fid's frechet_distance on (N, D) features: covariances with N - 1, scipy sqrtm (retried with 1e-6
    on the diagonal when not finite), real part. Costs one D x D sqrtm: ~40 s for D = 2048 on one CPU core."""
    if min(real.shape[0], fake.shape[0]) < 2:
        raise I2IError("FID needs at least 2 images in each folder")
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

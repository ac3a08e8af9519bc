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
from i2i_cli.evaluation.metrics import FolderMetric, MetricContext
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


INCEPTION_WEIGHTS = {"clean": "inception_fid", "legacy_tensorflow": "inception_fid",
                     "legacy_pytorch": "inception_fid_pytorch", "stargan_v2": "inception_v3"}


def check_inception_weights(mode: str, weights_dir: str | os.PathLike[str] | None = None) -> None:
    """The FID network's file of `mode` can be found (or downloaded): a WeightsError now, not after training."""
    resolve(INCEPTION_WEIGHTS[canonical_mode(mode)], weights_dir=weights_dir)


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
    mode = canonical_mode(mode)
    if not Path(folder).is_dir():
        raise DataError(f"{folder}: not a folder of images")
    files = list_images(folder)
    if not files:
        raise DataError(f"{folder}: no images found (extensions: png, jpg, jpeg, bmp, tif, webp, ppm, pgm, gif)")
    prepare = inception_input(mode, image_size)
    feats, bad, done = [], [], 0
    for arrays in _decoded_batches(files, prepare, batch_size, threads or default_threads()):
        good = [a for a in arrays if isinstance(a, np.ndarray)]
        bad += [(e.path, e.reason) for e in arrays if isinstance(e, BadImageError)]
        if good:
            feats.append(batch_features(good, model, device))
        done += len(arrays)
        if progress:
            progress(done, len(files))
    if not feats:
        raise DataError(f"{folder}: none of its {len(files)} images could be read")
    return np.concatenate(feats), bad


def inception_input(mode: str, image_size: int = STARGAN_V2_SIZE) -> Callable[[Path], np.ndarray | BadImageError]:
    """A file -> the network's float32 HWC input by `mode`'s preprocessing (clean-fid's resizer, or StarGAN v2's
    two resizes), or the BadImageError saying why it cannot be read."""
    from functools import partial

    from cleanfid.resize import build_resizer

    # clean: make_resizer("PIL", False, "bicubic", (299, 299))
    resize = partial(_stargan_v2_resize, size=image_size) if mode == "stargan_v2" else build_resizer(mode)

    def prepare(path: Path) -> np.ndarray | BadImageError:
        try:
            return np.asarray(resize(load_image(path)), dtype=np.float32)
        except BadImageError as exc:
            return exc

    return prepare


def batch_features(arrays: list[np.ndarray], model: FeatureFn, device: torch.device | str) -> np.ndarray:
    """Features of HWC float arrays in order; arrays of different sizes (legacy_tensorflow resizes inside the
    network, so any size is valid there) go through the network in one batch per size."""
    by_shape: dict[tuple[int, ...], list[int]] = {}
    for i, array in enumerate(arrays):
        by_shape.setdefault(array.shape, []).append(i)
    out: list[np.ndarray | None] = [None] * len(arrays)
    for indices in by_shape.values():
        x = torch.from_numpy(np.stack([arrays[i] for i in indices])).permute(0, 3, 1, 2).to(device)
        with torch.no_grad():
            found = model(x).float().cpu().numpy().astype(np.float64)
        for i, row in zip(indices, found):
            out[i] = row
    return np.stack(out)


FID_SQRT = ("eigh", "sqrtm")
FID_SQRT_PROTOCOL = {
    "eigh": "tr sqrt(S1 S2) = sum of sqrt(eigenvalues) of the symmetric sqrt(S1) S2 sqrt(S1) (numpy eigh/eigvalsh, "
            "float64, negative round-off eigenvalues clamped to 0); with fewer images n than features the same "
            "non-zero eigenvalues from an n x n form (S = A^T A, A = centred features / sqrt(n - 1))",
    "sqrtm": "scipy.linalg.sqrtm of S1 S2 as clean-fid's frechet_distance (retried with 1e-6 on the diagonals when "
             "not finite; an imaginary diagonal above 1e-3 is an error); --mode stargan_v2: StarGAN v2's "
             "metrics/fid.py (real part of the distance, no retry)",
}


def check_fid_sqrt(sqrt: str) -> str:
    if sqrt not in FID_SQRT:
        raise ConfigError(f"--fid-sqrt {sqrt}: choose {' or '.join(FID_SQRT)}")
    return sqrt


def few_images_warning(n_real: int, n_fake: int, dim: int = 2048) -> str | None:
    """The note for covariances estimated from fewer images than features (rank-deficient, biased upwards)."""
    if min(n_real, n_fake) >= dim:
        return None
    return (f"FID/KID from {n_real} real and {n_fake} fake images, fewer than the {dim} features: the covariances "
            "are rank-deficient and FID is biased upwards (compare only numbers of equal image counts; papers use "
            "thousands, e.g. 10k-50k)")


def _centred(features: np.ndarray) -> np.ndarray:
    """A with A^T A = np.cov(features, rowvar=False): the centred features over sqrt(n - 1)."""
    return (features - features.mean(axis=0)) / np.sqrt(features.shape[0] - 1)


def _sum_sqrt_eigvalsh(m: np.ndarray) -> float:
    """sum sqrt(eig(m)) of a symmetric positive semi-definite m; round-off negatives count 0."""
    eigenvalues = np.linalg.eigvalsh((m + m.T) / 2)
    return float(np.sqrt(np.clip(eigenvalues, 0, None)).sum())


def trace_sqrt_product(sigma1: np.ndarray, sigma2: np.ndarray) -> float:
    """tr sqrt(S1 S2) for covariances: S1 = U diag(w) U^T, so sqrt(S1) S2 sqrt(S1) = U (B^T S2 B) U^T with
    B = U diag(sqrt(w)), whose eigenvalues are those of S1 S2 (real, >= 0). Two D x D eigh, ~5 s at D = 2048."""
    w, u = np.linalg.eigh((sigma1 + sigma1.T) / 2)
    b = u * np.sqrt(np.clip(w, 0, None))
    return _sum_sqrt_eigvalsh(b.T @ sigma2 @ b)


def _trace_sqrt_product_of_features(real: np.ndarray, fake: np.ndarray) -> float:
    """tr sqrt(S1 S2) from the features: with S = A^T A (A: n x D), the non-zero eigenvalues of
    sqrt(S1) S2 sqrt(S1) are those of A1 S2 A1^T (n1 x n1); when both sides are small, of C C^T with C = A1 A2^T."""
    (n1, d), n2 = real.shape, fake.shape[0]
    if min(n1, n2) >= d:
        return trace_sqrt_product(np.cov(real, rowvar=False), np.cov(fake, rowvar=False))
    if n1 > n2:  # tr sqrt(S1 S2) = tr sqrt(S2 S1): factor the smaller side
        real, fake, n1, n2 = fake, real, n2, n1
    a1 = _centred(real)
    if n2 < d:
        c = a1 @ _centred(fake).T
        return _sum_sqrt_eigvalsh(c @ c.T)
    return _sum_sqrt_eigvalsh(a1 @ np.cov(fake, rowvar=False) @ a1.T)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray,
                     sqrt: str = "eigh", mode: str = "clean") -> float:
    """|mu1 - mu2|^2 + tr S1 + tr S2 - 2 tr sqrt(S1 S2), the trace term by `sqrt` (see FID_SQRT_PROTOCOL)."""
    check_fid_sqrt(sqrt)
    if sqrt == "sqrtm":
        return _frechet_sqrtm(mu1, sigma1, mu2, sigma2, canonical_mode(mode))
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_sqrt_product(sigma1, sigma2))


def _frechet_sqrtm(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray, mode: str) -> float:
    from scipy import linalg

    if mode == "stargan_v2":  # its metrics/fid.py: scipy sqrtm, no retry, the real part of the whole distance
        covmean, _ = linalg.sqrtm(sigma1 @ sigma2, disp=False)
        return float(np.real(np.sum((mu1 - mu2) ** 2) + np.trace(sigma1 + sigma2 - 2 * covmean)))
    from cleanfid.fid import frechet_distance as clean_fid_frechet

    try:
        return float(clean_fid_frechet(mu1, sigma1, mu2, sigma2))
    except ValueError as exc:
        if not str(exc).startswith("Imaginary component"):
            raise
        raise I2IError(f"FID: scipy's sqrtm of S1 S2 came out complex ({str(exc).lower()} on the diagonal, clean-fid "
                       "refuses it): the covariances are too ill-conditioned, typically from fewer images than the "
                       "2048 features; use --fid-sqrt eigh (exact for covariances) or more images") from exc


def fid_from_features(real: np.ndarray, fake: np.ndarray, sqrt: str = "eigh", mode: str = "clean",
                      what: str = "") -> float:
    """FID of (N, D) features with covariances over N - 1, as clean-fid (and StarGAN v2). `sqrt`: eigh, from the
    features (an n x n eigenproblem when n < D: milliseconds), or clean-fid's scipy sqrtm (~20-40 s at D = 2048)."""
    check_fid_sqrt(sqrt)
    if min(real.shape[0], fake.shape[0]) < 2:
        counts = f"{real.shape[0]} real, {fake.shape[0]} translated"
        raise I2IError(f"FID{' of ' + what if what else ''} needs at least 2 images in each folder ({counts}); add "
                       "images there (see `i2i data check`)")
    mu1, mu2 = real.mean(axis=0), fake.mean(axis=0)
    if sqrt == "sqrtm":
        return _frechet_sqrtm(mu1, np.cov(real, rowvar=False), mu2, np.cov(fake, rowvar=False), canonical_mode(mode))
    diff = mu1 - mu2
    traces = float((_centred(real) ** 2).sum() + (_centred(fake) ** 2).sum())  # tr S1 + tr S2
    return float(diff @ diff + traces - 2 * _trace_sqrt_product_of_features(real, fake))


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


INCEPTION_WEIGHTS = {"clean": "inception_fid", "legacy_tensorflow": "inception_fid",
                     "legacy_pytorch": "inception_fid_pytorch", "stargan_v2": "inception_v3"}

# What another engine gives FID / KID instead of extracting here (i2i_cli.ray_engine): ctx.shared["feature_source"]
# (name, folder, ctx) -> (features in i2i's listing order, bad files), the same network and preprocessing on its
# workers; it may leave each side's (count, mean, covariance) merged from float64 sums in ctx.shared["moments"].
FeatureSource = Callable[[str, Path, MetricContext], tuple[np.ndarray, list[tuple[str, str]]]]


def _shared_features(ctx: MetricContext) -> dict[str, np.ndarray]:
    """Inception features of both folders, computed once per evaluation for FID and KID."""
    if "inception_features" in ctx.shared:
        return ctx.shared["inception_features"]
    options = ctx.options
    source: FeatureSource | None = ctx.shared.get("feature_source")
    if source is None:
        model, weights = inception(options.mode, ctx.device, options.weights_dir)
    else:
        weights = resolve(INCEPTION_WEIGHTS[canonical_mode(options.mode)], weights_dir=options.weights_dir)
    ctx.protocol.add_weights("inception", weights)
    image_size = options.image_size or STARGAN_V2_SIZE
    ctx.protocol.set_fid_mode(options.mode, image_size)
    feats = {}
    cache = getattr(options, "feature_cache", None)  # a training run's: the real set's features kept across evaluations
    for name, folder in (("real", ctx.real), ("fake", ctx.fake)):
        key = folder_key(folder, options.mode, image_size) if name == "real" and cache is not None else None
        if source is not None:
            feats[name], skipped = source(name, folder, ctx)
        elif key is not None and key in cache:
            feats[name], skipped = cache[key]
        else:
            feats[name], skipped = folder_features(
                folder, model, options.mode, batch_size=options.batch_size, device=ctx.device,
                threads=options.threads, progress=ctx.report(f"features {name}"), image_size=image_size)
            if key is not None:
                cache[key] = (feats[name], skipped)
        ctx.bad += skipped
    ctx.protocol.n_real, ctx.protocol.n_fake = int(feats["real"].shape[0]), int(feats["fake"].shape[0])
    if note := few_images_warning(ctx.protocol.n_real, ctx.protocol.n_fake, feats["real"].shape[1]):
        ctx.protocol.update({"warnings": [*ctx.protocol.extra.get("warnings", []), note]})
    ctx.shared["inception_features"] = feats
    return feats


def _fid(ctx: MetricContext, feats: dict[str, np.ndarray]) -> float:
    """FID from the features, or from merged moments where an engine left them and the formula takes
    covariances anyway (sqrtm, or at least as many images as features): the same numbers either way."""
    sqrt, moments = ctx.options.fid_sqrt, ctx.shared.get("moments")
    real, fake = feats["real"], feats["fake"]
    if moments and (sqrt == "sqrtm" or min(real.shape[0], fake.shape[0]) >= real.shape[1]):
        (_, mu1, sigma1), (_, mu2, sigma2) = moments["real"], moments["fake"]
        return frechet_distance(mu1, sigma1, mu2, sigma2, sqrt, ctx.options.mode)
    return fid_from_features(real, fake, sqrt, ctx.options.mode)


def folder_key(folder: Path, mode: str, image_size: int) -> str:
    """What a folder's features depend on: its files' names and bytes, the mode and the image size (an aligned
    layout rewrites its real halves into each evaluation's folder, so the path alone would not do)."""
    import hashlib

    digest = hashlib.sha256(f"{mode}|{image_size}".encode())
    for file in sorted(Path(folder).rglob("*")):
        if file.is_file():
            digest.update(file.relative_to(folder).as_posix().encode())
            digest.update(hashlib.sha256(file.read_bytes()).digest())
    return digest.hexdigest()


class FidMetric(FolderMetric):
    """Fréchet Inception distance, clean-fid's protocols (or StarGAN v2's with --mode stargan_v2)."""

    name = "fid"
    keys = ("fid",)
    min_images = 2
    needs = "FID and KID need"

    def compute(self, ctx: MetricContext) -> None:
        feats = _shared_features(ctx)
        sqrt = ctx.options.fid_sqrt
        if ctx.progress:
            ctx.progress(f"FID ({sqrt})", 0, 1)
        ctx.values["fid"] = _fid(ctx, feats)
        ctx.protocol.update({"fid_sqrt": {"method": sqrt, "formula": FID_SQRT_PROTOCOL[sqrt]}})


class KidMetric(FolderMetric):
    """Kernel Inception distance on the same features, seeded subsets as clean-fid draws them."""

    name = "kid"
    keys = ("kid_mean", "kid_std")
    min_images = 2
    needs = "FID and KID need"

    def compute(self, ctx: MetricContext) -> None:
        feats = _shared_features(ctx)
        options = ctx.options
        mean, std, m = kid_from_features(feats["real"], feats["fake"], options.kid_subsets, options.kid_subset_size,
                                         options.seed)
        ctx.values["kid_mean"], ctx.values["kid_std"] = mean, std
        ctx.protocol.kid = {"subsets": options.kid_subsets, "subset_size": m, "seed": options.seed,
                            "rng": "numpy.random.RandomState(seed); fake subset drawn before real, as clean-fid",
                            "kernel": "(x.y/d + 1)^3, d = feature size; unbiased MMD^2; std over subsets"}
        ctx.protocol.seeds["kid"] = options.seed

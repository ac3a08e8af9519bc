"""Record tests/golden/align_faces.pt: StarGAN v2's face alignment (core/wing.py, align mode) on a small photo.

Runs outside CI against a checkout (or an exported tree) of clovaai/stargan-v2 named by I2I_OFFICIAL_STARGAN_V2,
with OpenCV and scikit-image installed outside the project's environment, e.g.

    pip install --target /tmp/recenv opencv-python-headless scikit-image
    git -C <stargan-v2 clone> archive HEAD | tar -x -C /tmp/sg2
    PYTHONPATH=/tmp/recenv I2I_OFFICIAL_STARGAN_V2=/tmp/sg2 \\
    I2I_OFFICIAL_STARGAN_V2_COMMIT=875b70a150609e8a678ed8482562e7074cdce7e5 python tests/golden/record_align_faces.py

What runs is the reference's own code: `FaceAligner.align` (tensor2numpy255, pad_mirror, landmarks2mat with
points2T / landmarks2xaxis / vecs2R / landmarks2S, cv2.warpPerspective with INTER_LANCZOS4, np2tensor) and
core/utils.py's save_image, on the photo `photo()` resized to SIZE as its `align_faces` does (torchvision
Resize on the PIL image, ToTensor, Normalize). Its FAN is replaced by fixed landmarks (`source_landmarks()`), so
no wing.ckpt is needed; `get_preds_fromhm` is recorded separately on seeded heat maps (`heatmaps()`). Two
shims, recorded here because they touch the reference: scikit-image >= 0.19 spells `multichannel=True` as
`channel_axis=-1` (the same filter), and core/utils.py's unused `import ffmpeg` gets an empty module.
Only numbers are saved; SIZE is 100 so the blur has sigma 1 (SIZE // 100).
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import types
from pathlib import Path

import numpy as np
import torch

OUT = Path(__file__).resolve().parent / "align_faces.pt"
SIZE = 100
PHOTO_SHAPE = (90, 120)  # (H, W): not square and not SIZE, so the resize is part of the record


def photo() -> np.ndarray:
    """A deterministic uint8 (90, 120, 3) picture: smooth gradients, stripes, hard-edged blocks and noise (Lanczos
    ringing and the blur both have something to act on)."""
    rows, cols = np.mgrid[0:PHOTO_SHAPE[0], 0:PHOTO_SHAPE[1]].astype(np.float64)
    red = 128 + 100 * np.sin(cols / 9.0) * np.cos(rows / 13.0)
    green = 255 * rows / PHOTO_SHAPE[0]
    blue = np.where((rows // 15 + cols // 20) % 2 == 0, 220.0, 30.0)
    noise = np.random.default_rng(3).normal(0, 12, (*PHOTO_SHAPE, 3))
    return np.clip(np.stack([red, green, blue], axis=2) + noise, 0, 255).astype(np.uint8)


def mean_landmarks() -> np.ndarray:
    """(98, 2) float32 stand-in for celeba_lm_mean.npz's 'mean' (256 px): a face-like set, eyes and mouth placed."""
    rng = np.random.default_rng(5)
    points = np.stack([rng.uniform(60, 196, 98), rng.uniform(70, 220, 98)], axis=1)
    points[60:68] = np.array([92, 118]) + rng.normal(0, 6, (8, 2))
    points[68:76] = np.array([164, 118]) + rng.normal(0, 6, (8, 2))
    points[96], points[97] = (92, 118), (164, 118)
    points[76], points[82] = (100, 190), (156, 190)
    return points.astype(np.float32)


def source_landmarks() -> np.ndarray:
    """The face `mean_landmarks` turned by 14 degrees, scaled to 0.3 and moved, with noise, in SIZE px coords."""
    angle = np.deg2rad(14)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    points = (mean_landmarks() - 128) @ rotation.T * 0.3 + np.array([47, 55])
    return (points + np.random.default_rng(6).normal(0, 0.4, points.shape)).astype(np.float32)


def heatmaps() -> torch.Tensor:
    """(1, 8, 64, 64) seeded maps with planted peaks: inside, on each border, a tie with a neighbour."""
    maps = torch.rand(1, 8, 64, 64, generator=torch.Generator().manual_seed(11))
    for channel, (row, col) in enumerate([(10, 20), (0, 30), (63, 5), (40, 0), (22, 63), (1, 1), (62, 62), (31, 32)]):
        maps[0, channel, row, col] = 2.0
    maps[0, 7, 31, 33] = maps[0, 7, 31, 31]  # equal neighbours in x: no quarter-pixel move
    return maps


def _official(root: Path):
    import skimage.filters

    gaussian = skimage.filters.gaussian

    def old_gaussian(image, sigma, multichannel=False, **kwargs):
        return gaussian(image, sigma, channel_axis=-1 if multichannel else None, **kwargs)

    skimage.filters.gaussian = old_gaussian
    sys.modules.setdefault("ffmpeg", types.ModuleType("ffmpeg"))
    sys.path.insert(0, str(root))
    from core import utils, wing

    wing.gaussian = old_gaussian
    return wing, utils


def record() -> dict:
    from PIL import Image
    from torchvision import transforms

    root = Path(os.environ.get("I2I_OFFICIAL_STARGAN_V2") or sys.exit("set I2I_OFFICIAL_STARGAN_V2"))
    commit = os.environ.get("I2I_OFFICIAL_STARGAN_V2_COMMIT") or subprocess.run(
        ["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True, text=True, check=True).stdout.strip()
    wing, utils = _official(root)
    transform = transforms.Compose([transforms.Resize((SIZE, SIZE)), transforms.ToTensor(),
                                    transforms.Normalize(mean=[0.5] * 3, std=[0.5] * 3)])
    x = transform(Image.fromarray(photo())).unsqueeze(0)
    aligner = object.__new__(wing.FaceAligner)  # no FAN: fixed landmarks stand in for it
    aligner.device = torch.device("cpu")
    aligner.CELEB_REF = mean_landmarks() * np.float32(SIZE / 256)
    aligner.xaxis_ref = wing.landmarks2xaxis(aligner.CELEB_REF)
    aligner.output_size = SIZE
    aligner.fan = types.SimpleNamespace(get_landmark=lambda imgs: torch.from_numpy(source_landmarks())[None])
    pixels = wing.tensor2numpy255(x[0])
    padded, moved = wing.pad_mirror(pixels, source_landmarks())
    matrix = aligner.landmarks2mat(moved)
    warped = wing.cv2.warpPerspective(padded, matrix, (2 * SIZE, 2 * SIZE), flags=wing.cv2.INTER_LANCZOS4)[:SIZE, :SIZE]
    aligned = aligner.align(x.clone())
    with tempfile.TemporaryDirectory() as tmp:
        utils.save_image(aligned, 1, os.path.join(tmp, "aligned.png"))
        saved = np.asarray(Image.open(os.path.join(tmp, "aligned.png")).convert("RGB"))
    return {
        "official_repo": "clovaai/stargan-v2", "official_commit": commit, "size": SIZE,
        "resized": torch.from_numpy(pixels.copy()), "landmarks": torch.from_numpy(source_landmarks()),
        "reference": torch.from_numpy(aligner.CELEB_REF.copy()), "moved_landmarks": torch.from_numpy(moved.copy()),
        "matrix": torch.from_numpy(matrix), "padded_every_3rd": torch.from_numpy(padded[::3, ::3].astype(np.float32)),
        "warped_every_2nd": torch.from_numpy(warped[::2, ::2].astype(np.float32)),
        "saved": torch.from_numpy(saved.copy()),
        "preds_fromhm": wing.get_preds_fromhm(heatmaps()),
    }


if __name__ == "__main__":
    torch.save(record(), OUT)
    print(f"wrote {OUT} ({OUT.stat().st_size / 1024:.0f} KB)")

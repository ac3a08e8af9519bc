"""Single-image training data: CUT's "zoom_and_patch" sampling of one A image and one B image.

Each item zooms each image by its own random factors per side (in [1 / random_scale_max, 1], never below the
crop), lays a grid of crop-sized cells over it at a random offset, takes the cell of the item's patch index and
flips it at random; A's patch index is the item's index and B's a fixed permutation of it, so the items of a
batch (distinct indices within an epoch) come from distinct places, as the reference's shuffled patch indices
arrange for PatchNCE's negatives. The images keep their own size (the reference never resizes them to its
load_size); each is decoded once. Every draw comes from the item's seed: a resumed run sees the same crops.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from i2i_cli.data.images import load_image
from i2i_cli.errors import BadImageError, DataError

CROPS_PER_EPOCH = 100_000  # the reference's dataset length ("pretend the image contains 100,000 crops")
_B_STRIDE = 7919  # a prime coprime with CROPS_PER_EPOCH: index * stride mod N permutes the indices


def zoom_and_patch(image: Image.Image, crop: int, patch_index: int, zoom: tuple[float, float], offset: tuple[float, float],
                   flip: bool) -> np.ndarray:
    """One crop of `image`: zoomed by `zoom` (w, h; at least `crop` px each side, bilinear), the grid cell
    `patch_index` of crop-sized cells starting at `offset` (fractions of the spare room), flipped."""
    w, h = image.size
    zoomed = image.resize((int(round(max(crop, w * zoom[0]))), int(round(max(crop, h * zoom[1])))), Image.BILINEAR)
    w, h = zoomed.size
    nw, nh = w // crop, h // crop
    start_x = int(offset[0] * (w - nw * crop + 1))
    start_y = int(offset[1] * (h - nh * crop + 1))
    cell = patch_index % (nw * nh)
    x, y = start_x + (cell // nh) * crop, start_y + (cell % nh) * crop
    array = np.asarray(zoomed.crop((x, y, x + crop, y + crop)))
    return np.ascontiguousarray(array[:, ::-1] if flip else array)


class ZoomPatchDataset(Dataset):
    """Items {"A", "B"}: uint8 (3, size, size) crops of the split's single A and B images, by (index, seed)."""

    device_cacheable = False  # crops are cut from full-size images on the CPU (two images: nothing to cache)

    def __init__(self, files: dict[str, Path], size: int, flip: bool = True, scale_max: float = 3.0,
                 direction: str = "AtoB") -> None:
        self.files = dict(zip(("A", "B"), (files["B"], files["A"]))) if direction == "BtoA" else dict(files)
        self.size, self.flip, self.scale_max = size, flip, scale_max
        self._images: dict[str, Image.Image] = {}
        for side in ("A", "B"):  # decoded now: an unreadable image stops the run before any work
            self._image(side)

    def _image(self, side: str) -> Image.Image:
        if side not in self._images:
            try:
                self._images[side] = Image.fromarray(load_image(self.files[side]))
            except BadImageError as exc:
                raise DataError(f"{exc.path}: {exc.reason}; single-image training needs this image readable "
                                "(replace it)") from exc
        return self._images[side]

    def __len__(self) -> int:
        return CROPS_PER_EPOCH

    def _crop(self, side: str, patch_index: int, rng: torch.Generator) -> torch.Tensor:
        u = torch.rand(5, generator=rng, dtype=torch.float64).tolist()
        low = 1 / self.scale_max
        zoom = (low + (1 - low) * u[0], low + (1 - low) * u[1])
        array = zoom_and_patch(self._image(side), self.size, patch_index, zoom, (u[2], u[3]), self.flip and u[4] < 0.5)
        return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()

    def __getitem__(self, key: tuple[int, int]) -> dict[str, Any]:
        index, seed = key
        rng = torch.Generator().manual_seed(seed)
        return {"A": self._crop("A", index, rng), "B": self._crop("B", index * _B_STRIDE % CROPS_PER_EPOCH, rng),
                "bad": []}

"""aligned (pix2pix): DIR/{train,val,test}/*.png, each image A | B side by side.

It also serves unpaired training (left halves are A, right halves B, paired at random) and a segmenter
(photo | label map files)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from i2i_cli.data.datasets import AlignedDataset, UnalignedDataset
from i2i_cli.data.images import list_images, load_image, save_image, split_halves
from i2i_cli.data.layouts.base import ImageKeys, Layout, split_folders
from i2i_cli.data.segmentation import SegmentationDataset, prepare_segmenter_config
from i2i_cli.errors import DataError
from i2i_cli.models.base import SegmentationData


class AlignedLayout(Layout):
    name = "aligned"
    example = "train/ with A|B side-by-side images"
    paired = True
    side_by_side = True

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        aligned, _ = split_folders(root)
        return cls(root, aligned) if aligned else None

    def sides(self, split: str) -> tuple[ImageKeys, ImageKeys]:
        files = self.groups(split)["AB"]
        return [(p, "left") for p in files], [(p, "right") for p in files]

    def training_dataset(self, batches: str, split: str, augment: Any, *, direction: str = "AtoB",
                         domains: list[str] | None = None, cache: bool = True,
                         segmentation: SegmentationData | None = None) -> Any:
        if batches == "segmentation":
            return SegmentationDataset(self, split, augment, segmentation or SegmentationData(), cache=cache)
        if batches == "unaligned":
            return UnalignedDataset(self, split, augment, direction=direction, cache=cache)
        if batches == "aligned":
            return AlignedDataset(self, split, augment, direction=direction, cache=cache)
        return super().training_dataset(batches, split, augment, direction=direction, domains=domains, cache=cache,
                                        segmentation=segmentation)

    def prepare(self, config: Any) -> Any:
        return prepare_segmenter_config(config, self)

    def evaluation_inputs(self, work: Path, direction: str) -> tuple[Path, Path, bool]:
        """The test (else val) split's halves written to work/inputs and work/real, the source side as input."""
        split = "test" if "test" in self.splits else "val" if "val" in self.splits else None
        if split is None:
            raise DataError(f"{self.root}: no test/ or val/ split to evaluate on")
        for file in list_images(self.root / split):
            a, b = split_halves(load_image(file))
            if direction == "BtoA":
                a, b = b, a
            save_image(np.ascontiguousarray(a), work / "inputs" / f"{file.stem}.png", overwrite=True)
            save_image(np.ascontiguousarray(b), work / "real" / f"{file.stem}.png", overwrite=True)
        return work / "inputs", work / "real", True

    def source_part(self, array: np.ndarray, run_direction: str) -> np.ndarray:
        left, right = split_halves(array)
        return right if run_direction == "BtoA" else left

"""unaligned (CycleGAN): DIR/{trainA,trainB,testA,testB}/*, the two domains' images unpaired."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i2i_cli.data.datasets import UnalignedDataset
from i2i_cli.data.images import list_images
from i2i_cli.data.layouts.base import SPLITS, Layout
from i2i_cli.errors import DataError
from i2i_cli.models.base import SegmentationData


class UnalignedLayout(Layout):
    name = "unaligned"
    example = "trainA/ and trainB/"

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        splits = {}
        for split in SPLITS:
            a, b = root / f"{split}A", root / f"{split}B"
            if a.is_dir() or b.is_dir():
                splits[split] = {"A": list_images(a) if a.is_dir() else [], "B": list_images(b) if b.is_dir() else []}
        return cls(root, splits) if splits else None

    def group_folder(self, split: str, group: str) -> Path:
        return self.root / f"{split}{group}"

    def training_dataset(self, batches: str, split: str, augment: Any, *, direction: str = "AtoB",
                         domains: list[str] | None = None, cache: bool = True,
                         segmentation: SegmentationData | None = None) -> Any:
        if batches == "unaligned":
            return UnalignedDataset(self, split, augment, direction=direction, cache=cache)
        return super().training_dataset(batches, split, augment, direction=direction, domains=domains, cache=cache,
                                        segmentation=segmentation)

    def evaluation_inputs(self, work: Path, direction: str) -> tuple[Path, Path, bool]:
        """The source domain's test images translated, the target domain's as the real ones (no pairs)."""
        src, tgt = ("testA", "testB") if direction == "AtoB" else ("testB", "testA")
        if not (self.root / src).is_dir() or not (self.root / tgt).is_dir():
            raise DataError(f"{self.root}: needs {src}/ and {tgt}/ to evaluate")
        return self.root / src, self.root / tgt, False

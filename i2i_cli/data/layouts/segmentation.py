"""segmentation (the segmenter): DIR/{images,labels}/ or DIR/{train,val}/{images,labels}/, each photo and its
label map matched by file name (an aligned photo | label dataset serves a segmenter too: aligned.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i2i_cli.data.images import list_images
from i2i_cli.data.labels import match_labels
from i2i_cli.data.layouts.base import SPLITS, Layout
from i2i_cli.data.segmentation import SegmentationDataset, prepare_segmenter_config
from i2i_cli.models.base import SegmentationData

FOLDERS = ("images", "labels")


class SegmentationLayout(Layout):
    name = "segmentation"
    example = "images/ and labels/ (optionally under train/), or train/ with photo | label images"
    paired = True

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        """DIR/images + DIR/labels (the split "train") or DIR/<split>/images + DIR/<split>/labels."""
        def pair(base: Path) -> dict[str, list[Path]] | None:
            if all((base / name).is_dir() for name in FOLDERS):
                return {name: list_images(base / name) for name in FOLDERS}
            return None

        top = pair(root)
        splits = {"train": top} if top is not None else {
            split: groups for split in SPLITS if (groups := pair(root / split)) is not None}
        return cls(root, splits) if splits else None

    def split_root(self, split: str) -> Path:
        """The folder holding `split`'s images/ and labels/ (the root itself for DIR/images + DIR/labels)."""
        return self.root / split if (self.root / split).is_dir() else self.root

    def training_dataset(self, batches: str, split: str, augment: Any, *, direction: str = "AtoB",
                         domains: list[str] | None = None, cache: bool = True,
                         segmentation: SegmentationData | None = None) -> Any:
        if batches == "segmentation":
            return SegmentationDataset(self, split, augment, segmentation or SegmentationData(), cache=cache)
        return super().training_dataset(batches, split, augment, direction=direction, domains=domains, cache=cache,
                                        segmentation=segmentation)

    def prepare(self, config: Any) -> Any:
        return prepare_segmenter_config(config, self)

    check_heading = "photo(s) without a label map"
    check_fix = "add the label maps (same names under labels/) or remove those photos: training refuses them"

    def check(self) -> list[tuple[str, str]]:
        """Every photo without a label map of the same name."""
        unmatched: list[tuple[str, str]] = []
        for split in self.splits:
            base = self.split_root(split)
            unmatched += match_labels(base / "images", base / "labels")[1]
        return unmatched

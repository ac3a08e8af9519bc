"""single_image (SinCUT, SinSeSim): DIR/trainA/ and DIR/trainB/ holding one image each (any size), optional
testA/ testB/; trained on with CUT's zoom-and-patch crops (zoom_patch.py). Detected before `unaligned`, whose
methods it still serves (a one-image unaligned set is the same folders)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from i2i_cli.data.layouts.base import Layout
from i2i_cli.data.layouts.unaligned import UnalignedLayout
from i2i_cli.data.zoom_patch import ZoomPatchDataset
from i2i_cli.models.base import SegmentationData


class SingleImageLayout(UnalignedLayout):
    name = "single_image"
    example = "trainA/ and trainB/ holding one image each"
    serves: ClassVar[tuple[str, ...]] = ("unaligned",)

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        found = super().detect(root)
        if found is None or "train" not in found.splits:
            return None
        train = found.splits["train"]
        return cls(root, found.splits) if len(train["A"]) == 1 and len(train["B"]) == 1 else None

    def training_dataset(self, batches: str, split: str, augment: Any, *, direction: str = "AtoB",
                         domains: list[str] | None = None, cache: bool = True,
                         segmentation: SegmentationData | None = None) -> Any:
        if batches == "single_image":
            groups = self.groups(split)
            return ZoomPatchDataset({"A": groups["A"][0], "B": groups["B"][0]}, augment.size, augment.flip,
                                    augment.random_zoom or 3.0, direction)
        return super().training_dataset(batches, split, augment, direction=direction, domains=domains, cache=cache,
                                        segmentation=segmentation)

"""Building a layout's training set and filling in what only the files can say: the one place that knows
which dataset class serves which kind of data (image translation sets in datasets.py, segmentation in
segmentation.py)."""

from __future__ import annotations

from typing import Any

from i2i_cli.data.datasets import DATASETS, Augment
from i2i_cli.data.layouts import Layout
from i2i_cli.data.segmentation import SegmentationDataset, resolve_normalization, resolve_palette


def build_dataset(layout: Layout, wanted: str, split: str, spec: Augment, *, direction: str = "AtoB",
                  domains: list[str] | None = None, cache: bool = True, extra: dict[str, Any] | None = None) -> Any:
    if wanted == "segmentation":
        return SegmentationDataset(layout, split, spec, extra or {}, cache=cache)
    cls = DATASETS[wanted]
    if wanted == "domains":
        return cls(layout, split, spec, domains=domains or layout.domains(), cache=cache)  # type: ignore[call-arg]
    return cls(layout, split, spec, direction=direction, cache=cache)  # type: ignore[call-arg]


def prepare_config(config: Any, layout: Layout, wanted: str) -> Any:
    """The method config with what only the files can say filled in: a segmenter's palette colours and its
    input mean / std (the dataset's info.json, or measured on its training photos)."""
    if wanted == "segmentation":
        return resolve_normalization(resolve_palette(config), layout)
    return config

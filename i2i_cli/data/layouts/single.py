"""single: DIR/* images (recursively), no splits: what `translate` takes; nothing trains on it."""

from __future__ import annotations

from pathlib import Path

from i2i_cli.data.images import list_images
from i2i_cli.data.layouts.base import Layout


class SingleLayout(Layout):
    name = "single"
    example = "a folder of images"

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        images = list_images(root)
        return cls(root, {"all": {"images": images}}) if images else None

"""Dataset layouts: which one a folder has, and what it gives training, evaluation, export and `i2i data check`.

- aligned    (pix2pix):     DIR/{train,val,test}/*.png, each image A | B side by side
- single_image (SinCUT):    DIR/{trainA,trainB}/ with one image each (+ optional testA/ testB/); serves unaligned
- unaligned  (CycleGAN):    DIR/{trainA,trainB,testA,testB}/*
- domains    (StarGAN v2):  DIR/{train,val}/<domain>/*  (two or more domain folders)
- segmentation (segmenter): DIR/{images,labels}/ or DIR/{train,val}/{images,labels}/, photo and label map
                            matched by file name (an aligned photo | label dataset works too)
- single:                   DIR/* images (inference only)

Each is one class in its own module (base.py: the contract). Adding a layout = one module + one line in
LAYOUTS, whose order is the detection order: the first class whose `detect` recognises a folder wins.
"""

from __future__ import annotations

from pathlib import Path

from i2i_cli.data.layouts.aligned import AlignedLayout
from i2i_cli.data.layouts.base import SPLITS, Layout
from i2i_cli.data.layouts.domains import DomainsLayout
from i2i_cli.data.layouts.segmentation import SegmentationLayout
from i2i_cli.data.layouts.single import SingleLayout
from i2i_cli.data.layouts.single_image import SingleImageLayout
from i2i_cli.data.layouts.unaligned import UnalignedLayout
from i2i_cli.errors import DataError

__all__ = ["LAYOUTS", "PAIRED_LAYOUTS", "SPLITS", "AlignedLayout", "DomainsLayout", "Layout", "SegmentationLayout",
           "SingleImageLayout", "SingleLayout", "UnalignedLayout", "detect_layout", "require_layout"]

# name -> class, in detection order: photos + labels before anything else (their train/ would look aligned),
# trainA/ before train/, a bare folder of images last.
LAYOUTS: dict[str, type[Layout]] = {
    "segmentation": SegmentationLayout,
    "single_image": SingleImageLayout,
    "unaligned": UnalignedLayout,
    "aligned": AlignedLayout,
    "domains": DomainsLayout,
    "single": SingleLayout,
}

PAIRED_LAYOUTS = frozenset(name for name, cls in LAYOUTS.items() if cls.paired)


def detect_layout(root: str | Path) -> Layout:
    """Which layout `root` has; raises DataError naming the folder and the layouts it could have."""
    folder = Path(root)
    if not folder.exists():
        raise DataError(f"{folder}: no such folder; pass --data DIR (or create one with `i2i data synth`)")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file, not a dataset folder; pass the folder that holds the images")
    for cls in LAYOUTS.values():
        layout = cls.detect(folder)
        if layout is not None:
            return layout
    raise DataError(
        f"{folder}: no images in a known layout; expected train/ (aligned A|B), trainA/ trainB/ (unaligned) or "
        "train/<domain>/ (domains). `i2i data synth` writes examples of each"
    )


def require_layout(layout: Layout, accepts: tuple[str, ...], method: str, split: str = "train") -> None:
    """Refuse a dataset whose layout a method cannot train on (`accepts`: the method's, its own layout first),
    saying what it needs."""
    if layout.kind not in accepts and not set(layout.serves) & set(accepts):
        wanted = accepts[0]
        example = LAYOUTS[wanted].example if wanted in LAYOUTS else wanted
        raise DataError(f"{layout.root}: is a {layout.kind} dataset but {method} trains on {wanted} data ({example})")
    groups = layout.groups(split)
    untrained = layout.untrained_groups()
    if untrained:
        folder, problem = untrained[0]
        more = f" (and {len(untrained) - 1} more, see `i2i data check {layout.root}`)" if len(untrained) > 1 else ""
        raise DataError(f"{folder}: {problem}{more}")
    empty = [g for g, files in groups.items() if not files]
    if empty or not groups:
        raise DataError(f"{layout.root}: the {split} split has no images in {', '.join(empty) or split}; add images")

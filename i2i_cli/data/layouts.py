"""Dataset layouts: detect which one a folder has and list its images per split.

- aligned    (pix2pix):     DIR/{train,val,test}/*.png, each image A | B side by side
- unaligned  (CycleGAN):    DIR/{trainA,trainB,testA,testB}/*
- domains    (StarGAN v2):  DIR/{train,val}/<domain>/*  (two or more domain folders)
- segmentation (segmenter): DIR/{images,labels}/ or DIR/{train,val}/{images,labels}/, photo and label map
                            matched by file name (an aligned photo | label dataset works too)
- single:                   DIR/* images (inference only)
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from i2i_cli.data.images import is_image_file, list_images
from i2i_cli.errors import DataError

# Layouts where each input file has its own ground-truth output (A|B halves; a photo and its label map): only
# there do paired metrics (LPIPS to the ground truth) mean anything. Unaligned test folders may share file
# names by accident; that makes no pair.
PAIRED_LAYOUTS = frozenset({"aligned", "segmentation"})
SPLITS = ("train", "val", "test")


@dataclass
class Layout:
    kind: str
    root: Path
    # split -> group -> files. aligned: {"train": {"AB": [...]}}; unaligned: {"train": {"A": [...], "B": [...]}};
    # domains: {"train": {"cat": [...], "dog": [...]}}; single: {"all": {"images": [...]}}
    splits: dict[str, dict[str, list[Path]]] = field(default_factory=dict)

    @property
    def paired(self) -> bool:
        """Each input has its own ground truth (aligned, segmentation); unaligned, domains, single: not."""
        return self.kind in PAIRED_LAYOUTS

    def groups(self, split: str) -> dict[str, list[Path]]:
        if split not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DataError(f"{self.root}: no '{split}' split in this {self.kind} dataset (it has: {have})")
        return self.splits[split]

    def domains(self) -> list[str]:
        if self.kind == "domains":
            names: set[str] = set()
            for groups in self.splits.values():
                names.update(groups)
            return sorted(names)
        return ["A", "B"]

    def counts(self) -> dict[str, dict[str, int]]:
        return {split: {g: len(files) for g, files in groups.items()} for split, groups in self.splits.items()}


def _direct_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p)) if folder.is_dir() else []


def _subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


def detect_layout(root: str | Path) -> Layout:
    """Which layout `root` has; raises DataError naming the folder and the layouts it could have."""
    folder = Path(root)
    if not folder.exists():
        raise DataError(f"{folder}: no such folder; pass --data DIR (or create one with `i2i data synth`)")
    if not folder.is_dir():
        raise DataError(f"{folder}: is a file, not a dataset folder; pass the folder that holds the images")
    segmentation = _segmentation_splits(folder)
    if segmentation:
        return Layout("segmentation", folder, segmentation)
    unaligned = {}
    for split in SPLITS:
        a, b = folder / f"{split}A", folder / f"{split}B"
        if a.is_dir() or b.is_dir():
            unaligned[split] = {"A": list_images(a) if a.is_dir() else [], "B": list_images(b) if b.is_dir() else []}
    if unaligned:
        return _checked(Layout("unaligned", folder, unaligned))
    aligned, domains = {}, {}
    for split in SPLITS:
        sub = folder / split
        direct = _direct_images(sub)
        if direct:
            aligned[split] = {"AB": direct}
            continue
        dirs = [d for d in _subdirs(sub) if list_images(d)]
        if dirs:
            domains[split] = {d.name: list_images(d) for d in dirs}
    if aligned and not domains:
        return _checked(Layout("aligned", folder, aligned))
    if domains and not aligned:
        return _checked(Layout("domains", folder, domains))
    if aligned and domains:
        raise DataError(
            f"{folder}: mixes aligned splits ({', '.join(aligned)}) with domain folders ({', '.join(domains)}); "
            "keep one layout per dataset (see `i2i data check --help`)"
        )
    images = list_images(folder)
    if images:
        return Layout("single", folder, {"all": {"images": images}})
    raise DataError(
        f"{folder}: no images in a known layout; expected train/ (aligned A|B), trainA/ trainB/ (unaligned) or "
        "train/<domain>/ (domains). `i2i data synth` writes examples of each"
    )


SEGMENTATION_FOLDERS = ("images", "labels")


def _segmentation_splits(folder: Path) -> dict[str, dict[str, list[Path]]]:
    """{split: {"images": [...], "labels": [...]}} for DIR/images + DIR/labels (the split "train") or
    DIR/<split>/images + DIR/<split>/labels; empty when the folder has neither."""
    def pair(base: Path) -> dict[str, list[Path]] | None:
        if all((base / name).is_dir() for name in SEGMENTATION_FOLDERS):
            return {name: list_images(base / name) for name in SEGMENTATION_FOLDERS}
        return None

    top = pair(folder)
    if top is not None:
        return {"train": top}
    return {split: groups for split in SPLITS if (groups := pair(folder / split)) is not None}


def _checked(layout: Layout) -> Layout:
    if layout.kind == "domains":
        for split, groups in layout.splits.items():
            if split == "train" and len(groups) < 2:
                raise DataError(
                    f"{layout.root}/train: a multi-domain dataset needs two or more domain folders with images; "
                    f"found {', '.join(groups) or 'none'}"
                )
    return layout


def require_layout(layout: Layout, wanted: str, method: str, split: str = "train") -> None:
    """Refuse a dataset whose layout a method cannot train on, saying what it needs."""
    compatible = {"aligned": ("aligned",), "unaligned": ("unaligned", "aligned"), "domains": ("domains",),
                  "segmentation": ("segmentation", "aligned")}
    if layout.kind not in compatible.get(wanted, (wanted,)):
        examples = {
            "aligned": "train/ with A|B side-by-side images",
            "unaligned": "trainA/ and trainB/",
            "domains": "train/<domain>/ for two or more domains",
            "segmentation": "images/ and labels/ (optionally under train/), or train/ with photo | label images",
        }
        raise DataError(
            f"{layout.root}: is a {layout.kind} dataset but {method} trains on {wanted} data "
            f"({examples.get(wanted, wanted)})"
        )
    groups = layout.groups(split)
    empty = [g for g, files in groups.items() if not files]
    if empty or not groups:
        raise DataError(f"{layout.root}: the {split} split has no images in {', '.join(empty) or split}; add images")

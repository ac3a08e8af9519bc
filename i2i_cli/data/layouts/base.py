"""The contract of a dataset layout: how a folder is recognised, what its splits hold, and what it gives
training (`training_dataset`), evaluation (`evaluation_inputs`), export (`parity_source`) and `i2i data check`.

This module imports no dataset class: datasets.py and segmentation.py name `Layout` in their annotations, and
the layouts that build them (aligned.py, ...) import those modules, so the import graph stays one way.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from i2i_cli.data.images import is_image_file, list_images, load_image
from i2i_cli.errors import BadImageError, DataError
from i2i_cli.models.base import SegmentationData

SPLITS = ("train", "val", "test")
PARITY_TRIES = 8  # files tried for a real export input: an unreadable image must not fail the export

ImageKeys = list[tuple[Path, str]]  # (file, "whole" | "left" | "right"), as datasets.ImageKey


@dataclass
class Layout(ABC):
    """A detected dataset: `root` and split -> group -> files.

    aligned: {"train": {"AB": [...]}}; unaligned: {"train": {"A": [...], "B": [...]}}; domains:
    {"train": {"cat": [...], "dog": [...]}}; segmentation: {"train": {"images": [...], "labels": [...]}};
    single: {"all": {"images": [...]}}. A subclass sets the class variables and `detect`, and overrides what
    its files can serve."""

    root: Path
    splits: dict[str, dict[str, list[Path]]] = field(default_factory=dict)

    name: ClassVar[str] = ""  # the layout's name in messages and JSON ("layout": "aligned")
    example: ClassVar[str] = ""  # what such a folder looks like, for messages
    # Each input file has its own ground-truth output (A|B halves; a photo and its label map): only there do
    # paired metrics (LPIPS to the ground truth) mean anything. Unaligned test folders may share file names by
    # accident; that makes no pair.
    paired: ClassVar[bool] = False
    side_by_side: ClassVar[bool] = False  # each file holds two images, left | right
    multi_domain: ClassVar[bool] = False  # groups are domains (listed by `i2i data check`)
    serves: ClassVar[tuple[str, ...]] = ()  # other layouts whose methods it also trains (it gives their batches)
    # How `i2i data check` names what check() finds, and what to do about it.
    check_heading: ClassVar[str] = "file(s) this layout cannot use"
    check_fix: ClassVar[str] = "fix or remove those files: training refuses them"

    @classmethod
    @abstractmethod
    def detect(cls, root: Path) -> Layout | None:
        """This layout of the existing folder `root`, or None when `root` does not have it; raises DataError when
        it has it but wrongly (e.g. one domain folder)."""

    @property
    def kind(self) -> str:
        return self.name

    def groups(self, split: str) -> dict[str, list[Path]]:
        if split not in self.splits:
            have = ", ".join(self.splits) or "none"
            raise DataError(f"{self.root}: no '{split}' split in this {self.kind} dataset (it has: {have})")
        return self.splits[split]

    def domains(self) -> list[str]:
        return ["A", "B"]

    def counts(self) -> dict[str, dict[str, int]]:
        return {split: {g: len(files) for g, files in groups.items()} for split, groups in self.splits.items()}

    def group_folder(self, split: str, group: str) -> Path:
        """Where a split's group lives (DIR/train/cat; unaligned: DIR/trainA)."""
        return self.root / split / group

    def untrained_groups(self) -> list[tuple[str, str]]:
        """(folder, problem) of each group (domain, side) with images in another split but none to train on
        (train/rare/ empty, val/rare/ full): training would learn it from nothing. Used by `data check`, train
        and eval alike."""
        train = self.splits.get("train")
        if train is None:
            return []
        elsewhere: dict[str, list[str]] = {}
        for split, groups in self.splits.items():
            for group, files in groups.items():
                if split != "train" and files and not train.get(group):
                    elsewhere.setdefault(group, []).append(f"{split} has {len(files)}")
        return [(str(self.group_folder("train", group)), f"no training images ({', '.join(where)}); add training images "
                 "there or remove the group's folders") for group, where in sorted(elsewhere.items())]

    def fingerprint(self) -> str:
        """The dataset's identity for --resume: a digest of every file's split, group and name (a moved folder
        keeps it; another dataset, an added or a renamed file changes it)."""
        import hashlib

        names = sorted(f"{split}/{group}/{path.relative_to(self.root).as_posix()}"
                       for split, groups in self.splits.items() for group, files in groups.items() for path in files)
        return hashlib.sha256("\n".join(names).encode()).hexdigest()[:16]

    def sides(self, split: str) -> tuple[ImageKeys, ImageKeys]:
        """The A and B images of `split` for unpaired training (groups "A" and "B", whole files)."""
        groups = self.groups(split)
        return [(p, "whole") for p in groups["A"]], [(p, "whole") for p in groups["B"]]

    # --- what the application asks --------------------------------------------------------------------------
    def training_dataset(self, batches: str, split: str, augment: Any, *, direction: str = "AtoB",
                         domains: list[str] | None = None, cache: bool = True,
                         segmentation: SegmentationData | None = None) -> Any:
        """The training set of `split` giving the batches of a method whose own layout is `batches` (its
        `accepts[0]`); `augment` is a datasets.Augment."""
        raise DataError(f"{self.root}: a {self.kind} dataset cannot give {batches} training data")

    def prepare(self, config: Any) -> Any:
        """The method config with what only the files can say filled in (a segmenter's palette, mean / std)."""
        return config

    def evaluation_inputs(self, work: Path, direction: str) -> tuple[Path, Path, bool]:
        """(inputs, real, paired) folders to translate and compare a run's test split with; files it makes for
        that go under `work`."""
        raise DataError(f"{self.root}: a {self.kind} dataset; pass --data with a test split")

    def parity_source(self, direction: str, run_direction: str) -> np.ndarray | None:
        """A real source image (H, W, 3) for an export's parity check: the source side of `direction` (the
        export's, relative to `run_direction`, the trained one); None when none is readable."""
        split = next((s for s in ("train", "test", "val") if s in self.splits), next(iter(self.splits), None))
        if split is None:
            return None
        groups = self.groups(split)
        files = groups.get("B" if direction == "BtoA" else "A") or next(iter(groups.values()), [])
        for file in files[:PARITY_TRIES]:
            try:
                return self.source_part(load_image(file), run_direction)
            except BadImageError:
                continue
        return None

    def source_part(self, array: np.ndarray, run_direction: str) -> np.ndarray:
        """The source image inside a file of this layout (the whole file unless it holds a pair)."""
        return array

    def check(self) -> list[tuple[str, str]]:
        """(file, problem) of files that decode but cannot be used (e.g. a photo without its label map)."""
        return []


def direct_images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file() and is_image_file(p)) if folder.is_dir() else []


def subdirs(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")) if folder.is_dir() else []


def split_folders(folder: Path) -> tuple[dict[str, dict[str, list[Path]]], dict[str, dict[str, list[Path]]]]:
    """(aligned, domains): the splits of DIR/<split>/ holding images directly (A|B files), and those holding
    folders of images (domains). A folder with both kinds of split is refused: one layout per dataset."""
    aligned, domains = {}, {}
    for split in SPLITS:
        sub = folder / split
        direct = direct_images(sub)
        if direct:
            aligned[split] = {"AB": direct}
            continue
        dirs = [d for d in subdirs(sub) if list_images(d)]
        if dirs:
            domains[split] = {d.name: list_images(d) for d in dirs}
    if aligned and domains:
        raise DataError(
            f"{folder}: mixes aligned splits ({', '.join(aligned)}) with domain folders ({', '.join(domains)}); "
            "keep one layout per dataset (see `i2i data check --help`)"
        )
    return aligned, domains

"""The standard datasets: where they come from, how they are laid out, and a verified, safe download."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from i2i_cli.archive import extract
from i2i_cli.download import download, sha256_file
from i2i_cli.errors import I2IError
from i2i_cli.fsutil import atomic_write_json

PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{}.tar.gz"
CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip"


@dataclass(frozen=True)
class DatasetEntry:
    name: str
    url: str
    layout: str
    licence: str
    manual: str = ""  # when set, the dataset cannot be downloaded by a script: these are the steps


DATASETS: dict[str, DatasetEntry] = {}
for _name in ("facades", "maps", "edges2shoes", "edges2handbags", "night2day"):
    DATASETS[_name] = DatasetEntry(_name, PIX2PIX.format(_name), "aligned", "see the pix2pix datasets page")
for _name in ("apple2orange", "summer2winter_yosemite", "horse2zebra", "monet2photo", "cezanne2photo",
              "ukiyoe2photo", "vangogh2photo", "iphone2dslr_flower", "ae_photos"):
    DATASETS[_name] = DatasetEntry(_name, CYCLEGAN.format(_name), "unaligned", "ImageNet / Flickr terms (CycleGAN)")
DATASETS["afhq"] = DatasetEntry("afhq", "https://www.dropbox.com/s/t9l9o3vsx2jai3z/afhq.zip?dl=1", "domains",
                                "CC BY-NC 4.0 (AFHQ)")
DATASETS["cityscapes"] = DatasetEntry(
    "cityscapes", "https://www.cityscapes-dataset.com", "aligned", "Cityscapes terms (registration required)",
    manual=("Cityscapes needs an account: download gtFine_trainvaltest.zip and leftImg8bit_trainvaltest.zip from "
            "https://www.cityscapes-dataset.com/downloads/ and build the A|B pairs as the pix2pix repository's "
            "datasets/prepare_cityscapes_dataset.py describes (labels resized to 256x256, photos likewise)"))


@dataclass
class DownloadedDataset:
    name: str
    root: Path
    sha256: str
    layout: str


def entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise I2IError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))}")
    return DATASETS[name]


def _flatten_single_folder(folder: Path) -> None:
    """Archives hold one top-level folder (e.g. horse2zebra/): lift its contents up."""
    children = [c for c in folder.iterdir() if not c.name.startswith((".", "__MACOSX"))]
    if len(children) == 1 and children[0].is_dir():
        inner = children[0]
        for item in inner.iterdir():
            shutil.move(str(item), folder / item.name)
        inner.rmdir()


def download_dataset(name: str, root: str | os.PathLike[str] = "datasets", *, url: str | None = None,
                     progress: Callable[[int, int | None], None] | None = None) -> DownloadedDataset:
    """Download (resumable), record the archive's sha256 (none is published), extract safely, lay out."""
    e = entry(name)
    if e.manual:
        raise I2IError(f"{name}: {e.manual}")
    base = Path(root)
    target = base / name
    if target.exists():
        raise I2IError(f"{target} already exists; remove it or pass another --root")
    suffix = ".tar.gz" if ".tar.gz" in e.url else ".zip"
    archive = base / f"{name}{suffix}"
    if not archive.exists():
        download(url or e.url, archive, progress=progress,
                 offline_hint=f"download it by hand from {e.url} and place it at {archive}, then run this again")
    digest = sha256_file(archive)
    extract(archive, target)
    _flatten_single_folder(target)
    atomic_write_json(target / ".i2i-source.json", {"name": name, "url": url or e.url, "archive_sha256": digest,
                                                    "layout": e.layout, "licence": e.licence})
    archive.unlink()
    return DownloadedDataset(name, target, digest, e.layout)


def read_source(folder: Path) -> dict[str, str]:
    return json.loads((folder / ".i2i-source.json").read_text())

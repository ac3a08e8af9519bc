"""The standard datasets: where they come from, how they are laid out, and a resumable, safe download.

No checksums are published for these archives (and none could be pinned here: the archives were never
downloaded while writing this), so the sha256 of what was downloaded is recorded next to the data
(ROOT/NAME/.i2i-source.json) for provenance; `sha256` pins one where it is known, and then a download that
differs is refused. The primary URL is tried first over https, then as published (the Berkeley hosts are
listed with http), then the mirror, each with retries and backoff (i2i_cli/download.py). The archive is extracted into a temporary folder, laid out
there (a single top-level folder lifted, macOS metadata dropped) and only then renamed to ROOT/NAME, so
`i2i train --data ROOT/NAME` takes it directly and an interrupted run never leaves a half-made dataset.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

from i2i_cli.archive import extract
from i2i_cli.download import NoticeFn, download_first, sha256_file
from i2i_cli.errors import DataError, I2IError
from i2i_cli.fsutil import atomic_write_json

SOURCE_FILE = ".i2i-source.json"
PIX2PIX = "http://efrosgans.eecs.berkeley.edu/pix2pix/datasets/{}.tar.gz"
CYCLEGAN = "http://efrosgans.eecs.berkeley.edu/cyclegan/datasets/{}.zip"
CYCLEGAN_MIRROR = "https://people.eecs.berkeley.edu/~taesung_park/CycleGAN/datasets/{}.zip"
JZ_LICENCE = "research use (per source)"
ProgressFn = Callable[[int, int | None], None]


@dataclass(frozen=True)
class DatasetEntry:
    name: str  # also the folder name under --root
    url: str
    layout: str  # aligned | unaligned | domains: what i2i_cli.data.layouts will detect
    licence: str
    paper: str
    mirror: str = ""
    manual: str = ""  # when set, the dataset cannot be downloaded by a script: these are the steps
    sha256: str = ""  # the archive's pinned digest, where it is known (none is published for these)

    def urls(self) -> list[str]:
        """Where to fetch it, in order: https first where the URL is http, the URL itself, the mirror."""
        return candidate_urls(self.url) + ([self.mirror] if self.mirror else [])


def candidate_urls(url: str) -> list[str]:
    if url.startswith("http://"):
        return ["https://" + url[len("http://"):], url]
    return [url]


def _build_registry() -> dict[str, DatasetEntry]:
    entries: list[DatasetEntry] = []
    for name in ("facades", "maps", "edges2shoes", "edges2handbags", "night2day"):
        entries.append(DatasetEntry(name, PIX2PIX.format(name), "aligned", JZ_LICENCE, "pix2pix"))
    for name in ("horse2zebra", "monet2photo", "summer2winter_yosemite", "apple2orange", "cezanne2photo",
                 "ukiyoe2photo", "vangogh2photo", "iphone2dslr_flower", "ae_photos"):
        entries.append(DatasetEntry(name, CYCLEGAN.format(name), "unaligned", JZ_LICENCE, "CycleGAN",
                                    CYCLEGAN_MIRROR.format(name)))
    # CycleGAN's maps and facades are the pix2pix images split into unpaired trainA/trainB folders
    for name in ("maps", "facades"):
        entries.append(DatasetEntry(f"cyclegan_{name}", CYCLEGAN.format(name), "unaligned", JZ_LICENCE, "CycleGAN",
                                    CYCLEGAN_MIRROR.format(name)))
    entries.append(DatasetEntry(
        "cityscapes_val_for_cut", "http://efrosgans.eecs.berkeley.edu/CUT/datasets/cityscapes_val_for_CUT.tar",
        "unaligned", "Cityscapes terms", "CUT (Cityscapes evaluation set, valA/valB)"))
    entries.append(DatasetEntry("afhq", "https://www.dropbox.com/s/t9l9o3vsx2jai3z/afhq.zip?dl=1", "domains",
                                "CC BY-NC 4.0", "StarGAN v2 (AFHQ: cat, dog, wild)"))
    entries.append(DatasetEntry("celeba_hq", "https://www.dropbox.com/s/f7pvjij2xlpff59/celeba_hq.zip?dl=1",
                                "domains", "CelebA terms (non-commercial)",
                                "StarGAN v2 (CelebA-HQ: female, male)"))
    entries.append(DatasetEntry(
        "cityscapes", "https://www.cityscapes-dataset.com/downloads/", "aligned",
        "Cityscapes terms (account)", "pix2pix / CycleGAN / CUT",
        manual=("Cityscapes needs an account and its licence forbids redistribution: log in at "
                "https://www.cityscapes-dataset.com/downloads/, download gtFine_trainvaltest.zip and "
                "leftImg8bit_trainvaltest.zip, unzip them, and pair each *_leftImg8bit.png (A, left) with its "
                "*_gtFine_color.png (B, right), both resized to 256x256, as train/ (from train) and test/ (from val), "
                "the way the pix2pix repository's datasets/prepare_cityscapes_dataset.py does")))
    return {e.name: e for e in entries}


DATASETS: dict[str, DatasetEntry] = _build_registry()


@dataclass
class DownloadedDataset:
    name: str
    root: Path
    sha256: str
    layout: str  # what the registry promises
    detected: str  # what i2i_cli.data.layouts found in the extracted folder
    counts: dict[str, dict[str, int]]


def entry(name: str) -> DatasetEntry:
    if name not in DATASETS:
        raise I2IError(f"unknown dataset '{name}'; known: {', '.join(sorted(DATASETS))} (see `i2i data download --list`)")
    return DATASETS[name]


def archive_suffix(url: str) -> str:
    path = urlparse(url).path.lower()
    for suffix in (".tar.gz", ".tgz", ".tar", ".zip"):
        if path.endswith(suffix):
            return suffix
    raise I2IError(f"{url}: cannot tell the archive type (expected .zip, .tar, .tar.gz or .tgz)")


def _lay_out(folder: Path) -> None:
    """Drop macOS metadata, then lift a single top-level folder (the archives hold NAME/...) up one level."""
    for junk in ("__MACOSX", ".DS_Store"):
        path = folder / junk
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()
    children = [c for c in folder.iterdir() if not c.name.startswith(".")]
    if len(children) == 1 and children[0].is_dir():
        inner = children[0].rename(folder / (".i2i-lift-" + children[0].name))  # its children may share its name
        for item in inner.iterdir():
            item.rename(folder / item.name)
        inner.rmdir()


def _detect(folder: Path) -> tuple[str, dict[str, dict[str, int]]]:
    from i2i_cli.data.layouts import detect_layout

    try:
        layout = detect_layout(folder)
    except DataError:
        return "unknown", {}
    return layout.kind, layout.counts()


def download_dataset(name: str, root: str | os.PathLike[str] = "datasets", *, url: str | None = None,
                     keep_archive: bool = False, progress: ProgressFn | None = None,
                     notice: NoticeFn | None = None) -> DownloadedDataset:
    """Download NAME into ROOT/NAME: resumable download (ROOT/NAME.<ext>.part), sha256 recorded, safe extraction.

    An archive already at ROOT/NAME.<ext> (placed by hand, or from an earlier run that failed to extract) is
    used as is. It is deleted after a successful extraction unless `keep_archive`; a corrupt one is kept.
    """
    e = entry(name)
    if e.manual:
        raise I2IError(f"{name}: cannot be downloaded by a script. {e.manual}")
    source_url = url or e.url
    base = Path(root)
    target = base / name
    if target.exists():
        raise I2IError(f"{target} already exists; remove it or pass another --root")
    archive = base / f"{name}{archive_suffix(source_url)}"
    if not archive.exists():
        mirror = f" (or the mirror {e.mirror})" if e.mirror and not url else ""
        _, source_url = download_first(
            [url] if url else e.urls(), archive, progress=progress, notice=notice, sha256=e.sha256 or None,
            offline_hint=f"Download it by hand from {source_url}{mirror}, place it at {archive} and run this again")
    digest = sha256_file(archive)

    def finish(folder: Path) -> None:
        _lay_out(folder)
        detected, _ = _detect(folder)
        atomic_write_json(folder / SOURCE_FILE, {
            "name": name, "url": source_url, "archive": archive.name, "archive_sha256": digest,
            "archive_bytes": archive.stat().st_size, "layout": detected, "expected_layout": e.layout,
            "licence": e.licence, "paper": e.paper})

    extract(archive, target, finish=finish)
    if not keep_archive:
        archive.unlink()
    detected, counts = _detect(target)
    return DownloadedDataset(name, target, digest, e.layout, detected, counts)

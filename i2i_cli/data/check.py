"""`i2i data check`: a folder's layout, its counts per split, every unreadable image, and what the layout's own
check finds (for segmentation data: every photo without a label map)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from i2i_cli.data.images import load_image, skipped_links
from i2i_cli.data.layouts import detect_layout
from i2i_cli.errors import BadImageError


@dataclass
class CheckReport:
    root: Path
    layout: str
    counts: dict[str, dict[str, int]]
    domains: list[str] = field(default_factory=list)
    bad: list[tuple[str, str]] = field(default_factory=list)
    sizes: str = ""
    unmatched: list[tuple[str, str]] = field(default_factory=list)  # what the layout's check() finds
    unmatched_heading: str = ""  # how the layout names those files, and what to do about them
    unmatched_fix: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"root": str(self.root), "layout": self.layout, "counts": self.counts, "domains": self.domains,
                "bad": [{"file": f, "problem": p} for f, p in self.bad], "sizes": self.sizes,
                "unmatched": [{"file": f, "problem": p} for f, p in self.unmatched]}


def check_dataset(folder: Path, decode: bool = True, progress: Callable[[int, int], None] | None = None) -> CheckReport:
    layout = detect_layout(folder)
    files = [f for groups in layout.splits.values() for group in groups.values() for f in group]
    report = CheckReport(layout.root, layout.kind, layout.counts(), layout.domains() if layout.multi_domain else [],
                         unmatched=layout.untrained_groups() + layout.check(), unmatched_heading=layout.check_heading,
                         unmatched_fix=layout.check_fix)
    report.bad += skipped_links(layout.root)
    sizes: Counter[tuple[int, int]] = Counter()
    if decode:
        for i, path in enumerate(files, start=1):
            try:
                array = load_image(path)
                sizes[(array.shape[1], array.shape[0])] += 1
            except BadImageError as exc:
                report.bad.append((str(path), exc.reason))
            if progress:
                progress(i, len(files))
        report.sizes = ", ".join(f"{w}x{h} ({n})" for (w, h), n in sizes.most_common(5))
    return report


def unreadable_headers(files: list[Path]) -> list[tuple[str, str]]:
    """(file, reason) of the files whose header cannot be read (empty, not an image, past the pixel limit): the
    cheap check `i2i train` runs on every training file before it starts, whatever the run's length."""
    from i2i_cli.data.images import image_size

    bad = []
    for path in files:
        try:
            image_size(path)
        except BadImageError as exc:
            bad.append((str(path), exc.reason))
    return bad

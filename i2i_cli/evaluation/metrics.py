"""The folder metrics of `i2i eval --real DIR --fake DIR` and one registry of them.

A metric is one class (`FolderMetric`) in one module; adding one is that file plus one line in `_METRICS`.
`evaluate_folders` runs the requested metrics in registry order on one shared `MetricContext`, so metrics
that need the same expensive thing (FID and KID: Inception features) compute it once through `ctx.shared`.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol

from i2i_cli.evaluation.report import Protocol as EvalProtocol
from i2i_cli.models.registry import import_class

if TYPE_CHECKING:
    import os

    import torch

# name -> "module:Class", in the order the metrics run and are printed; imported when used, so listing
# the names for --help and messages loads no network code.
_METRICS: dict[str, str] = {
    "fid": "i2i_cli.evaluation.fid_kid:FidMetric",
    "kid": "i2i_cli.evaluation.fid_kid:KidMetric",
    "lpips": "i2i_cli.evaluation.lpips_metric:PairedLpipsMetric",
    "dino_struct": "i2i_cli.evaluation.dino_struct:DinoStructMetric",
}


class MetricOptions(Protocol):
    """The options metrics read (evaluate.EvalOptions has them; a metric's own options go there too)."""

    mode: str
    lpips_net: str
    kid_subsets: int
    kid_subset_size: int
    seed: int
    batch_size: int
    weights_dir: str | os.PathLike[str] | None
    threads: int | None
    image_size: int | None
    fid_sqrt: str


@dataclass
class MetricContext:
    """What one evaluation's metrics share: the folders, options, device, the protocol they fill in,
    values by key, skipped files and warnings, and `shared` for results several metrics need."""

    real: Path
    fake: Path
    options: MetricOptions
    device: torch.device
    protocol: EvalProtocol
    progress: Callable[[str, int, int], None] | None = None
    values: dict[str, float | None] = field(default_factory=dict)
    bad: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    shared: dict[str, Any] = field(default_factory=dict)

    def report(self, stage: str) -> Callable[[int, int], None] | None:
        """A (done, total) progress callback labelled `stage`, or None without a progress sink."""
        progress = self.progress
        return (lambda done, total: progress(stage, done, total)) if progress else None


class FolderMetric(ABC):
    """One metric between a folder of real and a folder of generated images.

    `keys`: the value names it writes (every registered metric's keys appear in the JSON, None when not run);
    `min_images`: images each folder needs, checked before any network loads; `compute(ctx)` writes
    ctx.values[key] for its keys and records its protocol in ctx.protocol."""

    name: ClassVar[str] = ""
    keys: ClassVar[tuple[str, ...]] = ()
    min_images: ClassVar[int] = 1
    needs: ClassVar[str] = ""  # said when a folder has fewer than min_images (e.g. "FID and KID need")

    @abstractmethod
    def compute(self, ctx: MetricContext) -> None:
        ...


def namesake_pairs(real: Path, fake: Path) -> tuple[list[tuple[Path, Path]], list[str]]:
    """(real file, fake file) pairs with the same relative name (extension ignored), and the fake files (relative)
    without a namesake: how the paired metrics match a folder of outputs with its references."""
    from i2i_cli.data.images import list_images

    reals = {p.relative_to(real).with_suffix("").as_posix(): p for p in list_images(real)}
    pairs, unmatched = [], []
    for file in list_images(fake):
        key = file.relative_to(fake).with_suffix("").as_posix()
        if key in reals:
            pairs.append((reals[key], file))
        else:
            unmatched.append(file.relative_to(fake).as_posix())
    return pairs, unmatched


def metric_names() -> list[str]:
    return list(_METRICS)


def metric_class(name: str) -> type[FolderMetric]:
    if name not in _METRICS:
        raise KeyError(name)
    return import_class(_METRICS[name])


def value_keys() -> dict[str, float | None]:
    """Every registered metric's value keys, None: the shape of `i2i eval`'s values whatever was asked."""
    return {key: None for name in _METRICS for key in metric_class(name).keys}

"""domains (StarGAN v2): DIR/{train,val}/<domain>/* with two or more domain folders."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from i2i_cli.data.datasets import DomainDataset
from i2i_cli.data.layouts.base import Layout, split_folders
from i2i_cli.errors import DataError
from i2i_cli.models.base import SegmentationData


class DomainsLayout(Layout):
    name = "domains"
    example = "train/<domain>/ for two or more domains"
    multi_domain = True

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        _, domains = split_folders(root)
        if not domains:
            return None
        train = domains.get("train")
        if train is not None and len(train) < 2:
            raise DataError(
                f"{root}/train: a multi-domain dataset needs two or more domain folders with images; "
                f"found {', '.join(train) or 'none'}"
            )
        return cls(root, domains)

    def domains(self) -> list[str]:
        names: set[str] = set()
        for groups in self.splits.values():
            names.update(groups)
        return sorted(names)

    def training_dataset(self, batches: str, split: str, augment: Any, *, direction: str = "AtoB",
                         domains: list[str] | None = None, cache: bool = True,
                         segmentation: SegmentationData | None = None) -> Any:
        if batches == "domains":
            return DomainDataset(self, split, augment, domains=domains or self.domains(), cache=cache)
        return super().training_dataset(batches, split, augment, direction=direction, domains=domains, cache=cache,
                                        segmentation=segmentation)

"""Dataset layouts as classes: detection order and messages, what each layout gives, and adding a layout with
one class plus one registry line (docs/architecture.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data import layouts
from i2i_cli.data.datasets import Augment, ImageKey, ItemPlan, TrainDataset, plan_crop
from i2i_cli.data.images import split_halves
from i2i_cli.data.layouts import LAYOUTS, Layout, detect_layout, require_layout
from i2i_cli.data.layouts.base import SPLITS
from i2i_cli.errors import DataError
from i2i_cli.main import app
from i2i_cli.models import registry
from i2i_cli.models.base import SegmentationData
from tests.test_architecture import ThrowAway

runner = CliRunner()


def _image(path: Path, value: int, size: tuple[int, int] = (16, 16)) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((*size, 3), value, dtype=np.uint8)).save(path)


# --- the registry and today's layouts --------------------------------------------------------------------------
def test_every_registered_layout_names_itself_and_is_detected_in_registry_order() -> None:
    assert list(LAYOUTS) == ["segmentation", "single_image", "unaligned", "aligned", "domains", "single"]
    assert all(cls.name == name and cls.example for name, cls in LAYOUTS.items())
    assert layouts.PAIRED_LAYOUTS == {"aligned", "segmentation"}


def test_photos_and_labels_win_over_an_aligned_looking_train_folder(tmp_path: Path) -> None:
    for name in ("a.png", "b.png"):
        _image(tmp_path / "train" / "images" / name, 10)
        _image(tmp_path / "train" / "labels" / name, 1)
    _image(tmp_path / "test" / "b.png", 3)  # test/ with images: alone it would read as aligned
    layout = detect_layout(tmp_path)
    assert layout.kind == "segmentation" and layout.paired and layout.check() == []
    (tmp_path / "train" / "labels" / "a.png").unlink()
    assert [Path(f).name for f, _ in detect_layout(tmp_path).check()] == ["a.png"]


def test_detection_messages_are_unchanged(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="no such folder; pass --data DIR"):
        detect_layout(tmp_path / "nowhere")
    (tmp_path / "f.txt").write_text("x")
    with pytest.raises(DataError, match="is a file, not a dataset folder"):
        detect_layout(tmp_path / "f.txt")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match=r"no images in a known layout; expected train/ \(aligned A\|B\)"):
        detect_layout(empty)
    mixed = tmp_path / "mixed"
    _image(mixed / "train" / "a.png", 1)
    _image(mixed / "val" / "cat" / "b.png", 2)
    with pytest.raises(DataError, match=r"mixes aligned splits \(train\) with domain folders \(val\)"):
        detect_layout(mixed)
    single = tmp_path / "single"
    _image(single / "x.png", 5)
    assert detect_layout(single).kind == "single" and detect_layout(single).counts() == {"all": {"images": 1}}


def test_methods_declare_the_layouts_they_accept_and_the_refusal_names_the_one_they_need(datasets) -> None:
    accepts = {name: registry.method_class(name).accepts for name in registry.list_methods()}
    assert accepts["pix2pix"] == ("aligned",) and accepts["starganv2"] == ("domains",)
    assert accepts["cyclegan"] == ("unaligned", "aligned") and accepts["segmenter"] == ("segmentation", "aligned")
    unaligned = detect_layout(datasets["unaligned"])
    with pytest.raises(DataError, match=r"is a unaligned dataset but pix2pix trains on aligned data "
                                        r"\(train/ with A\|B side-by-side images\)"):
        require_layout(unaligned, accepts["pix2pix"], "pix2pix")
    require_layout(detect_layout(datasets["aligned"]), accepts["cyclegan"], "cyclegan")  # halves serve it
    with pytest.raises(DataError, match="trains on domains data"):
        require_layout(detect_layout(datasets["aligned"]), accepts["starganv2"], "starganv2")


def test_a_training_run_on_the_wrong_layout_is_refused_in_one_line(datasets, tmp_path: Path) -> None:
    result = runner.invoke(app, ["train", "--model", "pix2pix", "--data", str(datasets["unaligned"]),
                                 "--out", str(tmp_path / "run"), "--steps", "1", "--device", "cpu"])
    assert result.exit_code == 2 and "but pix2pix trains on aligned data" in result.output
    assert not (tmp_path / "run").exists()


def test_method_configs_say_their_data_needs_without_building_a_method() -> None:
    segmenter = registry.method_class("segmenter").config_class(n_classes=7, crop_height=24, load_size=64, label_side="right")
    data = segmenter.data_spec().segmentation
    assert data == SegmentationData(label_side="right", n_classes=7, load_width=64, crop_height=24)
    assert registry.method_class("starganv2").config_class().data_spec().random_resized_crop == 0.5
    assert registry.method_class("pix2pix").config_class().data_spec().segmentation is None
    assert {registry.method_class(n).evaluation for n in ("pix2pix", "starganv2", "segmenter")} == {
        "translation", "multidomain", "segmentation"}


def test_split_halves_drops_an_odd_last_column() -> None:
    array = np.arange(2 * 5 * 3).reshape(2, 5, 3)
    left, right = split_halves(array)
    assert left.shape == right.shape == (2, 2, 3)
    assert np.array_equal(left, array[:, :2]) and np.array_equal(right, array[:, 2:4])


def test_aligned_evaluation_inputs_write_the_source_halves(tmp_path: Path) -> None:
    pair = np.concatenate([np.full((8, 8, 3), 40, np.uint8), np.full((8, 8, 3), 200, np.uint8)], axis=1)
    (tmp_path / "d" / "test").mkdir(parents=True)
    Image.fromarray(pair).save(tmp_path / "d" / "test" / "p.png")
    layout = detect_layout(tmp_path / "d")
    inputs, real, paired = layout.evaluation_inputs(tmp_path / "work", "BtoA")
    assert paired and np.asarray(Image.open(inputs / "p.png")).max() == 200  # BtoA: B is the input
    assert np.asarray(Image.open(real / "p.png")).max() == 40
    assert layout.parity_source("AtoB", "BtoA").max() == 200


# --- adding a layout is one class plus one registry line -------------------------------------------------------
class PairedFoldersDataset(TrainDataset):
    """Source and target images with the same file name, one crop for both."""

    def __init__(self, layout: Layout, split: str, spec: Augment, direction: str = "AtoB", cache: bool = True):
        super().__init__(layout, split, spec, cache)
        groups = layout.groups(split)
        targets = {p.name: p for p in groups["dst"]}
        self.pairs = [(p, targets[p.name]) for p in groups["src"] if p.name in targets]
        if direction == "BtoA":
            self.pairs = [(b, a) for a, b in self.pairs]

    def __len__(self) -> int:
        return len(self.pairs)

    def all_keys(self) -> list[ImageKey]:
        return [(p, "whole") for pair in self.pairs for p in pair]

    def plan(self, index: int, rng: torch.Generator) -> ItemPlan:
        a, b = self.pairs[index]
        return ItemPlan({"A": ((a, "whole"), 0), "B": ((b, "whole"), 0)},
                        [plan_crop(self.spec, self.spec.cache_size, rng)], {})


class PairsLayout(Layout):
    """A layout that exists only in this test: DIR/<split>/{src,dst}/, pairs matched by file name."""

    name = "pairs"
    example = "train/src/ and train/dst/ with same-named images"
    paired = True
    check_heading = "source image(s) without a target"
    check_fix = "add the targets under dst/ (same names) or remove those sources"

    @classmethod
    def detect(cls, root: Path) -> Layout | None:
        from i2i_cli.data.images import list_images

        splits = {s: {g: list_images(root / s / g) for g in ("src", "dst")} for s in SPLITS
                  if (root / s / "src").is_dir() and (root / s / "dst").is_dir()}
        return cls(root, splits) if splits else None

    def training_dataset(self, batches: str, split: str, augment: Any, **options: Any) -> Any:
        if batches == "aligned":
            return PairedFoldersDataset(self, split, augment, options.get("direction", "AtoB"),
                                        options.get("cache", True))
        return super().training_dataset(batches, split, augment, **options)

    def check(self) -> list[tuple[str, str]]:
        problems = []
        for groups in self.splits.values():
            targets = {p.name for p in groups["dst"]}
            problems += [(str(p), "no dst image of the same name") for p in groups["src"] if p.name not in targets]
        return problems


class PairsThrowAway(ThrowAway):
    name = "pairs_throwaway"
    accepts = ("aligned", "pairs")  # trains on A/B pairs; a pairs folder gives them too


def _pairs_dataset(root: Path, n: int = 3) -> Path:
    for i in range(n):
        _image(root / "train" / "src" / f"{i}.png", 20 * i, (40, 40))
        _image(root / "train" / "dst" / f"{i}.png", 255 - 20 * i, (40, 40))
    return root


def test_a_layout_defined_in_one_class_and_one_registry_line_is_detected_checked_and_trained_on(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _pairs_dataset(tmp_path / "pairs")
    assert detect_layout(root).kind == "domains"  # before it is registered: two folders of images under train/
    monkeypatch.setattr(layouts, "LAYOUTS", {"pairs": PairsLayout, **LAYOUTS})  # the one registry line
    layout = detect_layout(root)
    assert isinstance(layout, PairsLayout) and layout.counts() == {"train": {"src": 3, "dst": 3}}
    assert layout.check() == []
    dataset = layout.training_dataset("aligned", "train", Augment(32, 40, False))
    item = dataset[(1, 0)]
    assert item["A"].shape == (3, 32, 32) and int(item["A"].max()) == 20 and int(item["B"].min()) == 235

    _image(root / "train" / "src" / "lonely.png", 7, (40, 40))
    checked = runner.invoke(app, ["data", "check", str(root), "--json", str(tmp_path / "r.json")])
    assert checked.exit_code == 1, checked.output  # a problem the layout's check found, in its own words
    assert "1 source image(s) without a target" in checked.output and "add the targets under dst/" in checked.output
    report = json.loads((tmp_path / "r.json").read_text())
    assert report["layout"] == "pairs" and report["counts"]["train"] == {"src": 4, "dst": 3}
    assert [Path(u["file"]).name for u in report["unmatched"]] == ["lonely.png"]

    monkeypatch.setitem(registry._METHODS, "pairs_throwaway", f"{__name__}:PairsThrowAway")
    monkeypatch.setitem(registry._METHODS, "throwaway", f"{__name__}:ThrowAway")
    trained = runner.invoke(app, ["train", "--model", "pairs_throwaway", "--data", str(root), "--out",
                                  str(tmp_path / "run"), "--steps", "2", "--device", "cpu", "--set", "size=32"])
    assert trained.exit_code == 0, trained.output
    assert json.loads((tmp_path / "run" / "config.json").read_text())["data"]["layout"] == "pairs"
    refused = runner.invoke(app, ["train", "--model", "throwaway", "--data", str(root), "--out",
                                  str(tmp_path / "run2"), "--steps", "1", "--device", "cpu"])
    assert refused.exit_code == 2 and "is a pairs dataset but throwaway trains on aligned data" in refused.output

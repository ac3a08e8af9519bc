"""The single_image layout (one A image, one B image) and its zoom-and-patch crops; SinCUT / SinSeSim at test
time (the whole image at its own size)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.layouts import detect_layout, require_layout
from i2i_cli.data.zoom_patch import ZoomPatchDataset, zoom_and_patch
from i2i_cli.errors import DataError
from i2i_cli.main import app
from i2i_cli.models import registry
from tests.run_factory import make_run

runner = CliRunner()


def test_one_image_per_domain_is_single_image_data_that_still_serves_unpaired_methods(datasets, tmp_path):
    layout = detect_layout(datasets["single_image"])
    assert layout.kind == "single_image" and layout.counts()["train"] == {"A": 1, "B": 1}
    require_layout(layout, registry.method_class("sincut").accepts, "sincut")
    require_layout(layout, registry.method_class("cyclegan").accepts, "cyclegan")  # trainA/ trainB/ as ever
    with pytest.raises(DataError, match=r"is a unaligned dataset but sinsesim trains on single_image data "
                                        r"\(trainA/ and trainB/ holding one image each\)"):
        require_layout(detect_layout(datasets["unaligned"]), registry.method_class("sinsesim").accepts, "sinsesim")
    checked = runner.invoke(app, ["data", "check", str(datasets["single_image"])])
    assert checked.exit_code == 0 and "single_image" in checked.output, checked.output


def test_zoom_and_patch_crops_are_a_function_of_index_and_seed(datasets):
    root = datasets["single_image"]
    files = {"A": next((root / "trainA").iterdir()), "B": next((root / "trainB").iterdir())}
    data = ZoomPatchDataset(files, 16)
    first, again, other = data[(5, 123)], data[(5, 123)], data[(6, 124)]
    assert first["A"].shape == (3, 16, 16) and first["A"].dtype == torch.uint8 and first["bad"] == []
    assert torch.equal(first["A"], again["A"]) and torch.equal(first["B"], again["B"])
    assert not torch.equal(first["A"], other["A"])
    swapped = ZoomPatchDataset(files, 16, direction="BtoA")[(5, 123)]
    assert torch.equal(swapped["A"], _crop_of(files["B"], data, 5, 123))


def _crop_of(path: Path, data: ZoomPatchDataset, index: int, seed: int) -> torch.Tensor:
    """What the dataset's A crop of (index, seed) would be were `path` the A image."""
    other = ZoomPatchDataset({"A": path, "B": path}, data.size)
    return other[(index, seed)]["A"]


def test_the_grid_cell_zoom_and_flip_are_the_reference_s():
    image = Image.fromarray(np.arange(40 * 24 * 3, dtype=np.uint32).reshape(24, 40, 3).astype(np.uint8))
    # no zoom, no offset room (40 x 24 holds a 5 x 3 grid of 8 px cells), cell 4 = column 1, row 1
    cell = zoom_and_patch(image, 8, 4, (1.0, 1.0), (0.0, 0.0), flip=False)
    assert np.array_equal(cell, np.asarray(image)[8:16, 8:16])
    assert np.array_equal(zoom_and_patch(image, 8, 4, (1.0, 1.0), (0.0, 0.0), flip=True), cell[:, ::-1])
    tiny = zoom_and_patch(image, 32, 0, (0.1, 0.1), (0.5, 0.5), flip=False)  # zoomed, never below the crop
    assert tiny.shape == (32, 32, 3)


@pytest.mark.parametrize("name", ["sincut", "sinsesim"])
def test_translation_takes_the_whole_image_at_its_size(name, tmp_path):
    run = make_run(tmp_path / "run", name)
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (45, 70, 3), dtype=np.uint8)).save(src / "x.png")
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(tmp_path / "out"),
                                 "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert Image.open(tmp_path / "out" / "x.png").size == (70, 45)


def test_sincut_error_maps_use_its_encoder_and_heads(tmp_path):
    from i2i_cli.errormap import analyse_pair, build_mappers

    run = make_run(tmp_path / "run", "sincut")
    mapper = build_mappers(["patchnce"], {"checkpoint": run})[0]
    x = np.random.default_rng(1).integers(0, 255, (32, 32, 3), dtype=np.uint8)
    result = analyse_pair(x, x, [mapper], misalign="none").losses[0]
    assert result.map.shape == (32, 32) and "MLP" in mapper.note

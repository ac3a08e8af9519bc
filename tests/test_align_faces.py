"""`i2i data align-faces`: the command end to end on stand-in weights, its refusals, and the landmark convention.

The geometry's fidelity to StarGAN v2's own code is tests/golden/test_golden_align_faces.py."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.main import app
from i2i_cli.models.networks.fan import FAN, landmarks_from_heatmaps
from tests.golden.record_align_faces import mean_landmarks

runner = CliRunner()


@pytest.fixture(scope="module")
def weights(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """wing.ckpt in the release layout ({'state_dict': ...}, an extra stack the loader ignores; a narrow FAN) and
    celeba_lm_mean.npz ('mean': (98, 2) in 256 px) under their official names."""
    folder = tmp_path_factory.mktemp("align_weights")
    torch.manual_seed(0)
    state = FAN(16).state_dict()
    torch.save({"state_dict": {**state, "l1.weight": torch.zeros(1)}}, folder / "wing.ckpt")
    np.savez(folder / "celeba_lm_mean.npz", mean=mean_landmarks())
    return folder


@pytest.fixture()
def photos(tmp_path: Path) -> Path:
    """Two photos of other sizes than the output (one JPEG, one non-square PNG) and one corrupt file."""
    folder = tmp_path / "photos"
    folder.mkdir()
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 256, (80, 80, 3), dtype=np.uint8)).save(folder / "a.jpg")
    Image.fromarray(rng.integers(0, 256, (30, 50, 3), dtype=np.uint8)).save(folder / "b.png")
    (folder / "c.png").write_bytes(b"\x89PNG\r\n\x1a\n not really")
    return folder


def _align(photos: Path, out: Path, weights: Path, *extra: str):
    return runner.invoke(app, ["data", "align-faces", str(photos), str(out), "--size", "64", "--device", "cpu",
                               "--weights-dir", str(weights), *extra])


def test_a_folder_is_aligned_and_the_corrupt_file_listed_at_the_end(photos, weights, tmp_path):
    out, report = tmp_path / "aligned", tmp_path / "report.json"
    result = _align(photos, out, weights, "--json", str(report))
    assert result.exit_code == 1, result.output
    assert "c.png" in result.output and "a.jpg" not in result.output.split("unreadable file")[-1]
    for name in ("a.jpg", "b.png"):
        with Image.open(out / name) as img:
            assert img.size == (64, 64) and img.mode == "RGB"
    assert not (out / "c.png").exists()
    data = json.loads(report.read_text())
    assert sorted(Path(p).name for p in data["written"]) == ["a.jpg", "b.png"]
    assert [Path(b["file"]).name for b in data["bad"]] == ["c.png"] and data["size"] == 64
    assert {w["name"] for w in data["weights"]} == {"wing", "celeba_lm_mean"}


def test_existing_outputs_are_refused_before_any_work_unless_overwrite(photos, weights, tmp_path):
    out = tmp_path / "aligned"
    out.mkdir()
    (out / "b.png").write_bytes(b"mine")
    result = _align(photos, out, weights)
    assert result.exit_code == 2 and "already exists" in result.output and "--overwrite" in result.output
    assert (out / "b.png").read_bytes() == b"mine" and not (out / "a.jpg").exists()
    assert _align(photos, out, weights, "--overwrite").exit_code == 1
    with Image.open(out / "b.png") as img:
        assert img.size == (64, 64)


@pytest.mark.parametrize("where", ["same", "inside"])
def test_out_that_is_in_or_inside_it_is_refused(photos, weights, where):
    out = photos if where == "same" else photos / "aligned"
    result = _align(photos, out, weights)
    assert result.exit_code == 2 and "outside IN" in result.output, result.output
    assert sorted(p.name for p in photos.iterdir()) == ["a.jpg", "b.png", "c.png"]


@pytest.mark.parametrize("missing", ["wing.ckpt", "celeba_lm_mean.npz"])
def test_missing_weights_are_one_line_before_any_image_is_read_or_out_made(photos, weights, tmp_path, missing):
    partial = tmp_path / "partial"
    partial.mkdir()
    for file in weights.iterdir():
        if file.name != missing:
            (partial / file.name).write_bytes(file.read_bytes())
    out = tmp_path / "aligned"
    result = _align(photos, out, partial)
    assert result.exit_code == 2, result.output
    assert missing in result.output and str(partial / missing) in result.output.replace("\n", "")
    assert len(result.output.strip().splitlines()) == 1
    assert not out.exists()


def test_one_photo_can_be_aligned_and_a_non_face_still_gives_an_image(weights, tmp_path):
    photo = tmp_path / "me.png"
    Image.fromarray(np.full((40, 40, 3), 128, np.uint8)).save(photo)
    result = _align(photo, tmp_path / "out", weights)
    assert result.exit_code == 0, result.output
    assert np.asarray(Image.open(tmp_path / "out" / "me.png")).shape == (64, 64, 3)


def test_heat_map_peaks_are_pixel_centres_moved_a_quarter_towards_the_larger_neighbour():
    maps = torch.zeros(1, 3, 64, 64)
    maps[0, 0, 10, 20] = 1.0
    maps[0, 0, 10, 21], maps[0, 0, 9, 20] = 0.5, 0.25  # right and upper neighbours larger: x + 1/4, y - 1/4
    maps[0, 1, 0, 30] = 1.0  # on the border: no move
    maps[0, 2, 40, 50] = 1.0  # both neighbour pairs equal: no move
    points = landmarks_from_heatmaps(maps)
    assert points[0].tolist() == [[20.75, 10.25], [30.5, 0.5], [50.5, 40.5]]


def test_fan_landmarks_scale_the_heat_map_peaks_to_the_input_size():
    fan = FAN(16)
    maps = torch.zeros(2, 99, 64, 64)
    maps[:, :, 5, 7] = 1.0
    fan.forward = lambda x: maps  # type: ignore[method-assign]  # a fixed network output
    points = fan.landmarks(torch.zeros(2, 3, 128, 128))
    assert points.shape == (2, 98, 2)
    assert torch.equal(points[0, 0], torch.tensor([7.5 * 2, 5.5 * 2]))


def test_missing_weights_without_weights_dir_name_the_cache_and_the_variable(photos, tmp_path):
    result = runner.invoke(app, ["data", "align-faces", str(photos), str(tmp_path / "out"), "--device", "cpu"])
    assert result.exit_code == 2 and "wing.ckpt" in result.output and "I2I_WEIGHTS_DIR" in result.output
    assert not (tmp_path / "out").exists()

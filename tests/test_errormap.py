"""Error maps: exact L1, image-size maps, zero for identical images, FSeSim separates a shifted half."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image, save_image
from i2i_cli.errormap import analyse_pair, build_mappers, l1_map, misaligned_target
from i2i_cli.main import app
from models.losses.location_maps import patchnce_map


@pytest.fixture
def scene_pair(datasets):
    pair = load_image(sorted((datasets["aligned"] / "train").glob("*.png"))[0])
    half = pair.shape[1] // 2
    return np.ascontiguousarray(pair[:, :half]), np.ascontiguousarray(pair[:, half:])


@pytest.fixture
def mappers(fake_weights_dir):
    return build_mappers(["l1", "perceptual", "patchnce", "fsesim"], {"weights_dir": fake_weights_dir})


def test_l1_map_is_the_channel_mean_of_the_absolute_difference():
    x, y = torch.rand(1, 3, 5, 7) * 2 - 1, torch.rand(1, 3, 5, 7) * 2 - 1
    expected = ((x + 1) / 2 - (y + 1) / 2).abs().mean(dim=1)[0]
    assert torch.allclose(l1_map(x, y), expected, atol=1e-6)


def test_maps_have_the_image_size_and_vanish_for_identical_images(scene_pair, mappers):
    x, _ = scene_pair
    result = analyse_pair(x, x, mappers, misalign="none")
    for loss in result.losses:
        assert loss.map.shape == x.shape[:2], loss.name
        if loss.name != "patchnce":
            assert loss.mean < 1e-5, (loss.name, loss.mean)
    fx = torch.rand(1, 8, 6, 6)
    shuffled = fx.flatten(2)[:, :, torch.randperm(36)].view(1, 8, 6, 6)
    assert patchnce_map(fx, fx).mean() < patchnce_map(fx, shuffled).mean()


def test_fsesim_separates_a_shifted_right_half_of_the_same_image(scene_pair, mappers):
    _, photo = scene_pair
    result = analyse_pair(photo, photo, mappers, misalign="half")
    fsesim = next(r for r in result.losses if r.name == "fsesim")
    assert fsesim.ratio > 1.0
    l1 = next(r for r in result.losses if r.name == "l1")
    assert l1.aligned == pytest.approx(0.0, abs=1e-6) and l1.misaligned > 0


def test_misaligned_target_keeps_the_left_half_and_shifts_the_right():
    y = np.arange(2 * 8 * 3, dtype=np.uint8).reshape(2, 8, 3)
    t = misaligned_target(y)
    assert np.array_equal(t[:, :4], y[:, :4]) and np.array_equal(t[:, 4:], np.roll(y, 2, axis=1)[:, 4:])
    other = np.zeros_like(y)
    assert np.array_equal(misaligned_target(y, other)[:, 4:], other[:, 4:])


def test_cli_writes_a_figure_and_json_and_handles_pair_folders(scene_pair, fake_weights_dir, tmp_path):
    x, y = scene_pair
    save_image(x, tmp_path / "x.png")
    save_image(y, tmp_path / "y.png")
    runner = CliRunner()
    result = runner.invoke(app, ["errormap", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--out",
                                 str(tmp_path / "fig.png"), "--json", str(tmp_path / "e.json"), "--weights-dir",
                                 str(fake_weights_dir)])
    assert result.exit_code == 0, result.output
    assert load_image(tmp_path / "fig.png").shape[1] > 4 * x.shape[1]
    report = json.loads((tmp_path / "e.json").read_text())
    assert set(report["losses"]) == {"l1", "perceptual", "patchnce", "fsesim"}
    assert all(v["ratio"] is not None for v in report["losses"].values())
    for sub, image in (("x", x), ("y", y)):
        (tmp_path / "pairs" / sub).mkdir(parents=True)
        save_image(image, tmp_path / "pairs" / sub / "a.png")
        save_image(image, tmp_path / "pairs" / sub / "b.png")
    batch_args = ["errormap", "--pairs", str(tmp_path / "pairs"), "--losses", "l1,fsesim", "--weights-dir",
                  str(fake_weights_dir), "--json", str(tmp_path / "b.json"), "--out", str(tmp_path / "figs")]
    batch = runner.invoke(app, batch_args)
    assert batch.exit_code == 0, batch.output
    assert len(json.loads((tmp_path / "b.json").read_text())["pairs"]) == 2
    assert sorted(p.name for p in (tmp_path / "figs").iterdir()) == ["a.png", "b.png"]
    before = (tmp_path / "figs" / "a.png").read_bytes()
    for sub in ("x", "y"):  # pairs of identical images: only the borrowed right half differs
        save_image(y, tmp_path / "same" / sub / "a.png")
        save_image(np.ascontiguousarray(y[::-1]), tmp_path / "same" / sub / "b.png")
    other = runner.invoke(app, ["errormap", "--pairs", str(tmp_path / "same"), "--losses", "l1", "--misalign",
                                "other", "--json", str(tmp_path / "o.json")])
    assert other.exit_code == 0, other.output
    first = json.loads((tmp_path / "o.json").read_text())["pairs"][0]["losses"]["l1"]
    assert first["aligned"] == pytest.approx(0.0, abs=1e-6) and first["misaligned"] > 0.01
    again = runner.invoke(app, batch_args)
    assert again.exit_code == 2 and "--overwrite" in again.output
    assert (tmp_path / "figs" / "a.png").read_bytes() == before
    save_image(x[:20, :20].copy(), tmp_path / "small.png")
    small = runner.invoke(app, ["errormap", str(tmp_path / "small.png"), str(tmp_path / "y.png"), "--weights-dir",
                                str(fake_weights_dir)])
    assert small.exit_code == 2 and "small.png: 20x20 is smaller than the 32 px" in small.output
    bad = runner.invoke(app, ["errormap", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--losses", "lsesim"])
    assert bad.exit_code == 2 and "--checkpoint RUN of a lsesim run" in bad.output


@pytest.mark.parametrize("method, loss", [("lsesim", "lsesim"), ("cut", "patchnce")])
def test_learned_maps_from_a_run(method, loss, datasets, fake_weights_dir, scene_pair, tmp_path, monkeypatch):
    from i2i_cli.engine.trainer import TrainOptions, train
    from tests.conftest import tiny_config

    monkeypatch.setenv("I2I_WEIGHTS_DIR", str(fake_weights_dir))
    train(method, tiny_config(method), TrainOptions(data=datasets["unaligned"], out=tmp_path / "run", steps=1,
                                                    device="cpu"))
    mappers = build_mappers([loss], {"checkpoint": tmp_path / "run", "weights_dir": fake_weights_dir})
    assert "run" in mappers[0].note or "head" in mappers[0].note or "MLP" in mappers[0].note
    x, _ = scene_pair
    same = analyse_pair(x, x, mappers, misalign="none").losses[0]
    assert same.map.shape == x.shape[:2]
    shifted = analyse_pair(x, x, mappers, misalign="half").losses[0]
    assert shifted.misaligned > shifted.aligned


def test_fsesim_map_is_the_training_loss_with_every_location_a_query(scene_pair, fake_weights_dir):
    """The error map uses the spatially-correlative loss FSeSim trains with (official defaults), per VGG layer."""
    import torch.nn.functional as F

    from i2i_cli.errormap import FEATURE_LAYERS
    from models.losses.spatial_correlative import spatial_correlative_map
    from models.methods.sesim import FSeSimConfig

    context = {"weights_dir": fake_weights_dir}
    mapper = build_mappers(["fsesim"], context)[0]
    x, y = (torch.from_numpy(a).permute(2, 0, 1)[None].float() / 127.5 - 1 for a in scene_pair)
    with torch.no_grad():
        fx, fy = context["vgg"](x), context["vgg"](y)
        c = FSeSimConfig()
        layers = [spatial_correlative_map(fx[n], fy[n], c.patch_size, c.loss_mode, c.use_norm, c.top_fraction)
                  for n in FEATURE_LAYERS]
        size = layers[0].shape[-2:]
        expected = torch.stack([F.interpolate(m[None], size=size, mode="bilinear", align_corners=False)[0, 0]
                                for m in layers]).mean(0)
        assert torch.allclose(mapper.fn(x, y), expected, atol=1e-6)
    assert "tanh" in mapper.note and "top 0.25" in mapper.note


def test_a_missing_image_or_existing_figure_is_named_before_any_network_loads(tmp_path, monkeypatch):
    monkeypatch.delenv("I2I_WEIGHTS_DIR", raising=False)  # no VGG16 anywhere: loading it would fail first
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((40, 40, 3), dtype=np.uint8)).save(image)
    runner = CliRunner()
    result = runner.invoke(app, ["errormap", str(image), str(tmp_path / "missing.png"), "--out", str(tmp_path / "f.png")])
    assert result.exit_code != 0 and "missing.png" in result.output and "vgg16" not in result.output
    (tmp_path / "f.png").write_bytes(b"the user's figure")
    result = runner.invoke(app, ["errormap", str(image), str(image), "--out", str(tmp_path / "f.png")])
    assert result.exit_code == 2 and "--overwrite" in result.output
    assert (tmp_path / "f.png").read_bytes() == b"the user's figure"

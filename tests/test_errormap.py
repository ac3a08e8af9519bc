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
from i2i_cli.models.losses.location_maps import patchnce_map


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
    from i2i_cli.models.losses.spatial_correlative import spatial_correlative_map
    from i2i_cli.models.methods.sesim import FSeSimConfig

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


# --- issue 20: ordinary images are not pairs; targets that are already misaligned --------------------------


def test_pairs_of_ordinary_images_are_refused_in_one_line(tmp_path):
    """A folder of ordinary images (no x/, y/; not twice as wide as tall) was split into halves: '12 pairs'."""
    folder = tmp_path / "photos"
    folder.mkdir()
    for k in range(3):
        Image.new("RGB", (48, 40), (k, 2 * k, 3 * k)).save(folder / f"p{k}.png")
    result = CliRunner().invoke(app, ["errormap", "--pairs", str(folder), "--losses", "l1"])
    assert result.exit_code == 2, result.output
    line = result.output.strip()
    assert "\n" not in line and "48x40, not an A|B pair" in line and "3 of 3" in line and "x/" in line


def test_side_by_side_pairs_are_still_read(tmp_path):
    folder = tmp_path / "ab"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for k in range(2):
        Image.fromarray(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8)).save(folder / f"{k}.png")
    result = CliRunner().invoke(app, ["errormap", "--pairs", str(folder), "--losses", "l1"])
    assert result.exit_code == 0, result.output
    assert "2 pairs" in result.output


def _x_y(seed: int = 0, size: int = 48) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
    x = np.clip(y.astype(int) + rng.integers(-20, 20, y.shape), 0, 255).astype(np.uint8)
    return x, y


def test_a_target_misaligned_on_its_right_half_is_not_shifted_again():
    """y_half.png (already misaligned) was shifted a second time by --misalign half."""
    x, y = _x_y()
    mappers = build_mappers(["l1"], {})
    y_half = misaligned_target(y)
    built = analyse_pair(x, y, mappers, misalign="half").losses[0]
    given = analyse_pair(x, y_half, mappers, misalign="given-right").losses[0]
    assert given.aligned == pytest.approx(built.aligned) and given.misaligned == pytest.approx(built.misaligned)
    assert given.ratio > 1.5  # the shifted half differs, the aligned one barely does
    twice = analyse_pair(x, y_half, mappers, misalign="half").losses[0]
    assert twice.misaligned != pytest.approx(given.misaligned)  # what the default did: a second shift
    mirrored = analyse_pair(x[:, ::-1].copy(), y_half[:, ::-1].copy(), mappers, misalign="given-left").losses[0]
    assert mirrored.aligned == pytest.approx(given.aligned) and mirrored.misaligned == pytest.approx(given.misaligned)


def test_a_wholly_misaligned_target_takes_its_aligned_column_from_the_aligned_image(tmp_path):
    x, y = _x_y(1)
    shifted = np.roll(y, 12, axis=1)
    for name, array in (("x", x), ("y", y), ("y_shifted", shifted)):
        save_image(array, tmp_path / f"{name}.png")
    runner = CliRunner()
    out, report = tmp_path / "fig.png", tmp_path / "m.json"
    result = runner.invoke(app, ["errormap", str(tmp_path / "x.png"), str(tmp_path / "y_shifted.png"),
                                 "--misalign", "given-whole", "--aligned", str(tmp_path / "y.png"), "--losses", "l1",
                                 "--out", str(out), "--json", str(report)])
    assert result.exit_code == 0, result.output
    l1 = json.loads(report.read_text())["losses"]["l1"]
    expected_aligned = float(np.abs(x.astype(float) - y).mean() / 255)
    expected_misaligned = float(np.abs(x.astype(float) - shifted).mean() / 255)
    assert l1["aligned"] == pytest.approx(expected_aligned, abs=1e-4)
    assert l1["misaligned"] == pytest.approx(expected_misaligned, abs=1e-4)
    missing = runner.invoke(app, ["errormap", str(tmp_path / "x.png"), str(tmp_path / "y_shifted.png"),
                                  "--misalign", "given-whole", "--losses", "l1", "--out", str(tmp_path / "f2.png")])
    assert missing.exit_code == 2 and "--aligned" in missing.output and not (tmp_path / "f2.png").exists()


def test_errormap_outputs_are_checked_before_the_maps(tmp_path):
    x, y = _x_y(2)
    save_image(x, tmp_path / "x.png")
    save_image(y, tmp_path / "y.png")
    result = CliRunner().invoke(app, ["errormap", str(tmp_path / "x.png"), str(tmp_path / "y.png"), "--losses", "l1",
                                      "--out", str(tmp_path / "x.png" / "fig.png")])
    assert result.exit_code == 2 and "is a file" in result.output


def test_the_figure_says_what_the_misaligned_half_is():
    from i2i_cli.errormap import target_caption

    assert target_caption("half", False, "y.png") == ("target: y | misaligned", "left: aligned, right: shifted")
    other = ("target: y | misaligned", "left: aligned, right: another image's half")
    assert target_caption("half", True, "y.png") == other  # one pair with --other
    assert target_caption("other", False, "y.png") == other  # --pairs with --misalign other
    assert target_caption("given-left", False, "y.png") == ("y: y.png", "left: misaligned (given), right: aligned")

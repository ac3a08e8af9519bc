"""`i2i translate` on a trained run: sizes kept, names kept, bad files listed, nothing overwritten."""

from __future__ import annotations

import os

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.main import app
from tests.conftest import tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def run(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("runs") / "runs" / "p2p"
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=out, steps=2, device="cpu"))
    return out


def _inputs(folder):
    (folder / "sub").mkdir(parents=True)
    Image.new("RGB", (37, 53), (10, 200, 30)).save(folder / "odd.jpg")
    Image.fromarray(np.arange(40 * 40, dtype=np.uint16).reshape(40, 40) * 40).save(folder / "sub" / "deep16.png")
    Image.new("L", (40, 40), 128).save(folder / "sub" / "grey.png")
    (folder / "broken.png").write_bytes(b"\x89PNG not really")
    Image.new("RGB", (4, 4)).save(folder / "tiny.png")


def test_translate_keeps_sizes_and_names_lists_bad_files_and_never_overwrites(run, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    _inputs(src)
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--device", "cpu",
                                 "--json", str(tmp_path / "t.json")])
    assert result.exit_code == 1, result.output
    assert "broken.png" in result.output and "tiny.png" in result.output and "smaller than" in result.output
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "odd.png", "sub/deep16.png", "sub/grey.png"]
    assert load_image(out / "odd.png").shape == (53, 37, 3)
    assert load_image(out / "sub" / "deep16.png").shape == (40, 40, 3)

    before = (out / "odd.png").read_bytes()
    (out / "odd.png").write_bytes(b"user's file")
    again = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--device", "cpu"])
    assert "skipped 3 existing" in again.output
    assert (out / "odd.png").read_bytes() == b"user's file"
    runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(out), "--device", "cpu", "--overwrite"])
    assert (out / "odd.png").read_bytes() == before
    assert not [p for p in out.rglob("*") if ".i2i-tmp-" in p.name]


def test_translate_without_checkpoint_uses_the_newest_run_and_says_so(run, tmp_path, monkeypatch):
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (32, 32), (1, 2, 3)).save(src / "a.png")
    monkeypatch.chdir(run.parent.parent)
    result = runner.invoke(app, ["translate", str(src), str(tmp_path / "o"), "--device", "cpu"])
    assert result.exit_code == 0, result.output
    assert "using the newest run" in result.output and (tmp_path / "o" / "a.png").is_file()
    monkeypatch.chdir(tmp_path)
    none = runner.invoke(app, ["translate", str(src), str(tmp_path / "o2")])
    assert none.exit_code == 2 and "--checkpoint" in none.output


def test_translate_refuses_a_direction_the_method_lacks(run, tmp_path):
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), str(tmp_path), str(tmp_path / "o"),
                                 "--direction", "BtoA"])
    assert result.exit_code == 2 and "one way only" in result.output
    assert os.path.exists(run)


def test_save_masks_writes_attention_masks_and_is_refused_without_attention(run, datasets, tmp_path):
    ag = tmp_path / "ag"
    train("agcyclegan", tiny_config("agcyclegan"), TrainOptions(data=datasets["unaligned"], out=ag, steps=1,
                                                                device="cpu"))
    src = tmp_path / "in"
    src.mkdir()
    Image.new("RGB", (30, 22), (10, 120, 30)).save(src / "a.png")
    result = runner.invoke(app, ["translate", "--checkpoint", str(ag), str(src), str(tmp_path / "o"), "--save-masks",
                                 "--direction", "BtoA"])
    assert result.exit_code == 0, result.output
    assert load_image(tmp_path / "o" / "a__mask.png").shape == (22, 30, 3)
    refused = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(tmp_path / "p"), "--save-masks"])
    assert refused.exit_code == 2 and "no attention masks" in refused.output


def test_tiled_output_equals_untiled_away_from_seams_for_a_convolutional_net():
    import torch

    from i2i_cli.inference import run_array

    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(), torch.nn.Conv2d(8, 3, 3, padding=1),
                              torch.nn.Tanh())

    class Conv:
        size_multiple, min_size, device = 4, 8, "cpu"

        def __call__(self, x):
            with torch.no_grad():
                return net(x)

    image = np.random.default_rng(1).integers(0, 255, (150, 203, 3), dtype=np.uint8)
    whole = run_array(Conv(), [image])[0].astype(int)
    tiled = run_array(Conv(), [image], tile=64, overlap=16)[0].astype(int)
    assert tiled.shape == whole.shape
    # away from the image border (where whole-image padding differs) only blending errors remain, and tile
    # edges get little weight: the error is a fraction of one grey level
    inner = np.abs(tiled - whole)[4:-4, 4:-4]
    assert inner.max() <= 1 and inner.mean() < 0.05

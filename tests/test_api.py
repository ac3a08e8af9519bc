"""The Python API (i2i_cli.load): the same outputs as `i2i translate` for PIL images, arrays and tensors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

import i2i_cli
from i2i_cli.data.images import load_image
from i2i_cli.errors import ConfigError
from i2i_cli.main import app
from tests.run_factory import make_run

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("api_runs")
    return {"pix2pix": make_run(root / "p2p", "pix2pix"), "starganv2": make_run(root / "sg", "starganv2")}


@pytest.fixture(scope="module")
def images(tmp_path_factory):
    folder = tmp_path_factory.mktemp("api_images")
    rng = np.random.default_rng(0)
    for name, (h, w) in {"odd": (37, 53), "square": (32, 32), "wide": (40, 90)}.items():
        Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(folder / f"{name}.png")
    return folder


def _cli(args):
    result = runner.invoke(app, ["translate", *args, "--device", "cpu"])
    assert result.exit_code == 0, result.output
    return result


def _to_tensor(array):
    return torch.from_numpy(np.array(array)).permute(2, 0, 1)[None].float().div(127.5).sub(1)


def _to_uint8(tensor):
    return tensor[0].clamp(-1, 1).add(1).mul(127.5).round().byte().permute(1, 2, 0).numpy()


def test_import_is_light_and_names_are_public():
    code = "import sys, i2i_cli; assert 'torch' not in sys.modules, 'torch'; print(sorted(i2i_cli.__all__))"
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "'load'" in done.stdout and "'Translator'" in done.stdout
    assert i2i_cli.Translator.__name__ == "Translator"


@pytest.mark.parametrize("options", [[], ["--tile", "32", "--overlap", "8"]], ids=["whole", "tiled"])
def test_api_equals_cli_for_pil_array_and_tensor(runs, images, tmp_path, options):
    out = tmp_path / "cli"
    _cli(["--checkpoint", str(runs["pix2pix"]), str(images), str(out), *options])
    kwargs = {"tile": 32, "overlap": 8} if options else {}
    t = i2i_cli.load(runs["pix2pix"], device="cpu")
    for file in sorted(images.glob("*.png")):
        expected = load_image(out / file.name)
        pil = t(Image.open(file), **kwargs)
        assert isinstance(pil, Image.Image) and pil.size == Image.open(file).size
        assert np.array_equal(np.asarray(pil), expected), file.name
        array = t(np.asarray(Image.open(file).convert("RGB")), **kwargs)
        assert isinstance(array, np.ndarray) and array.dtype == np.uint8
        assert np.array_equal(array, expected), file.name
        tensor = t(_to_tensor(Image.open(file).convert("RGB")), **kwargs)
        assert tensor.shape == (1, 3, *expected.shape[:2]) and tensor.dtype == torch.float32
        assert float(tensor.min()) >= -1 and float(tensor.max()) <= 1
        assert np.array_equal(_to_uint8(tensor), expected), file.name


def test_translate_folder_equals_cli(runs, images, tmp_path):
    _cli(["--checkpoint", str(runs["pix2pix"]), str(images), str(tmp_path / "cli"), "--resize", "32", "--keep-size"])
    t = i2i_cli.load(str(runs["pix2pix"]), device="cpu")
    result = t.translate_folder(images, tmp_path / "api", resize=32, keep_size=True)
    assert result.counts == {"written": 3, "skipped": 0, "bad": 0}
    for file in sorted(images.glob("*.png")):
        assert np.array_equal(load_image(tmp_path / "api" / file.name), load_image(tmp_path / "cli" / file.name))
    with pytest.raises(ConfigError, match="unknown option"):
        t.translate_folder(images, tmp_path / "x", batchsize=2)


def test_multi_domain_latent_and_reference_equal_cli(runs, images, tmp_path):
    run, source = runs["starganv2"], images / "square.png"
    _cli(["--checkpoint", str(run), str(source), str(tmp_path / "latent"), "--domain", "dog", "--seed", "3"])
    _cli(["--checkpoint", str(run), str(source), str(tmp_path / "ref"), "--style-ref", str(images / "odd.png"),
          "--domain", "wild"])
    t = i2i_cli.load(run, device="cpu")
    assert t.multi_domain and t.domains == ["cat", "dog", "wild"]
    image = Image.open(source)
    assert np.array_equal(np.asarray(t(image, domain="dog", seed=3)), load_image(tmp_path / "latent" / "square.png"))
    reference = t(image, style_ref=Image.open(images / "odd.png"), domain="wild")
    assert np.array_equal(np.asarray(reference), load_image(tmp_path / "ref" / "square.png"))
    by_path = t(np.asarray(image), style_ref=images / "odd.png", domain="wild")
    assert np.array_equal(by_path, np.asarray(reference))
    assert not np.array_equal(np.asarray(t(image, domain="dog", seed=4)), np.asarray(t(image, domain="dog", seed=3)))
    with pytest.raises(ConfigError, match="needs a target"):
        t(image)
    result = t.translate_folder(source, tmp_path / "api_latent", domain="dog", seed=3)
    assert np.array_equal(load_image(result.written[0]), load_image(tmp_path / "latent" / "square.png"))


def test_bad_inputs_are_one_line_errors(runs):
    t = i2i_cli.load(runs["pix2pix"], device="cpu")
    with pytest.raises(ConfigError, match="takes no style reference"):
        t(np.zeros((32, 32, 3), np.uint8), domain="B")
    with pytest.raises(ConfigError, match=r"uint8 \(H, W, 3\)"):
        t(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(ConfigError, match=r"\(N, 3, H, W\)"):
        t(torch.zeros(3, 32, 32))
    with pytest.raises(ConfigError, match="PIL image"):
        t("not an image")

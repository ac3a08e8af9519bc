"""StarGAN v2: styles change outputs, seeds reproduce, EMA is what translate loads, reference-guided CLI."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from i2i_cli.data.images import load_image
from i2i_cli.engine.checkpoint import latest_checkpoint, load_for_inference, load_tensors
from i2i_cli.engine.trainer import TrainOptions, train
from i2i_cli.main import app
from models.networks.stargan_v2 import Discriminator, Generator, MappingNetwork, StyleEncoder
from tests.conftest import tiny_config

runner = CliRunner()


@pytest.fixture(scope="module")
def run(datasets, tmp_path_factory):
    out = tmp_path_factory.mktemp("sg2") / "run"
    train("starganv2", tiny_config("starganv2"), TrainOptions(data=datasets["domains"], out=out, steps=3, device="cpu"))
    return out


def test_official_key_layout():
    g = Generator(256, 64, 512).state_dict()
    for key in ("from_rgb.weight", "encode.0.conv1.weight", "encode.0.norm1.weight", "encode.0.conv1x1.weight",
                "encode.5.conv2.weight", "decode.0.norm1.fc.weight", "decode.5.conv1x1.weight", "to_rgb.0.weight",
                "to_rgb.2.weight"):
        assert key in g, key
    assert len([k for k in g if k.startswith("encode.") and k.endswith("conv1.weight")]) == 6  # 4 down + 2
    assert "shared.6.weight" in MappingNetwork(16, 64, 3).state_dict()
    assert "unshared.2.6.weight" in MappingNetwork(16, 64, 3).state_dict()
    assert {"shared.0.weight", "unshared.1.weight"} <= set(StyleEncoder(256, 64, 2).state_dict())
    assert "main.10.weight" in Discriminator(256, 2).state_dict()


def test_two_references_give_clearly_different_outputs_and_seeds_reproduce(run):
    method = load_for_inference(run).method
    torch.manual_seed(0)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    refs = torch.rand(2, 3, 32, 32) * 2 - 1
    domain = torch.tensor([1, 1])
    styles = method.style_from_reference(refs, domain)
    out = method.translate(x.expand(2, -1, -1, -1), style=styles)
    assert (out[0] - out[1]).abs().mean() > 1e-3
    z = torch.randn(1, method.latent_dim, generator=torch.Generator().manual_seed(5))
    a = method.translate(x, style=method.style_from_latent(z, domain[:1]))
    b = method.translate(x, style=method.style_from_latent(z.clone(), domain[:1]))
    assert torch.equal(a, b)


def test_translate_loads_the_ema_weights(run):
    ckpt = latest_checkpoint(run)
    live, ema = load_tensors(ckpt / "weights.safetensors"), load_tensors(ckpt / "ema.safetensors")
    key = "G.from_rgb.weight"
    assert not torch.equal(live[key], ema[key])
    loaded = load_for_inference(run)
    assert loaded.used_ema and torch.equal(loaded.method.state_dict()[key], ema[key])


def test_reference_and_latent_guided_translation_from_the_cli(run, datasets, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    Image.fromarray(np.random.default_rng(0).integers(0, 255, (40, 36, 3), dtype=np.uint8)).save(src / "cat.png")
    refs = datasets["domains"] / "val" / "dusk"
    result = runner.invoke(app, ["translate", "--checkpoint", str(run), "--style-ref", str(refs), str(src),
                                 str(tmp_path / "ref_out")])
    assert result.exit_code == 0, result.output
    names = sorted(p.name for p in (tmp_path / "ref_out").iterdir())
    assert names == [f"cat__{p.stem}.png" for p in sorted(refs.iterdir())]
    assert load_image(tmp_path / "ref_out" / names[0]).shape == (40, 36, 3)

    for out in ("lat1", "lat2"):
        result = runner.invoke(app, ["translate", "--checkpoint", str(run), "--domain", "night", "--num-styles", "3",
                                     "--seed", "7", str(src), str(tmp_path / out)])
        assert result.exit_code == 0, result.output
    files = sorted(p.name for p in (tmp_path / "lat1").iterdir())
    assert files == ["cat__night0.png", "cat__night1.png", "cat__night2.png"]
    for name in files:
        assert np.array_equal(load_image(tmp_path / "lat1" / name), load_image(tmp_path / "lat2" / name))
    assert not np.array_equal(load_image(tmp_path / "lat1" / files[0]), load_image(tmp_path / "lat1" / files[1]))


def test_style_errors_are_one_line(run, datasets, tmp_path):
    src = datasets["domains"] / "val" / "day"
    unknown = runner.invoke(app, ["translate", "--checkpoint", str(run), "--domain", "moon", str(src), str(tmp_path / "o")])
    assert unknown.exit_code == 2 and "day, dusk, night" in unknown.output
    (tmp_path / "refs").mkdir()
    (tmp_path / "refs" / "bad.jpg").write_text("not an image")
    bad = runner.invoke(app, ["translate", "--checkpoint", str(run), "--style-ref", str(tmp_path / "refs" / "bad.jpg"),
                              "--domain", "day", str(src), str(tmp_path / "o")])
    assert bad.exit_code == 2 and "bad.jpg" in bad.output
    unsure = runner.invoke(app, ["translate", "--checkpoint", str(run), "--style-ref", str(src / "00000.png").replace(
        "/day/", "/dusk/"), str(src), str(tmp_path / "o")])
    assert unsure.exit_code == 0, unsure.output  # domain inferred from the reference's folder
    none = runner.invoke(app, ["translate", "--checkpoint", str(run), str(src), str(tmp_path / "o2")])
    assert none.exit_code == 2 and "--style-ref" in none.output


def test_a_reference_given_to_a_model_without_style_encoder_is_refused(datasets, tmp_path):
    train("pix2pix", tiny_config("pix2pix"), TrainOptions(data=datasets["aligned"], out=tmp_path / "p", steps=1,
                                                          device="cpu"))
    src = datasets["domains"] / "val" / "day"
    result = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / "p"), "--style-ref", str(src / "00000.png"),
                                 str(src), str(tmp_path / "o")])
    assert result.exit_code == 2 and "models that do: starganv2" in result.output


def test_starganv2_resumes_exactly(datasets, tmp_path):
    config = tiny_config("starganv2")
    common = dict(data=datasets["domains"], device="cpu", save_every=2)
    train("starganv2", config, TrainOptions(out=tmp_path / "full", steps=4, **common))

    def stop(event) -> None:
        if event.kind == "checkpoint" and event.step == 2:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train("starganv2", config, TrainOptions(out=tmp_path / "part", steps=4, **common), stop)
    train("starganv2", config, TrainOptions(out=tmp_path / "part", steps=4, resume=True, **common))
    for file in ("weights.safetensors", "ema.safetensors"):
        a = load_tensors(latest_checkpoint(tmp_path / "full") / file)
        b = load_tensors(latest_checkpoint(tmp_path / "part") / file)
        assert all(torch.equal(a[k], b[k]) for k in a), file

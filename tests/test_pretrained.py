"""Official checkpoint layouts -> i2i runs, strictly; translate works on the result; downloads via loopback."""

from __future__ import annotations

import torch
from typer.testing import CliRunner

from i2i_cli import pretrained
from i2i_cli.engine.checkpoint import load_for_inference
from i2i_cli.main import app
from models.networks.resnet import ResnetGenerator
from models.networks.stargan_v2 import Generator, MappingNetwork, StyleEncoder
from models.networks.unet import UnetGenerator
from tests.http_server import serve
from tests.test_unpaired import _reference_resnet_keys

runner = CliRunner()


def _random_like(net: torch.nn.Module) -> dict[str, torch.Tensor]:
    torch.manual_seed(0)
    return {k: torch.randn_like(v) * 0.05 if v.dtype.is_floating_point else v for k, v in net.state_dict().items()}


def test_cyclegan_generator_in_the_reference_layout_imports_strictly_and_translates(tmp_path):
    net = ResnetGenerator(ngf=8, n_blocks=9)
    official = _random_like(net)
    assert list(official) == _reference_resnet_keys(9, False)
    # an old release: DataParallel prefix and InstanceNorm running statistics (the reference test code drops them)
    saved = {f"module.{k}": v for k, v in official.items()}
    saved["module.model.2.running_mean"] = torch.zeros(8)
    saved["module.model.2.running_var"] = torch.ones(8)
    torch.save(saved, tmp_path / "horse2zebra.pth")
    result = runner.invoke(app, ["pretrained", "import", str(tmp_path / "horse2zebra.pth"), "--as", "cyclegan",
                                 "--out", str(tmp_path / "run"), "--set", "ngf=8"])
    assert result.exit_code == 0, result.output
    net.load_state_dict(official)
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    loaded = load_for_inference(tmp_path / "run").method
    assert torch.allclose(loaded.translate(x), net.eval()(x), atol=1e-6)
    refused = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / "run"), str(tmp_path), str(tmp_path / "o"),
                                  "--direction", "BtoA"])
    assert refused.exit_code == 2 and "imported with AtoB only" in refused.output


def test_pix2pix_unet_release_imports_and_a_wrong_config_is_named(tmp_path):
    net = UnetGenerator(num_downs=8, ngf=8)
    torch.save(_random_like(net), tmp_path / "facades.pth")
    run = pretrained.import_file(tmp_path / "facades.pth", "pix2pix", tmp_path / "run", ["ngf=8"])
    assert load_for_inference(run).method.name == "pix2pix"
    bad = runner.invoke(app, ["pretrained", "import", str(tmp_path / "facades.pth"), "--as", "pix2pix", "--out",
                              str(tmp_path / "run2")])
    assert bad.exit_code == 2 and "does not match" in bad.output


def test_starganv2_nets_ema_checkpoint_imports(tmp_path):
    sizes = dict(img=32, style=16, latent=8, max_dim=32)
    nets = {"generator": Generator(32, 16, 32, 16), "mapping_network": MappingNetwork(8, 16, 3, 32),
            "style_encoder": StyleEncoder(32, 16, 3, 32, 16)}
    torch.save({k: _random_like(v) for k, v in nets.items()}, tmp_path / "100000_nets_ema.ckpt")
    run = pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run",
                                 [f"size={sizes['img']}", "style_dim=16", "latent_dim=8", "max_conv_dim=32",
                                  "mapping_dim=32", "dim_in=16"], ["cat", "dog", "wild"])
    method = load_for_inference(run).method
    assert method.domains == ["cat", "dog", "wild"]
    nets["generator"].load_state_dict(_random_like(nets["generator"]))
    assert torch.equal(method.G.from_rgb.weight, nets["generator"].from_rgb.weight)


def test_pretrained_get_downloads_and_converts(tmp_path, monkeypatch):
    net = ResnetGenerator()
    body_path = tmp_path / "w.pth"
    torch.save(_random_like(net), body_path)
    with serve({"/zebra2horse.pth": body_path.read_bytes()}) as (base, _):
        monkeypatch.setitem(pretrained.PRETRAINED, "cyclegan_zebra2horse", pretrained.Pretrained(
            "cyclegan_zebra2horse", f"{base}/zebra2horse.pth", "cyclegan", "jz_generator", "BSD"))
        monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
        run = pretrained.get("cyclegan_zebra2horse", tmp_path / "run")
    assert load_for_inference(run).run_config.train["directions"] == ["AtoB"]
    assert "cyclegan_horse2zebra" in runner.invoke(app, ["pretrained", "list"]).output

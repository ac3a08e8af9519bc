"""Official checkpoint layouts -> i2i runs, strictly, with outputs checked against a functional re-computation
of the reference networks on the same weights; `pretrained get` from a loopback server; translate on the run.

The expected key lists are written from the reference module trees (facts, not imports):
- JZ ResnetGenerator (resnet_9blocks, instance norm: convs with bias, no norm parameters): model.1 c7s1, model.4 and
  model.7 stride-2 convs, model.10..18 ResnetBlock conv_block.1 / conv_block.5, model.19 / model.22 transposed
  convs, model.26 c7s1 to RGB.
- CUT's anti-aliased ResnetGenerator: stride-1 convs model.4 / model.8 each followed by a Downsample (`filt`), blocks
  model.12..20, then Upsample (`filt`) + conv at model.21/22 and model.25/26, final conv model.30.
- JZ UnetGenerator (batch norm: inner convs without bias): outermost model.model.{0 downconv, 1 block, 3 upconv};
  middle blocks model.{1 downconv, 2 downnorm, 3 block, 5 upconv, 6 upnorm}; innermost model.{1 downconv,
  3 upconv, 4 upnorm}.
"""

from __future__ import annotations

import dataclasses
import io
import tarfile

import pytest
import torch
import torch.nn.functional as F
from PIL import Image
from typer.testing import CliRunner

from i2i_cli import pretrained
from i2i_cli.engine.checkpoint import load_for_inference, read_run_config
from i2i_cli.errors import CheckpointError
from i2i_cli.main import app
from i2i_cli.models.networks.stargan_v2 import Generator, MappingNetwork, StyleEncoder
from tests.http_server import serve

runner = CliRunner()
CONV_PAIR = ("weight", "bias")


def jz_resnet_keys(n_blocks: int) -> list[str]:
    keys = [f"model.{i}.{p}" for i in (1, 4, 7) for p in CONV_PAIR]
    for b in range(10, 10 + n_blocks):
        keys += [f"model.{b}.conv_block.{c}.{p}" for c in (1, 5) for p in CONV_PAIR]
    up = 10 + n_blocks
    keys += [f"model.{i}.{p}" for i in (up, up + 3, up + 7) for p in CONV_PAIR]
    return keys


def cut_resnet_keys(n_blocks: int) -> list[str]:
    keys = [f"model.{i}.{p}" for i in (1, 4) for p in CONV_PAIR] + ["model.7.filt"]
    keys += [f"model.8.{p}" for p in CONV_PAIR] + ["model.11.filt"]
    for b in range(12, 12 + n_blocks):
        keys += [f"model.{b}.conv_block.{c}.{p}" for c in (1, 5) for p in CONV_PAIR]
    up = 12 + n_blocks
    keys += [f"model.{up}.filt"] + [f"model.{up + 1}.{p}" for p in CONV_PAIR]
    keys += [f"model.{up + 4}.filt"] + [f"model.{up + 5}.{p}" for p in CONV_PAIR]
    keys += [f"model.{up + 9}.{p}" for p in CONV_PAIR]
    return keys


BN = ("weight", "bias", "running_mean", "running_var", "num_batches_tracked")


def jz_unet_keys(num_downs: int) -> list[str]:
    keys = ["model.model.0.weight"]
    prefix = "model.model.1."
    for _ in range(num_downs - 2):  # middle blocks
        keys += [prefix + "model.1.weight"] + [prefix + f"model.2.{p}" for p in BN]
        keys += [prefix + "model.5.weight"] + [prefix + f"model.6.{p}" for p in BN]
        prefix += "model.3."
    keys += [prefix + "model.1.weight", prefix + "model.3.weight"] + [prefix + f"model.4.{p}" for p in BN]
    keys += ["model.model.3.weight", "model.model.3.bias"]
    return keys


def official_state(keys: list[str], shapes: dict[str, torch.Size], seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights in the official layout (blur filters and BN counters as the reference holds them)."""
    gen = torch.Generator().manual_seed(seed)
    state = {}
    for key in keys:
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(100)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shapes[key], generator=gen) + 0.5
        else:
            state[key] = torch.randn(shapes[key], generator=gen) * 0.1
    return state


# ---- functional re-computations of the reference networks (the semantics the key indices stand for) ----

def _inorm(x: torch.Tensor) -> torch.Tensor:
    return F.instance_norm(x, eps=1e-5)


def _conv(x: torch.Tensor, sd: dict[str, torch.Tensor], key: str, stride: int = 1, padding: int = 0) -> torch.Tensor:
    return F.conv2d(x, sd[f"{key}.weight"], sd.get(f"{key}.bias"), stride=stride, padding=padding)


def _blocks(h: torch.Tensor, sd: dict[str, torch.Tensor], first: int, n_blocks: int) -> torch.Tensor:
    for b in range(first, first + n_blocks):
        r = F.relu(_inorm(_conv(F.pad(h, [1] * 4, mode="reflect"), sd, f"model.{b}.conv_block.1")))
        h = h + _inorm(_conv(F.pad(r, [1] * 4, mode="reflect"), sd, f"model.{b}.conv_block.5"))
    return h


def jz_resnet_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    h = F.relu(_inorm(_conv(F.pad(x, [3] * 4, mode="reflect"), sd, "model.1")))
    h = F.relu(_inorm(_conv(h, sd, "model.4", 2, 1)))
    h = F.relu(_inorm(_conv(h, sd, "model.7", 2, 1)))
    h = _blocks(h, sd, 10, n_blocks)
    for i in (10 + n_blocks, 13 + n_blocks):
        h = F.relu(_inorm(F.conv_transpose2d(h, sd[f"model.{i}.weight"], sd[f"model.{i}.bias"], stride=2, padding=1,
                                             output_padding=1)))
    return torch.tanh(_conv(F.pad(h, [3] * 4, mode="reflect"), sd, f"model.{17 + n_blocks}"))


def _blur_down(h: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    return F.conv2d(F.pad(h, [1] * 4, mode="reflect"), filt, stride=2, groups=h.shape[1])


def _blur_up(h: torch.Tensor, filt: torch.Tensor) -> torch.Tensor:
    # CUT's Upsample, filt_size 4: replicate pad 1, transposed blur stride 2 padding 2, crop 1 at the start and end
    y = F.conv_transpose2d(F.pad(h, [1] * 4, mode="replicate"), filt, stride=2, padding=2, groups=h.shape[1])
    return y[:, :, 1:-1, 1:-1]


def cut_resnet_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, n_blocks: int) -> torch.Tensor:
    h = F.relu(_inorm(_conv(F.pad(x, [3] * 4, mode="reflect"), sd, "model.1")))
    h = _blur_down(F.relu(_inorm(_conv(h, sd, "model.4", 1, 1))), sd["model.7.filt"])
    h = _blur_down(F.relu(_inorm(_conv(h, sd, "model.8", 1, 1))), sd["model.11.filt"])
    h = _blocks(h, sd, 12, n_blocks)
    up = 12 + n_blocks
    for i in (up, up + 4):
        h = F.relu(_inorm(_conv(_blur_up(h, sd[f"model.{i}.filt"]), sd, f"model.{i + 1}", 1, 1)))
    return torch.tanh(_conv(F.pad(h, [3] * 4, mode="reflect"), sd, f"model.{up + 9}"))


def _bn(x: torch.Tensor, sd: dict[str, torch.Tensor], key: str) -> torch.Tensor:
    # the reference test script leaves the network in training mode: each image's own statistics
    return F.batch_norm(x, None, None, sd[f"{key}.weight"], sd[f"{key}.bias"], training=True)


def jz_unet_forward(sd: dict[str, torch.Tensor], x: torch.Tensor, num_downs: int) -> torch.Tensor:
    def block(p: str, h: torch.Tensor, depth: int) -> torch.Tensor:
        a = F.leaky_relu(h, 0.2)  # the reference's in-place LeakyReLU also changes the skip it concatenates
        if depth == num_downs - 2:  # innermost
            u = _bn(F.conv_transpose2d(F.relu(_conv(a, sd, p + "model.1", 2, 1)), sd[p + "model.3.weight"],
                                       stride=2, padding=1), sd, p + "model.4")
        else:
            d = _bn(_conv(a, sd, p + "model.1", 2, 1), sd, p + "model.2")
            u = _bn(F.conv_transpose2d(F.relu(block(p + "model.3.", d, depth + 1)), sd[p + "model.5.weight"],
                                       stride=2, padding=1), sd, p + "model.6")
        return torch.cat([a, u], 1)

    d = _conv(x, sd, "model.model.0", 2, 1)
    s = block("model.model.1.", d, 0)
    return torch.tanh(F.conv_transpose2d(F.relu(s), sd["model.model.3.weight"], sd["model.model.3.bias"],
                                         stride=2, padding=1))


def _shapes(method: str, sets: dict[str, object], attribute: str) -> dict[str, torch.Size]:
    from i2i_cli.models import registry

    cls = registry.method_class(method)
    net = getattr(cls(pretrained.apply_values(cls.config_class(), sets, "test")), attribute)
    return {k: v.shape for k, v in net.state_dict().items()}


def _images(folder, n: int = 2, size: int = 32) -> None:
    folder.mkdir()
    for i in range(n):
        Image.new("RGB", (size, size), (40 * i, 90, 200)).save(folder / f"{i}.png")


# ---- tests ----

def test_cyclegan_release_imports_strictly_equals_reference_and_is_one_direction(tmp_path):
    sets = {"ngf": 4, "n_blocks": 9}
    shapes = _shapes("cyclegan", sets, "G_A")
    assert sorted(shapes) == sorted(jz_resnet_keys(9))
    official = official_state(jz_resnet_keys(9), shapes)
    # an old release: DataParallel prefix and InstanceNorm running statistics the reference's loader deletes
    saved = {f"module.{k}": v for k, v in official.items()} | {
        "module.model.2.running_mean": torch.zeros(4), "module.model.2.running_var": torch.ones(4),
        "module.model.5.num_batches_tracked": torch.tensor(0)}
    torch.save(saved, tmp_path / "horse2zebra.pth")
    result = runner.invoke(app, ["pretrained", "import", str(tmp_path / "horse2zebra.pth"), "--as", "cyclegan",
                                 "--out", str(tmp_path / "run"), "--set", "ngf=4"])
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    loaded = load_for_inference(tmp_path / "run")
    with torch.no_grad():
        assert torch.allclose(loaded.method.translate(x), jz_resnet_forward(official, x, 9), atol=1e-5)
    assert loaded.run_config.train["directions"] == ["AtoB"]
    _images(tmp_path / "in")
    refused = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / "run"), str(tmp_path / "in"),
                                  str(tmp_path / "o"), "--direction", "BtoA"])
    assert refused.exit_code == 2 and "imported with AtoB only" in refused.output


def test_a_key_that_is_not_an_instance_norm_statistic_is_refused(tmp_path):
    shapes = _shapes("cyclegan", {"ngf": 4}, "G_A")
    official = official_state(jz_resnet_keys(9), shapes)
    torch.save(official | {"model.1.running_mean": torch.zeros(4)}, tmp_path / "odd.pth")  # model.1 is a conv
    result = runner.invoke(app, ["pretrained", "import", str(tmp_path / "odd.pth"), "--as", "cyclegan", "--out",
                                 str(tmp_path / "run"), "--set", "ngf=4"])
    assert result.exit_code == 2 and "1 unexpected" in result.output and "model.1.running_mean" in result.output
    assert not (tmp_path / "run").exists()
    wrong_width = runner.invoke(app, ["pretrained", "import", str(tmp_path / "odd.pth"), "--as", "cyclegan", "--out",
                                      str(tmp_path / "run")])
    assert wrong_width.exit_code == 2 and "keys do not match" in wrong_width.output


def test_pix2pix_unet_release_equals_the_reference_even_without_bn_counters(tmp_path):
    sets = {"ngf": 4, "num_downs": 5}
    shapes = _shapes("pix2pix", sets, "G")
    assert sorted(shapes) == sorted(jz_unet_keys(5))
    official = official_state(jz_unet_keys(5), shapes)
    old = {k: v for k, v in official.items() if not k.endswith("num_batches_tracked")}  # PyTorch < 0.4 files
    torch.save(old, tmp_path / "facades_label2photo.pth")
    run = pretrained.import_file(tmp_path / "facades_label2photo.pth", "pix2pix", tmp_path / "run",
                                 ["ngf=4", "num_downs=5"])
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    method = load_for_inference(run).method
    with torch.no_grad():
        assert torch.allclose(method.translate(x), jz_unet_forward(official, x, 5), atol=1e-5)
    assert read_run_config(run).train["imported_sha256"]


def test_cut_release_from_the_tar_via_loopback_equals_the_reference_and_translates(tmp_path, monkeypatch):
    sets = {"ngf": 4, "n_blocks": 9, "antialias": True, "antialias_up": True}
    shapes = _shapes("cut", sets, "G")
    assert sorted(shapes) == sorted(cut_resnet_keys(9))
    official = official_state(cut_resnet_keys(9), shapes)
    for key in [k for k in official if k.endswith("filt")]:  # the reference's fixed binomial blurs
        taps = torch.tensor([1.0, 2.0, 1.0]) if shapes[key][-1] == 3 else torch.tensor([1.0, 3.0, 3.0, 1.0])
        kernel = taps[:, None] * taps[None, :]
        kernel = kernel / kernel.sum() * (4 if shapes[key][-1] == 4 else 1)
        official[key] = kernel[None, None].repeat(shapes[key][0], 1, 1, 1)
    weights = io.BytesIO()
    torch.save(official, weights)
    tar_bytes = io.BytesIO()
    with tarfile.open(fileobj=tar_bytes, mode="w") as tf:
        info = tarfile.TarInfo("checkpoints/horse2zebra_cut_pretrained/latest_net_G.pth")
        info.size = len(weights.getvalue())
        tf.addfile(info, io.BytesIO(weights.getvalue()))
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    entry = pretrained.PRETRAINED["cut_horse2zebra"]
    with serve({"/CUT/pretrained_models.tar": tar_bytes.getvalue()}) as (base, _):
        monkeypatch.setitem(pretrained.PRETRAINED, "cut_horse2zebra", dataclasses.replace(
            entry, url=f"{base}/CUT/pretrained_models.tar", config={**entry.config, "ngf": 4}))
        result = runner.invoke(app, ["pretrained", "get", "cut_horse2zebra", "--out", str(tmp_path / "run")])
    assert result.exit_code == 0, result.output
    x = torch.rand(1, 3, 32, 32) * 2 - 1
    loaded = load_for_inference(tmp_path / "run")
    with torch.no_grad():
        assert torch.allclose(loaded.method.translate(x), cut_resnet_forward(official, x, 9), atol=1e-5)
    assert loaded.run_config.train["pretrained"] == "cut_horse2zebra"
    _images(tmp_path / "in")
    out = runner.invoke(app, ["translate", "--checkpoint", str(tmp_path / "run"), str(tmp_path / "in"),
                              str(tmp_path / "out")])
    assert out.exit_code == 0, out.output
    assert sorted(p.stem for p in (tmp_path / "out").iterdir()) == ["0", "1"]


def test_starganv2_nets_ema_checkpoint_imports_and_generates_as_the_reference_nets(tmp_path):
    size, style, latent, max_dim, dim_in = 32, 16, 8, 32, 16
    nets = {"generator": Generator(size, style, max_dim, dim_in), "mapping_network": MappingNetwork(latent, style, 3, 32),
            "style_encoder": StyleEncoder(size, style, 3, max_dim, dim_in)}
    assert {"from_rgb.weight", "encode.0.conv1.weight", "decode.0.norm1.fc.weight", "to_rgb.2.weight"} <= set(
        nets["generator"].state_dict())
    assert "shared.0.weight" in nets["mapping_network"].state_dict()
    assert "unshared.2.0.weight" in nets["mapping_network"].state_dict()
    assert "unshared.2.weight" in nets["style_encoder"].state_dict()
    torch.manual_seed(0)
    states = {k: {n: torch.randn_like(v) * 0.05 for n, v in net.state_dict().items()} for k, net in nets.items()}
    torch.save(states, tmp_path / "100000_nets_ema.ckpt")
    sets = [f"size={size}", f"style_dim={style}", f"latent_dim={latent}", f"max_conv_dim={max_dim}",
            "mapping_dim=32", f"dim_in={dim_in}"]
    run = pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run", sets,
                                 ["cat", "dog", "wild"])
    method = load_for_inference(run).method
    assert method.domains == ["cat", "dog", "wild"]
    for key, net in nets.items():
        net.load_state_dict(states[key])
        net.eval()
    x, z, y = torch.rand(2, 3, size, size) * 2 - 1, torch.randn(2, latent), torch.tensor([2, 0])
    with torch.no_grad():
        s_ref = nets["style_encoder"](x, y)
        assert torch.allclose(method.style_from_latent(z, y), nets["mapping_network"](z, y), atol=1e-6)
        assert torch.allclose(method.translate(x, style=s_ref), nets["generator"](x, s_ref), atol=1e-5)
    with pytest.raises(CheckpointError, match="--domains"):  # two domains for a three-domain release
        pretrained.import_file(tmp_path / "100000_nets_ema.ckpt", "starganv2", tmp_path / "run2", sets, ["cat", "dog"])


def test_registry_lists_every_release_family_and_import_only_is_explained(tmp_path, monkeypatch):
    listed = runner.invoke(app, ["pretrained", "list", "--json", str(tmp_path / "list.json")])
    assert listed.exit_code == 0, listed.output
    names = set(pretrained.PRETRAINED)
    assert {"pix2pix_facades_label2photo", "cyclegan_horse2zebra", "cut_cityscapes", "fastcut_cat2dog",
            "starganv2_afhq", "starganv2_celeba_hq", "lsesim_release"} <= names
    assert pretrained.PRETRAINED["starganv2_afhq"].url.endswith("100000_nets_ema.ckpt?dl=1")
    monkeypatch.setenv("I2I_HOME", str(tmp_path / "home"))
    refused = runner.invoke(app, ["pretrained", "get", "lsesim_release", "--out", str(tmp_path / "r")])
    assert refused.exit_code == 2 and "pretrained import" in refused.output


def test_the_reference_training_networks_load_by_their_names_and_a_wrong_name_is_refused():
    from i2i_cli.models import registry

    cls = registry.method_class("cut")
    method = cls(dataclasses.replace(cls.config_class(), ngf=4, ndf=4, n_blocks=2, netF_nc=8, size=32))
    twin = cls(dataclasses.replace(method.config))
    states = {"G": twin.G.state_dict(), "D": twin.D.state_dict(), "F": twin.F.state_dict()}
    pretrained.load_official_networks(method, states)
    assert all(torch.equal(v, twin.state_dict()[k]) for k, v in method.state_dict().items())
    with pytest.raises(CheckpointError, match="no network 'D_A'"):
        pretrained.load_official_networks(method, {"D_A": states["D"]})
    with pytest.raises(CheckpointError, match="keys do not match"):
        pretrained.load_official_networks(method, {"D": states["G"]})
